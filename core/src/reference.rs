//! Image references (`[registry/]repository[:tag][@digest]`), parsed and normalised as Docker
//! does (`busybox` → `docker.io/library/busybox:latest`).

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// The registry name Docker uses for Docker Hub.
pub const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_LEGACY: &str = "index.docker.io";
const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A normalised image reference.
///
/// Parsing fills in Docker's defaults: the `docker.io` registry, the `library/` namespace for
/// official images, and the `latest` tag when neither tag nor digest is given.
///
/// ```
/// use inlay_core::Reference;
///
/// let r: Reference = "busybox".parse().unwrap();
/// assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
/// let r: Reference = "localhost:5000/team/app:v1".parse().unwrap();
/// assert_eq!((r.registry(), r.repository(), r.tag()), ("localhost:5000", "team/app", Some("v1")));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a reference does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// Empty input.
    #[error("image reference is empty")]
    Empty,
    /// The repository has upper-case letters, which Docker refuses.
    #[error("invalid reference {input:?}: repository name must be lowercase")]
    Uppercase {
        /// The rejected text.
        input: String,
    },
    /// A path component or the registry host has characters Docker does not allow.
    #[error("invalid reference {input:?}: {reason}")]
    InvalidFormat {
        /// The rejected text.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The name is longer than Docker's 255 characters.
    #[error("invalid reference {input:?}: repository name is longer than 255 characters")]
    NameTooLong {
        /// The rejected text.
        input: String,
    },
    /// The digest after `@` is not valid.
    #[error("invalid reference {input:?}: {source}")]
    Digest {
        /// The rejected text.
        input: String,
        /// Why the digest is invalid.
        #[source]
        source: DigestError,
    },
}

impl Reference {
    /// Parses and normalises `input`.
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        let bad = |reason: &str| ReferenceError::InvalidFormat {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => {
                let digest = digest.parse().map_err(|source| ReferenceError::Digest {
                    input: input.to_owned(),
                    source,
                })?;
                (rest, Some(digest))
            }
            None => (input, None),
        };
        // A tag is what follows the last ':' if no '/' follows it (else that ':' is a port).
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(tag) = tag {
            validate_tag(tag).map_err(|reason| bad(&reason))?;
        }
        if name.is_empty() {
            return Err(bad("repository name is empty"));
        }
        let (registry, repository) = split_registry(name);
        if let Some(registry) = registry {
            validate_registry(registry).map_err(|reason| bad(&reason))?;
        }
        if repository.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase {
                input: input.to_owned(),
            });
        }
        validate_repository(repository).map_err(|reason| bad(&reason))?;
        if registry.is_none()
            && repository.len() == 64
            && repository.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(bad(
                "cannot specify 64-byte hexadecimal strings as a repository name",
            ));
        }
        let registry = match registry {
            None | Some(DOCKER_HUB_LEGACY) => DOCKER_HUB.to_owned(),
            Some(r) => r.to_owned(),
        };
        let repository = if registry == DOCKER_HUB && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository.to_owned()
        };
        if registry.len() + 1 + repository.len() > MAX_NAME_LEN {
            return Err(ReferenceError::NameTooLong {
                input: input.to_owned(),
            });
        }
        let tag = match (tag, &digest) {
            (Some(t), _) => Some(t.to_owned()),
            (None, None) => Some("latest".to_owned()),
            (None, Some(_)) => None,
        };
        Ok(Reference {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The registry host, with port if any (`docker.io`, `localhost:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry (`library/busybox`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any (`latest` is filled in when neither tag nor digest was given).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference pins one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What to ask the registry for: the digest when pinned, else the tag.
    pub fn tag_or_digest(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_owned(),
        }
    }

    /// The same repository at another tag (dropping any digest).
    #[must_use]
    pub fn with_tag(&self, tag: &str) -> Reference {
        Reference {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        }
    }

    /// The same repository pinned to `digest` (keeping the tag for display).
    #[must_use]
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The short form Docker prints (`busybox:latest`, `localhost:5000/app:v1`).
    pub fn familiar(&self) -> String {
        let name = if self.registry == DOCKER_HUB {
            self.repository
                .strip_prefix("library/")
                .filter(|r| !r.contains('/'))
                .unwrap_or(&self.repository)
                .to_owned()
        } else {
            self.name()
        };
        suffixed(name, self.tag.as_deref(), self.digest.as_ref())
    }
}

fn suffixed(mut name: String, tag: Option<&str>, digest: Option<&Digest>) -> String {
    if let Some(tag) = tag {
        name.push(':');
        name.push_str(tag);
    }
    if let Some(digest) = digest {
        name.push('@');
        name.push_str(digest.as_str());
    }
    name
}

/// Docker's rule: the first component is a registry if it has a `.` or `:`, or is `localhost`.
fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn validate_tag(tag: &str) -> Result<(), String> {
    let mut bytes = tag.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if first_ok && rest_ok && tag.len() <= MAX_TAG_LEN {
        Ok(())
    } else {
        Err(format!(
            "tag {tag:?} must be 1 to 128 of [A-Za-z0-9_.-] and not start with '.' or '-'"
        ))
    }
}

fn validate_registry(registry: &str) -> Result<(), String> {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        // IPv6 literal: [::1]:5000
        let Some((addr, after)) = rest.split_once(']') else {
            return Err(format!("registry {registry:?} has an unclosed '['"));
        };
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err(format!("registry {registry:?} is not a valid IPv6 address"));
        }
        match after.strip_prefix(':') {
            Some(port) => (None, Some(port)),
            None if after.is_empty() => (None, None),
            None => return Err(format!("registry {registry:?} is malformed")),
        }
    } else {
        match registry.split_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(registry), None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("registry {registry:?} has an invalid port"));
        }
    }
    if let Some(host) = host {
        let label_ok = |l: &str| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if !host.split('.').all(label_ok) {
            return Err(format!("registry host {host:?} is not a valid host name"));
        }
    }
    Ok(())
}

/// Path components: `[a-z0-9]+` joined by `.`, `_`, `__` or runs of `-`.
fn validate_repository(repository: &str) -> Result<(), String> {
    for component in repository.split('/') {
        if !component_ok(component) {
            return Err(format!(
                "repository path component {component:?} must be lower-case letters and digits, \
                 separated by '.', '_', '__' or '-'"
            ));
        }
    }
    Ok(())
}

fn component_ok(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        // A separator run: '.', '_', '__', or one or more '-'.
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<Reference, ReferenceError> {
        Reference::parse(s)
    }
}

impl fmt::Display for Reference {
    /// The fully qualified form: `docker.io/library/busybox:latest[@sha256:...]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&suffixed(
            self.name(),
            self.tag.as_deref(),
            self.digest.as_ref(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    #[test]
    fn normalises_like_docker() {
        let cases = [
            (
                "busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "busybox:1.36",
                "docker.io/library/busybox:1.36",
                "busybox:1.36",
            ),
            ("user/app", "docker.io/user/app:latest", "user/app:latest"),
            (
                "index.docker.io/library/busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "docker.io/busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "localhost/app",
                "localhost/app:latest",
                "localhost/app:latest",
            ),
            (
                "localhost:5000/app:v1",
                "localhost:5000/app:v1",
                "localhost:5000/app:v1",
            ),
            (
                "127.0.0.1:5000/a/b/c:t",
                "127.0.0.1:5000/a/b/c:t",
                "127.0.0.1:5000/a/b/c:t",
            ),
            (
                "ghcr.io/org/img",
                "ghcr.io/org/img:latest",
                "ghcr.io/org/img:latest",
            ),
            (
                "[::1]:5000/app",
                "[::1]:5000/app:latest",
                "[::1]:5000/app:latest",
            ),
            (
                "a__b/c-d/e--f/g.h_i",
                "docker.io/a__b/c-d/e--f/g.h_i:latest",
                "a__b/c-d/e--f/g.h_i:latest",
            ),
        ];
        for (input, full, familiar) in cases {
            let r: Reference = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), full, "{input}");
            assert_eq!(r.familiar(), familiar, "{input}");
            // Normalised forms parse back to themselves.
            assert_eq!(full.parse::<Reference>().unwrap(), r);
        }
    }

    #[test]
    fn digests() {
        let r: Reference = format!("busybox@{D}").parse().unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().unwrap().as_str(), D);
        assert_eq!(r.tag_or_digest(), D);
        assert_eq!(r.to_string(), format!("docker.io/library/busybox@{D}"));
        let r: Reference = format!("localhost:5000/app:v1@{D}").parse().unwrap();
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.tag_or_digest(), D);
        assert_eq!(r.with_tag("v2").to_string(), "localhost:5000/app:v2");
    }

    #[test]
    fn refuses_with_reasons() {
        assert_eq!(Reference::parse(""), Err(ReferenceError::Empty));
        assert!(matches!(
            Reference::parse("Busybox"),
            Err(ReferenceError::Uppercase { .. })
        ));
        assert!(matches!(
            Reference::parse("busybox@sha256:abc"),
            Err(ReferenceError::Digest { .. })
        ));
        for bad in [
            "busybox:",
            "busybox:-x",
            "a//b",
            "-a/b",
            "a-/b",
            "a...b",
            "a/b_-c",
            "localhost:x/app",
            "my_host.com/app",
            "[::1/app",
            &"a".repeat(64).replace('a', "0"),
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad} should be refused");
        }
        let long = format!("x/{}", "a".repeat(260));
        assert!(matches!(
            Reference::parse(&long),
            Err(ReferenceError::NameTooLong { .. })
        ));
        let message = Reference::parse("a//b").unwrap_err().to_string();
        assert!(message.contains("\"a//b\""), "{message}");
    }

    #[test]
    fn uppercase_registry_is_fine() {
        let r: Reference = "Registry.Example.com/app".parse().unwrap();
        assert_eq!(r.registry(), "Registry.Example.com");
    }
}
