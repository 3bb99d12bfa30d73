//! Long-running children (dockerd, the registry) and the scratch directory they live in, cleaned
//! up on every way out: a normal return, an error, a panic (guards stop them on drop) and
//! ctrl-c or SIGTERM (a handler stops every registered child, then removes the scratch
//! directories, then exits).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, Once};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

/// Every child still running, with the name it was started under.
static CHILDREN: Mutex<Vec<(String, Child)>> = Mutex::new(Vec::new());
/// Scratch directories to remove once the children are gone.
static SCRATCH: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
static HANDLER: Once = Once::new();
/// Set once ctrl-c or SIGTERM arrived, so the main thread stops starting work.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// How long a child has to exit after SIGTERM before it is killed. dockerd stops its own
/// containerd on SIGTERM and needs a few seconds; SIGKILL would orphan containerd.
const GRACE: Duration = Duration::from_secs(20);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves the list itself intact, so keep using it.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Stops every child and removes every scratch directory on ctrl-c and SIGTERM.
pub fn install_interrupt_handler() -> Result<()> {
    let mut result = Ok(());
    HANDLER.call_once(|| {
        result = ctrlc::set_handler(|| {
            INTERRUPTED.store(true, Ordering::SeqCst);
            eprintln!("xtask: interrupted; stopping dockerd and the registry");
            stop_all();
            for dir in lock(&SCRATCH).drain(..) {
                remove_scratch(&dir);
            }
            std::process::exit(130);
        })
        .context("installing the ctrl-c handler");
    });
    result
}

/// Whether ctrl-c or SIGTERM arrived (the handler is then stopping everything and will exit).
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// Once interrupted, never returns: the handler is stopping the children and removing the
/// scratch directories, and exits the process when done; the main thread must not race it.
pub fn park_if_interrupted() {
    while interrupted() {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running child, stopped (SIGTERM, then SIGKILL after a grace period) and reaped on drop.
pub struct ChildGuard {
    pid: u32,
    name: String,
}

impl ChildGuard {
    /// Starts `command` and tracks it.
    pub fn spawn(name: &str, command: &mut Command) -> Result<ChildGuard> {
        let child = command
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let pid = child.id();
        lock(&CHILDREN).push((name.to_owned(), child));
        Ok(ChildGuard {
            pid,
            name: name.to_owned(),
        })
    }

    /// Whether the child has exited (it is then reaped and forgotten).
    pub fn exited(&self) -> Option<std::process::ExitStatus> {
        let mut children = lock(&CHILDREN);
        let index = children.iter().position(|(_, c)| c.id() == self.pid)?;
        match children[index].1.try_wait() {
            Ok(Some(status)) => {
                children.remove(index);
                Some(status)
            }
            _ => None,
        }
    }

    /// The name it was started under.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let taken = {
            let mut children = lock(&CHILDREN);
            children
                .iter()
                .position(|(_, c)| c.id() == self.pid)
                .map(|i| children.remove(i))
        };
        if let Some((name, child)) = taken {
            stop(&name, child);
        }
    }
}

fn stop_all() {
    let children: Vec<(String, Child)> = lock(&CHILDREN).drain(..).collect();
    for (name, child) in children {
        stop(&name, child);
    }
}

fn stop(name: &str, mut child: Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let start = Instant::now();
    while start.elapsed() < GRACE {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("xtask: {name} ignored SIGTERM for {GRACE:?}; killing it");
    let _ = child.kill();
    let _ = child.wait();
}

/// A temporary directory that is removed on drop (after unmounting anything dockerd left
/// mounted under it), and on ctrl-c.
pub struct ScratchDir {
    path: PathBuf,
    keep: bool,
}

impl ScratchDir {
    /// Creates a fresh directory under the system temp dir.
    pub fn new(prefix: &str) -> Result<ScratchDir> {
        let base = std::env::temp_dir();
        for attempt in 0..100u32 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let path = base.join(format!(
                "{prefix}-{}-{nanos:08x}-{attempt}",
                std::process::id()
            ));
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    lock(&SCRATCH).push(path.clone());
                    return Ok(ScratchDir { path, keep: false });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("creating {}", path.display()));
                }
            }
        }
        anyhow::bail!(
            "could not create a scratch directory under {}",
            base.display()
        )
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Leaves the directory in place (for debugging a failure).
    pub fn keep(&mut self) {
        self.keep = true;
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        lock(&SCRATCH).retain(|p| p != &self.path);
        if self.keep {
            eprintln!("xtask: kept {}", self.path.display());
        } else {
            remove_scratch(&self.path);
        }
    }
}

/// Unmounts what is still mounted under `dir` (deepest first), then removes it.
fn remove_scratch(dir: &Path) {
    if let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") {
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|line| line.split(' ').nth(1))
            .filter(|point| Path::new(point).starts_with(dir))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for point in points {
            let _ = Command::new("umount").args(["-l", point]).status();
        }
    }
    if let Err(err) = std::fs::remove_dir_all(dir) {
        eprintln!("xtask: could not remove {}: {err}", dir.display());
    }
}
