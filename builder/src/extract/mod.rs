//! Applying a layer blob onto a directory, path-safely.
//!
//! The blob may be a plain tar, gzip or zstd (told apart by their magic bytes; zstd needs the
//! `zstd` feature). Entries are written with `lstat`-checked, no-follow operations: names are
//! resolved inside the target directory (symlinks followed as the container would, inside it),
//! and anything that would write outside it — a `..` component, a symlink or hard link leading
//! out, a directory swapped for a symlink by a later duplicate entry — is refused with an error
//! naming the entry. Ownership and device nodes are written only when running as root.
//! Decompression bombs are stopped by limits on the uncompressed stream, on the bytes written to
//! files (a GNU sparse entry can claim terabytes of holes in a few blocks), and on the number of
//! entries; the diffID of what was read is checked when the caller knows it.
//!
//! A refused archive may leave a partly written target directory: callers extract into a fresh
//! directory and keep it only on success (the store does so).

mod error;
pub(crate) mod resolve;
mod unpack;

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::rc::Rc;

use inlay_core::{Algorithm, Compression, Digest, Hasher};

pub use error::ExtractError;

/// How whiteout entries are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WhiteoutMode {
    /// Delete what a whiteout names and clear opaque directories: the target holds the merged
    /// tree (the copy snapshotter, or a flattened rootfs).
    Apply,
    /// Record whiteouts the overlayfs way (a 0/0 character device; `trusted.overlay.opaque=y` on
    /// opaque directories) in a fresh directory that becomes an overlay lowerdir. Without root,
    /// the tar forms (`.wh.` files) are kept instead.
    Overlay,
}

/// How to extract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractOptions {
    /// What whiteouts do.
    pub whiteouts: WhiteoutMode,
    /// Refuse archives whose uncompressed tar, or whose file contents together (sparse holes
    /// included), are larger than this many bytes.
    pub max_uncompressed_size: u64,
    /// Refuse archives with more entries than this (a PAX or GNU long-name header counts as part
    /// of the entry it describes).
    pub max_entries: u64,
    /// When known, the diffID the uncompressed tar must have.
    pub expected_diff_id: Option<Digest>,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions {
            whiteouts: WhiteoutMode::Apply,
            // Far above real layers, far below what a bomb would write.
            max_uncompressed_size: 64 << 30,
            // Real layers hold up to a few hundred thousand files; a flood of tiny entries is a
            // bomb of inodes rather than bytes.
            max_entries: 4 << 20,
            expected_diff_id: None,
        }
    }
}

/// What an extraction read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractReport {
    /// SHA-256 of the uncompressed tar.
    pub diff_id: Digest,
    /// Uncompressed size in bytes.
    pub uncompressed_size: u64,
    /// The compression found by its magic bytes.
    pub compression: Compression,
}

/// Reads the layer from `blob` and applies it onto `target` (created when missing).
pub fn extract(
    blob: impl Read,
    target: &Path,
    options: &ExtractOptions,
) -> Result<ExtractReport, ExtractError> {
    std::fs::create_dir_all(target).map_err(|source| ExtractError::Write {
        entry: String::new(),
        path: target.to_path_buf(),
        source,
    })?;
    let mut input = BufReader::with_capacity(128 * 1024, blob);
    let compression = sniff(&mut input)?;
    let decoded: Box<dyn Read> = match compression {
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        #[cfg(feature = "zstd")]
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(input).map_err(ExtractError::Read)?)
        }
        #[cfg(not(feature = "zstd"))]
        Compression::Zstd => return Err(ExtractError::UnsupportedCompression("zstd")),
        _ => Box::new(input),
    };
    let exceeded = Rc::new(Cell::new(false));
    let counted = CountingReader {
        inner: decoded,
        hasher: Hasher::new(Algorithm::Sha256),
        count: 0,
        limit: options.max_uncompressed_size,
        exceeded: Rc::clone(&exceeded),
    };
    let mut archive = tar::Archive::new(counted);
    let mut unpacker = unpack::Unpacker::new(
        target.to_path_buf(),
        options.whiteouts,
        options.max_uncompressed_size,
    );
    let too_large = |e: ExtractError| {
        if exceeded.get() {
            ExtractError::TooLarge {
                limit: options.max_uncompressed_size,
            }
        } else {
            e
        }
    };
    {
        let entries = archive.entries().map_err(ExtractError::Read)?;
        for (count, entry) in (1u64..).zip(entries) {
            if count > options.max_entries {
                return Err(ExtractError::TooManyEntries {
                    limit: options.max_entries,
                });
            }
            let mut entry = entry.map_err(ExtractError::Read).map_err(too_large)?;
            unpacker.entry(&mut entry).map_err(too_large)?;
        }
    }
    unpacker.finish()?;
    let mut counted = archive.into_inner();
    // The diffID covers the whole tar stream, end-of-archive blocks included.
    io::copy(&mut counted, &mut io::sink())
        .map_err(ExtractError::Read)
        .map_err(too_large)?;
    let (diff_id, size) = (counted.hasher.finish(), counted.count);
    if let Some(expected) = &options.expected_diff_id {
        if *expected != diff_id {
            return Err(ExtractError::DiffIdMismatch {
                expected: expected.clone(),
                actual: diff_id,
            });
        }
    }
    Ok(ExtractReport {
        diff_id,
        uncompressed_size: size,
        compression,
    })
}

/// The compression of a blob, from its first bytes.
fn sniff(input: &mut impl BufRead) -> Result<Compression, ExtractError> {
    let head = input.fill_buf().map_err(ExtractError::Read)?;
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    })
}

/// Hashes and counts the uncompressed tar, failing once it passes the limit.
struct CountingReader<R> {
    inner: R,
    hasher: Hasher,
    count: u64,
    limit: u64,
    exceeded: Rc<Cell<bool>>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if self.count > self.limit {
            self.exceeded.set(true);
            return Err(io::Error::other(
                "uncompressed layer exceeds the size limit",
            ));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
