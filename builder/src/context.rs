//! Reading a build context (or any directory) from disk into a content hash tree
//! ([`inlay_core::contenthash`]): `lstat` every entry, stream regular files through the entry
//! hasher on several threads, and hand the entries to the pure tree builder.
//!
//! The result never depends on walk order or thread scheduling: the tree builder sorts by key.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::num::NonZeroUsize;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use inlay_frontend_dockerfile::dockerignore::Dockerignore;

use inlay_core::contenthash::{
    ContentHashError, ContentTree, ContentTreeBuilder, Entry, EntryKind, HeaderRules, SourceKind,
    Stat, TreeOptions, contains_wildcards, path_match,
};

/// Read buffer per hashing thread; large enough that syscalls do not dominate.
const READ_BUFFER: usize = 256 * 1024;

/// Why a directory could not be hashed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// A filesystem call failed.
    #[error("cannot read {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A name or link target is not UTF-8, which the tree cannot key.
    #[error("{path} has a name or link target that is not UTF-8")]
    NotUtf8 {
        /// The offending path.
        path: PathBuf,
    },
    /// The entries were refused by the tree builder.
    #[error("cannot hash the tree")]
    Tree(#[from] ContentHashError),
}

/// What to read and how to hash it.
#[derive(Debug, Clone)]
pub struct ContextOptions {
    /// Profile and source kind of the tree.
    pub tree: TreeOptions,
    /// Only these paths (relative to the root; components may be shell patterns) with
    /// everything below them, the targets of symlinks on the way, and the directories above
    /// anything sent, as a client following these paths sends them; `None` reads everything.
    pub include_paths: Option<Vec<String>>,
    /// Threads that hash file contents.
    pub threads: NonZeroUsize,
    /// `.dockerignore` patterns: excluded paths are not sent (a client applies them before
    /// sending); `None` excludes nothing.
    pub exclude: Option<Dockerignore>,
}

impl ContextOptions {
    /// Everything under the root, hashed on as many threads as the machine has.
    pub fn new(tree: TreeOptions) -> ContextOptions {
        ContextOptions {
            tree,
            include_paths: None,
            threads: std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
            exclude: None,
        }
    }

    /// Leaves out what `ignore` excludes (see [`ContextOptions::exclude`]).
    #[must_use]
    pub fn excluding(mut self, ignore: Dockerignore) -> Self {
        self.exclude = Some(ignore);
        self
    }

    /// Restricts the walk to `paths` (see [`ContextOptions::include_paths`]).
    #[must_use]
    pub fn including<S: Into<String>>(mut self, paths: impl IntoIterator<Item = S>) -> Self {
        self.include_paths = Some(paths.into_iter().map(Into::into).collect());
        self
    }
}

/// A regular file whose bytes still have to be hashed.
struct FileJob {
    relative: String,
    absolute: PathBuf,
    stat: Stat,
}

/// Walks `root` and returns its content hash tree.
pub fn hash_directory(root: &Path, options: &ContextOptions) -> Result<ContentTree, ContextError> {
    let filter = IncludeFilter::new(root, options.include_paths.as_deref())?;
    let mut builder = ContentTreeBuilder::new(options.tree);
    let rules = builder.header_rules();
    let mut jobs = Vec::new();
    // Directories visited only because an included path lies below them; like a following
    // client, send them only if something below them is sent.
    let mut ancestors: BTreeMap<String, Stat> = BTreeMap::new();
    let mut sent: Vec<String> = Vec::new();
    let track_sent = filter.patterns.is_some() || options.exclude.is_some();

    if options.tree.source == SourceKind::Snapshot {
        let meta = fs::symlink_metadata(root).map_err(io_error(root))?;
        let stat = stat_of(root, &meta)?;
        builder.insert(Entry::new("/", stat))?;
    }
    let mut pending_dirs = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, relative_dir)) = pending_dirs.pop() {
        for item in fs::read_dir(&dir).map_err(io_error(&dir))? {
            let item = item.map_err(io_error(&dir))?;
            let absolute = item.path();
            let name = item
                .file_name()
                .into_string()
                .map_err(|_| ContextError::NotUtf8 {
                    path: absolute.clone(),
                })?;
            let relative = if relative_dir.is_empty() {
                name
            } else {
                format!("{relative_dir}/{name}")
            };
            let mut visit = filter.visit(&relative);
            if visit == Visit::Skip {
                continue;
            }
            if let Some(ignore) = &options.exclude {
                if ignore.is_excluded(&relative) {
                    // An excluded directory is still walked when an exception (`!pattern`)
                    // may re-include something below it; it is then sent only as a parent.
                    let is_dir = item.file_type().is_ok_and(|t| t.is_dir());
                    if !(is_dir && ignore.has_exceptions()) {
                        continue;
                    }
                    visit = Visit::Ancestor;
                }
            }
            let meta = fs::symlink_metadata(&absolute).map_err(io_error(&absolute))?;
            let stat = stat_of(&absolute, &meta)?;
            match (&stat.kind, visit) {
                (EntryKind::Dir, Visit::Ancestor) => {
                    pending_dirs.push((absolute, relative.clone()));
                    ancestors.insert(relative, stat);
                }
                // A non-directory cannot lead to an included path.
                (_, Visit::Ancestor) => {}
                (EntryKind::Dir, _) => {
                    pending_dirs.push((absolute, relative.clone()));
                    if track_sent {
                        sent.push(relative.clone());
                    }
                    builder.insert(Entry::new(relative, stat))?;
                }
                _ => {
                    if track_sent {
                        sent.push(relative.clone());
                    }
                    if stat.has_content() {
                        jobs.push(FileJob {
                            relative,
                            absolute,
                            stat,
                        });
                    } else {
                        builder.insert(Entry::new(relative, stat))?;
                    }
                }
            }
        }
    }
    for path in &sent {
        let mut parent = path.as_str();
        while let Some(i) = parent.rfind('/') {
            parent = &parent[..i];
            if let Some(stat) = ancestors.remove(parent) {
                builder.insert(Entry::new(parent, stat))?;
            }
        }
    }
    for entry in hash_files(&jobs, rules, options.threads)? {
        builder.insert(entry)?;
    }
    Ok(builder.build()?)
}

/// Hashes the files on `threads` threads, each taking the next job from a shared counter.
fn hash_files(
    jobs: &[FileJob],
    rules: HeaderRules,
    threads: NonZeroUsize,
) -> Result<Vec<Entry>, ContextError> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Entry>> = Mutex::new(Vec::with_capacity(jobs.len()));
    let first_error: Mutex<Option<ContextError>> = Mutex::new(None);
    let workers = threads.get().min(jobs.len().max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let mut buffer = vec![0u8; READ_BUFFER];
                let mut done = Vec::new();
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(index) else { break };
                    match hash_file(job, rules, &mut buffer) {
                        Ok(entry) => done.push(entry),
                        Err(error) => {
                            // Skip the rest: one failure fails the whole walk.
                            next.store(jobs.len(), Ordering::Relaxed);
                            first_error
                                .lock()
                                .expect("no thread panics while holding the lock")
                                .get_or_insert(error);
                            break;
                        }
                    }
                }
                results
                    .lock()
                    .expect("no thread panics while holding the lock")
                    .append(&mut done);
            });
        }
    });
    if let Some(error) = first_error
        .into_inner()
        .expect("no thread panics while holding the lock")
    {
        return Err(error);
    }
    Ok(results
        .into_inner()
        .expect("no thread panics while holding the lock"))
}

/// Streams one file through its entry hasher (header first, then the bytes).
fn hash_file(job: &FileJob, rules: HeaderRules, buffer: &mut [u8]) -> Result<Entry, ContextError> {
    let mut file = File::open(&job.absolute).map_err(io_error(&job.absolute))?;
    let mut hasher = rules.entry_hasher(&job.stat);
    loop {
        let read = match file.read(buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(io_error(&job.absolute)(error)),
        };
        hasher.update(&buffer[..read]);
    }
    Ok(Entry::with_digest(
        job.relative.clone(),
        job.stat.clone(),
        hasher.finish(),
    ))
}

/// The stat BuildKit would see for `path` (from `lstat`), xattrs included.
fn stat_of(path: &Path, meta: &Metadata) -> Result<Stat, ContextError> {
    let file_type = meta.file_type();
    let kind = if file_type.is_dir() {
        EntryKind::Dir
    } else if file_type.is_symlink() {
        let target = fs::read_link(path).map_err(io_error(path))?;
        let target = target
            .into_os_string()
            .into_string()
            .map_err(|_| ContextError::NotUtf8 {
                path: path.to_path_buf(),
            })?;
        EntryKind::Symlink { target }
    } else if file_type.is_char_device() {
        let (major, minor) = split_device(meta.rdev());
        EntryKind::CharDevice { major, minor }
    } else if file_type.is_block_device() {
        let (major, minor) = split_device(meta.rdev());
        EntryKind::BlockDevice { major, minor }
    } else if file_type.is_fifo() {
        EntryKind::Fifo
    } else if file_type.is_socket() {
        EntryKind::Socket
    } else {
        EntryKind::File { size: meta.len() }
    };
    let mut stat = Stat::new(kind, meta.mode() & 0o7777).with_owner(meta.uid(), meta.gid());
    // Filesystems without xattr support answer with an error; treat that as "none".
    if let Ok(names) = xattr::list(path) {
        for name in names {
            let Ok(name) = name.into_string() else {
                continue;
            };
            if let Ok(Some(value)) = xattr::get(path, &name) {
                stat.xattrs.insert(name, value);
            }
        }
    }
    Ok(stat)
}

/// Linux `major()`/`minor()` of a `dev_t` (glibc encoding).
fn split_device(rdev: u64) -> (u64, u64) {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    (major, minor)
}

fn io_error(path: &Path) -> impl Fn(io::Error) -> ContextError + '_ {
    move |source| ContextError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How the walk treats one relative path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visit {
    /// Not sent, not descended into.
    Skip,
    /// Sent, and descended into if a directory.
    Include,
    /// Only on the way to an included path: descended into, sent only if something below is.
    Ancestor,
}

/// Which relative paths a "follow these paths" walk visits, as fsutil's `FollowPaths` does:
/// each path (components may be shell patterns) with everything below it, after adding the
/// targets of symlinks met on the way (`FollowLinks`).
struct IncludeFilter {
    /// Component lists of the followed paths; `None` means everything.
    patterns: Option<Vec<Vec<String>>>,
}

/// fsutil gives up on symlink chains longer than this.
const MAX_FOLLOWED_LINKS: usize = 255;

impl IncludeFilter {
    fn new(root: &Path, paths: Option<&[String]>) -> Result<IncludeFilter, ContextError> {
        let Some(paths) = paths else {
            return Ok(IncludeFilter { patterns: None });
        };
        let mut followed = BTreeSet::new();
        for path in paths {
            follow_links(root, &clean_relative(path), &mut followed, 0)?;
        }
        // An empty path selects the whole tree.
        if followed.iter().any(String::is_empty) {
            return Ok(IncludeFilter { patterns: None });
        }
        let patterns = followed
            .iter()
            .map(|p| p.split('/').map(str::to_owned).collect())
            .collect();
        Ok(IncludeFilter {
            patterns: Some(patterns),
        })
    }

    fn visit(&self, relative: &str) -> Visit {
        let Some(patterns) = &self.patterns else {
            return Visit::Include;
        };
        let parts: Vec<&str> = relative.split('/').collect();
        let mut ancestor = false;
        for pattern in patterns {
            let shared = parts.len().min(pattern.len());
            let prefix_matches = pattern[..shared]
                .iter()
                .zip(&parts[..shared])
                .all(|(pattern, part)| component_matches(pattern, part));
            if !prefix_matches {
                continue;
            }
            if parts.len() >= pattern.len() {
                return Visit::Include;
            }
            ancestor = true;
        }
        if ancestor {
            Visit::Ancestor
        } else {
            Visit::Skip
        }
    }
}

/// One path component against one pattern component; a malformed pattern matches nothing.
fn component_matches(pattern: &str, name: &str) -> bool {
    if contains_wildcards(pattern) {
        path_match(pattern, name).unwrap_or(false)
    } else {
        pattern == name
    }
}

/// fsutil `FollowLinks` for one path: walk its components; at the first symlink (or wildcard
/// component matching symlinks) keep the path so far and continue with each link target plus
/// the remaining components; otherwise keep the whole path.
fn follow_links(
    root: &Path,
    path: &str,
    followed: &mut BTreeSet<String>,
    depth: usize,
) -> Result<(), ContextError> {
    if depth > MAX_FOLLOWED_LINKS {
        return Ok(());
    }
    let parts: Vec<&str> = if path.is_empty() {
        Vec::new()
    } else {
        path.split('/').collect()
    };
    for i in 0..parts.len() {
        let current = parts[..=i].join("/");
        let rest = parts[i + 1..].join("/");
        let targets = link_targets(root, &current)?;
        if (rest.is_empty() || !targets.is_empty()) && followed.contains(&current) {
            return Ok(());
        }
        if !targets.is_empty() {
            followed.insert(current);
            for target in targets {
                let next = clean_relative(&format!("{target}/{rest}"));
                follow_links(root, &next, followed, depth + 1)?;
            }
            return Ok(());
        }
    }
    followed.insert(path.to_owned());
    Ok(())
}

/// The targets (relative to the root, cleaned) of the symlink at `relative`, or of every
/// symlink its last component matches if that component is a pattern; empty if none.
fn link_targets(root: &Path, relative: &str) -> Result<Vec<String>, ContextError> {
    let (dir, base) = match relative.rfind('/') {
        Some(i) => (&relative[..i], &relative[i + 1..]),
        None => ("", relative),
    };
    let mut names = Vec::new();
    if contains_wildcards(base) {
        let dir_path = root.join(dir);
        let Ok(items) = fs::read_dir(&dir_path) else {
            return Ok(Vec::new());
        };
        for item in items {
            let item = item.map_err(io_error(&dir_path))?;
            if let Ok(name) = item.file_name().into_string() {
                if path_match(base, &name).unwrap_or(false) {
                    names.push(name);
                }
            }
        }
    } else {
        names.push(base.to_owned());
    }
    let mut targets = Vec::new();
    for name in names {
        let link = root.join(dir).join(&name);
        let Ok(meta) = fs::symlink_metadata(&link) else {
            continue;
        };
        if !meta.file_type().is_symlink() {
            continue;
        }
        let target = fs::read_link(&link).map_err(io_error(&link))?;
        let target = target
            .into_os_string()
            .into_string()
            .map_err(|_| ContextError::NotUtf8 { path: link.clone() })?;
        // Absolute targets are relative to the context root; relative ones to the link's dir.
        targets.push(if target.starts_with('/') {
            clean_relative(&target)
        } else {
            clean_relative(&format!("{dir}/{target}"))
        });
    }
    Ok(targets)
}

/// A relative path cleaned lexically (`.`, `..`, repeated and trailing slashes), never above
/// the root; the root itself is `""`.
fn clean_relative(path: &str) -> String {
    let absolute = inlay_core::gopath::join_root(path);
    absolute.trim_start_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_filter_keeps_paths_below_and_ancestors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let paths = vec![
            "src/app".to_owned(),
            "./data.txt".to_owned(),
            "*.md".to_owned(),
        ];
        let filter = IncludeFilter::new(dir.path(), Some(&paths)).expect("filter");
        assert_eq!(filter.visit("src"), Visit::Ancestor);
        assert_eq!(filter.visit("src/app"), Visit::Include);
        assert_eq!(filter.visit("src/app/main.rs"), Visit::Include);
        assert_eq!(filter.visit("src/other"), Visit::Skip);
        assert_eq!(filter.visit("src/application"), Visit::Skip);
        assert_eq!(filter.visit("data.txt"), Visit::Include);
        assert_eq!(filter.visit("data.txt.bak"), Visit::Skip);
        assert_eq!(filter.visit("README.md"), Visit::Include);
        assert_eq!(filter.visit("docs/README.md"), Visit::Skip);
        let all = IncludeFilter::new(dir.path(), Some(&["/".to_owned()])).expect("filter");
        assert_eq!(all.visit("anything"), Visit::Include);
    }

    #[test]
    fn followed_paths_add_symlink_targets() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        fs::create_dir_all(root.join("real/inner")).expect("mkdir");
        std::os::unix::fs::symlink("real", root.join("ln")).expect("symlink");
        std::os::unix::fs::symlink("/real/inner", root.join("abs")).expect("symlink");
        std::os::unix::fs::symlink("../ln", root.join("real/up")).expect("symlink");
        let mut followed = BTreeSet::new();
        for path in ["ln/x", "abs", "real/up/y", "loop"] {
            follow_links(root, path, &mut followed, 0).expect("follow");
        }
        let followed: Vec<&str> = followed.iter().map(String::as_str).collect();
        // "real/up/y" reaches "ln" again, which fsutil has already followed, so it stops
        // there without adding "real/y" (fsutil's `symlinkResolver` does the same).
        assert_eq!(
            followed,
            ["abs", "ln", "loop", "real/inner", "real/up", "real/x"]
        );
        assert_eq!(clean_relative("./a//b/../c/"), "a/c");
        assert_eq!(clean_relative("../.."), "");
    }

    #[test]
    fn device_numbers_split_like_glibc() {
        // makedev(8, 1) = 0x801; makedev(0x103, 0x1_0000) puts the minor's high bits at 20+:
        // (0x103 << 8) | (0x1_0000 << 12) = 0x1001_0300.
        assert_eq!(split_device(0x801), (8, 1));
        assert_eq!(split_device(0x1001_0300), (0x103, 0x1_0000));
    }
}
