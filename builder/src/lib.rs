//! The inlay solver and local store: executes a build graph ([`inlay_core::op::Graph`]) into
//! layers and assembles the image.
//!
//! * [`solver`]: walks the graph from a target, runs independent vertices in parallel, forms
//!   BuildKit's keys step by step and asks a cache (the store's local cache index) before running
//!   a step; execs run in an OCI runtime over overlay snapshots, file ops in-process, merges
//!   concatenate layer chains; base-image layers are pulled only when a step needs their files;
//! * [`source`]: images through the registry client (manifest and config at resolve time, blobs
//!   on demand), the local build context staged with include paths and exclusions;
//! * [`fileop`]: COPY/ADD/WORKDIR/heredoc semantics of BuildKit's file backend and fsutil copy;
//! * [`image`]: the final config (sorted top-level keys, history, `SOURCE_DATE_EPOCH`) and
//!   manifest from a result's layers;
//! * [`progress`]: typed progress events for the CLI to render;
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
//! * [`runtime`]: running a step's command in `runc`/`crun` from a generated OCI bundle;
//! * [`build`]: `inlay build` end to end: plan, `--cache-from` import (lazy: imported hits are
//!   layer descriptors), solve, inline cache export for every step of the final chain, the
//!   stages cache artifact, and the outputs (push, OCI/docker archives, local directory).
//!
//! It deliberately does not print anything (it emits `tracing` events and typed progress; the CLI
//! renders), does not speak the registry protocol itself (it drives `inlay-registry` for base
//! images), does not lower Dockerfiles (the frontend does), and needs root for overlayfs, device
//! nodes, ownership and the OCI runtime; without root, layers, extraction, file ops (on copied
//! snapshots) and the store still work.
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

pub mod build;
pub mod context;
pub mod extract;
pub mod fileop;
pub mod image;
pub mod layer;
pub mod plan;
pub mod progress;
pub mod runtime;
pub mod snapshot;
pub mod solver;
pub mod source;
pub mod store;
