//! Helpers of the hardening tests (crash, concurrency, secrets, faults): running any `inlay`
//! command, `inlay store verify`, and checking a registry's storage against its digests.

// Helpers outside #[test] fns are test code too.
#![allow(dead_code, clippy::unwrap_used, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use inlay_core::Digest;

/// The inlay binary under test.
pub fn inlay_bin() -> &'static str {
    env!("CARGO_BIN_EXE_inlay")
}

/// `inlay build --root ROOT --progress plain ARGS` with `SOURCE_DATE_EPOCH=0`, quietly (the
/// output is returned, printed only by the caller when something fails).
pub fn build_quiet(root: &Path, args: &[&str]) -> Output {
    Command::new(inlay_bin())
        .arg("build")
        .arg("--root")
        .arg(root)
        .args(["--progress", "plain"])
        .args(args)
        .env("SOURCE_DATE_EPOCH", "0")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Asserts a build succeeded, showing its output when not.
pub fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `inlay store verify --root ROOT`: `Ok(summary)` when consistent, `Err(listing)` when not.
pub fn store_verify(root: &Path) -> Result<String, String> {
    let out = Command::new(inlay_bin())
        .args(["store", "verify", "--root"])
        .arg(root)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match out.status.code() {
        Some(0) => Ok(text),
        Some(1) => Err(text),
        other => panic!("inlay store verify could not check ({other:?}):\n{text}"),
    }
}

/// Asserts `inlay store verify` finds the store consistent.
pub fn assert_store_consistent(root: &Path, when: &str) {
    if let Err(listing) = store_verify(root) {
        panic!("store inconsistent {when}:\n{listing}");
    }
}

/// Every blob file a distribution registry stores under `data_dir` (its filesystem storage
/// root), re-hashed: returns how many were checked, panics naming the first that differs from
/// its digest. Tag and layer links must point at stored blobs too.
pub fn assert_registry_storage_verifies(data_dir: &Path) -> usize {
    let v2 = data_dir.join("docker/registry/v2");
    let blobs = v2.join("blobs/sha256");
    let mut checked = 0;
    for prefix in read_dir(&blobs) {
        for blob in read_dir(&prefix) {
            let data = blob.join("data");
            let Ok(bytes) = std::fs::read(&data) else {
                continue;
            };
            let name = blob.file_name().unwrap().to_string_lossy().into_owned();
            let actual = Digest::sha256_of(&bytes);
            assert_eq!(
                actual.hex(),
                name,
                "registry blob {} does not match its digest",
                data.display()
            );
            checked += 1;
        }
    }
    // Every `link` file (tags, layers, revisions) names a blob the registry has.
    let mut links = Vec::new();
    find_named(&v2.join("repositories"), "link", &mut links);
    for link in links {
        let text = std::fs::read_to_string(&link).unwrap();
        let digest: Digest = text.trim().parse().unwrap();
        let data = blobs
            .join(&digest.hex()[..2])
            .join(digest.hex())
            .join("data");
        // Upload directories have no links; a link without its blob is a broken repository.
        assert!(
            data.is_file(),
            "{} links to {digest}, which the registry does not store",
            link.display()
        );
    }
    checked
}

fn read_dir(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

fn find_named(dir: &Path, name: &str, out: &mut Vec<PathBuf>) {
    for entry in read_dir(dir) {
        if entry.is_dir() {
            find_named(&entry, name, out);
        } else if entry.file_name().is_some_and(|n| n == name) {
            out.push(entry);
        }
    }
}

/// Every regular file below `dir` (not following symlinks).
pub fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in read_dir(dir) {
        let Ok(meta) = std::fs::symlink_metadata(&entry) else {
            continue;
        };
        if meta.is_dir() {
            out.extend(files_below(&entry));
        } else if meta.is_file() {
            out.push(entry);
        }
    }
    out
}

/// A pseudo-random but seeded byte string (incompressible enough to make real layers).
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..len).map(|_| rng.u8(..)).collect()
}
