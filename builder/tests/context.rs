//! The directory walker against the pure content-hash API and the spec's sample vectors.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns

use std::fs;
use std::num::NonZeroUsize;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use inlay_builder::context::{ContextOptions, hash_directory};
use inlay_core::Digest;
use inlay_core::contenthash::{
    ContentTree, ContentTreeBuilder, Entry, EntryKind, Profile, Selector, SourceKind, Stat,
    TreeOptions, content_key,
};

fn shared() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared"))
        .canonicalize()
        .unwrap()
}

fn set_mode(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn options(profile: Profile, source: SourceKind, threads: usize) -> ContextOptions {
    let mut options = ContextOptions::new(TreeOptions::new(profile, source));
    options.threads = NonZeroUsize::new(threads).unwrap();
    options
}

#[test]
fn sample_data_txt_through_the_walker() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("data.txt");
    fs::copy(
        shared().join("conformance/buildkit-v0.8-inline-sample/data.txt"),
        &copy,
    )
    .unwrap();
    set_mode(&copy, 0o644);
    // Unrelated files must not matter to the key of /data.txt.
    fs::write(dir.path().join("Dockerfile"), b"FROM scratch\n").unwrap();
    let base = options(Profile::BuildkitV08, SourceKind::LocalContext, 2);
    for options in [base.clone(), base.including(["data.txt"])] {
        let tree = hash_directory(dir.path(), &options).unwrap();
        assert_eq!(
            tree.checksum("/data.txt", true).unwrap().as_str(),
            "sha256:9a3b10e4117e3b78de36a2aa160b9e2598b434e956bdefb940b603ad70cb70d9"
        );
        let key = content_key(&tree, &[Selector::copy_source("/data.txt", true, true)]).unwrap();
        assert_eq!(
            key.as_str(),
            "sha256:edf9a02a27697d920699d4515e83795c9a02dfc7c9e016abe82ca93c43606355"
        );
        let record = Digest::sha256_of(format!("{key}@-1").as_bytes());
        assert_eq!(
            record.as_str(),
            "sha256:49a13ab823a708f0b77162d2e5484869f0902b17bc1fcca6956e273931644ad7"
        );
    }
}

/// Lays out a small tree on disk and returns the same entries for the pure API.
fn lay_out(root: &Path) -> Vec<Entry> {
    let mut entries = Vec::new();
    let add_dir = |rel: &str, mode: u32, entries: &mut Vec<Entry>| {
        let p = root.join(rel);
        fs::create_dir_all(&p).unwrap();
        set_mode(&p, mode);
        entries.push(Entry::new(rel, Stat::new(EntryKind::Dir, mode)));
    };
    add_dir("src", 0o755, &mut entries);
    add_dir("src/nested", 0o750, &mut entries);
    add_dir("src/nested/deeper", 0o755, &mut entries);
    add_dir("empty", 0o700, &mut entries);
    let files: [(&str, u32, &[u8]); 4] = [
        ("src/main.rs", 0o644, b"fn main() {}\n"),
        ("src/nested/deeper/blob", 0o600, &[0u8, 1, 2, 255]),
        ("run.sh", 0o4755, b"#!/bin/sh\n"),
        ("zero", 0o644, b""),
    ];
    for (rel, mode, content) in files {
        let p = root.join(rel);
        fs::write(&p, content).unwrap();
        set_mode(&p, mode);
        let stat = Stat::new(
            EntryKind::File {
                size: content.len() as u64,
            },
            mode,
        );
        entries.push(Entry::with_content(rel, stat, content.to_vec()));
    }
    for (rel, target) in [
        ("src/link", "main.rs"),
        ("abs", "/src"),
        ("dangling", "nope"),
    ] {
        symlink(target, root.join(rel)).unwrap();
        entries.push(Entry::new(
            rel,
            Stat::new(
                EntryKind::Symlink {
                    target: target.into(),
                },
                0o777,
            ),
        ));
    }
    entries
}

fn pure(options: TreeOptions, entries: Vec<Entry>) -> ContentTree {
    let mut builder = ContentTreeBuilder::new(options);
    for entry in entries {
        builder.insert(entry).unwrap();
    }
    builder.build().unwrap()
}

#[test]
fn walker_agrees_with_the_pure_api() {
    let dir = tempfile::tempdir().unwrap();
    let entries = lay_out(dir.path());
    for profile in [Profile::BuildkitV08, Profile::BuildkitCurrent] {
        let tree_options = TreeOptions::new(profile, SourceKind::LocalContext);
        let want = pure(tree_options, entries.clone());
        for threads in [1, 2, 4] {
            let got = hash_directory(
                dir.path(),
                &options(profile, SourceKind::LocalContext, threads),
            )
            .unwrap();
            assert_eq!(got.root_digest(), want.root_digest());
            for path in ["/src", "/src/link", "/abs/nested", "/empty", "/run.sh"] {
                assert_eq!(
                    got.checksum(path, true).unwrap(),
                    want.checksum(path, true).unwrap(),
                    "{path}"
                );
            }
        }
    }
}

#[test]
fn include_paths_keep_ancestors_and_the_selected_branch() {
    let dir = tempfile::tempdir().unwrap();
    let entries = lay_out(dir.path());
    let tree_options = TreeOptions::new(Profile::BuildkitV08, SourceKind::LocalContext);
    let got = hash_directory(
        dir.path(),
        &options(Profile::BuildkitV08, SourceKind::LocalContext, 2).including(["src/nested"]),
    )
    .unwrap();
    // What a following client sends: the parent "src" header and the whole "src/nested" tree.
    let kept: Vec<Entry> = entries
        .into_iter()
        .filter(|e| e.path == "src" || e.path.starts_with("src/nested"))
        .collect();
    let want = pure(tree_options, kept);
    assert_eq!(got.root_digest(), want.root_digest());
    assert!(got.checksum("/src/main.rs", false).is_err());
}

#[test]
fn snapshot_walk_hashes_the_root_and_real_owners() {
    let dir = tempfile::tempdir().unwrap();
    set_mode(dir.path(), 0o755);
    let file = dir.path().join("owned");
    fs::write(&file, b"x").unwrap();
    // chown clears setuid, so change the owner first.
    let owner_changed = std::os::unix::fs::chown(&file, Some(1000), Some(1000)).is_ok();
    set_mode(&file, 0o4750);
    let meta = fs::metadata(dir.path()).unwrap();
    let root_owner = (
        std::os::unix::fs::MetadataExt::uid(&meta),
        std::os::unix::fs::MetadataExt::gid(&meta),
    );
    let (uid, gid) = if owner_changed {
        (1000, 1000)
    } else {
        let meta = fs::metadata(&file).unwrap();
        (
            std::os::unix::fs::MetadataExt::uid(&meta),
            std::os::unix::fs::MetadataExt::gid(&meta),
        )
    };
    for profile in [Profile::BuildkitV08, Profile::BuildkitCurrent] {
        let tree_options = TreeOptions::new(profile, SourceKind::Snapshot);
        let want = pure(
            tree_options,
            vec![
                Entry::new(
                    "/",
                    Stat::new(EntryKind::Dir, 0o755).with_owner(root_owner.0, root_owner.1),
                ),
                Entry::with_content(
                    "owned",
                    Stat::new(EntryKind::File { size: 1 }, 0o4750).with_owner(uid, gid),
                    b"x".to_vec(),
                ),
            ],
        );
        let got = hash_directory(dir.path(), &options(profile, SourceKind::Snapshot, 2)).unwrap();
        assert_eq!(got.root_digest(), want.root_digest(), "{profile:?}");
    }
}

#[test]
fn user_xattrs_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tagged");
    fs::write(&file, b"t").unwrap();
    set_mode(&file, 0o644);
    if xattr::set(&file, "user.inlay", b"v").is_err() {
        // The filesystem under the temp dir has no user xattrs; nothing to check here.
        return;
    }
    let options = options(Profile::BuildkitV08, SourceKind::LocalContext, 1);
    let got = hash_directory(dir.path(), &options).unwrap();
    let stat =
        Stat::new(EntryKind::File { size: 1 }, 0o644).with_xattr("user.inlay", b"v".to_vec());
    let want = pure(
        options.tree,
        vec![Entry::with_content("tagged", stat, b"t".to_vec())],
    );
    assert_eq!(
        got.checksum("/tagged", false).unwrap(),
        want.checksum("/tagged", false).unwrap()
    );
}

#[test]
fn following_a_symlink_source_sends_its_target() {
    // `COPY d/link /l` with d/link -> f1: the client follows the link, so d/f1 is sent too and
    // the content key is that of d/f1 (spec 6.4, verified on v0.24).
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("d")).unwrap();
    fs::write(dir.path().join("d/f1"), b"one").unwrap();
    fs::write(dir.path().join("d/other"), b"two").unwrap();
    symlink("f1", dir.path().join("d/link")).unwrap();
    let options = options(Profile::BuildkitV13, SourceKind::LocalContext, 2).including(["d/link"]);
    let tree = hash_directory(dir.path(), &options).unwrap();
    assert_eq!(
        tree.checksum("/d/link", true).unwrap(),
        tree.checksum("/d/f1", true).unwrap()
    );
    assert!(tree.checksum("/d/other", true).is_err());
    let key = content_key(&tree, &[Selector::copy_source("/d/link", true, true)]).unwrap();
    let f1 = tree.checksum("/d/f1", false).unwrap();
    assert_eq!(key, Digest::sha256_of(f1.as_str().as_bytes()));
}

#[test]
fn wildcard_sources_and_lazy_parents() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (path, data) in [
        ("a.txt", "a"),
        ("b.txt", "b"),
        ("c.md", "c"),
        ("s/x.txt", "x"),
    ] {
        let p = root.join(path);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, data).unwrap();
        set_mode(&p, 0o644);
    }
    fs::create_dir(root.join("empty")).unwrap();
    set_mode(&root.join("s"), 0o755);
    for profile in [
        Profile::BuildkitV08,
        Profile::BuildkitV13,
        Profile::BuildkitCurrent,
    ] {
        let everything =
            hash_directory(root, &options(profile, SourceKind::LocalContext, 2)).unwrap();
        let only = hash_directory(
            root,
            &options(profile, SourceKind::LocalContext, 2).including(["*.txt"]),
        )
        .unwrap();
        let selectors = [Selector::copy_source("/*.txt", true, true)];
        assert_eq!(
            content_key(&only, &selectors).unwrap(),
            content_key(&everything, &selectors).unwrap()
        );
        // `*/x.txt` sends s/x.txt and its parent s, but not the empty directory.
        let nested = hash_directory(
            root,
            &options(profile, SourceKind::LocalContext, 1).including(["*/x.txt"]),
        )
        .unwrap();
        let want = pure(
            TreeOptions::new(profile, SourceKind::LocalContext),
            vec![
                Entry::new("s", Stat::new(EntryKind::Dir, 0o755)),
                Entry::with_content(
                    "s/x.txt",
                    Stat::new(EntryKind::File { size: 1 }, 0o644),
                    b"x".to_vec(),
                ),
            ],
        );
        assert_eq!(nested.root_digest(), want.root_digest(), "{profile:?}");
    }
}
