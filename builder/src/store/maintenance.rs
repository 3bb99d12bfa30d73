//! Keeping the store honest and small: [`Store::verify`] and [`Store::prune`].
//!
//! What counts as referenced: a digest pinned in the index, and every layer of every local
//! cache entry (objects with `digest` and `diff_id` anywhere in the index's other keys), with
//! the snapshot chainIDs of each entry's layer chain. A default prune removes everything else;
//! `all` keeps only what is pinned.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use inlay_core::Digest;
use rustix::fs::FlockOperation;

use super::session::{self, flock, unmount_below};
use super::{COMPLETE_MARKER, Index, Store, StoreError, hash_file, list, lock, remove_tree};

/// What [`Store::prune`] removes besides unreferenced blobs and snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PrunePolicy {
    /// Also empty the cache-mount directories.
    pub cache_mounts: bool,
    /// Remove everything that is not pinned, also what the local cache still refers to (the
    /// next build then misses locally and pulls again).
    pub all: bool,
}

impl PrunePolicy {
    /// Everything that is not pinned, cache mounts included (`inlay prune --all`).
    pub fn everything() -> PrunePolicy {
        PrunePolicy {
            cache_mounts: true,
            all: true,
        }
    }
}

/// What [`Store::prune`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Blobs removed.
    pub blobs: usize,
    /// Snapshots removed (complete or partial).
    pub snapshots: usize,
    /// Cache-mount directories removed.
    pub cache_mounts: usize,
    /// Temporary entries removed (left by processes that are gone).
    pub temp: usize,
    /// Bytes freed (apparent file sizes).
    pub bytes_freed: u64,
}

/// What [`Store::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Blobs re-hashed.
    pub blobs_checked: usize,
    /// Blobs whose content does not match their name (or whose name is not a digest).
    pub corrupt_blobs: Vec<PathBuf>,
    /// Snapshots checked.
    pub snapshots_checked: usize,
    /// Snapshot directories without their completion marker that nobody is filling.
    pub incomplete_snapshots: Vec<PathBuf>,
    /// Snapshots being filled right now by a live process (not a problem).
    pub snapshots_in_progress: usize,
    /// Complete snapshots whose marker is unreadable, names another chainID, or lacks `fs/`.
    pub bad_snapshots: Vec<PathBuf>,
    /// Temporary files and directories whose process is gone.
    pub abandoned_temp: Vec<PathBuf>,
    /// Why `index.json` is unreadable, when it is.
    pub index_error: Option<String>,
}

impl VerifyReport {
    /// Whether nothing is wrong.
    pub fn is_ok(&self) -> bool {
        self.problems().is_empty()
    }

    /// One line per problem, for people.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.corrupt_blobs {
            out.push(format!("corrupt blob {}", p.display()));
        }
        for p in &self.incomplete_snapshots {
            out.push(format!("incomplete snapshot {}", p.display()));
        }
        for p in &self.bad_snapshots {
            out.push(format!(
                "snapshot with a bad completion marker {}",
                p.display()
            ));
        }
        for p in &self.abandoned_temp {
            out.push(format!("abandoned temporary entry {}", p.display()));
        }
        if let Some(e) = &self.index_error {
            out.push(format!("unreadable index: {e}"));
        }
        out
    }
}

impl Store {
    /// Re-hashes every blob, checks every snapshot's completion marker, reads the index, and
    /// looks for leftovers of processes that died (partial snapshots, temporary files).
    pub fn verify(&self) -> Result<VerifyReport, StoreError> {
        let _shared = lock::lock(&self.store_lock_path(), false)?;
        let mut report = VerifyReport::default();
        for (name, path) in list(&self.root.join("blobs/sha256"))? {
            report.blobs_checked += 1;
            let ok = match format!("sha256:{name}").parse::<Digest>() {
                Ok(expected) => hash_file(&path)? == expected,
                Err(_) => false,
            };
            if !ok {
                report.corrupt_blobs.push(path);
            }
        }
        let abandoned = session::find_abandoned(&self.root)?;
        for (name, path) in list(&self.root.join("snapshots"))? {
            report.snapshots_checked += 1;
            let marker = path.join(COMPLETE_MARKER);
            if !marker.is_file() {
                if abandoned.snapshots.contains(&path) {
                    report.incomplete_snapshots.push(path);
                } else {
                    report.snapshots_in_progress += 1;
                }
                continue;
            }
            if !marker_names(&marker, &name) || !path.join("fs").is_dir() {
                report.bad_snapshots.push(path);
            }
        }
        report.abandoned_temp = abandoned.temp;
        if let Err(e) = self.index() {
            report.index_error = Some(crate::progress::error_chain(&e));
        }
        Ok(report)
    }

    /// Frees space: blobs and snapshots nothing refers to (with `all`, nothing but pins),
    /// partial snapshots, temporary leftovers, lock files of removed snapshots and blobs, and
    /// (by policy) cache mounts. Waits until no other process has the store open, and holds new ones off
    /// meanwhile.
    pub fn prune(&self, policy: PrunePolicy) -> Result<PruneReport, StoreError> {
        let sessions_path = self.root.join("locks/sessions.lock");
        let sessions = &self.session.sessions_lock;
        flock(sessions, FlockOperation::LockExclusive, &sessions_path)?;
        let result = self.prune_alone(policy);
        flock(sessions, FlockOperation::LockShared, &sessions_path)?;
        result
    }

    fn prune_alone(&self, policy: PrunePolicy) -> Result<PruneReport, StoreError> {
        let _exclusive = lock::lock(&self.store_lock_path(), true)?;
        let index = self.index()?;
        let (blobs_kept, snapshots_kept) = referenced(&index, policy.all);
        let mut report = PruneReport::default();
        for (name, path) in list(&self.root.join("blobs/sha256"))? {
            if !blobs_kept.contains(&name) {
                report.bytes_freed += tree_size(&path);
                remove_tree(&path)?;
                remove_tree(&self.root.join("locks").join(format!("blob-{name}.lock")))?;
                report.blobs += 1;
            }
        }
        for (name, path) in list(&self.root.join("snapshots"))? {
            let complete = path.join(COMPLETE_MARKER).is_file();
            if !complete || !snapshots_kept.contains(&name) {
                report.bytes_freed += tree_size(&path);
                remove_tree(&path)?;
                remove_tree(
                    &self
                        .root
                        .join("locks")
                        .join(format!("snapshot-{name}.lock")),
                )?;
                report.snapshots += 1;
            }
        }
        if policy.cache_mounts {
            for (_, path) in list(&self.root.join("cache-mounts"))? {
                report.bytes_freed += tree_size(&path);
                remove_tree(&path)?;
                report.cache_mounts += 1;
            }
        }
        // No other session is alive: every temporary entry but ours is a leftover.
        for (_, path) in list(&self.root.join("tmp"))? {
            if path == self.session.dir() {
                continue;
            }
            unmount_below(&path);
            report.bytes_freed += tree_size(&path);
            remove_tree(&path)?;
            report.temp += 1;
        }
        Ok(report)
    }
}

/// The blob hexes and snapshot chainID hexes to keep.
fn referenced(index: &Index, pins_only: bool) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut blobs: BTreeSet<String> = index.pinned.iter().map(|d| d.hex().to_owned()).collect();
    let mut snapshots = blobs.clone();
    if pins_only {
        return (blobs, snapshots);
    }
    for value in index.extra.values() {
        let mut chains = Vec::new();
        layer_chains(value, &mut chains);
        for chain in chains {
            let diff_ids: Vec<Digest> = chain.iter().map(|(_, d)| d.clone()).collect();
            for (blob, _) in &chain {
                blobs.insert(blob.hex().to_owned());
            }
            for id in crate::snapshot::chain_ids(&diff_ids) {
                snapshots.insert(id.hex().to_owned());
            }
        }
    }
    (blobs, snapshots)
}

/// Every array of layer objects (`{"digest": .., "diff_id": ..}`) inside `value`, as
/// `(blob digest, diffID)` lists. The local cache keeps its entries this way (`LayerRef`).
fn layer_chains(value: &serde_json::Value, out: &mut Vec<Vec<(Digest, Digest)>>) {
    match value {
        serde_json::Value::Array(items) => {
            let chain: Option<Vec<(Digest, Digest)>> = items.iter().map(layer_of).collect();
            match chain {
                Some(chain) if !chain.is_empty() => out.push(chain),
                _ => items.iter().for_each(|v| layer_chains(v, out)),
            }
        }
        serde_json::Value::Object(map) => map.values().for_each(|v| layer_chains(v, out)),
        _ => {}
    }
}

fn layer_of(value: &serde_json::Value) -> Option<(Digest, Digest)> {
    let digest = value.get("digest")?.as_str()?.parse().ok()?;
    let diff_id = value.get("diff_id")?.as_str()?.parse().ok()?;
    Some((digest, diff_id))
}

/// Whether the completion marker names `hex` as its chainID.
fn marker_names(marker: &Path, hex: &str) -> bool {
    let Ok(bytes) = std::fs::read(marker) else {
        return false;
    };
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return false;
    };
    value
        .get("chainID")
        .and_then(serde_json::Value::as_str)
        .and_then(|s| s.parse::<Digest>().ok())
        .is_some_and(|d| d.hex() == hex)
}

/// The apparent size of a file or tree (not following symlinks); unreadable parts count 0.
fn tree_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| tree_size(&e.path()))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_cache_entries_keep_their_blobs_and_snapshots() {
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        let (da, db) = (Digest::sha256_of(b"da"), Digest::sha256_of(b"db"));
        let mut index = Index::default();
        index.extra.insert(
            "inlay.localCache.v1".to_owned(),
            serde_json::json!({
                "sha256:0": [
                    {"digest": a.to_string(), "diff_id": da.to_string(), "size": 1, "media_type": "x"},
                    {"digest": b.to_string(), "diff_id": db.to_string(), "size": 1, "media_type": "x"}
                ]
            }),
        );
        let (blobs, snapshots) = referenced(&index, false);
        assert!(blobs.contains(a.hex()) && blobs.contains(b.hex()));
        let chain = crate::snapshot::chain_ids(&[da.clone(), db]);
        assert!(chain.iter().all(|c| snapshots.contains(c.hex())));
        let (blobs, snapshots) = referenced(&index, true);
        assert!(blobs.is_empty() && snapshots.is_empty());
    }
}
