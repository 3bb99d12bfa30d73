//! The tricks hostile layers play beyond plain traversal: duplicate entries that swap what a name
//! is between entries, links through earlier entries, device nodes, sparse and entry-count bombs.
//! Each is refused with a clear error or applied harmlessly, and nothing outside the target
//! directory changes. A property test mixes them at random, plain and gzip-compressed.

// Test code: a failed unwrap is a failed test, in helpers as in `#[test]` functions.
#![allow(clippy::unwrap_used)]

mod fixture;

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use inlay_builder::extract::{self, ExtractError, ExtractOptions, WhiteoutMode};
use proptest::prelude::*;

/// One entry of a hand-written archive, names and link targets stored byte for byte.
#[derive(Debug, Clone)]
enum Raw {
    File(Vec<u8>, Vec<u8>),
    Dir(Vec<u8>),
    Symlink(Vec<u8>, Vec<u8>),
    HardLink(Vec<u8>, Vec<u8>),
    CharDevice(Vec<u8>, u32, u32),
    Fifo(Vec<u8>),
    /// A GNU sparse file: `real_size` bytes, all a hole but the last `data.len()` bytes.
    Sparse(Vec<u8>, u64, Vec<u8>),
}

fn header(name: &[u8], kind: tar::EntryType) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    header.set_mtime(1_000_000);
    header.set_size(0);
    let old = header.as_old_mut();
    let n = name.len().min(99);
    old.name[..n].copy_from_slice(&name[..n]);
    header
}

fn set_link(header: &mut tar::Header, link: &[u8]) {
    let old = header.as_old_mut();
    let n = link.len().min(99);
    old.linkname[..n].copy_from_slice(&link[..n]);
}

fn push(out: &mut Vec<u8>, mut header: tar::Header, data: &[u8]) {
    header.set_cksum();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
}

fn tar_of(entries: &[Raw]) -> Vec<u8> {
    use tar::EntryType as T;
    let mut out = Vec::new();
    for entry in entries {
        match entry {
            Raw::File(name, data) => {
                let mut h = header(name, T::Regular);
                h.set_size(data.len() as u64);
                push(&mut out, h, data);
            }
            Raw::Dir(name) => push(&mut out, header(name, T::Directory), b""),
            Raw::Symlink(name, link) => {
                let mut h = header(name, T::Symlink);
                set_link(&mut h, link);
                push(&mut out, h, b"");
            }
            Raw::HardLink(name, link) => {
                let mut h = header(name, T::Link);
                set_link(&mut h, link);
                push(&mut out, h, b"");
            }
            Raw::CharDevice(name, major, minor) => {
                let mut h = header(name, T::Char);
                let gnu = h.as_gnu_mut().unwrap();
                gnu.dev_major = octal8(*major);
                gnu.dev_minor = octal8(*minor);
                push(&mut out, h, b"");
            }
            Raw::Fifo(name) => push(&mut out, header(name, T::Fifo), b""),
            Raw::Sparse(name, real_size, data) => {
                let mut h = header(name, T::GNUSparse);
                h.set_size(data.len() as u64);
                let gnu = h.as_gnu_mut().unwrap();
                gnu.set_real_size(*real_size);
                gnu.sparse[0].set_offset(real_size - data.len() as u64);
                gnu.sparse[0].set_length(data.len() as u64);
                push(&mut out, h, data);
            }
        }
    }
    out.resize(out.len() + 1024, 0);
    out
}

fn octal8(value: u32) -> [u8; 8] {
    let text = format!("{value:07o}\0");
    text.as_bytes().try_into().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// `outside/bait` beside the extraction target `root/`; everything outside `root/` must stay
/// exactly as made (names, content, mode, mtime, link count).
struct Sandbox {
    dir: tempfile::TempDir,
    bait: (Vec<u8>, u32, i64, u64),
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("outside")).unwrap();
        std::fs::write(dir.path().join("outside/bait"), b"untouched").unwrap();
        std::fs::create_dir(dir.path().join("root")).unwrap();
        let mut sandbox = Sandbox {
            dir,
            bait: (Vec::new(), 0, 0, 0),
        };
        sandbox.bait = sandbox.bait_now();
        sandbox
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }

    fn bait_now(&self) -> (Vec<u8>, u32, i64, u64) {
        let bait = self.outside().join("bait");
        let meta = std::fs::symlink_metadata(&bait).unwrap();
        (
            std::fs::read(&bait).unwrap(),
            meta.mode(),
            meta.mtime(),
            meta.nlink(),
        )
    }

    /// Symlinks a lower layer could have left in the target, all leading out of it.
    fn plant_escaping_symlinks(&self) {
        std::os::unix::fs::symlink("../outside", self.root().join("up")).unwrap();
        std::os::unix::fs::symlink(self.outside(), self.root().join("abs")).unwrap();
        std::os::unix::fs::symlink("../outside/bait", self.root().join("bait")).unwrap();
    }

    fn extract_with(&self, blob: &[u8], options: &ExtractOptions) -> Result<(), ExtractError> {
        extract::extract(blob, &self.root(), options).map(drop)
    }

    fn extract(&self, entries: &[Raw]) -> Result<(), ExtractError> {
        self.extract_with(&tar_of(entries), &ExtractOptions::default())
    }

    fn assert_outside_untouched(&self) {
        let names = |dir: &Path| {
            let mut names: Vec<String> = std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            names
        };
        assert_eq!(names(self.dir.path()), ["outside", "root"]);
        assert_eq!(names(&self.outside()), ["bait"]);
        assert_eq!(
            self.bait_now(),
            self.bait,
            "the bait outside the root changed"
        );
    }
}

/// Whether the calling test should run its body here: yes when not root. As root, the test
/// `name` of this binary is run again as `nobody` (and must pass), so the unprivileged paths
/// (device nodes skipped, whiteouts kept in tar form) are tested whoever runs the suite.
fn unprivileged(name: &str) -> bool {
    use std::os::unix::process::CommandExt;
    if !fixture::is_root() {
        return true;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .uid(65534)
        .gid(65534)
        .env("TMPDIR", "/tmp")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{name} as nobody: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    false
}

fn v(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

#[test]
fn a_file_then_an_escaping_symlink_of_the_same_name_then_a_file_through_it_is_refused() {
    let sandbox = Sandbox::new();
    let err = sandbox
        .extract(&[
            Raw::File(v("a"), v("first")),
            Raw::Symlink(v("a"), v("../outside")),
            Raw::File(v("a/evil"), v("x")),
        ])
        .unwrap_err();
    assert!(
        matches!(&err, ExtractError::SymlinkEscape { entry, link } if entry == "a/evil" && link == Path::new("a")),
        "{err}"
    );
    assert!(err.to_string().contains("a/evil"), "{err}");
    sandbox.assert_outside_untouched();
}

#[test]
fn a_file_then_an_inside_symlink_of_the_same_name_then_a_file_through_it_lands_inside() {
    let sandbox = Sandbox::new();
    sandbox
        .extract(&[
            Raw::Dir(v("real")),
            Raw::File(v("a"), v("first")),
            Raw::Symlink(v("a"), v("/real")),
            Raw::File(v("a/through"), v("x")),
        ])
        .unwrap();
    assert_eq!(
        std::fs::read(sandbox.root().join("real/through")).unwrap(),
        b"x"
    );
    assert!(
        std::fs::symlink_metadata(sandbox.root().join("a"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    sandbox.assert_outside_untouched();
}

#[test]
fn a_directory_replaced_by_a_symlink_in_the_same_layer_is_refused() {
    let sandbox = Sandbox::new();
    let err = sandbox
        .extract(&[
            Raw::Dir(v("d")),
            Raw::File(v("d/inner"), v("x")),
            Raw::Symlink(v("d"), v("/")),
        ])
        .unwrap_err();
    assert!(
        matches!(&err, ExtractError::DuplicateEntry { entry, earlier: "directory" } if entry == "d"),
        "{err}"
    );
    sandbox.assert_outside_untouched();
}

#[test]
fn a_lower_layer_directory_replaced_by_an_escaping_symlink_cannot_be_written_through() {
    let sandbox = Sandbox::new();
    std::fs::create_dir(sandbox.root().join("d")).unwrap();
    let err = sandbox
        .extract(&[
            Raw::Symlink(v("d"), v("../outside")),
            Raw::File(v("d/evil"), v("x")),
        ])
        .unwrap_err();
    assert!(matches!(err, ExtractError::SymlinkEscape { .. }), "{err}");
    sandbox.assert_outside_untouched();
}

#[test]
fn escaping_symlinks_left_by_a_lower_layer_are_replaced_not_followed() {
    let sandbox = Sandbox::new();
    sandbox.plant_escaping_symlinks();
    // The last name of an entry is never followed: these replace the links themselves.
    sandbox
        .extract(&[
            Raw::File(v("bait"), v("replaced")),
            Raw::Dir(v("abs")),
            Raw::HardLink(v("up"), v("bait")),
        ])
        .unwrap();
    assert_eq!(
        std::fs::read(sandbox.root().join("bait")).unwrap(),
        b"replaced"
    );
    assert!(sandbox.root().join("abs").is_dir());
    sandbox.assert_outside_untouched();
    // Through them: refusals, or for an absolute link the path the container will see.
    let sandbox = Sandbox::new();
    sandbox.plant_escaping_symlinks();
    sandbox
        .extract(&[Raw::File(v("abs/bait"), v("x"))])
        .unwrap();
    let inside = sandbox
        .root()
        .join(sandbox.outside().strip_prefix("/").unwrap())
        .join("bait");
    assert_eq!(std::fs::read(inside).unwrap(), b"x");
    for entries in [
        vec![Raw::File(v("up/bait"), v("x"))],
        vec![Raw::HardLink(v("stolen"), v("up/bait"))],
        vec![Raw::File(v("up/.wh.bait"), v(""))],
    ] {
        let err = sandbox.extract(&entries).unwrap_err();
        assert!(!err.to_string().is_empty());
    }
    sandbox.assert_outside_untouched();
}

#[test]
fn a_file_rewritten_over_its_hard_link_does_not_write_through_the_link() {
    let sandbox = Sandbox::new();
    sandbox
        .extract(&[
            Raw::File(v("a"), v("original")),
            Raw::HardLink(v("b"), v("a")),
            Raw::File(v("b"), v("rewritten")),
        ])
        .unwrap();
    assert_eq!(
        std::fs::read(sandbox.root().join("a")).unwrap(),
        b"original"
    );
    assert_eq!(
        std::fs::read(sandbox.root().join("b")).unwrap(),
        b"rewritten"
    );
    sandbox.assert_outside_untouched();
}

#[test]
fn a_hard_link_to_an_escaping_symlink_links_the_symlink_itself() {
    let sandbox = Sandbox::new();
    sandbox
        .extract(&[
            Raw::Symlink(v("link"), v("../outside/bait")),
            Raw::HardLink(v("copy"), v("link")),
        ])
        .unwrap();
    let meta = std::fs::symlink_metadata(sandbox.root().join("copy")).unwrap();
    assert!(meta.file_type().is_symlink());
    sandbox.assert_outside_untouched();
}

#[test]
fn device_nodes_are_skipped_without_root_and_fifos_kept() {
    if !unprivileged("device_nodes_are_skipped_without_root_and_fifos_kept") {
        return;
    }
    let sandbox = Sandbox::new();
    sandbox
        .extract(&[
            Raw::CharDevice(v("null"), 1, 3),
            Raw::CharDevice(v("sda"), 8, 0),
            Raw::Fifo(v("pipe")),
        ])
        .unwrap();
    assert!(!sandbox.root().join("null").exists());
    assert!(!sandbox.root().join("sda").exists());
    let pipe = std::fs::symlink_metadata(sandbox.root().join("pipe")).unwrap();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&pipe.file_type()));
    sandbox.assert_outside_untouched();
}

#[test]
fn device_node_whiteouts_in_overlay_mode_fall_back_to_tar_markers_without_root() {
    if !unprivileged("device_node_whiteouts_in_overlay_mode_fall_back_to_tar_markers_without_root")
    {
        return;
    }
    let sandbox = Sandbox::new();
    sandbox
        .extract_with(
            &tar_of(&[Raw::File(v(".wh.gone"), Vec::new())]),
            &ExtractOptions {
                whiteouts: WhiteoutMode::Overlay,
                ..ExtractOptions::default()
            },
        )
        .unwrap();
    assert!(sandbox.root().join(".wh.gone").is_file());
    sandbox.assert_outside_untouched();
}

/// Found while hardening (by reading): in overlay mode without root, whiteout and opaque markers
/// were written with a plain `write`, which follows a symlink already standing at the marker's
/// name and truncated the file it pointed at, outside the target.
#[test]
fn overlay_markers_are_never_written_through_a_symlink() {
    if !unprivileged("overlay_markers_are_never_written_through_a_symlink") {
        return;
    }
    let sandbox = Sandbox::new();
    std::fs::create_dir(sandbox.root().join("d")).unwrap();
    for name in [".wh.gone", "d/.wh..wh..opq"] {
        std::os::unix::fs::symlink(sandbox.outside().join("bait"), sandbox.root().join(name))
            .unwrap();
    }
    sandbox
        .extract_with(
            &tar_of(&[
                Raw::File(v(".wh.gone"), Vec::new()),
                Raw::File(v("d/.wh..wh..opq"), Vec::new()),
            ]),
            &ExtractOptions {
                whiteouts: WhiteoutMode::Overlay,
                ..ExtractOptions::default()
            },
        )
        .unwrap();
    for name in [".wh.gone", "d/.wh..wh..opq"] {
        assert!(
            std::fs::symlink_metadata(sandbox.root().join(name))
                .unwrap()
                .is_file()
        );
    }
    sandbox.assert_outside_untouched();
}

#[test]
fn a_sparse_entry_is_expanded_when_within_the_limit() {
    let sandbox = Sandbox::new();
    let blob = tar_of(&[Raw::Sparse(v("sparse"), 1 << 20, v("tail"))]);
    let report =
        extract::extract(blob.as_slice(), &sandbox.root(), &ExtractOptions::default()).unwrap();
    assert!(report.uncompressed_size < 4096);
    let written = std::fs::read(sandbox.root().join("sparse")).unwrap();
    assert_eq!(written.len(), 1 << 20);
    assert!(written.ends_with(b"tail"));
    assert!(written[..written.len() - 4].iter().all(|b| *b == 0));
}

/// Found while hardening (by reading, not by the fuzzer): the size limit counted the tar stream
/// only, so a GNU sparse entry claiming a huge file made of holes (a few header bytes) was written
/// out in full, whatever the limit.
#[test]
fn sparse_holes_count_against_the_size_limit() {
    let sandbox = Sandbox::new();
    // 1 TiB of holes in one 2 KiB archive: refused before anything is written.
    let blob = tar_of(&[Raw::Sparse(v("bomb"), 1 << 40, v("tail"))]);
    assert!(blob.len() < 4096);
    let err = sandbox
        .extract_with(
            &gzip(&blob),
            &ExtractOptions {
                max_uncompressed_size: 64 << 20,
                ..ExtractOptions::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(err, ExtractError::TooLarge { limit } if limit == 64 << 20),
        "{err}"
    );
    assert!(err.to_string().contains("67108864"), "{err}");
    let written = std::fs::symlink_metadata(sandbox.root().join("bomb")).map(|m| m.len());
    assert!(
        written.as_ref().map_or(true, |len| *len == 0),
        "{written:?}"
    );
    sandbox.assert_outside_untouched();
}

#[test]
fn file_contents_together_count_against_the_size_limit() {
    let sandbox = Sandbox::new();
    // Each file is under the limit; together they are over it.
    let entries: Vec<Raw> = (0..4)
        .map(|i| Raw::Sparse(format!("part{i}").into_bytes(), 48 << 10, v("x")))
        .collect();
    let err = sandbox
        .extract_with(
            &tar_of(&entries),
            &ExtractOptions {
                max_uncompressed_size: 128 << 10,
                ..ExtractOptions::default()
            },
        )
        .unwrap_err();
    assert!(matches!(err, ExtractError::TooLarge { .. }), "{err}");
}

#[test]
fn an_entry_flood_hits_the_entry_limit() {
    let sandbox = Sandbox::new();
    let entries: Vec<Raw> = (0..100)
        .map(|i| Raw::File(format!("f{i}").into_bytes(), Vec::new()))
        .collect();
    let blob = gzip(&tar_of(&entries));
    let options = ExtractOptions {
        max_entries: 99,
        ..ExtractOptions::default()
    };
    let err = sandbox.extract_with(&blob, &options).unwrap_err();
    assert!(
        matches!(err, ExtractError::TooManyEntries { limit: 99 }),
        "{err}"
    );
    assert!(err.to_string().contains("99 entries"), "{err}");
    // Exactly at the limit is fine.
    let sandbox = Sandbox::new();
    let blob = gzip(&tar_of(&entries[..99]));
    sandbox.extract_with(&blob, &options).unwrap();
}

#[test]
fn the_default_limits_are_generous() {
    let options = ExtractOptions::default();
    assert!(options.max_uncompressed_size >= 16 << 30);
    assert!(options.max_entries >= 1 << 20);
}

fn name_strategy() -> impl Strategy<Value = Vec<u8>> {
    let part = prop_oneof![
        Just("a"),
        Just("b"),
        Just(".."),
        Just("."),
        Just(""),
        Just("up"),
        Just("abs"),
        Just("bait"),
        Just("outside"),
        Just(".wh.a"),
        Just(".wh.bait"),
        Just(".wh..wh..opq"),
    ];
    (any::<bool>(), prop::collection::vec(part, 1..4)).prop_map(|(absolute, parts)| {
        let mut name = if absolute {
            "/".to_owned()
        } else {
            String::new()
        };
        name.push_str(&parts.join("/"));
        name.into_bytes()
    })
}

fn link_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(v("..")),
        Just(v("../..")),
        Just(v("../outside")),
        Just(v("../outside/bait")),
        Just(v("/")),
        Just(v("a")),
        Just(v("a/b")),
        Just(v("up/bait")),
        name_strategy(),
    ]
}

fn entry_strategy() -> impl Strategy<Value = Raw> {
    prop_oneof![
        3 => (name_strategy(), prop::collection::vec(any::<u8>(), 0..16))
            .prop_map(|(n, d)| Raw::File(n, d)),
        2 => name_strategy().prop_map(Raw::Dir),
        3 => (name_strategy(), link_strategy()).prop_map(|(n, l)| Raw::Symlink(n, l)),
        2 => (name_strategy(), link_strategy()).prop_map(|(n, l)| Raw::HardLink(n, l)),
        1 => name_strategy().prop_map(|n| Raw::CharDevice(n, 1, 3)),
        1 => name_strategy().prop_map(Raw::Fifo),
        1 => (name_strategy(), 4u64..(1 << 16)).prop_map(|(n, size)| Raw::Sparse(n, size, v("data"))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Hostile archives, plain or gzip, applied either way onto a fresh or a planted target:
    /// a clear error or success, and never a write outside the root.
    #[test]
    fn hostile_archives_fail_clearly_or_stay_inside(
        entries in prop::collection::vec(entry_strategy(), 1..10),
        compressed in any::<bool>(),
        overlay in any::<bool>(),
        planted in any::<bool>(),
    ) {
        let sandbox = Sandbox::new();
        if planted {
            sandbox.plant_escaping_symlinks();
        }
        let tar = tar_of(&entries);
        let blob = if compressed { gzip(&tar) } else { tar };
        let options = ExtractOptions {
            whiteouts: if overlay { WhiteoutMode::Overlay } else { WhiteoutMode::Apply },
            max_uncompressed_size: 1 << 20,
            max_entries: 8,
            ..ExtractOptions::default()
        };
        if let Err(err) = sandbox.extract_with(&blob, &options) {
            let message = err.to_string();
            prop_assert!(!message.is_empty());
            // Every refusal about an entry names it.
            if let ExtractError::UnsafeName { entry, .. }
            | ExtractError::SymlinkEscape { entry, .. }
            | ExtractError::BadHardLink { entry, .. }
            | ExtractError::DuplicateEntry { entry, .. } = &err
            {
                prop_assert!(message.contains(&format!("{entry:?}")), "{}", message);
            }
        }
        sandbox.assert_outside_untouched();
    }
}

/// As root, the property is checked once more as `nobody`, where device nodes are skipped and
/// overlay whiteouts stay in tar form (not root: the property test above already ran that way).
#[test]
fn hostile_archives_fail_clearly_or_stay_inside_unprivileged() {
    let _ = unprivileged("hostile_archives_fail_clearly_or_stay_inside");
}
