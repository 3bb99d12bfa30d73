//! `inlay build --check`, `inlay cache check` and `inlay explain` against a real registry:
//! one small build per miss cause, each asserting the cause the dry run names, and a full hit
//! that runs nothing and downloads no layer.

// Helpers outside #[test] fns are test code too.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use support::{Registry, copy_tree, examples, inlay_build, mask_digests, push_busybox};

/// Runs `inlay ARGS...` with the store at `root` (`SOURCE_DATE_EPOCH=0`).
fn inlay(root: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_inlay"))
        .args(args)
        .arg("--root")
        .arg(root)
        .env("SOURCE_DATE_EPOCH", "0")
        .output()
        .unwrap();
    eprintln!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A registry, a store, busybox pushed, and a context directory.
struct Fixture {
    registry: Registry,
    work: tempfile::TempDir,
    base: String,
}

impl Fixture {
    fn new() -> Fixture {
        let registry = Registry::start();
        let work = tempfile::tempdir().unwrap();
        let base = push_busybox(&registry, &work.path().join("base-store"));
        Fixture {
            registry,
            work,
            base,
        }
    }

    fn ctx(&self) -> PathBuf {
        let ctx = self.work.path().join("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        ctx
    }

    /// A fresh store per call: the check must find everything through `--cache-from`.
    fn store(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }

    fn image(&self) -> String {
        format!("{}/app:latest", self.registry.host())
    }

    fn dockerfile(&self, body: &str) {
        std::fs::write(
            self.ctx().join("Dockerfile"),
            format!("ARG BASE\nFROM $BASE\n{body}"),
        )
        .unwrap();
    }

    /// Builds the context and pushes it with an inline cache (`--cache-to` as given, else
    /// `type=inline`).
    fn push(&self, extra: &[&str]) {
        let name = self.image();
        let base = format!("BASE={}", self.base);
        let ctx = self.ctx();
        let mut args = vec!["--build-arg", &base, "-t", &name, "--push"];
        if !extra.contains(&"--cache-to") {
            args.extend_from_slice(&["--cache-to", "type=inline"]);
        }
        args.extend_from_slice(extra);
        args.push(ctx.to_str().unwrap());
        let out = inlay_build(&self.store("push-store"), &args);
        assert!(out.status.success());
    }

    /// `inlay build --check --format json` against the pushed image.
    fn check(&self, extra: &[&str]) -> (Output, Value) {
        let name = self.image();
        let base = format!("BASE={}", self.base);
        let ctx = self.ctx();
        let mut args = vec![
            "build",
            "--check",
            "--format",
            "json",
            "--build-arg",
            &base,
            "--cache-from",
            &name,
        ];
        args.extend_from_slice(extra);
        args.push(ctx.to_str().unwrap());
        let out = inlay(&self.store("check-store"), &args);
        let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        (out, json)
    }
}

/// The causes of step `n` (1-based) as `(kind, cause)`.
fn causes(report: &Value, n: usize) -> Vec<Value> {
    let step = &report["steps"][n - 1];
    assert_eq!(step["hit"], false, "step {n} should miss: {report:#}");
    step["causes"].as_array().unwrap().clone()
}

fn kinds(report: &Value, n: usize) -> Vec<String> {
    causes(report, n)
        .iter()
        .map(|c| c["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn an_unchanged_build_hits_everywhere_runs_nothing_and_downloads_no_layer() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let base = push_busybox(&registry, &work.path().join("base-store"));
    let ctx = work.path().join("hello");
    copy_tree(&examples().join("hello"), &ctx);
    let name = format!("{}/hello:latest", registry.host());
    let base_arg = format!("BASE={base}");
    let build = inlay_build(
        &work.path().join("push-store"),
        &[
            "--build-arg",
            &base_arg,
            "-t",
            &name,
            "--push",
            "--cache-to",
            "type=inline",
            ctx.to_str().unwrap(),
        ],
    );
    assert!(build.status.success());

    let before = registry.layer_downloads();
    let puts = registry.log().matches("\"PUT ").count();
    let store = work.path().join("check-store");
    let args = [
        "--build-arg",
        &base_arg,
        "--cache-from",
        &name,
        ctx.to_str().unwrap(),
    ];
    for command in [&["build", "--check"][..], &["cache", "check"][..]] {
        let mut all = command.to_vec();
        all.extend_from_slice(&args);
        let out = inlay(&store, &all);
        assert_eq!(out.status.code(), Some(0), "every step hits");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("5 of 5 steps hit"), "{text}");
        assert!(text.contains("image: unchanged"), "{text}");
    }
    assert_eq!(
        registry.layer_downloads(),
        before,
        "no layer blob downloaded"
    );
    // Nothing ran: the store holds no snapshot, no layer blob.
    let blobs = walk_files(&store);
    assert!(
        blobs.iter().all(|p| !p.contains("snapshot")),
        "no snapshot extracted: {blobs:?}"
    );
    assert_eq!(
        registry.log().matches("\"PUT ").count(),
        puts,
        "the check pushes nothing"
    );
}

fn walk_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk_files(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

#[test]
fn miss_cause_command_names_old_and_new_text() {
    let f = Fixture::new();
    f.dockerfile("RUN echo one > /one\n");
    f.push(&[]);
    f.dockerfile("RUN echo two > /one\n");
    let (out, report) = f.check(&[]);
    assert_eq!(out.status.code(), Some(1));
    let c = &causes(&report, 1)[0];
    assert_eq!(c["kind"], "command");
    assert!(c["old"].as_str().unwrap().contains("echo one"), "{c}");
    assert!(c["new"].as_str().unwrap().contains("echo two"), "{c}");
}

#[test]
fn miss_cause_command_in_a_non_final_stage_comes_from_the_facts() {
    let f = Fixture::new();
    let stages = |cmd: &str| {
        std::fs::write(
            f.ctx().join("Dockerfile"),
            format!(
                "ARG BASE\nFROM $BASE AS build\nRUN {cmd} > /x\nFROM $BASE\nCOPY --from=build /x /x\n"
            ),
        )
        .unwrap();
    };
    stages("echo one");
    f.push(&[]);
    stages("echo uno");
    let (out, report) = f.check(&[]);
    assert_eq!(out.status.code(), Some(1));
    let c = &causes(&report, 1)[0];
    assert_eq!(c["kind"], "command", "{report:#}");
    assert!(c["old"].as_str().unwrap().contains("echo one"), "{c}");
    assert!(c["new"].as_str().unwrap().contains("echo uno"), "{c}");
}

#[test]
fn miss_cause_arg_names_the_arg_its_values_and_line() {
    let f = Fixture::new();
    f.dockerfile("ARG V=1\nRUN echo $V > /v\n");
    f.push(&[]);
    let (out, report) = f.check(&["--build-arg", "V=2"]);
    assert_eq!(out.status.code(), Some(1));
    let c = &causes(&report, 1)[0];
    assert_eq!(c["kind"], "arg", "{report:#}");
    assert_eq!(c["name"], "V");
    assert_eq!(c["old"], "1");
    assert_eq!(c["new"], "2");
    assert_eq!(c["line"], 3);
}

#[test]
fn miss_cause_env_names_the_variable_and_values() {
    let f = Fixture::new();
    f.dockerfile("ENV X=1\nRUN echo $X > /x\n");
    f.push(&[]);
    f.dockerfile("ENV X=2\nRUN echo $X > /x\n");
    let (out, report) = f.check(&[]);
    assert_eq!(out.status.code(), Some(1));
    let c = &causes(&report, 1)[0];
    assert_eq!(c["kind"], "env", "{report:#}");
    assert_eq!(c["name"], "X");
    assert_eq!(c["old"], "1");
    assert_eq!(c["new"], "2");
    assert_eq!(c["line"], 3);
}

#[test]
fn miss_cause_base_image_when_the_base_tag_moved() {
    let f = Fixture::new();
    f.dockerfile("RUN echo hi > /hi\n");
    f.push(&[]);
    // The base tag now points at another image (busybox plus a file).
    let moved = f.work.path().join("moved");
    std::fs::create_dir_all(&moved).unwrap();
    std::fs::write(
        moved.join("Dockerfile"),
        format!("FROM {}\nRUN touch /marker\n", f.base),
    )
    .unwrap();
    let out = inlay_build(
        &f.store("moved-store"),
        &["-t", &f.base, "--push", moved.to_str().unwrap()],
    );
    assert!(out.status.success());
    let (out, report) = f.check(&[]);
    assert_eq!(out.status.code(), Some(1));
    let c = &causes(&report, 1)[0];
    assert_eq!(c["kind"], "base", "{report:#}");
    assert!(c["reference"].as_str().unwrap().contains("busybox"));
    let now = c["digest"].as_str().unwrap();
    let old = c["old"]
        .as_str()
        .expect("the facts name the old base digest");
    assert!(now.starts_with("sha256:") && old.starts_with("sha256:"));
    assert_ne!(now, old);
}

#[test]
fn miss_cause_copy_names_the_files_that_changed() {
    let f = Fixture::new();
    f.dockerfile("COPY src/ /src/\n");
    std::fs::create_dir_all(f.ctx().join("src")).unwrap();
    std::fs::write(f.ctx().join("src/a.txt"), "one\n").unwrap();
    std::fs::write(f.ctx().join("src/b.txt"), "two\n").unwrap();
    f.push(&[]);
    std::fs::write(f.ctx().join("src/b.txt"), "deux\n").unwrap();
    let (out, report) = f.check(&[]);
    assert_eq!(out.status.code(), Some(1));
    let c = &causes(&report, 1)[0];
    assert_eq!(c["kind"], "copy", "{report:#}");
    assert_eq!(c["changed"], serde_json::json!(["/src/b.txt"]), "{c}");
    assert!(
        c["message"].as_str().unwrap().ends_with("/src/b.txt"),
        "{c}"
    );
}

#[test]
fn miss_cause_platform_when_checking_another_platform() {
    let f = Fixture::new();
    f.dockerfile("RUN echo hi > /hi\n");
    f.push(&[]);
    let (out, report) = f.check(&["--platform", "linux/arm64"]);
    assert_eq!(out.status.code(), Some(1));
    let c = &causes(&report, 1)[0];
    assert_eq!(c["kind"], "platform", "{report:#}");
    assert_eq!(c["cache"], "linux/amd64");
    assert_eq!(c["build"], "linux/arm64");
}

#[test]
fn miss_cause_key_profile_when_the_cache_has_only_v08_keys() {
    let f = Fixture::new();
    f.dockerfile("RUN echo hi > /hi\n");
    f.push(&["--cache-to", "type=inline,profile=buildkit-v0.8"]);
    let (out, report) = f.check(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(kinds(&report, 1), ["key-profile"], "{report:#}");
    assert_eq!(causes(&report, 1)[0]["cache"], "buildkit-v0.8");
}

#[test]
fn miss_cause_parent_names_the_step_where_the_chain_broke() {
    let f = Fixture::new();
    f.dockerfile("RUN echo one > /one\nRUN echo two > /two\n");
    f.push(&[]);
    f.dockerfile("RUN echo uno > /one\nRUN echo two > /two\n");
    let (out, report) = f.check(&[]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(kinds(&report, 1), ["command"]);
    let c = &causes(&report, 2)[0];
    assert_eq!(c["kind"], "parent", "{report:#}");
    assert!(c["step"].as_str().unwrap().contains("echo uno"), "{c}");
}

#[test]
fn explain_prints_the_misses_and_a_build_ends_with_why() {
    let f = Fixture::new();
    f.dockerfile("ARG V=1\nRUN echo $V > /v\n");
    f.push(&[]);
    let name = f.image();
    let base = format!("BASE={}", f.base);
    let ctx = f.ctx();
    let args = [
        "--build-arg",
        &base,
        "--build-arg",
        "V=2",
        "--cache-from",
        &name,
        ctx.to_str().unwrap(),
    ];
    let mut explain = vec!["explain"];
    explain.extend_from_slice(&args);
    let out = inlay(&f.store("explain-store"), &explain);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout).replace(&f.registry.host(), "[registry]");
    let text = mask_digests(&text);
    insta::assert_snapshot!("explain_arg", text);

    let mut step = vec!["explain", "--step", "1"];
    step.extend_from_slice(&args);
    assert_eq!(
        inlay(&f.store("explain-store"), &step).status.code(),
        Some(1)
    );

    let build = inlay_build(&f.store("build-store"), &args);
    assert!(build.status.success());
    let err = String::from_utf8_lossy(&build.stderr);
    assert!(
        err.contains("inlay:   missed [2/2] RUN echo 2 > /v: build arg V (line 3) changed"),
        "{err}"
    );
    assert!(err.contains("inlay: time "), "{err}");
}

#[test]
fn check_text_snapshot_over_an_inlay_built_image() {
    let f = Fixture::new();
    f.dockerfile("COPY a.txt /a.txt\nENV X=1\nRUN echo $X > /x\nRUN echo done\n");
    std::fs::write(f.ctx().join("a.txt"), "one\n").unwrap();
    f.push(&[]);
    f.dockerfile("COPY a.txt /a.txt\nENV X=2\nRUN echo $X > /x\nRUN echo done\n");
    let name = f.image();
    let base = format!("BASE={}", f.base);
    let ctx = f.ctx();
    let out = inlay(
        &f.store("check-store"),
        &[
            "build",
            "--check",
            "--build-arg",
            &base,
            "--cache-from",
            &name,
            ctx.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout).replace(&f.registry.host(), "[registry]");
    insta::assert_snapshot!("check_env_text", mask_digests(&text));
}
