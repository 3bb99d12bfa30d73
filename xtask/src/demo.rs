//! `cargo xtask demo`: the main job end to end on this machine alone.
//!
//! Starts a throwaway registry on 127.0.0.1, makes a busybox base image with inlay itself
//! (`FROM scratch` + `COPY rootfs/ /`), builds `examples/hello` on it with
//! `--push --cache-to type=inline`, wipes the local store, rebuilds with `--cache-from`, and
//! shows what the second build took from the registry. No internet is needed once the Debian
//! packages are there.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::packages::{TEST_PACKAGES, ensure};

/// The registry process, killed (and its directory removed) when dropped, also on error.
struct Registry {
    child: Child,
    port: u16,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The demo's scratch directory, removed when dropped.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs the demo.
pub fn run(root: &Path) -> Result<()> {
    // The test set: an OCI runtime, the registry, busybox for the base image (and htpasswd).
    ensure(&TEST_PACKAGES)?;
    crate::run::cargo(root, &["build", "-q", "-p", "inlay"])?;
    let inlay = root.join("target/debug/inlay");
    let scratch = Scratch(std::env::temp_dir().join(format!("inlay-demo-{}", std::process::id())));
    std::fs::create_dir_all(&scratch.0)?;
    let registry = start_registry(&scratch.0)?;
    let host = format!("127.0.0.1:{}", registry.port);
    let store = scratch.0.join("store");
    println!(
        "inlay demo: registry at {host}, store at {}",
        store.display()
    );

    let base_ctx = busybox_context(&scratch.0)?;
    let base = format!("{host}/busybox:latest");
    let out = build(&inlay, &store, &["-t", &base, "--push", path(&base_ctx)?])?;
    println!("\n1. base image {base} built by inlay from busybox-static and pushed");
    show(&out);

    let hello = format!("{host}/hello:latest");
    let meta = scratch.0.join("metadata.json");
    let example = root.join("examples/hello");
    let base_arg = format!("BASE={base}");
    let args = [
        "--build-arg",
        &base_arg,
        "-t",
        &hello,
        "--push",
        "--cache-to",
        "type=inline",
        "--cache-from",
        &hello,
        "--metadata-file",
        path(&meta)?,
        path(&example)?,
    ];
    let out = build(&inlay, &store, &args)?;
    let first = digest(&meta)?;
    println!("\n2. examples/hello built cold and pushed with its inline cache");
    show(&out);

    std::fs::remove_dir_all(&store).context("wiping the store")?;
    let out = build(&inlay, &store, &args)?;
    let second = digest(&meta)?;
    println!("\n3. local store wiped, rebuilt with --cache-from {hello}");
    show(&out);
    println!();
    if first == second {
        println!("image digests are equal (SOURCE_DATE_EPOCH=0): {first}");
    } else {
        bail!("the rebuilt image differs: {first} then {second}");
    }
    Ok(())
}

fn path(p: &Path) -> Result<&str> {
    p.to_str().context("the demo's paths are UTF-8")
}

/// Runs `inlay build` with plain progress; its summary lines are returned, the rest dropped.
fn build(inlay: &Path, store: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(inlay)
        .arg("build")
        .arg("--root")
        .arg(store)
        .args(["--progress", "plain"])
        .args(args)
        .env("SOURCE_DATE_EPOCH", "0")
        .output()
        .context("running inlay")?;
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    if !out.status.success() {
        bail!("inlay build failed:\n{text}");
    }
    Ok(text)
}

/// Prints the summary lines and, for each cached step, its name as BuildKit's plain progress
/// gives it (`#4 [build 2/4] WORKDIR /src` then `#4 CACHED`).
fn show(output: &str) {
    let mut names = std::collections::HashMap::new();
    for line in output.lines() {
        if let Some((number, rest)) = line.split_once(' ') {
            if number.starts_with('#') && rest.starts_with('[') {
                names.insert(number.to_owned(), rest.to_owned());
            }
        }
        if line.starts_with("inlay:") || line.starts_with("WARNING") {
            println!("   {line}");
        } else if let Some(number) = line.strip_suffix(" CACHED") {
            let name = names.get(number).map_or("", String::as_str);
            println!("   {number} CACHED {name}");
        }
    }
}

fn digest(metadata: &Path) -> Result<String> {
    let value: serde_json::Value = serde_json::from_slice(&std::fs::read(metadata)?)?;
    value["containerimage.digest"]
        .as_str()
        .map(str::to_owned)
        .context("metadata without containerimage.digest")
}

/// A context whose Dockerfile copies a busybox root filesystem onto scratch.
fn busybox_context(dir: &Path) -> Result<PathBuf> {
    let ctx = dir.join("busybox");
    let rootfs = ctx.join("rootfs");
    for d in ["usr/bin", "bin", "etc"] {
        std::fs::create_dir_all(rootfs.join(d))?;
    }
    let busybox = which("busybox").context("busybox-static is installed")?;
    std::fs::copy(&busybox, rootfs.join("usr/bin/busybox"))?;
    let list = Command::new(&busybox).arg("--list").output()?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        std::os::unix::fs::symlink("busybox", rootfs.join("usr/bin").join(applet))?;
        std::os::unix::fs::symlink("../usr/bin/busybox", rootfs.join("bin").join(applet))?;
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    std::fs::write(ctx.join("Dockerfile"), "FROM scratch\nCOPY rootfs/ /\n")?;
    Ok(ctx)
}

fn start_registry(dir: &Path) -> Result<Registry> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: inlay-demo\n",
            dir.join("registry").display()
        ),
    )?;
    let log = std::fs::File::create(dir.join("registry.log"))?;
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting docker-registry")?;
    let registry = Registry { child, port };
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let request =
                format!("GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
            if s.write_all(request.as_bytes()).is_ok() {
                let mut answer = String::new();
                let _ = s.read_to_string(&mut answer);
                if answer.starts_with("HTTP/1.") {
                    return Ok(registry);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("docker-registry did not start on port {port}")
}

/// The first `program` on `PATH`.
fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
