//! Blob HEAD and download: streamed, digest-verified, resumed by `Range` after a broken transfer.

use bytes::Bytes;
use futures_util::StreamExt as _;
use inlay_core::{Descriptor, Digest, Reference};
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

    /// Downloads the blob `descriptor` names into memory, verified.
    pub async fn get_blob(&self, reference: &Reference, descriptor: &Descriptor) -> Result<Bytes> {
        let mut out = Vec::with_capacity(usize::try_from(descriptor.size.max(0)).unwrap_or(0));
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
            match self.download_from(&endpoint, reference, descriptor, sink).await {
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
        let expected_size = u64::try_from(descriptor.size).ok();
        let path = format!("/v2/{}/blobs/{}", reference.repository(), digest);
        let url = endpoint.url(&path).map_err(|e| (e, 0))?;
        let mut hasher = digest.hasher();
        let mut written: u64 = 0;
        let mut breaks: u32 = 0;
        let policy = &self.inner.config.retry;
        loop {
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
            let mut skip: u64 = 0;
            if written > 0 {
                if response.status().as_u16() == 206 {
                    let start = response
                        .headers()
                        .get(CONTENT_RANGE)
                        .and_then(|v| v.to_str().ok())
                        .and_then(content_range_start);
                    if start != Some(written) {
                        return Err((
                            RegistryError::Protocol {
                                url: shown_url,
                                reason: format!(
                                    "asked for bytes from {written}, got a range starting at {start:?}"
                                ),
                            },
                            written,
                        ));
                    }
                } else {
                    skip = written;
                }
            }
            let mut stream = response.bytes_stream();
            let mut broken = None;
            while let Some(chunk) = stream.next().await {
                let mut chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        broken = Some(e);
                        break;
                    }
                };
                if skip > 0 {
                    let n = skip.min(chunk.len() as u64);
                    skip -= n;
                    chunk = chunk.slice(n as usize..);
                }
                if chunk.is_empty() {
                    continue;
                }
                if expected_size.is_some_and(|size| written + chunk.len() as u64 > size) {
                    return Err((
                        RegistryError::SizeMismatch {
                            url: shown_url,
                            expected: expected_size.unwrap_or(0),
                            actual: written + chunk.len() as u64,
                        },
                        written,
                    ));
                }
                hasher.update(&chunk);
                sink.write_all(&chunk).await.map_err(|source| {
                    (
                        RegistryError::Write {
                            digest: digest.clone(),
                            source,
                        },
                        written,
                    )
                })?;
                written += chunk.len() as u64;
            }
            let Some(error) = broken else {
                break;
            };
            breaks += 1;
            if breaks >= policy.max_attempts {
                return Err((
                    RegistryError::Transport {
                        method: "GET".to_owned(),
                        url: shown_url,
                        source: error.without_url(),
                    },
                    written,
                ));
            }
            tracing::debug!(digest = %digest, written, breaks, error = %error.without_url(), "blob download broke, resuming");
            tokio::time::sleep(policy.delay(breaks, None)).await;
        }
        sink.flush().await.map_err(|source| {
            (
                RegistryError::Write {
                    digest: digest.clone(),
                    source,
                },
                written,
            )
        })?;
        let shown_url = redact_url(&url);
        if let Some(size) = expected_size {
            if written != size {
                return Err((
                    RegistryError::SizeMismatch {
                        url: shown_url,
                        expected: size,
                        actual: written,
                    },
                    written,
                ));
            }
        }
        let actual = hasher.finish();
        if &actual != digest {
            return Err((
                RegistryError::DigestMismatch {
                    url: shown_url,
                    expected: digest.clone(),
                    actual,
                },
                written,
            ));
        }
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

    #[test]
    fn content_range() {
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes 0-0/*"), Some(0));
        assert_eq!(content_range_start("items 1-2"), None);
        assert_eq!(content_range_start("bytes x-1/2"), None);
    }
}
