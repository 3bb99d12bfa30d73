//! Why a layer could not be extracted; every variant names the archive entry at fault.

use std::io;
use std::path::PathBuf;

use inlay_core::Digest;

/// Why extracting a layer failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    /// Reading or decompressing the archive failed (truncated, corrupt, not a tar).
    #[error("reading the layer archive")]
    Read(#[source] io::Error),
    /// A filesystem operation under the target directory failed.
    #[error("extracting entry {entry:?} to {path}")]
    Write {
        /// The archive entry.
        entry: String,
        /// The host path written.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The entry name is not allowed (it climbs with `..`, holds a NUL, ...).
    #[error("entry {entry:?} is refused: its name {reason}")]
    UnsafeName {
        /// The archive entry.
        entry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Writing the entry would go through a symlink that leads outside the target directory.
    #[error("entry {entry:?} is refused: symlink {link} leads outside the target directory")]
    SymlinkEscape {
        /// The archive entry.
        entry: String,
        /// The symlink, relative to the target directory.
        link: PathBuf,
    },
    /// A hard link whose target is outside the target directory or not a file inside it.
    #[error("entry {entry:?} is refused: hard link target {target:?} {reason}")]
    BadHardLink {
        /// The archive entry.
        entry: String,
        /// The link target as the archive names it.
        target: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A path component that must be a directory is a file.
    #[error("entry {entry:?} is refused: {component} is not a directory")]
    NotADirectory {
        /// The archive entry.
        entry: String,
        /// The component, relative to the target directory.
        component: PathBuf,
    },
    /// Symlinks in the entry's path form a loop.
    #[error("entry {entry:?} is refused: too many levels of symlinks")]
    SymlinkLoop {
        /// The archive entry.
        entry: String,
    },
    /// The archive names the same path twice and changes it between directory and non-directory,
    /// a trick to swap a directory for a symlink after its checks passed.
    #[error("entry {entry:?} is refused: an earlier entry of this layer made it a {earlier}")]
    DuplicateEntry {
        /// The archive entry.
        entry: String,
        /// What the earlier entry made (`directory` or `non-directory`).
        earlier: &'static str,
    },
    /// The uncompressed archive, or the file contents it expands to, is larger than the limit (a
    /// decompression bomb, or a limit too small for this layer).
    #[error("the uncompressed layer exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// The archive has more entries than the limit (a flood of tiny entries is a bomb too).
    #[error("the layer has more than the limit of {limit} entries")]
    TooManyEntries {
        /// The limit.
        limit: u64,
    },
    /// The archive's uncompressed digest differs from the expected diffID.
    #[error("layer diffID mismatch: expected {expected}, extracted {actual}")]
    DiffIdMismatch {
        /// The diffID the caller expected.
        expected: Digest,
        /// The digest of what was read.
        actual: Digest,
    },
    /// The blob is compressed with something this build cannot read.
    #[error("the layer is compressed with {0}, which this build cannot read")]
    UnsupportedCompression(&'static str),
}
