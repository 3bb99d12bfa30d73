//! Any bytes as a layer blob, extracted into a fresh directory: extraction either fails with an
//! error or succeeds, never panics, and never writes outside the target directory.
//!
//! The first byte picks the variant: bit 0 gzip-compresses the rest (random bytes rarely form a
//! gzip stream), bit 1 extracts in overlay whiteout mode, bit 2 plants escaping symlinks in the
//! target first, as a lower layer could have left them.
//!
//! Each run makes a temp dir: `TMPDIR=/dev/shm` runs it about 20 times faster than a disk `/tmp`.
#![no_main]

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use inlay_builder::extract::{ExtractOptions, WhiteoutMode, extract};
use libfuzzer_sys::fuzz_target;

/// What the bait outside the target looks like; it must not change.
fn fingerprint(path: &Path) -> (Vec<u8>, u32, i64, u64) {
    let meta = std::fs::symlink_metadata(path).expect("bait exists");
    (
        std::fs::read(path).expect("bait is readable"),
        meta.mode(),
        meta.mtime(),
        meta.nlink(),
    )
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("sandbox directory is readable")
        .map(|e| {
            e.expect("readable entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

fuzz_target!(|data: &[u8]| {
    let Some((&variant, bytes)) = data.split_first() else {
        return;
    };
    let blob = if variant & 1 == 1 {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(bytes).expect("writing to a Vec cannot fail");
        gz.finish().expect("writing to a Vec cannot fail")
    } else {
        bytes.to_vec()
    };
    let sandbox = tempfile::tempdir().expect("temp dir");
    let outside = sandbox.path().join("outside");
    let root = sandbox.path().join("root");
    std::fs::create_dir(&outside).expect("outside dir");
    std::fs::create_dir(&root).expect("root dir");
    let bait = outside.join("bait");
    std::fs::write(&bait, b"untouched").expect("bait");
    if variant & 4 == 4 {
        std::os::unix::fs::symlink("../outside", root.join("up")).expect("symlink");
        std::os::unix::fs::symlink(&outside, root.join("abs")).expect("symlink");
        std::os::unix::fs::symlink("../outside/bait", root.join("bait")).expect("symlink");
    }
    let before = fingerprint(&bait);
    let options = ExtractOptions {
        whiteouts: if variant & 2 == 2 {
            WhiteoutMode::Overlay
        } else {
            WhiteoutMode::Apply
        },
        max_uncompressed_size: 8 << 20,
        max_entries: 1024,
        ..ExtractOptions::default()
    };
    let _ = extract(blob.as_slice(), &root, &options);
    assert_eq!(
        listing(sandbox.path()),
        ["outside", "root"],
        "a write beside the root"
    );
    assert_eq!(listing(&outside), ["bait"], "a write outside the root");
    assert_eq!(
        fingerprint(&bait),
        before,
        "the bait outside the root changed"
    );
});
