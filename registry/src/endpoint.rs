//! From a registry name to the base URLs requests go to.
//!
//! Docker's rules: `docker.io` is served by `registry-1.docker.io`; a name is `host[:port]`;
//! https by default; plain http for `localhost`, `127.0.0.0/8`, `[::1]` and the registries
//! configured as insecure. Pulls try the configured mirrors first.

use std::net::{IpAddr, Ipv6Addr};

use url::Url;

use crate::config::ClientConfig;
use crate::error::{RegistryError, Result};

/// The host Docker Hub's registry API is served from.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

/// One place a registry's API can be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `scheme://host[:port]/`, where `/v2/` lives.
    pub base: Url,
    /// The name credentials are looked up under (the registry's, or the mirror's host).
    pub credential_key: String,
    /// Whether this is a mirror rather than the registry itself.
    pub mirror: bool,
}

impl Endpoint {
    /// The URL of `path` (which starts with `/v2/`) on this endpoint.
    pub fn url(&self, path: &str) -> Result<Url> {
        self.base.join(path).map_err(|_| RegistryError::InvalidUrl {
            input: path.to_owned(),
        })
    }

    /// `scheme://host:port` of this endpoint, to decide where credentials may go.
    pub fn origin(&self) -> url::Origin {
        self.base.origin()
    }
}

/// Whether `host` (`name[:port]`, `[v6]:port`) is a loopback address or `localhost`.
pub fn is_loopback(host: &str) -> bool {
    let name = strip_port(host);
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => v6 == Ipv6Addr::LOCALHOST,
        Err(_) => false,
    }
}

fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // `[v6]` or `[v6]:port`
        return match rest.find(']') {
            Some(end) => &host[..end + 2],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    }
}

fn base_url(scheme: &str, host: &str) -> Result<Url> {
    Url::parse(&format!("{scheme}://{host}/")).map_err(|_| RegistryError::InvalidUrl {
        input: host.to_owned(),
    })
}

/// Whether `host` is reached over plain http under `config`.
pub fn uses_http(config: &ClientConfig, host: &str) -> bool {
    is_loopback(host) || config.insecure.iter().any(|h| h.eq_ignore_ascii_case(host))
}

/// The endpoint of the registry `registry` itself (what pushes use).
pub fn registry_endpoint(config: &ClientConfig, registry: &str) -> Result<Endpoint> {
    let host = if registry == inlay_core::reference::DOCKER_HUB {
        DOCKER_HUB_API_HOST
    } else {
        registry
    };
    let scheme = if uses_http(config, registry) || uses_http(config, host) {
        "http"
    } else {
        "https"
    };
    Ok(Endpoint {
        base: base_url(scheme, host)?,
        credential_key: registry.to_owned(),
        mirror: false,
    })
}

/// The endpoints a pull from `registry` tries, in order: its mirrors, then itself.
pub fn pull_endpoints(config: &ClientConfig, registry: &str) -> Result<Vec<Endpoint>> {
    let mut out = Vec::new();
    for mirror in config.mirrors.get(registry).into_iter().flatten() {
        let base = if mirror.starts_with("http://") || mirror.starts_with("https://") {
            let mut u = Url::parse(mirror).map_err(|_| RegistryError::InvalidUrl {
                input: mirror.clone(),
            })?;
            u.set_path("/");
            u
        } else {
            let scheme = if uses_http(config, mirror) {
                "http"
            } else {
                "https"
            };
            base_url(scheme, mirror)?
        };
        let credential_key = base
            .host_str()
            .map(|h| match base.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_owned(),
            })
            .unwrap_or_default();
        out.push(Endpoint {
            base,
            credential_key,
            mirror: true,
        });
    }
    out.push(registry_endpoint(config, registry)?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn host_parsing_never_panics(s in ".*") {
            let _ = is_loopback(&s);
            let _ = registry_endpoint(&ClientConfig::default(), &s);
        }
    }

    #[test]
    fn loopback_hosts() {
        for h in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:1",
            "127.8.9.1",
            "[::1]:5000",
            "[::1]",
        ] {
            assert!(is_loopback(h), "{h}");
        }
        for h in [
            "example.com",
            "128.0.0.1:5000",
            "[::2]:1",
            "localhost.example.com",
            "10.0.0.1",
        ] {
            assert!(!is_loopback(h), "{h}");
        }
    }

    #[test]
    fn schemes_and_docker_hub() {
        let mut c = ClientConfig::default();
        c.insecure.push("lan:5000".into());
        assert_eq!(
            registry_endpoint(&c, "docker.io").unwrap().base.as_str(),
            "https://registry-1.docker.io/"
        );
        assert_eq!(
            registry_endpoint(&c, "localhost:5000")
                .unwrap()
                .base
                .as_str(),
            "http://localhost:5000/"
        );
        assert_eq!(
            registry_endpoint(&c, "lan:5000").unwrap().base.as_str(),
            "http://lan:5000/"
        );
        assert_eq!(
            registry_endpoint(&c, "ghcr.io").unwrap().base.as_str(),
            "https://ghcr.io/"
        );
        assert_eq!(
            registry_endpoint(&c, "[::1]:5000").unwrap().base.as_str(),
            "http://[::1]:5000/"
        );
    }

    #[test]
    fn mirrors_come_first_for_pulls() {
        let mut c = ClientConfig::default();
        c.mirrors.insert(
            "docker.io".into(),
            vec![
                "mirror.example".into(),
                "http://10.0.0.1:5000/ignored".into(),
            ],
        );
        let eps = pull_endpoints(&c, "docker.io").unwrap();
        let bases: Vec<&str> = eps.iter().map(|e| e.base.as_str()).collect();
        assert_eq!(
            bases,
            vec![
                "https://mirror.example/",
                "http://10.0.0.1:5000/",
                "https://registry-1.docker.io/"
            ]
        );
        assert!(eps[0].mirror && !eps[2].mirror);
        assert_eq!(eps[1].credential_key, "10.0.0.1:5000");
        assert_eq!(eps[2].credential_key, "docker.io");
        assert_eq!(pull_endpoints(&c, "ghcr.io").unwrap().len(), 1);
    }
}
