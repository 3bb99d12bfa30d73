//! Copying trees with their metadata (the copy snapshotter's fallback for overlayfs): ownership
//! (as root), mode, xattrs, nanosecond mtimes and hard links kept, so the walk-and-compare differ
//! sees unchanged files as unchanged. When merging layer directories, whiteouts in either form
//! (overlayfs 0/0 devices and opaque xattrs, or the tar's `.wh.` files kept without root) delete
//! what lower directories put there.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::layer::fs_meta;
use crate::layer::{OPAQUE_MARKER, WHITEOUT_PREFIX};

/// Copies (merging) the tree `src` onto `dst`.
pub(crate) struct TreeCopier {
    /// Read overlay/tar whiteouts in `src` as deletions instead of copying them.
    whiteouts: bool,
    as_root: bool,
    links: HashMap<(u64, u64), PathBuf>,
}

impl TreeCopier {
    pub(crate) fn new(whiteouts: bool) -> Self {
        TreeCopier {
            whiteouts,
            as_root: fs_meta::running_as_root(),
            links: HashMap::new(),
        }
    }

    /// Merges the contents of `src` into the existing directory `dst`.
    pub(crate) fn copy_into(&mut self, src: &Path, dst: &Path) -> io::Result<()> {
        if self.whiteouts && is_opaque(src)? {
            clear_dir(dst)?;
        }
        let mut names: Vec<_> = std::fs::read_dir(src)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        for name in names {
            let (s, d) = (src.join(&name), dst.join(&name));
            let meta = std::fs::symlink_metadata(&s)?;
            let ft = meta.file_type();
            if self.whiteouts {
                let bytes = name.as_bytes();
                if bytes == OPAQUE_MARKER.as_bytes() {
                    continue;
                }
                if ft.is_char_device() && meta.rdev() == 0 {
                    remove_any(&d)?;
                    continue;
                }
                if let Some(deleted) = bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
                    if matches!(deleted, b"" | b"." | b"..") {
                        continue;
                    }
                    remove_any(&dst.join(std::ffi::OsStr::from_bytes(deleted)))?;
                    continue;
                }
            }
            if ft.is_dir() {
                match std::fs::symlink_metadata(&d) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => {
                        remove_any(&d)?;
                        std::fs::create_dir(&d)?;
                    }
                    Err(_) => std::fs::create_dir(&d)?,
                }
                self.copy_into(&s, &d)?;
                self.copy_meta(&s, &d, &meta)?;
                continue;
            }
            remove_any(&d)?;
            if ft.is_file() {
                let key = (meta.dev(), meta.ino());
                if meta.nlink() > 1 {
                    if let Some(first) = self.links.get(&key) {
                        std::fs::hard_link(first, &d)?;
                        continue;
                    }
                    self.links.insert(key, d.clone());
                }
                let mut from = std::fs::File::open(&s)?;
                let mut to = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&d)?;
                io::copy(&mut from, &mut to)?;
            } else if ft.is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(&s)?, &d)?;
            } else if ft.is_char_device() || ft.is_block_device() || ft.is_fifo() {
                if !self.as_root && !ft.is_fifo() {
                    continue;
                }
                let kind = if ft.is_char_device() {
                    rustix::fs::FileType::CharacterDevice
                } else if ft.is_block_device() {
                    rustix::fs::FileType::BlockDevice
                } else {
                    rustix::fs::FileType::Fifo
                };
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &d,
                    kind,
                    rustix::fs::Mode::from_raw_mode(0o600),
                    meta.rdev(),
                )?;
            } else {
                continue;
            }
            self.copy_meta(&s, &d, &meta)?;
        }
        Ok(())
    }

    fn copy_meta(&self, src: &Path, dst: &Path, meta: &std::fs::Metadata) -> io::Result<()> {
        if self.as_root {
            std::os::unix::fs::lchown(dst, Some(meta.uid()), Some(meta.gid()))?;
        }
        if !meta.file_type().is_symlink() {
            std::fs::set_permissions(dst, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        }
        for (name, value) in fs_meta::read_xattrs(src)? {
            if fs_meta::is_host_xattr(&name) {
                continue;
            }
            if let Err(e) = fs_meta::write_xattr(dst, &name, &value) {
                if self.as_root {
                    return Err(e);
                }
            }
        }
        fs_meta::set_times(dst, meta.mtime(), meta.mtime_nsec() as u32)
    }
}

fn is_opaque(dir: &Path) -> io::Result<bool> {
    if dir.join(OPAQUE_MARKER).exists() {
        return Ok(true);
    }
    Ok(fs_meta::read_xattr(dir, fs_meta::OVERLAY_OPAQUE.as_bytes())?.as_deref() == Some(b"y"))
}

fn clear_dir(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        remove_any(&entry?.path())?;
    }
    Ok(())
}

pub(crate) fn remove_any(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}
