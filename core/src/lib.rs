//! Pure building blocks of inlay: digests, descriptors and media types, image references and
//! platforms, image config / manifest / index models, the build graph, BuildKit-compatible cache
//! keys, and the inline cache record format.
//!
//! `inlay-core` does no IO, no async and reads no clock: callers pass bytes, file metadata and
//! times in. That keeps every format and every key computation testable and fuzzable on its own.
//!
//! ```
//! use inlay_core::Digest;
//!
//! let d = Digest::sha256_of(b"hello");
//! assert_eq!(
//!     d.to_string(),
//!     "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
//! );
//! assert_eq!(d, d.to_string().parse::<Digest>().unwrap());
//! ```
#![forbid(unsafe_code)]

pub mod contenthash;
pub mod digest;

pub use digest::{Algorithm, Digest, DigestError, Hasher};
