//! BuildKit's content hash of `COPY` sources (`cache/contenthash`), bit-exact, over entries the
//! caller supplies (spec sections 5.3, 5.4 and 6).
//!
//! The caller walks a directory (or a snapshot, or a tar stream), turns each entry into an
//! [`Entry`] (stat plus the bytes, or a digest streamed through
//! [`HeaderRules::entry_hasher`]) and feeds them, in any order, to a [`ContentTreeBuilder`]. The
//! finished [`ContentTree`] answers [`ContentTree::checksum`] and
//! [`ContentTree::checksum_wildcard`] queries, and [`content_key`] turns an op input's selectors
//! into the content key that BuildKit stores as a root record (`sha256("<key>@-1")`).
//!
//! Nothing here reads files: that is the builder's job.
//!
//! ```
//! use inlay_core::contenthash::{
//!     content_key, ContentTreeBuilder, Entry, EntryKind, Profile, Selector, SourceKind, Stat,
//!     TreeOptions,
//! };
//!
//! let options = TreeOptions::new(Profile::BuildkitV08, SourceKind::LocalContext);
//! let mut tree = ContentTreeBuilder::new(options);
//! let stat = Stat::new(EntryKind::File { size: 10 }, 0o644);
//! tree.insert(Entry::with_content("data.txt", stat, b"some data\n".to_vec())).unwrap();
//! let tree = tree.build().unwrap();
//! let key = content_key(&tree, &[Selector::copy_source("/data.txt", true, true)]).unwrap();
//! assert_eq!(
//!     key.as_str(),
//!     "sha256:edf9a02a27697d920699d4515e83795c9a02dfc7c9e016abe82ca93c43606355"
//! );
//! ```

mod content_key;
mod entry;
mod error;
mod path;
mod pattern;
mod tree;
mod wildcard;

pub use content_key::{
    Selector, content_key, content_selectors, exec_content_selectors, exec_selector_digest,
    file_op_selector_digest,
};
pub use entry::{EntryDigest, EntryHasher, EntryKind, HeaderRules, Stat};
pub use error::ContentHashError;
pub use path::contains_wildcards;
pub use tree::{ContentTree, ContentTreeBuilder, Entry, EntryData, TreeOptions};

/// Whether `name` matches the shell pattern `pattern` exactly as Go's `path.Match` decides
/// (`*` and `?` never match `/`; a malformed pattern is an error once Go would notice it).
pub fn path_match(pattern: &str, name: &str) -> Result<bool, ContentHashError> {
    pattern::path_match(pattern, name).map_err(|_| ContentHashError::BadPattern {
        pattern: pattern.to_owned(),
    })
}

/// The BuildKit release line whose content-hash rules to follow. Variants are ordered by
/// version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Profile {
    /// v0.8.x, the BuildKit inside docker 20.10: owners never hashed, v0.8 wildcards, file-op
    /// selectors as a set.
    BuildkitV08,
    /// v0.9 and v0.10: include/exclude-style wildcard walk with base names; owners not hashed.
    BuildkitV09,
    /// v0.11 and v0.12: snapshot owners hashed.
    BuildkitV11,
    /// v0.13 to v0.24 (the verified v0.24.0 daemon): every exec mount adds a selector.
    BuildkitV13,
    /// v0.25: symlinks inside a wildcard-matched directory are no longer followed.
    BuildkitV25,
    /// v0.26 and later (read up to v0.32.2): wildcard matches are named by their path relative
    /// to the pattern's literal prefix.
    BuildkitCurrent,
}

impl Profile {
    /// The profile of BuildKit release `v0.<minor>.*`.
    pub fn for_minor_release(minor: u32) -> Profile {
        match minor {
            0..=8 => Profile::BuildkitV08,
            9..=10 => Profile::BuildkitV09,
            11..=12 => Profile::BuildkitV11,
            13..=24 => Profile::BuildkitV13,
            25 => Profile::BuildkitV25,
            _ => Profile::BuildkitCurrent,
        }
    }

    /// Whether snapshot entries hash their real uid/gid (v0.11.0, `f84058eb1`); before, the tar
    /// helper never saw a native stat and wrote 0.
    pub fn hashes_snapshot_owners(self) -> bool {
        self >= Profile::BuildkitV11
    }
}

/// Where the entries of a tree come from; BuildKit hashes the two slightly differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SourceKind {
    /// A local build context sent by a client: the root header is sha256(""), uid/gid are 0
    /// (the Go client resets them), symlink modes are taken as sent. A root entry, if supplied,
    /// is ignored.
    LocalContext,
    /// Any other snapshot (`COPY --from`): the root header is real, owners follow the profile,
    /// symlinks get mode 0777. The root entry is required.
    Snapshot,
}
