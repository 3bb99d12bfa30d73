//! An OCI distribution client for inlay: the one way inlay talks to registries.
//!
//! It resolves registry names to endpoints (Docker Hub's rules, mirrors for pulls, plain http for
//! loopback and configured insecure hosts), authenticates as Docker does (anonymous, Basic,
//! Bearer tokens from the `WWW-Authenticate` challenge, credentials from `config.json`,
//! credential helpers and `REGISTRY_AUTH_FILE`), and moves manifests and blobs with their digests
//! verified: manifests as exact bytes with a size cap, blobs streamed and resumed by `Range`,
//! uploads monolithic or chunked, cross-repository mounts, bounded concurrency, and retries with
//! backoff on connection errors, 429 and 5xx.
//!
//! It deliberately knows nothing of images beyond descriptors and indexes, nor of caches or
//! builds: callers decide what to fetch and what the bytes mean. It never prints; it emits
//! `tracing` events, none of which carries a credential, a token or a URL query.
//!
//! ```
//! use inlay_core::Reference;
//! use inlay_registry::{Client, ClientConfig, Credential, CredentialStore};
//!
//! let mut credentials = CredentialStore::empty();
//! credentials.insert("registry.example:5000", Credential::basic("ci", "s3cret"));
//! let client = Client::new(ClientConfig::default(), credentials).unwrap();
//! let image: Reference = "registry.example:5000/team/app:v1".parse().unwrap();
//! // client.get_manifest(&image).await? and friends talk to the registry.
//! assert!(!format!("{client:?}").contains("s3cret"));
//! # let _ = image;
//! ```
#![forbid(unsafe_code)]

mod auth;
pub mod challenge;
pub mod config;
pub mod credentials;
mod download;
pub mod endpoint;
pub mod error;
mod listing;
pub mod manifest;
pub mod retry;
mod transport;
pub mod upload;

pub use auth::{pull_scope, push_scope};
pub use config::ClientConfig;
pub use credentials::{Credential, CredentialStore};
pub use error::{ErrorDetail, RegistryError};
pub use listing::referrers_tag;
pub use manifest::{Manifest, ManifestHead, manifest_accept};
pub use retry::RetryPolicy;
pub use transport::Client;
pub use upload::{BlobSource, PushOutcome};
