//! Why a content hash could not be computed.

/// Errors of tree building and checksum queries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContentHashError {
    /// A path contains a NUL byte, which cannot be represented in a tree key.
    #[error("path {path:?} contains a NUL byte")]
    InvalidPath {
        /// The rejected path.
        path: String,
    },
    /// Two entries were supplied for one cleaned path.
    #[error("path {path:?} is supplied twice")]
    DuplicatePath {
        /// The cleaned path.
        path: String,
    },
    /// The root entry (`/`) is not a directory.
    #[error("the root entry must be a directory")]
    RootNotDirectory,
    /// A snapshot tree hashes its root header, so it needs the root entry.
    #[error("a snapshot tree needs an entry for its root directory")]
    MissingRoot,
    /// A non-empty regular file came with neither bytes nor a digest.
    #[error("regular file {path:?} of {size} bytes has neither content nor digest")]
    MissingContent {
        /// The cleaned path.
        path: String,
        /// Its size from the stat.
        size: u64,
    },
    /// A precomputed digest was made under header rules other than the tree's.
    #[error("digest of {path:?} was computed under other header rules than the tree's")]
    RulesMismatch {
        /// The cleaned path.
        path: String,
    },
    /// A hard link names a target that is not a non-directory entry of the tree.
    #[error("hard link {path:?} points to {target:?}, which is not a file of this tree")]
    HardLinkTarget {
        /// The cleaned path of the link.
        path: String,
        /// The target as given.
        target: String,
    },
    /// The path does not exist in the tree (after following symlinks).
    #[error("{path:?} not found")]
    NotFound {
        /// The path as queried.
        path: String,
    },
    /// More than 255 symlinks were followed.
    #[error("too many levels of symbolic links resolving {path:?}")]
    TooManyLinks {
        /// The path as queried.
        path: String,
    },
    /// The wildcard pattern is malformed (Go's `path.ErrBadPattern`).
    #[error("malformed wildcard pattern {pattern:?}")]
    BadPattern {
        /// The cleaned pattern.
        pattern: String,
    },
}
