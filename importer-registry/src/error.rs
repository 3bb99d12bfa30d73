//! Why a cache reference (or one manifest of it) could not be imported. None of these stops a
//! build: BuildKit treats a failed import as an empty cache (spec section 2.6), and so does
//! inlay, turning every error into an [`ImportWarning`].

use std::fmt;

use inlay_core::cache::CacheRecordError;
use inlay_core::image::ImageError;
use inlay_core::{Digest, ReferenceError};
use inlay_registry::{ErrorDetail, RegistryError};

/// Why importing a cache reference, or one document of it, failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The reference does not parse.
    #[error("invalid cache reference")]
    Reference {
        /// Why.
        #[source]
        source: ReferenceError,
    },
    /// The registry refused or could not be reached.
    #[error("fetching {what} {target}")]
    Registry {
        /// What was fetched (`manifest`, `image config`, `cache config`, `referrers`).
        what: &'static str,
        /// The tag or digest fetched.
        target: String,
        /// The registry client's error (with the HTTP status and the registry's error body).
        #[source]
        source: Box<RegistryError>,
    },
    /// A document is larger than the importer reads.
    #[error("{what} {digest} is larger than the limit of {limit} bytes")]
    TooLarge {
        /// What was refused.
        what: &'static str,
        /// Its digest.
        digest: Digest,
        /// The limit in bytes.
        limit: u64,
    },
    /// A manifest, index or config does not parse.
    #[error("{what} {digest} does not parse")]
    Document {
        /// What was read.
        what: &'static str,
        /// Its digest.
        digest: Digest,
        /// The parser's complaint.
        #[source]
        source: ImageError,
    },
    /// The top-level document is neither an image manifest nor an index.
    #[error(
        "{digest} has media type {media_type:?}, which is neither an image manifest nor an index"
    )]
    UnsupportedDocument {
        /// Its digest.
        digest: Digest,
        /// Its media type.
        media_type: String,
    },
    /// The inline cache value or the cache config does not decode.
    #[error("cache records of {digest} do not decode")]
    Records {
        /// The config (image config or cache config) holding them.
        digest: Digest,
        /// Why.
        #[source]
        source: CacheRecordError,
    },
    /// A manifest's config lists another number of diffIDs than it has layers (BuildKit warns
    /// and skips it, spec section 4.4).
    #[error("manifest {manifest} has {layers} layers but its config lists {diff_ids} diff_ids")]
    LayerCountMismatch {
        /// The manifest.
        manifest: Digest,
        /// Its layer count.
        layers: usize,
        /// The config's diffID count.
        diff_ids: usize,
    },
    /// A registry cache container lists no cache config, or an index nests too deep.
    #[error("{digest}: {reason}")]
    Malformed {
        /// The container.
        digest: Digest,
        /// What is wrong.
        reason: String,
    },
    /// Nothing reachable from the reference carries a cache.
    #[error("no cache found: no manifest carries an inline cache and it is no registry cache")]
    NoCache,
}

impl ImportError {
    /// The registry error behind this one, if any.
    pub fn registry_error(&self) -> Option<&RegistryError> {
        match self {
            ImportError::Registry { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

/// A non-fatal import problem: the reference it concerns, the manifest inside it (when only
/// that part was skipped), and why.
#[derive(Debug)]
pub struct ImportWarning {
    /// The cache reference as given (normalised when it parsed).
    pub reference: String,
    /// The manifest that was skipped, when the rest of the reference still imported.
    pub manifest: Option<Digest>,
    /// Why.
    pub error: ImportError,
}

impl ImportWarning {
    /// The HTTP status the registry answered, when the cause is an HTTP error.
    pub fn status(&self) -> Option<u16> {
        self.error.registry_error().and_then(RegistryError::status)
    }

    /// The registry's error body entries, when the cause is an HTTP error that had some.
    pub fn registry_details(&self) -> &[ErrorDetail] {
        self.error
            .registry_error()
            .map_or(&[], RegistryError::details)
    }

    /// Whether the whole reference was skipped (not one manifest of it).
    pub fn is_whole_reference(&self) -> bool {
        self.manifest.is_none()
    }
}

/// `cache from REF skipped: why: cause: ...` (or `manifest DIGEST of REF skipped`), the whole
/// error chain on one line.
impl fmt::Display for ImportWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.manifest {
            None => write!(f, "cache from {} skipped: {}", self.reference, self.error)?,
            Some(m) => write!(
                f,
                "cache from {}: manifest {m} skipped: {}",
                self.reference, self.error
            )?,
        }
        let mut source = std::error::Error::source(&self.error);
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}
