//! inlay's stages cache artifact: the cache of a multi-stage build's non-final stages, built and
//! pushed next to the image it belongs to.
//!
//! An inline cache only holds results made of the image's own layers (spec section 3.2 step
//! 3.3), so the stages a multi-stage build copies from lose theirs. inlay attaches them to the
//! pushed image as an OCI 1.1 artifact, in the shape the importer reads
//! ([`inlay_core::cache::artifact`], which the importer reads with):
//!
//! * an OCI image manifest with `artifactType` [`ARTIFACT_TYPE`];
//! * its `config` is a BuildKit registry cache config blob
//!   ([`media_types::BUILDKIT_CACHE_CONFIG`], `{"layers":[...],"records":[...]}` as
//!   [`CacheConfig::to_json`] writes it), which also makes it a BuildKit v0.12+ "image-manifest"
//!   registry cache (spec section 2.1);
//! * its `layers` are the blobs the config's `layers` table names, each once, OCI media types,
//!   each annotated with `containerd.io/uncompressed` (the diffID, the importer's layer
//!   identity);
//! * `subject` is the image manifest (or index) descriptor.
//!
//! The artifact is pushed by digest. So that registries without the referrers API (distribution
//! 2.8 has none) can still find it from the image, the referrers tag schema of the distribution
//! spec 1.1 is kept as well: the tag `sha256-<hex of the subject digest>` names an OCI index
//! whose `manifests` list the referrers (with their `artifactType`), and a client adds itself to
//! that index (read, add, write). [`inlay_registry::Client::referrers`] reads that tag when the
//! API answers 404.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use inlay_core::cache::CacheConfig;
use inlay_core::descriptor::ANNOTATION_UNCOMPRESSED;
use inlay_core::image::ImageIndex;
use inlay_core::{Descriptor, Digest, Reference, media_types};
use inlay_registry::{Client, referrers_tag};

use crate::error::ExportError;
use crate::push::{PushOptions, PushReport, push_blobs, push_one};
use crate::source::{BlobLocation, BlobSource};

/// The `artifactType` of the stages cache artifact, and the largest cache config blob BuildKit's
/// importer reads (`readBlob`, spec section 2.6): one definition, in `core`, for both sides.
pub use inlay_core::cache::artifact::{
    INLAY_CACHE_ARTIFACT_TYPE as ARTIFACT_TYPE, MAX_CACHE_CONFIG_SIZE,
};

/// A built stages cache artifact: manifest bytes with their digest, and the cache config blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheArtifact {
    manifest: Bytes,
    digest: Digest,
    cache_config: Bytes,
    cache_config_descriptor: Descriptor,
    layers: Vec<Descriptor>,
    subject: Descriptor,
}

impl CacheArtifact {
    /// Builds the artifact for `subject` from the stages' layers and their cache config.
    /// Layers are given OCI media types, keep only their diffID annotation, and are
    /// de-duplicated by digest (first kept); each must carry its diffID, every
    /// `config.layers[].blob` must be one of them, and the config must fit
    /// [`MAX_CACHE_CONFIG_SIZE`].
    pub fn build(
        subject: Descriptor,
        layers: Vec<Descriptor>,
        config: &CacheConfig,
    ) -> Result<CacheArtifact, ExportError> {
        let mut seen = BTreeSet::new();
        let mut kept = Vec::with_capacity(layers.len());
        for layer in layers {
            if seen.insert(layer.digest.clone()) {
                kept.push(artifact_layer(layer)?);
            }
        }
        if let Some(unknown) = config.layers().iter().find(|l| !seen.contains(&l.blob)) {
            return Err(ExportError::UnknownCacheBlob {
                digest: unknown.blob.clone(),
            });
        }
        let cache_config = Bytes::from(config.to_json().into_bytes());
        let size = cache_config.len() as u64;
        if size > MAX_CACHE_CONFIG_SIZE {
            return Err(ExportError::CacheConfigTooLarge {
                size,
                cap: MAX_CACHE_CONFIG_SIZE,
            });
        }
        let cache_config_descriptor =
            Descriptor::of_bytes(media_types::BUILDKIT_CACHE_CONFIG, &cache_config);
        // The same manifest the importer parses: built by core's typed artifact.
        let manifest = inlay_core::cache::artifact::CacheArtifact::new(
            subject.clone(),
            cache_config_descriptor.clone(),
            kept.clone(),
        )
        .to_bytes();
        Ok(CacheArtifact {
            digest: Digest::sha256_of(&manifest),
            manifest: Bytes::from(manifest),
            cache_config,
            cache_config_descriptor,
            layers: kept,
            subject,
        })
    }

    /// The manifest bytes (pushed exactly).
    pub fn manifest(&self) -> &Bytes {
        &self.manifest
    }

    /// The manifest's digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// A descriptor of the manifest with its artifact type, as a referrers index lists it.
    pub fn descriptor(&self) -> Descriptor {
        let mut d = Descriptor::of_bytes(media_types::OCI_MANIFEST, &self.manifest);
        d.artifact_type = Some(ARTIFACT_TYPE.to_owned());
        d
    }

    /// The cache config blob.
    pub fn cache_config(&self) -> &Bytes {
        &self.cache_config
    }

    /// The cache config blob's descriptor (the manifest's `config`).
    pub fn cache_config_descriptor(&self) -> &Descriptor {
        &self.cache_config_descriptor
    }

    /// The layer blobs as the manifest lists them.
    pub fn layers(&self) -> &[Descriptor] {
        &self.layers
    }

    /// The image the artifact belongs to.
    pub fn subject(&self) -> &Descriptor {
        &self.subject
    }
}

/// A layer as the artifact lists it: OCI media type, only the diffID annotation.
fn artifact_layer(mut layer: Descriptor) -> Result<Descriptor, ExportError> {
    let Some(compression) = media_types::layer_compression(&layer.media_type) else {
        return Err(ExportError::NotALayer {
            digest: layer.digest,
            media_type: layer.media_type,
        });
    };
    if layer.uncompressed_digest().is_none() {
        return Err(ExportError::MissingDiffId {
            digest: layer.digest,
        });
    }
    // An OCI manifest carries OCI layer types; BuildKit normalises its cache containers the
    // same way (spec section 2.1).
    media_types::layer_type(compression, true).clone_into(&mut layer.media_type);
    layer
        .annotations
        .retain(|k, _| k == ANNOTATION_UNCOMPRESSED);
    layer.platform = None;
    Ok(layer)
}

/// What pushing a cache artifact did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactReport {
    /// The artifact manifest's digest.
    pub digest: Digest,
    /// The referrers tag that lists it.
    pub referrers_tag: Reference,
    /// Whether the referrers tag index had to be written (false when it listed the artifact).
    pub index_updated: bool,
    /// Blob counts and bytes.
    pub blobs: PushReport,
}

/// Pushes `artifact` into `image`'s repository: its layers (located by `source`), the cache
/// config, the manifest by digest, then the referrers tag index.
pub async fn push_cache_artifact(
    client: &Client,
    image: &Reference,
    artifact: &CacheArtifact,
    source: &dyn BlobSource,
    options: &PushOptions,
) -> Result<ArtifactReport, ExportError> {
    let mut blobs = PushReport {
        digest: Some(artifact.digest().clone()),
        ..PushReport::default()
    };
    let mut layers = Vec::with_capacity(artifact.layers().len());
    for layer in artifact.layers() {
        let location = source
            .locate(&layer.digest)
            .ok_or_else(|| ExportError::MissingBlob {
                digest: layer.digest.clone(),
            })?;
        layers.push((layer.clone(), location));
    }
    push_blobs(client, image, layers, options, &mut blobs).await?;
    let config = artifact.cache_config_descriptor().clone();
    let moved = push_one(
        client,
        image,
        &config,
        BlobLocation::Bytes(artifact.cache_config().clone()),
        &options.spool_dir(),
    )
    .await?;
    blobs.count(moved);
    let by_digest = image.with_digest(artifact.digest().clone());
    crate::push::put_manifest_after_blobs(
        client,
        &by_digest,
        media_types::OCI_MANIFEST,
        artifact.manifest().clone(),
    )
    .await
    .map_err(ExportError::registry("push manifest", &by_digest))?;
    blobs.manifests_pushed.push(by_digest);

    let tag = image.with_tag(&referrers_tag(&artifact.subject().digest));
    let index_updated = add_to_referrers_index(client, &tag, artifact.descriptor()).await?;
    Ok(ArtifactReport {
        digest: artifact.digest().clone(),
        referrers_tag: tag,
        index_updated,
        blobs,
    })
}

/// Adds `referrer` to the index under the referrers tag `tag`, creating it when missing;
/// `false` when it was listed already. Entries of other clients are kept as they were.
pub(crate) async fn add_to_referrers_index(
    client: &Client,
    tag: &Reference,
    referrer: Descriptor,
) -> Result<bool, ExportError> {
    let mut index = match client.get_manifest(tag).await {
        Ok(existing) if existing.is_index() => {
            serde_json::from_slice::<ImageIndex>(&existing.bytes).map_err(|source| {
                ExportError::ReferrersIndex {
                    reference: tag.to_string(),
                    source,
                }
            })?
        }
        // Something else under the tag is not ours to keep: the tag schema reserves the name.
        Ok(_) => empty_index(),
        Err(e) if e.is_not_found() => empty_index(),
        Err(e) => return Err(ExportError::registry("fetch referrers index", tag)(e)),
    };
    if index.manifests.iter().any(|d| d.digest == referrer.digest) {
        return Ok(false);
    }
    index.manifests.push(referrer);
    let bytes = serde_json::to_vec(&index).expect("an index of descriptors always serialises");
    client
        .put_manifest(tag, media_types::OCI_INDEX, Bytes::from(bytes))
        .await
        .map_err(ExportError::registry("push referrers index", tag))?;
    Ok(true)
}

fn empty_index() -> ImageIndex {
    ImageIndex {
        schema_version: 2,
        media_type: Some(media_types::OCI_INDEX.to_owned()),
        artifact_type: None,
        manifests: Vec::new(),
        subject: None,
        annotations: BTreeMap::new(),
        extra: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use inlay_core::cache::{CacheLayer, RecordGraph};

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
    fn builds_the_importers_shape() {
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
        assert_eq!(json["schemaVersion"], 2);
        assert_eq!(json["mediaType"], media_types::OCI_MANIFEST);
        assert_eq!(json["artifactType"], ARTIFACT_TYPE);
        assert_eq!(
            json["config"]["mediaType"],
            media_types::BUILDKIT_CACHE_CONFIG
        );
        assert_eq!(
            json["config"]["digest"],
            Digest::sha256_of(built.cache_config()).as_str()
        );
        let blobs = json["layers"].as_array().unwrap();
        assert_eq!(blobs.len(), 2);
        assert_eq!(blobs[0]["mediaType"], media_types::OCI_LAYER_GZIP);
        assert_eq!(
            blobs[0]["annotations"],
            serde_json::json!({ANNOTATION_UNCOMPRESSED: a.annotations[ANNOTATION_UNCOMPRESSED]})
        );
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
        let again = CacheArtifact::build(subject, vec![a, b], &config).unwrap();
        assert_eq!(again.manifest(), built.manifest(), "deterministic");
    }

    #[test]
    fn refuses_what_the_importer_could_not_use() {
        let subject = Descriptor::of_bytes(media_types::OCI_MANIFEST, b"{}");
        let a = layer(b"a", media_types::OCI_LAYER_GZIP);
        let mut bare = a.clone();
        bare.annotations.clear();
        assert!(matches!(
            CacheArtifact::build(subject.clone(), vec![bare], &config_for(&[&a])),
            Err(ExportError::MissingDiffId { .. })
        ));
        let other = layer(b"o", media_types::OCI_LAYER_GZIP);
        assert!(matches!(
            CacheArtifact::build(subject.clone(), vec![a.clone()], &config_for(&[&other])),
            Err(ExportError::UnknownCacheBlob { .. })
        ));
        let not_layer = Descriptor::of_bytes(media_types::OCI_CONFIG, b"c");
        assert!(matches!(
            CacheArtifact::build(subject, vec![not_layer], &CacheConfig::default()),
            Err(ExportError::NotALayer { .. })
        ));
    }
}
