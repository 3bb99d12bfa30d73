//! Pushing inlay's multi-stage cache artifact ([`inlay_core::cache::artifact`]) next to the
//! image it describes.
//!
//! The artifact is pushed by digest. So that registries without the referrers API (distribution
//! 2.8 has none) can still find it from the image, the referrers tag schema of the distribution
//! spec 1.1 is kept as well: the tag `sha256-<hex of the image digest>` names an OCI index whose
//! `manifests` list the referrers, and a client adds itself to that index (read, add, write).
//! [`inlay_registry::Client::referrers`] reads that tag when the API answers 404.

use std::collections::BTreeMap;

use bytes::Bytes;
use inlay_core::cache::artifact::{self, CacheArtifact};
use inlay_core::image::ImageIndex;
use inlay_core::{Descriptor, Digest, Reference, media_types};
use inlay_registry::{Client, referrers_tag};

use crate::error::ExportError;
use crate::push::{PushOptions, PushReport, push_blobs, push_one};
use crate::source::{BlobLocation, BlobSource};

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

/// Pushes `artifact` into `image`'s repository: its layers (located by `source`), the empty
/// config, the cache config, the manifest by digest, then the referrers tag index.
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
    let spool = options.spool_dir();
    for (descriptor, bytes) in [
        (
            artifact::empty_descriptor(),
            Bytes::from_static(artifact::EMPTY_JSON),
        ),
        (
            artifact.cache_config_descriptor().clone(),
            Bytes::copy_from_slice(artifact.cache_config()),
        ),
    ] {
        let moved = push_one(
            client,
            image,
            &descriptor,
            BlobLocation::Bytes(bytes),
            &spool,
        )
        .await?;
        blobs.count(moved);
    }
    let by_digest = image.with_digest(artifact.digest().clone());
    client
        .put_manifest(
            &by_digest,
            media_types::OCI_MANIFEST,
            Bytes::copy_from_slice(artifact.manifest()),
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
async fn add_to_referrers_index(
    client: &Client,
    tag: &Reference,
    referrer: Descriptor,
) -> Result<bool, ExportError> {
    let mut index = match client.get_manifest(tag).await {
        Ok(existing) if existing.is_index() => {
            serde_json::from_slice::<ImageIndex>(&existing.bytes).map_err(|source| {
                ExportError::Artifact {
                    source: artifact::ArtifactError::Json { source },
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
