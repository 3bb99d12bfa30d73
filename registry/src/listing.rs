//! Tag listing (with `Link` pagination) and the referrers API with its tag-schema fallback.

use inlay_core::{Descriptor, Digest, Reference, media_types};
use reqwest::Method;
use reqwest::header::{ACCEPT, LINK};
use serde::Deserialize;

use crate::auth::pull_scope;
use crate::error::{RegistryError, Result, redact_url};
use crate::manifest::index_manifests;
use crate::transport::{Call, Client, read_limited};

/// Pages followed when listing tags, against servers that link in circles.
const MAX_TAG_PAGES: usize = 1000;

#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// The target of a `Link: <url>; rel="next"` header.
fn next_link(value: &str) -> Option<&str> {
    value.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"" || p.trim() == "rel=next");
        is_next.then(|| target.trim().trim_start_matches('<').trim_end_matches('>'))
    })
}

/// The tag under which the referrers tag schema (distribution spec 1.1, "Referrers Tag Schema")
/// keeps the referrers of `digest`: `<alg>-<hex>`, cut to 128 characters.
pub fn referrers_tag(digest: &Digest) -> String {
    let tag = format!("{}-{}", digest.algorithm().name(), digest.hex());
    tag.chars().take(128).collect()
}

impl Client {
    /// Every tag of `reference`'s repository, following `Link` pages.
    pub async fn list_tags(&self, reference: &Reference) -> Result<Vec<String>> {
        self.on_pull_endpoints(reference.registry(), |endpoint| async move {
            let mut url = endpoint.url(&format!("/v2/{}/tags/list", reference.repository()))?;
            let mut tags = Vec::new();
            for _ in 0..MAX_TAG_PAGES {
                let call = Call::new(
                    &endpoint,
                    Method::GET,
                    url.clone(),
                    vec![pull_scope(reference.repository())],
                );
                let small = self
                    .fetch_small(&call, &[200], self.inner.config.max_manifest_size)
                    .await?;
                let next = small
                    .headers
                    .get(LINK)
                    .and_then(|v| v.to_str().ok())
                    .and_then(next_link)
                    .and_then(|l| url.join(l).ok());
                let shown = redact_url(&small.url);
                let body = small.body;
                let page: TagList =
                    serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
                        url: shown,
                        reason: format!("tag list does not parse: {e}"),
                    })?;
                tags.extend(page.tags.unwrap_or_default());
                match next {
                    Some(n) => url = n,
                    None => return Ok(tags),
                }
            }
            Ok(tags)
        })
        .await
    }

    /// The manifests that refer to `digest` (their `subject`), optionally only those of
    /// `artifact_type`.
    ///
    /// Uses `GET /v2/<name>/referrers/<digest>`; a registry without that API (404) is read
    /// through the referrers tag schema instead, where a missing tag means "no referrers".
    pub async fn referrers(
        &self,
        reference: &Reference,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        let filter = |list: Vec<Descriptor>| -> Vec<Descriptor> {
            list.into_iter()
                .filter(|d| artifact_type.is_none_or(|t| d.artifact_type.as_deref() == Some(t)))
                .collect()
        };
        let api = self
            .on_pull_endpoints(reference.registry(), |endpoint| async move {
                let mut url = endpoint.url(&format!(
                    "/v2/{}/referrers/{}",
                    reference.repository(),
                    digest
                ))?;
                if let Some(t) = artifact_type {
                    url.query_pairs_mut().append_pair("artifactType", t);
                }
                let call = Call::new(
                    &endpoint,
                    Method::GET,
                    url,
                    vec![pull_scope(reference.repository())],
                )
                .header(ACCEPT, media_types::OCI_INDEX);
                let response = self.send(&call).await?;
                if response.status().as_u16() == 404 {
                    return Ok(None);
                }
                let response = Client::expect(&call.method, response, &[200]).await?;
                let shown = redact_url(response.url());
                let body =
                    read_limited(response, self.inner.config.max_manifest_size, false).await?;
                index_manifests(&body)
                    .map(Some)
                    .map_err(|e| RegistryError::Protocol {
                        url: shown,
                        reason: format!("referrers index does not parse: {e}"),
                    })
            })
            .await?;
        if let Some(list) = api {
            return Ok(filter(list));
        }
        tracing::debug!(digest = %digest, "no referrers API, reading the referrers tag");
        let tagged = reference.with_tag(&referrers_tag(digest));
        match self.get_manifest(&tagged).await {
            Ok(index) if index.is_index() => {
                let list = index_manifests(&index.bytes).map_err(|e| RegistryError::Protocol {
                    url: tagged.to_string(),
                    reason: format!("referrers index does not parse: {e}"),
                })?;
                Ok(filter(list))
            }
            Ok(_) => Ok(Vec::new()),
            Err(e) if e.is_not_found() => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn link_parsing_never_panics(s in ".*") {
            let _ = next_link(&s);
        }
    }

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link(r#"</v2/r/tags/list?last=b&n=2>; rel="next""#),
            Some("/v2/r/tags/list?last=b&n=2")
        );
        assert_eq!(next_link(r#"<a>; rel="prev", <b>; rel="next""#), Some("b"));
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn referrers_tags() {
        let d = Digest::sha256_of(b"x");
        assert_eq!(referrers_tag(&d), format!("sha256-{}", d.hex()));
    }
}
