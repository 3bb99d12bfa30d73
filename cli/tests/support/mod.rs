//! A real registry (Debian's `docker-registry`) per test, the inlay binary, and a busybox base
//! image built with inlay itself.

// Helpers outside #[test] fns are test code too.
#![allow(dead_code, clippy::unwrap_used, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A registry on a free port of 127.0.0.1 with its access log; killed on drop.
pub use inlay_testkit::registry::OpenRegistry as Registry;

/// The workspace's `examples/` directory.
pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// Runs `inlay build` with `args`; `SOURCE_DATE_EPOCH=0` so digests are reproducible.
pub fn inlay_build(root: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_inlay"))
        .arg("build")
        .arg("--root")
        .arg(root)
        .arg("--progress")
        .arg("plain")
        .args(args)
        .env("SOURCE_DATE_EPOCH", "0")
        .output()
        .unwrap();
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    out
}

/// `(cached, total, run)` from the summary line `inlay: X of Y steps cached, Z run, ...`.
pub fn steps(out: &Output) -> (usize, usize, usize) {
    let text = String::from_utf8_lossy(&out.stderr);
    let line = text
        .lines()
        .find(|l| l.contains(" steps cached, "))
        .expect("a summary line");
    let words: Vec<&str> = line.split_whitespace().collect();
    let n = |i: usize| words[i].trim_end_matches(',').parse::<usize>().unwrap();
    (n(1), n(3), n(6))
}

/// Pushes `HOST/busybox:latest`, made by inlay from a busybox-static rootfs.
pub fn push_busybox(registry: &Registry, root: &Path) -> String {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("usr/bin")).unwrap();
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("usr/bin/busybox")).unwrap();
    for applet in [
        "sh", "cat", "sed", "wc", "mkdir", "echo", "ls", "touch", "cp",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("usr/bin").join(applet)).unwrap();
        std::os::unix::fs::symlink("../usr/bin/busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .unwrap();
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM scratch\nCOPY rootfs/ /\n",
    )
    .unwrap();
    let name = format!("{}/busybox:latest", registry.host());
    let out = inlay_build(root, &["-t", &name, "--push", dir.path().to_str().unwrap()]);
    assert!(out.status.success());
    name
}

/// Copies a directory tree (files only; the examples have no links).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The image digest of a `--metadata-file`.
pub fn image_digest(metadata: &Path) -> String {
    let value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(metadata).unwrap()).unwrap();
    value["containerimage.digest"].as_str().unwrap().to_owned()
}

/// What most end-to-end tests start from: a registry holding the busybox base, a scratch
/// directory with a store in it, and an empty context directory.
pub struct Fixture {
    /// The registry (killed on drop).
    pub registry: Registry,
    /// The scratch directory (removed on drop).
    pub work: tempfile::TempDir,
    /// `<work>/store`, where the base was built.
    pub root: PathBuf,
    /// The base image's name in the registry.
    pub base: String,
    /// `<work>/ctx`, created empty.
    pub ctx: PathBuf,
}

impl Fixture {
    /// Starts the registry, builds and pushes the base, makes the context directory.
    pub fn new() -> Fixture {
        let registry = Registry::start();
        let work = tempfile::tempdir().unwrap();
        let root = work.path().join("store");
        let base = push_busybox(&registry, &root);
        let ctx = work.path().join("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        Fixture {
            registry,
            work,
            root,
            base,
            ctx,
        }
    }
}

/// `sha256:` followed by hex becomes `sha256:[digest]`, wherever it is (for snapshots).
pub fn mask_digests(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("sha256:") {
        out.push_str(&rest[..i + 7]);
        rest = &rest[i + 7..];
        let hex = rest
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(rest.len());
        if hex > 0 {
            out.push_str("[digest]");
        }
        rest = &rest[hex..];
    }
    out.push_str(rest);
    out
}
