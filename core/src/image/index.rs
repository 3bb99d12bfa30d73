//! Image indexes and Docker manifest lists, one model.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Descriptor, Platform};

/// An OCI image index or a Docker manifest list. Keys this model does not know are kept in
/// `extra`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageIndex {
    /// Always 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// The index media type.
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The artifact type of an OCI artifact index.
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
    /// The manifests (or, in a BuildKit registry cache, layer blobs followed by the cache config).
    #[serde(default)]
    pub manifests: Vec<Descriptor>,
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

impl ImageIndex {
    /// The manifests whose platform satisfies `wanted`, in index order.
    pub fn manifests_for<'a>(
        &'a self,
        wanted: &'a Platform,
    ) -> impl Iterator<Item = &'a Descriptor> + 'a {
        self.manifests.iter().filter(move |d| {
            d.platform
                .as_ref()
                .is_some_and(|platform| platform.satisfies(wanted))
        })
    }
}
