//! Advisory file locks (`flock`), so several inlay processes can share one store.

use std::fs::{File, OpenOptions};
use std::path::Path;

use rustix::fs::FlockOperation;

use super::StoreError;

/// A held lock; released when dropped (closing the file releases the `flock`).
#[derive(Debug)]
pub(crate) struct LockGuard {
    _file: File,
}

/// Takes a shared (`exclusive = false`) or exclusive lock on `path`, waiting for it.
pub(crate) fn lock(path: &Path, exclusive: bool) -> Result<LockGuard, StoreError> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| StoreError::io(path, e))?;
    let op = if exclusive {
        FlockOperation::LockExclusive
    } else {
        FlockOperation::LockShared
    };
    loop {
        match rustix::fs::flock(&file, op) {
            Ok(()) => return Ok(LockGuard { _file: file }),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(StoreError::io(path, e.into())),
        }
    }
}
