//! Support for the solver tests: a real registry (Debian's `docker-registry` on a free port of
//! 127.0.0.1, from `inlay-testkit`), a busybox-static base image pushed to it with the registry
//! client, and requirement checks.

// Test code: a failed unwrap is a failed test.
#![allow(dead_code, unused_imports, clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};

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

/// A registry process (open, from `inlay-testkit`), killed on drop.
pub use inlay_testkit::registry::OpenRegistry as TestRegistry;

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
