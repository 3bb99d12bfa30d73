//! File actions (`COPY`, `ADD`, `WORKDIR`'s mkdir, heredoc files, rm, symlink) applied
//! in-process to a directory, with BuildKit's semantics (`solver/llbsolver/file/backend.go` and
//! `tonistiigi/fsutil/copy`): paths resolve inside the root with symlinks followed and `..`
//! clamped, parents are created `0755` owned by the chown user, modes, owners and timestamps are
//! applied to every created entry.
//!
//! The caller prepares the directory (a copy-on-write snapshot of the base input) and turns the
//! changes into a layer afterwards; this module only changes files.

mod copy;
mod owner;
pub mod path;

use std::path::{Path, PathBuf};

use inlay_core::contenthash::{contains_wildcards, path_match};
use inlay_core::op::{FileActionKind, FileMkdir, FileMkfile, FileRm, FileSymlink};

use crate::layer::fs_meta;
pub use copy::copy;
pub use owner::{Owner, resolve_owner};
use path::{clean_keep_slash, root_path, root_path_nofollow};

/// Why a file action failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileOpError {
    /// A filesystem call failed.
    #[error("file action on {path}")]
    Io {
        /// The path (inside the root) involved.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A copy source does not exist (or a wildcard matched nothing).
    #[error("{path} not found")]
    NotFound {
        /// The source path.
        path: String,
    },
    /// A `--chown` user is not in the destination's `/etc/passwd`.
    #[error("unknown user {name:?} in /etc/passwd")]
    UnknownUser {
        /// The user name.
        name: String,
    },
    /// A `--chown` group is not in the destination's `/etc/group`.
    #[error("unknown group {name:?} in /etc/group")]
    UnknownGroup {
        /// The group name.
        name: String,
    },
    /// The action needs a second input that was not given.
    #[error("copy from {src} has no source filesystem")]
    NoSource {
        /// The source path.
        src: String,
    },
    /// The destination's parent does not exist and `createDestPath` is off.
    #[error("failed to stat {path}: parent directory does not exist")]
    NoDestParent {
        /// The destination.
        path: String,
    },
    /// Copying a directory onto something that is not one.
    #[error("cannot copy directory {src} onto non-directory {dest}")]
    NotADirectory {
        /// The source.
        src: String,
        /// The destination.
        dest: String,
    },
    /// The action uses a feature inlay does not implement.
    #[error("unsupported copy option: {what}")]
    Unsupported {
        /// Which option.
        what: &'static str,
    },
    /// An archive could not be unpacked.
    #[error("unpacking {path}: {reason}")]
    Unpack {
        /// The archive.
        path: String,
        /// What went wrong.
        reason: String,
    },
}

impl FileOpError {
    pub(crate) fn io(path: impl Into<String>, source: std::io::Error) -> FileOpError {
        FileOpError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Applies one action to `root`. `source` is the root of the copy source (the secondary
/// input), needed by copies only.
pub fn apply(
    action: &FileActionKind,
    root: &Path,
    source: Option<&Path>,
) -> Result<(), FileOpError> {
    match action {
        FileActionKind::Copy(c) => {
            let src = source.ok_or_else(|| FileOpError::NoSource { src: c.src.clone() })?;
            copy(c, src, root)
        }
        FileActionKind::Mkdir(m) => mkdir(m, root),
        FileActionKind::Mkfile(m) => mkfile(m, root),
        FileActionKind::Rm(r) => rm(r, root),
        FileActionKind::Symlink(s) => symlink(s, root),
        _ => Err(FileOpError::io(
            "/",
            std::io::Error::new(std::io::ErrorKind::Unsupported, "unknown file action"),
        )),
    }
}

/// A file-op timestamp: `-1` keeps the source's times, anything else is Unix nanoseconds
/// (BuildKit `timestampToTime`).
pub(crate) fn timestamp(ts: i64) -> Option<(i64, u32)> {
    (ts >= 0).then(|| {
        (
            ts / 1_000_000_000,
            u32::try_from(ts % 1_000_000_000).unwrap_or(0),
        )
    })
}

/// Applies owner, mode and time to one created entry (never following a symlink).
pub(crate) fn finish_entry(
    path: &Path,
    owner: Option<Owner>,
    mode: Option<u32>,
    time: Option<(i64, u32)>,
    is_symlink: bool,
) -> Result<(), FileOpError> {
    let name = path.display().to_string();
    if let Some(o) = owner {
        std::os::unix::fs::lchown(path, Some(o.uid), Some(o.gid))
            .map_err(|e| FileOpError::io(&name, e))?;
    }
    if let (Some(mode), false) = (mode, is_symlink) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| FileOpError::io(&name, e))?;
    }
    if let Some((secs, nanos)) = time {
        fs_meta::set_times(path, secs, nanos).map_err(|e| FileOpError::io(&name, e))?;
    }
    Ok(())
}

/// `MkdirAll` (a host path) with fsutil's rules: missing directories are created with `mode`, owned by
/// `owner` (root when none) and timestamped; existing ones are left alone.
pub fn mkdir_all(
    path: &Path,
    mode: u32,
    owner: Option<Owner>,
    time: Option<(i64, u32)>,
) -> Result<(), FileOpError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => {
            return Err(FileOpError::io(
                path.display().to_string(),
                std::io::Error::from(std::io::ErrorKind::NotADirectory),
            ));
        }
        Err(_) => {}
    }
    if let Some(parent) = path.parent() {
        mkdir_all(parent, mode, owner, time)?;
    }
    match std::fs::create_dir(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(FileOpError::io(path.display().to_string(), e)),
    }
    let owner = owner.or(fs_meta::running_as_root().then_some(Owner { uid: 0, gid: 0 }));
    finish_entry(path, owner, Some(mode), time, false)
}

fn mode_bits(mode: i32) -> u32 {
    u32::try_from(mode).unwrap_or(0o755) & 0o7777
}

fn mkdir(m: &FileMkdir, root: &Path) -> Result<(), FileOpError> {
    let owner = resolve_owner(root, m.owner.as_ref())?;
    let path = root_path(root, &m.path).map_err(|e| FileOpError::io(&m.path, e))?;
    let time = timestamp(m.timestamp);
    if m.make_parents {
        return mkdir_all(&path, mode_bits(m.mode), owner, time);
    }
    match std::fs::create_dir(&path) {
        Ok(()) => finish_entry(&path, owner, Some(mode_bits(m.mode)), time, false),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(FileOpError::io(&m.path, e)),
    }
}

fn mkfile(m: &FileMkfile, root: &Path) -> Result<(), FileOpError> {
    let owner = resolve_owner(root, m.owner.as_ref())?;
    let path = root_path(root, &m.path).map_err(|e| FileOpError::io(&m.path, e))?;
    if std::fs::symlink_metadata(&path).is_ok_and(|meta| meta.is_dir()) {
        return Err(FileOpError::io(
            &m.path,
            std::io::Error::from(std::io::ErrorKind::IsADirectory),
        ));
    }
    std::fs::write(&path, &m.data).map_err(|e| FileOpError::io(&m.path, e))?;
    finish_entry(
        &path,
        owner,
        Some(mode_bits(m.mode)),
        timestamp(m.timestamp),
        false,
    )
}

fn rm(r: &FileRm, root: &Path) -> Result<(), FileOpError> {
    let targets: Vec<PathBuf> = if r.allow_wildcard && contains_wildcards(&r.path) {
        copy::resolve_wildcards(root, &r.path, false)?
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    } else {
        vec![root_path_nofollow(root, &r.path).map_err(|e| FileOpError::io(&r.path, e))?]
    };
    for target in targets {
        if target == root {
            continue;
        }
        let result = match std::fs::symlink_metadata(&target) {
            Ok(m) if m.is_dir() => std::fs::remove_dir_all(&target),
            Ok(_) => std::fs::remove_file(&target),
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && r.allow_not_found => {}
            Err(e) => return Err(FileOpError::io(&r.path, e)),
        }
    }
    Ok(())
}

fn symlink(s: &FileSymlink, root: &Path) -> Result<(), FileOpError> {
    let owner = resolve_owner(root, s.owner.as_ref())?;
    let path = root_path_nofollow(root, &s.newpath).map_err(|e| FileOpError::io(&s.newpath, e))?;
    std::os::unix::fs::symlink(&s.oldpath, &path).map_err(|e| FileOpError::io(&s.newpath, e))?;
    finish_entry(&path, owner, None, timestamp(s.timestamp), true)
}

/// Whether `name` matches a shell pattern (Go `path.Match`; a bad pattern matches nothing).
pub(crate) fn matches(pattern: &str, name: &str) -> bool {
    path_match(pattern, name).unwrap_or(false)
}

/// BuildKit's `cleanPath` of a file-op path.
pub(crate) fn clean(p: &str) -> String {
    clean_keep_slash(p)
}
