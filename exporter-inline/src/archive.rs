//! `type=oci` and `type=docker` outputs: the image as an OCI image layout (a directory or a tar of
//! one) or as a docker archive for `docker load`.
//!
//! Both share one layout: `oci-layout`, `index.json` and `blobs/sha256/<hex>` for the config, the
//! manifest and every layer. A docker archive adds `manifest.json` (`Config`, `RepoTags`,
//! `Layers`, paths into `blobs/`), which is what docker 20.10's `docker load` reads; it accepts
//! compressed layer files and checks their uncompressed digests against the config. This is
//! also the shape containerd's archive exporter (and so BuildKit's docker exporter) writes.
//!
//! Tars are written deterministically: fixed order, zero times, owner 0, modes 0644/0755.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use inlay_core::image::ImageIndex;
use inlay_core::{Descriptor, Digest, Reference, media_types};
use inlay_registry::Client;

use crate::error::ExportError;
use crate::image::BuiltImage;
use crate::source::{BlobLocation, BlobSource, Spooled, verify_file};

/// The annotation with the image's full name, as containerd and BuildKit write it in
/// `index.json`.
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// The OCI annotation with the reference's tag (`org.opencontainers.image.ref.name`).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The archive kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArchiveFormat {
    /// An OCI image layout.
    Oci,
    /// A docker archive (an OCI layout plus `manifest.json`) for `docker load`.
    Docker,
}

/// Where the archive goes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArchiveDestination {
    /// A directory (created if missing; existing blobs of the same name are replaced).
    Directory(PathBuf),
    /// A tar file (written to a temporary name beside it and renamed when complete).
    Tar(PathBuf),
}

/// What writing an archive did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveReport {
    /// The manifest digest.
    pub digest: Digest,
    /// How many blobs were written (config, manifest, layers).
    pub blobs: usize,
    /// Bytes fetched from registries for blobs that were not local.
    pub bytes_fetched: u64,
}

/// The contents of one archive entry.
enum Content {
    Bytes(Bytes),
    File(PathBuf),
}

/// Writes `image`, named `names` (tags in `index.json`, `RepoTags` in `manifest.json`), as
/// `format` to `destination`. Layers found only in a registry are fetched (verified) with
/// `client`; local files are verified too, so a blob is never written under a wrong name.
pub async fn write_archive(
    image: &BuiltImage,
    names: &[Reference],
    format: ArchiveFormat,
    destination: &ArchiveDestination,
    source: &dyn BlobSource,
    client: Option<&Client>,
    spool_dir: Option<&Path>,
) -> Result<ArchiveReport, ExportError> {
    let spool_dir = spool_dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
    let mut spooled = Vec::new();
    let mut bytes_fetched = 0;
    let mut blobs: Vec<(Digest, Content)> = vec![
        (
            image.config_descriptor().digest.clone(),
            Content::Bytes(image.config().clone()),
        ),
        (
            image.digest().clone(),
            Content::Bytes(image.manifest().clone()),
        ),
    ];
    for layer in image.layers() {
        let d = &layer.descriptor;
        if blobs.iter().any(|(digest, _)| digest == &d.digest) {
            continue;
        }
        let content = match source.locate(&d.digest) {
            Some(BlobLocation::Bytes(bytes)) => {
                if !d.digest.verifies(&bytes) {
                    let mut hasher = d.digest.hasher();
                    hasher.update(&bytes);
                    return Err(ExportError::DigestMismatch {
                        path: PathBuf::from("<memory>"),
                        expected: d.digest.clone(),
                        actual: hasher.finish(),
                    });
                }
                Content::Bytes(bytes)
            }
            Some(BlobLocation::File(path)) => {
                verify_file(&path, &d.digest).await?;
                Content::File(path)
            }
            Some(BlobLocation::Registry(from)) => {
                let client = client.ok_or_else(|| ExportError::MissingBlob {
                    digest: d.digest.clone(),
                })?;
                let s = Spooled::fetch(client, &from, d, &spool_dir).await?;
                bytes_fetched += u64::try_from(d.size).unwrap_or(0);
                let path = s.path().to_owned();
                spooled.push(s);
                Content::File(path)
            }
            None => {
                return Err(ExportError::MissingBlob {
                    digest: d.digest.clone(),
                });
            }
        };
        blobs.push((d.digest.clone(), content));
    }

    let mut entries: Vec<(String, Content)> = vec![
        (
            "oci-layout".to_owned(),
            Content::Bytes(Bytes::from_static(br#"{"imageLayoutVersion":"1.0.0"}"#)),
        ),
        (
            "index.json".to_owned(),
            Content::Bytes(index_json(image, names)),
        ),
    ];
    if format == ArchiveFormat::Docker {
        entries.push((
            "manifest.json".to_owned(),
            Content::Bytes(docker_manifest_json(image, names)),
        ));
    }
    let count = blobs.len();
    entries.extend(
        blobs
            .into_iter()
            .map(|(digest, content)| (blob_path(&digest), content)),
    );
    match destination {
        ArchiveDestination::Directory(dir) => write_directory(dir, &entries)?,
        ArchiveDestination::Tar(path) => write_tar(path, &entries)?,
    }
    drop(spooled);
    Ok(ArchiveReport {
        digest: image.digest().clone(),
        blobs: count,
        bytes_fetched,
    })
}

/// `blobs/<algorithm>/<hex>`.
pub fn blob_path(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm().name(), digest.hex())
}

/// `index.json`: the manifest once per name, with containerd's and OCI's name annotations
/// (once without annotations when there is no name).
fn index_json(image: &BuiltImage, names: &[Reference]) -> Bytes {
    let mut manifests: Vec<Descriptor> = names
        .iter()
        .map(|name| {
            let mut d = image.manifest_descriptor().clone();
            d.annotations
                .insert(ANNOTATION_IMAGE_NAME.to_owned(), name.to_string());
            if let Some(tag) = name.tag() {
                d.annotations
                    .insert(ANNOTATION_REF_NAME.to_owned(), tag.to_owned());
            }
            d
        })
        .collect();
    if manifests.is_empty() {
        manifests.push(image.manifest_descriptor().clone());
    }
    let index = ImageIndex {
        schema_version: 2,
        media_type: Some(media_types::OCI_INDEX.to_owned()),
        artifact_type: None,
        manifests,
        subject: None,
        annotations: std::collections::BTreeMap::new(),
        extra: std::collections::BTreeMap::new(),
    };
    Bytes::from(serde_json::to_vec(&index).expect("an index of descriptors always serialises"))
}

/// `manifest.json` of a docker archive. `RepoTags` holds the familiar `name:tag` of each tagged
/// name (`docker load` tags the image with them); digest-only names cannot be tags.
fn docker_manifest_json(image: &BuiltImage, names: &[Reference]) -> Bytes {
    let repo_tags: Vec<String> = names
        .iter()
        .filter_map(|n| n.tag().map(|tag| n.with_tag(tag).familiar()))
        .collect();
    let layers: Vec<String> = image
        .layers()
        .iter()
        .map(|l| blob_path(&l.descriptor.digest))
        .collect();
    let value = serde_json::json!([{
        "Config": blob_path(&image.config_descriptor().digest),
        "RepoTags": repo_tags,
        "Layers": layers,
    }]);
    Bytes::from(serde_json::to_vec(&value).expect("JSON values always serialise"))
}

fn write_directory(dir: &Path, entries: &[(String, Content)]) -> Result<(), ExportError> {
    for (name, content) in entries {
        let path = dir.join(name);
        let parent = path.parent().unwrap_or(dir);
        std::fs::create_dir_all(parent).map_err(ExportError::io(parent))?;
        let mut tmp = tempfile::NamedTempFile::new_in(parent).map_err(ExportError::io(parent))?;
        match content {
            Content::Bytes(bytes) => tmp.write_all(bytes).map_err(ExportError::io(&path))?,
            Content::File(from) => {
                let mut file = std::fs::File::open(from).map_err(ExportError::io(from))?;
                std::io::copy(&mut file, &mut tmp).map_err(ExportError::io(&path))?;
            }
        }
        tmp.persist(&path)
            .map_err(|e| ExportError::io(&path)(e.error))?;
    }
    Ok(())
}

fn tar_header(size: u64, mode: u32, kind: tar::EntryType) -> tar::Header {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header
}

fn write_tar(path: &Path, entries: &[(String, Content)]) -> Result<(), ExportError> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(parent).map_err(ExportError::io(parent))?;
    let io = ExportError::io;
    let mut builder = tar::Builder::new(tmp.reopen().map_err(io(path))?);
    let mut dirs: Vec<&str> = Vec::new();
    for (name, content) in entries {
        // Parent directories first, once each, as `tar` itself would list them.
        let mut at = 0;
        while let Some(slash) = name[at..].find('/') {
            let dir = &name[..=at + slash];
            if !dirs.contains(&dir) {
                dirs.push(dir);
                let mut header = tar_header(0, 0o755, tar::EntryType::Directory);
                builder
                    .append_data(&mut header, dir, std::io::empty())
                    .map_err(io(path))?;
            }
            at += slash + 1;
        }
        match content {
            Content::Bytes(bytes) => {
                let mut header = tar_header(bytes.len() as u64, 0o644, tar::EntryType::Regular);
                builder
                    .append_data(&mut header, name, &bytes[..])
                    .map_err(io(path))?;
            }
            Content::File(from) => {
                let file = std::fs::File::open(from).map_err(io(from))?;
                let len = file.metadata().map_err(io(from))?.len();
                let mut header = tar_header(len, 0o644, tar::EntryType::Regular);
                builder
                    .append_data(&mut header, name, file)
                    .map_err(io(path))?;
            }
        }
    }
    let mut file = builder.into_inner().map_err(io(path))?;
    file.flush().map_err(io(path))?;
    tmp.persist(path).map_err(|e| io(path)(e.error))?;
    Ok(())
}
