//! The walk-and-compare differ, for when no overlayfs upperdir exists: compares a lower tree with
//! an upper tree that started as its copy and lists what the upper adds, changes and deletes
//! (deletions become whiteouts). Like containerd's double-walking differ, a file whose size and
//! nanosecond mtime match is unchanged, except that a zero nanosecond part (a filesystem or copy
//! that truncated timestamps) makes it compare contents.

use std::fs::{File, Metadata};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::LayerError;
use super::changes::Change;
use super::fs_meta;
use super::walk::{self, TreeKind};

/// Changes that turn `lower` into `upper`.
pub(crate) fn diff(lower: &Path, upper: &Path) -> Result<Vec<Change>, LayerError> {
    let mut out = Vec::new();
    diff_dir(lower, upper, Path::new(""), &mut out)?;
    Ok(out)
}

fn diff_dir(
    lower: &Path,
    upper: &Path,
    rel: &Path,
    out: &mut Vec<Change>,
) -> Result<(), LayerError> {
    let lower_names = walk::sorted_names(lower)?;
    let upper_names = walk::sorted_names(upper)?;
    let mut names: Vec<_> = lower_names.iter().chain(upper_names.iter()).collect();
    names.sort_by(|a, b| {
        use std::os::unix::ffi::OsStrExt;
        a.as_bytes().cmp(b.as_bytes())
    });
    names.dedup();
    for name in names {
        let (l, u) = (lower.join(name), upper.join(name));
        let name = rel.join(name);
        let lmeta = lstat_opt(&l)?;
        let umeta = lstat_opt(&u)?;
        match (lmeta, umeta) {
            (Some(_), None) => out.push(Change::Whiteout { name }),
            (None, Some(um)) => {
                out.push(Change::Add {
                    name: name.clone(),
                    source: u.clone(),
                });
                if um.is_dir() {
                    walk::walk(&u, &name, TreeKind::Plain, out)?;
                }
            }
            (Some(lm), Some(um)) => {
                if lm.is_dir() && um.is_dir() {
                    let mut below = Vec::new();
                    diff_dir(&l, &u, &name, &mut below)?;
                    // The parent comes along when a child changed, so extraction sees the
                    // directory's own metadata as the upper has it.
                    if !below.is_empty() || !same(&lm, &um, &l, &u)? {
                        out.push(Change::Add {
                            name: name.clone(),
                            source: u.clone(),
                        });
                        out.extend(below);
                    }
                } else if !same(&lm, &um, &l, &u)? {
                    out.push(Change::Add {
                        name: name.clone(),
                        source: u.clone(),
                    });
                    if um.is_dir() {
                        walk::walk(&u, &name, TreeKind::Plain, out)?;
                    }
                }
            }
            (None, None) => {}
        }
    }
    Ok(())
}

fn lstat_opt(path: &Path) -> Result<Option<Metadata>, LayerError> {
    match std::fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(LayerError::io(path, e)),
    }
}

/// Whether two entries are the same as far as a layer is concerned.
fn same(lm: &Metadata, um: &Metadata, l: &Path, u: &Path) -> Result<bool, LayerError> {
    if lm.file_type() != um.file_type()
        || lm.mode() != um.mode()
        || lm.uid() != um.uid()
        || lm.gid() != um.gid()
        || lm.mtime() != um.mtime()
        || lm.mtime_nsec() != um.mtime_nsec()
    {
        return Ok(false);
    }
    let ft = lm.file_type();
    if !ft.is_dir() && (lm.size() != um.size() || lm.rdev() != um.rdev()) {
        return Ok(false);
    }
    if ft.is_symlink() {
        let a = std::fs::read_link(l).map_err(|e| LayerError::io(l, e))?;
        let b = std::fs::read_link(u).map_err(|e| LayerError::io(u, e))?;
        if a != b {
            return Ok(false);
        }
    }
    let xl = fs_meta::read_xattrs(l).map_err(|e| LayerError::io(l, e))?;
    let xu = fs_meta::read_xattrs(u).map_err(|e| LayerError::io(u, e))?;
    if xl != xu {
        return Ok(false);
    }
    if ft.is_file() && um.mtime_nsec() == 0 {
        return same_content(l, u);
    }
    Ok(true)
}

fn same_content(lower: &Path, upper: &Path) -> Result<bool, LayerError> {
    let mut lower_file = File::open(lower).map_err(|e| LayerError::io(lower, e))?;
    let mut upper_file = File::open(upper).map_err(|e| LayerError::io(upper, e))?;
    let (mut lower_buf, mut upper_buf) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    loop {
        let lower_len =
            read_full(&mut lower_file, &mut lower_buf).map_err(|e| LayerError::io(lower, e))?;
        let upper_len =
            read_full(&mut upper_file, &mut upper_buf).map_err(|e| LayerError::io(upper, e))?;
        if lower_len != upper_len || lower_buf[..lower_len] != upper_buf[..upper_len] {
            return Ok(false);
        }
        if lower_len == 0 {
            return Ok(true);
        }
    }
}

fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
