//! Why a store operation failed.

use std::io;
use std::path::PathBuf;

use inlay_core::Digest;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A filesystem operation failed.
    #[error("store io at {path}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Written content does not hash to the digest it was meant to have; nothing was stored.
    #[error("blob digest mismatch: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The digest the caller named.
        expected: Digest,
        /// The digest of the bytes written.
        actual: Digest,
    },
    /// Only SHA-256 blobs are stored.
    #[error("unsupported digest algorithm in {digest}")]
    UnsupportedDigest {
        /// The digest.
        digest: Digest,
    },
    /// Filling a snapshot failed; the partial snapshot was removed.
    #[error("preparing snapshot {chain_id}")]
    Populate {
        /// The snapshot's chainID.
        chain_id: Digest,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The index file is not valid JSON of the expected shape.
    #[error("store index {path} is unreadable")]
    Index {
        /// The index file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// No store root could be chosen: not root, and neither `XDG_DATA_HOME` nor `HOME` is set.
    #[error("no store root: set INLAY_ROOT, XDG_DATA_HOME or HOME")]
    NoRoot,
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> StoreError {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
}
