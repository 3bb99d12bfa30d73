//! inlay's multi-stage cache artifact: the records and layers of the stages that are not in the
//! pushed image, attached to that image as an OCI 1.1 artifact whose `subject` is the image.
//!
//! The inline cache can only name layers of the image it lives in (spec section 3.2 step 3.3
//! drops every other result), so a multi-stage build loses the results of its builder stages.
//! This artifact keeps them next to the image, in a shape close to BuildKit's `image-manifest`
//! registry cache (spec section 2.1): an OCI image manifest with
//!
//! * `artifactType` [`ARTIFACT_TYPE`];
//! * `config` the OCI empty descriptor (`{}`, [`empty_descriptor`]), as image-spec 1.1 asks of
//!   artifacts without a config of their own;
//! * `layers` the stages' layer blobs (OCI media types, each annotated with
//!   `containerd.io/uncompressed`, which the importer needs as the layer identity) followed
//!   **last** by the cache config blob ([`crate::media_types::BUILDKIT_CACHE_CONFIG`], a full
//!   `{layers, records}` [`CacheConfig`] whose `layers[].blob` name those layer blobs), the
//!   order BuildKit uses for its cache index (spec section 2.1);
//! * `subject` the image manifest's descriptor, so the referrers API (or its tag fallback)
//!   finds the artifact from the image.
//!
//! ```
//! use inlay_core::cache::artifact::{self, CacheArtifact};
//! use inlay_core::cache::{CacheConfig, CacheLayer, RecordGraph};
//! use inlay_core::{Descriptor, Digest, media_types};
//!
//! let image = Descriptor::of_bytes(media_types::OCI_MANIFEST, b"{}");
//! let mut layer = Descriptor::of_bytes(media_types::OCI_LAYER_GZIP, b"gz");
//! layer.annotations.insert(
//!     "containerd.io/uncompressed".to_owned(),
//!     Digest::sha256_of(b"tar").to_string(),
//! );
//! let config = CacheConfig::new(
//!     vec![CacheLayer { blob: layer.digest.clone(), parent: None, annotations: None }],
//!     RecordGraph::default(),
//! )
//! .unwrap();
//! let built = CacheArtifact::build(image.clone(), vec![layer], &config).unwrap();
//! let read = CacheArtifact::parse(built.manifest()).unwrap();
//! assert_eq!(read.subject(), &image);
//! assert_eq!(read.layers().len(), 1);
//! assert_eq!(read.cache_config_descriptor(), built.cache_config_descriptor());
//! assert_eq!(artifact::empty_descriptor().size, 2);
//! ```

use std::collections::{BTreeMap, BTreeSet};

use crate::cache::CacheConfig;
use crate::descriptor::ANNOTATION_UNCOMPRESSED;
use crate::image::ImageManifest;
use crate::{Descriptor, Digest, media_types};

/// The `artifactType` of inlay's cache artifact.
pub const ARTIFACT_TYPE: &str = "application/vnd.inlay.cache.v1+json";

/// The bytes of the OCI empty JSON blob (image-spec 1.1, "Guidance for an Empty Descriptor").
pub const EMPTY_JSON: &[u8] = b"{}";

/// The descriptor of [`EMPTY_JSON`] with media type [`media_types::OCI_EMPTY`]: the artifact's
/// `config`.
pub fn empty_descriptor() -> Descriptor {
    Descriptor::of_bytes(media_types::OCI_EMPTY, EMPTY_JSON)
}

/// Why a cache artifact cannot be built or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArtifactError {
    /// A layer has no valid `containerd.io/uncompressed` annotation.
    #[error("layer {digest} has no valid containerd.io/uncompressed annotation")]
    MissingDiffId {
        /// The layer blob.
        digest: Digest,
    },
    /// A layer descriptor is not a layer media type.
    #[error("blob {digest} has media type {media_type:?}, not a layer type")]
    NotALayer {
        /// The blob.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },
    /// The cache config names a blob that is not among the artifact's layers.
    #[error("cache config names layer blob {digest}, which the artifact does not carry")]
    UnknownBlob {
        /// The blob.
        digest: Digest,
    },
    /// The manifest does not parse.
    #[error("cache artifact manifest is not JSON of the image manifest shape")]
    Json {
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// The manifest is not an inlay cache artifact.
    #[error("manifest has artifactType {found:?}, not {ARTIFACT_TYPE}")]
    WrongArtifactType {
        /// What it has.
        found: Option<String>,
    },
    /// The manifest has no subject.
    #[error("cache artifact manifest has no subject")]
    MissingSubject,
    /// The last layer is not a cache config blob.
    #[error("the last blob of a cache artifact must be a cache config, found {found:?}")]
    MissingCacheConfig {
        /// The media type of the last blob, if any.
        found: Option<String>,
    },
}

/// A built cache artifact: the manifest bytes with their digest, and the cache config blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheArtifact {
    manifest: Vec<u8>,
    digest: Digest,
    cache_config: Vec<u8>,
    cache_config_descriptor: Descriptor,
    layers: Vec<Descriptor>,
    subject: Descriptor,
}

impl CacheArtifact {
    /// Builds the artifact for `subject` (the image manifest) from the stages' layers and their
    /// cache config. Layers are given OCI media types and de-duplicated by digest (first one
    /// kept); each must carry its diffID, and every `config.layers[].blob` must be one of them.
    pub fn build(
        subject: Descriptor,
        layers: Vec<Descriptor>,
        config: &CacheConfig,
    ) -> Result<CacheArtifact, ArtifactError> {
        let mut seen = BTreeSet::new();
        let mut kept = Vec::with_capacity(layers.len());
        for layer in layers {
            if !seen.insert(layer.digest.clone()) {
                continue;
            }
            kept.push(artifact_layer(layer)?);
        }
        if let Some(unknown) = config.layers().iter().find(|l| !seen.contains(&l.blob)) {
            return Err(ArtifactError::UnknownBlob {
                digest: unknown.blob.clone(),
            });
        }
        let cache_config = config.to_json().into_bytes();
        let cache_config_descriptor =
            Descriptor::of_bytes(media_types::BUILDKIT_CACHE_CONFIG, &cache_config);
        let mut blobs = kept.clone();
        blobs.push(cache_config_descriptor.clone());
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(media_types::OCI_MANIFEST.to_owned()),
            artifact_type: Some(ARTIFACT_TYPE.to_owned()),
            config: empty_descriptor(),
            layers: blobs,
            subject: Some(subject.clone()),
            annotations: BTreeMap::new(),
            extra: BTreeMap::new(),
        };
        let manifest = serde_json::to_vec(&manifest)
            .expect("a manifest of strings, digests and integers always serialises");
        Ok(CacheArtifact {
            digest: Digest::sha256_of(&manifest),
            manifest,
            cache_config,
            cache_config_descriptor,
            layers: kept,
            subject,
        })
    }

    /// Reads an artifact manifest: its subject, layers and cache config descriptor. The cache
    /// config bytes are not part of the manifest; [`CacheArtifact::cache_config`] is then empty
    /// until the caller fetches the blob that [`CacheArtifact::cache_config_descriptor`] names.
    pub fn parse(manifest: &[u8]) -> Result<CacheArtifact, ArtifactError> {
        let view: ImageManifest =
            serde_json::from_slice(manifest).map_err(|source| ArtifactError::Json { source })?;
        if view.artifact_type.as_deref() != Some(ARTIFACT_TYPE) {
            return Err(ArtifactError::WrongArtifactType {
                found: view.artifact_type,
            });
        }
        let subject = view.subject.ok_or(ArtifactError::MissingSubject)?;
        let mut layers = view.layers;
        let cache_config_descriptor = match layers.pop() {
            Some(d) if d.media_type == media_types::BUILDKIT_CACHE_CONFIG => d,
            other => {
                return Err(ArtifactError::MissingCacheConfig {
                    found: other.map(|d| d.media_type),
                });
            }
        };
        for layer in &layers {
            if !media_types::is_layer(&layer.media_type) {
                return Err(ArtifactError::NotALayer {
                    digest: layer.digest.clone(),
                    media_type: layer.media_type.clone(),
                });
            }
            if layer.uncompressed_digest().is_none() {
                return Err(ArtifactError::MissingDiffId {
                    digest: layer.digest.clone(),
                });
            }
        }
        Ok(CacheArtifact {
            digest: Digest::sha256_of(manifest),
            manifest: manifest.to_vec(),
            cache_config: Vec::new(),
            cache_config_descriptor,
            layers,
            subject,
        })
    }

    /// The manifest bytes (push them exactly).
    pub fn manifest(&self) -> &[u8] {
        &self.manifest
    }

    /// The manifest's digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// A descriptor of the manifest, with its artifact type, as a referrers index lists it.
    pub fn descriptor(&self) -> Descriptor {
        let mut d = Descriptor::new(
            media_types::OCI_MANIFEST,
            self.digest.clone(),
            i64::try_from(self.manifest.len()).expect("manifests are far below 2^63 bytes"),
        );
        d.artifact_type = Some(ARTIFACT_TYPE.to_owned());
        d
    }

    /// The cache config blob bytes (empty for a parsed artifact).
    pub fn cache_config(&self) -> &[u8] {
        &self.cache_config
    }

    /// The cache config blob's descriptor (the manifest's last blob).
    pub fn cache_config_descriptor(&self) -> &Descriptor {
        &self.cache_config_descriptor
    }

    /// The stage layer blobs, without the cache config.
    pub fn layers(&self) -> &[Descriptor] {
        &self.layers
    }

    /// The image this artifact is attached to.
    pub fn subject(&self) -> &Descriptor {
        &self.subject
    }
}

/// A layer as the artifact lists it: OCI media type, diffID annotation kept.
fn artifact_layer(mut layer: Descriptor) -> Result<Descriptor, ArtifactError> {
    let Some(compression) = media_types::layer_compression(&layer.media_type) else {
        return Err(ArtifactError::NotALayer {
            digest: layer.digest,
            media_type: layer.media_type,
        });
    };
    if layer.uncompressed_digest().is_none() {
        return Err(ArtifactError::MissingDiffId {
            digest: layer.digest,
        });
    }
    // The artifact is an OCI manifest; BuildKit normalises layer types to the container's
    // family too (spec section 2.1).
    media_types::layer_type(compression, true).clone_into(&mut layer.media_type);
    layer
        .annotations
        .retain(|k, _| k == ANNOTATION_UNCOMPRESSED);
    layer.platform = None;
    Ok(layer)
}

/// The `artifactType` of inlay's cache artifact, under the name the importer uses.
pub const INLAY_CACHE_ARTIFACT_TYPE: &str = ARTIFACT_TYPE;

/// The largest cache config blob BuildKit's importer reads (spec section 2.6); exporters stay
/// under it and importers refuse more.
pub const MAX_CACHE_CONFIG_SIZE: u64 = 1024 * 1024;

/// Whether `manifest` declares itself an inlay cache artifact.
pub fn is_cache_artifact(manifest: &ImageManifest) -> bool {
    manifest.artifact_type.as_deref() == Some(ARTIFACT_TYPE)
}

/// The prefix of containerd's distribution source annotation: the key
/// `containerd.io/distribution.source.<registry>` holds the comma-separated repositories of
/// that registry a blob can be fetched or cross-mounted from. The importer puts it on every
/// layer descriptor it imports (the layers stay lazy; spec section 4.3), so that whoever loads
/// or pushes the layer later knows where it lives.
pub const ANNOTATION_DISTRIBUTION_SOURCE_PREFIX: &str = "containerd.io/distribution.source.";

/// Adds `registry`/`repository` to `descriptor`'s distribution sources (kept once).
pub fn add_distribution_source(descriptor: &mut Descriptor, registry: &str, repository: &str) {
    let entry = descriptor
        .annotations
        .entry(format!("{ANNOTATION_DISTRIBUTION_SOURCE_PREFIX}{registry}"))
        .or_default();
    if !entry.split(',').any(|r| r == repository) {
        if !entry.is_empty() {
            entry.push(',');
        }
        entry.push_str(repository);
    }
}

/// The `(registry, repository)` pairs `descriptor` can be fetched from, in annotation order.
pub fn distribution_sources(descriptor: &Descriptor) -> Vec<(String, String)> {
    descriptor
        .annotations
        .iter()
        .filter_map(|(k, v)| {
            let registry = k.strip_prefix(ANNOTATION_DISTRIBUTION_SOURCE_PREFIX)?;
            Some(
                v.split(',')
                    .filter(|r| !r.is_empty())
                    .map(|r| (registry.to_owned(), r.to_owned()))
                    .collect::<Vec<_>>(),
            )
        })
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::{CacheLayer, RecordGraph};

    fn layer(content: &[u8], media_type: &str) -> Descriptor {
        let mut d = Descriptor::of_bytes(media_type, content);
        d.annotations.insert(
            ANNOTATION_UNCOMPRESSED.to_owned(),
            Digest::sha256_of(&[content, b"-tar"].concat()).to_string(),
        );
        d.annotations
            .insert("buildkit/createdat".to_owned(), "x".to_owned());
        d
    }

    fn config_for(layers: &[&Descriptor]) -> CacheConfig {
        let table = layers
            .iter()
            .enumerate()
            .map(|(i, d)| CacheLayer {
                blob: d.digest.clone(),
                parent: i.checked_sub(1),
                annotations: None,
            })
            .collect();
        CacheConfig::new(table, RecordGraph::default()).unwrap()
    }

    #[test]
    fn builds_the_documented_shape() {
        let subject = Descriptor::of_bytes(media_types::DOCKER_MANIFEST, b"{\"m\":1}");
        let a = layer(b"a", media_types::DOCKER_LAYER_GZIP);
        let b = layer(b"b", media_types::OCI_LAYER_GZIP);
        let config = config_for(&[&a, &b]);
        let built = CacheArtifact::build(
            subject.clone(),
            vec![a.clone(), b.clone(), a.clone()],
            &config,
        )
        .unwrap();
        let json: serde_json::Value = serde_json::from_slice(built.manifest()).unwrap();
        assert_eq!(json["artifactType"], ARTIFACT_TYPE);
        assert_eq!(json["mediaType"], media_types::OCI_MANIFEST);
        assert_eq!(json["config"]["mediaType"], media_types::OCI_EMPTY);
        assert_eq!(
            json["config"]["digest"],
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        let blobs = json["layers"].as_array().unwrap();
        assert_eq!(blobs.len(), 3);
        assert_eq!(blobs[0]["mediaType"], media_types::OCI_LAYER_GZIP);
        assert_eq!(
            blobs[0]["annotations"],
            serde_json::json!({ANNOTATION_UNCOMPRESSED: a.annotations[ANNOTATION_UNCOMPRESSED]})
        );
        assert_eq!(blobs[2]["mediaType"], media_types::BUILDKIT_CACHE_CONFIG);
        assert_eq!(json["subject"]["digest"], subject.digest.as_str());
        assert_eq!(
            CacheConfig::from_json(built.cache_config()).unwrap(),
            config.canonical()
        );
        assert_eq!(built.digest(), &Digest::sha256_of(built.manifest()));
        assert_eq!(
            built.descriptor().artifact_type.as_deref(),
            Some(ARTIFACT_TYPE)
        );

        let again = CacheArtifact::build(subject.clone(), vec![a, b], &config).unwrap();
        assert_eq!(again.manifest(), built.manifest(), "deterministic");

        let read = CacheArtifact::parse(built.manifest()).unwrap();
        assert_eq!(read.layers(), built.layers());
        assert_eq!(read.subject(), &subject);
        assert_eq!(read.digest(), built.digest());
    }

    #[test]
    fn refuses_what_the_importer_could_not_use() {
        let subject = Descriptor::of_bytes(media_types::OCI_MANIFEST, b"{}");
        let a = layer(b"a", media_types::OCI_LAYER_GZIP);
        let mut bare = a.clone();
        bare.annotations.clear();
        assert!(matches!(
            CacheArtifact::build(subject.clone(), vec![bare], &config_for(&[&a])),
            Err(ArtifactError::MissingDiffId { .. })
        ));
        let other = layer(b"o", media_types::OCI_LAYER_GZIP);
        assert!(matches!(
            CacheArtifact::build(subject.clone(), vec![a.clone()], &config_for(&[&other])),
            Err(ArtifactError::UnknownBlob { .. })
        ));
        let not_layer = Descriptor::of_bytes(media_types::OCI_CONFIG, b"c");
        assert!(matches!(
            CacheArtifact::build(subject, vec![not_layer], &CacheConfig::default()),
            Err(ArtifactError::NotALayer { .. })
        ));
        assert!(matches!(
            CacheArtifact::parse(br#"{"schemaVersion":2,"config":{"mediaType":"a","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2}}"#),
            Err(ArtifactError::WrongArtifactType { found: None })
        ));
        assert!(matches!(
            CacheArtifact::parse(b"[]"),
            Err(ArtifactError::Json { .. })
        ));
    }
}
