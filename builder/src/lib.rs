//! The inlay solver and local store.
//!
//! This crate will own the build itself: walking the build graph from the target, asking the local
//! and imported caches, running misses (RUN in an OCI runtime such as `runc` over an overlayfs
//! snapshot, file operations in-process), turning snapshots into reproducible layers, and the
//! content-addressed local store with atomic writes and locking.
//!
//! It deliberately does not print anything: it emits typed progress events that the CLI renders.
//!
//! Status: not implemented yet; see the builder issue.

pub mod extract;
pub mod layer;
pub mod runtime;
pub mod snapshot;
pub mod store;
