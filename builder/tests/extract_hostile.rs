//! Hostile archives are refused with an error naming the entry, and nothing is ever written
//! outside the target directory.

// Test code: a failed unwrap is a failed test, in helpers as in `#[test]` functions.
#![allow(clippy::unwrap_used)]

mod fixture;

use std::path::Path;

use fixture::RawEntry::{Dir, File, HardLink, Symlink};
use inlay_builder::extract::{self, ExtractError, ExtractOptions};
use proptest::prelude::*;

/// A sandbox: `outside/` holds a bait file, `root/` is the extraction target.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("outside")).unwrap();
        std::fs::write(dir.path().join("outside/bait"), b"untouched").unwrap();
        std::fs::create_dir_all(dir.path().join("root")).unwrap();
        Sandbox { dir }
    }

    fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("root")
    }

    fn extract(&self, entries: &[fixture::RawEntry]) -> Result<(), ExtractError> {
        let tar = fixture::raw_tar(entries);
        extract::extract(tar.as_slice(), &self.root(), &ExtractOptions::default()).map(drop)
    }

    /// Everything outside `root/` is exactly as it was made.
    fn assert_outside_untouched(&self) {
        let top: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        let mut top = top;
        top.sort();
        assert_eq!(top, vec!["outside", "root"]);
        let outside: Vec<_> = std::fs::read_dir(self.dir.path().join("outside"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(outside, vec!["bait"]);
        assert_eq!(
            std::fs::read(self.dir.path().join("outside/bait")).unwrap(),
            b"untouched"
        );
    }
}

#[test]
fn parent_traversal_is_refused() {
    let sandbox = Sandbox::new();
    let err = sandbox
        .extract(&[File(b"../outside/evil".to_vec(), b"x".to_vec())])
        .unwrap_err();
    assert!(
        matches!(&err, ExtractError::UnsafeName { entry, .. } if entry == "../outside/evil"),
        "{err}"
    );
    assert!(err.to_string().contains("../outside/evil"));
    sandbox.assert_outside_untouched();
}

#[test]
fn absolute_names_that_climb_are_refused() {
    let sandbox = Sandbox::new();
    let err = sandbox
        .extract(&[File(b"/abs/../../outside/evil".to_vec(), b"x".to_vec())])
        .unwrap_err();
    assert!(matches!(err, ExtractError::UnsafeName { .. }), "{err}");
    sandbox.assert_outside_untouched();
    // A plain absolute name is taken relative to the root, as Docker does.
    sandbox
        .extract(&[File(b"/etc/ok".to_vec(), b"x".to_vec())])
        .unwrap();
    assert!(sandbox.root().join("etc/ok").is_file());
}

#[test]
fn writing_through_an_escaping_symlink_is_refused() {
    let sandbox = Sandbox::new();
    let err = sandbox
        .extract(&[
            Symlink(b"escape".to_vec(), b"../outside".to_vec()),
            File(b"escape/evil".to_vec(), b"x".to_vec()),
        ])
        .unwrap_err();
    assert!(
        matches!(&err, ExtractError::SymlinkEscape { entry, link } if entry == "escape/evil" && link == Path::new("escape")),
        "{err}"
    );
    sandbox.assert_outside_untouched();
}

#[test]
fn absolute_symlinks_resolve_inside_the_root() {
    let sandbox = Sandbox::new();
    let outside = sandbox.dir.path().join("outside");
    let target = outside.to_str().unwrap().as_bytes().to_vec();
    sandbox
        .extract(&[
            Symlink(b"abs".to_vec(), target),
            File(b"abs/planted".to_vec(), b"x".to_vec()),
        ])
        .unwrap();
    sandbox.assert_outside_untouched();
    // The write landed where the container will see it: under the root.
    let inside = sandbox
        .root()
        .join(outside.strip_prefix("/").unwrap())
        .join("planted");
    assert!(inside.is_file());
}

#[test]
fn hard_links_out_of_the_root_are_refused() {
    let sandbox = Sandbox::new();
    let err = sandbox
        .extract(&[HardLink(b"stolen".to_vec(), b"../outside/bait".to_vec())])
        .unwrap_err();
    assert!(
        matches!(&err, ExtractError::BadHardLink { entry, .. } if entry == "stolen"),
        "{err}"
    );
    let err = sandbox
        .extract(&[
            Symlink(b"up".to_vec(), b"..".to_vec()),
            HardLink(b"stolen".to_vec(), b"up/outside/bait".to_vec()),
        ])
        .unwrap_err();
    assert!(matches!(err, ExtractError::BadHardLink { .. }), "{err}");
    let absolute = sandbox.dir.path().join("outside/bait");
    let err = sandbox
        .extract(&[HardLink(
            b"stolen".to_vec(),
            absolute.to_str().unwrap().as_bytes().to_vec(),
        )])
        .unwrap_err();
    assert!(matches!(err, ExtractError::BadHardLink { .. }), "{err}");
    sandbox.assert_outside_untouched();
}

#[test]
fn a_duplicate_entry_turning_a_directory_into_a_symlink_is_refused() {
    let sandbox = Sandbox::new();
    let err = sandbox
        .extract(&[
            Dir(b"dir".to_vec()),
            Symlink(b"dir".to_vec(), b"../outside".to_vec()),
            File(b"dir/evil".to_vec(), b"x".to_vec()),
        ])
        .unwrap_err();
    assert!(
        matches!(&err, ExtractError::DuplicateEntry { entry, .. } if entry == "dir"),
        "{err}"
    );
    sandbox.assert_outside_untouched();
}

#[test]
fn decompression_bombs_hit_the_size_limit() {
    let dir = tempfile::tempdir().unwrap();
    let tar = fixture::raw_tar(&[File(b"big".to_vec(), vec![0u8; 1 << 20])]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut gz, &tar).unwrap();
    let blob = gz.finish().unwrap();
    assert!(blob.len() < 8 * 1024);
    let err = extract::extract(
        blob.as_slice(),
        dir.path(),
        &ExtractOptions {
            max_uncompressed_size: 64 * 1024,
            ..ExtractOptions::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, ExtractError::TooLarge { limit: 65536 }),
        "{err}"
    );
}

#[test]
fn a_wrong_diff_id_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let tar = fixture::raw_tar(&[File(b"a".to_vec(), b"x".to_vec())]);
    let err = extract::extract(
        tar.as_slice(),
        dir.path(),
        &ExtractOptions {
            expected_diff_id: Some(inlay_core::Digest::sha256_of(b"something else")),
            ..ExtractOptions::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, ExtractError::DiffIdMismatch { .. }), "{err}");
}

fn name_strategy() -> impl Strategy<Value = Vec<u8>> {
    let part = prop_oneof![
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("..".to_owned()),
        Just(".".to_owned()),
        Just(String::new()),
        Just(".wh.a".to_owned()),
        Just(".wh..wh..opq".to_owned()),
        Just("outside".to_owned()),
        Just("bait".to_owned()),
    ];
    (any::<bool>(), prop::collection::vec(part, 1..4)).prop_map(|(abs, parts)| {
        let mut name = if abs { "/".to_owned() } else { String::new() };
        name.push_str(&parts.join("/"));
        name.into_bytes()
    })
}

fn link_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"..".to_vec()),
        Just(b"../..".to_vec()),
        Just(b"../outside".to_vec()),
        Just(b"/".to_vec()),
        Just(b"a".to_vec()),
        Just(b"a/b".to_vec()),
        Just(b"../outside/bait".to_vec()),
        name_strategy(),
    ]
}

fn entry_strategy() -> impl Strategy<Value = fixture::RawEntry> {
    prop_oneof![
        (name_strategy(), prop::collection::vec(any::<u8>(), 0..16)).prop_map(|(n, d)| File(n, d)),
        name_strategy().prop_map(Dir),
        (name_strategy(), link_strategy()).prop_map(|(n, l)| Symlink(n, l)),
        (name_strategy(), link_strategy()).prop_map(|(n, l)| HardLink(n, l)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn random_archives_never_panic_or_escape(entries in prop::collection::vec(entry_strategy(), 1..8)) {
        let sandbox = Sandbox::new();
        let _ = sandbox.extract(&entries);
        sandbox.assert_outside_untouched();
    }
}
