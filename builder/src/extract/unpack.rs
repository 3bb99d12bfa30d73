//! Applying tar entries one by one under a root directory, path-safely.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tar::EntryType;

use super::resolve::{self, ResolveError, Resolved};
use super::{ExtractError, WhiteoutMode};
use crate::layer::fs_meta;
use crate::layer::{OPAQUE_MARKER, WHITEOUT_PREFIX};

/// State across the entries of one archive.
pub(crate) struct Unpacker {
    root: PathBuf,
    mode: WhiteoutMode,
    as_root: bool,
    /// Paths (relative, symlinks resolved) this archive wrote → whether each is a directory.
    seen: HashMap<PathBuf, bool>,
    /// Directory mtimes, applied at the end because writing children changes them.
    dir_times: Vec<(PathBuf, i64)>,
    /// File content bytes this archive may still write. Counted apart from the tar stream: the
    /// holes of a GNU sparse entry cost a few header bytes yet are written out as zeros.
    write_budget: u64,
    /// The limit the budget started from, for the error.
    write_limit: u64,
}

impl Unpacker {
    pub(crate) fn new(root: PathBuf, mode: WhiteoutMode, max_written: u64) -> Self {
        Unpacker {
            root,
            mode,
            as_root: fs_meta::running_as_root(),
            seen: HashMap::new(),
            dir_times: Vec::new(),
            write_budget: max_written,
            write_limit: max_written,
        }
    }

    /// Applies one entry.
    pub(crate) fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
    ) -> Result<(), ExtractError> {
        let raw = entry.path_bytes().into_owned();
        let name = String::from_utf8_lossy(&raw).into_owned();
        let components =
            resolve::entry_components(&raw).map_err(|reason| ExtractError::UnsafeName {
                entry: name.clone(),
                reason,
            })?;
        let kind = entry.header().entry_type();
        if matches!(kind, EntryType::XGlobalHeader | EntryType::XHeader) {
            return Ok(());
        }
        // A whiteout in apply mode deletes; it must not create the directories it names.
        let is_deletion = self.mode == WhiteoutMode::Apply
            && components
                .last()
                .is_some_and(|c| c.as_bytes().starts_with(WHITEOUT_PREFIX.as_bytes()));
        let resolved = match resolve::resolve_name(&self.root, &components, !is_deletion) {
            Err(ResolveError::Missing { .. } | ResolveError::NotADirectory { .. })
                if is_deletion =>
            {
                return Ok(());
            }
            other => other.map_err(|e| resolve_error(e, &name))?,
        };
        let Some((parent, base)) = resolved else {
            // The root directory itself: its metadata belongs to whoever made the target.
            return Ok(());
        };
        let base_bytes = base.as_bytes();
        if base_bytes == OPAQUE_MARKER.as_bytes() {
            return self.opaque(&parent, &name);
        }
        if base_bytes.starts_with(b".wh..wh.") {
            // Other AUFS metadata (`.wh..wh.plnk` and friends) carries nothing for an image.
            return Ok(());
        }
        if let Some(deleted) = base_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if deleted.is_empty() || deleted == b"." || deleted == b".." {
                return Err(ExtractError::UnsafeName {
                    entry: name,
                    reason: "is a whiteout of nothing",
                });
            }
            let deleted = std::ffi::OsStr::from_bytes(deleted).to_os_string();
            return self.whiteout(&parent, &deleted, &name);
        }

        let target = parent.abs.join(&base);
        let rel = parent.rel.join(&base);
        let is_dir = kind.is_dir();
        if let Some(&was_dir) = self.seen.get(&rel) {
            if was_dir != is_dir {
                return Err(ExtractError::DuplicateEntry {
                    entry: name,
                    earlier: if was_dir {
                        "directory"
                    } else {
                        "non-directory"
                    },
                });
            }
        }
        let write_err = |source: io::Error| ExtractError::Write {
            entry: name.clone(),
            path: target.clone(),
            source,
        };

        // Whatever is there goes, unless a directory meets a directory (then it is kept and only
        // its metadata changes, as in Docker and containerd).
        match std::fs::symlink_metadata(&target) {
            Ok(existing) if existing.is_dir() && is_dir => {}
            Ok(existing) if existing.is_dir() => {
                std::fs::remove_dir_all(&target).map_err(write_err)?;
            }
            Ok(_) => {
                if kind.is_hard_link() && self.hard_link_source(entry, &name)?.0 == target {
                    // A link to itself: nothing to do.
                    return Ok(());
                }
                std::fs::remove_file(&target).map_err(write_err)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(write_err(e)),
        }

        let pax: Vec<(Vec<u8>, Vec<u8>)> =
            match entry.pax_extensions().map_err(ExtractError::Read)? {
                Some(records) => records
                    .filter_map(Result::ok)
                    .map(|r| (r.key_bytes().to_vec(), r.value_bytes().to_vec()))
                    .collect(),
                None => Vec::new(),
            };
        let header = entry.header().clone();

        if !self.create_node(entry, kind, &target, &rel, &name, &header)? {
            return Ok(());
        }
        self.seen.insert(rel, is_dir);
        self.apply_metadata(&target, &header, &pax, kind, &name)
    }

    /// Creates the file, directory, link or node of an entry; false when it was skipped or needs
    /// no metadata of its own (hard links).
    fn create_node<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        kind: EntryType,
        target: &Path,
        rel: &Path,
        name: &str,
        header: &tar::Header,
    ) -> Result<bool, ExtractError> {
        let write_err = |source: io::Error| ExtractError::Write {
            entry: name.to_owned(),
            path: target.to_path_buf(),
            source,
        };
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                // The size is the expanded one for sparse entries: refuse before writing.
                self.write_budget =
                    self.write_budget
                        .checked_sub(entry.size())
                        .ok_or(ExtractError::TooLarge {
                            limit: self.write_limit,
                        })?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(target)
                    .map_err(write_err)?;
                copy_data(entry, &mut file, &write_err)?;
            }
            EntryType::Directory => match std::fs::create_dir(target) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(write_err(e)),
            },
            EntryType::Symlink => {
                let link = entry
                    .link_name_bytes()
                    .map(std::borrow::Cow::into_owned)
                    .unwrap_or_default();
                // The target is stored as is and never followed here.
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&link), target)
                    .map_err(write_err)?;
            }
            EntryType::Link => {
                let (source, _) = self.hard_link_source(entry, name)?;
                std::fs::hard_link(&source, target).map_err(write_err)?;
                self.seen.insert(rel.to_path_buf(), false);
                // A hard link shares its inode's metadata; nothing more to set.
                return Ok(false);
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let file_type = match kind {
                    EntryType::Char => rustix::fs::FileType::CharacterDevice,
                    EntryType::Block => rustix::fs::FileType::BlockDevice,
                    _ => rustix::fs::FileType::Fifo,
                };
                if kind != EntryType::Fifo && !self.as_root {
                    tracing::warn!(entry = %name, "skipping device node: not running as root");
                    return Ok(false);
                }
                let dev = rustix::fs::makedev(
                    header.device_major().ok().flatten().unwrap_or(0),
                    header.device_minor().ok().flatten().unwrap_or(0),
                );
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    target,
                    file_type,
                    rustix::fs::Mode::from_raw_mode(0o600),
                    dev,
                )
                .map_err(|e| write_err(e.into()))?;
            }
            other => {
                tracing::warn!(entry = %name, kind = ?other, "skipping unsupported entry type");
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Ownership, mode, xattrs and mtime of a freshly written entry. Order matters: chown clears
    /// set-id bits and file capabilities, so mode and xattrs come after it.
    fn apply_metadata(
        &mut self,
        target: &Path,
        header: &tar::Header,
        pax: &[(Vec<u8>, Vec<u8>)],
        kind: EntryType,
        name: &str,
    ) -> Result<(), ExtractError> {
        let write_err = |source: io::Error| ExtractError::Write {
            entry: name.to_owned(),
            path: target.to_path_buf(),
            source,
        };
        let is_dir = kind.is_dir();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;

        let is_symlink = kind == EntryType::Symlink;
        if self.as_root {
            let uid = header.uid().unwrap_or(0);
            let gid = header.gid().unwrap_or(0);
            std::os::unix::fs::lchown(
                target,
                Some(u32::try_from(uid).unwrap_or(u32::MAX)),
                Some(u32::try_from(gid).unwrap_or(u32::MAX)),
            )
            .map_err(write_err)?;
        }
        if !is_symlink {
            std::fs::set_permissions(target, std::fs::Permissions::from_mode(mode))
                .map_err(write_err)?;
        }
        for (key, value) in pax {
            let Some(xattr) = key.strip_prefix(b"SCHILY.xattr.") else {
                continue;
            };
            // An archive must not plant overlayfs bookkeeping (it would change what overlay
            // mounts show) or host labels.
            if fs_meta::is_host_xattr(xattr) {
                continue;
            }
            if let Err(e) = fs_meta::write_xattr(target, xattr, value) {
                let kind = e.raw_os_error();
                let tolerable = !self.as_root
                    || kind == Some(rustix::io::Errno::NOTSUP.raw_os_error())
                    || kind == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error());
                if tolerable {
                    tracing::warn!(entry = %name, xattr = %String::from_utf8_lossy(xattr), error = %e, "skipping xattr");
                } else {
                    return Err(write_err(e));
                }
            }
        }
        let mtime = pax_mtime(pax).unwrap_or_else(|| header.mtime().unwrap_or(0) as i64);
        if is_dir {
            self.dir_times.push((target.to_path_buf(), mtime));
        } else {
            fs_meta::set_times(target, mtime, 0).map_err(write_err)?;
        }
        Ok(())
    }

    /// Sets directory mtimes, deepest first.
    pub(crate) fn finish(self) -> Result<(), ExtractError> {
        for (dir, mtime) in self.dir_times.iter().rev() {
            fs_meta::set_times(dir, *mtime, 0).map_err(|source| ExtractError::Write {
                entry: dir.display().to_string(),
                path: dir.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// The host path a hard link entry points at, checked to be a non-directory inside the root.
    fn hard_link_source<R: Read>(
        &self,
        entry: &tar::Entry<'_, R>,
        name: &str,
    ) -> Result<(PathBuf, PathBuf), ExtractError> {
        let link = entry
            .link_name_bytes()
            .map(std::borrow::Cow::into_owned)
            .unwrap_or_default();
        let target_name = String::from_utf8_lossy(&link).into_owned();
        let bad = |reason: &'static str| ExtractError::BadHardLink {
            entry: name.to_owned(),
            target: target_name.clone(),
            reason,
        };
        let components = resolve::entry_components(&link)
            .map_err(|_| bad("climbs out of the target directory"))?;
        let resolved =
            resolve::resolve_name(&self.root, &components, false).map_err(|e| match e {
                ResolveError::Escape { .. } => {
                    bad("goes through a symlink leading outside the target directory")
                }
                _ => bad("does not exist in the target directory"),
            })?;
        let Some((parent, base)) = resolved else {
            return Err(bad("is the target directory itself"));
        };
        let source = parent.abs.join(&base);
        match std::fs::symlink_metadata(&source) {
            Ok(m) if m.is_dir() => Err(bad("is a directory")),
            Ok(_) => Ok((source, parent.rel.join(base))),
            Err(_) => Err(bad("does not exist in the target directory")),
        }
    }

    fn whiteout(
        &mut self,
        parent: &Resolved,
        deleted: &OsString,
        name: &str,
    ) -> Result<(), ExtractError> {
        let target = parent.abs.join(deleted);
        let write_err = |source: io::Error| ExtractError::Write {
            entry: name.to_owned(),
            path: target.clone(),
            source,
        };
        match self.mode {
            WhiteoutMode::Apply => match std::fs::symlink_metadata(&target) {
                Ok(m) if m.is_dir() => std::fs::remove_dir_all(&target).map_err(write_err),
                Ok(_) => std::fs::remove_file(&target).map_err(write_err),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(write_err(e)),
            },
            WhiteoutMode::Overlay => {
                remove_any(&target).map_err(write_err)?;
                if self.as_root {
                    // The overlayfs whiteout: a character device 0/0.
                    rustix::fs::mknodat(
                        rustix::fs::CWD,
                        &target,
                        rustix::fs::FileType::CharacterDevice,
                        rustix::fs::Mode::empty(),
                        rustix::fs::makedev(0, 0),
                    )
                    .map_err(|e| write_err(e.into()))
                } else {
                    // Without root, keep the tar form; the copy snapshotter reads it.
                    let marker = parent
                        .abs
                        .join(format!("{WHITEOUT_PREFIX}{}", deleted.to_string_lossy()));
                    write_marker(&marker).map_err(write_err)
                }
            }
        }
    }

    fn opaque(&mut self, parent: &Resolved, name: &str) -> Result<(), ExtractError> {
        let write_err = |path: &Path, source: io::Error| ExtractError::Write {
            entry: name.to_owned(),
            path: path.to_path_buf(),
            source,
        };
        match self.mode {
            WhiteoutMode::Apply => self.clear_unseen(&parent.abs, &parent.rel, name),
            WhiteoutMode::Overlay if self.as_root => {
                fs_meta::write_xattr(&parent.abs, fs_meta::OVERLAY_OPAQUE.as_bytes(), b"y")
                    .map_err(|e| write_err(&parent.abs, e))
            }
            WhiteoutMode::Overlay => {
                let marker = parent.abs.join(OPAQUE_MARKER);
                write_marker(&marker).map_err(|e| write_err(&marker, e))
            }
        }
    }

    /// Removes what lower layers left in an opaque directory, keeping this archive's entries.
    fn clear_unseen(&self, abs: &Path, rel: &Path, name: &str) -> Result<(), ExtractError> {
        let write_err = |path: &Path, source: io::Error| ExtractError::Write {
            entry: name.to_owned(),
            path: path.to_path_buf(),
            source,
        };
        for child in std::fs::read_dir(abs).map_err(|e| write_err(abs, e))? {
            let child = child.map_err(|e| write_err(abs, e))?.file_name();
            let (child_abs, child_rel) = (abs.join(&child), rel.join(&child));
            match self.seen.get(&child_rel) {
                Some(true) => self.clear_unseen(&child_abs, &child_rel, name)?,
                Some(false) => {}
                None => remove_any(&child_abs).map_err(|e| write_err(&child_abs, e))?,
            }
        }
        Ok(())
    }
}

/// Writes an empty whiteout marker file, replacing whatever has its name. Never through a
/// symlink: a marker name left as a symlink in the target (by whatever filled it before) would
/// otherwise truncate the file it points at, wherever that is.
fn write_marker(path: &Path) -> io::Result<()> {
    remove_any(path)?;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .map(drop)
}

fn remove_any(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Copies entry data, telling read errors (archive) from write errors (target).
fn copy_data<R: Read>(
    entry: &mut tar::Entry<'_, R>,
    file: &mut std::fs::File,
    write_err: &dyn Fn(io::Error) -> ExtractError,
) -> Result<(), ExtractError> {
    use std::io::Write;
    let mut buf = vec![0u8; 128 * 1024];
    loop {
        let n = match entry.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(ExtractError::Read(e)),
        };
        file.write_all(&buf[..n]).map_err(write_err)?;
    }
}

/// The PAX `mtime` record (seconds, a fraction ignored).
fn pax_mtime(pax: &[(Vec<u8>, Vec<u8>)]) -> Option<i64> {
    let (_, value) = pax.iter().find(|(k, _)| k == b"mtime")?;
    let text = std::str::from_utf8(value).ok()?;
    text.split('.').next()?.parse().ok()
}

pub(crate) fn resolve_error(e: ResolveError, entry: &str) -> ExtractError {
    let entry = entry.to_owned();
    match e {
        ResolveError::Escape { link } => ExtractError::SymlinkEscape { entry, link },
        ResolveError::NotADirectory { component } | ResolveError::Missing { component } => {
            ExtractError::NotADirectory { entry, component }
        }
        ResolveError::Loop => ExtractError::SymlinkLoop { entry },
        ResolveError::Io { path, source } => ExtractError::Write {
            entry,
            path,
            source,
        },
    }
}
