//! The layer writer and differ: reproducible bytes, clamped mtimes, whiteouts, long names, hard
//! links, and a round trip through extraction.

// Test code: a failed unwrap is a failed test, in helpers as in `#[test]` functions.
#![allow(clippy::unwrap_used)]

mod fixture;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use inlay_builder::extract::{self, ExtractOptions};
use inlay_builder::layer::{LayerInfo, LayerOptions, LayerSource, write_layer};
use inlay_core::{Compression, Digest};

fn sample_tree(root: &Path) {
    std::fs::create_dir_all(root.join("etc/app")).unwrap();
    std::fs::create_dir_all(root.join("usr/bin")).unwrap();
    std::fs::write(root.join("etc/app/config"), b"key = value\n").unwrap();
    std::fs::write(root.join("usr/bin/tool"), vec![7u8; 100_000]).unwrap();
    std::fs::set_permissions(
        root.join("usr/bin/tool"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    std::os::unix::fs::symlink("../usr/bin/tool", root.join("etc/tool-link")).unwrap();
    std::fs::hard_link(root.join("usr/bin/tool"), root.join("usr/bin/tool-again")).unwrap();
    let long_dir = root.join("d".repeat(120));
    std::fs::create_dir_all(&long_dir).unwrap();
    std::fs::write(long_dir.join("f".repeat(200)), b"long").unwrap();
    std::os::unix::fs::symlink("t".repeat(180), root.join("long-target")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    if fixture::is_root() {
        // Ownership, device nodes and xattrs need root to be made (and extracted).
        std::os::unix::fs::lchown(root.join("etc/app/config"), Some(1234), Some(5678)).unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("null"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 3),
        )
        .unwrap();
        rustix::fs::lsetxattr(
            root.join("usr/bin/tool"),
            "user.inlay.test",
            b"kept",
            rustix::fs::XattrFlags::empty(),
        )
        .unwrap();
    }
    for entry in fixture::describe(root).keys() {
        fixture::set_mtime(&root.join(entry), 1_700_000_000);
    }
}

fn layer(source: LayerSource<'_>, options: &LayerOptions) -> (LayerInfo, Vec<u8>) {
    let (info, bytes) = write_layer(source, Vec::new(), options).unwrap();
    (info, bytes)
}

fn tar_of(blob: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(blob)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn entries(tar_bytes: &[u8]) -> Vec<(String, tar::EntryType, u64, Option<String>)> {
    let mut archive = tar::Archive::new(tar_bytes);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                String::from_utf8(e.path_bytes().into_owned()).unwrap(),
                e.header().entry_type(),
                e.header().mtime().unwrap(),
                e.link_name_bytes()
                    .map(|l| String::from_utf8(l.into_owned()).unwrap()),
            )
        })
        .collect()
}

#[test]
fn same_tree_gives_the_same_bytes_and_digests_match_content() {
    let dir = tempfile::tempdir().unwrap();
    sample_tree(dir.path());
    let options = LayerOptions::default();
    let (first, bytes_a) = layer(LayerSource::Tree(dir.path()), &options);
    let (second, bytes_b) = layer(LayerSource::Tree(dir.path()), &options);
    assert_eq!(first, second);
    assert_eq!(bytes_a, bytes_b);
    assert_eq!(first.digest, Digest::sha256_of(&bytes_a));
    assert_eq!(first.size, bytes_a.len() as u64);
    let tar_bytes = tar_of(&bytes_a);
    assert_eq!(first.diff_id, Digest::sha256_of(&tar_bytes));
    assert_eq!(first.uncompressed_size, tar_bytes.len() as u64);
    // gzip header: no mtime, so the same tree gives the same blob on any day.
    assert_eq!(&bytes_a[4..8], &[0, 0, 0, 0]);
    assert_eq!(
        first.media_type(true),
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );

    let (plain, plain_bytes) = layer(
        LayerSource::Tree(dir.path()),
        &LayerOptions {
            compression: Compression::None,
            ..options
        },
    );
    assert_eq!(plain.diff_id, first.diff_id);
    assert_eq!(plain.digest, plain.diff_id);
    assert_eq!(plain_bytes, tar_bytes);
}

#[test]
fn entries_are_sorted_with_long_names_links_and_hard_links() {
    let dir = tempfile::tempdir().unwrap();
    sample_tree(dir.path());
    let (_, blob) = layer(LayerSource::Tree(dir.path()), &LayerOptions::default());
    let listed = entries(&tar_of(&blob));
    let names: Vec<&str> = listed.iter().map(|e| e.0.as_str()).collect();
    let long_dir = format!("{}/", "d".repeat(120));
    let long_file = format!("{}/{}", "d".repeat(120), "f".repeat(200));
    let mut expected = vec![
        long_dir.as_str(),
        long_file.as_str(),
        "etc/",
        "etc/app/",
        "etc/app/config",
        "etc/tool-link",
        "fifo",
        "long-target",
        "usr/",
        "usr/bin/",
        "usr/bin/tool",
        "usr/bin/tool-again",
    ];
    if fixture::is_root() {
        expected.insert(8, "null");
    }
    assert_eq!(names, expected);
    let again = listed.iter().find(|e| e.0 == "usr/bin/tool-again").unwrap();
    assert_eq!(again.1, tar::EntryType::Link);
    assert_eq!(again.3.as_deref(), Some("usr/bin/tool"));
    let long_link = listed.iter().find(|e| e.0 == "long-target").unwrap();
    assert_eq!(long_link.3.as_deref(), Some("t".repeat(180).as_str()));
    assert_eq!(
        listed.iter().find(|e| e.0 == "fifo").unwrap().1,
        tar::EntryType::Fifo
    );
}

#[test]
fn mtimes_are_clamped_to_source_date_epoch() {
    let dir = tempfile::tempdir().unwrap();
    sample_tree(dir.path());
    fixture::set_mtime(&dir.path().join("etc/app/config"), 1_000);
    let options = LayerOptions {
        source_date_epoch: Some(1_600_000_000),
        ..LayerOptions::default()
    };
    let (_, blob) = layer(LayerSource::Tree(dir.path()), &options);
    for (name, _, mtime, _) in entries(&tar_of(&blob)) {
        if name == "etc/app/config" {
            assert_eq!(mtime, 1_000, "older mtimes are kept");
        } else {
            assert_eq!(mtime, 1_600_000_000, "{name} is clamped");
        }
    }
}

#[test]
fn written_layer_extracts_to_the_same_tree() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    sample_tree(&source);
    let (info, blob) = layer(LayerSource::Tree(&source), &LayerOptions::default());
    let target = dir.path().join("target");
    let report = extract::extract(
        blob.as_slice(),
        &target,
        &ExtractOptions {
            expected_diff_id: Some(info.diff_id.clone()),
            ..ExtractOptions::default()
        },
    )
    .unwrap();
    assert_eq!(report.diff_id, info.diff_id);
    assert_eq!(report.compression, Compression::Gzip);
    let (want, got) = (fixture::describe(&source), fixture::describe(&target));
    assert_eq!(want, got);
    if fixture::is_root() {
        let mut value = [0u8; 16];
        let n = rustix::fs::lgetxattr(
            target.join("usr/bin/tool"),
            "user.inlay.test",
            &mut value[..],
        )
        .unwrap();
        assert_eq!(&value[..n], b"kept");
        assert_eq!(got[std::path::Path::new("null")].kind, "char");
        assert_eq!(got[std::path::Path::new("etc/app/config")].uid, 1234);
    }
}

#[test]
fn overlay_whiteouts_and_opaque_directories_become_tar_whiteouts() {
    if !fixture::is_root() {
        eprintln!("skipped: overlay whiteouts need root (mknod 0/0, trusted.* xattrs)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let upper = dir.path();
    std::fs::create_dir_all(upper.join("etc")).unwrap();
    std::fs::create_dir_all(upper.join("var/cache")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        upper.join("etc/removed.conf"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::empty(),
        rustix::fs::makedev(0, 0),
    )
    .unwrap();
    rustix::fs::lsetxattr(
        upper.join("var/cache"),
        "trusted.overlay.opaque",
        b"y",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    std::fs::write(upper.join("var/cache/fresh"), b"new").unwrap();
    let (_, blob) = layer(LayerSource::OverlayUpper(upper), &LayerOptions::default());
    let names: Vec<String> = entries(&tar_of(&blob)).into_iter().map(|e| e.0).collect();
    assert_eq!(
        names,
        vec![
            "etc/",
            "etc/.wh.removed.conf",
            "var/",
            "var/cache/",
            "var/cache/.wh..wh..opq",
            "var/cache/fresh",
        ]
    );
    // The overlay bookkeeping xattr itself is not carried into the layer.
    let mut archive = tar::Archive::new(std::io::Cursor::new(tar_of(&blob)));
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if let Some(pax) = entry.pax_extensions().unwrap() {
            for record in pax {
                assert!(!record.unwrap().key().unwrap().contains("overlay"));
            }
        }
    }

    // Applied onto a lower tree, the whiteouts delete and the opaque directory is cleared.
    let lower = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(lower.path().join("etc")).unwrap();
    std::fs::create_dir_all(lower.path().join("var/cache/old")).unwrap();
    std::fs::write(lower.path().join("etc/removed.conf"), b"x").unwrap();
    std::fs::write(lower.path().join("etc/kept.conf"), b"x").unwrap();
    extract::extract(blob.as_slice(), lower.path(), &ExtractOptions::default()).unwrap();
    let tree = fixture::describe(lower.path());
    let names: Vec<_> = tree.keys().map(|p| p.display().to_string()).collect();
    assert_eq!(
        names,
        vec![
            "etc",
            "etc/kept.conf",
            "var",
            "var/cache",
            "var/cache/fresh"
        ]
    );
}

#[test]
fn differ_finds_additions_changes_and_deletions() {
    let dir = tempfile::tempdir().unwrap();
    let lower = dir.path().join("lower");
    sample_tree(&lower);
    let upper = dir.path().join("upper");
    std::fs::create_dir_all(&upper).unwrap();
    // A copy that keeps mtimes, as the copy snapshotter makes it.
    let status = std::process::Command::new("cp")
        .args([
            "-a",
            &format!("{}/.", lower.display()),
            &upper.display().to_string(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let unchanged = layer(
        LayerSource::Diff {
            lower: &lower,
            upper: &upper,
        },
        &LayerOptions::default(),
    );
    assert_eq!(
        entries(&tar_of(&unchanged.1)).len(),
        0,
        "no changes, empty layer"
    );

    std::fs::write(upper.join("etc/app/config"), b"key = other\n").unwrap();
    std::fs::remove_file(upper.join("etc/tool-link")).unwrap();
    std::fs::remove_dir_all(upper.join("d".repeat(120))).unwrap();
    std::fs::write(upper.join("new-file"), b"hello").unwrap();
    let (_, blob) = layer(
        LayerSource::Diff {
            lower: &lower,
            upper: &upper,
        },
        &LayerOptions::default(),
    );
    let names: Vec<String> = entries(&tar_of(&blob)).into_iter().map(|e| e.0).collect();
    assert_eq!(
        names,
        vec![
            format!(".wh.{}", "d".repeat(120)),
            "etc/".to_owned(),
            "etc/app/".to_owned(),
            "etc/app/config".to_owned(),
            "etc/.wh.tool-link".to_owned(),
            "new-file".to_owned(),
        ]
    );

    // Applying the diff onto the lower gives the upper.
    let applied = dir.path().join("applied");
    let status = std::process::Command::new("cp")
        .args([
            "-a",
            &lower.display().to_string(),
            &applied.display().to_string(),
        ])
        .status()
        .unwrap();
    assert!(status.success());
    extract::extract(blob.as_slice(), &applied, &ExtractOptions::default()).unwrap();
    let strip = |mut t: std::collections::BTreeMap<_, fixture::Described>| {
        // Directory mtimes legitimately differ (the upper's changed when children did).
        for d in t.values_mut() {
            if d.kind == "dir" {
                d.mtime = 0;
            }
        }
        t
    };
    assert_eq!(
        strip(fixture::describe(&applied)),
        strip(fixture::describe(&upper))
    );
}

#[cfg(feature = "zstd")]
#[test]
fn zstd_layers_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source");
    sample_tree(&source);
    let options = LayerOptions {
        compression: Compression::Zstd,
        ..LayerOptions::default()
    };
    let (info, blob) = layer(LayerSource::Tree(&source), &options);
    assert_eq!(&blob[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
    assert_eq!(
        info.media_type(true),
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let gz = layer(LayerSource::Tree(&source), &LayerOptions::default()).0;
    assert_eq!(
        info.diff_id, gz.diff_id,
        "same tar whatever the compression"
    );
    let target = dir.path().join("target");
    let report = extract::extract(blob.as_slice(), &target, &ExtractOptions::default()).unwrap();
    assert_eq!(report.compression, Compression::Zstd);
    assert_eq!(fixture::describe(&source), fixture::describe(&target));
}

#[test]
fn overlay_diff_leaves_out_directories_only_copied_up() {
    let dir = tempfile::tempdir().unwrap();
    let (lower, upper) = (dir.path().join("lower"), dir.path().join("upper"));
    for root in [&lower, &upper] {
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::create_dir_all(root.join("var")).unwrap();
    }
    std::fs::write(lower.join("etc/old"), b"").unwrap();
    std::fs::write(upper.join("etc/new"), b"").unwrap();
    std::fs::set_permissions(upper.join("var"), std::fs::Permissions::from_mode(0o700)).unwrap();
    for root in [&lower, &upper] {
        fixture::set_mtime(&root.join("etc"), 1_600_000_000);
        fixture::set_mtime(&root.join("var"), 1_600_000_000);
    }
    let lowers = vec![lower.clone()];
    let (_, blob) = layer(
        LayerSource::OverlayDiff {
            upper: &upper,
            lowers: &lowers,
        },
        &LayerOptions::default(),
    );
    let names: Vec<String> = entries(&tar_of(&blob)).into_iter().map(|e| e.0).collect();
    assert_eq!(names, vec!["etc/new", "var/"]);
    // Without the lowers every upper directory is an entry.
    let (_, blob) = layer(LayerSource::OverlayUpper(&upper), &LayerOptions::default());
    let names: Vec<String> = entries(&tar_of(&blob)).into_iter().map(|e| e.0).collect();
    assert_eq!(names, vec!["etc/", "etc/new", "var/"]);
}
