//! Manifests and indexes: fetched and pushed as exact bytes with a verified digest.

use bytes::Bytes;
use inlay_core::{Descriptor, Digest, Platform, Reference, media_types};
use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap};
use serde::Deserialize;

use crate::auth::{pull_scope, push_scope};
use crate::endpoint::{Endpoint, pull_endpoints, registry_endpoint};
use crate::error::{RegistryError, Result, redact_url};
use crate::transport::{Call, Client};

/// The header registries announce content digests in.
pub const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

/// The media type of an OCI artifact manifest (image-spec 1.1 release candidates).
const OCI_ARTIFACT_MANIFEST: &str = "application/vnd.oci.artifact.manifest.v1+json";

/// Everything a manifest GET accepts: OCI and Docker, single manifests and indexes/lists.
pub fn manifest_accept() -> String {
    [
        media_types::OCI_INDEX,
        media_types::OCI_MANIFEST,
        media_types::DOCKER_MANIFEST_LIST,
        media_types::DOCKER_MANIFEST,
        OCI_ARTIFACT_MANIFEST,
    ]
    .join(", ")
}

/// A manifest or index exactly as the registry served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The bytes, never re-serialised: they are what the digest covers.
    pub bytes: Bytes,
    /// The digest of `bytes` (verified).
    pub digest: Digest,
    /// The media type from `Content-Type`, or the document's own `mediaType`.
    pub media_type: String,
}

impl Manifest {
    /// Whether this is an index or manifest list.
    pub fn is_index(&self) -> bool {
        media_types::is_index(&self.media_type)
    }

    /// A descriptor of this manifest.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.media_type.clone(),
            self.digest.clone(),
            i64::try_from(self.bytes.len()).unwrap_or(i64::MAX),
        )
    }
}

/// What a manifest HEAD tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    /// The manifest's digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
}

#[derive(Deserialize)]
struct MediaTypeOnly {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
}

#[derive(Deserialize)]
struct IndexManifests {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// The descriptors listed in an index's `manifests`.
pub fn index_manifests(index: &[u8]) -> Result<Vec<Descriptor>, serde_json::Error> {
    serde_json::from_slice::<IndexManifests>(index).map(|i| i.manifests)
}

fn content_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let base = v.split(';').next().unwrap_or(v).trim();
    (!base.is_empty()).then(|| base.to_owned())
}

fn announced_digest(headers: &HeaderMap) -> Option<Digest> {
    headers
        .get(DOCKER_CONTENT_DIGEST)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Checks `bytes` against the digest the reference pins or the registry announced, and returns
/// the manifest's digest.
fn verify_manifest(
    url: &str,
    bytes: &[u8],
    pinned: Option<&Digest>,
    announced: Option<Digest>,
) -> Result<Digest> {
    let check = |expected: &Digest| -> Result<Digest> {
        let mut h = expected.hasher();
        h.update(bytes);
        let actual = h.finish();
        if &actual == expected {
            Ok(actual)
        } else {
            Err(RegistryError::DigestMismatch {
                url: url.to_owned(),
                expected: expected.clone(),
                actual,
            })
        }
    };
    if let Some(pinned) = pinned {
        check(pinned)?;
    }
    if let Some(announced) = &announced {
        check(announced)?;
    }
    Ok(pinned
        .cloned()
        .or(announced)
        .unwrap_or_else(|| Digest::sha256_of(bytes)))
}

impl Client {
    /// Tries `op` on each pull endpoint (mirrors first), returning the first success or the last
    /// error (a 404 from the registry itself wins over mirror errors).
    pub(crate) async fn on_pull_endpoints<T, F, Fut>(&self, registry: &str, op: F) -> Result<T>
    where
        F: Fn(Endpoint) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let endpoints = pull_endpoints(&self.inner.config, registry)?;
        let mut last = None;
        for endpoint in endpoints {
            let mirror = endpoint.mirror;
            let base = redact_url(&endpoint.base);
            match op(endpoint).await {
                Ok(v) => return Ok(v),
                Err(e) if mirror => {
                    tracing::debug!(mirror = %base, error = %e, "mirror failed, trying the next endpoint");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| RegistryError::InvalidUrl {
            input: registry.to_owned(),
        }))
    }

    /// Fetches the manifest or index `reference` names, verifying its digest against the
    /// reference's digest and the `Docker-Content-Digest` header, and refusing more than
    /// [`crate::ClientConfig::max_manifest_size`] bytes.
    pub async fn get_manifest(&self, reference: &Reference) -> Result<Manifest> {
        self.on_pull_endpoints(reference.registry(), |endpoint| async move {
            self.get_manifest_at(&endpoint, reference).await
        })
        .await
    }

    async fn get_manifest_at(
        &self,
        endpoint: &Endpoint,
        reference: &Reference,
    ) -> Result<Manifest> {
        let path = format!(
            "/v2/{}/manifests/{}",
            reference.repository(),
            reference.tag_or_digest()
        );
        let call = Call::new(
            endpoint,
            Method::GET,
            endpoint.url(&path)?,
            vec![pull_scope(reference.repository())],
        )
        .header(ACCEPT, &manifest_accept());
        let small = self
            .fetch_small(&call, &[200], self.inner.config.max_manifest_size)
            .await?;
        let url = redact_url(&small.url);
        let headers = small.headers;
        let bytes = small.body;
        let digest = verify_manifest(&url, &bytes, reference.digest(), announced_digest(&headers))?;
        let media_type = content_type(&headers)
            .filter(|t| t != "application/json" && t != "text/plain")
            .or_else(|| {
                serde_json::from_slice::<MediaTypeOnly>(&bytes)
                    .ok()
                    .and_then(|m| m.media_type)
            })
            .ok_or_else(|| RegistryError::Protocol {
                url: url.clone(),
                reason: "manifest has no media type".to_owned(),
            })?;
        tracing::debug!(reference = %reference, digest = %digest, media_type = %media_type, "fetched manifest");
        Ok(Manifest {
            bytes,
            digest,
            media_type,
        })
    }

    /// Asks whether `reference` exists, without fetching it; `None` on 404.
    ///
    /// Registries that omit `Docker-Content-Digest` on HEAD are answered with a GET.
    pub async fn head_manifest(&self, reference: &Reference) -> Result<Option<ManifestHead>> {
        self.on_pull_endpoints(reference.registry(), |endpoint| async move {
            self.head_manifest_at(&endpoint, reference).await
        })
        .await
    }

    async fn head_manifest_at(
        &self,
        endpoint: &Endpoint,
        reference: &Reference,
    ) -> Result<Option<ManifestHead>> {
        let path = format!(
            "/v2/{}/manifests/{}",
            reference.repository(),
            reference.tag_or_digest()
        );
        let call = Call::new(
            endpoint,
            Method::HEAD,
            endpoint.url(&path)?,
            vec![pull_scope(reference.repository())],
        )
        .header(ACCEPT, &manifest_accept());
        let response = self.send(&call).await?;
        if response.status().as_u16() == 404 {
            return Ok(None);
        }
        let response = Client::expect(&call.method, response, &[200]).await?;
        let headers = response.headers();
        let size = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if let (Some(digest), Some(media_type), Some(size)) =
            (announced_digest(headers), content_type(headers), size)
        {
            if let Some(pinned) = reference.digest().filter(|p| **p != digest) {
                return Err(RegistryError::DigestMismatch {
                    url: redact_url(response.url()),
                    expected: pinned.clone(),
                    actual: digest,
                });
            }
            return Ok(Some(ManifestHead {
                digest,
                media_type,
                size,
            }));
        }
        let m = self.get_manifest_at(endpoint, reference).await?;
        Ok(Some(ManifestHead {
            size: m.bytes.len() as u64,
            digest: m.digest,
            media_type: m.media_type,
        }))
    }

    /// Fetches `reference` and, when it is an index, the manifest in it for `platform` (the
    /// first entry whose platform satisfies the wanted one, as containerd's matcher picks).
    pub async fn get_manifest_for_platform(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<Manifest> {
        let top = self.get_manifest(reference).await?;
        if !top.is_index() {
            return Ok(top);
        }
        let url = reference.to_string();
        let entries = index_manifests(&top.bytes).map_err(|e| RegistryError::Protocol {
            url: url.clone(),
            reason: format!("index does not parse: {e}"),
        })?;
        let chosen = entries
            .iter()
            .find(|d| d.platform.as_ref().is_some_and(|p| p.satisfies(platform)))
            .ok_or_else(|| RegistryError::NoMatchingPlatform {
                reference: url,
                platform: platform.to_string(),
            })?;
        self.get_manifest(&reference.with_digest(chosen.digest.clone()))
            .await
    }

    /// Pushes `bytes` as a manifest of `media_type` under `reference` (its tag, or its digest)
    /// and returns the digest of `bytes`, checked against what the registry announces.
    pub async fn put_manifest(
        &self,
        reference: &Reference,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest> {
        let endpoint = registry_endpoint(&self.inner.config, reference.registry())?;
        let digest = Digest::sha256_of(&bytes);
        if let Some(pinned) = reference.digest() {
            verify_manifest(&reference.to_string(), &bytes, Some(pinned), None)?;
        }
        let path = format!(
            "/v2/{}/manifests/{}",
            reference.repository(),
            reference.tag_or_digest()
        );
        let call = Call::new(
            &endpoint,
            Method::PUT,
            endpoint.url(&path)?,
            vec![push_scope(reference.repository())],
        )
        .header(CONTENT_TYPE, media_type)
        .body(bytes);
        let response = self.send(&call).await?;
        let response = Client::expect(&call.method, response, &[200, 201]).await?;
        if let Some(announced) = announced_digest(response.headers()) {
            if announced.algorithm() == digest.algorithm() && announced != digest {
                return Err(RegistryError::DigestMismatch {
                    url: redact_url(response.url()),
                    expected: digest,
                    actual: announced,
                });
            }
        }
        tracing::debug!(reference = %reference, digest = %digest, "pushed manifest");
        Ok(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_uses_pinned_and_announced() {
        let bytes = b"{}";
        let good = Digest::sha256_of(bytes);
        let bad = Digest::sha256_of(b"other");
        assert_eq!(verify_manifest("u", bytes, None, None).unwrap(), good);
        assert_eq!(
            verify_manifest("u", bytes, Some(&good), Some(good.clone())).unwrap(),
            good
        );
        assert!(matches!(
            verify_manifest("u", bytes, None, Some(bad.clone())),
            Err(RegistryError::DigestMismatch { .. })
        ));
        assert!(verify_manifest("u", bytes, Some(&bad), None).is_err());
    }

    #[test]
    fn accept_lists_every_family() {
        let a = manifest_accept();
        for t in [
            media_types::OCI_INDEX,
            media_types::OCI_MANIFEST,
            media_types::DOCKER_MANIFEST_LIST,
            media_types::DOCKER_MANIFEST,
        ] {
            assert!(a.contains(t));
        }
    }
}
