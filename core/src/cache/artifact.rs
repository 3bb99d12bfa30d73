//! inlay's stages cache artifact: the cache of a multi-stage build's non-final stages, attached
//! to the pushed image as an OCI 1.1 artifact.
//!
//! An inline cache only holds records whose results are in the final image (spec section 3.3),
//! so a multi-stage build loses the stages it copies from. inlay keeps them in an artifact that
//! refers to the image through `subject` and is found with the referrers API (or its tag
//! schema fallback):
//!
//! * an **OCI image manifest** (`application/vnd.oci.image.manifest.v1+json`) with
//!   `artifactType` [`INLAY_CACHE_ARTIFACT_TYPE`];
//! * its `config` is a BuildKit **registry cache config** blob ([`CACHE_CONFIG_MEDIA_TYPE`],
//!   `{"layers":[…],"records":[…]}` exactly as [`crate::cache::CacheConfig::to_json`] writes it,
//!   spec section 2.2);
//! * its `layers` are the layer blobs the config's `layers` table names, each once, each with the
//!   `containerd.io/uncompressed` annotation (the diffID). Blobs shared with the image may be
//!   listed too: the registry stores them once;
//! * `subject` is the descriptor of what the image reference resolves to (the image manifest,
//!   or the index of a multi-platform image). Importers also look for artifacts whose subject is
//!   one platform manifest of an index.
//!
//! With the config media type chosen this way, the artifact is also a valid BuildKit v0.12+
//! "image-manifest" registry cache (spec section 2.1): BuildKit imports it when given its digest.
//!
//! ```
//! use inlay_core::cache::artifact::{CacheArtifact, INLAY_CACHE_ARTIFACT_TYPE};
//! use inlay_core::{Descriptor, media_types};
//!
//! let subject = Descriptor::of_bytes(media_types::OCI_MANIFEST, b"{}");
//! let config = Descriptor::of_bytes(media_types::BUILDKIT_CACHE_CONFIG, br#"{"records":[]}"#);
//! let artifact = CacheArtifact::new(subject, config, Vec::new());
//! let manifest = artifact.to_manifest();
//! assert_eq!(manifest.artifact_type.as_deref(), Some(INLAY_CACHE_ARTIFACT_TYPE));
//! assert_eq!(CacheArtifact::from_manifest(&manifest).unwrap(), artifact);
//! ```

use std::collections::BTreeMap;

use crate::descriptor::{Descriptor, media_types};
use crate::image::ImageManifest;

/// The `artifactType` of inlay's stages cache artifact.
pub const INLAY_CACHE_ARTIFACT_TYPE: &str = "application/vnd.inlay.cache.v1+json";

/// The media type of the artifact's config blob: a BuildKit registry cache config.
pub const CACHE_CONFIG_MEDIA_TYPE: &str = media_types::BUILDKIT_CACHE_CONFIG;

/// The largest cache config blob BuildKit's importer reads (spec section 2.6); exporters stay
/// under it and importers refuse more.
pub const MAX_CACHE_CONFIG_SIZE: u64 = 1024 * 1024;

/// A stages cache artifact, as a typed view of its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheArtifact {
    /// The image (manifest or index) the cache belongs to.
    pub subject: Descriptor,
    /// The cache config blob ([`CACHE_CONFIG_MEDIA_TYPE`]).
    pub config: Descriptor,
    /// The layer blobs the config names, with their diffID annotations.
    pub layers: Vec<Descriptor>,
    /// Free-form manifest annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Why a manifest is not a stages cache artifact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArtifactError {
    /// `artifactType` is missing or another one.
    #[error("artifact type is {found:?}, expected {INLAY_CACHE_ARTIFACT_TYPE}")]
    ArtifactType {
        /// The artifact type found.
        found: Option<String>,
    },
    /// The config is not a cache config.
    #[error("config media type is {found}, expected {CACHE_CONFIG_MEDIA_TYPE}")]
    ConfigType {
        /// The media type found.
        found: String,
    },
    /// The manifest names no subject.
    #[error("the artifact has no subject")]
    MissingSubject,
}

impl CacheArtifact {
    /// An artifact without annotations.
    pub fn new(subject: Descriptor, config: Descriptor, layers: Vec<Descriptor>) -> CacheArtifact {
        CacheArtifact {
            subject,
            config,
            layers,
            annotations: BTreeMap::new(),
        }
    }

    /// Whether `manifest` declares itself a stages cache artifact.
    pub fn is_cache_artifact(manifest: &ImageManifest) -> bool {
        manifest.artifact_type.as_deref() == Some(INLAY_CACHE_ARTIFACT_TYPE)
    }

    /// Reads the artifact out of its manifest.
    pub fn from_manifest(manifest: &ImageManifest) -> Result<CacheArtifact, ArtifactError> {
        if !CacheArtifact::is_cache_artifact(manifest) {
            return Err(ArtifactError::ArtifactType {
                found: manifest.artifact_type.clone(),
            });
        }
        if manifest.config.media_type != CACHE_CONFIG_MEDIA_TYPE {
            return Err(ArtifactError::ConfigType {
                found: manifest.config.media_type.clone(),
            });
        }
        let subject = manifest
            .subject
            .clone()
            .ok_or(ArtifactError::MissingSubject)?;
        Ok(CacheArtifact {
            subject,
            config: manifest.config.clone(),
            layers: manifest.layers.clone(),
            annotations: manifest.annotations.clone(),
        })
    }

    /// The artifact's manifest.
    pub fn to_manifest(&self) -> ImageManifest {
        let mut config = self.config.clone();
        CACHE_CONFIG_MEDIA_TYPE.clone_into(&mut config.media_type);
        ImageManifest {
            schema_version: 2,
            media_type: Some(media_types::OCI_MANIFEST.to_owned()),
            artifact_type: Some(INLAY_CACHE_ARTIFACT_TYPE.to_owned()),
            config,
            layers: self.layers.clone(),
            subject: Some(self.subject.clone()),
            annotations: self.annotations.clone(),
            extra: BTreeMap::new(),
        }
    }

    /// The manifest's JSON bytes (serde's field order, compact), to push as they are.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.to_manifest()).expect("a manifest model always serialises")
    }
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

/// The `artifactType` of inlay's explain facts artifact: what a build knew about its steps
/// that the records (digests only) cannot tell, so that a later `inlay build --check` can say
/// precisely what changed. It refers to the image through `subject` like the stages cache
/// artifact; its config is the OCI empty descriptor and its one layer is the
/// [`ExplainFacts`] JSON (media type [`INLAY_EXPLAIN_ARTIFACT_TYPE`]). The image and its inline
/// cache stay exactly what BuildKit would write; tools that do not know the type ignore it.
pub const INLAY_EXPLAIN_ARTIFACT_TYPE: &str = "application/vnd.inlay.explain.v1+json";

/// The largest explain facts blob importers read.
pub const MAX_EXPLAIN_FACTS_SIZE: u64 = 1024 * 1024;

/// What a build knew about its inputs, for explanations (see [`INLAY_EXPLAIN_ARTIFACT_TYPE`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExplainFacts {
    /// The base images as resolved (reference without digest, manifest digest).
    #[serde(default)]
    pub bases: Vec<BaseFact>,
    /// Every step that produced an op, in build order.
    #[serde(default)]
    pub steps: Vec<StepFact>,
}

/// A base image as one build resolved it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BaseFact {
    /// The reference as written (normalised, without digest).
    pub reference: String,
    /// The digest it resolved to.
    pub digest: Option<crate::Digest>,
}

/// One step as one build saw it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StepFact {
    /// `[stage i/n] INSTRUCTION` with its args expanded.
    pub description: String,
    /// The step's record digests (every exported key profile).
    #[serde(default)]
    pub records: Vec<crate::Digest>,
    /// For `COPY`/`ADD` from the context: the content checksum of each file read, by path
    /// (a bounded number of files; see `paths_truncated`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub paths: BTreeMap<String, crate::Digest>,
    /// More files were read than `paths` lists.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paths_truncated: bool,
}

impl ExplainFacts {
    /// Compact JSON, fields in declaration order.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("explain facts always serialise")
    }

    /// Parses the JSON [`ExplainFacts::to_json`] writes (unknown fields ignored).
    pub fn from_json(bytes: &[u8]) -> Result<ExplainFacts, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    /// The step with record digest `record`.
    pub fn step_with_record(&self, record: &crate::Digest) -> Option<&StepFact> {
        self.steps.iter().find(|s| s.records.contains(record))
    }

    /// The step described as `description`.
    pub fn step_described(&self, description: &str) -> Option<&StepFact> {
        self.steps.iter().find(|s| s.description == description)
    }
}

/// The paths whose checksum differs between `old` and `new`, added or removed, sorted.
pub fn changed_paths(
    old: &BTreeMap<String, crate::Digest>,
    new: &BTreeMap<String, crate::Digest>,
) -> Vec<String> {
    let mut changed: Vec<String> = new
        .iter()
        .filter(|(p, d)| old.get(*p) != Some(*d))
        .map(|(p, _)| p.clone())
        .chain(old.keys().filter(|p| !new.contains_key(*p)).cloned())
        .collect();
    changed.sort();
    changed.dedup();
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Digest;

    fn d(media_type: &str, n: u8) -> Descriptor {
        Descriptor::new(media_type, Digest::sha256_of(&[n]), 10)
    }

    #[test]
    fn manifest_round_trip_and_refusals() {
        let layer = d(media_types::OCI_LAYER_GZIP, 2);
        let artifact = CacheArtifact::new(
            d(media_types::OCI_INDEX, 0),
            d(CACHE_CONFIG_MEDIA_TYPE, 1),
            vec![layer],
        );
        let bytes = artifact.to_bytes();
        let back: ImageManifest = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(CacheArtifact::from_manifest(&back).unwrap(), artifact);
        let mut other = back.clone();
        other.artifact_type = None;
        assert!(matches!(
            CacheArtifact::from_manifest(&other),
            Err(ArtifactError::ArtifactType { found: None })
        ));
        let mut other = back.clone();
        other.config.media_type = media_types::OCI_CONFIG.into();
        assert!(matches!(
            CacheArtifact::from_manifest(&other),
            Err(ArtifactError::ConfigType { .. })
        ));
        let mut other = back;
        other.subject = None;
        assert_eq!(
            CacheArtifact::from_manifest(&other),
            Err(ArtifactError::MissingSubject)
        );
    }

    #[test]
    fn distribution_sources_accumulate_once() {
        let mut layer = d(media_types::OCI_LAYER_GZIP, 3);
        add_distribution_source(&mut layer, "docker.io", "library/busybox");
        add_distribution_source(&mut layer, "docker.io", "library/busybox");
        add_distribution_source(&mut layer, "docker.io", "team/app");
        add_distribution_source(&mut layer, "localhost:5000", "app");
        assert_eq!(
            layer.annotations["containerd.io/distribution.source.docker.io"],
            "library/busybox,team/app"
        );
        assert_eq!(
            distribution_sources(&layer),
            vec![
                ("docker.io".to_owned(), "library/busybox".to_owned()),
                ("docker.io".to_owned(), "team/app".to_owned()),
                ("localhost:5000".to_owned(), "app".to_owned()),
            ]
        );
    }

    #[test]
    fn explain_facts_round_trip_and_changed_paths() {
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        let facts = ExplainFacts {
            bases: vec![BaseFact {
                reference: "r/busybox:latest".into(),
                digest: Some(a.clone()),
            }],
            steps: vec![StepFact {
                description: "[2/2] COPY x /x".into(),
                records: vec![b.clone()],
                paths: [("/x".to_owned(), a.clone())].into_iter().collect(),
                paths_truncated: false,
            }],
        };
        let back = ExplainFacts::from_json(&facts.to_json()).unwrap();
        assert_eq!(back, facts);
        assert!(back.step_with_record(&b).is_some());
        assert!(back.step_described("[2/2] COPY x /x").is_some());
        let old: BTreeMap<String, Digest> = [
            ("/x".to_owned(), a.clone()),
            ("/gone".to_owned(), a.clone()),
        ]
        .into_iter()
        .collect();
        let new: BTreeMap<String, Digest> = [("/x".to_owned(), b.clone()), ("/new".to_owned(), b)]
            .into_iter()
            .collect();
        assert_eq!(changed_paths(&old, &new), ["/gone", "/new", "/x"]);
    }
}
