//! Where the image goes: the registry (with the stages cache artifacts), OCI and docker
//! archives, an unpacked directory, and the `--iidfile`/`--metadata-file` buildx writes.

use std::path::Path;

use inlay_core::Reference;
use inlay_exporter_inline::{
    ArchiveDestination, ArchiveFormat, BlobLocation, BlobMap, PushOptions, write_archive,
};

use super::cache_export::stage_artifacts;
use super::{BuildError, BuildOutput, BuildReport, BuildRequest, Image, Prepared, Session, output};
use crate::progress::ProgressSink;
use crate::solver::{LayerRef, SolveError, SolveOutcome};
use crate::source::ImageSource;
use crate::store::Store;

/// Sends the image to every output: pushes (with the stages cache artifacts when the inline
/// cache is on), OCI and docker archives, `type=local`; then `--iidfile` and `--metadata-file`.
pub(super) fn send(
    request: &BuildRequest,
    session: &Session,
    prepared: &Prepared,
    outcome: &SolveOutcome,
    image: &Image,
    progress: &ProgressSink,
    report: &mut BuildReport,
) -> Result<(), BuildError> {
    let Session {
        client,
        tokio,
        store,
        images,
    } = session;
    let plan = &prepared.plan;
    let built = &image.built;
    let created_at = image.created_at;
    let kept: Vec<&LayerRef> = image.kept.iter().collect();
    // Archives and `type=local` read every layer: fetch the ones the store lacks (lazy cache
    // hits, layers no step extracted) once, into the store, so that two such outputs never
    // download a blob twice.
    if request
        .outputs
        .iter()
        .any(|o| !matches!(o, BuildOutput::Image { .. }))
    {
        report.bytes_pulled += pull_missing(store, images.as_ref(), &kept)?;
    }
    let blobs = blob_map(request, store, outcome, image, true);
    // An archive reads the store's copy even of a layer its push target could mount.
    let archive_blobs = blob_map(request, store, outcome, image, false);
    let spool = store.scratch_dir().map_err(output("spool directory"))?;
    let push_options = PushOptions {
        spool_dir: Some(spool.path().to_path_buf()),
        ..PushOptions::default()
    };
    let mut names = Vec::new();
    for out in &request.outputs {
        match out {
            BuildOutput::Image {
                names: refs, push, ..
            } => {
                let targets = refs
                    .iter()
                    .map(|r| Reference::parse(r))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(output("image name"))?;
                names.extend(targets.iter().map(ToString::to_string));
                if *push {
                    let pushed = tokio
                        .block_on(inlay_exporter_inline::push_image(
                            client,
                            built,
                            &targets,
                            &blobs,
                            &push_options,
                        ))
                        .map_err(output("pushing the image"))?;
                    report.bytes_pushed += pushed.bytes_uploaded;
                    if request.inline_cache.is_some() {
                        push_explain_facts(session, prepared, &targets, built, report);
                        for artifact in stage_artifacts(plan, outcome, built, created_at, report) {
                            for target in &targets {
                                match tokio.block_on(inlay_exporter_inline::push_cache_artifact(
                                    client,
                                    target,
                                    &artifact,
                                    &blobs,
                                    &push_options,
                                )) {
                                    Ok(r) => report.bytes_pushed += r.blobs.bytes_uploaded,
                                    Err(e) => report
                                        .warnings
                                        .push(format!("stages cache for {target}: {e}")),
                                }
                            }
                        }
                    }
                }
            }
            BuildOutput::Oci { dest, names: own } | BuildOutput::Docker { dest, names: own } => {
                let format = if matches!(out, BuildOutput::Oci { .. }) {
                    ArchiveFormat::Oci
                } else {
                    ArchiveFormat::Docker
                };
                let archive_names = archive_names(request, own)?;
                let written = tokio
                    .block_on(write_archive(
                        built,
                        &archive_names,
                        format,
                        &ArchiveDestination::Tar(dest.clone()),
                        &archive_blobs,
                        Some(client),
                        Some(spool.path()),
                    ))
                    .map_err(output(format!("writing {}", dest.display())))?;
                report.bytes_pulled += written.bytes_fetched;
            }
            BuildOutput::Local { dest } => {
                unpack(store, &kept, dest, progress)?;
            }
        }
    }
    write_files(request, built, &names)?;
    Ok(())
}

/// The names of an archive: its own (`name=`, or `-t`), else those of the image outputs.
fn archive_names(request: &BuildRequest, own: &[String]) -> Result<Vec<Reference>, BuildError> {
    let names: Vec<&String> = if own.is_empty() {
        request
            .outputs
            .iter()
            .filter_map(|o| match o {
                BuildOutput::Image { names, .. } => Some(names),
                _ => None,
            })
            .flatten()
            .collect()
    } else {
        own.iter().collect()
    };
    names
        .into_iter()
        .map(|n| Reference::parse(n))
        .collect::<Result<Vec<_>, _>>()
        .map_err(output("image name"))
}

/// Puts every layer in `layers` that the store lacks into it, each once (see
/// [`Store::ensure_blob`]); returns the bytes downloaded.
fn pull_missing(
    store: &Store,
    images: &dyn ImageSource,
    layers: &[&LayerRef],
) -> Result<u64, BuildError> {
    let mut pulled = 0;
    for layer in layers {
        let fetched = store
            .ensure_blob(&layer.digest, || {
                let origin = layer
                    .origin
                    .as_deref()
                    .ok_or_else(|| SolveError::MissingBlob {
                        digest: layer.digest.clone(),
                    })?;
                images.pull_blob(origin, &layer.descriptor(), store)?;
                Ok::<_, SolveError>(())
            })
            .map_err(output(format!("pulling {}", layer.digest)))?;
        if fetched {
            pulled += layer.size;
        }
    }
    Ok(pulled)
}

/// Where each blob of the image can be read from: with `mount`, a layer that already lives in
/// a push target's registry is mounted there rather than uploaded; else the store's file; else
/// the registry it was imported from (lazy hits).
fn blob_map(
    request: &BuildRequest,
    store: &Store,
    outcome: &SolveOutcome,
    image: &Image,
    mount: bool,
) -> BlobMap {
    let built = &image.built;
    let mut blobs = BlobMap::new();
    blobs.insert(
        built.config_descriptor().digest.clone(),
        BlobLocation::Bytes(built.config().clone()),
    );
    let every_layer: Vec<&LayerRef> = outcome
        .results
        .values()
        .flatten()
        .chain(image.kept.iter())
        .collect();
    let push_registries: std::collections::BTreeSet<String> = request
        .outputs
        .iter()
        .filter_map(|o| match o {
            BuildOutput::Image {
                names, push: true, ..
            } => Some(names),
            _ => None,
        })
        .flatten()
        .filter_map(|n| Reference::parse(n).ok())
        .map(|r| r.registry().to_owned())
        .collect();
    for layer in every_layer {
        let origin = layer
            .origin
            .as_deref()
            .and_then(|o| Reference::parse(o).ok());
        if let Some(origin) = origin.filter(|o| mount && push_registries.contains(o.registry())) {
            blobs.insert(layer.digest.clone(), BlobLocation::Registry(origin));
            continue;
        }
        if store.has_blob(&layer.digest) {
            if let Ok(path) = store.blob_path(&layer.digest) {
                blobs.insert(layer.digest.clone(), BlobLocation::File(path));
                continue;
            }
        }
        if let Some(origin) = layer
            .origin
            .as_deref()
            .and_then(|o| Reference::parse(o).ok())
        {
            blobs.insert(layer.digest.clone(), BlobLocation::Registry(origin));
        }
    }
    blobs
}

/// Unpacks the final layers, already in the store ([`pull_missing`]), into `dest`
/// (`type=local`).
fn unpack(
    store: &Store,
    layers: &[&LayerRef],
    dest: &Path,
    progress: &ProgressSink,
) -> Result<(), BuildError> {
    let _ = progress;
    for layer in layers {
        let blob = store
            .open_blob(&layer.digest)
            .map_err(output(format!("opening {}", layer.digest)))?;
        crate::extract::extract(blob, dest, &crate::extract::ExtractOptions::default())
            .map_err(output(format!("unpacking into {}", dest.display())))?;
    }
    Ok(())
}

/// `--iidfile` and `--metadata-file`, as buildx writes them.
fn write_files(
    request: &BuildRequest,
    built: &inlay_exporter_inline::BuiltImage,
    names: &[String],
) -> Result<(), BuildError> {
    if let Some(path) = &request.iidfile {
        std::fs::write(path, built.digest().to_string())
            .map_err(output(format!("writing {}", path.display())))?;
    }
    if let Some(path) = &request.metadata_file {
        let mut meta = serde_json::Map::new();
        meta.insert(
            "containerimage.config.digest".to_owned(),
            built.config_descriptor().digest.to_string().into(),
        );
        meta.insert(
            "containerimage.digest".to_owned(),
            built.digest().to_string().into(),
        );
        if !names.is_empty() {
            meta.insert("image.name".to_owned(), names.join(",").into());
        }
        let text = serde_json::to_vec_pretty(&meta).map_err(output("metadata"))?;
        std::fs::write(path, text).map_err(output(format!("writing {}", path.display())))?;
    }
    Ok(())
}

/// Pushes what a later `--check` needs to explain a miss precisely (the explain facts
/// artifact) beside each pushed image; a failure is a warning.
fn push_explain_facts(
    session: &Session,
    prepared: &Prepared,
    targets: &[Reference],
    built: &inlay_exporter_inline::BuiltImage,
    report: &mut BuildReport,
) {
    let facts = super::explain_facts::facts(prepared);
    for target in targets {
        match session
            .tokio
            .block_on(inlay_exporter_inline::push_explain_artifact(
                &session.client,
                target,
                built.manifest_descriptor(),
                &facts,
                &PushOptions::default(),
            )) {
            Ok(r) => report.bytes_pushed += r.blobs.bytes_uploaded,
            Err(e) => report
                .warnings
                .push(format!("explain facts for {target}: {e}")),
        }
    }
}
