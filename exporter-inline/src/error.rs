//! Why an image could not be written, pushed or archived.

use std::path::PathBuf;

use inlay_core::Digest;
use inlay_core::image::ImageError;
use inlay_registry::RegistryError;

/// An export that failed, with the blob, reference or path at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// The config (or template) is not a JSON object of the image config shape.
    #[error("image config cannot be used")]
    Config {
        /// The parser's complaint.
        #[source]
        source: ImageError,
    },
    /// The config's `rootfs.diff_ids` and the layers' diffIDs disagree.
    #[error("layer {position}: the config lists diffID {config:?} but the layer has {layer:?}")]
    DiffIdMismatch {
        /// The layer position (0 = base).
        position: usize,
        /// What the config says, if it has that position.
        config: Option<Digest>,
        /// What the layer says, if there is a layer at that position.
        layer: Option<Digest>,
    },
    /// A layer descriptor does not have a layer media type.
    #[error("blob {digest} has media type {media_type:?}, not a layer type")]
    NotALayer {
        /// The blob.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },
    /// A layer's size is unknown (docker 20.10's diffID remotes say -1); a manifest needs it.
    #[error("layer {digest} has no known size ({size})")]
    UnknownSize {
        /// The blob.
        digest: Digest,
        /// The size given.
        size: i64,
    },
    /// The blob source does not know where a blob is.
    #[error("no source for blob {digest}")]
    MissingBlob {
        /// The blob.
        digest: Digest,
    },
    /// A registry request failed.
    #[error("{action} {target} failed")]
    Registry {
        /// What was being done (`push blob`, `fetch blob`, `push manifest`, ...).
        action: &'static str,
        /// The blob digest or reference concerned.
        target: String,
        /// The client's error.
        #[source]
        source: Box<RegistryError>,
    },
    /// A file could not be read or written.
    #[error("cannot access {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// A blob read from a local file does not hash to its digest.
    #[error("blob {expected} read from {path} hashes to {actual}")]
    DigestMismatch {
        /// The file.
        path: PathBuf,
        /// The digest asked for.
        expected: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// A stages cache layer has no valid `containerd.io/uncompressed` annotation, which the
    /// importer needs as the layer's identity.
    #[error("cache layer {digest} has no valid containerd.io/uncompressed annotation")]
    MissingDiffId {
        /// The layer blob.
        digest: Digest,
    },
    /// The stages cache config names a blob the artifact does not carry.
    #[error("cache config names layer blob {digest}, which the artifact does not carry")]
    UnknownCacheBlob {
        /// The blob.
        digest: Digest,
    },
    /// The stages cache config is larger than importers read.
    #[error("cache config is {size} bytes, more than the {cap} bytes importers read")]
    CacheConfigTooLarge {
        /// Its size.
        size: u64,
        /// The cap.
        cap: u64,
    },
    /// The index under a referrers tag does not parse.
    #[error("referrers index {reference} does not parse")]
    ReferrersIndex {
        /// The tag.
        reference: String,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
}

impl ExportError {
    /// An [`ExportError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ExportError {
        let path = path.into();
        move |source| ExportError::Io { path, source }
    }

    /// An [`ExportError::Registry`].
    pub(crate) fn registry(
        action: &'static str,
        target: &dyn std::fmt::Display,
    ) -> impl FnOnce(RegistryError) -> ExportError + use<> {
        let target = target.to_string();
        move |source| ExportError::Registry {
            action,
            target,
            source: Box::new(source),
        }
    }
}
