//! Why image JSON was refused.

use crate::Digest;

/// An image config, manifest or index that cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// The bytes are not JSON of the expected shape.
    #[error("{what} is not valid JSON of the expected shape")]
    Json {
        /// What was being read (`image config`, `image manifest`, ...).
        what: &'static str,
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// The bytes do not hash to the digest they were fetched by.
    #[error("content digest is {actual}, expected {expected}")]
    DigestMismatch {
        /// The digest that was asked for.
        expected: Digest,
        /// The digest of the bytes received.
        actual: Digest,
    },
    /// A config's top level is not a JSON object.
    #[error("image config is not a JSON object")]
    NotAnObject,
}
