//! The exporter's output read by the real importer: docker 20.10 (BuildKit v0.8) builds an image
//! with `BUILDKIT_INLINE_CACHE=1`, inlay re-exports it (config patched again from the decoded
//! records, manifest rewritten, layers mounted) into another repository, and a clean docker
//! build with `--cache-from` that repository hits the cache.
//!
//! Ignored by default: it needs a docker 20.10 daemon named by `INLAY_TEST_DOCKER_HOST` (started
//! as in the docker harness notes) and `/bin/busybox` for the base image.

// Test helpers outside `#[test]` functions unwrap too; scenarios read best in one piece.
#![allow(clippy::unwrap_used, clippy::too_many_lines)]

mod support;

use std::path::Path;
use std::process::Command;

use inlay_core::cache::RecordGraph;
use inlay_core::image::{Document, ImageConfig, ImageManifest};
use inlay_exporter_inline::{
    BlobLocation, BlobMap, ConfigInput, ImageInput, Layer, ManifestFormat, PushOptions, push_image,
    write_image,
};
use support::registry::TestRegistry;
use support::{client, reference};

fn docker(host: &str, dir: &Path, args: &[&str], stdin: Option<&Path>) -> String {
    let mut command = Command::new("/usr/bin/docker");
    command
        .arg("-H")
        .arg(host)
        .args(args)
        .current_dir(dir)
        .env("DOCKER_BUILDKIT", "1");
    if let Some(path) = stdin {
        command.stdin(std::fs::File::open(path).unwrap());
    }
    let out = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "docker {args:?}: {text}");
    text
}

/// A busybox-static root filesystem as a tar.
fn busybox_rootfs(path: &Path) {
    let mut tar = tar::Builder::new(std::fs::File::create(path).unwrap());
    let mut file = tar::Header::new_ustar();
    let busybox = std::fs::read("/bin/busybox").unwrap();
    file.set_size(busybox.len() as u64);
    file.set_mode(0o755);
    file.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut file, "bin/busybox", &busybox[..])
        .unwrap();
    for applet in ["sh", "echo", "cat"] {
        let mut link = tar::Header::new_ustar();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        link.set_mode(0o777);
        tar.append_link(&mut link, format!("bin/{applet}"), "busybox")
            .unwrap();
    }
    let passwd = b"root:x:0:0:root:/root:/bin/sh\n";
    let mut header = tar::Header::new_ustar();
    header.set_size(passwd.len() as u64);
    header.set_mode(0o644);
    tar.append_data(&mut header, "etc/passwd", &passwd[..])
        .unwrap();
    tar.finish().unwrap();
}

#[tokio::test]
#[ignore = "needs a docker daemon in INLAY_TEST_DOCKER_HOST"]
async fn docker_20_10_hits_the_cache_of_a_reexported_image() {
    let host = std::env::var("INLAY_TEST_DOCKER_HOST").expect("INLAY_TEST_DOCKER_HOST is set");
    let registry = TestRegistry::start();
    let reg = registry.host();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    busybox_rootfs(&dir.join("rootfs.tar"));
    let base = format!("{reg}/busybox:latest");
    docker(
        &host,
        dir,
        &["import", "-", &base],
        Some(&dir.join("rootfs.tar")),
    );
    docker(&host, dir, &["push", &base], None);
    std::fs::write(
        dir.join("Dockerfile"),
        format!("FROM {base}\nRUN echo inlay > /greeting\nRUN cat /greeting > /copy\n"),
    )
    .unwrap();
    let source = format!("{reg}/built/by-docker:v1");
    docker(
        &host,
        dir,
        &[
            "build",
            "--progress=plain",
            "--build-arg",
            "BUILDKIT_INLINE_CACHE=1",
            "-t",
            &source,
            ".",
        ],
        None,
    );
    docker(&host, dir, &["push", &source], None);

    // Re-export with inlay: records decoded and written again, layers left in the registry.
    let client = client();
    let source_ref = reference(&reg, "built/by-docker:v1");
    let pulled = client.get_manifest(&source_ref).await.unwrap();
    let manifest = Document::<ImageManifest>::parse(pulled.bytes.to_vec()).unwrap();
    let config_bytes = client
        .get_blob(&source_ref, &manifest.view().config)
        .await
        .unwrap();
    let config = Document::<ImageConfig>::parse(config_bytes.to_vec()).unwrap();
    let graph = RecordGraph::from_inline(config.view().inline_cache().unwrap()).unwrap();
    let mut blobs = BlobMap::new();
    let layers: Vec<Layer> = manifest
        .view()
        .layers
        .iter()
        .zip(&config.view().rootfs.diff_ids)
        .map(|(d, diff_id)| {
            blobs.insert(d.digest.clone(), BlobLocation::Registry(source_ref.clone()));
            Layer {
                descriptor: d.clone(),
                diff_id: diff_id.clone(),
            }
        })
        .collect();
    let image = write_image(&ImageInput {
        config: ConfigInput::Final(config.bytes().to_vec()),
        layers,
        inline_cache: Some(graph),
        format: ManifestFormat::Docker,
        annotations: std::collections::BTreeMap::new(),
    })
    .unwrap();
    // BuildKit's writer and ours agree on the config to the byte: sorted top level, nested
    // order kept, the records canonical.
    assert_eq!(&image.config()[..], config.bytes());
    let target = reference(&reg, "reexported/by-inlay:v1");
    let report = push_image(
        &client,
        &image,
        std::slice::from_ref(&target),
        &blobs,
        &PushOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.blobs_mounted, manifest.view().layers.len());

    // A clean daemon cache, then a build that may only use inlay's image as its cache.
    docker(&host, dir, &["image", "rm", "-f", &source, &base], None);
    docker(&host, dir, &["builder", "prune", "-af"], None);
    let target_name = format!("{reg}/reexported/by-inlay:v1");
    let output = docker(
        &host,
        dir,
        &[
            "build",
            "--progress=plain",
            "--cache-from",
            &target_name,
            "-t",
            &format!("{reg}/rebuilt:v1"),
            ".",
        ],
        None,
    );
    // Plain progress prints `#N [2/3] RUN ...` for a step, then `#N CACHED` when it hit.
    let step_of = |needle: &str| {
        output
            .lines()
            .find(|l| l.contains(needle) && l.contains("RUN"))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("no step for {needle}:\n{output}"))
            .to_owned()
    };
    for needle in ["echo inlay", "cat /greeting"] {
        let step = step_of(needle);
        assert!(
            output
                .lines()
                .any(|l| l.trim_end() == format!("{step} CACHED")),
            "step {needle} not cached:\n{output}"
        );
    }
    docker(
        &host,
        dir,
        &["image", "rm", "-f", &format!("{reg}/rebuilt:v1")],
        None,
    );
}
