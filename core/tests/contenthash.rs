//! Public-API tests of `inlay_core::contenthash`. Expected values are derived by hand from the
//! formulas of spec section 6 (the derivation is written next to each assertion), or are the
//! verified vectors of the spec's BuildKit samples.

#![allow(clippy::unwrap_used, clippy::many_single_char_names)] // helpers outside #[test] fns

use std::path::PathBuf;

use inlay_core::Digest;
use inlay_core::contenthash::{
    ContentHashError, ContentTree, ContentTreeBuilder, Entry, EntryKind, Profile, Selector,
    SourceKind, Stat, TreeOptions, content_key, content_selectors, exec_content_selectors,
    exec_selector_digest, file_op_selector_digest,
};

const DATA_TXT: &str = "sha256:9a3b10e4117e3b78de36a2aa160b9e2598b434e956bdefb940b603ad70cb70d9";
const DATA_KEY: &str = "sha256:edf9a02a27697d920699d4515e83795c9a02dfc7c9e016abe82ca93c43606355";
const DATA_RECORD: &str = "sha256:49a13ab823a708f0b77162d2e5484869f0902b17bc1fcca6956e273931644ad7";

fn shared() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared"))
        .canonicalize()
        .unwrap()
}

/// Spec 5.1: a content key's record is sha256("<key>@-1").
fn record_digest(key: &Digest) -> Digest {
    Digest::sha256_of(format!("{key}@-1").as_bytes())
}

fn sha(bytes: &[u8]) -> Digest {
    Digest::sha256_of(bytes)
}

/// A tarsum-v1 header as spec 6.2 spells it (no xattrs).
fn header(mode: u32, uid: u32, size: u64, typeflag: char, link: &str) -> String {
    format!(
        "namemode{mode}uid{uid}gid{uid}size{size}typeflag{typeflag}linkname{link}unamegnamedevmajor0devminor0"
    )
}

/// sha256 over `parts`, each a byte string or a digest's text, concatenated.
fn sha_of(parts: &[&[u8]]) -> Digest {
    sha(&parts.concat())
}

fn file(path: &str, mode: u32, content: &[u8]) -> Entry {
    Entry::with_content(
        path,
        Stat::new(
            EntryKind::File {
                size: content.len() as u64,
            },
            mode,
        ),
        content.to_vec(),
    )
}

fn dir(path: &str, mode: u32) -> Entry {
    Entry::new(path, Stat::new(EntryKind::Dir, mode))
}

fn symlink(path: &str, target: &str) -> Entry {
    Entry::new(
        path,
        Stat::new(
            EntryKind::Symlink {
                target: target.into(),
            },
            0o777,
        ),
    )
}

fn tree(profile: Profile, source: SourceKind, entries: Vec<Entry>) -> ContentTree {
    let mut builder = ContentTreeBuilder::new(TreeOptions::new(profile, source));
    for entry in entries {
        builder.insert(entry).unwrap();
    }
    builder.build().unwrap()
}

fn local(entries: Vec<Entry>) -> ContentTree {
    tree(Profile::BuildkitV08, SourceKind::LocalContext, entries)
}

#[test]
fn sample_data_txt_file_key_and_record() {
    let bytes =
        std::fs::read(shared().join("conformance/buildkit-v0.8-inline-sample/data.txt")).unwrap();
    for profile in [
        Profile::BuildkitV08,
        Profile::BuildkitV13,
        Profile::BuildkitCurrent,
    ] {
        let tree = tree(
            profile,
            SourceKind::LocalContext,
            vec![file("data.txt", 0o644, &bytes)],
        );
        assert_eq!(tree.checksum("/data.txt", true).unwrap().as_str(), DATA_TXT);
        let selectors = [Selector::copy_source("/data.txt", true, true)];
        let key = content_key(&tree, &selectors).unwrap();
        assert_eq!(key.as_str(), DATA_KEY);
        // Spec 8.3: key = sha256(file digest string), one selector so no 0x00.
        assert_eq!(key, sha(DATA_TXT.as_bytes()));
        assert_eq!(record_digest(&key).as_str(), DATA_RECORD);
    }
}

#[test]
fn directory_merkle_with_nested_and_empty_dirs() {
    let entries = vec![
        dir("d", 0o755),
        file("d/a", 0o644, b"x"),
        dir("d/e", 0o700),
        dir("d/n", 0o755),
        file("d/n/deep", 0o600, b"deep"),
        file("d/B", 0o644, b""),
        file("f", 0o644, b"root file"),
    ];
    let t = local(entries);

    let a = sha_of(&[header(420, 0, 1, '0', "").as_bytes(), b"x"]);
    let big_b = sha(header(420, 0, 0, '0', "").as_bytes());
    let deep = sha_of(&[header(384, 0, 4, '0', "").as_bytes(), b"deep"]);
    let f = sha_of(&[header(420, 0, 9, '0', "").as_bytes(), b"root file"]);
    let d_header = sha(header(493, 0, 0, '5', "").as_bytes());
    let e_header = sha(header(448, 0, 0, '5', "").as_bytes());
    // Empty dir: sha256(0x00 + its header digest).
    let e = sha_of(&[b"\0", e_header.as_str().as_bytes()]);
    // n: header, then child "deep".
    let n = sha_of(&[
        b"\0",
        d_header.as_str().as_bytes(),
        b"\0deep",
        deep.as_str().as_bytes(),
    ]);
    // d: header first, then children in byte order of names: "B" (0x42) < "a" < "e" < "n";
    // subdirectories contribute their content digest only.
    let d = sha_of(&[
        b"\0",
        d_header.as_str().as_bytes(),
        b"\0B",
        big_b.as_str().as_bytes(),
        b"\0a",
        a.as_str().as_bytes(),
        b"\0e",
        e.as_str().as_bytes(),
        b"\0n",
        n.as_str().as_bytes(),
    ]);
    // Local context root: header faked as sha256("").
    let root = sha_of(&[
        b"\0",
        sha(b"").as_str().as_bytes(),
        b"\0d",
        d.as_str().as_bytes(),
        b"\0f",
        f.as_str().as_bytes(),
    ]);
    assert_eq!(t.checksum("/d/e", false).unwrap(), e);
    assert_eq!(t.checksum("d/n/", false).unwrap(), n);
    assert_eq!(t.checksum("/d", true).unwrap(), d);
    assert_eq!(t.checksum("/", false).unwrap(), root);
    assert_eq!(t.root_digest(), &root);
    assert_eq!(t.checksum("/d/n/deep", false).unwrap(), deep);
    // No selectors: the root.
    assert_eq!(content_key(&t, &[]).unwrap(), sha(root.as_str().as_bytes()));
}

#[test]
fn children_are_ordered_by_name_bytes_not_by_full_path() {
    // "a" (dir) < "a-b" < "a.b": a dir's subtree never interleaves with its siblings.
    let t = local(vec![
        dir("a", 0o755),
        file("a/z", 0o644, b""),
        file("a-b", 0o644, b""),
        file("a.b", 0o644, b""),
    ]);
    let empty = sha(header(420, 0, 0, '0', "").as_bytes());
    let a = t.checksum("/a", false).unwrap();
    let root = sha_of(&[
        b"\0",
        sha(b"").as_str().as_bytes(),
        b"\0a",
        a.as_str().as_bytes(),
        b"\0a-b",
        empty.as_str().as_bytes(),
        b"\0a.b",
        empty.as_str().as_bytes(),
    ]);
    assert_eq!(t.root_digest(), &root);
}

#[test]
fn snapshot_root_header_is_real() {
    // Spec 6.2: a snapshot's root hashes its header as an ordinary 0755 root-owned directory.
    let entries = || vec![dir("/", 0o755), file("x", 0o644, b"1")];
    let t = tree(Profile::BuildkitV13, SourceKind::Snapshot, entries());
    let x = sha_of(&[header(420, 0, 1, '0', "").as_bytes(), b"1"]);
    let root_header = sha(header(493, 0, 0, '5', "").as_bytes());
    let want = sha_of(&[
        b"\0",
        root_header.as_str().as_bytes(),
        b"\0x",
        x.as_str().as_bytes(),
    ]);
    assert_eq!(t.root_digest(), &want);
    // The same files as a local context: root header sha256(""); a supplied root is ignored.
    let l = tree(Profile::BuildkitV13, SourceKind::LocalContext, entries());
    let want_local = sha_of(&[
        b"\0",
        sha(b"").as_str().as_bytes(),
        b"\0x",
        x.as_str().as_bytes(),
    ]);
    assert_eq!(l.root_digest(), &want_local);
    // A snapshot without its root entry is refused.
    let mut b =
        ContentTreeBuilder::new(TreeOptions::new(Profile::BuildkitV13, SourceKind::Snapshot));
    b.insert(file("x", 0o644, b"1")).unwrap();
    assert_eq!(b.build().unwrap_err(), ContentHashError::MissingRoot);
}

#[test]
fn owner_policy_per_profile_and_source() {
    // A RUN-chowned file: mode 04750 = 2536, owner 1000:1000 (spec 6.2, verified).
    let chowned = || {
        Entry::new(
            "bin",
            Stat::new(EntryKind::File { size: 0 }, 0o4750).with_owner(1000, 1000),
        )
    };
    let zero = sha(header(2536, 0, 0, '0', "").as_bytes());
    let real = sha(header(2536, 1000, 0, '0', "").as_bytes());
    let cases = [
        (Profile::BuildkitV08, SourceKind::Snapshot, &zero),
        (Profile::BuildkitV09, SourceKind::Snapshot, &zero),
        (Profile::BuildkitV11, SourceKind::Snapshot, &real),
        (Profile::BuildkitCurrent, SourceKind::Snapshot, &real),
        // The Go client resets uid/gid of local context files in every version.
        (Profile::BuildkitCurrent, SourceKind::LocalContext, &zero),
    ];
    for (profile, source, want) in cases {
        let t = tree(profile, source, vec![dir("/", 0o755), chowned()]);
        assert_eq!(
            &t.checksum("/bin", false).unwrap(),
            want,
            "{profile:?} {source:?}"
        );
    }
}

#[test]
fn xattrs_enter_the_file_digest() {
    let stat = Stat::new(EntryKind::File { size: 1 }, 0o644)
        .with_xattr("user.tag", b"v".to_vec())
        .with_xattr("security.selinux", b"ignored".to_vec());
    let t = local(vec![Entry::with_content("x", stat, b"1".to_vec())]);
    let want = sha_of(&[header(420, 0, 1, '0', "").as_bytes(), b"user.tagv", b"1"]);
    assert_eq!(t.checksum("/x", false).unwrap(), want);
}

fn link_tree() -> ContentTree {
    local(vec![
        dir("d", 0o755),
        file("d/f1", 0o644, b"one"),
        symlink("d/link", "f1"),
        symlink("d/up", "../d"),
        symlink("abs", "/d"),
        symlink("rel", "d"),
        symlink("chain", "abs/link"),
        symlink("dangling", "nowhere"),
        symlink("loop1", "loop2"),
        symlink("loop2", "loop1"),
    ])
}

#[test]
fn symlinks_inside_directories_are_hashed_not_followed() {
    let t = link_tree();
    let f1 = sha_of(&[header(420, 0, 3, '0', "").as_bytes(), b"one"]);
    let link = sha(header(511, 0, 0, '2', "f1").as_bytes());
    let up = sha(header(511, 0, 0, '2', "../d").as_bytes());
    let d_header = sha(header(493, 0, 0, '5', "").as_bytes());
    let d = sha_of(&[
        b"\0",
        d_header.as_str().as_bytes(),
        b"\0f1",
        f1.as_str().as_bytes(),
        b"\0link",
        link.as_str().as_bytes(),
        b"\0up",
        up.as_str().as_bytes(),
    ]);
    assert_eq!(t.checksum("/d", true).unwrap(), d);
    assert_eq!(t.checksum("/d/link", false).unwrap(), link);
}

#[test]
fn selected_symlinks_are_followed() {
    let t = link_tree();
    let f1 = t.checksum("/d/f1", false).unwrap();
    let d = t.checksum("/d", false).unwrap();
    // Final component followed with follow-links (spec 6.4, verified on v0.24).
    assert_eq!(t.checksum("/d/link", true).unwrap(), f1);
    // Parent components are always followed; absolute and relative targets; chains.
    assert_eq!(t.checksum("/abs/f1", false).unwrap(), f1);
    assert_eq!(t.checksum("/rel/link", true).unwrap(), f1);
    assert_eq!(t.checksum("/d/up/up/f1", false).unwrap(), f1);
    assert_eq!(t.checksum("/chain", true).unwrap(), f1);
    assert_eq!(t.checksum("/abs", true).unwrap(), d);
    // Unfollowed, the link itself.
    assert_eq!(
        t.checksum("/abs", false).unwrap(),
        sha(header(511, 0, 0, '2', "/d").as_bytes())
    );
    assert!(matches!(
        t.checksum("/dangling", true),
        Err(ContentHashError::NotFound { .. })
    ));
    assert!(t.checksum("/dangling", false).is_ok());
    assert!(matches!(
        t.checksum("/loop1", true),
        Err(ContentHashError::TooManyLinks { .. })
    ));
    assert!(matches!(
        t.checksum("/missing", false),
        Err(ContentHashError::NotFound { .. })
    ));
}

#[test]
fn hard_links_reuse_the_target_digest() {
    let t = local(vec![
        file("f", 0o644, b"data"),
        Entry::new(
            "h",
            Stat::new(
                EntryKind::HardLink {
                    target: "/f".into(),
                },
                0o644,
            ),
        ),
    ]);
    assert_eq!(
        t.checksum("/h", false).unwrap(),
        t.checksum("/f", false).unwrap()
    );
    let mut b = ContentTreeBuilder::new(TreeOptions::new(
        Profile::BuildkitV08,
        SourceKind::LocalContext,
    ));
    b.insert(Entry::new(
        "h",
        Stat::new(
            EntryKind::HardLink {
                target: "gone".into(),
            },
            0o644,
        ),
    ))
    .unwrap();
    assert!(matches!(
        b.build(),
        Err(ContentHashError::HardLinkTarget { .. })
    ));
}

#[test]
fn builder_refuses_bad_input() {
    let options = TreeOptions::new(Profile::BuildkitV08, SourceKind::LocalContext);
    let mut b = ContentTreeBuilder::new(options);
    b.insert(file("a", 0o644, b"1")).unwrap();
    assert!(matches!(
        b.insert(file("/a/", 0o644, b"2")),
        Err(ContentHashError::DuplicatePath { .. })
    ));
    assert!(matches!(
        b.insert(Entry::new(
            "big",
            Stat::new(EntryKind::File { size: 5 }, 0o644)
        )),
        Err(ContentHashError::MissingContent { .. })
    ));
    assert!(matches!(
        b.insert(file("nul\0", 0o644, b"")),
        Err(ContentHashError::InvalidPath { .. })
    ));
    // A digest streamed under other rules (snapshot rules hash owners on v0.11+).
    let other = TreeOptions::new(Profile::BuildkitCurrent, SourceKind::Snapshot).header_rules();
    let stat = Stat::new(EntryKind::File { size: 1 }, 0o644);
    let digest = other.entry_digest(&stat, b"1");
    assert!(matches!(
        b.insert(Entry::with_digest("s", stat.clone(), digest)),
        Err(ContentHashError::RulesMismatch { .. })
    ));
    // The right rules are accepted and equal to giving the bytes.
    let mut hasher = b.header_rules().entry_hasher(&stat);
    hasher.update(b"1");
    b.insert(Entry::with_digest("s", stat, hasher.finish()))
        .unwrap();
    let t = b.build().unwrap();
    assert_eq!(
        t.checksum("/s", false).unwrap(),
        t.checksum("/a", false).unwrap()
    );
}

fn wildcard_tree(profile: Profile) -> ContentTree {
    tree(
        profile,
        SourceKind::LocalContext,
        vec![
            file("a.txt", 0o644, b"a"),
            file("b.txt", 0o644, b"b"),
            file("c.md", 0o644, b"c"),
            symlink("t.txt", "a.txt"),
            dir("sub", 0o755),
            file("sub/x.txt", 0o644, b"x"),
            symlink("sub/ln", "x.txt"),
            symlink("lnk", "sub"),
        ],
    )
}

const ALL: [Profile; 6] = [
    Profile::BuildkitV08,
    Profile::BuildkitV09,
    Profile::BuildkitV11,
    Profile::BuildkitV13,
    Profile::BuildkitV25,
    Profile::BuildkitCurrent,
];

#[test]
fn wildcard_over_files_per_profile() {
    let da = sha_of(&[header(420, 0, 1, '0', "").as_bytes(), b"a"]);
    let db = sha_of(&[header(420, 0, 1, '0', "").as_bytes(), b"b"]);
    // `/*.txt` matches a.txt, b.txt and the symlink t.txt, which is followed to a.txt.
    // v0.8 to v0.25: base name + digest, 0x00 between entries (verified for two matches).
    let base_names = sha_of(&[
        b"a.txt",
        da.as_str().as_bytes(),
        b"\0b.txt",
        db.as_str().as_bytes(),
        b"\0t.txt",
        da.as_str().as_bytes(),
    ]);
    // v0.26+: path relative to the literal prefix "" in key form, no separators.
    let relative = sha_of(&[
        b"\0a.txt",
        da.as_str().as_bytes(),
        b"\0b.txt",
        db.as_str().as_bytes(),
        b"\0t.txt",
        da.as_str().as_bytes(),
    ]);
    for profile in ALL {
        let t = wildcard_tree(profile);
        let want = if profile == Profile::BuildkitCurrent {
            &relative
        } else {
            &base_names
        };
        assert_eq!(
            &t.checksum_wildcard("/*.txt", true).unwrap(),
            want,
            "{profile:?}"
        );
        // Zero matches: sha256("").
        assert_eq!(t.checksum_wildcard("/*.none", true).unwrap(), sha(b""));
        // One match with the pattern's last element: the match's own digest.
        let dx = t.checksum("/sub/x.txt", false).unwrap();
        assert_eq!(t.checksum_wildcard("/s?b/x.txt", true).unwrap(), dx);
        // Without follow-links the symlink's own header digest is used.
        let t_link = sha(header(511, 0, 0, '2', "a.txt").as_bytes());
        let no_follow = t.checksum_wildcard("/[bt].txt", false).unwrap();
        let want = if profile == Profile::BuildkitCurrent {
            sha_of(&[
                b"\0b.txt",
                db.as_str().as_bytes(),
                b"\0t.txt",
                t_link.as_str().as_bytes(),
            ])
        } else {
            sha_of(&[
                b"b.txt",
                db.as_str().as_bytes(),
                b"\0t.txt",
                t_link.as_str().as_bytes(),
            ])
        };
        assert_eq!(no_follow, want, "{profile:?}");
        assert!(matches!(
            t.checksum_wildcard("/[", true),
            Err(ContentHashError::BadPattern { .. })
        ));
    }
}

#[test]
fn wildcard_matching_a_directory_per_profile() {
    let dx = sha_of(&[header(420, 0, 1, '0', "").as_bytes(), b"x"]);
    let ln = sha(header(511, 0, 0, '2', "x.txt").as_bytes());
    let sub_header = sha(header(493, 0, 0, '5', "").as_bytes());
    for profile in ALL {
        let t = wildcard_tree(profile);
        let sub = t.checksum("/sub", false).unwrap();
        let got = t.checksum_wildcard("/su*", true).unwrap();
        let want = match profile {
            // v0.8: the directory is one match with its content digest.
            Profile::BuildkitV08 => sha_of(&[b"sub", sub.as_str().as_bytes()]),
            // v0.9 to v0.24: its header and each entry below it, by base name; the nested
            // symlink is followed.
            Profile::BuildkitV09 | Profile::BuildkitV11 | Profile::BuildkitV13 => sha_of(&[
                b"sub",
                sub_header.as_str().as_bytes(),
                b"\0ln",
                dx.as_str().as_bytes(),
                b"\0x.txt",
                dx.as_str().as_bytes(),
            ]),
            // v0.25: nested symlinks are no longer followed.
            Profile::BuildkitV25 => sha_of(&[
                b"sub",
                sub_header.as_str().as_bytes(),
                b"\0ln",
                ln.as_str().as_bytes(),
                b"\0x.txt",
                dx.as_str().as_bytes(),
            ]),
            // v0.26+: relative key paths, no separators.
            _ => sha_of(&[
                b"\0sub",
                sub_header.as_str().as_bytes(),
                b"\0sub\0ln",
                ln.as_str().as_bytes(),
                b"\0sub\0x.txt",
                dx.as_str().as_bytes(),
            ]),
        };
        assert_eq!(got, want, "{profile:?}");
    }
}

#[test]
fn wildcard_literal_prefix_through_a_symlink() {
    for profile in ALL {
        let t = wildcard_tree(profile);
        let dx = t.checksum("/sub/x.txt", false).unwrap();
        let got = t.checksum_wildcard("/lnk/*.txt", true).unwrap();
        if profile == Profile::BuildkitV08 {
            // v0.8 matches stored keys only: nothing lives under /lnk.
            assert_eq!(got, sha(b""));
        } else if profile == Profile::BuildkitCurrent {
            // v0.26+: named relative to the literal prefix /lnk.
            assert_eq!(got, sha_of(&[b"\0x.txt", dx.as_str().as_bytes()]));
        } else {
            // v0.9+: the prefix resolves to /sub, whose entries are named /lnk/...; the single
            // match is not named like the pattern's last element (`*.txt`), so it is combined.
            assert_eq!(
                got,
                sha_of(&[b"x.txt", dx.as_str().as_bytes()]),
                "{profile:?}"
            );
        }
    }
}

#[test]
fn content_key_orders_and_dedupes_selectors() {
    let t = local(vec![
        file("e.txt", 0o644, b"e"),
        file("s.txt", 0o644, b"s"),
        dir("d", 0o755),
        file("d/in", 0o644, b"i"),
    ]);
    let e = t.checksum("/e.txt", true).unwrap();
    let s = t.checksum("/s.txt", true).unwrap();
    let d = t.checksum("/d", true).unwrap();
    // `COPY /s.txt /e.txt`: checksums in ascending path order joined by 0x00 (spec 5.4).
    let selectors = [
        Selector::copy_source("/s.txt", true, true),
        Selector::copy_source("/e.txt", true, true),
    ];
    let want = sha_of(&[e.as_str().as_bytes(), b"\0", s.as_str().as_bytes()]);
    assert_eq!(content_key(&t, &selectors).unwrap(), want);
    // The selector digest uses descending order (spec 5.3, verified).
    assert_eq!(
        file_op_selector_digest(Profile::BuildkitV08, &selectors),
        sha(b"/s.txt\0/e.txt")
    );
    // A path below another selected path is dropped; duplicates collapse.
    let nested = [
        Selector::copy_source("/d/in", true, true),
        Selector::copy_source("/d", true, true),
        Selector::copy_source("/d", true, true),
    ];
    assert_eq!(
        content_selectors(Profile::BuildkitV13, &nested),
        vec![Selector::new("/d", false, true)]
    );
    assert_eq!(
        content_key(&t, &nested).unwrap(),
        sha(d.as_str().as_bytes())
    );
    // v0.9+ keep the list, so the selector digest hashes a repeated path twice; v0.8 a set.
    let twice = [
        Selector::copy_source("/d", true, true),
        Selector::copy_source("/d", true, true),
    ];
    assert_eq!(
        file_op_selector_digest(Profile::BuildkitV13, &twice),
        sha(b"/d\0/d")
    );
    assert_eq!(
        file_op_selector_digest(Profile::BuildkitV08, &twice),
        sha(b"/d")
    );
    // Wildcard flag only when the path has wildcard characters.
    assert!(Selector::copy_source("/*.txt", true, true).wildcard);
    assert!(!Selector::copy_source("/*.txt", false, true).wildcard);
    assert!(!Selector::copy_source("/plain", true, true).wildcard);
}

#[test]
fn selector_digest_vectors_from_the_spec() {
    // Spec 5.3: COPY data.txt gives sha256("/data.txt").
    assert_eq!(
        file_op_selector_digest(
            Profile::BuildkitV08,
            &[Selector::copy_source("/data.txt", true, true)]
        )
        .as_str(),
        "sha256:a81072089f5cc667c0bc20d8039510309a6ac2c1da9db97b6e769a55eec5d169"
    );
    let root = "sha256:8a5edab282632443219e051e4ade2d1d5bbc671c781051bf1437897cbdfea0f1";
    // A source of `/` and the v0.13+ RUN root mount both give sha256("/").
    assert_eq!(
        file_op_selector_digest(Profile::BuildkitCurrent, &[Selector::new("/", false, true)])
            .as_str(),
        root
    );
    assert_eq!(
        exec_selector_digest(Profile::BuildkitV13, &[""])
            .unwrap()
            .as_str(),
        root
    );
    // Before v0.13 a RUN's empty root selector gives no selector at all.
    assert_eq!(exec_selector_digest(Profile::BuildkitV11, &[""]), None);
    assert_eq!(
        exec_selector_digest(Profile::BuildkitV08, &["", "src/"]),
        Some(sha(b"/src"))
    );
    assert_eq!(
        exec_selector_digest(Profile::BuildkitV13, &["", "src/", "src"]),
        Some(sha(b"/\0/src\0/src"))
    );
}

#[test]
fn profiles_by_release() {
    assert_eq!(Profile::for_minor_release(8), Profile::BuildkitV08);
    assert_eq!(Profile::for_minor_release(10), Profile::BuildkitV09);
    assert_eq!(Profile::for_minor_release(12), Profile::BuildkitV11);
    assert_eq!(Profile::for_minor_release(24), Profile::BuildkitV13);
    assert_eq!(Profile::for_minor_release(25), Profile::BuildkitV25);
    assert_eq!(Profile::for_minor_release(32), Profile::BuildkitCurrent);
}

mod order_independence {
    use super::*;
    use proptest::prelude::*;

    /// A random tree: a few directories and files with names from a small alphabet (so that
    /// prefixes like `a`, `a.b`, `a-b` collide), plus symlinks.
    fn entries() -> impl Strategy<Value = Vec<Entry>> {
        let name = proptest::sample::select(vec!["a", "a.b", "a-b", "B", "z", "a0"]);
        let path = proptest::collection::vec(name, 1..4).prop_map(|parts| parts.join("/"));
        proptest::collection::btree_map(path, (0u8..4, any::<Vec<u8>>()), 1..24).prop_map(|map| {
            let paths: Vec<String> = map.keys().cloned().collect();
            let mut out = Vec::new();
            let mut dirs = std::collections::BTreeSet::new();
            for p in &paths {
                let mut acc = String::new();
                for part in p.split('/').collect::<Vec<_>>().split_last().unwrap().1 {
                    if !acc.is_empty() {
                        acc.push('/');
                    }
                    acc.push_str(part);
                    dirs.insert(acc.clone());
                }
            }
            for (p, (kind, bytes)) in map {
                if dirs.contains(&p) {
                    continue;
                }
                out.push(match kind {
                    0 => symlink(&p, "a"),
                    1 => dir(&p, 0o750),
                    _ => file(&p, 0o644, &bytes),
                });
            }
            out.extend(dirs.into_iter().map(|d| dir(&d, 0o755)));
            out
        })
    }

    proptest! {
        #[test]
        fn digests_do_not_depend_on_insertion_order(
            (ordered, shuffled) in entries().prop_flat_map(|e| (Just(e.clone()), Just(e).prop_shuffle()))
        ) {
            for profile in [Profile::BuildkitV08, Profile::BuildkitCurrent] {
                let a = tree(profile, SourceKind::LocalContext, ordered.clone());
                let b = tree(profile, SourceKind::LocalContext, shuffled.clone());
                prop_assert_eq!(a.root_digest(), b.root_digest());
                for entry in &ordered {
                    prop_assert_eq!(
                        a.checksum(&entry.path, true).ok(),
                        b.checksum(&entry.path, true).ok()
                    );
                }
                prop_assert_eq!(
                    a.checksum_wildcard("/a*", true).ok(),
                    b.checksum_wildcard("/a*", true).ok()
                );
            }
        }
    }
}

mod never_panics {
    use super::*;
    use proptest::prelude::*;

    fn any_entry() -> impl Strategy<Value = Entry> {
        let path = "[a-c/.*?\\[\\]\\\\-]{0,10}";
        let target = "[a-c/.]{0,8}";
        (path, 0u8..5, target, any::<Vec<u8>>(), 0u32..0o10000).prop_map(
            |(path, kind, target, bytes, mode)| match kind {
                0 => Entry::new(path, Stat::new(EntryKind::Dir, mode)),
                1 => Entry::new(path, Stat::new(EntryKind::Symlink { target }, mode)),
                2 => Entry::new(path, Stat::new(EntryKind::HardLink { target }, mode)),
                3 => Entry::new(path, Stat::new(EntryKind::Fifo, mode)),
                _ => Entry::with_content(
                    path,
                    Stat::new(
                        EntryKind::File {
                            size: bytes.len() as u64,
                        },
                        mode,
                    ),
                    bytes,
                ),
            },
        )
    }

    proptest! {
        #[test]
        fn tree_building_and_queries_never_panic(
            entries in proptest::collection::vec(any_entry(), 0..16),
            queries in proptest::collection::vec("[a-c/.*?\\[\\]\\\\^-]{0,10}", 1..6),
            follow in any::<bool>(),
        ) {
            for profile in ALL {
                for source in [SourceKind::LocalContext, SourceKind::Snapshot] {
                    let mut builder = ContentTreeBuilder::new(TreeOptions::new(profile, source));
                    for entry in &entries {
                        let _ = builder.insert(entry.clone());
                    }
                    let Ok(tree) = builder.build() else { continue };
                    for query in &queries {
                        let _ = tree.checksum(query, follow);
                        let _ = tree.checksum_wildcard(query, follow);
                    }
                    let selectors: Vec<Selector> = queries
                        .iter()
                        .map(|q| Selector::copy_source(q, true, follow))
                        .collect();
                    let _ = content_key(&tree, &selectors);
                }
            }
        }
    }
}

#[test]
fn root_selector_hides_others_from_v013() {
    // dedupePaths: before v0.13 `/` is tested as the prefix "//" and hides nothing; from v0.13
    // it hides every path.
    let selectors = [
        Selector::new("/", false, true),
        Selector::new("/a", false, true),
    ];
    assert_eq!(content_selectors(Profile::BuildkitV11, &selectors).len(), 2);
    assert_eq!(
        content_selectors(Profile::BuildkitV13, &selectors),
        vec![Selector::new("/", false, true)]
    );
    // Exec inputs: a RUN's root mount on v0.13+ means the whole input; before, only non-empty
    // selectors count.
    assert!(exec_content_selectors(Profile::BuildkitV13, &["", "src"]).is_empty());
    assert_eq!(
        exec_content_selectors(Profile::BuildkitV11, &["", "src/", "src/x"]),
        vec![Selector::new("/src", false, true)]
    );
    assert_eq!(
        exec_content_selectors(Profile::BuildkitCurrent, &["b", "a"]),
        vec![
            Selector::new("/a", false, true),
            Selector::new("/b", false, true)
        ]
    );
}
