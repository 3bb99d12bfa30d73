//! The local store: atomic, verified blob writes; snapshots by chainID; concurrency between
//! threads and processes; prune and verify.

// Test code: a failed unwrap is a failed test, in helpers as in `#[test]` functions.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use inlay_builder::store::{PrunePolicy, Store, StoreError};
use inlay_core::Digest;

const CHILD_ENV: &str = "INLAY_TEST_STORE_CHILD";

#[test]
fn blobs_appear_whole_and_only_after_commit() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let content = vec![42u8; 300_000];
    let digest = Digest::sha256_of(&content);
    let mut writer = store.blob_writer().unwrap();
    writer.write_all(&content[..1000]).unwrap();
    assert!(!store.has_blob(&digest), "nothing visible before commit");
    writer.write_all(&content[1000..]).unwrap();
    let (got, size) = writer.commit(Some(&digest)).unwrap();
    assert_eq!((got.clone(), size), (digest.clone(), 300_000));
    assert_eq!(
        std::fs::read(store.blob_path(&digest).unwrap()).unwrap(),
        content
    );
    // An abandoned writer leaves no temporary file behind.
    let mut abandoned = store.blob_writer().unwrap();
    abandoned.write_all(b"partial").unwrap();
    drop(abandoned);
    assert_eq!(files_below(&dir.path().join("tmp")), 0);
}

/// Files below `dir`, lock files left out.
fn files_below(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| {
            if e.file_type().unwrap().is_dir() {
                files_below(&e.path())
            } else {
                usize::from(e.file_name() != ".lock")
            }
        })
        .sum()
}

#[test]
fn a_digest_mismatch_is_refused_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let claimed = Digest::sha256_of(b"what the registry promised");
    let err = store.put_blob(b"what arrived", Some(&claimed)).unwrap_err();
    assert!(
        matches!(&err, StoreError::DigestMismatch { expected, .. } if *expected == claimed),
        "{err}"
    );
    assert!(!store.has_blob(&claimed));
    assert!(!store.has_blob(&Digest::sha256_of(b"what arrived")));
    assert_eq!(
        std::fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn threads_writing_one_blob_and_preparing_one_snapshot_all_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let content: Vec<u8> = (0..500_000u32).map(|i| (i % 251) as u8).collect();
    let digest = Digest::sha256_of(&content);
    let chain_id = Digest::sha256_of(b"chain");
    let populated = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let (store, content, digest, chain_id, populated) = (
                store.clone(),
                content.clone(),
                digest.clone(),
                chain_id.clone(),
                Arc::clone(&populated),
            );
            std::thread::spawn(move || {
                assert_eq!(store.put_blob(&content, Some(&digest)).unwrap(), digest);
                store
                    .ensure_snapshot(&chain_id, |fs| {
                        populated.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        std::fs::write(fs.join("file"), b"snapshot content")
                    })
                    .unwrap()
            })
        })
        .collect();
    for handle in handles {
        let fs = handle.join().unwrap();
        assert_eq!(std::fs::read(fs.join("file")).unwrap(), b"snapshot content");
    }
    assert_eq!(populated.load(Ordering::SeqCst), 1, "populated once");
    assert_eq!(
        std::fs::read(store.blob_path(&digest).unwrap()).unwrap(),
        content
    );
    assert!(store.verify().unwrap().is_ok());
}

#[test]
fn threads_pulling_one_blob_fetch_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let content = vec![7u8; 300_000];
    let digest = Digest::sha256_of(&content);
    let fetches = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let (store, content, digest, fetches) = (
                store.clone(),
                content.clone(),
                digest.clone(),
                Arc::clone(&fetches),
            );
            std::thread::spawn(move || {
                store
                    .ensure_blob(&digest, || -> Result<(), StoreError> {
                        fetches.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        store.put_blob(&content, Some(&digest)).map(drop)
                    })
                    .unwrap()
            })
        })
        .collect();
    let reported: usize = handles
        .into_iter()
        .map(|h| usize::from(h.join().unwrap()))
        .sum();
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "fetched once");
    assert_eq!(reported, 1, "one caller reports the fetch");
    assert!(store.has_blob(&digest));
    // A failed fetch stores nothing and leaves the next caller free to try again.
    let other = Digest::sha256_of(b"other");
    let failed = store.ensure_blob(&other, || {
        Err(StoreError::DigestMismatch {
            expected: other.clone(),
            actual: digest.clone(),
        })
    });
    assert!(failed.is_err());
    assert!(
        store
            .ensure_blob(&other, || store.put_blob(b"other", Some(&other)).map(drop))
            .unwrap()
    );
}

/// The body the child processes of the next test run.
#[test]
#[ignore = "run as a child process by processes_share_the_store"]
fn store_child_process() {
    let Some(root) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let store = Store::open(root).unwrap();
    let content = vec![9u8; 2_000_000];
    let digest = Digest::sha256_of(&content);
    let pulls_dir = Path::new(store.root()).join("pulls");
    store
        .ensure_blob(&digest, || -> Result<(), StoreError> {
            std::fs::create_dir_all(&pulls_dir).unwrap();
            std::fs::write(pulls_dir.join(std::process::id().to_string()), b"").unwrap();
            std::thread::sleep(std::time::Duration::from_millis(200));
            store.put_blob(&content, Some(&digest)).map(drop)
        })
        .unwrap();
    assert!(store.has_blob(&digest));
    let chain_id = Digest::sha256_of(b"shared chain");
    let marker_dir = Path::new(store.root()).join("populations");
    let fs = store
        .ensure_snapshot(&chain_id, |fs| -> std::io::Result<()> {
            std::fs::create_dir_all(&marker_dir)?;
            std::fs::write(marker_dir.join(std::process::id().to_string()), b"")?;
            std::thread::sleep(std::time::Duration::from_millis(200));
            std::fs::write(fs.join("data"), b"from a child")
        })
        .unwrap();
    assert_eq!(std::fs::read(fs.join("data")).unwrap(), b"from a child");
}

#[test]
fn processes_share_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..3)
        .map(|_| {
            Command::new(&exe)
                .args(["--exact", "store_child_process", "--ignored", "--nocapture"])
                .env(CHILD_ENV, dir.path())
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let store = Store::open(dir.path()).unwrap();
    assert!(store.has_blob(&Digest::sha256_of(&vec![9u8; 2_000_000])));
    let populations = std::fs::read_dir(dir.path().join("populations"))
        .unwrap()
        .count();
    assert_eq!(populations, 1, "only one process filled the snapshot");
    let pulls = std::fs::read_dir(dir.path().join("pulls")).unwrap().count();
    assert_eq!(pulls, 1, "only one process fetched the blob");
    assert!(store.verify().unwrap().is_ok());
}

#[test]
fn a_failed_populate_leaves_nothing_and_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let chain_id = Digest::sha256_of(b"c");
    let err = store
        .ensure_snapshot(&chain_id, |fs| {
            std::fs::write(fs.join("half"), b"")?;
            Err(std::io::Error::other("extraction failed"))
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::Populate { .. }), "{err}");
    assert!(store.snapshot(&chain_id).is_none());
    let fs = store
        .ensure_snapshot(&chain_id, |fs| std::fs::write(fs.join("whole"), b""))
        .unwrap();
    assert!(fs.join("whole").exists() && !fs.join("half").exists());
}

#[test]
fn verify_finds_corruption_and_partial_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let good = store.put_blob(b"good", None).unwrap();
    let bad = store.put_blob(b"soon corrupted", None).unwrap();
    std::fs::write(store.blob_path(&bad).unwrap(), b"flipped bits").unwrap();
    std::fs::create_dir_all(dir.path().join("snapshots/deadbeef/fs")).unwrap();
    let report = store.verify().unwrap();
    assert_eq!(report.blobs_checked, 2);
    assert_eq!(report.corrupt_blobs, vec![store.blob_path(&bad).unwrap()]);
    assert_eq!(report.incomplete_snapshots.len(), 1);
    assert!(!report.is_ok());
    assert!(store.has_blob(&good));
}

#[test]
fn prune_keeps_only_what_is_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let kept = store.put_blob(b"kept", None).unwrap();
    let dropped = store.put_blob(b"dropped", None).unwrap();
    let kept_snapshot = Digest::sha256_of(b"s1");
    let dropped_snapshot = Digest::sha256_of(b"s2");
    for chain in [&kept_snapshot, &dropped_snapshot] {
        store
            .ensure_snapshot(chain, |fs| std::fs::write(fs.join("x"), b""))
            .unwrap();
    }
    store.pin(&kept).unwrap();
    store.pin(&kept_snapshot).unwrap();
    let cache = store.cache_mount_dir("go-build").unwrap();
    std::fs::write(cache.join("entry"), b"").unwrap();
    let report = store.prune(PrunePolicy::default()).unwrap();
    assert_eq!(
        (report.blobs, report.snapshots, report.cache_mounts),
        (1, 1, 0)
    );
    assert!(store.has_blob(&kept) && !store.has_blob(&dropped));
    assert!(store.snapshot(&kept_snapshot).is_some());
    assert!(store.snapshot(&dropped_snapshot).is_none());
    assert!(cache.join("entry").exists());
    let report = store
        .prune(PrunePolicy {
            cache_mounts: true,
            ..PrunePolicy::default()
        })
        .unwrap();
    assert_eq!(report.cache_mounts, 1);
    assert!(store.index().unwrap().pinned.contains(&kept));
}

#[test]
fn leftovers_of_a_killed_process_are_found_and_removed_by_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let live = Store::open(dir.path()).unwrap();
    // What a SIGKILLed process leaves: its session directory with a half-written blob and a
    // scratch directory holding a secret, a loose temporary file, a partial snapshot.
    let dead = dir.path().join("tmp/session-dead");
    std::fs::create_dir_all(dead.join("scratch-1")).unwrap();
    std::fs::write(dead.join(".lock"), b"").unwrap();
    std::fs::write(dead.join("blob-x"), b"half").unwrap();
    std::fs::write(dead.join("scratch-1/secret-0"), b"s3cr3t").unwrap();
    let loose = dir.path().join("tmp/.tmpLoose");
    std::fs::write(&loose, b"").unwrap();
    std::fs::create_dir_all(dir.path().join("snapshots/abcd/fs/etc")).unwrap();

    let report = live.verify().unwrap();
    assert_eq!(report.abandoned_temp, vec![loose, dead.clone()]);
    assert_eq!(report.incomplete_snapshots.len(), 1);
    assert_eq!(report.problems().len(), 3);
    assert!(!report.is_ok());

    // The live store's own session is not touched by the next open.
    let store = Store::open(dir.path()).unwrap();
    assert!(!dead.exists() && !dir.path().join("snapshots/abcd").exists());
    assert!(live.scratch_dir().is_ok());
    let report = store.verify().unwrap();
    assert!(report.is_ok(), "{:?}", report.problems());
}

#[test]
fn prune_keeps_what_the_local_cache_refers_to_unless_all() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let layer = store.put_blob(b"layer", None).unwrap();
    let manifest = store
        .put_blob(b"a manifest nobody refers to", None)
        .unwrap();
    let diff_id = Digest::sha256_of(b"diff");
    store
        .ensure_snapshot(&diff_id, |fs| std::fs::write(fs.join("x"), b"12345"))
        .unwrap();
    store
        .update_index(|i| {
            i.extra.insert(
                "inlay.localCache.v1".to_owned(),
                serde_json::json!({ "sha256:0": [
                    { "digest": layer.to_string(), "diff_id": diff_id.to_string(),
                      "size": 5, "media_type": "application/vnd.oci.image.layer.v1.tar+gzip" }
                ]}),
            );
        })
        .unwrap();
    let report = store.prune(PrunePolicy::default()).unwrap();
    assert_eq!((report.blobs, report.snapshots), (1, 0));
    assert_eq!(report.bytes_freed, 27);
    assert!(store.has_blob(&layer) && !store.has_blob(&manifest));
    assert!(store.snapshot(&diff_id).is_some());

    let report = store.prune(PrunePolicy::everything()).unwrap();
    assert_eq!((report.blobs, report.snapshots), (1, 1));
    assert!(report.bytes_freed >= 10);
    assert!(!store.has_blob(&layer) && store.snapshot(&diff_id).is_none());
    assert!(store.verify().unwrap().is_ok());
}
