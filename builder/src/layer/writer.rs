//! Turns an ordered list of [`Change`]s into tar bytes: metadata read with `lstat`, hard links
//! kept as tar links, mtimes clamped to `SOURCE_DATE_EPOCH`, whiteouts as `.wh.` entries.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::LayerError;
use super::changes::Change;
use super::fs_meta;
use super::tar_format::{self, EntryHeader, Kind};

/// The tar entry a deletion becomes (OCI image-spec, "Whiteouts").
pub(crate) const WHITEOUT_PREFIX: &str = ".wh.";
/// The tar entry that marks an opaque directory.
pub(crate) const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// Writes tar entries for changes, remembering inodes so later names of a file become links.
pub(crate) struct TarEmitter<W> {
    out: W,
    source_date_epoch: Option<u64>,
    /// `(dev, ino)` of regular files with several links → the name they were first written as.
    links: HashMap<(u64, u64), Vec<u8>>,
    buf: Vec<u8>,
}

impl<W: Write> TarEmitter<W> {
    pub(crate) fn new(out: W, source_date_epoch: Option<u64>) -> Self {
        TarEmitter {
            out,
            source_date_epoch,
            links: HashMap::new(),
            buf: vec![0; 128 * 1024],
        }
    }

    /// Writes one change.
    pub(crate) fn emit(&mut self, change: &Change) -> Result<(), LayerError> {
        match change {
            Change::Add { name, source } => self.add(name, source),
            Change::Whiteout { name } => {
                let marker = sibling(name, WHITEOUT_PREFIX);
                self.marker(marker)
            }
            Change::Opaque { dir } => {
                let mut marker = dir.as_os_str().as_bytes().to_vec();
                marker.push(b'/');
                marker.extend_from_slice(OPAQUE_MARKER.as_bytes());
                self.marker(marker)
            }
        }
    }

    /// Writes the end-of-archive blocks and hands back the writer.
    pub(crate) fn finish(mut self) -> Result<W, LayerError> {
        tar_format::write_trailer(&mut self.out).map_err(LayerError::write)?;
        Ok(self.out)
    }

    fn marker(&mut self, name: Vec<u8>) -> Result<(), LayerError> {
        // Whiteouts carry no metadata of their own; a fixed mode and time keep them stable.
        let header = EntryHeader {
            name,
            kind: Kind::Regular,
            mode: 0o644,
            mtime: self.clamp(0),
            ..EntryHeader::default()
        };
        tar_format::write_header(&mut self.out, &header).map_err(LayerError::write)
    }

    fn clamp(&self, mtime: i64) -> u64 {
        let mtime = u64::try_from(mtime).unwrap_or(0);
        match self.source_date_epoch {
            Some(epoch) => mtime.min(epoch),
            None => mtime,
        }
    }

    fn add(&mut self, name: &Path, source: &Path) -> Result<(), LayerError> {
        let meta = std::fs::symlink_metadata(source).map_err(|e| LayerError::io(source, e))?;
        let file_type = meta.file_type();
        let mut header = EntryHeader {
            name: name.as_os_str().as_bytes().to_vec(),
            mode: meta.mode() & 0o7777,
            uid: u64::from(meta.uid()),
            gid: u64::from(meta.gid()),
            mtime: self.clamp(meta.mtime()),
            ..EntryHeader::default()
        };
        let mut content = None;
        if file_type.is_dir() {
            header.kind = Kind::Directory;
            header.name.push(b'/');
        } else if file_type.is_file() {
            let key = (meta.dev(), meta.ino());
            let first = if meta.nlink() > 1 {
                self.links.get(&key).cloned()
            } else {
                None
            };
            if let Some(target) = first {
                header.kind = Kind::HardLink;
                header.link_name = target;
            } else {
                if meta.nlink() > 1 {
                    self.links.insert(key, header.name.clone());
                }
                header.kind = Kind::Regular;
                header.size = meta.size();
                content = Some(File::open(source).map_err(|e| LayerError::io(source, e))?);
            }
        } else if file_type.is_symlink() {
            header.kind = Kind::Symlink;
            let target = std::fs::read_link(source).map_err(|e| LayerError::io(source, e))?;
            header.link_name = target.as_os_str().as_bytes().to_vec();
        } else if file_type.is_char_device() || file_type.is_block_device() {
            header.kind = if file_type.is_char_device() {
                Kind::Char
            } else {
                Kind::Block
            };
            header.dev_major = rustix::fs::major(meta.rdev());
            header.dev_minor = rustix::fs::minor(meta.rdev());
        } else if file_type.is_fifo() {
            header.kind = Kind::Fifo;
        } else {
            // Sockets belong to a running process, not to an image; Docker skips them too.
            tracing::debug!(path = %source.display(), "skipping socket");
            return Ok(());
        }
        header.xattrs = fs_meta::read_xattrs(source)
            .map_err(|e| LayerError::io(source, e))?
            .into_iter()
            .filter(|(k, _)| !fs_meta::is_host_xattr(k))
            .collect();
        tar_format::write_header(&mut self.out, &header).map_err(LayerError::write)?;
        if let Some(file) = content {
            self.copy_exact(file, header.size, source)?;
            let pad = tar_format::padding(header.size);
            self.out
                .write_all(&[0u8; tar_format::BLOCK][..pad])
                .map_err(LayerError::write)?;
        }
        Ok(())
    }

    /// Copies exactly `size` bytes; a file that shrank or grew since `lstat` is an error rather
    /// than a corrupt tar.
    fn copy_exact(&mut self, mut file: File, size: u64, source: &Path) -> Result<(), LayerError> {
        let mut left = size;
        while left > 0 {
            let want = self
                .buf
                .len()
                .min(usize::try_from(left).unwrap_or(usize::MAX));
            let n = match file.read(&mut self.buf[..want]) {
                Ok(0) => {
                    return Err(LayerError::Changed {
                        path: source.to_path_buf(),
                    });
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(LayerError::io(source, e)),
            };
            self.out
                .write_all(&self.buf[..n])
                .map_err(LayerError::write)?;
            left -= n as u64;
        }
        let mut probe = [0u8; 1];
        if file
            .read(&mut probe)
            .map_err(|e| LayerError::io(source, e))?
            != 0
        {
            return Err(LayerError::Changed {
                path: source.to_path_buf(),
            });
        }
        Ok(())
    }
}

/// `<dir>/<prefix><base>` for `name`.
fn sibling(name: &Path, prefix: &str) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(parent) = name.parent().filter(|p| !p.as_os_str().is_empty()) {
        out.extend_from_slice(parent.as_os_str().as_bytes());
        out.push(b'/');
    }
    out.extend_from_slice(prefix.as_bytes());
    out.extend_from_slice(name.file_name().map(OsStrExt::as_bytes).unwrap_or_default());
    out
}
