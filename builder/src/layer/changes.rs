//! What goes into a layer, in order: paths to copy from a directory tree, whiteouts for deleted
//! paths and opaque markers for directories whose lower contents are hidden.

use std::path::PathBuf;

/// One change a layer records. Names are relative to the layer root, never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// Add or replace `name` with the file, directory, link or node found at `source`.
    Add {
        /// Path inside the layer.
        name: PathBuf,
        /// Where to read it from.
        source: PathBuf,
    },
    /// `name` was deleted: written as `<dir>/.wh.<base>` (OCI image-spec "Whiteouts").
    Whiteout {
        /// The deleted path inside the layer.
        name: PathBuf,
    },
    /// Everything below the directory `dir` from lower layers is hidden: written as
    /// `<dir>/.wh..wh..opq` right after the directory's own entry, so extraction clears the
    /// directory before this layer's children arrive.
    Opaque {
        /// The directory inside the layer.
        dir: PathBuf,
    },
}
