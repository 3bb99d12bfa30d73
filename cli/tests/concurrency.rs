//! Concurrent `inlay build` processes on one store (and one registry): all succeed and the
//! store stays consistent (`inlay store verify` after each round).

// Test code: a failed unwrap is a failed test, in helpers as in `#[test]` functions.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

#[path = "support/harden.rs"]
mod harden;

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use harden::{assert_ok, assert_registry_storage_verifies, assert_store_consistent, build_quiet};
use support::{Registry, push_busybox};

/// A context with `Dockerfile` and one data file.
fn context(dir: &Path, dockerfile: &str, data: &[u8]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    std::fs::write(dir.join("data.bin"), data).unwrap();
    dir.to_path_buf()
}

/// Runs every argument list as its own `inlay build` process at once; the outputs in order.
fn all_at_once(root: &Path, builds: &[Vec<String>]) -> Vec<Output> {
    std::thread::scope(|s| {
        let handles: Vec<_> = builds
            .iter()
            .map(|args| {
                s.spawn(move || {
                    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                    build_quiet(root, &refs)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

const SHARED: &str = "\
ARG BASE
FROM $BASE
COPY data.bin /data.bin
RUN wc -c /data.bin > /size && mkdir -p /out && cp /data.bin /out/copy
";

#[test]
fn two_concurrent_builds_on_one_store_both_succeed() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let seed_root = work.path().join("seed-store");
    let base = push_busybox(&registry, &seed_root);
    // A cold store: both processes pull the base, extract it and run the same steps at once.
    let root = work.path().join("store");
    let ctx = context(&work.path().join("ctx"), SHARED, &harden::noise(2, 300_000));
    let args: Vec<String> = vec![
        "--build-arg".into(),
        format!("BASE={base}"),
        ctx.display().to_string(),
    ];
    let outs = all_at_once(&root, &[args.clone(), args]);
    for (i, out) in outs.iter().enumerate() {
        assert_ok(out, &format!("concurrent build {i}"));
    }
    assert_store_consistent(&root, "after two concurrent builds");
}

#[test]
fn eight_concurrent_builds_three_rounds_share_a_store_and_a_registry() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("store");
    let base = push_busybox(&registry, &root);
    let base_arg = format!("BASE={base}");
    let shared = context(
        &work.path().join("shared"),
        SHARED,
        &harden::noise(7, 200_000),
    );
    let mut pushed = 0;
    for round in 0..3 {
        let mut builds: Vec<Vec<String>> = Vec::new();
        for n in 0..8 {
            let mut args = vec!["--build-arg".to_owned(), base_arg.clone()];
            let ctx = if n < 4 {
                // Identical builds: the same Dockerfile and context, racing for the same keys.
                shared.clone()
            } else {
                // Different builds: each its own Dockerfile and data (new in every round for
                // two of them).
                let data_seed = if n < 6 { n } else { 100 * round + n };
                let dockerfile = format!("{SHARED}RUN echo build-{n} > /which\n");
                context(
                    &work.path().join(format!("ctx-{round}-{n}")),
                    &dockerfile,
                    &harden::noise(data_seed as u64, 100_000 + n * 1000),
                )
            };
            if n % 2 == 0 {
                // Half of them push: three to the same repository and tag, one to its own.
                let name = if n < 6 {
                    format!("{}/together:latest", registry.host())
                } else {
                    format!("{}/alone:{round}", registry.host())
                };
                args.extend(["-t".into(), name, "--push".into()]);
                args.extend(["--cache-to".into(), "type=inline".into()]);
                pushed += 1;
            }
            args.push(ctx.display().to_string());
            builds.push(args);
        }
        let outs = all_at_once(&root, &builds);
        for (n, out) in outs.iter().enumerate() {
            assert_ok(out, &format!("round {round}, build {n}"));
        }
        let (cached, total, run) = outs
            .iter()
            .map(support::steps)
            .fold((0, 0, 0), |a, s| (a.0 + s.0, a.1 + s.1, a.2 + s.2));
        eprintln!("round {round}: 8 builds, {total} steps, {cached} cached, {run} run");
        assert_store_consistent(&root, &format!("after round {round}"));
    }
    let blobs = assert_registry_storage_verifies(&registry.dir.path().join("data"));
    eprintln!(
        "8 concurrent builds x 3 rounds: all succeeded, {pushed} pushes, {blobs} registry blobs verified"
    );
}

#[test]
fn a_prune_during_builds_waits_for_them_and_everything_succeeds() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("store");
    let base = push_busybox(&registry, &root);
    let base_arg = format!("BASE={base}");
    let builds: Vec<Vec<String>> = (0..3)
        .map(|n| {
            let ctx = context(
                &work.path().join(format!("ctx-{n}")),
                SHARED,
                &harden::noise(40 + n, 150_000),
            );
            vec![
                "--build-arg".to_owned(),
                base_arg.clone(),
                ctx.display().to_string(),
            ]
        })
        .collect();
    let (outs, prune) = std::thread::scope(|s| {
        let building = s.spawn(|| all_at_once(&root, &builds));
        // The prune starts while the builds run (or just after): it waits for every process
        // that has the store open, so none loses a blob or snapshot it is using.
        std::thread::sleep(std::time::Duration::from_millis(300));
        let prune = std::process::Command::new(harden::inlay_bin())
            .args(["prune", "--all", "--root"])
            .arg(&root)
            .output()
            .unwrap();
        (building.join().unwrap(), prune)
    });
    for (n, out) in outs.iter().enumerate() {
        assert_ok(out, &format!("build {n} beside a prune"));
    }
    assert_ok(&prune, "the prune beside builds");
    assert_store_consistent(&root, "after builds and a prune");
    let again = all_at_once(&root, &builds);
    for (n, out) in again.iter().enumerate() {
        assert_ok(out, &format!("build {n} after the prune"));
    }
    assert_store_consistent(&root, "at the end");
}
