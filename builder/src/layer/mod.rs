//! Reproducible OCI layers from directory trees.
//!
//! A layer is a tar of changes (OCI image-spec "Image Layer Filesystem Changeset"): entries in path
//! order (each directory's names sorted bytewise, a directory before its children), ustar headers
//! with PAX records for long names, large ids and xattrs, uid/gid/mode kept, hard links as tar
//! links, device nodes and FIFOs, mtimes clamped to `SOURCE_DATE_EPOCH` when one is given, and
//! deletions as `.wh.` whiteouts. The tar is compressed (gzip with a fixed header, zstd behind the
//! `zstd` feature, or none) while the diffID (SHA-256 of the tar) and the blob digest and size
//! (of the compressed bytes) are computed in the same single pass.
//!
//! Three sources make a layer ([`LayerSource`]): a whole tree, an overlayfs upperdir (0/0
//! character devices and opaque directories become whiteouts), or a lower/upper pair compared
//! by walking both (the fallback when overlayfs is unavailable).

mod changes;
mod differ;
mod digesting;
pub(crate) mod fs_meta;
mod tar_format;
mod walk;
mod writer;

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use inlay_core::{Compression, Digest, media_types};

use digesting::DigestingWriter;
pub(crate) use writer::{OPAQUE_MARKER, WHITEOUT_PREFIX};

/// Where a layer's changes come from.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum LayerSource<'a> {
    /// Every entry below this directory (the directory itself is not an entry).
    Tree(&'a Path),
    /// An overlayfs upperdir: its whiteout devices and opaque directories become tar whiteouts.
    OverlayUpper(&'a Path),
    /// An overlayfs upperdir over these lowerdirs (bottom first): as [`LayerSource::OverlayUpper`],
    /// but directories overlayfs only copied up, unchanged, are left out.
    OverlayDiff {
        /// The upperdir.
        upper: &'a Path,
        /// The lowerdirs of the mount, bottom first.
        lowers: &'a [PathBuf],
    },
    /// What turns `lower` into `upper`, found by walking and comparing both.
    Diff {
        /// The tree before the step.
        lower: &'a Path,
        /// The tree after the step.
        upper: &'a Path,
    },
}

/// How to write a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerOptions {
    /// Compression of the blob.
    pub compression: Compression,
    /// Clamp every mtime to at most this many seconds since the epoch (`SOURCE_DATE_EPOCH`).
    pub source_date_epoch: Option<u64>,
    /// gzip level 0-9 (BuildKit's default is 6, which is zlib's default too).
    pub gzip_level: u32,
    /// zstd level (BuildKit's default is 3).
    pub zstd_level: i32,
}

impl Default for LayerOptions {
    fn default() -> Self {
        LayerOptions {
            compression: Compression::Gzip,
            source_date_epoch: None,
            gzip_level: 6,
            zstd_level: 3,
        }
    }
}

/// What a written layer is: everything a descriptor and an image config need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerInfo {
    /// SHA-256 of the uncompressed tar (the image config's `rootfs.diff_ids` entry).
    pub diff_id: Digest,
    /// SHA-256 of the blob as written.
    pub digest: Digest,
    /// Size of the blob in bytes.
    pub size: u64,
    /// Size of the uncompressed tar in bytes.
    pub uncompressed_size: u64,
    /// Compression of the blob.
    pub compression: Compression,
}

impl LayerInfo {
    /// The layer media type: OCI (`oci = true`) or Docker schema 2.
    pub fn media_type(&self, oci: bool) -> &'static str {
        media_types::layer_type(self.compression, oci)
    }
}

/// Why a layer could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LayerError {
    /// Reading the source tree failed.
    #[error("reading {path}")]
    Read {
        /// The path being read.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A file changed size while it was being written into the layer.
    #[error("{path} changed while the layer was written")]
    Changed {
        /// The file.
        path: PathBuf,
    },
    /// Writing the blob (or compressing it) failed.
    #[error("writing the layer blob")]
    Write(#[source] io::Error),
    /// The compression is not compiled in (zstd needs the `zstd` feature).
    #[error("compression {0:?} is not available in this build")]
    UnsupportedCompression(Compression),
}

impl LayerError {
    pub(crate) fn io(path: &Path, source: io::Error) -> LayerError {
        LayerError::Read {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn write(source: io::Error) -> LayerError {
        LayerError::Write(source)
    }
}

/// Writes the layer of `source` into `out` and says what it is. `out` receives exactly the blob
/// bytes; nothing is read twice.
pub fn write_layer<W: Write>(
    source: LayerSource<'_>,
    out: W,
    options: &LayerOptions,
) -> Result<(LayerInfo, W), LayerError> {
    let changes = match source {
        LayerSource::Tree(root) => walk::collect(root, walk::TreeKind::Plain)?,
        LayerSource::OverlayUpper(upper) => {
            walk::collect(upper, walk::TreeKind::OverlayUpper { lowers: &[] })?
        }
        LayerSource::OverlayDiff { upper, lowers } => {
            walk::collect(upper, walk::TreeKind::OverlayUpper { lowers })?
        }
        LayerSource::Diff { lower, upper } => differ::diff(lower, upper)?,
    };
    let blob = DigestingWriter::new(out);
    let encoder = Encoder::new(blob, options)?;
    let mut emitter =
        writer::TarEmitter::new(DigestingWriter::new(encoder), options.source_date_epoch);
    for change in &changes {
        emitter.emit(change)?;
    }
    let tar = emitter.finish()?;
    let (encoder, diff_id, uncompressed_size) = tar.finish();
    let blob = encoder.finish().map_err(LayerError::write)?;
    let (mut out, digest, size) = blob.finish();
    out.flush().map_err(LayerError::write)?;
    let info = LayerInfo {
        diff_id,
        digest,
        size,
        uncompressed_size,
        compression: options.compression,
    };
    Ok((info, out))
}

/// The compressor between the tar and the blob.
enum Encoder<W: Write> {
    Plain(W),
    Gzip(Box<flate2::write::GzEncoder<W>>),
    #[cfg(feature = "zstd")]
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    fn new(out: W, options: &LayerOptions) -> Result<Self, LayerError> {
        match options.compression {
            Compression::None => Ok(Encoder::Plain(out)),
            // GzBuilder writes mtime 0 and no name, so the header is the same on every run.
            Compression::Gzip => Ok(Encoder::Gzip(Box::new(
                flate2::GzBuilder::new()
                    .write(out, flate2::Compression::new(options.gzip_level.min(9))),
            ))),
            #[cfg(feature = "zstd")]
            Compression::Zstd => Ok(Encoder::Zstd(
                zstd::stream::write::Encoder::new(out, options.zstd_level)
                    .map_err(LayerError::write)?,
            )),
            other => Err(LayerError::UnsupportedCompression(other)),
        }
    }

    fn finish(self) -> io::Result<W> {
        match self {
            Encoder::Plain(w) => Ok(w),
            Encoder::Gzip(g) => g.finish(),
            #[cfg(feature = "zstd")]
            Encoder::Zstd(z) => z.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Plain(w) => w.write(buf),
            Encoder::Gzip(g) => g.write(buf),
            #[cfg(feature = "zstd")]
            Encoder::Zstd(z) => z.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Plain(w) => w.flush(),
            Encoder::Gzip(g) => g.flush(),
            #[cfg(feature = "zstd")]
            Encoder::Zstd(z) => z.flush(),
        }
    }
}
