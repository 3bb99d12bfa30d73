//! A private docker 20.10 engine and registry: started in a scratch directory, stopped on drop.
//!
//! dockerd runs with vfs storage, its own data/exec roots, socket and (empty) config file, and
//! no iptables rules; the registry is Debian's `docker-registry` on a free 127.0.0.1 port, which
//! dockerd treats as insecure (plain HTTP) by default. The client is always `/usr/bin/docker`,
//! the 20.10 client that still builds through the daemon's embedded BuildKit.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::conformance::processes::{ChildGuard, ScratchDir};
use crate::conformance::registry_http::{self, PulledImage};

/// The docker 20.10 client (`/usr/local/bin/docker` may be a newer client without the classic
/// BuildKit path).
pub const DOCKER: &str = "/usr/bin/docker";

/// How long dockerd and the registry get to answer after starting.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The running engine. Fields drop in order: the daemons stop before the scratch directory goes.
pub struct Engine {
    dockerd: ChildGuard,
    registry: ChildGuard,
    scratch: ScratchDir,
    registry_addr: SocketAddr,
}

impl Engine {
    /// Starts the registry and dockerd and waits until both answer.
    pub fn start() -> Result<Engine> {
        let scratch = ScratchDir::new("inlay-conformance")?;
        let dir = scratch.path().to_path_buf();
        let registry_addr = free_port()?;
        let registry_config = dir.join("registry.yml");
        std::fs::write(
            &registry_config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {registry_addr}\n",
                dir.join("registry").display()
            ),
        )
        .with_context(|| format!("writing {}", registry_config.display()))?;
        let registry = ChildGuard::spawn(
            "docker-registry",
            Command::new("docker-registry")
                .arg("serve")
                .arg(&registry_config)
                .stdin(Stdio::null())
                .stdout(log_file(&dir, "registry.log")?)
                .stderr(log_file(&dir, "registry.log")?),
        )?;
        let daemon_config = dir.join("daemon.json");
        std::fs::write(&daemon_config, "{}\n")
            .with_context(|| format!("writing {}", daemon_config.display()))?;
        for sub in ["data", "exec", "client"] {
            std::fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("creating {}", dir.join(sub).display()))?;
        }
        let dockerd = ChildGuard::spawn(
            "dockerd",
            Command::new("dockerd")
                .arg("--config-file")
                .arg(&daemon_config)
                .arg("--storage-driver=vfs")
                .arg(format!("--data-root={}", dir.join("data").display()))
                .arg(format!("--exec-root={}", dir.join("exec").display()))
                .arg(format!("--pidfile={}", dir.join("dockerd.pid").display()))
                .arg(format!(
                    "--host=unix://{}",
                    dir.join("docker.sock").display()
                ))
                .args(["--iptables=false", "--ip6tables=false"])
                .stdin(Stdio::null())
                .stdout(log_file(&dir, "dockerd.log")?)
                .stderr(log_file(&dir, "dockerd.log")?),
        )?;
        let engine = Engine {
            dockerd,
            registry,
            scratch,
            registry_addr,
        };
        engine.wait_until_ready()?;
        Ok(engine)
    }

    fn wait_until_ready(&self) -> Result<()> {
        let start = Instant::now();
        let mut registry_up = false;
        let mut docker_up = false;
        while start.elapsed() < START_TIMEOUT {
            for child in [&self.registry, &self.dockerd] {
                if let Some(status) = child.exited() {
                    bail!(
                        "{} exited while starting ({status}); its log ends:\n{}",
                        child.name(),
                        self.log_tail(if child.name() == "dockerd" {
                            "dockerd.log"
                        } else {
                            "registry.log"
                        })
                    );
                }
            }
            registry_up = registry_up
                || registry_http::get(self.registry_addr, "/v2/", None)
                    .is_ok_and(|(status, _)| status == 200);
            docker_up = docker_up
                || self
                    .docker()
                    .arg("info")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
            if registry_up && docker_up {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        bail!(
            "dockerd (up: {docker_up}) or the registry (up: {registry_up}) did not answer within {START_TIMEOUT:?}; dockerd's log ends:\n{}",
            self.log_tail("dockerd.log")
        )
    }

    /// The last lines of one of the daemons' logs.
    pub fn log_tail(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.scratch.path().join(name)).unwrap_or_default();
        tail(&text, 30)
    }

    /// `host:port` of the registry.
    pub fn registry(&self) -> String {
        self.registry_addr.to_string()
    }

    /// The registry's socket address.
    pub fn registry_addr(&self) -> SocketAddr {
        self.registry_addr
    }

    /// The scratch directory (build outputs of the daemons live there).
    pub fn scratch(&self) -> &Path {
        self.scratch.path()
    }

    /// Keeps the scratch directory after the run.
    pub fn keep_scratch(&mut self) {
        self.scratch.keep();
    }

    /// A `/usr/bin/docker` command talking to this engine, with a private client config.
    pub fn docker(&self) -> Command {
        let dir = self.scratch.path();
        let mut command = Command::new(DOCKER);
        command
            .env(
                "DOCKER_HOST",
                format!("unix://{}", dir.join("docker.sock").display()),
            )
            .env("DOCKER_CONFIG", dir.join("client"))
            .env("DOCKER_BUILDKIT", "1")
            .stdin(Stdio::null());
        command
    }

    /// Makes the busybox base image from the host's static busybox and pushes it as
    /// `<registry>/busybox:latest`: `bin/busybox` and its applet links, and an `/etc/passwd`
    /// and `/etc/group` with `root`, `app` (1000) and `nobody`, so `--chown` and `USER` can
    /// use names. The tar is deterministic (sorted, zero times, numeric root owner), so the
    /// image's `diff_id`, and with it its chainID cache root, is the same on every run.
    pub fn make_base(&self) -> Result<(String, PulledImage)> {
        let busybox = find_busybox()?;
        let rootfs = self.scratch.path().join("busybox-rootfs");
        let bin = rootfs.join("bin");
        let etc = rootfs.join("etc");
        for dir in [&bin, &etc] {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::copy(&busybox, bin.join("busybox"))
            .with_context(|| format!("copying {}", busybox.display()))?;
        let list = Command::new(&busybox)
            .arg("--list")
            .output()
            .with_context(|| format!("running {} --list", busybox.display()))?;
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            let applet = applet.trim();
            if applet.is_empty() || applet == "busybox" || applet.contains('/') {
                continue;
            }
            std::os::unix::fs::symlink("busybox", bin.join(applet))
                .with_context(|| format!("linking applet {applet}"))?;
        }
        std::fs::write(
            etc.join("passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        )?;
        std::fs::write(
            etc.join("group"),
            "root:x:0:\napp:x:1000:\nnogroup:x:65534:\n",
        )?;
        let tar_path = self.scratch.path().join("busybox.tar");
        let status = Command::new("tar")
            .args([
                "--sort=name",
                "--mtime=@0",
                "--owner=0",
                "--group=0",
                "--numeric-owner",
                "-C",
            ])
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar_path)
            .arg(".")
            .status()
            .context("running tar")?;
        if !status.success() {
            bail!("tar of the busybox rootfs failed ({status})");
        }
        let reference = format!("{}/busybox:latest", self.registry());
        let tar = std::fs::File::open(&tar_path)
            .with_context(|| format!("opening {}", tar_path.display()))?;
        run(
            "docker import",
            self.docker()
                .args(["import", "-", &reference])
                .stdin(Stdio::from(tar)),
        )?;
        run("docker push", self.docker().args(["push", &reference]))?;
        let pulled = registry_http::pull_image(self.registry_addr, "busybox", "latest")?;
        Ok((reference, pulled))
    }
}

/// Runs a docker command; its output, or an error with its stderr.
pub fn run(what: &str, command: &mut Command) -> Result<Output> {
    let output = command
        .output()
        .with_context(|| format!("running {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            output.status,
            tail(&String::from_utf8_lossy(&output.stdout), 20),
            tail(&String::from_utf8_lossy(&output.stderr), 40)
        );
    }
    Ok(output)
}

/// The host's busybox; it must be static (Debian's busybox-static) to run in the image.
fn find_busybox() -> Result<PathBuf> {
    for candidate in ["/bin/busybox", "/usr/bin/busybox"] {
        let path = PathBuf::from(candidate);
        if path.is_file() {
            let bytes = std::fs::read(&path).with_context(|| format!("reading {candidate}"))?;
            if has_interpreter(&bytes) {
                bail!("{candidate} is dynamically linked; install busybox-static");
            }
            return Ok(path);
        }
    }
    bail!("no busybox found; install busybox-static")
}

/// Whether a 64-bit little-endian ELF file has a `PT_INTERP` program header (is dynamically
/// linked). Anything else counts as static: the image build will tell if it is not.
fn has_interpreter(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |at: usize| {
        elf.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u64_at = |at: usize| {
        elf.get(at..at + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
    };
    if elf.get(..5) != Some(b"\x7fELF\x02".as_slice()) {
        return false;
    }
    let (Some(offset), Some(size), Some(count)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38)) else {
        return false;
    };
    (0..usize::from(count)).any(|i| {
        let at = offset as usize + i * usize::from(size);
        elf.get(at..at + 4)
            .is_some_and(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) == PT_INTERP)
    })
}

fn log_file(dir: &Path, name: &str) -> Result<std::fs::File> {
    let path = dir.join(name);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))
}

/// A free 127.0.0.1 port (bound, read, released; the registry takes it right after).
fn free_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    listener.local_addr().context("finding a free port")
}

/// The last `lines` lines of `text`, indented.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let mut out = String::new();
    for line in &all[all.len().saturating_sub(lines)..] {
        let _ = writeln!(out, "    {line}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_and_dynamic_binaries_are_told_apart() {
        let dynamic = std::fs::read("/bin/sh").unwrap();
        assert!(has_interpreter(&dynamic));
        assert!(!has_interpreter(b"#!/bin/sh\n"));
        assert!(!has_interpreter(b"\x7fELF\x02"));
    }

    #[test]
    fn tails_keep_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "    b\n    c\n");
        assert_eq!(tail("", 2), "");
    }
}
