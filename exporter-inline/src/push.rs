//! `type=image,push=true`: blobs first (skip, mount or upload), then the config, then the
//! manifest under each tag, moving as few bytes as the registry allows.
//!
//! Per layer, cheapest first: the target repository has it (HEAD) → nothing; it lives in another
//! repository of the same registry → cross-repository mount (no bytes); otherwise its bytes are
//! sent once: from the local file, or fetched from the source registry into a verified spool file
//! and uploaded from there. A tag that already names the manifest (HEAD) needs nothing at all.

use std::collections::BTreeSet;
use std::path::PathBuf;

use futures_util::StreamExt as _;
use inlay_core::{Descriptor, Digest, Reference};
use inlay_registry::{BlobSource as Payload, Client, PushOutcome, RegistryError};

use crate::error::ExportError;
use crate::image::BuiltImage;
use crate::source::{BlobLocation, BlobSource, Spooled};

/// Settings of a push.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Where blobs fetched from another registry are spooled (default: the system temp dir).
    pub spool_dir: Option<PathBuf>,
    /// How many blobs move at once (default: the client's `concurrency`).
    pub concurrency: Option<usize>,
}

impl PushOptions {
    pub(crate) fn spool_dir(&self) -> PathBuf {
        self.spool_dir.clone().unwrap_or_else(std::env::temp_dir)
    }

    pub(crate) fn limit(&self, client: &Client) -> usize {
        self.concurrency
            .unwrap_or(client.config().concurrency)
            .max(1)
    }
}

/// What happened to one blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobMove {
    /// The target repository had it already.
    Skipped,
    /// Linked from another repository of the same registry.
    Mounted,
    /// Uploaded, this many bytes.
    Uploaded(u64),
}

/// What a push did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushReport {
    /// The manifest digest (the image's identity).
    pub digest: Option<Digest>,
    /// The references whose manifest was PUT (tags that already named the image are absent).
    pub manifests_pushed: Vec<Reference>,
    /// Blobs the target already had.
    pub blobs_skipped: usize,
    /// Blobs mounted from another repository.
    pub blobs_mounted: usize,
    /// Blobs uploaded.
    pub blobs_uploaded: usize,
    /// Bytes of blobs uploaded.
    pub bytes_uploaded: u64,
}

impl PushReport {
    pub(crate) fn count(&mut self, moved: BlobMove) {
        match moved {
            BlobMove::Skipped => self.blobs_skipped += 1,
            BlobMove::Mounted => self.blobs_mounted += 1,
            BlobMove::Uploaded(bytes) => {
                self.blobs_uploaded += 1;
                self.bytes_uploaded += bytes;
            }
        }
    }
}

/// Pushes `image` to every reference of `targets` (tags or digests, any repositories).
///
/// A target whose tag already names the manifest is left alone, so pushing an unchanged image
/// again sends only HEAD requests.
pub async fn push_image(
    client: &Client,
    image: &BuiltImage,
    targets: &[Reference],
    source: &dyn BlobSource,
    options: &PushOptions,
) -> Result<PushReport, ExportError> {
    let mut report = PushReport {
        digest: Some(image.digest().clone()),
        ..PushReport::default()
    };
    let media_type = &image.manifest_descriptor().media_type;
    let mut repositories_done = BTreeSet::new();
    for target in targets {
        let head = client
            .head_manifest(target)
            .await
            .map_err(ExportError::registry("check manifest", target))?;
        if head.is_some_and(|h| &h.digest == image.digest()) {
            tracing::debug!(reference = %target, digest = %image.digest(), "already up to date");
            continue;
        }
        if repositories_done.insert(target.name()) {
            let mut blobs: Vec<(Descriptor, BlobLocation)> = Vec::new();
            for layer in image.layers() {
                let d = &layer.descriptor;
                let location =
                    source
                        .locate(&d.digest)
                        .ok_or_else(|| ExportError::MissingBlob {
                            digest: d.digest.clone(),
                        })?;
                blobs.push((d.clone(), location));
            }
            push_blobs(client, target, blobs, options, &mut report).await?;
            // The config goes last among the blobs: a manifest is only accepted once everything
            // it names exists.
            let config = image.config_descriptor().clone();
            let moved = push_one(
                client,
                target,
                &config,
                BlobLocation::Bytes(image.config().clone()),
                &options.spool_dir(),
            )
            .await?;
            report.count(moved);
        }
        put_manifest_after_blobs(client, target, media_type, image.manifest().clone())
            .await
            .map_err(ExportError::registry("push manifest", target))?;
        tracing::debug!(reference = %target, digest = %image.digest(), "pushed manifest");
        report.manifests_pushed.push(target.clone());
    }
    Ok(report)
}

/// How many times a manifest is sent when the registry says it names an unknown blob.
const MANIFEST_ATTEMPTS: u32 = 3;

/// Puts a manifest whose blobs this push has just uploaded or found in the repository. A
/// `MANIFEST_BLOB_UNKNOWN` then is distribution's race, not a missing blob: its filesystem driver
/// rewrites a blob's repository link in place when another client pushes the same blob, and a
/// manifest checked meanwhile reads an empty link. So it is sent again after a short wait; a
/// blob that really is missing fails the same way on the last attempt.
pub(crate) async fn put_manifest_after_blobs(
    client: &Client,
    target: &Reference,
    media_type: &str,
    manifest: bytes::Bytes,
) -> Result<Digest, RegistryError> {
    let mut attempt = 1;
    loop {
        match client
            .put_manifest(target, media_type, manifest.clone())
            .await
        {
            Err(e)
                if attempt < MANIFEST_ATTEMPTS
                    && e.status() == Some(400)
                    && e.details()
                        .iter()
                        .any(|d| d.code == "MANIFEST_BLOB_UNKNOWN") =>
            {
                tracing::debug!(reference = %target, attempt, error = %e, "the registry did not see a pushed blob yet; sending the manifest again");
                tokio::time::sleep(std::time::Duration::from_millis(100 * u64::from(attempt)))
                    .await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Pushes `blobs` into `target`'s repository, bounded by the options' concurrency.
pub(crate) async fn push_blobs(
    client: &Client,
    target: &Reference,
    blobs: Vec<(Descriptor, BlobLocation)>,
    options: &PushOptions,
    report: &mut PushReport,
) -> Result<(), ExportError> {
    let spool = options.spool_dir();
    let spool = &spool;
    let outcomes: Vec<Result<BlobMove, ExportError>> =
        futures_util::stream::iter(blobs.into_iter().map(|(d, location)| async move {
            push_one(client, target, &d, location, spool).await
        }))
        .buffer_unordered(options.limit(client))
        .collect()
        .await;
    for outcome in outcomes {
        report.count(outcome?);
    }
    Ok(())
}

fn size_of(descriptor: &Descriptor) -> u64 {
    u64::try_from(descriptor.size).unwrap_or(0)
}

fn moved(outcome: PushOutcome, descriptor: &Descriptor) -> BlobMove {
    match outcome {
        PushOutcome::AlreadyPresent => BlobMove::Skipped,
        PushOutcome::Mounted => BlobMove::Mounted,
        _ => BlobMove::Uploaded(size_of(descriptor)),
    }
}

/// Moves one blob into `target`'s repository by the cheapest way its location allows.
pub(crate) async fn push_one(
    client: &Client,
    target: &Reference,
    descriptor: &Descriptor,
    location: BlobLocation,
    spool_dir: &std::path::Path,
) -> Result<BlobMove, ExportError> {
    let digest = &descriptor.digest;
    let push_error =
        || ExportError::registry("push blob", &format!("{digest} to {}", target.name()));
    match location {
        BlobLocation::Bytes(bytes) => client
            .push_blob(target, descriptor, Payload::Bytes(bytes), None)
            .await
            .map(|o| moved(o, descriptor))
            .map_err(push_error()),
        BlobLocation::File(path) => client
            .push_blob(target, descriptor, Payload::File(path), None)
            .await
            .map(|o| moved(o, descriptor))
            .map_err(push_error()),
        BlobLocation::Registry(from)
            if from.registry() == target.registry() && from.repository() != target.repository() =>
        {
            // The client mounts when it can and otherwise uploads from the payload it was given.
            // The bytes are not here yet, so it is given a file that does not exist: reading it
            // fails before any byte is sent, and the blob then moves the slow way.
            let placeholder =
                tempfile::tempdir_in(spool_dir).map_err(ExportError::io(spool_dir))?;
            let missing = placeholder.path().join("not-fetched");
            match client
                .push_blob(
                    target,
                    descriptor,
                    Payload::File(missing.clone()),
                    Some(&from),
                )
                .await
            {
                Ok(outcome) => Ok(moved(outcome, descriptor)),
                Err(RegistryError::Io { path, .. }) if path == missing => {
                    tracing::debug!(digest = %digest, from = %from.name(), "mount refused, copying");
                    copy_from(client, &from, target, descriptor, spool_dir).await
                }
                Err(e) => Err(push_error()(e)),
            }
        }
        BlobLocation::Registry(from) => {
            let present = client
                .blob_exists(target, digest)
                .await
                .map_err(push_error())?;
            if present.is_some() {
                return Ok(BlobMove::Skipped);
            }
            copy_from(client, &from, target, descriptor, spool_dir).await
        }
    }
}

/// Fetches the blob from `from` once, verified, and uploads it into `target`.
async fn copy_from(
    client: &Client,
    from: &Reference,
    target: &Reference,
    descriptor: &Descriptor,
    spool_dir: &std::path::Path,
) -> Result<BlobMove, ExportError> {
    let spooled = Spooled::fetch(client, from, descriptor, spool_dir).await?;
    client
        .upload_blob(target, descriptor, Payload::File(spooled.path().to_owned()))
        .await
        .map_err(ExportError::registry(
            "push blob",
            &format!("{} to {}", descriptor.digest, target.name()),
        ))?;
    Ok(BlobMove::Uploaded(size_of(descriptor)))
}
