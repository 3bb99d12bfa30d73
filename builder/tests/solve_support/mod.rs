//! Support for the solver tests: a real registry (Debian's `docker-registry`, started on a free
//! port of 127.0.0.1 as the registry crate's own test harness does, copied here in its minimal
//! open form since test support cannot be shared across crates), a busybox-static base image
//! pushed to it with the registry client, and requirement checks.

// Test code: a failed unwrap is a failed test.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use inlay_builder::layer::{LayerOptions, LayerSource, write_layer};
use inlay_builder::progress::{ProgressEvent, ProgressSink};
use inlay_builder::runtime::Runtime;
use inlay_core::{Descriptor, Reference, media_types};
use inlay_registry::{BlobSource, Client, ClientConfig, CredentialStore};

/// Why the real-component tests cannot run here, if they cannot.
pub fn missing_requirement() -> Option<&'static str> {
    if !rustix::process::geteuid().is_root() {
        return Some("not running as root");
    }
    if !Path::new("/usr/bin/busybox").is_file() {
        return Some("/usr/bin/busybox is missing (apt-get install busybox-static)");
    }
    if !Runtime::default().is_available() {
        return Some("runc is missing (apt-get install runc)");
    }
    if Command::new("docker-registry")
        .arg("--version")
        .output()
        .is_err()
    {
        return Some("docker-registry is missing (apt-get install docker-registry)");
    }
    None
}

/// Returns from the test, saying why, when a real component is missing.
#[macro_export]
macro_rules! require_components {
    () => {
        if let Some(why) = solve_support::missing_requirement() {
            eprintln!("skipped: {why}");
            return;
        }
    };
}

/// A registry process, killed on drop.
pub struct TestRegistry {
    pub addr: SocketAddr,
    _dir: tempfile::TempDir,
    child: Child,
}

impl TestRegistry {
    pub fn start() -> TestRegistry {
        // Port races with other tests are possible in principle; a failed start retries.
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let config = format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.1:{port}\n  secret: inlay-test-secret\n",
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
                .unwrap();
            let mut reg = TestRegistry {
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                _dir: dir,
                child,
            };
            if reg.wait_ready() {
                return reg;
            }
            let _ = reg.child.kill();
            let _ = reg.child.wait();
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
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> Client {
    Client::new(ClientConfig::default(), CredentialStore::empty()).unwrap()
}

/// A busybox-static rootfs: the binary, its applets as symlinks, passwd and group with an
/// `app` user.
pub fn busybox_rootfs(dir: &Path) {
    for d in ["bin", "etc", "tmp", "root"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy("/usr/bin/busybox", dir.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "echo", "cat", "id", "ls", "touch", "rm", "mkdir", "stat", "wc", "test", "sleep",
        "pwd", "env",
    ] {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\napp:x:1001:\n").unwrap();
}

/// Builds a one-layer busybox image and pushes it as `<registry>/test/busybox:latest`;
/// returns the reference string.
pub fn push_busybox(registry: &TestRegistry) -> String {
    let tree = tempfile::tempdir().unwrap();
    busybox_rootfs(tree.path());
    let options = LayerOptions {
        source_date_epoch: Some(0),
        ..LayerOptions::default()
    };
    let (info, blob) = write_layer(LayerSource::Tree(tree.path()), Vec::new(), &options).unwrap();
    let layer = Descriptor::of_bytes(media_types::OCI_LAYER_GZIP, &blob);
    assert_eq!(layer.digest, info.digest);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [info.diff_id]},
        "history": [{"created_by": "busybox-static rootfs"}],
    }))
    .unwrap();
    let config_desc = Descriptor::of_bytes(media_types::OCI_CONFIG, &config);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_MANIFEST,
        "config": config_desc,
        "layers": [layer],
    }))
    .unwrap();
    let reference = format!("{}/test/busybox:latest", registry.host());
    let parsed = Reference::parse(&reference).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = client();
    rt.block_on(async {
        client
            .push_blob(&parsed, &layer, BlobSource::from(blob), None)
            .await
            .unwrap();
        client
            .push_blob(
                &parsed,
                &config_desc,
                BlobSource::from(config.clone()),
                None,
            )
            .await
            .unwrap();
        client
            .put_manifest(&parsed, media_types::OCI_MANIFEST, manifest.into())
            .await
            .unwrap();
    });
    reference
}

/// A progress sink that records every event.
pub fn recorder() -> (ProgressSink, Arc<Mutex<Vec<ProgressEvent>>>) {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink_events = events.clone();
    let sink: ProgressSink = Arc::new(move |e| sink_events.lock().unwrap().push(e));
    (sink, events)
}
