//! `.dockerignore`: reading the file as moby/patternmatcher's `ignorefile.ReadAll` does and
//! matching paths as its `PatternMatcher` does.
//!
//! * Lines starting with `#` are comments; other lines are trimmed, blank ones skipped.
//! * `!pattern` re-includes what earlier patterns excluded; the last matching pattern wins.
//! * Patterns are cleaned (`./a/../b/` → `b`) and anchored at the context root (a leading `/`
//!   is dropped): `foo` matches only `foo` at the root, not `sub/foo`.
//! * `*` and `?` stay within one path element, `**` spans any number of them, `[a-z]` classes
//!   and `\` escapes work as in Go's `filepath.Match`.
//! * A pattern matching a directory excludes everything below it; a path is also excluded when
//!   one of its parent directories matches ([`Dockerignore::is_excluded`]), and an exception
//!   can re-include a path below an excluded directory.
//!
//! ```
//! use inlay_frontend_dockerfile::dockerignore::Dockerignore;
//!
//! let ignore = Dockerignore::parse(b"# build output\ntarget\n*.log\n!keep.log\n")?;
//! assert!(ignore.is_excluded("target/debug/app"));
//! assert!(ignore.is_excluded("x.log"));
//! assert!(!ignore.is_excluded("keep.log"));
//! assert!(!ignore.is_excluded("src/target"));
//! # Ok::<(), inlay_frontend_dockerfile::dockerignore::DockerignoreError>(())
//! ```

mod pattern;

use pattern::Pattern;

/// A malformed `.dockerignore` pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DockerignoreError {
    /// A lone `!`.
    #[error("illegal exclusion pattern: \"!\"")]
    LoneExclamation,
    /// A pattern `filepath.Match` rejects (an unclosed `[`, a trailing `\`...).
    #[error("syntax error in pattern {pattern:?}")]
    BadPattern {
        /// The pattern as read.
        pattern: String,
    },
}

/// Go's `filepath.Clean` for slash-separated paths.
pub fn clean_path(path: &str) -> String {
    inlay_core::gopath::clean(path)
}

/// Go's `filepath.Dir` for slash-separated paths.
fn dir(path: &str) -> String {
    inlay_core::gopath::dir(path)
}

/// The patterns of a `.dockerignore` file, in order, as `ignorefile.ReadAll` returns them
/// (exceptions keep their `!`).
pub fn read_patterns(content: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(content);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut patterns = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = clean_path(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        patterns.push(if invert {
            format!("!{cleaned}")
        } else {
            cleaned
        });
    }
    patterns
}

/// Compiled `.dockerignore` patterns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerignore {
    patterns: Vec<Pattern>,
}

impl Dockerignore {
    /// Reads and compiles a `.dockerignore` file.
    pub fn parse(content: &[u8]) -> Result<Self, DockerignoreError> {
        Self::new(&read_patterns(content))
    }

    /// Compiles patterns as `patternmatcher.New` does (trimmed, cleaned, `!` for exceptions).
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, DockerignoreError> {
        let mut compiled = Vec::with_capacity(patterns.len());
        for raw in patterns {
            let trimmed = raw.as_ref().trim();
            if trimmed.is_empty() {
                continue;
            }
            let mut cleaned = clean_path(trimmed);
            let exclusion = cleaned.starts_with('!');
            if exclusion {
                if cleaned.len() == 1 {
                    return Err(DockerignoreError::LoneExclamation);
                }
                cleaned.remove(0);
            }
            let pattern =
                Pattern::new(cleaned, exclusion).map_err(|_| DockerignoreError::BadPattern {
                    pattern: raw.as_ref().to_owned(),
                })?;
            compiled.push(pattern);
        }
        Ok(Self { patterns: compiled })
    }

    /// Whether any pattern is an exception (`!`): callers then cannot skip excluded directories
    /// wholesale, since something below may be re-included.
    pub fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether `path` is excluded from the build context: the last pattern that matches it or
    /// one of its parent directories decides (`MatchesOrParentMatches`). `.` is never excluded.
    pub fn is_excluded(&self, path: &str) -> bool {
        let path = clean_path(path);
        if path == "." {
            return false;
        }
        self.decide(&path, true)
    }

    /// patternmatcher's older `Matches`: parent directories are tried only at the depth of each
    /// pattern.
    pub fn matches(&self, path: &str) -> bool {
        let path = clean_path(path);
        if path == "." {
            return false;
        }
        self.decide(&path, false)
    }

    fn decide(&self, path: &str, any_parent: bool) -> bool {
        let parent = dir(path);
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        let mut matched = false;
        for pattern in &self.patterns {
            // Only a pattern that could flip the current answer is looked at.
            if pattern.exclusion != matched {
                continue;
            }
            let mut hit = pattern.matches(path);
            if !hit && parent != "." {
                if any_parent {
                    hit = (1..=parent_dirs.len())
                        .any(|n| pattern.matches(&parent_dirs[..n].join("/")));
                } else if pattern.dirs <= parent_dirs.len() {
                    hit = pattern.matches(&parent_dirs[..pattern.dirs].join("/"));
                }
            }
            if hit {
                matched = !pattern.exclusion;
            }
        }
        matched
    }
}

/// Which ignore file applies to a build.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum IgnoreFile {
    /// `<Dockerfile path>.dockerignore`, beside the Dockerfile: it wins when present.
    BesideDockerfile(String),
    /// `.dockerignore` at the root of the context.
    ContextRoot,
}

/// Picks the ignore file as BuildKit's `dockerui` does: `<dockerfile_path>.dockerignore` if it
/// exists, else `.dockerignore` in the context if it exists. `exists` answers for a path
/// relative to the context (for the Dockerfile-specific one, relative to where the Dockerfile
/// is read from).
pub fn select_ignore_file(
    dockerfile_path: &str,
    exists: &dyn Fn(&str) -> bool,
) -> Option<IgnoreFile> {
    let beside = format!("{dockerfile_path}.dockerignore");
    if exists(&beside) {
        return Some(IgnoreFile::BesideDockerfile(beside));
    }
    exists(".dockerignore").then_some(IgnoreFile::ContextRoot)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_like_go() {
        assert_eq!(clean_path("./a/../b/"), "b");
        assert_eq!(clean_path("/../a"), "/a");
        assert_eq!(clean_path("../a"), "../a");
        assert_eq!(clean_path(""), ".");
        assert_eq!(clean_path("a//b/./c/.."), "a/b");
        assert_eq!(dir("a/b/c"), "a/b");
        assert_eq!(dir("a"), ".");
    }
}
