//! The registry walk: resolve a reference, decide what kind of cache it is (spec section 4.2),
//! fetch the manifests and configs it needs (never a layer blob), and report every failure as
//! a warning.

use std::collections::HashSet;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::stream::{self, StreamExt};
use inlay_core::cache::artifact::{
    CacheArtifact, INLAY_CACHE_ARTIFACT_TYPE, MAX_CACHE_CONFIG_SIZE,
};
use inlay_core::image::{Document, ImageConfig, ImageIndex, ImageManifest};
use inlay_core::{Descriptor, Digest, Platform, Reference, media_types};
use inlay_registry::{Client, RegistryError};

use crate::error::{ImportError, ImportWarning};
use crate::imported::{
    CacheKind, ImportedCache, ImportedOrigin, Imports, OriginKind, OriginRecords,
};
use crate::layers;

/// Annotation BuildKit puts on the index entry of an attestation manifest.
const ANNOTATION_REFERENCE_TYPE: &str = "vnd.docker.reference.type";

/// How much the importer reads.
#[derive(Debug, Clone)]
pub struct ImportLimits {
    /// The largest top-level manifest or index (BuildKit: 1 `MiB`, spec section 2.6).
    pub max_top_level: u64,
    /// The largest cache config blob (BuildKit: 1 `MiB`).
    pub max_cache_config: u64,
    /// The largest image config. BuildKit has no cap; a cap still protects against hostile
    /// registries, set far above any real config.
    pub max_image_config: u64,
    /// The most image manifests walked per reference (all platforms); nested indexes count
    /// against it too.
    pub max_manifests: usize,
    /// How deep nested indexes are followed.
    pub max_depth: usize,
    /// How many documents are fetched at once.
    pub concurrency: usize,
    /// Whether to look for inlay stages cache artifacts through the referrers API.
    pub stages_artifacts: bool,
}

impl Default for ImportLimits {
    fn default() -> ImportLimits {
        ImportLimits {
            max_top_level: 1024 * 1024,
            max_cache_config: MAX_CACHE_CONFIG_SIZE,
            max_image_config: 64 * 1024 * 1024,
            max_manifests: 128,
            max_depth: 4,
            concurrency: 8,
            stages_artifacts: true,
        }
    }
}

/// Imports `--cache-from type=registry,ref=REF` caches.
#[derive(Debug, Clone)]
pub struct Importer {
    client: Client,
    limits: ImportLimits,
}

/// A platform manifest found while walking an index.
#[derive(Debug, Clone)]
struct Candidate {
    descriptor: Descriptor,
    /// The bytes, when the manifest is the top-level document itself.
    top: Option<Document<ImageManifest>>,
}

impl Importer {
    /// An importer with the default limits.
    pub fn new(client: Client) -> Importer {
        Importer {
            client,
            limits: ImportLimits::default(),
        }
    }

    /// The same importer with other limits.
    #[must_use]
    pub fn with_limits(mut self, limits: ImportLimits) -> Importer {
        self.limits = limits;
        self
    }

    /// Imports every reference (concurrently, results in the given order). Never fails: a
    /// reference that cannot be imported becomes a warning and the others still import.
    pub async fn import_all<S: AsRef<str>>(&self, references: &[S]) -> Imports {
        let results: Vec<Result<ImportedCache, ImportWarning>> = stream::iter(references)
            .map(|r| self.import(r.as_ref()))
            .buffered(self.limits.concurrency.max(1))
            .collect()
            .await;
        let mut imports = Imports::default();
        for result in results {
            match result {
                Ok(cache) => {
                    for w in &cache.warnings {
                        tracing::warn!(warning = %w, "cache import");
                    }
                    imports.caches.push(cache);
                }
                Err(w) => {
                    tracing::warn!(warning = %w, "cache import");
                    imports.skipped.push(w);
                }
            }
        }
        imports
    }

    /// Imports one reference (normalised: `docker.io/library` and `:latest` filled in).
    pub async fn import(&self, reference: &str) -> Result<ImportedCache, ImportWarning> {
        let parsed = Reference::parse(reference).map_err(|source| ImportWarning {
            reference: reference.to_owned(),
            manifest: None,
            error: ImportError::Reference { source },
        })?;
        let mut cache = self
            .import_reference(&parsed)
            .await
            .map_err(|error| ImportWarning {
                reference: parsed.to_string(),
                manifest: None,
                error,
            })?;
        // A reference none of whose parts imported is a skipped reference, named by its
        // first failure (the others are logged).
        if cache.origins.is_empty() && !cache.warnings.is_empty() {
            let first = cache.warnings.remove(0);
            for w in &cache.warnings {
                tracing::warn!(warning = %w, "cache import");
            }
            return Err(first);
        }
        Ok(cache)
    }

    async fn import_reference(&self, reference: &Reference) -> Result<ImportedCache, ImportError> {
        let top = self
            .client
            .get_manifest(reference)
            .await
            .map_err(|source| ImportError::Registry {
                what: "manifest",
                target: reference.tag_or_digest(),
                source: Box::new(source),
            })?;
        if top.bytes.len() as u64 > self.limits.max_top_level {
            return Err(ImportError::TooLarge {
                what: "manifest",
                digest: top.digest,
                limit: self.limits.max_top_level,
            });
        }
        let digest = top.digest.clone();
        let bytes = top.bytes.to_vec();
        if media_types::is_index(&top.media_type) {
            let index: Document<ImageIndex> = parse_index(bytes, &digest, "index")?;
            if let Some(config) = index
                .view()
                .manifests
                .iter()
                .find(|d| d.media_type == media_types::BUILDKIT_CACHE_CONFIG)
            {
                let blobs: Vec<Descriptor> = index
                    .view()
                    .manifests
                    .iter()
                    .filter(|d| d.media_type != media_types::BUILDKIT_CACHE_CONFIG)
                    .cloned()
                    .collect();
                let origin = self
                    .config_origin(
                        reference,
                        &digest,
                        config,
                        &blobs,
                        OriginKind::RegistryCache,
                    )
                    .await?;
                return Ok(ImportedCache {
                    reference: reference.clone(),
                    digest,
                    kind: CacheKind::RegistryIndex,
                    origins: vec![origin],
                    warnings: Vec::new(),
                });
            }
            let mut warnings = Vec::new();
            let candidates = self
                .collect_manifests(reference, &index, &mut warnings)
                .await;
            return self.inline(reference, digest, candidates, warnings).await;
        }
        if media_types::is_manifest(&top.media_type) {
            let manifest: Document<ImageManifest> = parse_manifest(bytes, &digest, "manifest")?;
            if manifest.view().config.media_type == media_types::BUILDKIT_CACHE_CONFIG {
                let kind = if CacheArtifact::is_cache_artifact(manifest.view()) {
                    OriginKind::StagesArtifact
                } else {
                    OriginKind::RegistryCache
                };
                let origin = self
                    .config_origin(
                        reference,
                        &digest,
                        &manifest.view().config,
                        &manifest.view().layers,
                        kind,
                    )
                    .await?;
                return Ok(ImportedCache {
                    reference: reference.clone(),
                    digest,
                    kind: CacheKind::RegistryManifest,
                    origins: vec![origin],
                    warnings: Vec::new(),
                });
            }
            let candidate = Candidate {
                descriptor: manifest.descriptor(top.media_type.clone()),
                top: Some(manifest),
            };
            return self
                .inline(reference, digest, vec![candidate], Vec::new())
                .await;
        }
        Err(ImportError::UnsupportedDocument {
            digest,
            media_type: top.media_type,
        })
    }

    /// Every image manifest reachable from `index` through nested indexes, each once
    /// (spec section 4.4 step 1). Attestation manifests and unknown entries are skipped.
    async fn collect_manifests(
        &self,
        reference: &Reference,
        index: &Document<ImageIndex>,
        warnings: &mut Vec<ImportWarning>,
    ) -> Vec<Candidate> {
        let mut seen: HashSet<Digest> = HashSet::from([index.digest().clone()]);
        let mut found = Vec::new();
        let mut level: Vec<Descriptor> = index.view().manifests.clone();
        for depth in 0..=self.limits.max_depth {
            let mut nested = Vec::new();
            for entry in level {
                if !seen.insert(entry.digest.clone()) {
                    continue;
                }
                if media_types::is_index(&entry.media_type) {
                    nested.push(entry);
                } else if media_types::is_manifest(&entry.media_type) {
                    let attestation = entry
                        .annotations
                        .get(ANNOTATION_REFERENCE_TYPE)
                        .is_some_and(|t| t == "attestation-manifest");
                    if attestation {
                        tracing::debug!(manifest = %entry.digest, "skipping attestation manifest");
                    } else if found.len() < self.limits.max_manifests {
                        found.push(Candidate {
                            descriptor: entry,
                            top: None,
                        });
                    } else {
                        tracing::debug!(manifest = %entry.digest, "manifest limit reached");
                    }
                } else {
                    tracing::debug!(digest = %entry.digest, media_type = %entry.media_type, "skipping index entry of unknown type");
                }
            }
            if nested.is_empty() {
                break;
            }
            // Nested indexes count against the same budget as manifests: a hostile index
            // cannot make the importer fetch without bound.
            nested.truncate(self.limits.max_manifests.saturating_sub(found.len()).max(1));
            if depth == self.limits.max_depth {
                warnings.push(ImportWarning {
                    reference: reference.to_string(),
                    manifest: Some(nested[0].digest.clone()),
                    error: ImportError::Malformed {
                        digest: nested[0].digest.clone(),
                        reason: format!(
                            "indexes nest deeper than {} levels",
                            self.limits.max_depth
                        ),
                    },
                });
                break;
            }
            let fetched: Vec<(Descriptor, Result<Document<ImageIndex>, ImportError>)> =
                stream::iter(nested)
                    .map(|d| async move {
                        let r = self.fetch_index(reference, &d).await;
                        (d, r)
                    })
                    .buffered(self.limits.concurrency.max(1))
                    .collect()
                    .await;
            level = Vec::new();
            for (d, r) in fetched {
                match r {
                    Ok(ix) => level.extend(ix.view().manifests.iter().cloned()),
                    Err(error) => warnings.push(ImportWarning {
                        reference: reference.to_string(),
                        manifest: Some(d.digest),
                        error,
                    }),
                }
            }
        }
        found
    }

    async fn fetch_index(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
    ) -> Result<Document<ImageIndex>, ImportError> {
        let m = self
            .client
            .get_manifest(&reference.with_digest(descriptor.digest.clone()))
            .await
            .map_err(|source| registry("index", &descriptor.digest, source))?;
        parse_index(m.bytes.to_vec(), &descriptor.digest, "index")
    }

    /// The inline path over `candidates`, plus the stages artifacts of the image.
    async fn inline(
        &self,
        reference: &Reference,
        digest: Digest,
        candidates: Vec<Candidate>,
        mut warnings: Vec<ImportWarning>,
    ) -> Result<ImportedCache, ImportError> {
        let subjects: Vec<Digest> = std::iter::once(digest.clone())
            .chain(
                candidates
                    .iter()
                    .filter(|c| c.top.is_none())
                    .map(|c| c.descriptor.digest.clone()),
            )
            .collect();
        let results: Vec<(Digest, Result<Option<ImportedOrigin>, ImportError>)> =
            stream::iter(candidates)
                .map(|c| async move {
                    let d = c.descriptor.digest.clone();
                    (d, self.inline_origin(reference, c).await)
                })
                .buffered(self.limits.concurrency.max(1))
                .collect()
                .await;
        let mut origins = Vec::new();
        for (manifest, result) in results {
            match result {
                Ok(Some(origin)) => origins.push(origin),
                Ok(None) => {}
                Err(error) => warnings.push(ImportWarning {
                    reference: reference.to_string(),
                    manifest: Some(manifest),
                    error,
                }),
            }
        }
        if self.limits.stages_artifacts {
            self.stages_artifacts(reference, &subjects, &mut origins, &mut warnings)
                .await;
        }
        if origins.is_empty() && warnings.is_empty() {
            return Err(ImportError::NoCache);
        }
        Ok(ImportedCache {
            reference: reference.clone(),
            digest,
            kind: CacheKind::Inline,
            origins,
            warnings,
        })
    }

    async fn inline_origin(
        &self,
        reference: &Reference,
        candidate: Candidate,
    ) -> Result<Option<ImportedOrigin>, ImportError> {
        let manifest_digest = candidate.descriptor.digest.clone();
        let manifest = if let Some(m) = candidate.top {
            m
        } else {
            let m = self
                .client
                .get_manifest(&reference.with_digest(manifest_digest.clone()))
                .await
                .map_err(|source| registry("manifest", &manifest_digest, source))?;
            parse_manifest(m.bytes.to_vec(), &manifest_digest, "manifest")?
        };
        let view = manifest.view();
        if view.layers.is_empty() || view.config.media_type == media_types::BUILDKIT_CACHE_CONFIG {
            return Ok(None);
        }
        let config_bytes = self
            .small_blob(
                reference,
                &view.config,
                "image config",
                self.limits.max_image_config,
            )
            .await?;
        let config: Document<ImageConfig> = Document::verified(config_bytes, &view.config.digest)
            .map_err(|source| ImportError::Document {
            what: "image config",
            digest: view.config.digest.clone(),
            source,
        })?;
        let Some((graph, layers)) = layers::inline_cache(
            reference,
            &manifest_digest,
            view,
            config.digest(),
            config.view(),
        )?
        else {
            return Ok(None);
        };
        let c = config.view();
        let platform = candidate.descriptor.platform.clone().unwrap_or_else(|| {
            Platform::new(&c.os, &c.architecture, c.variant.as_deref().unwrap_or(""))
        });
        Ok(Some(ImportedOrigin {
            label: format!("{reference} {platform}"),
            kind: OriginKind::Inline,
            platform: Some(platform),
            manifest: manifest_digest,
            records: OriginRecords::Inline { graph, layers },
        }))
    }

    /// Adds the stages artifacts that refer to any of `subjects`.
    async fn stages_artifacts(
        &self,
        reference: &Reference,
        subjects: &[Digest],
        origins: &mut Vec<ImportedOrigin>,
        warnings: &mut Vec<ImportWarning>,
    ) {
        let found: Vec<(Digest, Result<Vec<Descriptor>, RegistryError>)> = stream::iter(subjects)
            .map(|s| async move {
                let r = self
                    .client
                    .referrers(reference, s, Some(INLAY_CACHE_ARTIFACT_TYPE))
                    .await;
                (s.clone(), r)
            })
            .buffered(self.limits.concurrency.max(1))
            .collect()
            .await;
        let mut seen = HashSet::new();
        let mut artifacts = Vec::new();
        for (subject, result) in found {
            match result {
                Ok(list) => {
                    artifacts.extend(list.into_iter().filter(|d| seen.insert(d.digest.clone())));
                }
                Err(source) => warnings.push(ImportWarning {
                    reference: reference.to_string(),
                    manifest: Some(subject.clone()),
                    error: registry("referrers of", &subject, source),
                }),
            }
        }
        for artifact in artifacts {
            match self.stages_origin(reference, &artifact).await {
                Ok(origin) => origins.push(origin),
                Err(error) => warnings.push(ImportWarning {
                    reference: reference.to_string(),
                    manifest: Some(artifact.digest.clone()),
                    error,
                }),
            }
        }
    }

    async fn stages_origin(
        &self,
        reference: &Reference,
        artifact: &Descriptor,
    ) -> Result<ImportedOrigin, ImportError> {
        let m = self
            .client
            .get_manifest(&reference.with_digest(artifact.digest.clone()))
            .await
            .map_err(|source| registry("stages artifact", &artifact.digest, source))?;
        let manifest: Document<ImageManifest> =
            parse_manifest(m.bytes.to_vec(), &artifact.digest, "stages artifact")?;
        let parsed =
            CacheArtifact::from_manifest(manifest.view()).map_err(|e| ImportError::Malformed {
                digest: artifact.digest.clone(),
                reason: e.to_string(),
            })?;
        self.config_origin(
            reference,
            &artifact.digest,
            &parsed.config,
            &parsed.layers,
            OriginKind::StagesArtifact,
        )
        .await
    }

    /// A registry cache config (from an index, an image manifest or a stages artifact).
    async fn config_origin(
        &self,
        reference: &Reference,
        container: &Digest,
        config: &Descriptor,
        blobs: &[Descriptor],
        kind: OriginKind,
    ) -> Result<ImportedOrigin, ImportError> {
        let bytes = self
            .small_blob(
                reference,
                config,
                "cache config",
                self.limits.max_cache_config,
            )
            .await?;
        let (config, blobs) = layers::cache_config(reference, &config.digest, &bytes, blobs)?;
        let what = match kind {
            OriginKind::StagesArtifact => "stages cache",
            _ => "registry cache",
        };
        Ok(ImportedOrigin {
            label: format!("{reference} {what}"),
            kind,
            platform: None,
            manifest: container.clone(),
            records: OriginRecords::Config { config, blobs },
        })
    }

    /// A config blob, refused past `limit` bytes whatever the descriptor or the server say.
    async fn small_blob(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        what: &'static str,
        limit: u64,
    ) -> Result<Vec<u8>, ImportError> {
        let too_large = || ImportError::TooLarge {
            what,
            digest: descriptor.digest.clone(),
            limit,
        };
        if u64::try_from(descriptor.size).is_ok_and(|s| s > limit) {
            return Err(too_large());
        }
        let mut sink = CappedBuffer {
            bytes: Vec::new(),
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            exceeded: false,
        };
        match self
            .client
            .get_blob_to(reference, descriptor, &mut sink)
            .await
        {
            Ok(_) => Ok(sink.bytes),
            Err(_) if sink.exceeded => Err(too_large()),
            Err(source) => Err(registry(what, &descriptor.digest, source)),
        }
    }
}

fn registry(what: &'static str, digest: &Digest, source: RegistryError) -> ImportError {
    ImportError::Registry {
        what,
        target: digest.to_string(),
        source: Box::new(source),
    }
}

/// Parses fetched bytes, naming them by the digest they were fetched by.
macro_rules! parse_as {
    ($name:ident, $t:ty) => {
        fn $name(
            bytes: Vec<u8>,
            digest: &Digest,
            what: &'static str,
        ) -> Result<Document<$t>, ImportError> {
            Document::verified(bytes, digest).map_err(|source| ImportError::Document {
                what,
                digest: digest.clone(),
                source,
            })
        }
    };
}
parse_as!(parse_index, ImageIndex);
parse_as!(parse_manifest, ImageManifest);

/// An in-memory sink that fails once more than `limit` bytes arrive.
struct CappedBuffer {
    bytes: Vec<u8>,
    limit: usize,
    exceeded: bool,
}

impl tokio::io::AsyncWrite for CappedBuffer {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.bytes.len() + buf.len() > self.limit {
            self.exceeded = true;
            return Poll::Ready(Err(std::io::Error::other("size limit exceeded")));
        }
        self.bytes.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
