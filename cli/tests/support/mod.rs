//! A real registry (Debian's `docker-registry`) per test, the inlay binary, and a busybox base
//! image built with inlay itself.

// Helpers outside #[test] fns are test code too.
#![allow(dead_code, clippy::unwrap_used, clippy::print_stderr)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A registry on a free port of 127.0.0.1 with its access log; killed on drop.
pub struct Registry {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Registry {
    pub fn start() -> Registry {
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let config = format!(
                "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: false\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.1:{port}\n  secret: inlay-test\n",
                dir.path().join("data").display()
            );
            let config_path = dir.path().join("config.yml");
            std::fs::write(&config_path, config).unwrap();
            let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
            let child = Command::new("docker-registry")
                .arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("docker-registry is installed (cargo xtask install-deps)");
            let mut reg = Registry {
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                dir,
                child,
            };
            if reg.wait_ready() {
                return reg;
            }
        }
        panic!("docker-registry did not start");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(mut s) = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let req = format!(
                    "GET /v2/ HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
                    self.addr
                );
                if s.write_all(req.as_bytes()).is_ok() {
                    let mut answer = String::new();
                    let _ = s.read_to_string(&mut answer);
                    if answer.starts_with("HTTP/1.") {
                        return true;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The digests of the gzip blobs (layers) the registry stores.
    pub fn layer_digests(&self) -> Vec<String> {
        let root = self.dir.path().join("data/docker/registry/v2/blobs/sha256");
        let mut out = Vec::new();
        for prefix in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            for blob in std::fs::read_dir(prefix.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let data = std::fs::read(blob.path().join("data")).unwrap_or_default();
                if data.starts_with(&[0x1f, 0x8b]) {
                    out.push(format!("sha256:{}", blob.file_name().to_string_lossy()));
                }
            }
        }
        out
    }

    /// How many layer blob GETs the access log holds.
    pub fn layer_downloads(&self) -> usize {
        let layers = self.layer_digests();
        self.log()
            .lines()
            .filter(|l| l.contains("\"GET /v2/") && layers.iter().any(|d| l.contains(d.as_str())))
            .count()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
