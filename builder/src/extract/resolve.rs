//! Resolving names inside a root directory the way the container will see them, without ever
//! leaving it: symlinks met on the way are followed *inside* the root (an absolute target starts
//! at the root, as it will in the container), and a `..` that would climb above the root is an
//! escape and refused, never clamped or followed on the host.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Symlinks followed while resolving one name before it counts as a loop (Linux's own limit).
const MAX_LINKS: u32 = 40;

/// Why a name could not be resolved inside the root.
#[derive(Debug)]
pub(crate) enum ResolveError {
    /// A symlink (named relative to the root) leads above the root.
    Escape { link: PathBuf },
    /// A component that must be a directory is some other kind of file.
    NotADirectory { component: PathBuf },
    /// Too many symlinks.
    Loop,
    /// A component does not exist (and was not to be created).
    Missing { component: PathBuf },
    /// Looking at `path` failed.
    Io { path: PathBuf, source: io::Error },
}

/// Splits an archive name into its components: leading `/` and `.` components dropped (Docker
/// treats absolute names as relative to the root), a `..` component refused outright, since no
/// well-formed layer needs one and it is how traversal attacks start.
pub(crate) fn entry_components(raw: &[u8]) -> Result<Vec<OsString>, &'static str> {
    if raw.contains(&0) {
        return Err("has a NUL byte");
    }
    let mut out = Vec::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err("has a `..` component"),
            other => out.push(OsStr::from_bytes(other).to_os_string()),
        }
    }
    Ok(out)
}

/// A directory found inside the root.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// Its host path.
    pub abs: PathBuf,
    /// Its path relative to the root, symlinks resolved.
    pub rel: PathBuf,
}

/// Resolves `components` as directories under `root`, following symlinks inside the root.
/// Missing directories are created (mode 0755) when `create` is set.
pub(crate) fn resolve_dir(
    root: &Path,
    components: &[OsString],
    create: bool,
) -> Result<Resolved, ResolveError> {
    let mut todo: VecDeque<OsString> = components.iter().cloned().collect();
    let mut current: Vec<OsString> = Vec::new();
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        if name.is_empty() || name == "." {
            continue;
        }
        if name == ".." {
            if current.pop().is_none() {
                return Err(ResolveError::Escape {
                    link: rel_of(&current),
                });
            }
            continue;
        }
        let mut abs = root.to_path_buf();
        abs.extend(&current);
        abs.push(&name);
        match std::fs::symlink_metadata(&abs) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !create {
                    current.push(name);
                    return Err(ResolveError::Missing {
                        component: rel_of(&current),
                    });
                }
                match std::fs::create_dir(&abs) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(source) => return Err(ResolveError::Io { path: abs, source }),
                }
                current.push(name);
            }
            Err(source) => return Err(ResolveError::Io { path: abs, source }),
            Ok(meta) if meta.is_dir() => current.push(name),
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return Err(ResolveError::Loop);
                }
                let target = std::fs::read_link(&abs).map_err(|source| ResolveError::Io {
                    path: abs.clone(),
                    source,
                })?;
                let mut link_rel = current.clone();
                link_rel.push(name);
                if target.is_absolute() {
                    current.clear();
                }
                let mut prefix: Vec<OsString> = Vec::new();
                for part in target.components() {
                    match part {
                        Component::Normal(p) => prefix.push(p.to_os_string()),
                        Component::ParentDir => {
                            // A `..` climbing above the root, counted from where the link sits.
                            prefix.push(OsString::from(".."));
                        }
                        Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
                    }
                }
                // Check the escape now, so the error names the link that escapes.
                let mut depth = current.len() as i64;
                for p in &prefix {
                    if p == ".." {
                        depth -= 1;
                        if depth < 0 {
                            return Err(ResolveError::Escape {
                                link: rel_of(&link_rel),
                            });
                        }
                    } else {
                        depth += 1;
                    }
                }
                for p in prefix.into_iter().rev() {
                    todo.push_front(p);
                }
            }
            Ok(_) => {
                current.push(name);
                return Err(ResolveError::NotADirectory {
                    component: rel_of(&current),
                });
            }
        }
    }
    let rel = rel_of(&current);
    Ok(Resolved {
        abs: root.join(&rel),
        rel,
    })
}

/// Resolves a whole name (its last component not followed): the resolved parent plus the last
/// name. `None` for the root itself.
pub(crate) fn resolve_name(
    root: &Path,
    components: &[OsString],
    create_parents: bool,
) -> Result<Option<(Resolved, OsString)>, ResolveError> {
    let Some((last, parents)) = components.split_last() else {
        return Ok(None);
    };
    let parent = resolve_dir(root, parents, create_parents)?;
    Ok(Some((parent, last.clone())))
}

fn rel_of(parts: &[OsString]) -> PathBuf {
    parts.iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_drop_root_and_dots_and_refuse_parent() {
        assert_eq!(
            entry_components(b"/a/./b//c/").unwrap(),
            vec![OsString::from("a"), "b".into(), "c".into()]
        );
        assert!(entry_components(b"a/../b").is_err());
        assert!(entry_components(b"/abs/../../x").is_err());
    }

    #[test]
    fn symlinks_are_followed_inside_and_escapes_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        std::os::unix::fs::symlink("usr/lib", root.join("lib")).unwrap();
        std::os::unix::fs::symlink("/usr", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../..", root.join("up")).unwrap();
        let r = resolve_dir(root, &[OsString::from("lib")], false).unwrap();
        assert_eq!(r.rel, Path::new("usr/lib"));
        let r = resolve_dir(root, &["abs".into(), "lib".into()], false).unwrap();
        assert_eq!(r.abs, root.join("usr/lib"));
        assert!(matches!(
            resolve_dir(root, &["up".into(), "x".into()], true),
            Err(ResolveError::Escape { .. })
        ));
    }
}
