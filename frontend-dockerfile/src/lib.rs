//! Dockerfile and `.dockerignore` parsing with BuildKit's semantics.
//!
//! This crate will own the Dockerfile lexer and parser (directives, continuations, heredocs, JSON
//! and shell forms, flags, with source positions for every node), shell-word expansion as
//! BuildKit's lexer does it, ARG/ENV scoping and stages, the `.dockerignore` pattern matcher, and
//! lowering a parsed Dockerfile to `inlay_core`'s build graph given resolved base-image configs.
//!
//! It deliberately does no IO: callers pass the bytes in and resolve base images themselves.
