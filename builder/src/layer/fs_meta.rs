//! Extended attributes and ownership read and written without following symlinks (safe
//! `rustix` wrappers), shared by the layer writer, the differ, extraction and snapshots.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The overlayfs xattr that marks an opaque directory (`trusted.` namespace, as root mounts it).
pub(crate) const OVERLAY_OPAQUE: &str = "trusted.overlay.opaque";

/// Whether an xattr belongs to the host rather than to the image, so layers never carry it:
/// overlayfs bookkeeping (`trusted.overlay.*`, `user.overlay.*` with `userxattr`) and `SELinux`
/// labels, which the host's policy assigns.
pub(crate) fn is_host_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.")
        || name.starts_with(b"user.overlay.")
        || name == b"security.selinux"
}

/// All xattrs of `path` itself (not a symlink's target), by name. Filesystems without xattr
/// support yield an empty map.
pub(crate) fn read_xattrs(path: &Path) -> io::Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let mut map = BTreeMap::new();
    let size = match rustix::fs::llistxattr_query(path) {
        Ok(n) => n,
        Err(e) if unsupported(e) => return Ok(map),
        Err(e) => return Err(e.into()),
    };
    if size == 0 {
        return Ok(map);
    }
    let mut list = vec![0u8; size];
    let n = rustix::fs::llistxattr(path, &mut list[..])?;
    list.truncate(n);
    for name in list.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if let Some(value) = read_xattr(path, name)? {
            map.insert(name.to_vec(), value);
        }
    }
    Ok(map)
}

/// One xattr of `path` itself; `None` when absent.
pub(crate) fn read_xattr(path: &Path, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let name = std::ffi::OsStr::from_bytes(name);
    let size = match rustix::fs::lgetxattr_query(path, name) {
        Ok(n) => n,
        Err(e) if e == rustix::io::Errno::NODATA || unsupported(e) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut value = vec![0u8; size];
    let n = rustix::fs::lgetxattr(path, name, &mut value[..])?;
    value.truncate(n);
    Ok(Some(value))
}

/// Sets one xattr on `path` itself.
pub(crate) fn write_xattr(path: &Path, name: &[u8], value: &[u8]) -> io::Result<()> {
    rustix::fs::lsetxattr(
        path,
        std::ffi::OsStr::from_bytes(name),
        value,
        rustix::fs::XattrFlags::empty(),
    )
    .map_err(io::Error::from)
}

fn unsupported(e: rustix::io::Errno) -> bool {
    e == rustix::io::Errno::NOTSUP || e == rustix::io::Errno::OPNOTSUPP
}

/// Whether this process runs as root, so ownership, device nodes and `trusted.*` xattrs can be
/// written.
pub(crate) fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Sets access and modification time of `path` itself (not a symlink's target).
pub(crate) fn set_times(path: &Path, secs: i64, nanos: u32) -> io::Result<()> {
    let ts = rustix::fs::Timespec {
        tv_sec: secs,
        tv_nsec: i64::from(nanos),
    };
    let times = rustix::fs::Timestamps {
        last_access: ts,
        last_modification: ts,
    };
    rustix::fs::utimensat(
        rustix::fs::CWD,
        path,
        &times,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(io::Error::from)
}
