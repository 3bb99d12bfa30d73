//! Walking one directory tree (a whole rootfs, or an overlayfs upperdir) into layer changes, in
//! path order: each directory's names sorted bytewise, a directory before its children.

use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::LayerError;
use super::changes::Change;
use super::fs_meta;

/// How to read special entries of the walked tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TreeKind<'a> {
    /// A plain tree: everything in it is content.
    Plain,
    /// An overlayfs upperdir: a 0/0 character device is a whiteout and a directory with
    /// `trusted.overlay.opaque=y` (or `user.overlay.opaque=y` under `userxattr`) is opaque, as
    /// the kernel's overlayfs documentation describes. With the lowers (bottom first), a
    /// directory that overlayfs merely copied up, with the metadata it has below, is not an
    /// entry of its own (its changed children still are), as BuildKit's overlay differ does.
    OverlayUpper { lowers: &'a [PathBuf] },
}

/// Every change the tree under `root` records.
pub(crate) fn collect(root: &Path, kind: TreeKind<'_>) -> Result<Vec<Change>, LayerError> {
    let mut out = Vec::new();
    walk(root, Path::new(""), kind, &mut out)?;
    Ok(out)
}

/// The names in `dir`, sorted bytewise (the order the layer lists them in).
pub(crate) fn sorted_names(dir: &Path) -> Result<Vec<OsString>, LayerError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| LayerError::io(dir, e))? {
        names.push(entry.map_err(|e| LayerError::io(dir, e))?.file_name());
    }
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    Ok(names)
}

/// Appends the whole subtree at `dir_abs` (known as `rel` in the layer), `dir_abs` excluded.
pub(crate) fn walk(
    dir_abs: &Path,
    rel: &Path,
    kind: TreeKind<'_>,
    out: &mut Vec<Change>,
) -> Result<(), LayerError> {
    for name in sorted_names(dir_abs)? {
        let source = dir_abs.join(&name);
        let name = rel.join(&name);
        let meta = std::fs::symlink_metadata(&source).map_err(|e| LayerError::io(&source, e))?;
        let file_type = meta.file_type();
        let lowers = match kind {
            TreeKind::OverlayUpper { lowers } => Some(lowers),
            TreeKind::Plain => None,
        };
        if lowers.is_some() && file_type.is_char_device() && meta.rdev() == 0 {
            out.push(Change::Whiteout { name });
            continue;
        }
        let is_dir = file_type.is_dir();
        let opaque = is_dir && lowers.is_some() && is_opaque(&source)?;
        let copied_up = match lowers {
            Some(lowers) if is_dir && !opaque => unchanged_copy_up(&source, &meta, &name, lowers)
                .map_err(|e| LayerError::io(&source, e))?,
            _ => false,
        };
        if !copied_up {
            out.push(Change::Add {
                name: name.clone(),
                source: source.clone(),
            });
        }
        if opaque {
            out.push(Change::Opaque { dir: name.clone() });
        }
        if is_dir {
            walk(&source, &name, kind, out)?;
        }
    }
    Ok(())
}

/// Whether an upperdir directory hides the lower directories' contents.
pub(crate) fn is_opaque(dir: &Path) -> Result<bool, LayerError> {
    for name in [fs_meta::OVERLAY_OPAQUE, "user.overlay.opaque"] {
        let value =
            fs_meta::read_xattr(dir, name.as_bytes()).map_err(|e| LayerError::io(dir, e))?;
        if value.as_deref() == Some(b"y") {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Whether the upper directory `rel` is visible in the lowers (topmost first, stopping at
/// whiteouts, non-directories and opaque directories) as a directory with the same metadata.
fn unchanged_copy_up(
    upper: &Path,
    upper_meta: &std::fs::Metadata,
    rel: &Path,
    lowers: &[PathBuf],
) -> io::Result<bool> {
    'lowers: for lower in lowers.iter().rev() {
        // Walk the ancestors without following anything: a non-directory hides everything
        // below it, an opaque directory hides the lowers further down.
        let mut path = lower.clone();
        let mut hides_below = false;
        let ancestors: Vec<_> = rel
            .parent()
            .into_iter()
            .flat_map(Path::components)
            .collect();
        for part in ancestors {
            path.push(part);
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => {
                    let opaque = fs_meta::read_xattr(&path, fs_meta::OVERLAY_OPAQUE.as_bytes())?;
                    hides_below |= opaque.as_deref() == Some(b"y");
                }
                Ok(_) => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if hides_below {
                        return Ok(false);
                    }
                    continue 'lowers;
                }
                Err(e) => return Err(e),
            }
        }
        let candidate = lower.join(rel);
        match std::fs::symlink_metadata(&candidate) {
            Ok(m) if m.is_dir() => return same_dir_metadata(&m, upper_meta, &candidate, upper),
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if hides_below {
                    return Ok(false);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

fn same_dir_metadata(
    lower: &std::fs::Metadata,
    upper: &std::fs::Metadata,
    lower_path: &Path,
    upper_path: &Path,
) -> io::Result<bool> {
    let same = lower.mode() == upper.mode()
        && lower.uid() == upper.uid()
        && lower.gid() == upper.gid()
        && lower.mtime() == upper.mtime()
        && lower.mtime_nsec() == upper.mtime_nsec();
    if !same {
        return Ok(false);
    }
    let strip = |map: std::collections::BTreeMap<Vec<u8>, Vec<u8>>| {
        map.into_iter()
            .filter(|(k, _)| !fs_meta::is_host_xattr(k))
            .collect::<Vec<_>>()
    };
    Ok(strip(fs_meta::read_xattrs(lower_path)?) == strip(fs_meta::read_xattrs(upper_path)?))
}
