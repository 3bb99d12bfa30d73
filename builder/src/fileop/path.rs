//! Path resolution inside a root directory with the semantics of containerd's `fs.RootPath`,
//! which BuildKit's file ops use: symlinks are followed as the container would see them, and a
//! `..` or absolute link target that would climb above the root stops at the root (clamped,
//! never refused, never followed onto the host).

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Symlinks followed while resolving one path before it counts as a loop.
const MAX_LINKS: u32 = 255;

/// Splits a container path into its normal components, `..` clamped at the root.
fn components(path: &Path) -> Vec<OsString> {
    let mut out: Vec<OsString> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n.to_os_string()),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

/// The host path of container path `path` under `root`, every symlink (the last component's
/// too) followed inside the root. Missing components are kept as they are.
pub fn root_path(root: &Path, path: &str) -> io::Result<PathBuf> {
    resolve(root, path, true)
}

/// Like [`root_path`], but the last component is not followed (it names a symlink itself).
pub fn root_path_nofollow(root: &Path, path: &str) -> io::Result<PathBuf> {
    resolve(root, path, false)
}

fn resolve(root: &Path, path: &str, follow_last: bool) -> io::Result<PathBuf> {
    let mut todo: Vec<OsString> = components(Path::new(path));
    todo.reverse();
    let mut current: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(name) = todo.pop() {
        if name == ".." {
            current.pop();
            continue;
        }
        let mut abs = root.to_path_buf();
        abs.extend(&current);
        abs.push(&name);
        let is_last = todo.is_empty();
        match std::fs::symlink_metadata(&abs) {
            Ok(meta) if meta.file_type().is_symlink() && (!is_last || follow_last) => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(io::Error::other(format!("too many links resolving {path}")));
                }
                let target = std::fs::read_link(&abs)?;
                if target.is_absolute() {
                    current.clear();
                }
                let mut parts: Vec<OsString> = Vec::new();
                for c in target.components() {
                    match c {
                        Component::Normal(n) => parts.push(n.to_os_string()),
                        Component::ParentDir => parts.push(OsString::from("..")),
                        _ => {}
                    }
                }
                for p in parts.into_iter().rev() {
                    todo.push(p);
                }
            }
            _ => current.push(name),
        }
    }
    let mut out = root.to_path_buf();
    out.extend(&current);
    Ok(out)
}

/// Go's `path.Clean("/" + p)`, keeping a trailing slash (BuildKit's `cleanPath` for file-op
/// paths: a trailing slash means "a directory").
pub fn clean_keep_slash(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    let mut out = format!("/{}", parts.join("/"));
    if (p.ends_with('/') || p.ends_with("/.")) && out != "/" {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_inside_and_clamp_at_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::os::unix::fs::symlink("/usr/lib", root.join("lib")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", root.join("usr/up")).unwrap();
        assert_eq!(root_path(root, "/lib/x").unwrap(), root.join("usr/lib/x"));
        assert_eq!(root_path(root, "/usr/up").unwrap(), root.join("etc"));
        assert_eq!(root_path(root, "/../../a").unwrap(), root.join("a"));
        assert_eq!(root_path_nofollow(root, "/lib").unwrap(), root.join("lib"));
    }

    #[test]
    fn clean_paths_keep_the_trailing_slash() {
        assert_eq!(clean_keep_slash("a/b/"), "/a/b/");
        assert_eq!(clean_keep_slash("/a/../b"), "/b");
        assert_eq!(clean_keep_slash("/"), "/");
        assert_eq!(clean_keep_slash("./"), "/");
        assert_eq!(clean_keep_slash("x/."), "/x/");
    }
}
