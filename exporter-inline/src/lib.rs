//! Writes a build result as an image whose config carries BuildKit's inline cache.
//!
//! This crate will own `--cache-to type=inline`: it takes the layers of a finished build and the
//! cache chain exported by `inlay_core`, patches the image config (top-level keys sorted, the
//! `moby.buildkit.cache.v0` value added), writes a Docker schema 2 or OCI manifest, and pushes the
//! result (HEAD, cross-repository mount or skip before any upload) or writes it as an OCI layout or
//! a docker archive.
//!
//! It deliberately does not compute cache keys or build layers.
//!
//! Status: not implemented yet; see the inline-cache issue.
