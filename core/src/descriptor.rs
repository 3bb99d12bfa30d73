//! OCI content descriptors and the media types inlay meets.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::platform::Platform;

/// Media types of manifests, configs, layers and BuildKit caches.
pub mod media_types {
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index.
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// OCI image config.
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// OCI layer, plain tar.
    pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    /// OCI layer, gzip-compressed tar.
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    /// OCI layer, zstd-compressed tar.
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    /// OCI non-distributable layer, gzip (deprecated by the spec, still met in the wild).
    pub const OCI_LAYER_NONDIST_GZIP: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    /// OCI empty JSON descriptor (`{}`), used as the config of artifacts.
    pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
    /// Docker schema 2 image manifest.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker schema 2 manifest list.
    pub const DOCKER_MANIFEST_LIST: &str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker image config.
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    /// Docker layer, gzip-compressed tar.
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    /// Docker layer, plain tar (rare, but valid).
    pub const DOCKER_LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
    /// Docker foreign layer (Windows base layers).
    pub const DOCKER_LAYER_FOREIGN: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    /// BuildKit cache config blob (spec section 2.1).
    pub const BUILDKIT_CACHE_CONFIG: &str = "application/vnd.buildkit.cacheconfig.v0";

    /// Whether `media_type` names a single-platform image manifest.
    pub fn is_manifest(media_type: &str) -> bool {
        matches!(media_type, OCI_MANIFEST | DOCKER_MANIFEST)
    }

    /// Whether `media_type` names an index or a manifest list.
    pub fn is_index(media_type: &str) -> bool {
        matches!(media_type, OCI_INDEX | DOCKER_MANIFEST_LIST)
    }

    /// Whether `media_type` names a filesystem layer.
    pub fn is_layer(media_type: &str) -> bool {
        layer_compression(media_type).is_some()
    }

    /// The compression of a layer media type, or `None` when it is not a layer type.
    pub fn layer_compression(media_type: &str) -> Option<super::Compression> {
        use super::Compression;
        match media_type {
            OCI_LAYER_TAR | DOCKER_LAYER_TAR => Some(Compression::None),
            OCI_LAYER_GZIP | DOCKER_LAYER_GZIP | DOCKER_LAYER_FOREIGN | OCI_LAYER_NONDIST_GZIP => {
                Some(Compression::Gzip)
            }
            OCI_LAYER_ZSTD => Some(Compression::Zstd),
            _ => None,
        }
    }

    /// The layer media type for `compression`, in the OCI or the Docker family.
    ///
    /// Docker's family has no zstd type; BuildKit then uses the OCI one, and so do we.
    pub fn layer_type(compression: super::Compression, oci: bool) -> &'static str {
        use super::Compression;
        match (compression, oci) {
            (Compression::None, true) => OCI_LAYER_TAR,
            (Compression::None, false) => DOCKER_LAYER_TAR,
            (Compression::Gzip, true) => OCI_LAYER_GZIP,
            (Compression::Gzip, false) => DOCKER_LAYER_GZIP,
            (Compression::Zstd, _) => OCI_LAYER_ZSTD,
        }
    }
}

/// How a layer blob is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// Annotation holding a layer's uncompressed digest (diffID); BuildKit's importer needs it.
pub const ANNOTATION_UNCOMPRESSED: &str = "containerd.io/uncompressed";
/// Annotation holding a layer's creation time (RFC 3339), as BuildKit writes it.
pub const ANNOTATION_BUILDKIT_CREATED_AT: &str = "buildkit/createdat";
/// Annotation holding a layer's history `created_by`, as BuildKit's inline importer sets it.
pub const ANNOTATION_BUILDKIT_DESCRIPTION: &str = "buildkit/description";

/// An OCI content descriptor: what a manifest says about a blob or another manifest.
///
/// Unknown fields are kept in `extra` so that a descriptor read from a registry can be written
/// back without losing anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    /// The media type of the referenced content.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// The digest of the referenced content.
    pub digest: Digest,
    /// The size in bytes. Docker 20.10's inline-cache remotes use -1 for "unknown".
    pub size: i64,
    /// Alternative download locations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Free-form annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The platform of a manifest referenced from an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// The artifact type of an artifact manifest referenced from an index.
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
    /// Fields this model does not know, kept as they were.
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl Descriptor {
    /// A descriptor with just media type, digest and size.
    pub fn new(media_type: impl Into<String>, digest: Digest, size: i64) -> Descriptor {
        Descriptor {
            media_type: media_type.into(),
            digest,
            size,
            urls: Vec::new(),
            annotations: BTreeMap::new(),
            platform: None,
            artifact_type: None,
            extra: BTreeMap::new(),
        }
    }

    /// A descriptor of `bytes` (digest and size computed here).
    pub fn of_bytes(media_type: impl Into<String>, bytes: &[u8]) -> Descriptor {
        Descriptor::new(
            media_type,
            Digest::sha256_of(bytes),
            i64::try_from(bytes.len()).unwrap_or(i64::MAX),
        )
    }

    /// The layer's diffID from the `containerd.io/uncompressed` annotation, if present and valid.
    pub fn uncompressed_digest(&self) -> Option<Digest> {
        self.annotations
            .get(ANNOTATION_UNCOMPRESSED)
            .and_then(|s| s.parse().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_unknown_fields() {
        let json = r#"{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824","size":5,"platform":{"architecture":"amd64","os":"linux"},"x-extra":[1,2]}"#;
        let d: Descriptor = serde_json::from_str(json).unwrap();
        assert_eq!(d.size, 5);
        assert_eq!(d.platform.as_ref().unwrap().architecture, "amd64");
        assert_eq!(d.extra["x-extra"], serde_json::json!([1, 2]));
        let back = serde_json::to_string(&d).unwrap();
        let again: Descriptor = serde_json::from_str(&back).unwrap();
        assert_eq!(again, d);
    }

    #[test]
    fn media_type_families() {
        use media_types::*;
        assert!(is_manifest(DOCKER_MANIFEST) && is_manifest(OCI_MANIFEST));
        assert!(is_index(OCI_INDEX) && is_index(DOCKER_MANIFEST_LIST));
        assert_eq!(
            layer_compression(DOCKER_LAYER_GZIP),
            Some(Compression::Gzip)
        );
        assert_eq!(layer_compression(OCI_LAYER_ZSTD), Some(Compression::Zstd));
        assert!(!is_layer(BUILDKIT_CACHE_CONFIG));
        assert_eq!(layer_type(Compression::Gzip, false), DOCKER_LAYER_GZIP);
        assert_eq!(layer_type(Compression::Zstd, false), OCI_LAYER_ZSTD);
    }

    #[test]
    fn uncompressed_annotation() {
        let mut d = Descriptor::of_bytes(media_types::OCI_LAYER_GZIP, b"x");
        assert_eq!(d.uncompressed_digest(), None);
        let diff = Digest::sha256_of(b"y");
        d.annotations
            .insert(ANNOTATION_UNCOMPRESSED.to_owned(), diff.to_string());
        assert_eq!(d.uncompressed_digest(), Some(diff));
    }
}
