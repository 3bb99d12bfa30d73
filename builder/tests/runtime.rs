//! Snapshots and the OCI runtime with real components: a busybox-static rootfs stored as a layer,
//! extracted as an overlay lowerdir, run in runc over an overlayfs (and a copied) rootfs, the
//! changes turned into a layer. Skips with a message where root, runc or busybox is missing.

// Test code: a failed unwrap is a failed test, in helpers as in `#[test]` functions.
#![allow(clippy::unwrap_used)]

mod fixture;

use std::path::{Path, PathBuf};

use inlay_builder::extract::{self, ExtractOptions, WhiteoutMode};
use inlay_builder::layer::{LayerOptions, LayerSource, write_layer};
use inlay_builder::runtime::{Network, RunSpec, Runtime, RuntimeError, Stream};
use inlay_builder::snapshot::{self, SnapshotChanges, SnapshotMode};
use inlay_builder::store::Store;

/// Why these tests cannot run here, if they cannot.
fn missing_requirement() -> Option<&'static str> {
    if !fixture::is_root() {
        return Some("not running as root");
    }
    if !Path::new("/usr/bin/busybox").is_file() {
        return Some("/usr/bin/busybox is missing (apt-get install busybox-static)");
    }
    if !Runtime::default().is_available() {
        return Some("runc is missing (apt-get install runc)");
    }
    None
}

macro_rules! require_runtime {
    () => {
        if let Some(why) = missing_requirement() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

/// A store holding the busybox rootfs as a layer blob and as an extracted overlay lowerdir.
fn base_snapshot(store: &Store) -> PathBuf {
    let tree = tempfile::tempdir().unwrap();
    fixture::busybox_rootfs(tree.path());
    let writer = store.blob_writer().unwrap();
    let (info, writer) = write_layer(
        LayerSource::Tree(tree.path()),
        writer,
        &LayerOptions::default(),
    )
    .unwrap();
    let (digest, _) = writer.commit(Some(&info.digest)).unwrap();
    let chain_id = &snapshot::chain_ids(std::slice::from_ref(&info.diff_id))[0];
    snapshot::layer_snapshot(store, chain_id, &digest, &info.diff_id).unwrap()
}

fn layer_names(source: LayerSource<'_>) -> Vec<String> {
    let (_, blob) = write_layer(
        source,
        Vec::new(),
        &LayerOptions {
            compression: inlay_core::Compression::None,
            ..LayerOptions::default()
        },
    )
    .unwrap();
    let mut archive = tar::Archive::new(blob.as_slice());
    archive
        .entries()
        .unwrap()
        .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
        .collect()
}

fn run(
    rootfs: &Path,
    spec: &RunSpec,
    scratch: &Path,
) -> Result<inlay_builder::runtime::RunOutput, RuntimeError> {
    let bundle = tempfile::tempdir_in(scratch).unwrap();
    let mut seen = Vec::new();
    let result = Runtime::default().run(rootfs, spec, bundle.path(), &mut |line| {
        seen.push(line.text.clone());
    });
    if let Ok(output) = &result {
        assert_eq!(seen.len(), output.tail.len(), "the observer saw every line");
    }
    result
}

#[test]
fn run_over_overlay_captures_output_and_the_upperdir_becomes_a_layer() {
    require_runtime!();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let base = base_snapshot(&store);
    let scratch = store.scratch_dir().unwrap();
    let active = snapshot::prepare(
        std::slice::from_ref(&base),
        scratch.path(),
        SnapshotMode::Overlay,
    )
    .unwrap();
    assert!(active.is_overlay());
    let spec = RunSpec::new(["sh", "-c", "echo hello > /hello.txt; id -u"]);
    let output = run(active.rootfs(), &spec, scratch.path()).unwrap();
    assert_eq!(output.lines(Stream::Stdout), vec!["0"]);

    // A second step over the same rootfs as nobody.
    let mut as_nobody = RunSpec::new(["id", "-u"]);
    as_nobody.user = "nobody".to_owned();
    let output = run(active.rootfs(), &as_nobody, scratch.path()).unwrap();
    assert_eq!(output.lines(Stream::Stdout), vec!["65534"]);

    let changes = active.finish().unwrap();
    let SnapshotChanges::Overlay { upper, .. } = &changes else {
        panic!("expected an overlay upperdir, got {changes:?}");
    };
    assert_eq!(std::fs::read(upper.join("hello.txt")).unwrap(), b"hello\n");
    let names = layer_names(changes.layer_source());
    assert!(names.contains(&"hello.txt".to_owned()), "{names:?}");
    // Only the new file: `/etc` was copied up for the runtime's mount points, but its metadata
    // was restored, so it is no change.
    assert_eq!(names, vec!["hello.txt"]);
    for stub in ["proc/", "dev/", "sys/", "etc/hosts", "etc/resolv.conf"] {
        assert!(
            !names.contains(&stub.to_owned()),
            "mount stub {stub} leaked: {names:?}"
        );
    }
    // The lower snapshot is untouched.
    assert!(!base.join("hello.txt").exists());
}

#[test]
fn a_failing_command_reports_its_status_and_last_lines() {
    require_runtime!();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let base = base_snapshot(&store);
    let scratch = store.scratch_dir().unwrap();
    let active = snapshot::prepare(&[base], scratch.path(), SnapshotMode::Auto).unwrap();
    let spec = RunSpec::new([
        "sh",
        "-c",
        "echo compiling; echo 'error: it broke' >&2; exit 3",
    ]);
    let err = run(active.rootfs(), &spec, scratch.path()).unwrap_err();
    let RuntimeError::CommandFailed { status, tail, .. } = &err else {
        panic!("expected a command failure, got {err}");
    };
    assert_eq!(*status, 3);
    assert!(tail.contains(&"compiling".to_owned()), "{tail:?}");
    assert!(tail.contains(&"error: it broke".to_owned()), "{tail:?}");
    let message = err.to_string();
    assert!(message.contains("exit code 3"), "{message}");
    assert!(message.contains("error: it broke"), "{message}");
    drop(active);
}

#[test]
fn the_default_network_has_only_loopback() {
    require_runtime!();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let base = base_snapshot(&store);
    let scratch = store.scratch_dir().unwrap();
    let active = snapshot::prepare(&[base], scratch.path(), SnapshotMode::Auto).unwrap();
    let spec = RunSpec::new(["sh", "-c", "ls /sys/class/net; cat /sys/class/net/lo/flags"]);
    assert_eq!(spec.network, Network::None);
    let output = run(active.rootfs(), &spec, scratch.path()).unwrap();
    let lines = output.lines(Stream::Stdout);
    assert_eq!(lines[0], "lo", "{lines:?}");
    assert_eq!(lines.len(), 2, "only the loopback device: {lines:?}");
    let flags = u32::from_str_radix(lines[1].trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 1, 1, "loopback is up (IFF_UP)");

    // With the host's network, the host's interfaces are there.
    let mut host = RunSpec::new(["ls", "/sys/class/net"]);
    host.network = Network::Host;
    let output = run(active.rootfs(), &host, scratch.path()).unwrap();
    let mut expected: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    expected.sort();
    let mut got: Vec<String> = output
        .lines(Stream::Stdout)
        .iter()
        .flat_map(|l| l.split_whitespace())
        .map(str::to_owned)
        .collect();
    got.sort();
    assert_eq!(got, expected);
}

#[test]
fn unknown_users_are_refused_before_running() {
    require_runtime!();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let base = base_snapshot(&store);
    let scratch = store.scratch_dir().unwrap();
    let active = snapshot::prepare(&[base], scratch.path(), SnapshotMode::Auto).unwrap();
    let mut spec = RunSpec::new(["true"]);
    spec.user = "ghost".to_owned();
    let err = run(active.rootfs(), &spec, scratch.path()).unwrap_err();
    assert!(matches!(err, RuntimeError::UnknownUser { .. }), "{err}");
}

#[test]
fn the_copy_snapshotter_and_differ_make_the_same_change_set() {
    require_runtime!();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let base = base_snapshot(&store);
    let scratch = store.scratch_dir().unwrap();
    let active = snapshot::prepare(&[base], scratch.path(), SnapshotMode::Copy).unwrap();
    assert!(!active.is_overlay());
    let spec = RunSpec::new(["sh", "-c", "echo hello > /hello.txt; rm /etc/group"]);
    run(active.rootfs(), &spec, scratch.path()).unwrap();
    let changes = active.finish().unwrap();
    assert!(matches!(changes, SnapshotChanges::Copy { .. }));
    let names = layer_names(changes.layer_source());
    assert!(names.contains(&"hello.txt".to_owned()), "{names:?}");
    assert!(names.contains(&"etc/.wh.group".to_owned()), "{names:?}");
    assert_eq!(
        names.len(),
        3,
        "etc/, its whiteout and hello.txt: {names:?}"
    );
    for stub in ["proc/", "dev/", "sys/", "etc/hosts", "etc/resolv.conf"] {
        assert!(
            !names.contains(&stub.to_owned()),
            "mount stub {stub} leaked: {names:?}"
        );
    }
}

#[test]
fn stacked_overlay_lowers_apply_whiteouts() {
    require_runtime!();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let base = base_snapshot(&store);
    // A second layer deleting /etc/group, extracted as an overlay lowerdir.
    let tar = fixture::raw_tar(&[fixture::RawEntry::File(
        b"etc/.wh.group".to_vec(),
        Vec::new(),
    )]);
    let second = dir.path().join("second");
    extract::extract(
        tar.as_slice(),
        &second,
        &ExtractOptions {
            whiteouts: WhiteoutMode::Overlay,
            ..ExtractOptions::default()
        },
    )
    .unwrap();
    for mode in [SnapshotMode::Overlay, SnapshotMode::Copy] {
        let scratch = store.scratch_dir().unwrap();
        let active =
            snapshot::prepare(&[base.clone(), second.clone()], scratch.path(), mode).unwrap();
        assert!(active.rootfs().join("etc/passwd").is_file(), "{mode:?}");
        assert!(!active.rootfs().join("etc/group").exists(), "{mode:?}");
        active.finish().unwrap();
    }
}

fn is_mounted(path: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let path = path.to_str().unwrap();
    mounts
        .lines()
        .any(|l| l.split_whitespace().nth(4) == Some(path))
}

#[test]
fn dropping_an_active_snapshot_unmounts_it() {
    require_runtime!();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let base = base_snapshot(&store);
    let scratch = store.scratch_dir().unwrap();
    let active = snapshot::prepare(&[base], scratch.path(), SnapshotMode::Overlay).unwrap();
    let rootfs = active.rootfs().to_path_buf();
    assert!(is_mounted(&rootfs));
    // As on an error path: the snapshot goes out of scope without `finish`.
    drop(active);
    assert!(!is_mounted(&rootfs));
}
