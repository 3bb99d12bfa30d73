//! `inlay build` end to end against a real registry and runc: push with inline cache, rebuild
//! from `--cache-from` after wiping the store, outputs, and broken cache references.

mod support;

use std::path::Path;

use support::{Registry, copy_tree, examples, image_digest, inlay_build, push_busybox, steps};

fn hello_args<'a>(base: &'a str, name: &'a str, meta: &'a Path, ctx: &'a Path) -> Vec<String> {
    vec![
        "--build-arg".into(),
        format!("BASE={base}"),
        "-t".into(),
        name.into(),
        "--push".into(),
        "--cache-to".into(),
        "type=inline".into(),
        "--cache-from".into(),
        name.into(),
        "--metadata-file".into(),
        meta.display().to_string(),
        ctx.display().to_string(),
    ]
}

fn build(root: &Path, args: &[String]) -> std::process::Output {
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    inlay_build(root, &refs)
}

#[test]
fn round_trip_through_the_registry_is_a_full_hit_without_layer_downloads() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("store");
    let base = push_busybox(&registry, &root);
    let ctx = work.path().join("hello");
    copy_tree(&examples().join("hello"), &ctx);
    let name = format!("{}/hello:latest", registry.host());
    let meta = work.path().join("meta.json");
    let args = hello_args(&base, &name, &meta, &ctx);

    // Cold: the cache reference does not exist yet (a warning, not an error).
    let cold = build(&root, &args);
    assert!(cold.status.success());
    let (cached, total, _) = steps(&cold);
    assert_eq!(cached, 0);
    assert_eq!(total, 5);
    let first = image_digest(&meta);

    for round in 0..2 {
        std::fs::remove_dir_all(&root).unwrap();
        let before = registry.layer_downloads();
        let warm = build(&root, &args);
        assert!(warm.status.success(), "round {round}");
        assert_eq!(steps(&warm), (5, 5, 0), "round {round}: every step cached");
        assert_eq!(
            registry.layer_downloads(),
            before,
            "round {round}: no layer blob downloaded"
        );
        assert_eq!(image_digest(&meta), first, "round {round}: same image");
        let text = String::from_utf8_lossy(&warm.stderr);
        assert!(
            text.contains("stages cache"),
            "the build stage came from the artifact"
        );
    }

    // One context file changes: its COPY and everything after it run again.
    std::fs::write(ctx.join("src/greeting.txt.in"), "Bonjour, NAME!\n").unwrap();
    let before = registry.layer_downloads();
    let changed = build(&root, &args);
    // The RUN needs the base's files now, so the counter sees the download.
    assert!(registry.layer_downloads() > before);
    assert!(changed.status.success());
    assert_eq!(
        steps(&changed),
        (2, 5, 3),
        "COPY, RUN and COPY --from rerun"
    );
    assert_ne!(image_digest(&meta), first);
}

#[test]
fn oci_output_and_iidfile() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("store");
    let base = push_busybox(&registry, &root);
    let tar = work.path().join("hello.tar");
    let iid = work.path().join("iid");
    let out = inlay_build(
        &root,
        &[
            "--build-arg",
            &format!("BASE={base}"),
            "--output",
            &format!("type=oci,dest={}", tar.display()),
            "--iidfile",
            iid.to_str().unwrap(),
            examples().join("hello").to_str().unwrap(),
        ],
    );
    assert!(out.status.success());
    let digest = std::fs::read_to_string(&iid).unwrap();
    assert!(digest.starts_with("sha256:"));
    let listing = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&tar)
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.contains("index.json"));
    assert!(listing.contains(&format!("blobs/sha256/{}", &digest["sha256:".len()..])));
}

#[test]
fn a_missing_or_corrupt_cache_reference_is_a_warning_and_a_cold_build() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("store");
    let base = push_busybox(&registry, &root);
    // A "cache" that is a tag on something that is not an image: the base's config blob
    // pushed as a manifest would be refused, so use a repository that does not exist and an
    // unreachable registry.
    let out = inlay_build(
        &root,
        &[
            "--build-arg",
            &format!("BASE={base}"),
            "--cache-from",
            &format!("{}/nothing:here", registry.host()),
            "--cache-from",
            "127.0.0.1:1/unreachable:latest",
            examples().join("hello").to_str().unwrap(),
        ],
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(text.matches("WARNING: cache import").count(), 2, "{text}");
    assert_eq!(steps(&out), (0, 5, 5));
}

#[test]
fn three_stages_are_a_full_hit_after_wiping_the_store() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("store");
    let base = push_busybox(&registry, &root);
    let ctx = work.path().join("three");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("input.txt"), "three stages\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "ARG BASE\n\
         FROM ${BASE} AS one\n\
         COPY input.txt /in/\n\
         RUN mkdir /one && cat /in/input.txt > /one/a && echo ran-one > /one/marker\n\
         FROM ${BASE} AS two\n\
         COPY --from=one /one/ /two/\n\
         RUN wc -c < /two/a > /two/b\n\
         FROM ${BASE}\n\
         COPY --from=two /two/b /result\n",
    )
    .unwrap();
    let name = format!("{}/three:latest", registry.host());
    let meta = work.path().join("meta.json");
    let args = hello_args(&base, &name, &meta, &ctx);
    let cold = build(&root, &args);
    assert!(cold.status.success());
    assert_eq!(steps(&cold), (0, 5, 5));
    let first = image_digest(&meta);
    std::fs::remove_dir_all(&root).unwrap();
    let before = registry.layer_downloads();
    let warm = build(&root, &args);
    assert!(warm.status.success());
    assert_eq!(steps(&warm), (5, 5, 0), "no RUN of any stage executed");
    assert_eq!(registry.layer_downloads(), before);
    assert_eq!(image_digest(&meta), first);
}

#[test]
fn dockerfile_mistakes_name_the_place_and_exit_1() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("Dockerfile"), "FROM scratch\nCOPYY a b\n").unwrap();
    let out = inlay_build(&work.path().join("store"), &[work.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("Dockerfile:2"), "{text}");
    let usage = inlay_build(&work.path().join("store"), &["--push", "."]);
    assert_eq!(usage.status.code(), Some(2));
}

/// `tar -xOf ARCHIVE MEMBER`, parsed as JSON.
#[allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
fn archive_json(archive: &Path, member: &str) -> serde_json::Value {
    let out = std::process::Command::new("tar")
        .arg("-xOf")
        .arg(archive)
        .arg(member)
        .output()
        .unwrap();
    assert!(out.status.success(), "{member} in {}", archive.display());
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn tags_and_output_names_name_the_archives() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("store");
    let base = push_busybox(&registry, &root);
    let docker = work.path().join("docker.tar");
    let oci = work.path().join("oci.tar");
    let named = work.path().join("named.tar");
    let tag = format!("{}/hello:v1", registry.host());
    let other = format!("{}/other:v2", registry.host());
    let out = inlay_build(
        &root,
        &[
            "--build-arg",
            &format!("BASE={base}"),
            "-t",
            &tag,
            "--output",
            &format!("type=docker,dest={}", docker.display()),
            "--output",
            &format!("type=oci,dest={}", oci.display()),
            "--output",
            &format!("type=docker,dest={},name={other}", named.display()),
            examples().join("hello").to_str().unwrap(),
        ],
    );
    assert!(out.status.success());
    // `docker load` tags the image with `RepoTags` (buildx names the archive from `-t`).
    let manifest = archive_json(&docker, "manifest.json");
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!([tag]));
    // `name=` wins over `-t`.
    let manifest = archive_json(&named, "manifest.json");
    assert_eq!(manifest[0]["RepoTags"], serde_json::json!([other]));
    // The OCI layout names it the way containerd's exporter (BuildKit's) does.
    let index = archive_json(&oci, "index.json");
    let annotations = &index["manifests"][0]["annotations"];
    assert_eq!(annotations["io.containerd.image.name"], tag.as_str());
    assert_eq!(annotations["org.opencontainers.image.ref.name"], "v1");
}

#[test]
fn two_stages_on_one_base_pull_its_layer_once() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let base = push_busybox(&registry, &work.path().join("pusher"));
    let layers = registry.layer_digests();
    assert_eq!(layers.len(), 1, "busybox is one layer");
    let layer = &layers[0];
    // A fresh store: both stages of `hello` need the base's files, at the same time.
    let root = work.path().join("store");
    let before = registry.layer_downloads();
    let out = inlay_build(
        &root,
        &[
            "--build-arg",
            &format!("BASE={base}"),
            "--output",
            &format!("type=docker,dest={}", work.path().join("img.tar").display()),
            "--output",
            &format!("type=local,dest={}", work.path().join("rootfs").display()),
            examples().join("hello").to_str().unwrap(),
        ],
    );
    assert!(out.status.success());
    assert_eq!(registry.layer_downloads() - before, 1, "one download");
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        text.matches(&format!("pulling {layer}")).count(),
        1,
        "one pulling line"
    );
    let size = std::fs::metadata(root.join("blobs/sha256").join(&layer["sha256:".len()..]))
        .unwrap()
        .len();
    assert!(
        text.contains(&format!("{size} bytes pulled")),
        "the layer's {size} bytes counted once"
    );
}

#[test]
fn archives_and_a_local_output_of_an_unextracted_base_pull_it_once() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let base = push_busybox(&registry, &work.path().join("pusher"));
    // No step needs the base's files: only the outputs read its layer.
    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("Dockerfile"), format!("FROM {base}\nENV X=1\n")).unwrap();
    let root = work.path().join("store");
    let before = registry.layer_downloads();
    let out = inlay_build(
        &root,
        &[
            "--output",
            &format!("type=oci,dest={}", work.path().join("oci.tar").display()),
            "--output",
            &format!(
                "type=docker,dest={}",
                work.path().join("docker.tar").display()
            ),
            "--output",
            &format!("type=local,dest={}", work.path().join("rootfs").display()),
            ctx.to_str().unwrap(),
        ],
    );
    assert!(out.status.success());
    assert_eq!(registry.layer_downloads() - before, 1, "one download");
    assert!(work.path().join("rootfs/bin/sh").exists());
    let layer = &registry.layer_digests()[0];
    let size = std::fs::metadata(root.join("blobs/sha256").join(&layer["sha256:".len()..]))
        .unwrap()
        .len();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains(&format!("{size} bytes pulled")),
        "the layer's {size} bytes counted once"
    );
}
