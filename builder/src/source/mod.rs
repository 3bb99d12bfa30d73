//! Where base filesystems come from: images (resolved through an [`ImageSource`], layers pulled
//! only when a step needs their files), the local build context (staged from a directory with
//! include paths and exclusions), and scratch.

mod local;
mod registry;

use inlay_core::{Descriptor, Digest, Platform};

use crate::solver::LayerRef;
use crate::store::Store;

pub use local::{ExcludeMatcher, LocalSource, stage_local};
pub use registry::RegistryImages;

/// Why a source could not be resolved or pulled.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The image source failed (registry error, missing platform, ...).
    #[error("resolving image {reference}: {reason}")]
    Resolve {
        /// The reference.
        reference: String,
        /// What went wrong.
        reason: String,
    },
    /// A blob could not be pulled or stored.
    #[error("pulling {digest} from {reference}: {reason}")]
    Pull {
        /// The reference pulled from.
        reference: String,
        /// The blob.
        digest: Digest,
        /// What went wrong.
        reason: String,
    },
    /// A manifest or config does not parse.
    #[error("image {reference} has an invalid {what}: {reason}")]
    Invalid {
        /// The reference.
        reference: String,
        /// `manifest` or `config`.
        what: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A local directory could not be staged.
    #[error("staging local directory {path}")]
    Local {
        /// The path involved.
        path: std::path::PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The graph names a local source the caller did not provide.
    #[error("no local directory named {name:?} was given")]
    UnknownLocal {
        /// The local name.
        name: String,
    },
    /// No image source was configured but the graph has an image.
    #[error("no image source configured for {reference}")]
    NoImageSource {
        /// The reference.
        reference: String,
    },
}

/// An image resolved for one platform: its manifest and config (bytes as served), and its
/// layers as lazy references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedImage {
    /// The reference as resolved (normalised, as in the graph).
    pub reference: String,
    /// The digest of the top-level document resolved (an index for multi-platform images).
    pub top_digest: Digest,
    /// The platform manifest's bytes.
    pub manifest: Vec<u8>,
    /// The platform manifest's digest.
    pub manifest_digest: Digest,
    /// The config bytes.
    pub config: Vec<u8>,
    /// The layers, bottom first, with the config's diffIDs and `origin` set to the reference.
    pub layers: Vec<LayerRef>,
}

/// Resolves images and pulls their blobs into the store. Implementations are shared between the
/// solver's worker threads.
pub trait ImageSource: Send + Sync {
    /// Resolves `reference` (without the `docker-image://` scheme) for `platform`.
    fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, SourceError>;

    /// Downloads the blob `descriptor` of `reference` into `store` (verified); a no-op when the
    /// store has it.
    fn pull_blob(
        &self,
        reference: &str,
        descriptor: &Descriptor,
        store: &Store,
    ) -> Result<(), SourceError>;

    /// The size of blob `digest` in `reference`'s repository, `None` when it is not there;
    /// moves no blob bytes (a `HEAD`). `Some(0)` means the source did not say.
    fn blob_size(&self, reference: &str, digest: &Digest) -> Result<Option<u64>, SourceError>;
}

/// The layers of a manifest matched with the config's diffIDs.
pub fn layers_of(
    reference: &str,
    manifest: &[u8],
    config: &[u8],
) -> Result<Vec<LayerRef>, SourceError> {
    let invalid = |what: &'static str, reason: String| SourceError::Invalid {
        reference: reference.to_owned(),
        what,
        reason,
    };
    let m: inlay_core::image::ImageManifest =
        serde_json::from_slice(manifest).map_err(|e| invalid("manifest", e.to_string()))?;
    let c: inlay_core::image::ImageConfig =
        serde_json::from_slice(config).map_err(|e| invalid("config", e.to_string()))?;
    let diff_ids = &c.rootfs.diff_ids;
    if diff_ids.len() != m.layers.len() {
        return Err(invalid(
            "config",
            format!("{} diff_ids for {} layers", diff_ids.len(), m.layers.len()),
        ));
    }
    Ok(m.layers
        .iter()
        .zip(diff_ids)
        .map(|(layer, diff_id)| LayerRef {
            diff_id: diff_id.clone(),
            digest: layer.digest.clone(),
            size: u64::try_from(layer.size).unwrap_or(0),
            media_type: layer.media_type.clone(),
            origin: Some(reference.to_owned()),
        })
        .collect())
}
