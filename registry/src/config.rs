//! How the client is set up: insecure registries, mirrors, extra CAs, limits and retries.
//!
//! The same settings can be read from a JSON file (see [`ClientConfig::from_file`]); the file
//! named by [`ENV_REGISTRY_CONFIG`] is the default one.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{RegistryError, Result};
use crate::retry::RetryPolicy;

/// Path of the registry client's JSON config file.
pub const ENV_REGISTRY_CONFIG: &str = "INLAY_REGISTRY_CONFIG";

/// A PEM bundle of trusted roots, read instead of the system's usual bundle (as `OpenSSL` does).
pub const ENV_SSL_CERT_FILE: &str = "SSL_CERT_FILE";

/// Where Linux distributions keep the system's trusted roots (Debian/Ubuntu, Fedora/RHEL,
/// Alpine/macOS-style), tried in order; the first that exists is read.
pub const SYSTEM_ROOT_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// Manifests larger than this are refused unless configured otherwise (hostile servers could
/// otherwise make the client buffer anything).
pub const DEFAULT_MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;

/// Blobs up to this size are uploaded in one request; larger ones in chunks of this size.
pub const DEFAULT_CHUNK_SIZE: u64 = 16 * 1024 * 1024;

/// Settings of a [`crate::Client`].
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Registries (`host[:port]`) reached over plain http. Loopback hosts always are.
    pub insecure: Vec<String>,
    /// Mirrors tried in order before the registry itself for pulls, keyed by registry name
    /// (`docker.io`). An entry is `host[:port]` or a full `http(s)://host[:port]` URL.
    pub mirrors: BTreeMap<String, Vec<String>>,
    /// PEM files with extra root certificates trusted for https, besides the webpki roots.
    pub ca_files: Vec<PathBuf>,
    /// Fixed addresses for host names, bypassing DNS (like curl's `--resolve`): air-gapped
    /// set-ups, split-horizon names, tests. The port still comes from the registry name.
    pub resolve: BTreeMap<String, IpAddr>,
    /// Whether the system's root bundle (`$SSL_CERT_FILE`, else the first of
    /// [`SYSTEM_ROOT_BUNDLES`]) is trusted as well as the built-in webpki roots, so that
    /// registries behind a corporate CA installed on the machine work.
    pub system_roots: bool,
    /// The largest manifest (or other small document) read, in bytes.
    pub max_manifest_size: u64,
    /// Blobs up to this size go in one PUT; larger ones in PATCH chunks of this size (raised to
    /// the registry's `OCI-Chunk-Min-Length` when it asks for more).
    pub chunk_size: u64,
    /// How many blobs [`crate::Client::push_blobs`] and [`crate::Client::pull_blobs`] move at once.
    pub concurrency: usize,
    /// Retry and backoff.
    pub retry: RetryPolicy,
    /// The `User-Agent` sent.
    pub user_agent: String,
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            insecure: Vec::new(),
            mirrors: BTreeMap::new(),
            ca_files: Vec::new(),
            system_roots: true,
            resolve: BTreeMap::new(),
            max_manifest_size: DEFAULT_MAX_MANIFEST_SIZE,
            chunk_size: DEFAULT_CHUNK_SIZE,
            concurrency: 8,
            retry: RetryPolicy::default(),
            user_agent: format!("inlay/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFileJson {
    #[serde(default)]
    insecure: Vec<String>,
    #[serde(default)]
    mirrors: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    ca_files: Vec<PathBuf>,
    #[serde(default)]
    system_roots: Option<bool>,
    #[serde(default)]
    resolve: BTreeMap<String, IpAddr>,
    #[serde(default)]
    max_manifest_size: Option<u64>,
    #[serde(default)]
    chunk_size: Option<u64>,
    #[serde(default)]
    concurrency: Option<usize>,
    #[serde(default)]
    max_attempts: Option<u32>,
}

impl ClientConfig {
    /// Reads a JSON config file on top of the defaults:
    ///
    /// ```json
    /// { "insecure": ["registry.lan:5000"],
    ///   "mirrors": { "docker.io": ["mirror.gcr.io"] },
    ///   "ca_files": ["/etc/inlay/ca.pem"], "system_roots": true,
    ///   "resolve": { "registry.lan": "10.0.0.5" },
    ///   "max_manifest_size": 4194304, "chunk_size": 16777216,
    ///   "concurrency": 8, "max_attempts": 6 }
    /// ```
    pub fn from_file(path: &Path) -> Result<ClientConfig> {
        let bytes = std::fs::read(path).map_err(|source| RegistryError::Io {
            path: path.to_owned(),
            source,
        })?;
        ClientConfig::from_json(path, &bytes)
    }

    /// The system root bundle to read, if any: `$SSL_CERT_FILE`, else the first existing
    /// [`SYSTEM_ROOT_BUNDLES`] entry.
    pub fn system_root_bundle() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os(ENV_SSL_CERT_FILE) {
            return Some(PathBuf::from(p));
        }
        SYSTEM_ROOT_BUNDLES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
    }

    /// The file named by `$INLAY_REGISTRY_CONFIG`, or the defaults when it is not set.
    pub fn from_env() -> Result<ClientConfig> {
        match std::env::var_os(ENV_REGISTRY_CONFIG) {
            Some(p) => ClientConfig::from_file(Path::new(&p)),
            None => Ok(ClientConfig::default()),
        }
    }

    fn from_json(path: &Path, bytes: &[u8]) -> Result<ClientConfig> {
        let json: ConfigFileJson =
            serde_json::from_slice(bytes).map_err(|e| RegistryError::ConfigFile {
                path: path.to_owned(),
                reason: e.to_string(),
            })?;
        let mut config = ClientConfig {
            insecure: json.insecure,
            mirrors: json.mirrors,
            ca_files: json.ca_files,
            resolve: json.resolve,
            ..ClientConfig::default()
        };
        if let Some(v) = json.system_roots {
            config.system_roots = v;
        }
        if let Some(v) = json.max_manifest_size {
            config.max_manifest_size = v;
        }
        if let Some(v) = json.chunk_size {
            config.chunk_size = v.max(1);
        }
        if let Some(v) = json.concurrency {
            config.concurrency = v.max(1);
        }
        if let Some(v) = json.max_attempts {
            config.retry.max_attempts = v.max(1);
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_overrides_defaults() {
        let c = ClientConfig::from_json(
            Path::new("x.json"),
            br#"{"insecure":["r:5000"],"mirrors":{"docker.io":["m:1"]},"chunk_size":0,"max_attempts":2}"#,
        )
        .unwrap();
        assert_eq!(c.insecure, vec!["r:5000"]);
        assert_eq!(c.mirrors["docker.io"], vec!["m:1"]);
        assert_eq!(c.chunk_size, 1);
        assert_eq!(c.retry.max_attempts, 2);
        assert_eq!(c.max_manifest_size, DEFAULT_MAX_MANIFEST_SIZE);
        let err = ClientConfig::from_json(Path::new("x.json"), br#"{"insecur":[]}"#).unwrap_err();
        assert!(err.to_string().contains("x.json"), "{err}");
    }
}
