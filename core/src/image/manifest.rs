//! Image manifests: Docker schema 2 and OCI, one model.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Descriptor;

/// A single-platform image manifest (Docker schema 2 or OCI). Keys this model does not know are
/// kept in `extra`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageManifest {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// The manifest media type; required by Docker, optional (but usual) in OCI.
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The artifact type of an OCI artifact manifest.
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
    /// The image config blob.
    pub config: Descriptor,
    /// Layer blobs, base first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (OCI 1.1 referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Keys this model does not know.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}
