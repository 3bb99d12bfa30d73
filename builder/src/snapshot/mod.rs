//! Writable root filesystems for build steps, stacked from extracted snapshot directories.
//!
//! With overlayfs (root, kernel support), a step's rootfs is an overlay mount of the lower
//! snapshot directories with a fresh upperdir; the upperdir then *is* the step's change set.
//! Without it (mount refused, unusual paths, or [`SnapshotMode::Copy`] chosen), the lowers are
//! merged by copying into a `lower` tree and copied once more into the writable rootfs, and the
//! walk-and-compare differ finds the changes. Either way [`ActiveSnapshot::finish`] unmounts and
//! returns the [`LayerSource`] to write the step's layer from. Dropping an active snapshot
//! unmounts it too, so an error on the way never leaves a mount behind.

mod copy;

use std::io;
use std::path::{Path, PathBuf};

use rustix::mount::{MountFlags, UnmountFlags};

use inlay_core::Digest;

use crate::extract::{self, ExtractOptions, WhiteoutMode};
use crate::layer::LayerSource;
use crate::store::{Store, StoreError};

/// The longest mount data the kernel takes (one page, NUL included).
const MAX_MOUNT_DATA: usize = 4095;

/// Whether overlayfs takes `volatile` here: 0 not yet known, 1 yes, 2 no (before Linux 5.10).
static VOLATILE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// How to make the writable rootfs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnapshotMode {
    /// overlayfs when it mounts, copying otherwise.
    #[default]
    Auto,
    /// overlayfs or an error.
    Overlay,
    /// Always copy.
    Copy,
}

/// Why a snapshot could not be prepared or finished.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// A filesystem operation failed.
    #[error("snapshot io at {path}")]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Mounting overlayfs failed and copying was not allowed.
    #[error("mounting overlayfs at {target}")]
    Mount {
        /// The mount point.
        target: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Unmounting failed; the rootfs may still be mounted.
    #[error("unmounting {target}")]
    Unmount {
        /// The mount point.
        target: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A prepared, writable rootfs.
#[derive(Debug)]
pub struct ActiveSnapshot {
    rootfs: PathBuf,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Overlay {
        upper: PathBuf,
        lowers: Vec<PathBuf>,
        mounted: bool,
    },
    Copy {
        lower: PathBuf,
    },
}

/// The changes a finished snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnapshotChanges {
    /// An overlayfs upperdir and the lowerdirs it was mounted over.
    Overlay {
        /// The upperdir.
        upper: PathBuf,
        /// The lowerdirs, bottom first.
        lowers: Vec<PathBuf>,
    },
    /// A lower tree and the upper tree the step changed.
    Copy {
        /// The merged lowers.
        lower: PathBuf,
        /// The rootfs after the step.
        upper: PathBuf,
    },
}

impl SnapshotChanges {
    /// The source to write the step's layer from.
    pub fn layer_source(&self) -> LayerSource<'_> {
        match self {
            SnapshotChanges::Overlay { upper, lowers } => {
                LayerSource::OverlayDiff { upper, lowers }
            }
            SnapshotChanges::Copy { lower, upper } => LayerSource::Diff { lower, upper },
        }
    }
}

/// The chainIDs of a stack of layers given their diffIDs, bottom first (OCI image-spec, "Layer
/// ChainID"): the first is its diffID, each next is `sha256(<previous chainID> + " " + <diffID>)`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match out.last() {
            None => diff_id.clone(),
            Some(parent) => Digest::sha256_of(format!("{parent} {diff_id}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// The store's snapshot of one layer in overlay-lowerdir form, extracted from the stored blob
/// `blob` (checked against `diff_id`) the first time it is asked for. Concurrent callers share one
/// extraction.
pub fn layer_snapshot(
    store: &Store,
    chain_id: &Digest,
    blob: &Digest,
    diff_id: &Digest,
) -> Result<PathBuf, StoreError> {
    store.ensure_snapshot(
        chain_id,
        |fs| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            let file = store.open_blob(blob)?;
            let options = ExtractOptions {
                whiteouts: WhiteoutMode::Overlay,
                expected_diff_id: Some(diff_id.clone()),
                ..ExtractOptions::default()
            };
            extract::extract(std::io::BufReader::new(file), fs, &options)?;
            Ok(())
        },
    )
}

/// Prepares a rootfs in the empty scratch directory `work` (on the same filesystem as the
/// store) from `lowers`, bottom layer first.
pub fn prepare(
    lowers: &[PathBuf],
    work: &Path,
    mode: SnapshotMode,
) -> Result<ActiveSnapshot, SnapshotError> {
    if mode != SnapshotMode::Copy {
        match mount_overlay(lowers, work) {
            Ok(snapshot) => return Ok(snapshot),
            Err(e) if mode == SnapshotMode::Overlay => return Err(e),
            Err(e) => {
                tracing::info!(error = %e, "overlayfs unavailable, copying the rootfs instead");
                // Leave the scratch directory as it was for the copy.
                for dir in ["upper", "work", "rootfs", "empty"] {
                    let path = work.join(dir);
                    copy::remove_any(&path).map_err(io_err(&path))?;
                }
            }
        }
    }
    let lower = work.join("lower");
    let rootfs = work.join("rootfs");
    for dir in [&lower, &rootfs] {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let mut merger = copy::TreeCopier::new(true);
    for layer in lowers {
        merger.copy_into(layer, &lower).map_err(io_err(layer))?;
    }
    copy::TreeCopier::new(false)
        .copy_into(&lower, &rootfs)
        .map_err(io_err(&rootfs))?;
    Ok(ActiveSnapshot {
        rootfs,
        kind: Kind::Copy { lower },
    })
}

fn mount_overlay(lowers: &[PathBuf], work: &Path) -> Result<ActiveSnapshot, SnapshotError> {
    let rootfs = work.join("rootfs");
    let upper = work.join("upper");
    let workdir = work.join("work");
    let empty = work.join("empty");
    for dir in [&rootfs, &upper, &workdir, &empty] {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    }
    let unusable = |reason: &str| SnapshotError::Mount {
        target: rootfs.clone(),
        source: io::Error::new(io::ErrorKind::InvalidInput, reason.to_owned()),
    };
    // overlayfs lists the top lowerdir first; it needs at least one.
    let mut stack: Vec<&Path> = lowers.iter().rev().map(PathBuf::as_path).collect();
    if stack.is_empty() {
        stack.push(&empty);
    }
    let mut parts = Vec::new();
    for path in stack
        .iter()
        .copied()
        .chain([upper.as_path(), workdir.as_path()])
    {
        let text = path
            .to_str()
            .ok_or_else(|| unusable("a path is not UTF-8"))?;
        if text.contains([',', ':', '\\']) {
            return Err(unusable(
                "a path holds a character overlayfs options cannot carry",
            ));
        }
        parts.push(text.to_owned());
    }
    let (upper_text, work_text) = (&parts[parts.len() - 2], &parts[parts.len() - 1]);
    // Without redirect_dir and metacopy, a renamed or chmod-ed lower file is copied up whole,
    // so the upperdir alone holds the step's changes (the differ reads nothing else).
    let data = format!(
        "lowerdir={},upperdir={upper_text},workdir={work_text},redirect_dir=off,metacopy=off",
        parts[..parts.len() - 2].join(":")
    );
    // `volatile` skips the sync of the whole upper filesystem that every unmount otherwise
    // does (a step's files are written into a layer blob, which is synced, or adopted as a
    // snapshot); a volatile upper is never mounted again, which is also inlay's rule.
    let volatile = format!("{data},volatile");
    let with_volatile = VOLATILE.load(std::sync::atomic::Ordering::Relaxed) != 2;
    let first = if with_volatile { &volatile } else { &data };
    if first.len() > MAX_MOUNT_DATA {
        return Err(unusable("too many lower layers for one mount call"));
    }
    let mount = |options: &str| {
        let options =
            std::ffi::CString::new(options).map_err(|_| unusable("a path holds a NUL byte"))?;
        rustix::mount::mount(
            "overlay",
            &rootfs,
            "overlay",
            MountFlags::empty(),
            options.as_c_str(),
        )
        .map_err(|e| SnapshotError::Mount {
            target: rootfs.clone(),
            source: e.into(),
        })
    };
    match mount(first) {
        Ok(()) if with_volatile => VOLATILE.store(1, std::sync::atomic::Ordering::Relaxed),
        Ok(()) => {}
        Err(_) if with_volatile && VOLATILE.load(std::sync::atomic::Ordering::Relaxed) == 0 => {
            mount(&data)?;
            VOLATILE.store(2, std::sync::atomic::Ordering::Relaxed);
        }
        Err(e) => return Err(e),
    }
    Ok(ActiveSnapshot {
        rootfs,
        kind: Kind::Overlay {
            upper,
            lowers: lowers.to_vec(),
            mounted: true,
        },
    })
}

impl ActiveSnapshot {
    /// The writable rootfs to run the step in.
    pub fn rootfs(&self) -> &Path {
        &self.rootfs
    }

    /// Whether the rootfs is an overlay mount (rather than a copy).
    pub fn is_overlay(&self) -> bool {
        matches!(self.kind, Kind::Overlay { .. })
    }

    /// Unmounts (for overlay) and returns the step's changes.
    pub fn finish(mut self) -> Result<SnapshotChanges, SnapshotError> {
        match &mut self.kind {
            Kind::Overlay {
                upper,
                lowers,
                mounted,
            } => {
                if *mounted {
                    unmount(&self.rootfs)?;
                    *mounted = false;
                }
                Ok(SnapshotChanges::Overlay {
                    upper: upper.clone(),
                    lowers: lowers.clone(),
                })
            }
            Kind::Copy { lower } => Ok(SnapshotChanges::Copy {
                lower: lower.clone(),
                upper: self.rootfs.clone(),
            }),
        }
    }
}

impl Drop for ActiveSnapshot {
    fn drop(&mut self) {
        if let Kind::Overlay { mounted: true, .. } = self.kind {
            if let Err(e) = unmount(&self.rootfs) {
                tracing::warn!(error = %e, "leaving an overlay mount behind");
            }
        }
    }
}

/// Unmounts `target`, waiting briefly for a busy mount and detaching it as a last resort.
fn unmount(target: &Path) -> Result<(), SnapshotError> {
    for _ in 0..10 {
        match rustix::mount::unmount(target, UnmountFlags::empty()) {
            Ok(()) => return Ok(()),
            Err(rustix::io::Errno::BUSY) => {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => {
                return Err(SnapshotError::Unmount {
                    target: target.to_path_buf(),
                    source: e.into(),
                });
            }
        }
    }
    rustix::mount::unmount(target, UnmountFlags::DETACH).map_err(|e| SnapshotError::Unmount {
        target: target.to_path_buf(),
        source: e.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        assert_eq!(ids[1], Digest::sha256_of(format!("{a} {b}").as_bytes()));
        assert!(chain_ids(&[]).is_empty());
    }
}
