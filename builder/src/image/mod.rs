//! Image assembly: from a result's layer chain, a config template and the history of the steps,
//! the final image config and manifest, both stored as blobs.
//!
//! The config is patched at the JSON level ([`ConfigPatch`]: top-level keys sorted, nested
//! values as given) with `rootfs.diff_ids`, `history` and `created`. With `SOURCE_DATE_EPOCH`
//! every date the build writes is that instant (BuildKit's `SOURCE_DATE_EPOCH` support), so the
//! same layers, template and history give the same image digest on any machine and any day.

use inlay_core::image::{ConfigPatch, History, RootFs};
use inlay_core::{Descriptor, Digest, Timestamp, media_types};
use serde_json::json;

use crate::solver::LayerRef;
use crate::store::{Store, StoreError};

/// Why an image could not be assembled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The config template is not a JSON object.
    #[error("invalid image config template")]
    Template(#[source] inlay_core::image::ImageError),
    /// The history does not describe the layers.
    #[error("history has {entries} entries with layers but the image has {layers} layers")]
    HistoryMismatch {
        /// History entries that are not `empty_layer`.
        entries: usize,
        /// Layers.
        layers: usize,
    },
    /// A time is out of range.
    #[error("timestamp {seconds} is out of range")]
    Time {
        /// Seconds since the epoch.
        seconds: i64,
    },
    /// Storing a blob failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Serialising failed.
    #[error("serialising the {what}")]
    Json {
        /// What.
        what: &'static str,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
}

/// What to assemble.
#[derive(Debug, Clone)]
pub struct ImageRequest<'a> {
    /// The final result's layers, bottom first.
    pub layers: &'a [LayerRef],
    /// The config template (`architecture`, `os`, `config` with Env/Cmd/..., anything else
    /// kept); its `rootfs`, `history` and (with `SOURCE_DATE_EPOCH`) `created` are replaced.
    pub config_template: &'a [u8],
    /// One entry per step, base image entries included, `empty_layer` ones too. Entries without
    /// `created` get the build time.
    pub history: Vec<History>,
    /// `SOURCE_DATE_EPOCH`, seconds.
    pub source_date_epoch: Option<i64>,
    /// The build time when there is no `SOURCE_DATE_EPOCH` (the caller's clock), Unix seconds.
    pub build_time: i64,
    /// OCI media types (else Docker schema 2).
    pub oci: bool,
}

/// An assembled image; config and manifest are in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssembledImage {
    /// Config bytes.
    pub config: Vec<u8>,
    /// Config descriptor.
    pub config_descriptor: Descriptor,
    /// Manifest bytes.
    pub manifest: Vec<u8>,
    /// Manifest descriptor (its digest is the image digest).
    pub manifest_descriptor: Descriptor,
}

impl AssembledImage {
    /// The image digest.
    pub fn digest(&self) -> &Digest {
        &self.manifest_descriptor.digest
    }
}

fn timestamp(seconds: i64) -> Result<Timestamp, ImageError> {
    Timestamp::from_unix_nanos(i128::from(seconds) * 1_000_000_000)
        .ok_or(ImageError::Time { seconds })
}

/// Builds the config and manifest and stores them.
pub fn assemble(store: &Store, request: &ImageRequest<'_>) -> Result<AssembledImage, ImageError> {
    let with_layers = request.history.iter().filter(|h| !h.empty_layer).count();
    if with_layers != request.layers.len() {
        return Err(ImageError::HistoryMismatch {
            entries: with_layers,
            layers: request.layers.len(),
        });
    }
    let (layers, history) = drop_empty_layers(request.layers, &request.history);
    let now = timestamp(request.source_date_epoch.unwrap_or(request.build_time))?;
    let epoch = request.source_date_epoch.map(timestamp).transpose()?;
    let mut patch = ConfigPatch::parse(request.config_template).map_err(ImageError::Template)?;
    let history: Vec<History> = history
        .into_iter()
        .map(|h| {
            let mut h = h;
            // With SOURCE_DATE_EPOCH, BuildKit clamps every history time to it; without, steps
            // of this build get the build time.
            match (&epoch, &h.created) {
                (Some(e), Some(c)) if c.unix_nanos() > e.unix_nanos() => h.created = Some(*e),
                (_, None) => h.created = Some(now),
                _ => {}
            }
            h
        })
        .collect();
    let rootfs = RootFs {
        kind: "layers".to_owned(),
        diff_ids: layers.iter().map(|l| l.diff_id.clone()).collect(),
    };
    let json_err = |what| move |source| ImageError::Json { what, source };
    patch.set("rootfs", &rootfs).map_err(ImageError::Template)?;
    patch
        .set("history", &history)
        .map_err(ImageError::Template)?;
    if epoch.is_some() || !patch.contains("created") {
        patch.set_string("created", &now.to_string());
    }
    let config = patch.to_bytes();
    let (config_type, manifest_type) = if request.oci {
        (media_types::OCI_CONFIG, media_types::OCI_MANIFEST)
    } else {
        (media_types::DOCKER_CONFIG, media_types::DOCKER_MANIFEST)
    };
    let config_descriptor = Descriptor::of_bytes(config_type, &config);
    store.put_blob(&config, Some(&config_descriptor.digest))?;
    let layers: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| {
            json!({
                "mediaType": layer_media_type(&l.media_type, request.oci),
                "digest": l.digest,
                "size": l.size,
            })
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": {
            "mediaType": config_type,
            "digest": config_descriptor.digest,
            "size": config.len(),
        },
        "layers": layers,
    });
    let manifest = serde_json::to_vec(&manifest).map_err(json_err("manifest"))?;
    let manifest_descriptor = Descriptor::of_bytes(manifest_type, &manifest);
    store.put_blob(&manifest, Some(&manifest_descriptor.digest))?;
    Ok(AssembledImage {
        config,
        config_descriptor,
        manifest,
        manifest_descriptor,
    })
}

/// The diffID of an empty tar archive (two zero blocks): a step that changed nothing.
pub const EMPTY_TAR_DIFF_ID: &str =
    "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef";

/// Leaves out layers that change nothing and marks their history entries `empty_layer`, as
/// BuildKit's image writer does (`normalizeLayersAndHistory`), so a `RUN true` adds no layer.
fn drop_empty_layers(layers: &[LayerRef], history: &[History]) -> (Vec<LayerRef>, Vec<History>) {
    let mut kept = Vec::with_capacity(layers.len());
    let mut entries = Vec::with_capacity(history.len());
    let mut next = layers.iter();
    for entry in history {
        let mut entry = entry.clone();
        if !entry.empty_layer {
            if let Some(layer) = next.next() {
                if layer.diff_id.as_str() == EMPTY_TAR_DIFF_ID {
                    entry.empty_layer = true;
                } else {
                    kept.push(layer.clone());
                }
            }
        }
        entries.push(entry);
    }
    (kept, entries)
}

/// A layer's media type in the manifest's family (a pulled Docker layer in an OCI manifest is
/// announced with the OCI type of the same compression, and the other way round).
fn layer_media_type(given: &str, oci: bool) -> String {
    match media_types::layer_compression(given) {
        Some(c) => media_types::layer_type(c, oci).to_owned(),
        None => given.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_follow_the_manifest_family() {
        assert_eq!(
            layer_media_type(media_types::DOCKER_LAYER_GZIP, true),
            media_types::OCI_LAYER_GZIP
        );
        assert_eq!(
            layer_media_type(media_types::OCI_LAYER_GZIP, false),
            media_types::DOCKER_LAYER_GZIP
        );
    }
}
