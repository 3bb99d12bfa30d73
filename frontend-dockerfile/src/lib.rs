//! Dockerfile and `.dockerignore` parsing with BuildKit's semantics.
//!
//! * [`parser`]: BuildKit's generic AST (one node per instruction with its original text, flags,
//!   arguments, heredocs and source range), parser directives, continuations, heredocs, JSON and
//!   shell forms; [`parser::Dockerfile::dump`] prints BuildKit's conformance dump.
//! * [`instructions`]: the typed instruction model (parsed `--mount` specs, ENV pairs, COPY
//!   sources with heredoc files...), with the instruction and flag checks BuildKit makes.
//! * [`shell`]: shell-word expansion and splitting as BuildKit's lexer does it.
//! * [`stages`]: the stage graph: global ARGs, build args, platform ARGs, stage names and
//!   references, the order stages depend on each other, and the stages a target needs.
//! * [`dockerignore`]: `.dockerignore` reading and matching with Docker's patternmatcher
//!   semantics, and the choice between `.dockerignore` and `<Dockerfile>.dockerignore`.
//! * [`lower`]: the build graph (`inlay_core::op`) BuildKit's Dockerfile frontend emits for a
//!   chosen key profile, given the base images the caller resolved, with the image config and
//!   history it writes.
//!
//! It deliberately does no IO: callers pass bytes and file names in, resolve base images
//! themselves and hash the context paths the lowering names.
//!
//! ```
//! use inlay_frontend_dockerfile::{instructions, parser};
//!
//! let source = b"FROM alpine AS base\nRUN --mount=type=cache,target=/root/.cache echo hi\n";
//! let dockerfile = parser::parse(source, "Dockerfile")?;
//! assert_eq!(dockerfile.dump(), "(from \"alpine\" \"AS\" \"base\")\n(run [\"--mount=type=cache,target=/root/.cache\"] \"echo hi\")\n");
//! let parsed = instructions::parse(&dockerfile)?;
//! assert_eq!(parsed.stages[0].name.as_deref(), Some("base"));
//!
//! let err = parser::parse(b"FROM alpine\nRUNN echo\n", "Dockerfile")
//!     .and_then(|df| instructions::parse(&df).map(|_| ()).map_err(Into::into))
//!     .unwrap_err();
//! assert!(err.to_string().starts_with("Dockerfile:2:1: unknown instruction: RUNN (did you mean RUN?)"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

pub mod dockerignore;
mod error;
mod go_quote;
pub mod instructions;
pub mod lower;
pub mod parser;
pub mod shell;
pub mod stages;
mod suggest;

pub use error::{DockerfileError, ErrorKind};
