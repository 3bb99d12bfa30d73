//! Running an exec vertex: a writable snapshot of the rootfs input, the extra mounts, the OCI
//! runtime, and the upperdir as the new layer.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use inlay_core::op::{CacheSharing, ExecOp, MountType, NetMode, VertexId};
use rustix::fs::FlockOperation;

use super::{Filesystem, SolveContext, SolveError};
use crate::fileop::path::root_path_nofollow;
use crate::progress::{LogStream, ProgressEvent};
use crate::runtime::{BindMount, Network, RunSpec, Stream};
use crate::snapshot::{self, ActiveSnapshot};

/// Default mode of a secret file (BuildKit's `SecretOpt` default 0400).
const SECRET_MODE: u32 = 0o400;

pub(super) fn run_exec(
    ctx: &SolveContext<'_, '_>,
    v: VertexId,
    exec: &ExecOp,
    inputs: &[Filesystem],
) -> Result<(Vec<(u32, Filesystem)>, u64), SolveError> {
    let root_mount =
        exec.mounts
            .iter()
            .find(|m| m.dest == "/")
            .ok_or_else(|| SolveError::Unsupported {
                what: "an exec without a root mount".to_owned(),
            })?;
    if exec
        .mounts
        .iter()
        .any(|m| m.dest != "/" && m.output >= 0 && m.mount_type == MountType::Bind)
    {
        return Err(SolveError::Unsupported {
            what: "outputs of exec mounts other than the root".to_owned(),
        });
    }
    let base = input_layers(inputs, root_mount.input)?;
    let lowers = ctx.materialize(v, &base)?;
    let work = ctx.store.scratch_dir()?;
    let root_work = work.path().join("root");
    std::fs::create_dir(&root_work).map_err(|e| io(&root_work, e))?;
    let active = snapshot::prepare(&lowers, &root_work, ctx.options.snapshot_mode)?;

    // Views of other inputs stay mounted until the command is done.
    let mut held = Held::default();
    let mut mounts = Vec::new();
    let mut stubs = Vec::new();
    for (n, m) in exec.mounts.iter().enumerate() {
        if m.dest == "/" {
            continue;
        }
        let Some(source) = mount_source(ctx, v, m, n, inputs, work.path(), &mut held)? else {
            continue;
        };
        // A mount point the rootfs lacks is created by the runtime; remember it so that the
        // stub does not end up in the layer (BuildKit removes mount stubs the same way).
        let inside = root_path_nofollow(active.rootfs(), &m.dest).map_err(|e| io(&m.dest, e))?;
        if std::fs::symlink_metadata(&inside).is_err() {
            stubs.push(first_missing(active.rootfs(), &inside));
        }
        mounts.push(BindMount {
            source,
            destination: m.dest.clone(),
            read_only: m.readonly || m.mount_type == MountType::Secret,
        });
    }

    let mut spec = run_spec(ctx, exec, active.rootfs())?;
    spec.mounts = mounts;
    let bundle = work.path().join("bundle");
    let mut observer = |line: &crate::runtime::OutputLine| {
        ctx.emit(ProgressEvent::Log {
            vertex: v,
            stream: match line.stream {
                Stream::Stdout => LogStream::Stdout,
                Stream::Stderr => LogStream::Stderr,
            },
            line: line.text.clone(),
        });
    };
    ctx.runtime_runs.fetch_add(1, Ordering::Relaxed);
    let run = ctx.clock.time(super::timings::Phase::Run, || {
        ctx.options
            .runtime
            .run(active.rootfs(), &spec, &bundle, &mut observer)
    });
    drop(held);
    for stub in stubs.iter().rev() {
        remove_stub(stub);
    }
    run?;
    let changes = active.finish()?;
    let layer = ctx.commit_layer(changes.layer_source())?;
    let bytes = layer.size;
    let mut layers = base;
    layers.push(layer);
    let output = u32::try_from(root_mount.output).unwrap_or(0);
    Ok((vec![(output, Filesystem::Layers(layers))], bytes))
}

/// The runtime's spec of an exec (its mounts aside); creates a missing working directory.
fn run_spec(
    ctx: &SolveContext<'_, '_>,
    exec: &ExecOp,
    rootfs: &Path,
) -> Result<RunSpec, SolveError> {
    let meta = &exec.meta;
    let mut spec = RunSpec::new(meta.args.clone());
    spec.env.clone_from(&meta.env);
    // `RUN --mount=type=secret,env=NAME`: the value goes into the process environment only.
    for secret in &exec.secret_env {
        match ctx.request.secrets.get(&secret.id) {
            Some(bytes) => spec.env.push(format!(
                "{}={}",
                secret.name,
                String::from_utf8_lossy(bytes)
            )),
            None if secret.optional => {}
            None => {
                return Err(SolveError::MissingSecret {
                    id: secret.id.clone(),
                });
            }
        }
    }
    spec.cwd = if meta.cwd.is_empty() {
        "/".to_owned()
    } else {
        meta.cwd.clone()
    };
    spec.user.clone_from(&meta.user);
    // BuildKit's executor creates a missing working directory (0755, root-owned) before the
    // run; it then belongs to the step's layer.
    let cwd = crate::fileop::path::root_path(rootfs, &spec.cwd).map_err(|e| io(&spec.cwd, e))?;
    crate::fileop::mkdir_all(&cwd, 0o755, None, None)?;
    if !meta.hostname.is_empty() {
        spec.hostname.clone_from(&meta.hostname);
    }
    spec.extra_hosts = meta
        .extra_hosts
        .iter()
        .map(|h| (h.host.clone(), h.ip.clone()))
        .collect();
    // BuildKit's default network without CNI is the host's; `none` isolates.
    spec.network = match exec.network {
        NetMode::None => Network::None,
        NetMode::Host | NetMode::Unset => Network::Host,
    };
    Ok(spec)
}

/// The host path to bind at mount `m` (number `n`), or `None` for a mount left out (an
/// optional secret that was not given).
fn mount_source(
    ctx: &SolveContext<'_, '_>,
    v: VertexId,
    m: &inlay_core::op::Mount,
    n: usize,
    inputs: &[Filesystem],
    work: &Path,
    held: &mut Held,
) -> Result<Option<PathBuf>, SolveError> {
    let source: PathBuf = match m.mount_type {
        MountType::Bind => {
            let fs = usize::try_from(m.input).ok().and_then(|i| inputs.get(i));
            let root = match fs {
                // A staged context may hard-link the user's files: a writable bind gets an
                // overlay of it, whose writes are discarded as BuildKit discards them.
                Some(Filesystem::Local(dir)) if !m.readonly => {
                    let view_dir = work.join(format!("mount-{n}"));
                    std::fs::create_dir(&view_dir).map_err(|e| io(&view_dir, e))?;
                    let view = snapshot::prepare(
                        &[dir.path().to_path_buf()],
                        &view_dir,
                        ctx.options.snapshot_mode,
                    )?;
                    let root = view.rootfs().to_path_buf();
                    held.views.push(view);
                    root
                }
                Some(Filesystem::Local(dir)) => dir.path().to_path_buf(),
                Some(Filesystem::Layers(layers)) => {
                    let lowers = ctx.materialize(v, layers)?;
                    let dir = work.join(format!("mount-{n}"));
                    std::fs::create_dir(&dir).map_err(|e| io(&dir, e))?;
                    let view = snapshot::prepare(&lowers, &dir, ctx.options.snapshot_mode)?;
                    let root = view.rootfs().to_path_buf();
                    held.views.push(view);
                    root
                }
                None => {
                    let dir = work.join(format!("empty-{n}"));
                    std::fs::create_dir(&dir).map_err(|e| io(&dir, e))?;
                    dir
                }
            };
            crate::fileop::path::root_path(&root, &m.selector).map_err(|e| io(&root, e))?
        }
        MountType::Cache => {
            let opt = m.cache_opt.clone().unwrap_or_default();
            let id = if opt.id.is_empty() {
                m.dest.clone()
            } else {
                opt.id.clone()
            };
            cache_mount(ctx, &id, opt.sharing, work, n, held)?
        }
        MountType::Tmpfs => {
            // A fresh scratch directory stands in for the tmpfs: empty at start, discarded
            // after, never part of the layer.
            let dir = work.join(format!("tmpfs-{n}"));
            std::fs::create_dir(&dir).map_err(|e| io(&dir, e))?;
            dir
        }
        MountType::Secret => {
            let opt = m.secret_opt.clone().unwrap_or_default();
            let Some(bytes) = ctx.request.secrets.get(&opt.id) else {
                if opt.optional {
                    return Ok(None);
                }
                return Err(SolveError::MissingSecret { id: opt.id });
            };
            let file = work.join(format!("secret-{n}"));
            std::fs::write(&file, bytes).map_err(|e| io(&file, e))?;
            let mode = if opt.mode == 0 { SECRET_MODE } else { opt.mode };
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode & 0o7777))
                    .map_err(|e| io(&file, e))?;
            }
            if crate::layer::fs_meta::running_as_root() {
                std::os::unix::fs::chown(&file, Some(opt.uid), Some(opt.gid))
                    .map_err(|e| io(&file, e))?;
            }
            file
        }
        MountType::Ssh => {
            if m.ssh_opt.as_ref().is_some_and(|o| o.optional) {
                return Ok(None);
            }
            return Err(SolveError::Unsupported {
                what: "ssh agent mounts".to_owned(),
            });
        }
    };
    Ok(Some(source))
}

/// What stays held while the command runs: views of other inputs, cache-mount locks.
#[derive(Default)]
struct Held {
    views: Vec<ActiveSnapshot>,
    locks: Vec<std::fs::File>,
}

/// The directory of cache mount `id` with BuildKit's sharing modes: `shared` as it is,
/// `locked` after waiting for the other users, `private` the shared directory when no one else
/// uses it, else a fresh empty one for this run only.
fn cache_mount(
    ctx: &SolveContext<'_, '_>,
    id: &str,
    sharing: CacheSharing,
    work: &Path,
    n: usize,
    held: &mut Held,
) -> Result<PathBuf, SolveError> {
    let dir = ctx.store.cache_mount_dir(id)?;
    if sharing == CacheSharing::Shared {
        return Ok(dir);
    }
    let lock_path = ctx.store.root().join("locks").join(format!(
        "cache-mount-{}.lock",
        inlay_core::Digest::sha256_of(id.as_bytes()).hex()
    ));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| io(&lock_path, e))?;
    let exclusive = if sharing == CacheSharing::Locked {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::NonBlockingLockExclusive
    };
    match rustix::fs::flock(&file, exclusive) {
        Ok(()) => {
            held.locks.push(file);
            Ok(dir)
        }
        Err(rustix::io::Errno::WOULDBLOCK) => {
            let private = work.join(format!("cache-{n}"));
            std::fs::create_dir(&private).map_err(|e| io(&private, e))?;
            Ok(private)
        }
        Err(e) => Err(io(&lock_path, e.into())),
    }
}

/// The layers of input `index` (-1: scratch).
pub(super) fn input_layers(
    inputs: &[Filesystem],
    index: i64,
) -> Result<Vec<super::LayerRef>, SolveError> {
    if index < 0 {
        return Ok(Vec::new());
    }
    let fs = usize::try_from(index)
        .ok()
        .and_then(|i| inputs.get(i))
        .ok_or_else(|| SolveError::Internal {
            reason: format!("input {index} does not exist"),
        })?;
    fs.layers()
        .map(<[super::LayerRef]>::to_vec)
        .ok_or_else(|| SolveError::Unsupported {
            what: "a local directory as a writable root".to_owned(),
        })
}

/// The topmost missing ancestor of `path` (itself included) under `root`.
fn first_missing(root: &Path, path: &Path) -> PathBuf {
    let mut missing = path.to_path_buf();
    let mut cursor = path.parent();
    while let Some(parent) = cursor {
        if parent == root || std::fs::symlink_metadata(parent).is_ok() {
            break;
        }
        missing = parent.to_path_buf();
        cursor = parent.parent();
    }
    missing
}

/// Removes a mount stub the runtime created, if it is still an empty directory or file.
fn remove_stub(path: &Path) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    let result = if meta.is_dir() {
        remove_empty_dirs(path)
    } else if meta.len() == 0 {
        std::fs::remove_file(path)
    } else {
        Ok(())
    };
    if let Err(e) = result {
        tracing::debug!(path = %path.display(), error = %e, "leaving a mount stub");
    }
}

/// Removes a stub directory tree holding only empty directories and empty files (the stubs of
/// nested mount points); anything the command wrote keeps it in place.
fn remove_empty_dirs(path: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let meta = std::fs::symlink_metadata(entry.path())?;
        if meta.is_dir() {
            remove_empty_dirs(&entry.path())?;
        } else if meta.is_file() && meta.len() == 0 {
            std::fs::remove_file(entry.path())?;
        }
    }
    std::fs::remove_dir(path)
}

fn io(path: impl AsRef<Path>, source: std::io::Error) -> SolveError {
    SolveError::File(crate::fileop::FileOpError::io(
        path.as_ref().display().to_string(),
        source,
    ))
}
