//! Reads BuildKit caches from an OCI registry into inlay's cache store.
//!
//! This crate will own `--cache-from type=registry,ref=REF`: it resolves the reference, decides
//! between an inline cache (the `moby.buildkit.cache.v0` key of each platform's image config) and a
//! BuildKit registry cache (an index or image manifest whose config is
//! `application/vnd.buildkit.cacheconfig.v0`), walks every platform manifest, and reattaches the
//! records to lazy layer descriptors (diffIDs, history times) so that a cache hit downloads nothing.
//!
//! It deliberately does not match keys (that is `inlay_core`'s pure matcher) nor pull layers (the
//! builder does that when a later miss needs a filesystem).
//!
//! Status: not implemented yet; see the inline-cache issue.
