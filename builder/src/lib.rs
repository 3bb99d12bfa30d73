//! The inlay solver and local store.
//!
//! This crate will own the build itself: walking the build graph from the target, asking the local
//! and imported caches, running misses (RUN in an OCI runtime such as `runc` over an overlayfs
//! snapshot, file operations in-process), turning snapshots into reproducible layers, and the
//! content-addressed local store with atomic writes and locking.
//!
//! It deliberately does not print anything: it emits typed progress events that the CLI renders.
//!
//! Status: the build-context reader ([`context`]) walks a directory and computes BuildKit's
//! content hashes of `COPY` sources with [`inlay_core::contenthash`]; the key planner
//! ([`plan`]) lowers a Dockerfile, hashes the context paths it needs and solves the cache keys
//! BuildKit would use, without running anything.
//!
//! ```
//! use inlay_builder::context::{ContextOptions, hash_directory};
//! use inlay_core::contenthash::{Profile, SourceKind, TreeOptions};
//!
//! let dir = std::env::temp_dir().join(format!("inlay-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! std::fs::write(dir.join("a.txt"), b"a").unwrap();
//! let options = ContextOptions::new(TreeOptions::new(Profile::BuildkitV08, SourceKind::LocalContext));
//! let tree = hash_directory(&dir, &options).unwrap();
//! assert!(tree.checksum("/a.txt", true).is_ok());
//! std::fs::remove_dir_all(&dir).unwrap();
//! ```

pub mod context;
pub mod plan;
