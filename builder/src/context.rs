//! Reading a build context (or any directory) from disk into a content hash tree
//! ([`inlay_core::contenthash`]): `lstat` every entry, stream regular files through the entry
//! hasher on several threads, and hand the entries to the pure tree builder.
//!
//! The result never depends on walk order or thread scheduling: the tree builder sorts by key.

use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::num::NonZeroUsize;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use inlay_core::contenthash::{
    ContentHashError, ContentTree, ContentTreeBuilder, Entry, EntryKind, HeaderRules, SourceKind,
    Stat, TreeOptions,
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
    /// Only these paths (relative to the root) with everything below them and the directories
    /// above them, as a client following these paths sends them; `None` reads everything.
    pub include_paths: Option<Vec<String>>,
    /// Threads that hash file contents.
    pub threads: NonZeroUsize,
}

impl ContextOptions {
    /// Everything under the root, hashed on as many threads as the machine has.
    pub fn new(tree: TreeOptions) -> ContextOptions {
        ContextOptions {
            tree,
            include_paths: None,
            threads: std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
        }
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
    let filter = IncludeFilter::new(options.include_paths.as_deref());
    let mut builder = ContentTreeBuilder::new(options.tree);
    let rules = builder.header_rules();
    let mut jobs = Vec::new();

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
            let Some(descend) = filter.visit(&relative) else {
                continue;
            };
            let meta = fs::symlink_metadata(&absolute).map_err(io_error(&absolute))?;
            let stat = stat_of(&absolute, &meta)?;
            match stat.kind {
                EntryKind::Dir => {
                    if descend {
                        pending_dirs.push((absolute, relative.clone()));
                    }
                    builder.insert(Entry::new(relative, stat))?;
                }
                _ if stat.has_content() => jobs.push(FileJob {
                    relative,
                    absolute,
                    stat,
                }),
                _ => builder.insert(Entry::new(relative, stat))?,
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

/// Which relative paths a "follow these paths" walk visits.
struct IncludeFilter {
    /// Cleaned relative paths; `None` means everything.
    paths: Option<Vec<String>>,
}

impl IncludeFilter {
    fn new(paths: Option<&[String]>) -> IncludeFilter {
        let paths = paths.map(|paths| {
            paths
                .iter()
                .map(|p| {
                    p.split('/')
                        .filter(|part| !part.is_empty() && *part != ".")
                        .collect::<Vec<_>>()
                        .join("/")
                })
                .collect::<Vec<_>>()
        });
        // An empty path selects the whole tree.
        let paths = paths.filter(|paths| !paths.iter().any(String::is_empty));
        IncludeFilter { paths }
    }

    /// `None` to skip `relative`; otherwise whether to descend into it if it is a directory.
    /// Ancestors of an included path are visited (a following client sends them too) and
    /// descended into, but only the branch that leads to the included path is kept.
    fn visit(&self, relative: &str) -> Option<bool> {
        let Some(paths) = &self.paths else {
            return Some(true);
        };
        let inside = paths.iter().any(|p| is_within(relative, p));
        let ancestor = paths.iter().any(|p| is_within(p, relative));
        (inside || ancestor).then_some(true)
    }
}

/// Whether `path` is `base` or below it.
fn is_within(path: &str, base: &str) -> bool {
    path == base
        || (path.len() > base.len()
            && path.starts_with(base)
            && path.as_bytes()[base.len()] == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_filter_keeps_paths_below_and_ancestors() {
        let paths = vec!["src/app".to_owned(), "./data.txt".to_owned()];
        let filter = IncludeFilter::new(Some(&paths));
        assert_eq!(filter.visit("src"), Some(true));
        assert_eq!(filter.visit("src/app"), Some(true));
        assert_eq!(filter.visit("src/app/main.rs"), Some(true));
        assert_eq!(filter.visit("src/other"), None);
        assert_eq!(filter.visit("src/application"), None);
        assert_eq!(filter.visit("data.txt"), Some(true));
        assert_eq!(filter.visit("data.txt.bak"), None);
        let all = IncludeFilter::new(Some(&["/".to_owned()]));
        assert_eq!(all.visit("anything"), Some(true));
    }

    #[test]
    fn device_numbers_split_like_glibc() {
        // makedev(8, 1) = 0x801; makedev(0x103, 0x1_0000) puts the minor's high bits at 20+:
        // (0x103 << 8) | (0x1_0000 << 12) = 0x1001_0300.
        assert_eq!(split_device(0x801), (8, 1));
        assert_eq!(split_device(0x1001_0300), (0x103, 0x1_0000));
    }
}
