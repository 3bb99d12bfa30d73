//! Secrets stay secret: a `--secret` value used by `RUN --mount=type=secret` reaches no layer,
//! config, history, inline cache record, archive, store file, registry file or log line; and
//! registry passwords and tokens appear in no log, even at `RUST_LOG=trace`.

// Test code: a failed unwrap is a failed test, in helpers as in `#[test]` functions.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

#[path = "support/harden.rs"]
mod harden;
#[path = "support/scan.rs"]
mod scan;

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use harden::{assert_ok, assert_registry_storage_verifies, assert_store_consistent};
use inlay_testkit::registry::{PASSWORD, Setup, TestRegistry, USER};
use inlay_testkit::token::TokenServer;
use scan::Needles;
use support::Fixture;

/// `inlay build` with `RUST_LOG=trace` and extra environment.
fn traced_build(root: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(harden::inlay_bin());
    cmd.arg("build")
        .arg("--root")
        .arg(root)
        .args(args)
        .env("RUST_LOG", "trace")
        .env("SOURCE_DATE_EPOCH", "0")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> Vec<u8> {
    let mut all = out.stdout.clone();
    all.extend_from_slice(&out.stderr);
    all
}

const SECRET_DOCKERFILE: &str = "\
ARG BASE
FROM $BASE
RUN --mount=type=secret,id=tok wc -c < /run/secrets/tok > /secret-length
RUN --mount=type=secret,id=tok,target=/elsewhere/tok busybox sha256sum /elsewhere/tok > /secret-hash
RUN --mount=type=secret,id=tok,env=TOK sh -c 'echo ${#TOK} > /env-length'
RUN echo done > /done
";

#[test]
#[allow(clippy::too_many_lines)] // one scenario: three builds, then the scans
fn a_build_secret_reaches_no_output_store_registry_or_log() {
    let Fixture {
        registry,
        work,
        root,
        base,
        ctx,
    } = Fixture::new();
    std::fs::write(ctx.join("Dockerfile"), SECRET_DOCKERFILE).unwrap();
    let random = inlay_core::Digest::sha256_of(&harden::noise(fastrand::u64(..), 16));
    let secret = format!("inlay-secret-{}", &random.hex()[..32]);
    let secret_file = work.path().join("secret.txt");
    std::fs::write(&secret_file, &secret).unwrap();
    let secret_flag = format!("id=tok,src={}", secret_file.display());
    let name = format!("{}/secret:latest", registry.host());
    let base_arg = format!("BASE={base}");
    let out_dir = work.path().join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let oci = out_dir.join("image-oci.tar");
    let docker = out_dir.join("image-docker.tar");
    let local = out_dir.join("rootfs");
    let meta = out_dir.join("metadata.json");
    let (oci_out, docker_out, local_out) = (
        format!("type=oci,dest={}", oci.display()),
        format!("type=docker,dest={},name={name}", docker.display()),
        format!("type=local,dest={}", local.display()),
    );
    let mut logs = Vec::new();
    for (progress, extra) in [
        // Cold, pushed with the inline cache, every archive written.
        (
            "plain",
            vec![
                "--push",
                "--cache-to",
                "type=inline",
                "--output",
                &oci_out,
                "--output",
                &docker_out,
                "--output",
                &local_out,
            ],
        ),
        // Again from the pushed inline cache, machine-readable progress.
        (
            "rawjson",
            vec!["--push", "--cache-to", "type=inline", "--cache-from", &name],
        ),
        // Every step run again (the secret read again), with the log lines shown.
        ("plain", vec!["--no-cache", "--output", &local_out]),
    ] {
        let mut args = vec![
            "--progress",
            progress,
            "--secret",
            &secret_flag,
            "--build-arg",
            &base_arg,
            "-t",
            &name,
            "--metadata-file",
        ];
        let meta_str = meta.to_str().unwrap();
        args.push(meta_str);
        args.extend(extra.iter().copied());
        let ctx_str = ctx.to_str().unwrap();
        args.push(ctx_str);
        let out = traced_build(&root, &args, &[]);
        assert_ok(&out, &format!("the secret build ({progress})"));
        logs.push(out);
    }
    // The secret was really there: the steps saw its length.
    assert_eq!(
        std::fs::read_to_string(local.join("secret-length"))
            .unwrap()
            .trim(),
        secret.len().to_string()
    );
    assert_eq!(
        std::fs::read_to_string(local.join("env-length"))
            .unwrap()
            .trim(),
        secret.len().to_string()
    );
    assert!(
        logs.iter()
            .any(|o| String::from_utf8_lossy(&o.stderr).contains("TRACE")),
        "RUST_LOG=trace logged something"
    );

    let needles = Needles::new("the build secret", secret.as_bytes());
    let mut leaks = Vec::new();
    for (i, out) in logs.iter().enumerate() {
        if let Some(how) = needles.find(&text(out)) {
            leaks.push(format!("output of build {i}: {how}"));
        }
    }
    leaks.extend(needles.find_in_tree(&out_dir));
    leaks.extend(needles.find_in_tree(&root));
    leaks.extend(needles.find_in_tree(&registry.dir.path().join("data")));
    assert!(leaks.is_empty(), "the secret leaked:\n{}", leaks.join("\n"));
    // And the scan does look: the secret file itself is found.
    assert!(
        needles
            .find(&std::fs::read(&secret_file).unwrap())
            .is_some()
    );
    assert_store_consistent(&root, "after the secret builds");
    assert_registry_storage_verifies(&registry.dir.path().join("data"));
}

/// A docker `config.json` directory with `USER`/`PASSWORD` for `host`.
fn docker_config(dir: &Path, host: &str) -> PathBuf {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let config = serde_json::json!({ "auths": { host: { "auth": auth } } });
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    dir.to_path_buf()
}

/// A `FROM scratch` busybox context (pushed to an authenticated registry by the test).
fn busybox_context(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/echo")).unwrap();
    std::fs::write(dir.join("Dockerfile"), "FROM scratch\nCOPY rootfs/ /\n").unwrap();
    dir.to_path_buf()
}

/// Pushes a base and builds on it with `--push`, `--cache-to` and `--cache-from` against an
/// authenticated registry at `RUST_LOG=trace`; every output line, both builds.
fn authenticated_builds(registry: &TestRegistry, work: &Path) -> Vec<u8> {
    let host = registry.host();
    let config = docker_config(&work.join("docker"), &host);
    let root = work.join("store");
    let env = [("DOCKER_CONFIG", config.as_path())];
    let base = format!("{host}/base:latest");
    let base_ctx = busybox_context(&work.join("base"));
    let mut all = Vec::new();
    let out = traced_build(
        &root,
        &[
            "--progress",
            "plain",
            "-t",
            &base,
            "--push",
            base_ctx.to_str().unwrap(),
        ],
        &env,
    );
    assert_ok(&out, "pushing the base");
    all.extend(text(&out));
    let app = work.join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(
        app.join("Dockerfile"),
        format!("FROM {base}\nRUN echo hello > /hello\n"),
    )
    .unwrap();
    let name = format!("{host}/app:latest");
    for progress in ["plain", "rawjson"] {
        // A fresh store each time: the base is pulled, the cache imported, the image pushed.
        let _ = std::fs::remove_dir_all(&root);
        let out = traced_build(
            &root,
            &[
                "--progress",
                progress,
                "-t",
                &name,
                "--push",
                "--cache-to",
                "type=inline",
                "--cache-from",
                &name,
                app.to_str().unwrap(),
            ],
            &env,
        );
        assert_ok(
            &out,
            &format!("building on the authenticated registry ({progress})"),
        );
        all.extend(text(&out));
    }
    all
}

fn credential_needles() -> Vec<Needles> {
    vec![
        Needles::new("the password", PASSWORD.as_bytes()),
        Needles::new(
            "the Basic credentials",
            format!("{USER}:{PASSWORD}").as_bytes(),
        ),
    ]
}

#[test]
fn basic_auth_passwords_appear_in_no_log_at_trace() {
    let registry = TestRegistry::start(&Setup::Basic);
    let work = tempfile::tempdir().unwrap();
    let logs = authenticated_builds(&registry, work.path());
    assert!(String::from_utf8_lossy(&logs).contains("TRACE"));
    for needles in credential_needles() {
        assert_eq!(needles.find(&logs), None, "a credential is in the logs");
    }
}

#[test]
fn bearer_tokens_and_passwords_appear_in_no_log_at_trace() {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let tokens = tokio.block_on(TokenServer::start());
    let registry = TestRegistry::start(&Setup::Token(&tokens));
    let work = tempfile::tempdir().unwrap();
    let logs = authenticated_builds(&registry, work.path());
    assert!(String::from_utf8_lossy(&logs).contains("TRACE"));
    let issued = tokens.tokens.lock().unwrap().clone();
    assert!(!issued.is_empty(), "tokens were issued");
    for needles in credential_needles() {
        assert_eq!(needles.find(&logs), None, "a credential is in the logs");
    }
    for (i, token) in issued.iter().enumerate() {
        // The signature is the part no other token shares.
        let signature = token.rsplit('.').next().unwrap();
        let needles = Needles::new(&format!("token {i}"), signature.as_bytes());
        assert_eq!(needles.find(&logs), None, "a bearer token is in the logs");
    }
}
