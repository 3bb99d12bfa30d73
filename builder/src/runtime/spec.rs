//! The OCI runtime-spec `config.json` of a build step, with the defaults Docker and BuildKit use
//! for containers: Docker's default capability set, masked and read-only `/proc` paths, a tmpfs
//! `/dev`, a read-only `/sys`, and generated `/etc/hosts` and `/etc/resolv.conf` bind-mounted.

use std::path::Path;

use serde_json::{Value, json};

use super::user::ResolvedUser;
use super::{Network, RunSpec};

/// The PATH a step gets when its environment has none (BuildKit's default).
pub(crate) const DEFAULT_PATH: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's default capabilities (moby `oci/caps/defaults.go`).
const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Mount destinations the runtime creates in the rootfs when missing (cleaned up after the run).
pub(crate) const MOUNT_POINTS: [&str; 9] = [
    "proc",
    "dev",
    "dev/pts",
    "dev/shm",
    "dev/mqueue",
    "sys",
    "etc",
    "etc/hosts",
    "etc/resolv.conf",
];

/// The config for running `spec` as `user` in `rootfs`, with `hosts` and `resolv` as the files
/// to bind-mount.
pub(crate) fn config(
    rootfs: &Path,
    spec: &RunSpec,
    user: &ResolvedUser,
    hosts: &Path,
    resolv: &Path,
) -> Value {
    let mut env = spec.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_owned());
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        let home = user
            .home
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "/".to_owned());
        env.push(format!("HOME={home}"));
    }
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        // sysfs can only be mounted in a network namespace of one's own; with the host's
        // network the host's /sys is bound read-only instead, as Docker does.
        if spec.network == Network::Host {
            json!({"destination": "/sys", "type": "bind", "source": "/sys",
                   "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]})
        } else {
            json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
                   "options": ["nosuid", "noexec", "nodev", "ro"]})
        },
        json!({"destination": "/etc/resolv.conf", "type": "bind", "source": resolv,
               "options": ["rbind", "ro"]}),
        json!({"destination": "/etc/hosts", "type": "bind", "source": hosts,
               "options": ["rbind", "ro"]}),
    ];
    for bind in &spec.mounts {
        mounts.push(json!({
            "destination": bind.destination,
            "type": "bind",
            "source": bind.source,
            "options": ["rbind", if bind.read_only { "ro" } else { "rw" }],
        }));
    }
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    if spec.network == Network::None {
        // A fresh network namespace has only the loopback device.
        namespaces.push(json!({"type": "network"}));
    }
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {
                "uid": user.uid,
                "gid": user.gid,
                "additionalGids": user.additional_gids,
            },
            "args": spec.args,
            "env": env,
            "cwd": if spec.cwd.is_empty() { "/" } else { spec.cwd.as_str() },
            "capabilities": {
                "bounding": DEFAULT_CAPABILITIES,
                "effective": DEFAULT_CAPABILITIES,
                "permitted": DEFAULT_CAPABILITIES,
            },
            "rlimits": [nofile_limit()],
            "noNewPrivileges": false,
        },
        "root": { "path": rootfs, "readonly": false },
        "hostname": spec.hostname,
        "mounts": mounts,
        "linux": {
            "namespaces": namespaces,
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
        },
    })
}

/// `RLIMIT_NOFILE` for the step: Docker's 1048576, but never above what this process may grant
/// (raising a hard limit needs `CAP_SYS_RESOURCE`, which sandboxes often lack).
fn nofile_limit() -> Value {
    const WANTED: u64 = 1_048_576;
    let current = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let hard = current.maximum.map_or(WANTED, |max| max.min(WANTED));
    json!({"type": "RLIMIT_NOFILE", "hard": hard, "soft": hard})
}
