//! Blob HEAD and download: streamed, digest-verified, resumed by `Range` after a broken transfer.

use bytes::Bytes;
use futures_util::StreamExt as _;
use inlay_core::{Descriptor, Digest, Hasher, Reference};
use reqwest::Method;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use tokio::io::{AsyncWrite, AsyncWriteExt as _};

use crate::auth::pull_scope;
use crate::endpoint::Endpoint;
use crate::error::{RegistryError, Result, redact_url};
use crate::transport::{Call, Client};

/// The start offset of a `Content-Range: bytes START-END/TOTAL` value.
fn content_range_start(value: &str) -> Option<u64> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    rest.split('-').next()?.trim().parse().ok()
}

/// How many leading bytes of `response` were already written: none for a `206` that starts
/// where asked, all of them when a server ignored `Range` and sent the whole blob again.
fn bytes_to_skip(response: &reqwest::Response, written: u64) -> Result<u64> {
    if written == 0 {
        return Ok(0);
    }
    if response.status().as_u16() != 206 {
        return Ok(written);
    }
    let start = response
        .headers()
        .get(CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(content_range_start);
    if start == Some(written) {
        Ok(0)
    } else {
        Err(RegistryError::Protocol {
            url: redact_url(response.url()),
            reason: format!("asked for bytes from {written}, got a range starting at {start:?}"),
        })
    }
}

/// A download under way: what was written and hashed so far.
struct Progress<'a> {
    digest: &'a Digest,
    hasher: Hasher,
    written: u64,
    expected_size: Option<u64>,
}

impl Progress<'_> {
    /// Copies the body into `sink` after skipping `skip` bytes; returns the error that broke the
    /// transfer, if one did (the caller resumes).
    async fn copy_body<W>(
        &mut self,
        response: reqwest::Response,
        mut skip: u64,
        sink: &mut W,
        url: &str,
    ) -> Result<Option<reqwest::Error>>
    where
        W: AsyncWrite + Unpin + Send,
    {
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let mut chunk = match chunk {
                Ok(c) => c,
                Err(e) => return Ok(Some(e)),
            };
            if skip > 0 {
                let n = skip.min(chunk.len() as u64);
                skip -= n;
                chunk = chunk.slice(n as usize..);
            }
            let after = self.written + chunk.len() as u64;
            if let Some(expected) = self.expected_size.filter(|size| after > *size) {
                // A hostile or confused server does not get to fill the disk.
                return Err(RegistryError::SizeMismatch {
                    url: url.to_owned(),
                    expected,
                    actual: after,
                });
            }
            self.hasher.update(&chunk);
            sink.write_all(&chunk)
                .await
                .map_err(|source| RegistryError::Write {
                    digest: self.digest.clone(),
                    source,
                })?;
            self.written = after;
        }
        Ok(None)
    }

    /// Flushes `sink` and checks size and digest.
    async fn finish<W>(self, sink: &mut W, url: &str) -> Result<()>
    where
        W: AsyncWrite + Unpin + Send,
    {
        sink.flush().await.map_err(|source| RegistryError::Write {
            digest: self.digest.clone(),
            source,
        })?;
        if let Some(size) = self.expected_size.filter(|s| *s != self.written) {
            return Err(RegistryError::SizeMismatch {
                url: url.to_owned(),
                expected: size,
                actual: self.written,
            });
        }
        let actual = self.hasher.finish();
        if &actual != self.digest {
            return Err(RegistryError::DigestMismatch {
                url: url.to_owned(),
                expected: self.digest.clone(),
                actual,
            });
        }
        Ok(())
    }
}

impl Client {
    /// Whether `digest` exists in `reference`'s repository; its size when it does.
    pub async fn blob_exists(&self, reference: &Reference, digest: &Digest) -> Result<Option<u64>> {
        self.on_pull_endpoints(reference.registry(), |endpoint| async move {
            let path = format!("/v2/{}/blobs/{}", reference.repository(), digest);
            let call = Call::new(
                &endpoint,
                Method::HEAD,
                endpoint.url(&path)?,
                vec![pull_scope(reference.repository())],
            );
            let response = self.send(&call).await?;
            if response.status().as_u16() == 404 {
                return Ok(None);
            }
            let response = Client::expect(&call.method, response, &[200]).await?;
            Ok(Some(
                response
                    .headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            ))
        })
        .await
    }

    /// Downloads the blob `descriptor` names into memory, verified. Bytes that do not match
    /// the digest (or size) are fetched once more from scratch: a buffer, unlike a caller's
    /// sink, can be emptied, and a proxy or a flaky link can damage one transfer.
    pub async fn get_blob(&self, reference: &Reference, descriptor: &Descriptor) -> Result<Bytes> {
        let capacity = usize::try_from(descriptor.size.max(0)).unwrap_or(0);
        let mut out = Vec::with_capacity(capacity);
        match self.get_blob_to(reference, descriptor, &mut out).await {
            Ok(_) => return Ok(Bytes::from(out)),
            Err(
                e @ (RegistryError::DigestMismatch { .. } | RegistryError::SizeMismatch { .. }),
            ) => {
                tracing::debug!(error = %e, "a damaged blob download; fetching it again");
            }
            Err(e) => return Err(e),
        }
        out.clear();
        self.get_blob_to(reference, descriptor, &mut out).await?;
        Ok(Bytes::from(out))
    }

    /// Streams the blob `descriptor` names into `sink` and returns its length.
    ///
    /// The bytes are hashed on the way; a transfer that breaks is resumed with `Range` from
    /// where it stopped (or, if the server ignores ranges, restarted with the bytes already
    /// written skipped). On a digest or size mismatch an error is returned *after* the bytes
    /// were written: the caller must discard what `sink` received (write to a temporary file
    /// and rename on success).
    pub async fn get_blob_to<W>(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        sink: &mut W,
    ) -> Result<u64>
    where
        W: AsyncWrite + Unpin + Send,
    {
        let endpoints = crate::endpoint::pull_endpoints(&self.inner.config, reference.registry())?;
        let mut last = None;
        for endpoint in endpoints {
            // Only try a mirror when nothing was written yet: a sink cannot be rewound.
            match self
                .download_from(&endpoint, reference, descriptor, sink)
                .await
            {
                Ok(n) => return Ok(n),
                Err((e, written)) if endpoint.mirror && written == 0 => {
                    tracing::debug!(error = %e, "mirror failed, trying the next endpoint");
                    last = Some(e);
                }
                Err((e, _)) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| RegistryError::InvalidUrl {
            input: reference.registry().to_owned(),
        }))
    }

    async fn download_from<W>(
        &self,
        endpoint: &Endpoint,
        reference: &Reference,
        descriptor: &Descriptor,
        sink: &mut W,
    ) -> Result<u64, (RegistryError, u64)>
    where
        W: AsyncWrite + Unpin + Send,
    {
        let digest = &descriptor.digest;
        let path = format!("/v2/{}/blobs/{}", reference.repository(), digest);
        let url = endpoint.url(&path).map_err(|e| (e, 0))?;
        let mut progress = Progress {
            digest,
            hasher: digest.hasher(),
            written: 0,
            expected_size: u64::try_from(descriptor.size).ok(),
        };
        let mut breaks: u32 = 0;
        let policy = &self.inner.config.retry;
        loop {
            let written = progress.written;
            let mut call = Call::new(
                endpoint,
                Method::GET,
                url.clone(),
                vec![pull_scope(reference.repository())],
            );
            if written > 0 {
                call = call.header(RANGE, &format!("bytes={written}-"));
            }
            let response = self.send(&call).await.map_err(|e| (e, written))?;
            let response = Client::expect(&call.method, response, &[200, 206])
                .await
                .map_err(|e| (e, written))?;
            let shown_url = redact_url(response.url());
            let skip = bytes_to_skip(&response, written).map_err(|e| (e, written))?;
            let broken = progress
                .copy_body(response, skip, sink, &shown_url)
                .await
                .map_err(|e| (e, progress.written))?;
            let Some(error) = broken else {
                break;
            };
            breaks += 1;
            if breaks >= policy.max_attempts {
                let error = RegistryError::Transport {
                    method: "GET".to_owned(),
                    url: shown_url,
                    source: error.without_url(),
                };
                return Err((error, progress.written));
            }
            tracing::debug!(digest = %digest, written = progress.written, breaks, error = %error.without_url(), "blob download broke, resuming");
            tokio::time::sleep(policy.delay(breaks, None)).await;
        }
        let written = progress.written;
        progress
            .finish(sink, &redact_url(&url))
            .await
            .map_err(|e| (e, written))?;
        tracing::debug!(digest = %digest, bytes = written, "downloaded blob");
        Ok(written)
    }

    /// Downloads many blobs into memory, [`crate::ClientConfig::concurrency`] at a time, in
    /// the order given.
    pub async fn pull_blobs(
        &self,
        reference: &Reference,
        descriptors: &[Descriptor],
    ) -> Result<Vec<Bytes>> {
        let limit = self.inner.config.concurrency.max(1);
        futures_util::stream::iter(descriptors.iter().map(|d| self.get_blob(reference, d)))
            .buffered(limit)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn content_range_parsing_never_panics(s in ".*") {
            let _ = content_range_start(&s);
        }
    }

    #[test]
    fn content_range() {
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes 0-0/*"), Some(0));
        assert_eq!(content_range_start("items 1-2"), None);
        assert_eq!(content_range_start("bytes x-1/2"), None);
    }
}
