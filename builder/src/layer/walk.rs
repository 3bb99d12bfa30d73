//! Walking one directory tree (a whole rootfs, or an overlayfs upperdir) into layer changes, in
//! path order: each directory's names sorted bytewise, a directory before its children.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::LayerError;
use super::changes::Change;
use super::fs_meta;

/// How to read special entries of the walked tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TreeKind {
    /// A plain tree: everything in it is content.
    Plain,
    /// An overlayfs upperdir: a 0/0 character device is a whiteout and a directory with
    /// `trusted.overlay.opaque=y` (or `user.overlay.opaque=y` under `userxattr`) is opaque, as
    /// the kernel's overlayfs documentation describes.
    OverlayUpper,
}

/// Every change the tree under `root` records.
pub(crate) fn collect(root: &Path, kind: TreeKind) -> Result<Vec<Change>, LayerError> {
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
    kind: TreeKind,
    out: &mut Vec<Change>,
) -> Result<(), LayerError> {
    for name in sorted_names(dir_abs)? {
        let source = dir_abs.join(&name);
        let name = rel.join(&name);
        let meta = std::fs::symlink_metadata(&source).map_err(|e| LayerError::io(&source, e))?;
        let file_type = meta.file_type();
        if kind == TreeKind::OverlayUpper && file_type.is_char_device() && meta.rdev() == 0 {
            out.push(Change::Whiteout { name });
            continue;
        }
        let is_dir = file_type.is_dir();
        let opaque = is_dir && kind == TreeKind::OverlayUpper && is_opaque(&source)?;
        out.push(Change::Add {
            name: name.clone(),
            source: source.clone(),
        });
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
