//! Each process that opens the store gets its own temporary directory, `tmp/session-<random>/`,
//! held by a `flock` on its `.lock` file for as long as the process has the store open; and a
//! shared lock on `locks/sessions.lock`, so that [`super::Store::prune`] can wait for every
//! running build.
//!
//! Why: a process killed with SIGKILL runs no destructor, so its temporary files, scratch
//! directories (with secret files and overlay mounts in them) and half-filled snapshots stay
//! behind. The kernel releases its locks, though, so whoever opens the store next can tell an
//! abandoned session directory or partial snapshot (its lock is free) from one still being
//! written (its lock is held), and clean up only the former ([`recover`]).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rustix::fs::FlockOperation;
use rustix::mount::UnmountFlags;

use super::{COMPLETE_MARKER, StoreError, list, lock, remove_tree};

/// The prefix of per-process temporary directories under `tmp/`.
pub(crate) const SESSION_PREFIX: &str = "session-";
/// The lock file inside a session directory.
const SESSION_LOCK: &str = ".lock";

/// One process's hold on the store: its temporary directory (removed on drop) and the shared
/// lock on `locks/sessions.lock`.
#[derive(Debug)]
pub(crate) struct StoreSession {
    dir: PathBuf,
    _dir_lock: File,
    /// The shared lock on `locks/sessions.lock`; [`super::Store::prune`] converts it to an
    /// exclusive one for a while (flock converts a lock held on the same file description).
    pub(crate) sessions_lock: File,
}

impl StoreSession {
    /// Creates a session directory under `root/tmp` and takes its locks.
    pub(crate) fn create(root: &Path) -> Result<StoreSession, StoreError> {
        let sessions_lock = open_lock_file(&root.join("locks/sessions.lock"))?;
        flock(
            &sessions_lock,
            FlockOperation::LockShared,
            &root.join("locks/sessions.lock"),
        )?;
        // Recovery and creation serialise on this lock, so recovery never sees a session
        // directory between its creation and its lock.
        let _creating = lock::lock(&root.join("locks/recover.lock"), false)?;
        let tmp = root.join("tmp");
        let dir = tempfile::Builder::new()
            .prefix(SESSION_PREFIX)
            .tempdir_in(&tmp)
            .map_err(|e| StoreError::io(&tmp, e))?
            .keep();
        let lock_path = dir.join(SESSION_LOCK);
        let dir_lock = open_lock_file(&lock_path)?;
        flock(&dir_lock, FlockOperation::LockExclusive, &lock_path)?;
        Ok(StoreSession {
            dir,
            _dir_lock: dir_lock,
            sessions_lock,
        })
    }

    /// The session's temporary directory.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for StoreSession {
    fn drop(&mut self) {
        // Whatever is still in here belongs to no one; a failure leaves it for `recover`.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn open_lock_file(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io(path, e))
}

pub(crate) fn flock(file: &File, op: FlockOperation, path: &Path) -> Result<(), StoreError> {
    loop {
        match rustix::fs::flock(file, op) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(StoreError::io(path, e.into())),
        }
    }
}

/// Whether nobody holds the lock on `path` (taken and released at once). A missing lock file
/// counts as free.
fn lock_is_free(path: &Path) -> bool {
    let Ok(file) = OpenOptions::new().write(true).open(path) else {
        return true;
    };
    match rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => true,
        Err(_) => false,
    }
}

/// Leftovers of processes that died without cleaning up.
#[derive(Debug, Default)]
pub(crate) struct Abandoned {
    /// Temporary entries nobody owns: session directories whose lock is free, loose files.
    pub(crate) temp: Vec<PathBuf>,
    /// Snapshot directories without a completion marker that nobody is filling.
    pub(crate) snapshots: Vec<PathBuf>,
}

/// Finds abandoned temporary entries and partial snapshots (without changing anything).
pub(crate) fn find_abandoned(root: &Path) -> Result<Abandoned, StoreError> {
    let mut found = Abandoned::default();
    let _no_new_sessions = lock::lock(&root.join("locks/recover.lock"), true)?;
    for (name, path) in list(&root.join("tmp"))? {
        let abandoned = if name.starts_with(SESSION_PREFIX) && path.is_dir() {
            lock_is_free(&path.join(SESSION_LOCK))
        } else {
            // Loose entries predate per-process directories; no live process uses them.
            true
        };
        if abandoned {
            found.temp.push(path);
        }
    }
    for (name, path) in list(&root.join("snapshots"))? {
        if path.join(COMPLETE_MARKER).is_file() {
            continue;
        }
        if lock_is_free(&root.join("locks").join(format!("snapshot-{name}.lock"))) {
            found.snapshots.push(path);
        }
    }
    Ok(found)
}

/// Removes what [`find_abandoned`] finds, unmounting overlay mounts left inside first. Runs
/// under the shared store lock, so it never races a prune. Returns what was removed.
pub(crate) fn recover(root: &Path) -> Result<Abandoned, StoreError> {
    let _shared = lock::lock(&root.join("locks/store.lock"), false)?;
    let found = find_abandoned(root)?;
    if !found.temp.is_empty() {
        stop_containers_in(&found.temp);
    }
    for path in &found.temp {
        unmount_below(path);
        remove_tree_patiently(path)?;
    }
    for path in &found.snapshots {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Take the snapshot's lock so a process starting to fill it now waits for the removal.
        let _own = lock::lock(
            &root.join("locks").join(format!("snapshot-{name}.lock")),
            true,
        )?;
        if !path.join(COMPLETE_MARKER).is_file() {
            remove_tree(path)?;
        }
    }
    Ok(found)
}

/// The OCI runtimes a build may have started containers with.
const RUNTIMES: [&str; 2] = ["runc", "crun"];

/// Stops (SIGKILL) and deletes the containers whose bundle lies in one of `dirs`.
///
/// Why: a build killed with SIGKILL leaves its `RUN` going on without it (the runtime and the
/// container are not its threads), writing into the scratch directory being cleaned up; the
/// runtime's own list says which containers belong there, by bundle path.
pub(crate) fn stop_containers_in(dirs: &[PathBuf]) {
    let dirs: Vec<PathBuf> = dirs
        .iter()
        .flat_map(|d| {
            [std::path::absolute(d).ok(), std::fs::canonicalize(d).ok()]
                .into_iter()
                .flatten()
        })
        .collect();
    for runtime in RUNTIMES {
        let Ok(out) = Command::new(runtime)
            .args(["list", "--format", "json"])
            .stderr(Stdio::null())
            .output()
        else {
            continue;
        };
        // An empty list is `null`.
        let Ok(containers) = serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout) else {
            continue;
        };
        for container in containers {
            let (Some(id), Some(bundle)) = (
                container.get("id").and_then(serde_json::Value::as_str),
                container.get("bundle").and_then(serde_json::Value::as_str),
            ) else {
                continue;
            };
            if dirs.iter().any(|d| Path::new(bundle).starts_with(d)) {
                tracing::debug!(container = id, runtime, "stopping a dead build's container");
                let _ = Command::new(runtime)
                    .args(["delete", "--force", id])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// Removes `path`, trying again for a little while when something still writes into it (a
/// container's last processes dying) or holds a mount point busy.
fn remove_tree_patiently(path: &Path) -> Result<(), StoreError> {
    let mut tries = 0;
    loop {
        match remove_tree(path) {
            Ok(()) => return Ok(()),
            Err(StoreError::Io { source, .. })
                if tries < 40
                    && matches!(
                        source.kind(),
                        std::io::ErrorKind::DirectoryNotEmpty | std::io::ErrorKind::ResourceBusy
                    ) =>
            {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Detaches every mount at or below `dir` (deepest first): a killed build leaves its overlay
/// rootfs mounted, and removing files through it would fail on the mount point.
pub(crate) fn unmount_below(dir: &Path) {
    let Ok(dir) = std::fs::canonicalize(dir) else {
        return;
    };
    let mut points: Vec<PathBuf> = mount_points()
        .into_iter()
        .filter(|p| p.starts_with(&dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for point in points {
        if let Err(e) = rustix::mount::unmount(&point, UnmountFlags::DETACH) {
            tracing::warn!(mount = %point.display(), error = %e, "unmounting a leftover mount");
        }
    }
}

/// The mount points of this process's mount namespace (`/proc/self/mountinfo`, field 5, with
/// the kernel's octal escapes undone).
fn mount_points() -> Vec<PathBuf> {
    let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape_mountinfo(field)))
        .collect()
}

fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let octal = std::str::from_utf8(&bytes[i + 1..i + 4]).unwrap_or("");
            if let Ok(value) = u8::from_str_radix(octal, 8) {
                out.push(value);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mountinfo(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape_mountinfo(r"/x\134y"), r"/x\y");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
        assert_eq!(unescape_mountinfo(r"/short\04"), r"/short\04");
    }
}
