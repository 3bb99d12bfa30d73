//! The inlay solver and local store.
//!
//! This crate will own the build itself: walking the build graph from the target, asking the local
//! and imported caches, running misses (RUN in an OCI runtime such as `runc` over an overlayfs
//! snapshot, file operations in-process), turning snapshots into reproducible layers, and the
//! content-addressed local store with atomic writes and locking.
//!
//! Today it holds the daemonless engine pieces the solver is built from:
//!
//! * [`context`]: walks a build context and computes BuildKit's content hashes of `COPY`
//!   sources with [`inlay_core::contenthash`];
//! * [`plan`]: lowers a Dockerfile, hashes the context paths it needs and solves the cache
//!   keys BuildKit would use, without running anything;
//! * [`layer`]: reproducible OCI layers (sorted tar, PAX, whiteouts, gzip/zstd) from a tree, an
//!   overlayfs upperdir, or a walk-and-compare diff, with diffID, digest and size in one pass;
//! * [`extract`]: path-safe application of a layer onto a directory;
//! * [`store`]: blobs by digest, snapshots by chainID, cache mounts, prune and verify, safe for
//!   several processes;
//! * [`snapshot`]: writable rootfs from stacked snapshots (overlayfs, or copying);
//! * [`runtime`]: running a step's command in `runc`/`crun` from a generated OCI bundle.
//!
//! It deliberately does not print anything (it emits `tracing` events; the CLI renders), does not
//! talk to registries (the registry crates do), and needs root for overlayfs, device nodes,
//! ownership and the OCI runtime; without root, layers, extraction and the store still work.
//!
//! ```
//! use inlay_builder::extract::{extract, ExtractOptions};
//! use inlay_builder::layer::{write_layer, LayerOptions, LayerSource};
//!
//! let tree = tempfile::tempdir()?;
//! std::fs::write(tree.path().join("hello.txt"), "hello\n")?;
//! let options = LayerOptions { source_date_epoch: Some(0), ..LayerOptions::default() };
//! let (info, blob) = write_layer(LayerSource::Tree(tree.path()), Vec::new(), &options)?;
//! assert_eq!(info.size, blob.len() as u64);
//!
//! let target = tempfile::tempdir()?;
//! let report = extract(blob.as_slice(), target.path(), &ExtractOptions::default())?;
//! assert_eq!(report.diff_id, info.diff_id);
//! assert_eq!(std::fs::read_to_string(target.path().join("hello.txt"))?, "hello\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod context;
pub mod extract;
pub mod layer;
pub mod plan;
pub mod runtime;
pub mod snapshot;
pub mod store;
