//! Test harness for the importer: the real registry, a mock HTTP server and a counting proxy for
//! faults and request counts (all from `inlay-testkit`), and images with inline caches built from
//! the shared BuildKit samples.
// Each test binary includes this module and uses a different part of it.
#![allow(unused_imports, dead_code, clippy::unwrap_used)]

pub mod image;

pub use inlay_testkit::{http, proxy, reference, registry};

use std::path::PathBuf;
use std::time::Duration;

use inlay_registry::{Client, ClientConfig, CredentialStore, RetryPolicy};

/// Client settings for tests: quick backoff so that retries cost milliseconds.
pub fn test_config() -> ClientConfig {
    ClientConfig {
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            max_retry_after: Duration::from_secs(1),
        },
        ..ClientConfig::default()
    }
}

pub fn anonymous_client() -> Client {
    Client::new(test_config(), CredentialStore::empty()).unwrap()
}

/// The `shared/conformance` folder, canonicalised.
pub fn conformance_dir() -> PathBuf {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/conformance");
    std::fs::canonicalize(dir).unwrap_or_else(|e| panic!("conformance data at {dir}: {e}"))
}

/// The bytes of `relative` under `shared/conformance`.
pub fn read_conformance(relative: &str) -> Vec<u8> {
    let path = conformance_dir().join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}
