//! `--add-host` and `--platform` end to end: the real binary, a real registry and runc.

// Test code: unwrap is the assertion.
#![allow(clippy::unwrap_used)]

mod support;

use std::path::Path;

use support::{Fixture, inlay_build, steps};

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn add_host_reaches_etc_hosts_and_only_its_name_reaches_the_key() {
    let Fixture {
        registry: _registry,
        work,
        root,
        base,
        ctx,
    } = Fixture::new();
    write(
        &ctx,
        "Dockerfile",
        "ARG BASE\nFROM $BASE\nRUN sed -n '/myhost/p' /etc/hosts > /hosts.txt\n",
    );
    let out_dir = work.path().join("out");
    let build = |host: &str| {
        inlay_build(
            &root,
            &[
                "--build-arg",
                &format!("BASE={base}"),
                "--add-host",
                host,
                "--output",
                &format!("type=local,dest={}", out_dir.display()),
                ctx.to_str().unwrap(),
            ],
        )
    };
    let first = build("myhost:10.1.2.3");
    assert!(first.status.success());
    assert_eq!(steps(&first).2, 1, "the RUN ran");
    let hosts = std::fs::read_to_string(out_dir.join("hosts.txt")).unwrap();
    assert_eq!(hosts.trim(), "10.1.2.3\tmyhost");

    // BuildKit clears the address before hashing (spec section 5.5): another IP is a hit...
    std::fs::remove_dir_all(&out_dir).unwrap();
    let other_ip = build("myhost=10.9.9.9");
    assert!(other_ip.status.success());
    assert_eq!(steps(&other_ip), (1, 1, 0));
    // ... and another name is a miss.
    let other_name = build("otherhost:10.1.2.3");
    assert!(other_name.status.success());
    assert_eq!(steps(&other_name).2, 1);

    let bad = build("myhost:not-an-ip");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not an IP address"));
}

#[test]
fn another_platform_builds_when_nothing_runs_and_names_the_run_otherwise() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("store");
    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    write(&ctx, "a.txt", "a\n");
    write(&ctx, "Dockerfile", "FROM scratch\nCOPY a.txt /a.txt\n");
    let layout = work.path().join("layout");
    let meta = work.path().join("meta.json");
    let out = inlay_build(
        &root,
        &[
            "--platform",
            "linux/arm64",
            "--output",
            &format!("type=oci,dest={}", work.path().join("img.tar").display()),
            "--metadata-file",
            meta.to_str().unwrap(),
            ctx.to_str().unwrap(),
        ],
    );
    assert!(out.status.success());
    std::fs::create_dir_all(&layout).unwrap();
    let untar = std::process::Command::new("tar")
        .arg("-xf")
        .arg(work.path().join("img.tar"))
        .arg("-C")
        .arg(&layout)
        .status()
        .unwrap();
    assert!(untar.success());
    let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    let config_digest = meta["containerimage.config.digest"].as_str().unwrap();
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            layout
                .join("blobs/sha256")
                .join(config_digest.trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(config["os"], "linux");

    write(
        &ctx,
        "Dockerfile",
        "FROM scratch\nCOPY a.txt /a.txt\nRUN true\n",
    );
    let run = inlay_build(&root, &["--platform", "linux/arm64", ctx.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(1));
    let text = String::from_utf8_lossy(&run.stderr);
    assert!(text.contains("Dockerfile:3"), "{text}");
    assert!(text.contains("linux/arm64"), "{text}");
    assert!(text.contains("no emulation"), "{text}");
}

#[test]
fn zstd_layers_make_an_oci_image_that_round_trips_through_the_cache() {
    let Fixture {
        registry,
        work,
        root,
        base,
        ctx,
    } = Fixture::new();
    write(
        &ctx,
        "Dockerfile",
        "ARG BASE\nFROM $BASE\nRUN echo hi > /hi\n",
    );
    let name = format!("{}/zstd:v1", registry.host());
    let meta = work.path().join("meta.json");
    let args = [
        "--build-arg",
        &format!("BASE={base}"),
        "--compression",
        "zstd",
        "-t",
        &name,
        "--push",
        "--cache-to",
        "type=inline",
        "--cache-from",
        &name,
        "--metadata-file",
        meta.to_str().unwrap(),
        ctx.to_str().unwrap(),
    ];
    let cold = inlay_build(&root, &args);
    assert!(cold.status.success());
    let blob = |digest: &str| std::fs::read(registry.blob_path(digest)).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&blob(&support::image_digest(&meta))).unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let run_layer = &manifest["layers"][1];
    assert_eq!(
        run_layer["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    assert!(blob(run_layer["digest"].as_str().unwrap()).starts_with(&[0x28, 0xb5, 0x2f, 0xfd]));

    std::fs::remove_dir_all(&root).unwrap();
    let warm = inlay_build(&root, &args);
    assert!(warm.status.success());
    assert_eq!(steps(&warm), (1, 1, 0), "the zstd layer's record hits");
}
