//! `ExecOp`: a process run in a container, as BuildKit's `pb.ExecOp` models it.

/// A process and its mounts (LLB `ExecOp`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOp {
    /// Process metadata.
    pub meta: ExecMeta,
    /// Mounts, sorted by destination as BuildKit's client sorts them.
    pub mounts: Vec<Mount>,
    /// Network mode.
    pub network: NetMode,
    /// Security mode.
    pub security: SecurityMode,
    /// Secrets exposed as environment variables (`RUN --mount=type=secret,env=...`).
    pub secret_env: Vec<SecretEnv>,
}

/// Process metadata (LLB `Meta`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecMeta {
    /// argv.
    pub args: Vec<String>,
    /// `KEY=value` pairs, in BuildKit's order (spec section 8c).
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// User as written (`"1000"`, `"nobody:nogroup"`); empty when unset.
    pub user: String,
    /// Proxy variables (never part of a key: BuildKit removes them before hashing).
    pub proxy_env: Option<ProxyEnv>,
    /// `--add-host` entries.
    pub extra_hosts: Vec<HostIp>,
    /// Container host name.
    pub hostname: String,
    /// Resource limits.
    pub ulimit: Vec<Ulimit>,
    /// cgroup parent.
    pub cgroup_parent: String,
    /// Set by LLB v0.11+ clients on every exec (spec section 5.5); absent in docker 20.10.
    pub remove_mount_stubs_recursive: bool,
    /// Exit codes counted as success (empty: only 0).
    pub valid_exit_codes: Vec<i32>,
}

impl ExecMeta {
    /// Shell-form metadata: `/bin/sh -c <command>` in `cwd`, no env yet.
    pub fn shell(command: &str, cwd: &str) -> ExecMeta {
        ExecMeta {
            args: vec!["/bin/sh".to_owned(), "-c".to_owned(), command.to_owned()],
            cwd: cwd.to_owned(),
            ..ExecMeta::default()
        }
    }
}

/// Proxy settings passed to a process.
// Field names mirror BuildKit's `pb.ProxyEnv`.
#[allow(clippy::struct_field_names)]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyEnv {
    /// `HTTP_PROXY`.
    pub http_proxy: String,
    /// `HTTPS_PROXY`.
    pub https_proxy: String,
    /// `FTP_PROXY`.
    pub ftp_proxy: String,
    /// `NO_PROXY`.
    pub no_proxy: String,
    /// `ALL_PROXY`.
    pub all_proxy: String,
}

/// An `--add-host` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostIp {
    /// Host name.
    pub host: String,
    /// Address (cleared before hashing, spec section 5.5).
    pub ip: String,
}

/// A resource limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ulimit {
    /// Limit name (`nofile`, ...).
    pub name: String,
    /// Soft limit.
    pub soft: i64,
    /// Hard limit.
    pub hard: i64,
}

/// A secret exposed as an environment variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretEnv {
    /// Secret id.
    pub id: String,
    /// Variable name.
    pub name: String,
    /// Whether a missing secret is fine.
    pub optional: bool,
}

/// Network mode; the numbers are BuildKit's enum values, written into keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum NetMode {
    /// The default sandbox network (omitted from keys).
    #[default]
    Unset = 0,
    /// The host's network.
    Host = 1,
    /// No network but loopback.
    None = 2,
}

/// Security mode; the numbers are BuildKit's enum values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum SecurityMode {
    /// The default sandbox.
    #[default]
    Sandbox = 0,
    /// `--security=insecure`.
    Insecure = 1,
}

/// One mount of an exec (LLB `Mount`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Input index, or -1 for none.
    pub input: i64,
    /// Path inside the input (empty: its root).
    pub selector: String,
    /// Mount point in the container.
    pub dest: String,
    /// Output index, or -1 when the mount produces no output.
    pub output: i64,
    /// Read-only mount.
    pub readonly: bool,
    /// Kind of mount.
    pub mount_type: MountType,
    /// tmpfs options.
    pub tmpfs_opt: Option<TmpfsOpt>,
    /// Cache-mount options.
    pub cache_opt: Option<CacheOpt>,
    /// Secret-mount options.
    pub secret_opt: Option<SecretOpt>,
    /// SSH-agent mount options.
    pub ssh_opt: Option<SshOpt>,
    /// A result id to mount instead of an input.
    pub result_id: String,
    /// BuildKit v0.24's per-mount content-cache setting (0 default, 1 on, 2 off).
    pub content_cache: i32,
}

impl Mount {
    /// The root filesystem of a Dockerfile `RUN`: input `input` at `/`, writable, output 0.
    pub fn rootfs(input: i64) -> Mount {
        Mount {
            input,
            selector: String::new(),
            dest: "/".to_owned(),
            output: 0,
            readonly: false,
            mount_type: MountType::Bind,
            tmpfs_opt: None,
            cache_opt: None,
            secret_opt: None,
            ssh_opt: None,
            result_id: String::new(),
            content_cache: 0,
        }
    }
}

/// Kind of mount; the numbers are BuildKit's enum values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum MountType {
    /// A bind mount of an input.
    #[default]
    Bind = 0,
    /// A secret file.
    Secret = 1,
    /// An SSH agent socket.
    Ssh = 2,
    /// A persistent cache directory.
    Cache = 3,
    /// A tmpfs.
    Tmpfs = 4,
}

/// tmpfs options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TmpfsOpt {
    /// Size in bytes (0: default).
    pub size: i64,
}

/// Cache-mount options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheOpt {
    /// Cache id (the Dockerfile frontend defaults it to `/<target>` with no namespace).
    pub id: String,
    /// Sharing mode.
    pub sharing: CacheSharing,
}

/// Cache sharing mode; the numbers are BuildKit's enum values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum CacheSharing {
    /// Shared between concurrent builds.
    #[default]
    Shared = 0,
    /// Each concurrent build gets its own copy.
    Private = 1,
    /// Concurrent builds wait for each other.
    Locked = 2,
}

/// Secret-mount options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretOpt {
    /// Secret id.
    pub id: String,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// File mode.
    pub mode: u32,
    /// Whether a missing secret is fine.
    pub optional: bool,
}

/// SSH-agent mount options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshOpt {
    /// SSH id.
    pub id: String,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Socket mode.
    pub mode: u32,
    /// Whether a missing agent is fine.
    pub optional: bool,
}
