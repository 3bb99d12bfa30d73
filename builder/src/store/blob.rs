//! Writing blobs atomically: a temporary file inside the store, hashed while written, fsynced,
//! checked against the expected digest and only then renamed into `blobs/sha256/<hex>`.

use std::fs::File;
use std::io::{self, Write};
use std::path::PathBuf;

use inlay_core::{Algorithm, Digest, Hasher};
use tempfile::NamedTempFile;

use super::{Store, StoreError, lock};

/// A blob being written. Dropping it without [`BlobWriter::commit`] leaves nothing behind.
#[derive(Debug)]
pub struct BlobWriter {
    store: Store,
    file: NamedTempFile,
    hasher: Hasher,
    size: u64,
}

impl BlobWriter {
    pub(crate) fn new(store: &Store) -> Result<BlobWriter, StoreError> {
        let tmp = store.tmp_dir();
        let file = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(tmp)
            .map_err(|e| StoreError::io(tmp, e))?;
        Ok(BlobWriter {
            store: store.clone(),
            file,
            hasher: Hasher::new(Algorithm::Sha256),
            size: 0,
        })
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Makes the blob durable and visible under its digest. With `expected`, a different digest
    /// is refused and nothing is stored. Returns the digest and size.
    pub fn commit(mut self, expected: Option<&Digest>) -> Result<(Digest, u64), StoreError> {
        let tmp_path = self.file.path().to_path_buf();
        self.file
            .as_file_mut()
            .flush()
            .and_then(|()| self.file.as_file().sync_all())
            .map_err(|e| StoreError::io(&tmp_path, e))?;
        let digest = self.hasher.finish();
        if let Some(expected) = expected {
            if *expected != digest {
                return Err(StoreError::DigestMismatch {
                    expected: expected.clone(),
                    actual: digest,
                });
            }
        }
        let _shared = lock::lock(&self.store.store_lock_path(), false)?;
        let dest = self.store.blob_path(&digest)?;
        if dest.exists() {
            // Same digest, same bytes: another writer got there first.
            return Ok((digest, self.size));
        }
        self.file
            .persist(&dest)
            .map_err(|e| StoreError::io(&dest, e.error))?;
        sync_dir(dest.parent().map(PathBuf::from).unwrap_or_default())?;
        Ok((digest, self.size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Makes a rename in `dir` durable.
pub(crate) fn sync_dir(dir: PathBuf) -> Result<(), StoreError> {
    File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))
}
