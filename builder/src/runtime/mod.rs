//! Running a build step's command in an OCI runtime (`runc` by default, `crun` when chosen).
//!
//! Each run writes an OCI bundle (`config.json` plus generated `/etc/hosts` and
//! `/etc/resolv.conf`) into a scratch directory, runs `<runtime> run --bundle <dir> <id>` with a
//! unique id, captures stdout and stderr line by line (the last lines are kept for error
//! messages and handed to an optional observer), and always ends with `<runtime> delete --force
//! <id>`. Mount points the runtime had to create in the rootfs (`/proc`, `/dev`, `/etc/hosts`,
//! ...) are removed again when they were not there before, so they do not leak into the step's
//! layer (BuildKit does the same).

mod spec;
mod user;

use std::collections::VecDeque;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

pub use user::{ResolvedUser, resolve_user};

/// Which OCI runtime binary runs steps.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuntimeKind {
    /// `runc` (the default, as in BuildKit).
    Runc,
    /// `crun`.
    Crun,
    /// A runc-compatible binary at this path.
    Custom(PathBuf),
}

impl RuntimeKind {
    fn program(&self) -> &std::ffi::OsStr {
        match self {
            RuntimeKind::Runc => "runc".as_ref(),
            RuntimeKind::Crun => "crun".as_ref(),
            RuntimeKind::Custom(path) => path.as_os_str(),
        }
    }
}

/// The network a step sees.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Network {
    /// A private network namespace with only the loopback device (the default).
    #[default]
    None,
    /// The host's network (`RUN --network=host`).
    Host,
}

/// A host directory bind-mounted into the step (cache mounts, secrets, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// Host path.
    pub source: PathBuf,
    /// Path inside the container.
    pub destination: String,
    /// Mount read-only.
    pub read_only: bool,
}

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    /// The command and its arguments.
    pub args: Vec<String>,
    /// `KEY=value` pairs; `PATH` and `HOME` get defaults when absent.
    pub env: Vec<String>,
    /// Working directory inside the container (`/` when empty).
    pub cwd: String,
    /// `USER` as written in a Dockerfile: `name`, `uid`, `name:group`, `uid:gid`; empty is root.
    pub user: String,
    /// Hostname inside the container.
    pub hostname: String,
    /// `--add-host` entries (`host`, `ip`), appended to the generated `/etc/hosts`.
    pub extra_hosts: Vec<(String, String)>,
    /// Network mode.
    pub network: Network,
    /// Extra bind mounts.
    pub mounts: Vec<BindMount>,
}

impl RunSpec {
    /// Runs `args` as root in `/` with no network and BuildKit's default hostname.
    pub fn new(args: impl IntoIterator<Item = impl Into<String>>) -> RunSpec {
        RunSpec {
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            cwd: "/".to_owned(),
            user: String::new(),
            hostname: "buildkitsandbox".to_owned(),
            extra_hosts: Vec::new(),
            network: Network::None,
            mounts: Vec::new(),
        }
    }
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One captured output line (invalid UTF-8 replaced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputLine {
    /// Its stream.
    pub stream: Stream,
    /// The text without the newline.
    pub text: String,
}

/// The result of a successful run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    /// The last lines of output, both streams interleaved as they arrived.
    pub tail: Vec<OutputLine>,
}

impl RunOutput {
    /// The kept lines of one stream.
    pub fn lines(&self, stream: Stream) -> Vec<&str> {
        self.tail
            .iter()
            .filter(|l| l.stream == stream)
            .map(|l| l.text.as_str())
            .collect()
    }
}

/// Why a step did not run to success.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// The command ran and failed.
    #[error("process {args:?} did not complete successfully: exit code {status}{}", render_tail(.tail))]
    CommandFailed {
        /// The command.
        args: Vec<String>,
        /// Its exit code (128 + signal number when killed by a signal).
        status: i32,
        /// The last lines of its output.
        tail: Vec<String>,
    },
    /// The runtime binary could not be started.
    #[error("starting the OCI runtime {program:?}")]
    Spawn {
        /// The binary.
        program: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// `USER` names a user the rootfs's `/etc/passwd` does not have.
    #[error("unable to find user {user}: no matching entries in passwd file")]
    UnknownUser {
        /// The user name.
        user: String,
    },
    /// `USER` names a group the rootfs's `/etc/group` does not have.
    #[error("unable to find group {group}: no matching entries in group file")]
    UnknownGroup {
        /// The group name.
        group: String,
    },
    /// Writing the bundle or cleaning up failed.
    #[error("runtime io at {path}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

fn render_tail(tail: &[String]) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("; last output:\n  {}", tail.join("\n  "))
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> RuntimeError + '_ {
    move |source| RuntimeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An OCI runtime to run steps with.
#[derive(Debug, Clone)]
pub struct Runtime {
    kind: RuntimeKind,
    state_root: Option<PathBuf>,
    tail_lines: usize,
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime::new(RuntimeKind::Runc)
    }
}

static RUN_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Runtime {
    /// A runtime of `kind`, keeping 20 lines of output for errors.
    pub fn new(kind: RuntimeKind) -> Runtime {
        Runtime {
            kind,
            state_root: None,
            tail_lines: 20,
        }
    }

    /// Keeps the runtime's container state under `dir` (its `--root`) instead of its default.
    #[must_use]
    pub fn with_state_root(mut self, dir: impl Into<PathBuf>) -> Runtime {
        self.state_root = Some(dir.into());
        self
    }

    /// How many output lines to keep.
    #[must_use]
    pub fn with_tail_lines(mut self, lines: usize) -> Runtime {
        self.tail_lines = lines.max(1);
        self
    }

    /// Whether the runtime binary can be started at all.
    pub fn is_available(&self) -> bool {
        self.command()
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(self.kind.program());
        if let Some(root) = &self.state_root {
            cmd.arg("--root").arg(root);
        }
        cmd
    }

    /// Runs `spec` in `rootfs`, writing the bundle into the empty directory `bundle`.
    /// `observer` sees every output line as it arrives.
    pub fn run(
        &self,
        rootfs: &Path,
        spec: &RunSpec,
        bundle: &Path,
        observer: &mut dyn FnMut(&OutputLine),
    ) -> Result<RunOutput, RuntimeError> {
        let user = resolve_user(rootfs, &spec.user)?;
        let rootfs = std::path::absolute(rootfs).map_err(io_err(rootfs))?;
        let bundle = std::path::absolute(bundle).map_err(io_err(bundle))?;
        std::fs::create_dir_all(&bundle).map_err(io_err(&bundle))?;
        let hosts = bundle.join("hosts");
        let resolv = bundle.join("resolv.conf");
        std::fs::write(&hosts, hosts_file(&spec.hostname, &spec.extra_hosts))
            .map_err(io_err(&hosts))?;
        std::fs::write(&resolv, resolv_conf(spec.network)).map_err(io_err(&resolv))?;
        let config = spec::config(&rootfs, spec, &user, &hosts, &resolv);
        let config_path = bundle.join("config.json");
        std::fs::write(&config_path, config.to_string()).map_err(io_err(&config_path))?;

        // Only paths reached without symlinks: a rootfs symlink such as `etc -> /etc` must not
        // lead the clean-up to the host's files.
        let stubs: Vec<PathBuf> = spec::MOUNT_POINTS
            .iter()
            .filter(|p| !through_symlink(&rootfs, Path::new(p)))
            .map(|p| rootfs.join(p))
            .filter(|p| std::fs::symlink_metadata(p).is_err())
            .collect();
        // The directories the stubs go into get their mtimes back afterwards, so a step that
        // did not touch them leaves them out of its layer (BuildKit restores them too).
        let mut parents: Vec<(PathBuf, i64, i64)> = Vec::new();
        for stub in &stubs {
            let Some(parent) = stub.parent() else {
                continue;
            };
            if parents.iter().any(|(p, _, _)| p == parent) {
                continue;
            }
            if let Ok(meta) = std::fs::symlink_metadata(parent) {
                use std::os::unix::fs::MetadataExt;
                if meta.is_dir() {
                    parents.push((parent.to_path_buf(), meta.mtime(), meta.mtime_nsec()));
                }
            }
        }
        let id = format!(
            "inlay-{}-{}-{}",
            std::process::id(),
            RUN_COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        let result = self.run_container(&id, &bundle, spec, observer);
        self.delete(&id);
        // Deepest first, and only what is still an empty stub.
        for stub in stubs.iter().rev() {
            remove_stub(stub);
        }
        for (dir, secs, nanos) in parents.iter().rev() {
            if let Err(e) = crate::layer::fs_meta::set_times(dir, *secs, *nanos as u32) {
                tracing::debug!(dir = %dir.display(), error = %e, "restoring a directory mtime");
            }
        }
        result
    }

    fn run_container(
        &self,
        id: &str,
        bundle: &Path,
        spec: &RunSpec,
        observer: &mut dyn FnMut(&OutputLine),
    ) -> Result<RunOutput, RuntimeError> {
        let mut child = self
            .command()
            .arg("run")
            .arg("--bundle")
            .arg(bundle)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| RuntimeError::Spawn {
                program: PathBuf::from(self.kind.program()),
                source,
            })?;
        let (tx, rx) = mpsc::channel();
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            let tx = tx.clone();
            readers.push(std::thread::spawn(move || {
                read_lines(out, Stream::Stdout, &tx);
            }));
        }
        if let Some(err) = child.stderr.take() {
            let tx = tx.clone();
            readers.push(std::thread::spawn(move || {
                read_lines(err, Stream::Stderr, &tx);
            }));
        }
        drop(tx);
        let mut tail: VecDeque<OutputLine> = VecDeque::new();
        for line in rx {
            observer(&line);
            if tail.len() == self.tail_lines {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        for reader in readers {
            let _ = reader.join();
        }
        let status = child.wait().map_err(|source| RuntimeError::Spawn {
            program: PathBuf::from(self.kind.program()),
            source,
        })?;
        let code = status.code().unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            128 + status.signal().unwrap_or(0)
        });
        if code != 0 {
            return Err(RuntimeError::CommandFailed {
                args: spec.args.clone(),
                status: code,
                tail: tail.into_iter().map(|l| l.text).collect(),
            });
        }
        Ok(RunOutput {
            tail: tail.into_iter().collect(),
        })
    }

    /// `delete --force`, always, so no container state outlives a run.
    fn delete(&self, id: &str) {
        let result = self
            .command()
            .args(["delete", "--force", id])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Err(e) = result {
            tracing::warn!(container = id, error = %e, "deleting the container failed");
        }
    }
}

/// Sends each line of `input` (split at newlines, long lines cut at 16 kibibytes) to `tx`.
fn read_lines(mut input: impl Read, stream: Stream, tx: &mpsc::Sender<OutputLine>) {
    const MAX_LINE: usize = 16 * 1024;
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    let send = |bytes: &[u8]| {
        let _ = tx.send(OutputLine {
            stream,
            text: String::from_utf8_lossy(bytes).into_owned(),
        });
    };
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for &b in &buf[..n] {
            if b == b'\n' {
                send(&pending);
                pending.clear();
            } else {
                pending.push(b);
                if pending.len() >= MAX_LINE {
                    send(&pending);
                    pending.clear();
                }
            }
        }
    }
    if !pending.is_empty() {
        send(&pending);
    }
}

fn hosts_file(hostname: &str, extra: &[(String, String)]) -> String {
    let mut hosts =
        format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for (host, ip) in extra {
        hosts.extend([ip.as_str(), "\t", host.as_str(), "\n"]);
    }
    hosts
}

/// The host's resolver configuration; in a private network namespace, nameservers on the
/// host's loopback are unreachable and dropped.
fn resolv_conf(network: Network) -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let host = if host.contains("127.0.0.53") {
        // systemd-resolved's stub; the real upstreams are listed here.
        std::fs::read_to_string("/run/systemd/resolve/resolv.conf").unwrap_or(host)
    } else {
        host
    };
    match network {
        Network::Host => host,
        Network::None => host
            .lines()
            .filter(|l| {
                let mut words = l.split_whitespace();
                !(words.next() == Some("nameserver")
                    && words
                        .next()
                        .is_some_and(|ip| ip.starts_with("127.") || ip == "::1"))
            })
            .fold(String::new(), |mut out, line| {
                out.push_str(line);
                out.push('\n');
                out
            }),
    }
}

/// Removes a mount point the runtime created, if it is still an empty directory or empty file.
fn remove_stub(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            let _ = std::fs::remove_dir(path);
        }
        Ok(m) if m.is_file() && m.len() == 0 => {
            let _ = std::fs::remove_file(path);
        }
        _ => {}
    }
}

/// Whether a parent of `rel` inside `rootfs` is a symlink.
fn through_symlink(rootfs: &Path, rel: &Path) -> bool {
    let mut path = rootfs.to_path_buf();
    let Some(parent) = rel.parent() else {
        return false;
    };
    parent.components().any(|c| {
        path.push(c);
        std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink())
    })
}
