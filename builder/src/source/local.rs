//! Staging a local directory (the build context) as BuildKit's file sync would send it: only
//! the included paths, without excluded ones, every owner reset to 0:0 (the Go client's
//! `resetUIDAndGID`), modes, times and symlinks kept.
//!
//! Regular files are hard-linked rather than copied whenever the link is already what the copy
//! would be (same owner after the reset, same mode and times, which a link shares): a large
//! context then stages in a fraction of the time and, above all, its staged tree is removed
//! without freeing any data blocks. The staged tree is therefore read-only by contract: COPY and
//! content keys only read it, and a writable `RUN --mount=type=bind` of it gets an overlay
//! view (see the solver's exec mounts).

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use inlay_core::contenthash::path_match;

use super::SourceError;
use crate::layer::fs_meta;

/// Decides whether a context path (relative, `/`-separated, no leading slash) is excluded,
/// e.g. a `.dockerignore` matcher. An excluded directory is skipped whole.
pub type ExcludeMatcher = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// A local directory the graph may name (`local://<name>`).
#[derive(Clone)]
pub struct LocalSource {
    /// The directory.
    pub dir: PathBuf,
    /// Only these paths (and what is below them); components may be shell patterns. `None`:
    /// everything.
    pub include: Option<Vec<String>>,
    /// Exclusions (`.dockerignore`).
    pub exclude: Option<ExcludeMatcher>,
}

impl std::fmt::Debug for LocalSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalSource")
            .field("dir", &self.dir)
            .field("include", &self.include)
            .field("exclude", &self.exclude.is_some())
            .finish()
    }
}

impl LocalSource {
    /// Everything under `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> LocalSource {
        LocalSource {
            dir: dir.into(),
            include: None,
            exclude: None,
        }
    }

    /// With an exclusion matcher.
    #[must_use]
    pub fn excluding(mut self, matcher: ExcludeMatcher) -> LocalSource {
        self.exclude = Some(matcher);
        self
    }

    /// With include paths.
    #[must_use]
    pub fn including(mut self, paths: Vec<String>) -> LocalSource {
        self.include = Some(paths);
        self
    }
}

enum Inclusion {
    /// The path and everything below it.
    Whole,
    /// Only as a parent of something included.
    Parent,
    No,
}

fn inclusion(include: Option<&[String]>, rel: &str) -> Inclusion {
    let Some(patterns) = include else {
        return Inclusion::Whole;
    };
    let mut parent = false;
    for pattern in patterns {
        let pattern = pattern.trim_start_matches('/').trim_end_matches('/');
        if pattern.is_empty() || pattern == "." {
            return Inclusion::Whole;
        }
        let p_parts: Vec<&str> = pattern.split('/').collect();
        let r_parts: Vec<&str> = rel.split('/').collect();
        let common = p_parts.len().min(r_parts.len());
        let prefix_matches = (0..common)
            .all(|i| path_match(p_parts[i], r_parts[i]).unwrap_or(p_parts[i] == r_parts[i]));
        if !prefix_matches {
            continue;
        }
        if r_parts.len() >= p_parts.len() {
            return Inclusion::Whole;
        }
        parent = true;
    }
    if parent {
        Inclusion::Parent
    } else {
        Inclusion::No
    }
}

/// Copies `source` into the empty directory `dest`.
pub fn stage_local(source: &LocalSource, dest: &Path) -> Result<(), SourceError> {
    let err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SourceError::Local { path, source }
    };
    let meta = std::fs::metadata(&source.dir).map_err(err(&source.dir))?;
    copy_dir(source, &source.dir, dest, "", false)
        .map_err(|(p, e)| SourceError::Local { path: p, source: e })?;
    std::fs::set_permissions(dest, meta.permissions()).map_err(err(dest))?;
    fs_meta::set_times(dest, meta.mtime(), nanos(&meta)).map_err(err(dest))?;
    Ok(())
}

fn nanos(meta: &std::fs::Metadata) -> u32 {
    u32::try_from(meta.mtime_nsec()).unwrap_or(0)
}

type StageResult<T> = Result<T, (PathBuf, io::Error)>;

/// Copies the entries of `src` into `dst`; returns whether anything was copied.
fn copy_dir(
    source: &LocalSource,
    src: &Path,
    dst: &Path,
    rel_dir: &str,
    whole: bool,
) -> StageResult<bool> {
    let at = |p: &Path| {
        let p = p.to_path_buf();
        move |e| (p, e)
    };
    let mut entries: Vec<_> = std::fs::read_dir(src)
        .map_err(at(src))?
        .collect::<Result<_, _>>()
        .map_err(at(src))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    let mut any = false;
    for entry in entries {
        let name = entry.file_name();
        let Some(name_str) = name.to_str() else {
            // BuildKit keys paths as strings; a non-UTF-8 name cannot be sent.
            continue;
        };
        let rel = if rel_dir.is_empty() {
            name_str.to_owned()
        } else {
            format!("{rel_dir}/{name_str}")
        };
        if source.exclude.as_ref().is_some_and(|m| m(&rel)) {
            continue;
        }
        let included = if whole {
            Inclusion::Whole
        } else {
            inclusion(source.include.as_deref(), &rel)
        };
        if matches!(included, Inclusion::No) {
            continue;
        }
        let from = entry.path();
        let to = dst.join(&name);
        let meta = std::fs::symlink_metadata(&from).map_err(at(&from))?;
        let ft = meta.file_type();
        if ft.is_dir() {
            std::fs::create_dir(&to).map_err(at(&to))?;
            let below = copy_dir(
                source,
                &from,
                &to,
                &rel,
                matches!(included, Inclusion::Whole),
            )?;
            if !below && matches!(included, Inclusion::Parent) {
                std::fs::remove_dir(&to).map_err(at(&to))?;
                continue;
            }
            std::fs::set_permissions(&to, meta.permissions()).map_err(at(&to))?;
        } else if matches!(included, Inclusion::Parent) {
            continue;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&from).map_err(at(&from))?;
            std::os::unix::fs::symlink(&target, &to).map_err(at(&to))?;
        } else if ft.is_file() {
            if linkable(&meta) && std::fs::hard_link(&from, &to).is_ok() {
                any = true;
                continue;
            }
            std::fs::copy(&from, &to).map_err(at(&to))?;
        } else {
            // Sockets, fifos and devices are not sent by the file sync.
            continue;
        }
        if fs_meta::running_as_root() {
            std::os::unix::fs::lchown(&to, Some(0), Some(0)).map_err(at(&to))?;
        }
        if !ft.is_symlink() {
            fs_meta::set_times(&to, meta.mtime(), nanos(&meta)).map_err(at(&to))?;
        }
        any = true;
    }
    Ok(any)
}

/// Whether a hard link of a context file is exactly what staging a copy would give: as root
/// the copy is reset to 0:0, so only a file already owned by 0:0 qualifies; without root
/// nothing is reset and any file does.
fn linkable(meta: &std::fs::Metadata) -> bool {
    !fs_meta::running_as_root() || (meta.uid() == 0 && meta.gid() == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_paths_select_subtrees_and_parents() {
        let inc = vec!["src/*.rs".to_owned(), "README".to_owned()];
        assert!(matches!(inclusion(Some(&inc), "src"), Inclusion::Parent));
        assert!(matches!(
            inclusion(Some(&inc), "src/a.rs"),
            Inclusion::Whole
        ));
        assert!(matches!(inclusion(Some(&inc), "src/a.c"), Inclusion::No));
        assert!(matches!(inclusion(Some(&inc), "README"), Inclusion::Whole));
        assert!(matches!(inclusion(None, "x"), Inclusion::Whole));
    }
}
