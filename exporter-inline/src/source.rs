//! Where the bytes of a blob come from, and getting them into a local file when they must move.
//!
//! A build's layers live in three places: files of the builder's local store, bytes in memory
//! (configs, small test blobs), and, for cache hits that were imported lazily and never
//! downloaded, a repository of some registry (architecture: "a cache hit yields descriptors, not
//! files"). The builder says which through [`BlobSource`]; the exporter decides how to move them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use inlay_core::{Descriptor, Digest, Reference};
use inlay_registry::Client;
use tokio::io::AsyncReadExt as _;

use crate::error::ExportError;

/// Where one blob is.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobLocation {
    /// A file holding exactly the blob (the local store).
    File(PathBuf),
    /// The blob in memory.
    Bytes(Bytes),
    /// The blob lives in this repository (registry and repository of the reference; its tag
    /// or digest is ignored).
    Registry(Reference),
}

/// Tells the exporter where each blob is. The builder implements it over its local store and
/// the imported caches.
pub trait BlobSource: Send + Sync {
    /// Where the blob `digest` is, or `None` when it is nowhere.
    fn locate(&self, digest: &Digest) -> Option<BlobLocation>;
}

/// A [`BlobSource`] backed by a map, for callers that know every location up front (and tests).
#[derive(Debug, Clone, Default)]
pub struct BlobMap {
    locations: HashMap<Digest, BlobLocation>,
}

impl BlobMap {
    /// An empty map.
    pub fn new() -> BlobMap {
        BlobMap::default()
    }

    /// Records where `digest` is, replacing an earlier location.
    pub fn insert(&mut self, digest: Digest, location: BlobLocation) -> &mut BlobMap {
        self.locations.insert(digest, location);
        self
    }

    /// Records a lazily imported layer by its containerd distribution-source annotation
    /// (`containerd.io/distribution.source.<registry>` = comma-separated repositories, which the
    /// importer sets on every layer it imports): the first repository that parses as a
    /// reference. Returns whether one did; a blob already located (say, in the local store) is
    /// left where it is.
    pub fn insert_distribution_source(&mut self, descriptor: &Descriptor) -> bool {
        if self.locations.contains_key(&descriptor.digest) {
            return true;
        }
        let found = descriptor
            .annotations
            .iter()
            .find_map(|(key, repositories)| {
                let registry = key.strip_prefix(ANNOTATION_DISTRIBUTION_SOURCE_PREFIX)?;
                repositories
                    .split(',')
                    .filter(|r| !r.is_empty())
                    .find_map(|r| Reference::parse(&format!("{registry}/{r}")).ok())
            });
        match found {
            Some(reference) => {
                self.insert(descriptor.digest.clone(), BlobLocation::Registry(reference));
                true
            }
            None => false,
        }
    }
}

/// containerd's annotation prefix naming the repositories of a registry a blob can be fetched
/// or mounted from.
pub const ANNOTATION_DISTRIBUTION_SOURCE_PREFIX: &str = "containerd.io/distribution.source.";

impl BlobSource for BlobMap {
    fn locate(&self, digest: &Digest) -> Option<BlobLocation> {
        self.locations.get(digest).cloned()
    }
}

impl<S: BlobSource + ?Sized> BlobSource for &S {
    fn locate(&self, digest: &Digest) -> Option<BlobLocation> {
        (**self).locate(digest)
    }
}

/// A blob fetched from a registry into a temporary file, verified against its digest and size.
/// The file is removed when this is dropped.
#[derive(Debug)]
pub(crate) struct Spooled {
    file: tempfile::NamedTempFile,
}

impl Spooled {
    /// Downloads `descriptor` from `from` into a new file of `dir`. Nothing is kept when the
    /// bytes do not verify: a tampered source never reaches the target.
    pub(crate) async fn fetch(
        client: &Client,
        from: &Reference,
        descriptor: &Descriptor,
        dir: &Path,
    ) -> Result<Spooled, ExportError> {
        let file = tempfile::NamedTempFile::new_in(dir).map_err(ExportError::io(dir))?;
        let handle = file.reopen().map_err(ExportError::io(file.path()))?;
        let mut sink = tokio::fs::File::from_std(handle);
        client
            .get_blob_to(from, descriptor, &mut sink)
            .await
            .map_err(ExportError::registry(
                "fetch blob",
                &format!("{} from {}", descriptor.digest, from.name()),
            ))?;
        tracing::debug!(digest = %descriptor.digest, from = %from.name(), "spooled blob");
        Ok(Spooled { file })
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        self.file.path()
    }
}

/// Checks that the file at `path` hashes to `expected` (local store files are trusted to exist,
/// not to be intact: an archive must not carry a blob under the wrong name).
pub(crate) async fn verify_file(path: &Path, expected: &Digest) -> Result<(), ExportError> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(ExportError::io(path))?;
    let mut hasher = expected.hasher();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf).await.map_err(ExportError::io(path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let actual = hasher.finish();
    if &actual == expected {
        Ok(())
    } else {
        Err(ExportError::DigestMismatch {
            path: path.to_owned(),
            expected: expected.clone(),
            actual,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distribution_sources_locate_lazy_layers() {
        let mut d = Descriptor::of_bytes(inlay_core::media_types::OCI_LAYER_GZIP, b"l");
        let mut map = BlobMap::new();
        assert!(!map.insert_distribution_source(&d));
        d.annotations.insert(
            format!("{ANNOTATION_DISTRIBUTION_SOURCE_PREFIX}localhost:5000"),
            "team/cache,other".to_owned(),
        );
        assert!(map.insert_distribution_source(&d));
        let Some(BlobLocation::Registry(r)) = map.locate(&d.digest) else {
            panic!("located in a registry")
        };
        assert_eq!(r.registry(), "localhost:5000");
        assert_eq!(r.repository(), "team/cache");
        // A local copy wins over the registry.
        let mut local = BlobMap::new();
        local.insert(d.digest.clone(), BlobLocation::File("/store/blob".into()));
        assert!(local.insert_distribution_source(&d));
        assert_eq!(
            local.locate(&d.digest),
            Some(BlobLocation::File("/store/blob".into()))
        );
    }
}
