//! The registry-backed [`ImageSource`]: the registry client driven from the solver's worker
//! threads through a small private tokio runtime.

use std::io::{Seek, SeekFrom};

use inlay_core::{Descriptor, Digest, Platform, Reference};
use inlay_registry::Client;

use super::{ImageSource, ResolvedImage, SourceError, layers_of};
use crate::store::Store;

/// Images resolved and pulled through an OCI distribution registry.
#[derive(Debug)]
pub struct RegistryImages {
    client: Client,
    runtime: tokio::runtime::Runtime,
}

impl RegistryImages {
    /// Wraps `client`; starts a two-thread runtime for its requests.
    pub fn new(client: Client) -> Result<RegistryImages, SourceError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| SourceError::Resolve {
                reference: String::new(),
                reason: format!("starting the registry runtime: {e}"),
            })?;
        Ok(RegistryImages { client, runtime })
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

fn parse(reference: &str) -> Result<Reference, SourceError> {
    Reference::parse(reference).map_err(|e| SourceError::Resolve {
        reference: reference.to_owned(),
        reason: e.to_string(),
    })
}

impl ImageSource for RegistryImages {
    fn blob_size(&self, reference: &str, digest: &Digest) -> Result<Option<u64>, SourceError> {
        let parsed = parse(reference)?;
        self.runtime
            .block_on(self.client.blob_exists(&parsed, digest))
            .map_err(|e| SourceError::Pull {
                reference: reference.to_owned(),
                digest: digest.clone(),
                reason: e.to_string(),
            })
    }

    fn resolve(&self, reference: &str, platform: &Platform) -> Result<ResolvedImage, SourceError> {
        let parsed = parse(reference)?;
        let fail = |e: inlay_registry::RegistryError| SourceError::Resolve {
            reference: reference.to_owned(),
            reason: e.to_string(),
        };
        self.runtime.block_on(async {
            let top = self.client.get_manifest(&parsed).await.map_err(fail)?;
            let manifest = if top.is_index() {
                self.client
                    .get_manifest_for_platform(&parsed, platform)
                    .await
                    .map_err(fail)?
            } else {
                top.clone()
            };
            let model: inlay_core::image::ImageManifest = serde_json::from_slice(&manifest.bytes)
                .map_err(|e| SourceError::Invalid {
                reference: reference.to_owned(),
                what: "manifest",
                reason: e.to_string(),
            })?;
            let config = self
                .client
                .get_blob(&parsed, &model.config)
                .await
                .map_err(fail)?;
            let layers = layers_of(reference, &manifest.bytes, &config)?;
            Ok(ResolvedImage {
                reference: reference.to_owned(),
                top_digest: top.digest,
                manifest: manifest.bytes.to_vec(),
                manifest_digest: manifest.digest,
                config: config.to_vec(),
                layers,
            })
        })
    }

    fn pull_blob(
        &self,
        reference: &str,
        descriptor: &Descriptor,
        store: &Store,
    ) -> Result<(), SourceError> {
        if store.has_blob(&descriptor.digest) {
            return Ok(());
        }
        let parsed = parse(reference)?;
        let fail = |reason: String| SourceError::Pull {
            reference: reference.to_owned(),
            digest: descriptor.digest.clone(),
            reason,
        };
        // Download into a temporary file of the store (verified by the client), then move it
        // into the store through a blob writer, which checks the digest once more.
        let scratch = store.scratch_dir().map_err(|e| fail(e.to_string()))?;
        let path = scratch.path().join("blob");
        // Bytes that do not match the digest are fetched once more from scratch (the file is
        // truncated): one transfer damaged on the way is not a reason to fail the build.
        for attempt in 1..=2 {
            let fetched = self.runtime.block_on(async {
                let mut file = tokio::fs::File::create(&path)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                let got = self
                    .client
                    .get_blob_to(&parsed, descriptor, &mut file)
                    .await;
                tokio::io::AsyncWriteExt::flush(&mut file)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                Ok::<_, SourceError>(got)
            })?;
            match fetched {
                Ok(_) => break,
                Err(
                    e @ (inlay_registry::RegistryError::DigestMismatch { .. }
                    | inlay_registry::RegistryError::SizeMismatch { .. }),
                ) if attempt == 1 => {
                    tracing::debug!(error = %e, "a damaged layer download; fetching it again");
                }
                Err(e) => return Err(fail(e.to_string())),
            }
        }
        let mut file = std::fs::File::open(&path).map_err(|e| fail(e.to_string()))?;
        file.seek(SeekFrom::Start(0))
            .map_err(|e| fail(e.to_string()))?;
        let mut writer = store.blob_writer().map_err(|e| fail(e.to_string()))?;
        std::io::copy(&mut file, &mut writer).map_err(|e| fail(e.to_string()))?;
        writer
            .commit(Some(&descriptor.digest))
            .map_err(|e| fail(e.to_string()))?;
        Ok(())
    }
}
