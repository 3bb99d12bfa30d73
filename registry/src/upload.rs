//! Blob uploads: existence check, cross-repository mount, monolithic and chunked uploads.
//!
//! Distribution spec, "Pushing blobs": `POST /v2/<name>/blobs/uploads/` opens a session whose
//! `Location` takes either one `PUT ?digest=` with the whole blob (small blobs) or a series of
//! `PATCH` chunks with `Content-Range` and a final empty `PUT ?digest=`. Chunks are at least the
//! registry's `OCI-Chunk-Min-Length`. A chunk that fails after its retries is recovered by asking
//! the session how much it holds (`GET` on the location, `Range: 0-N`) and going on from there.
//! `POST ?mount=<digest>&from=<repo>` answers 201 when the registry linked the blob without any
//! bytes moving, or 202 with an ordinary session when it would not.

use std::path::PathBuf;

use bytes::Bytes;
use futures_util::StreamExt as _;
use inlay_core::{Descriptor, Digest, Reference};
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderName, LOCATION};
use reqwest::{Method, Response};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
use url::Url;

use crate::auth::{pull_scope, push_scope};
use crate::endpoint::{Endpoint, registry_endpoint};
use crate::error::{RegistryError, Result, redact_url};
use crate::transport::{Call, Client};

/// The header in which a registry states the smallest chunk it accepts (distribution spec 1.1).
pub const OCI_CHUNK_MIN_LENGTH: &str = "oci-chunk-min-length";
/// How many times a chunked upload asks the session where it stands after a failure.
const MAX_CHUNK_RECOVERIES: u32 = 5;
/// How many fresh sessions one blob upload may start after the first one failed.
const MAX_SESSION_RESTARTS: u32 = 3;

/// Whether a failed upload session is worth redoing in a new one: broken connections, server
/// trouble, sessions the registry lost track of (distribution answers 404
/// `BLOB_UPLOAD_INVALID` once its `_state` and the stored size disagree, and 416 for a chunk at
/// the wrong offset), and a 400 `DIGEST_INVALID`: the bytes sent are the caller's verified
/// content, so a registry that hashed something else received them damaged on the way.
fn restartable(error: &RegistryError) -> bool {
    match error {
        RegistryError::Transport { .. } => true,
        RegistryError::Status { status: 400, .. } => {
            error.details().iter().any(|d| d.code == "DIGEST_INVALID")
        }
        RegistryError::Status { status, .. } => {
            matches!(status, 404 | 416 | 429) || (500..600).contains(status)
        }
        _ => false,
    }
}

/// Where the bytes of a blob to upload come from.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum BlobSource {
    /// Bytes in memory.
    Bytes(Bytes),
    /// A file, read chunk by chunk (its length must be the descriptor's size).
    File(PathBuf),
}

impl From<Bytes> for BlobSource {
    fn from(b: Bytes) -> BlobSource {
        BlobSource::Bytes(b)
    }
}

impl From<Vec<u8>> for BlobSource {
    fn from(b: Vec<u8>) -> BlobSource {
        BlobSource::Bytes(Bytes::from(b))
    }
}

impl BlobSource {
    /// `len` bytes from `offset`.
    async fn read(&self, offset: u64, len: u64) -> Result<Bytes> {
        match self {
            BlobSource::Bytes(b) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(b.len());
                let end = usize::try_from(offset + len)
                    .unwrap_or(usize::MAX)
                    .min(b.len());
                Ok(b.slice(start..end))
            }
            BlobSource::File(path) => {
                let io = |source| RegistryError::Io {
                    path: path.clone(),
                    source,
                };
                let mut f = tokio::fs::File::open(path).await.map_err(io)?;
                f.seek(std::io::SeekFrom::Start(offset)).await.map_err(io)?;
                let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
                f.take(len).read_to_end(&mut buf).await.map_err(io)?;
                Ok(Bytes::from(buf))
            }
        }
    }
}

/// What pushing a blob took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushOutcome {
    /// The repository had it already; nothing was sent.
    AlreadyPresent,
    /// The registry linked it from another repository; no bytes were sent.
    Mounted,
    /// It was uploaded.
    Uploaded,
}

/// What a mount request answered.
enum MountAnswer {
    Mounted,
    Session(Url, HeaderMap),
}

fn location(response: &Response, base: &Url) -> Result<Url> {
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|l| base.join(l).ok())
        .ok_or_else(|| RegistryError::Protocol {
            url: redact_url(response.url()),
            reason: "upload answer has no usable Location".to_owned(),
        })
}

/// The end offset (inclusive) in a `Range: 0-N` upload-status header.
fn range_end(headers: &HeaderMap) -> Option<u64> {
    let v = headers.get("range")?.to_str().ok()?;
    let v = v.trim().trim_start_matches("bytes=");
    v.split('-').nth(1)?.trim().parse().ok()
}

fn with_digest(url: &Url, digest: &Digest) -> Url {
    let mut u = url.clone();
    u.query_pairs_mut().append_pair("digest", digest.as_str());
    u
}

impl Client {
    /// Pushes one blob into `reference`'s repository unless it is there already, mounting it
    /// from `mount_from` (another repository of the same registry) when given.
    pub async fn push_blob(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        source: BlobSource,
        mount_from: Option<&Reference>,
    ) -> Result<PushOutcome> {
        let endpoint = registry_endpoint(&self.inner.config, reference.registry())?;
        if self
            .blob_exists_at(&endpoint, reference, &descriptor.digest)
            .await?
        {
            tracing::debug!(digest = %descriptor.digest, "blob already present");
            return Ok(PushOutcome::AlreadyPresent);
        }
        let from = mount_from.filter(|f| {
            f.registry() == reference.registry() && f.repository() != reference.repository()
        });
        let (session, headers) = if let Some(from) = from {
            match self
                .mount(&endpoint, reference, from, &descriptor.digest)
                .await?
            {
                MountAnswer::Mounted => {
                    tracing::debug!(digest = %descriptor.digest, from = %from.repository(), "blob mounted");
                    return Ok(PushOutcome::Mounted);
                }
                MountAnswer::Session(url, headers) => (url, headers),
            }
        } else {
            self.start_upload(&endpoint, reference).await?
        };
        self.upload_into(&endpoint, reference, descriptor, &source, session, &headers)
            .await?;
        Ok(PushOutcome::Uploaded)
    }

    /// Uploads a blob without checking for it first or trying to mount it.
    pub async fn upload_blob(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        source: BlobSource,
    ) -> Result<()> {
        let endpoint = registry_endpoint(&self.inner.config, reference.registry())?;
        let (session, headers) = self.start_upload(&endpoint, reference).await?;
        self.upload_into(&endpoint, reference, descriptor, &source, session, &headers)
            .await
    }

    /// Pushes many blobs, [`crate::ClientConfig::concurrency`] at a time; outcomes in order.
    pub async fn push_blobs(
        &self,
        reference: &Reference,
        blobs: Vec<(Descriptor, BlobSource)>,
    ) -> Result<Vec<PushOutcome>> {
        let limit = self.inner.config.concurrency.max(1);
        futures_util::stream::iter(
            blobs
                .into_iter()
                .map(|(d, s)| async move { self.push_blob(reference, &d, s, None).await }),
        )
        .buffered(limit)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
    }

    async fn blob_exists_at(
        &self,
        endpoint: &Endpoint,
        reference: &Reference,
        digest: &Digest,
    ) -> Result<bool> {
        let path = format!("/v2/{}/blobs/{}", reference.repository(), digest);
        let call = Call::new(
            endpoint,
            Method::HEAD,
            endpoint.url(&path)?,
            vec![push_scope(reference.repository())],
        );
        let response = self.send(&call).await?;
        match response.status().as_u16() {
            200 => Ok(true),
            404 => Ok(false),
            _ => Client::expect(&call.method, response, &[200])
                .await
                .map(|_| true),
        }
    }

    async fn mount(
        &self,
        endpoint: &Endpoint,
        reference: &Reference,
        from: &Reference,
        digest: &Digest,
    ) -> Result<MountAnswer> {
        let mut url = endpoint.url(&format!("/v2/{}/blobs/uploads/", reference.repository()))?;
        url.query_pairs_mut()
            .append_pair("mount", digest.as_str())
            .append_pair("from", from.repository());
        let call = Call::new(
            endpoint,
            Method::POST,
            url,
            vec![
                push_scope(reference.repository()),
                pull_scope(from.repository()),
            ],
        )
        .header(CONTENT_LENGTH, "0");
        let response = self.send(&call).await?;
        if response.status().as_u16() == 201 {
            return Ok(MountAnswer::Mounted);
        }
        let response = Client::expect(&call.method, response, &[202]).await?;
        let session = location(&response, &call.url)?;
        Ok(MountAnswer::Session(session, response.headers().clone()))
    }

    async fn start_upload(
        &self,
        endpoint: &Endpoint,
        reference: &Reference,
    ) -> Result<(Url, HeaderMap)> {
        let url = endpoint.url(&format!("/v2/{}/blobs/uploads/", reference.repository()))?;
        let call = Call::new(
            endpoint,
            Method::POST,
            url,
            vec![push_scope(reference.repository())],
        )
        .header(CONTENT_LENGTH, "0");
        let response = self.send(&call).await?;
        let response = Client::expect(&call.method, response, &[202]).await?;
        let session = location(&response, &call.url)?;
        Ok((session, response.headers().clone()))
    }

    async fn upload_into(
        &self,
        endpoint: &Endpoint,
        reference: &Reference,
        descriptor: &Descriptor,
        source: &BlobSource,
        session: Url,
        session_headers: &HeaderMap,
    ) -> Result<()> {
        let size = u64::try_from(descriptor.size).map_err(|_| RegistryError::Protocol {
            url: redact_url(&session),
            reason: format!("blob {} has no known size", descriptor.digest),
        })?;
        let min_chunk = session_headers
            .get(OCI_CHUNK_MIN_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        let chunk = self.inner.config.chunk_size.max(min_chunk).max(1);
        let scopes = vec![push_scope(reference.repository())];
        let mut session = session;
        let mut restarts = 0;
        loop {
            match self
                .upload_session(endpoint, descriptor, source, size, chunk, session, &scopes)
                .await
            {
                Ok(()) => break,
                Err(error) if restarts < MAX_SESSION_RESTARTS && restartable(&error) => {
                    // A PUT whose answer was lost may have completed the upload.
                    if self
                        .blob_exists_at(endpoint, reference, &descriptor.digest)
                        .await?
                    {
                        break;
                    }
                    restarts += 1;
                    tracing::debug!(digest = %descriptor.digest, error = %error, restarts, "upload session failed, starting a new one");
                    session = self.start_upload(endpoint, reference).await?.0;
                }
                Err(error) => return Err(error),
            }
        }
        tracing::debug!(digest = %descriptor.digest, size, "uploaded blob");
        Ok(())
    }

    /// Sends the whole blob through one session and completes it.
    #[allow(clippy::too_many_arguments)]
    async fn upload_session(
        &self,
        endpoint: &Endpoint,
        descriptor: &Descriptor,
        source: &BlobSource,
        size: u64,
        chunk: u64,
        session: Url,
        scopes: &[String],
    ) -> Result<()> {
        let last = if size <= chunk {
            let body = source.read(0, size).await?;
            let call = Call::new(
                endpoint,
                Method::PUT,
                with_digest(&session, &descriptor.digest),
                scopes.to_vec(),
            )
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(body);
            let response = self.send(&call).await?;
            Client::expect(&call.method, response, &[201]).await?
        } else {
            let session = self
                .upload_chunks(endpoint, source, size, chunk, session, scopes)
                .await?;
            let call = Call::new(
                endpoint,
                Method::PUT,
                with_digest(&session, &descriptor.digest),
                scopes.to_vec(),
            )
            .header(CONTENT_LENGTH, "0");
            let response = self.send(&call).await?;
            Client::expect(&call.method, response, &[201]).await?
        };
        if let Some(announced) = last
            .headers()
            .get(crate::manifest::DOCKER_CONTENT_DIGEST)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok())
        {
            if announced != descriptor.digest {
                return Err(RegistryError::DigestMismatch {
                    url: redact_url(last.url()),
                    expected: descriptor.digest.clone(),
                    actual: announced,
                });
            }
        }
        Ok(())
    }

    /// Sends `source` in `PATCH` requests of `chunk` bytes; returns the session URL to finish on.
    async fn upload_chunks(
        &self,
        endpoint: &Endpoint,
        source: &BlobSource,
        size: u64,
        chunk: u64,
        mut session: Url,
        scopes: &[String],
    ) -> Result<Url> {
        let mut offset = 0;
        let mut recoveries = 0;
        let mut chunks = 0u32;
        while offset < size {
            let len = chunk.min(size - offset);
            let body = source.read(offset, len).await?;
            let call = Call::new(endpoint, Method::PATCH, session.clone(), scopes.to_vec())
                .header(CONTENT_TYPE, "application/octet-stream")
                .header(
                    HeaderName::from_static("content-range"),
                    &format!("{}-{}", offset, offset + len - 1),
                )
                .body(body);
            let outcome = match self.send(&call).await {
                Ok(r) => Client::expect(&call.method, r, &[202]).await,
                Err(e) => Err(e),
            };
            match outcome {
                Ok(response) => {
                    session = location(&response, &session)?;
                    offset = range_end(response.headers()).map_or(offset + len, |end| end + 1);
                    chunks += 1;
                }
                Err(error)
                    if recoveries < MAX_CHUNK_RECOVERIES
                        && (error.status() == Some(416)
                            || matches!(error, RegistryError::Transport { .. })) =>
                {
                    recoveries += 1;
                    tracing::debug!(offset, error = %error, "chunk failed, asking the session where it stands");
                    let (at, next) = self.upload_status(endpoint, &session, scopes).await?;
                    session = next;
                    offset = at;
                }
                Err(error) => return Err(error),
            }
        }
        tracing::debug!(chunks, size, "chunked upload sent");
        Ok(session)
    }

    /// How many bytes an upload session holds, and its current location.
    async fn upload_status(
        &self,
        endpoint: &Endpoint,
        session: &Url,
        scopes: &[String],
    ) -> Result<(u64, Url)> {
        let call = Call::new(endpoint, Method::GET, session.clone(), scopes.to_vec());
        let response = self.send(&call).await?;
        let response = Client::expect(&call.method, response, &[204]).await?;
        let at = range_end(response.headers()).map_or(0, |end| end + 1);
        let next = location(&response, session).unwrap_or_else(|_| session.clone());
        Ok((at, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorDetail;

    #[test]
    fn a_digest_the_registry_disputes_restarts_the_session_other_400s_do_not() {
        let status = |status: u16, code: &str| RegistryError::Status {
            method: "PUT".to_owned(),
            url: "http://r/v2/a/blobs/uploads/x".to_owned(),
            status,
            errors: vec![ErrorDetail {
                code: code.to_owned(),
                message: String::new(),
                detail: String::new(),
            }],
            body: String::new(),
        };
        assert!(restartable(&status(400, "DIGEST_INVALID")));
        assert!(!restartable(&status(400, "SIZE_INVALID")));
        assert!(!restartable(&status(400, "NAME_INVALID")));
        assert!(restartable(&status(503, "UNAVAILABLE")));
    }

    #[test]
    fn upload_ranges() {
        let mut h = HeaderMap::new();
        assert_eq!(range_end(&h), None);
        h.insert("range", "0-1023".parse().unwrap());
        assert_eq!(range_end(&h), Some(1023));
        h.insert("range", "bytes=0-9".parse().unwrap());
        assert_eq!(range_end(&h), Some(9));
    }

    #[test]
    fn digest_is_appended_to_session_query() {
        let u = Url::parse("http://h/v2/r/blobs/uploads/x?_state=abc").unwrap();
        let d = Digest::sha256_of(b"");
        let with = with_digest(&u, &d);
        assert_eq!(
            with.query(),
            Some(&*format!("_state=abc&digest=sha256%3A{}", d.hex()))
        );
    }

    #[tokio::test]
    async fn sources_read_ranges() {
        let s = BlobSource::from(b"hello world".to_vec());
        assert_eq!(&s.read(6, 5).await.unwrap()[..], b"world");
        assert_eq!(&s.read(6, 50).await.unwrap()[..], b"world");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b");
        std::fs::write(&p, b"hello world").unwrap();
        let f = BlobSource::File(p);
        assert_eq!(&f.read(0, 5).await.unwrap()[..], b"hello");
    }
}
