//! BuildKit's own `cache/contenthash` test vectors (`checksum_test.go` at v0.8.3, v0.24.0 and
//! v0.26.0), recomputed through the public API. Those tests build snapshots with a helper that
//! creates files 0644, directories 0755 (the snapshot root too) and symlinks 0777, owned by root;
//! the trees below say the same thing as entries.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns

use inlay_core::Digest;
use inlay_core::contenthash::{
    ContentHashError, ContentTree, ContentTreeBuilder, Entry, EntryKind, Profile, SourceKind, Stat,
    TreeOptions,
};

const FILE_DATA0: &str = "sha256:cd8e75bca50f2d695f220d0cb0997d8ead387e4f926e8669a92d7f104cc9885b";
const FILE_DATA1: &str = "sha256:c2b5e234f5f38fc5864da7def04782f82501a40d46192e4207d5b3f0c3c4732b";
const DIR_D0: &str = "sha256:d47454417d2c554067fbefe5f5719edc49f3cfe969c36b62e34a187a4da0cc9a";
const DIR_D0_MODIFIED: &str =
    "sha256:555ffa3028630d97ba37832b749eda85ab676fd64ffb629fbf0f4ec8c1e3bff1";
const EXPECTED_SYM: &str =
    "sha256:a2ba571981f48ec34eb79c9a3ab091b6491e825c2f7e9914ea86e8e958be7fae";

/// One line of BuildKit's test notation: `ADD path file data`, `ADD path dir`,
/// `ADD path symlink target`.
fn add(line: &str) -> Entry {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let path = fields[1];
    match fields[2] {
        "dir" => Entry::new(path, Stat::new(EntryKind::Dir, 0o755)),
        "symlink" => Entry::new(
            path,
            Stat::new(
                EntryKind::Symlink {
                    target: fields[3].into(),
                },
                0o777,
            ),
        ),
        _ => {
            let data = fields.get(3).copied().unwrap_or("");
            Entry::with_content(
                path,
                Stat::new(
                    EntryKind::File {
                        size: data.len() as u64,
                    },
                    0o644,
                ),
                data.as_bytes().to_vec(),
            )
        }
    }
}

fn snapshot(profile: Profile, lines: &[&str]) -> ContentTree {
    let mut builder = ContentTreeBuilder::new(TreeOptions::new(profile, SourceKind::Snapshot));
    builder
        .insert(Entry::new("/", Stat::new(EntryKind::Dir, 0o755)))
        .unwrap();
    for line in lines {
        builder.insert(add(line)).unwrap();
    }
    builder.build().unwrap()
}

fn d(text: &str) -> Digest {
    text.parse().unwrap()
}

#[test]
fn basic_file() {
    let lines = [
        "ADD foo file data0",
        "ADD bar file data1",
        "ADD d0 dir",
        "ADD d0/abc file data0",
        "ADD d0/def symlink abc",
        "ADD d0/ghi symlink nosuchfile",
    ];
    for profile in [
        Profile::BuildkitV08,
        Profile::BuildkitV13,
        Profile::BuildkitCurrent,
    ] {
        let t = snapshot(profile, &lines);
        assert!(t.checksum("nosuch", true).is_err());
        assert_eq!(t.checksum("foo", true).unwrap(), d(FILE_DATA0));
        assert_eq!(t.checksum("bar", true).unwrap(), d(FILE_DATA1));
        assert_eq!(t.checksum("d0/abc", true).unwrap(), d(FILE_DATA0));
        assert_eq!(t.checksum("d0/def", true).unwrap(), d(FILE_DATA0));
        assert!(matches!(
            t.checksum("d0/ghi", true),
            Err(ContentHashError::NotFound { .. })
        ));
        assert_eq!(
            t.checksum("/", true).unwrap(),
            d("sha256:427c9cf9ae98c0f81fb57a3076b965c7c149b6b0a85625ad4e884236649a42c6")
        );
        assert_eq!(t.checksum("d0", true).unwrap(), d(DIR_D0));

        // The same directory as the root of its own snapshot.
        let root = snapshot(
            profile,
            &[
                "ADD abc file data0",
                "ADD def symlink abc",
                "ADD ghi symlink nosuchfile",
            ],
        );
        assert_eq!(root.checksum("/", true).unwrap(), d(DIR_D0));
        // Removing the broken symlink changes the hash.
        let modified = snapshot(profile, &["ADD abc file data0", "ADD def symlink abc"]);
        assert_eq!(modified.checksum("/", true).unwrap(), d(DIR_D0_MODIFIED));
    }
}

const WILDCARD_TREE: [&str; 10] = [
    "ADD bar file data1",
    "ADD foo file data0",
    "ADD fox file data2",
    "ADD x dir",
    "ADD x/d0 dir",
    "ADD x/d0/abc file data0",
    "ADD x/d0/def symlink abc",
    "ADD x/d0/ghi symlink nosuchfile",
    "ADD y1 symlink foo",
    "ADD y2 symlink fox",
];

#[test]
fn wildcards_v08() {
    let t = snapshot(Profile::BuildkitV08, &WILDCARD_TREE);
    let foo = format!("foo{FILE_DATA0}");
    assert_eq!(
        t.checksum_wildcard("f*o", false).unwrap(),
        Digest::sha256_of(foo.as_bytes())
    );
    assert_eq!(
        t.checksum_wildcard("f*", false).unwrap(),
        d("sha256:7f51c821895cfc116d3f64231dfb438e87a237ecbbe027cd96b7ee5e763cc569")
    );
    let d0 = format!("d0{DIR_D0}");
    assert_eq!(
        t.checksum_wildcard("x/d?", false).unwrap(),
        Digest::sha256_of(d0.as_bytes())
    );
    assert_eq!(
        t.checksum_wildcard("x/d?/def", true).unwrap(),
        d(FILE_DATA0)
    );
    assert_eq!(
        t.checksum_wildcard("y*", true).unwrap(),
        d("sha256:8afc09c7018d65d5eb318a9ef55cb704dec1f06d288181d913fc27a571aa042d")
    );
}

#[test]
fn wildcards_v24() {
    let t = snapshot(Profile::BuildkitV13, &WILDCARD_TREE);
    let foo = format!("foo{FILE_DATA0}");
    assert_eq!(
        t.checksum_wildcard("f*o", false).unwrap(),
        Digest::sha256_of(foo.as_bytes())
    );
    assert_eq!(
        t.checksum_wildcard("f*", false).unwrap(),
        d("sha256:7f51c821895cfc116d3f64231dfb438e87a237ecbbe027cd96b7ee5e763cc569")
    );
    // Directory contents listed file by file.
    assert_eq!(
        t.checksum_wildcard("x/d?", false).unwrap(),
        d("sha256:231c3293e329de47fec9e79056686477891fd1f244ed7b1c1fa668489a1f0d50")
    );
    assert_eq!(
        t.checksum_wildcard("x/d?/def", true).unwrap(),
        d(FILE_DATA0)
    );
    assert_eq!(
        t.checksum_wildcard("y*", true).unwrap(),
        d("sha256:8afc09c7018d65d5eb318a9ef55cb704dec1f06d288181d913fc27a571aa042d")
    );
}

#[test]
fn wildcards_v26() {
    let t = snapshot(Profile::BuildkitCurrent, &WILDCARD_TREE);
    let foo = format!("\0foo{FILE_DATA0}");
    assert_eq!(
        t.checksum_wildcard("f*o", false).unwrap(),
        Digest::sha256_of(foo.as_bytes())
    );
    assert_eq!(
        t.checksum_wildcard("f*", false).unwrap(),
        d("sha256:0b6731924f0a32a812bf8a729202e55e54ded331f9e4ff2397f681e43694e086")
    );
    assert_eq!(
        t.checksum_wildcard("x/d?", false).unwrap(),
        d("sha256:6b612ad5c13159112ae26357ef7bd34df29916941ba40ec2ce38dfb70c6c60c3")
    );
    assert_eq!(
        t.checksum_wildcard("x/d?/def", true).unwrap(),
        d(FILE_DATA0)
    );
    assert_eq!(
        t.checksum_wildcard("y*", true).unwrap(),
        d("sha256:982153600b9653a1decb0f961e09e2bc1be335cfcaac9b39dbd1120b65fdf92c")
    );
}

#[test]
fn symlinks_no_follow() {
    let lines = [
        "ADD target file data0",
        "ADD sym symlink target",
        "ADD sym2 symlink target2",
        "ADD foo dir",
        "ADD foo/ghi symlink target",
        "ADD y1 symlink foo/ghi",
    ];
    for profile in [
        Profile::BuildkitV08,
        Profile::BuildkitV13,
        Profile::BuildkitCurrent,
    ] {
        let t = snapshot(profile, &lines);
        assert_eq!(t.checksum_wildcard("sym", false).unwrap(), d(EXPECTED_SYM));
        assert_ne!(t.checksum_wildcard("sym2", false).unwrap(), d(EXPECTED_SYM));
        assert_eq!(
            t.checksum_wildcard("foo/ghi", false).unwrap(),
            d(EXPECTED_SYM)
        );
        // foo/ghi -> target resolves to /foo/target, which does not exist.
        assert!(matches!(
            t.checksum_wildcard("foo/ghi", true),
            Err(ContentHashError::NotFound { .. })
        ));
        assert!(matches!(
            t.checksum_wildcard("y1", true),
            Err(ContentHashError::NotFound { .. })
        ));
        assert_eq!(t.checksum("sym", false).unwrap(), d(EXPECTED_SYM));
        assert_eq!(t.checksum("foo/ghi", false).unwrap(), d(EXPECTED_SYM));
        // A broken symlink inside a directory is hashed, not followed (v0.26 vector).
        assert_eq!(
            t.checksum("foo", true).unwrap(),
            d("sha256:9b761577efcb1239cf4be971914c5d7404914dd32ff436401af1764dc5446b83")
        );
    }
    // v0.25+: the same through a wildcard; the nested broken symlink is not followed.
    for profile in [Profile::BuildkitV25, Profile::BuildkitCurrent] {
        let t = snapshot(profile, &lines);
        let got = t.checksum_wildcard("fo?", true);
        if profile == Profile::BuildkitCurrent {
            assert_eq!(
                got.unwrap(),
                d("sha256:2797e710c6d1a89ff2d91c834b828b1dc500f2982430a58241df8e146f4c4bb4")
            );
        } else {
            assert!(got.is_ok());
        }
    }
    // v0.24 followed it and failed on the broken link.
    let t = snapshot(Profile::BuildkitV13, &lines);
    assert!(matches!(
        t.checksum_wildcard("fo?", true),
        Err(ContentHashError::NotFound { .. })
    ));
}

/// `TestChecksumUnorderedFiles`: entries received as a local context (`HandleChange`), where
/// `foo`, `foo-subdir` and `foo.subdir` must be ordered by name bytes with `foo`'s subtree kept
/// apart.
#[test]
fn unordered_files_local_context() {
    for profile in [Profile::BuildkitV08, Profile::BuildkitCurrent] {
        let mut builder =
            ContentTreeBuilder::new(TreeOptions::new(profile, SourceKind::LocalContext));
        for line in [
            "ADD d0/foo.subdir file data1",
            "ADD d0/foo/bar file data0",
            "ADD d0 dir",
            "ADD d0/foo-subdir dir",
            "ADD d0/foo dir",
        ] {
            builder.insert(add(line)).unwrap();
        }
        let t = builder.build().unwrap();
        assert_eq!(
            t.checksum("d0", true).unwrap(),
            d("sha256:14276c302c940a80f82ca5477bf766c98a24702d6a9948ee71bb277cdad3ae05")
        );
    }
}

#[test]
fn nested_file_data2() {
    let t = snapshot(
        Profile::BuildkitCurrent,
        &["ADD abc dir", "ADD abc/aa dir", "ADD abc/aa/foo file data2"],
    );
    assert_eq!(
        t.checksum("abc/aa/foo", true).unwrap(),
        d("sha256:1c67653c3cf95b12a0014e2c4cd1d776b474b3218aee54155d6ae27b9b999c54")
    );
}
