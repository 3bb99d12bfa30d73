//! Verified hits: an imported result whose layer is missing, has another size, or turns out to
//! hold other bytes when pulled is a miss with a warning, and the image is built right anyway.

// Test code: unwrap is the assertion.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::{Path, PathBuf};

use support::{Registry, image_digest, inlay_build, push_busybox, steps};

/// Pushes an image whose first RUN writes `/one`, with inline cache; returns its name, the
/// context and the digest of that RUN's layer.
fn push_cached(registry: &Registry, work: &Path, base: &str) -> (String, PathBuf, String) {
    let ctx = work.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "ARG BASE\nFROM $BASE\nRUN echo one > /one\nRUN cat /one > /two\n",
    )
    .unwrap();
    let name = format!("{}/verified:latest", registry.host());
    let meta = work.join("meta.json");
    let out = inlay_build(
        &work.join("first-store"),
        &[
            "--build-arg",
            &format!("BASE={base}"),
            "-t",
            &name,
            "--push",
            "--cache-to",
            "type=inline",
            "--metadata-file",
            meta.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ],
    );
    assert!(out.status.success());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(registry.blob_path(&image_digest(&meta))).unwrap())
            .unwrap();
    let run_layer = manifest["layers"][1]["digest"].as_str().unwrap().to_owned();
    // The next build changes the second RUN, so it needs the first RUN's files.
    std::fs::write(
        ctx.join("Dockerfile"),
        "ARG BASE\nFROM $BASE\nRUN echo one > /one\nRUN cat /one > /three\n",
    )
    .unwrap();
    (name, ctx, run_layer)
}

fn rebuild(root: &Path, base: &str, name: &str, ctx: &Path) -> std::process::Output {
    inlay_build(
        root,
        &[
            "--build-arg",
            &format!("BASE={base}"),
            "--cache-from",
            &format!("type=registry,ref={name}"),
            "--output",
            &format!("type=local,dest={}", root.join("../out").display()),
            ctx.to_str().unwrap(),
        ],
    )
}

#[test]
fn a_missing_layer_is_a_miss_with_a_warning() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let base = push_busybox(&registry, &work.path().join("base-store"));
    let (name, ctx, run_layer) = push_cached(&registry, work.path(), &base);
    std::fs::remove_file(registry.blob_path(&run_layer)).unwrap();

    let out = rebuild(&work.path().join("store"), &base, &name, &ctx);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("not taken from"), "{text}");
    assert!(text.contains(&run_layer), "{text}");
    assert_eq!(steps(&out), (0, 2, 2), "both RUNs ran");
    let two = std::fs::read_to_string(work.path().join("out/three")).unwrap();
    assert_eq!(two, "one\n");
}

#[test]
fn a_layer_of_another_size_is_a_miss_with_a_warning() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let base = push_busybox(&registry, &work.path().join("base-store"));
    let (name, ctx, run_layer) = push_cached(&registry, work.path(), &base);
    let path = registry.blob_path(&run_layer);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend_from_slice(b"trailing garbage");
    std::fs::write(&path, bytes).unwrap();

    let out = rebuild(&work.path().join("store"), &base, &name, &ctx);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("the record promises"), "{text}");
    assert_eq!(steps(&out), (0, 2, 2));
}

#[test]
fn a_layer_with_other_bytes_is_distrusted_when_pulled_and_the_step_runs() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let base = push_busybox(&registry, &work.path().join("base-store"));
    let (name, ctx, run_layer) = push_cached(&registry, work.path(), &base);
    // Same size, other bytes: the HEAD check passes, the verified download does not.
    let path = registry.blob_path(&run_layer);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();

    let out = rebuild(&work.path().join("store"), &base, &name, &ctx);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("was wrong when pulled"), "{text}");
    let three = std::fs::read_to_string(work.path().join("out/three")).unwrap();
    assert_eq!(three, "one\n");
    assert_eq!(steps(&out), (0, 2, 2), "the distrusted step ran");
}
