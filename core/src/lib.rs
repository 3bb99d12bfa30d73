//! Pure building blocks of inlay: digests, descriptors and media types, image references and
//! platforms, image config / manifest / index models, the build graph, BuildKit-compatible cache
//! keys, and the inline cache record format.
//!
//! `inlay-core` does no IO, no async and reads no clock: callers pass bytes, file metadata and
//! times in. That keeps every format and every key computation testable and fuzzable on its own.
//!
//! ```
//! use inlay_core::{Digest, Reference};
//!
//! let d = Digest::sha256_of(b"hello");
//! assert_eq!(
//!     d.to_string(),
//!     "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
//! );
//! assert_eq!(d, d.to_string().parse::<Digest>().unwrap());
//!
//! let r: Reference = "busybox".parse().unwrap();
//! assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
//! ```
#![forbid(unsafe_code)]

pub mod cache;
pub mod cachekey;
pub mod contenthash;
pub mod descriptor;
pub mod digest;
pub mod gojson;
pub mod gopath;
pub mod image;
pub mod op;
pub mod platform;
pub mod reference;

pub use cache::Timestamp;
pub use cache::key::record_digest;
pub use descriptor::{Compression, Descriptor, media_types};
pub use digest::{Algorithm, Digest, DigestError, Hasher};
pub use platform::{Platform, PlatformError};
pub use reference::{Reference, ReferenceError};
