//! An OCI distribution client for inlay.
//!
//! This crate will own talking to registries: reference to endpoint (docker.io rules, plain http
//! for loopback and insecure registries), auth (anonymous, bearer token challenges, basic, docker
//! `config.json` and credential helpers), manifests and blobs with digest verification, chunked
//! uploads, cross-repository mounts, and retries with backoff.
//!
//! It deliberately knows nothing about caches or builds.
