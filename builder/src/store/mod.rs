//! The local content store: blobs by digest, extracted snapshots by chainID, cache-mount
//! directories, and a small JSON index, safe to share between processes.
//!
//! Layout under the root:
//!
//! ```text
//! blobs/sha256/<hex>          content-addressed blobs (written atomically, digest verified)
//! snapshots/<hex>/fs          an extracted snapshot, by the hex of its chainID
//! snapshots/<hex>/complete    written last: a snapshot without it is partial and redone
//! cache-mounts/<hex>/         RUN --mount=type=cache directories, by the SHA-256 of their id
//! index.json                  pins and whatever later components keep there
//! locks/                      flock files: the whole store, the index, one per snapshot and
//!                             one per blob being pulled
//! tmp/session-<random>/       one per process with the store open: its temporary files and
//!                             scratch directories, on the same filesystem
//! ```
//!
//! Concurrency: writers hold a shared lock on `locks/store.lock`, [`Store::prune`] an exclusive
//! one, so pruning never races a write; every open store also holds `locks/sessions.lock`
//! shared, so a prune waits for running builds. Crash safety: a process killed at any point
//! leaves only a session directory and perhaps a partial snapshot behind, both recognisable by
//! their free locks and removed by the next [`Store::open`] (see `session`). Two processes preparing the same snapshot serialise on
//! its own lock; the second finds it complete. Pulls of one blob serialise the same way
//! ([`Store::ensure_blob`]): it is downloaded once. Blobs are renamed into place, so a reader sees a
//! whole blob or none.

mod blob;
mod error;
mod lock;
mod maintenance;
mod session;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use inlay_core::{Algorithm, Digest, Hasher};
use serde::{Deserialize, Serialize};

pub use blob::BlobWriter;
pub use error::StoreError;
pub use maintenance::{PrunePolicy, PruneReport, VerifyReport};

/// Environment variable naming the store root; it overrides the default location.
pub const ROOT_ENV: &str = "INLAY_ROOT";

/// The marker file that makes a snapshot complete.
const COMPLETE_MARKER: &str = "complete";

/// A handle on a store directory. Cheap to clone (clones share one session: one temporary
/// directory and one hold on the store); every operation takes its own locks.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
    session: Arc<session::StoreSession>,
}

/// The store's small JSON index (`index.json`). Unknown keys are kept.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Index {
    /// Digests (blobs or snapshot chainIDs) that [`Store::prune`] keeps.
    #[serde(default)]
    pub pinned: BTreeSet<Digest>,
    /// Whatever else later components store.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl Store {
    /// The default root: `$INLAY_ROOT` when set; else `/var/lib/inlay` for root; else
    /// `$XDG_DATA_HOME/inlay` or `$HOME/.local/share/inlay`.
    pub fn default_root() -> Result<PathBuf, StoreError> {
        if let Some(root) = std::env::var_os(ROOT_ENV).filter(|v| !v.is_empty()) {
            return Ok(PathBuf::from(root));
        }
        if rustix::process::geteuid().is_root() {
            return Ok(PathBuf::from("/var/lib/inlay"));
        }
        if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            return Ok(PathBuf::from(data).join("inlay"));
        }
        std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .map(|home| PathBuf::from(home).join(".local/share/inlay"))
            .ok_or(StoreError::NoRoot)
    }

    /// Opens (creating when needed) the store at `root`, and cleans up after processes that
    /// died with it open (their temporary files, overlay mounts and partial snapshots).
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let store = Store::open_as_is(root)?;
        match session::recover(&store.root) {
            Ok(found) if !(found.temp.is_empty() && found.snapshots.is_empty()) => {
                tracing::debug!(
                    temp = found.temp.len(),
                    snapshots = found.snapshots.len(),
                    "removed leftovers of processes that died"
                );
            }
            Ok(_) => {}
            // Leftovers waste space but harm no build; the next open or a prune tries again.
            Err(e) => tracing::warn!(error = %e, "cleaning up the store's leftovers"),
        }
        Ok(store)
    }

    /// Opens (creating when needed) the store at `root` without cleaning up after dead
    /// processes, so that [`Store::verify`] sees the store as they left it.
    pub fn open_as_is(root: impl Into<PathBuf>) -> Result<Store, StoreError> {
        let root = root.into();
        for dir in ["blobs/sha256", "snapshots", "cache-mounts", "locks", "tmp"] {
            let path = root.join(dir);
            std::fs::create_dir_all(&path).map_err(|e| StoreError::io(&path, e))?;
        }
        let session = Arc::new(session::StoreSession::create(&root)?);
        Ok(Store { root, session })
    }

    /// This process's temporary directory inside the store (same filesystem as everything
    /// else, so renames into place work).
    pub(crate) fn tmp_dir(&self) -> &Path {
        self.session.dir()
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn store_lock_path(&self) -> PathBuf {
        self.root.join("locks/store.lock")
    }

    /// Where the blob `digest` lives (whether or not it is there).
    pub fn blob_path(&self, digest: &Digest) -> Result<PathBuf, StoreError> {
        if digest.algorithm() != Algorithm::Sha256 {
            return Err(StoreError::UnsupportedDigest {
                digest: digest.clone(),
            });
        }
        Ok(self.root.join("blobs/sha256").join(digest.hex()))
    }

    /// Whether the blob is stored.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_ok_and(|p| p.is_file())
    }

    /// Opens a stored blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, StoreError> {
        let path = self.blob_path(digest)?;
        File::open(&path).map_err(|e| StoreError::io(&path, e))
    }

    /// Starts writing a blob; see [`BlobWriter::commit`].
    pub fn blob_writer(&self) -> Result<BlobWriter, StoreError> {
        BlobWriter::new(self)
    }

    /// Runs `fetch` (which should put blob `digest` into the store) unless the store has the
    /// blob, holding the blob's own lock (`locks/blob-<hex>.lock`) meanwhile. Concurrent
    /// callers for one digest, threads of this process (each takes its own `flock`, and
    /// `flock`s on separate opens exclude each other) or other processes, so wait for each
    /// other: one downloads, the rest find the blob stored and reuse it. Returns whether
    /// `fetch` ran, so that its bytes are counted once.
    pub fn ensure_blob<E>(
        &self,
        digest: &Digest,
        fetch: impl FnOnce() -> Result<(), E>,
    ) -> Result<bool, E>
    where
        E: From<StoreError>,
    {
        if self.has_blob(digest) {
            return Ok(false);
        }
        let path = self.blob_path(digest)?;
        let lock_path = self.blob_lock_path(digest);
        let _own = lock::lock(&lock_path, true)?;
        if path.is_file() {
            return Ok(false);
        }
        fetch()?;
        Ok(true)
    }

    /// The lock file [`Store::ensure_blob`] holds while it fetches `digest`.
    fn blob_lock_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("locks")
            .join(format!("blob-{}.lock", digest.hex()))
    }

    /// Stores `bytes`, refusing them when `expected` is given and differs.
    pub fn put_blob(&self, bytes: &[u8], expected: Option<&Digest>) -> Result<Digest, StoreError> {
        let mut writer = self.blob_writer()?;
        writer
            .write_all(bytes)
            .map_err(|e| StoreError::io(self.tmp_dir(), e))?;
        Ok(writer.commit(expected)?.0)
    }

    fn snapshot_base(&self, chain_id: &Digest) -> PathBuf {
        self.root.join("snapshots").join(chain_id.hex())
    }

    /// The directory of a complete snapshot, or `None`.
    pub fn snapshot(&self, chain_id: &Digest) -> Option<PathBuf> {
        let base = self.snapshot_base(chain_id);
        base.join(COMPLETE_MARKER)
            .is_file()
            .then(|| base.join("fs"))
    }

    /// The snapshot `chain_id`, filled by `populate` (given an empty directory) unless it is
    /// already complete. Concurrent callers for the same chainID wait for each other, and only
    /// one runs `populate`. A failed `populate` leaves nothing behind.
    pub fn ensure_snapshot<E>(
        &self,
        chain_id: &Digest,
        populate: impl FnOnce(&Path) -> Result<(), E>,
    ) -> Result<PathBuf, StoreError>
    where
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let _shared = lock::lock(&self.store_lock_path(), false)?;
        let lock_path = self
            .root
            .join("locks")
            .join(format!("snapshot-{}.lock", chain_id.hex()));
        let _own = lock::lock(&lock_path, true)?;
        if let Some(done) = self.snapshot(chain_id) {
            return Ok(done);
        }
        let base = self.snapshot_base(chain_id);
        if base.exists() {
            // A crashed earlier attempt: start over.
            remove_tree(&base)?;
        }
        let fs = base.join("fs");
        std::fs::create_dir_all(&fs).map_err(|e| StoreError::io(&fs, e))?;
        if let Err(e) = populate(&fs) {
            remove_tree(&base)?;
            return Err(StoreError::Populate {
                chain_id: chain_id.clone(),
                source: e.into(),
            });
        }
        let marker = serde_json::json!({ "chainID": chain_id });
        write_atomic(
            &base.join(COMPLETE_MARKER),
            marker.to_string().as_bytes(),
            self.tmp_dir(),
        )?;
        Ok(fs)
    }

    /// The directory for the cache mount `id` (created when missing).
    pub fn cache_mount_dir(&self, id: &str) -> Result<PathBuf, StoreError> {
        let mut hasher = Hasher::new(Algorithm::Sha256);
        hasher.update(id.as_bytes());
        let dir = self.root.join("cache-mounts").join(hasher.finish().hex());
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        Ok(dir)
    }

    /// A fresh scratch directory inside the store (same filesystem as snapshots, so overlay
    /// upper/work dirs and renames work), removed when dropped.
    pub fn scratch_dir(&self) -> Result<tempfile::TempDir, StoreError> {
        let tmp = self.tmp_dir();
        tempfile::Builder::new()
            .prefix("scratch-")
            .tempdir_in(tmp)
            .map_err(|e| StoreError::io(tmp, e))
    }

    /// Reads the index (empty when there is none yet).
    pub fn index(&self) -> Result<Index, StoreError> {
        let path = self.root.join("index.json");
        match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| StoreError::Index { path, source })
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Index::default()),
            Err(e) => Err(StoreError::io(path, e)),
        }
    }

    /// Changes the index under its lock and writes it back atomically.
    pub fn update_index(&self, change: impl FnOnce(&mut Index)) -> Result<Index, StoreError> {
        let _lock = lock::lock(&self.root.join("locks/index.lock"), true)?;
        let mut index = self.index()?;
        change(&mut index);
        let bytes = serde_json::to_vec_pretty(&index).map_err(|source| StoreError::Index {
            path: self.root.join("index.json"),
            source,
        })?;
        write_atomic(&self.root.join("index.json"), &bytes, self.tmp_dir())?;
        Ok(index)
    }

    /// Keeps a blob or snapshot through [`Store::prune`].
    pub fn pin(&self, digest: &Digest) -> Result<(), StoreError> {
        self.update_index(|i| {
            i.pinned.insert(digest.clone());
        })
        .map(drop)
    }

    /// Undoes [`Store::pin`].
    pub fn unpin(&self, digest: &Digest) -> Result<(), StoreError> {
        self.update_index(|i| {
            i.pinned.remove(digest);
        })
        .map(drop)
    }
}

fn list(dir: &Path) -> Result<Vec<(String, PathBuf)>, StoreError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| StoreError::io(dir, e))? {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        out.push((
            entry.file_name().to_string_lossy().into_owned(),
            entry.path(),
        ));
    }
    out.sort();
    Ok(out)
}

fn remove_tree(path: &Path) -> Result<(), StoreError> {
    let result = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    result.map_err(|e| StoreError::io(path, e))
}

fn hash_file(path: &Path) -> Result<Digest, StoreError> {
    let mut file = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let mut hasher = Hasher::new(Algorithm::Sha256);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf).map_err(|e| StoreError::io(path, e))?;
        if n == 0 {
            return Ok(hasher.finish());
        }
        hasher.update(&buf[..n]);
    }
}

/// Writes `bytes` to `dest` through a fsynced temporary file in `tmp` and a rename.
fn write_atomic(dest: &Path, bytes: &[u8], tmp: &Path) -> Result<(), StoreError> {
    let mut file = tempfile::NamedTempFile::new_in(tmp).map_err(|e| StoreError::io(tmp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.as_file().sync_all())
        .map_err(|e| StoreError::io(file.path(), e))?;
    file.persist(dest)
        .map_err(|e| StoreError::io(dest, e.error))?;
    if let Some(parent) = dest.parent() {
        blob::sync_dir(parent.to_path_buf())?;
    }
    Ok(())
}
