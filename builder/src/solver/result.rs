//! What a step produces: a filesystem as a chain of layers (or, for the local context, a staged
//! directory), and turning such a result into directories on demand.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use inlay_core::{Descriptor, Digest};
use serde::{Deserialize, Serialize};

/// One layer of a result: enough to extract it (from the store, pulling it first when needed)
/// and to list it in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LayerRef {
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Digest of the blob.
    pub digest: Digest,
    /// Size of the blob in bytes.
    pub size: u64,
    /// Media type of the blob.
    pub media_type: String,
    /// The image reference the blob can be pulled from when the store does not have it yet
    /// (layers of base images are pulled lazily).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

impl LayerRef {
    /// The blob's descriptor (for a manifest), with its media type.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.media_type.clone(),
            self.digest.clone(),
            i64::try_from(self.size).unwrap_or(i64::MAX),
        )
    }
}

/// A local directory staged for the build (the filtered build context), removed when the last
/// result that refers to it is dropped.
#[derive(Debug)]
pub struct StagedDir {
    dir: tempfile::TempDir,
}

impl StagedDir {
    /// Takes ownership of a staged directory.
    pub fn new(dir: tempfile::TempDir) -> StagedDir {
        StagedDir { dir }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// A step's filesystem.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Filesystem {
    /// Layers, bottom first (empty: scratch).
    Layers(Vec<LayerRef>),
    /// A staged local directory (`local://` sources); never itself part of an image.
    Local(Arc<StagedDir>),
}

impl Filesystem {
    /// The empty filesystem.
    pub fn scratch() -> Filesystem {
        Filesystem::Layers(Vec::new())
    }

    /// The layers, or `None` for a local directory.
    pub fn layers(&self) -> Option<&[LayerRef]> {
        match self {
            Filesystem::Layers(l) => Some(l),
            Filesystem::Local(_) => None,
        }
    }

    /// The staged directory of a local result.
    pub fn local_dir(&self) -> Option<PathBuf> {
        match self {
            Filesystem::Local(d) => Some(d.path().to_path_buf()),
            Filesystem::Layers(_) => None,
        }
    }
}
