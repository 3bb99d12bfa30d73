//! The hash tree of one source (spec 6.1, 6.3, 6.4): entries keyed by path with `/` as 0x00,
//! directories as a Merkle tree, and path checksums with symlink resolution.

use std::collections::BTreeMap;

use super::entry::{EntryDigest, EntryKind, HeaderRules, Stat};
use super::error::ContentHashError;
use super::path::{key_path, key_to_path, to_key};
use super::{Profile, SourceKind};
use crate::digest::{Algorithm, Digest, Hasher};

/// BuildKit gives up after this many symlinks in one resolution.
const MAX_SYMLINKS: usize = 255;

/// How the tree is hashed: which BuildKit version to agree with and where the files come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TreeOptions {
    /// The BuildKit version whose rules apply.
    pub profile: Profile,
    /// Local build context or snapshot.
    pub source: SourceKind,
}

impl TreeOptions {
    /// Options for `profile` and `source`.
    pub fn new(profile: Profile, source: SourceKind) -> TreeOptions {
        TreeOptions { profile, source }
    }

    /// The header rules these options imply (spec 6.2): owners are hashed only for snapshots on
    /// v0.11+ (the Go client sends local files with uid/gid 0 in every version), and symlinks
    /// found by scanning a snapshot get mode 0777.
    pub fn header_rules(&self) -> HeaderRules {
        let snapshot = self.source == SourceKind::Snapshot;
        HeaderRules {
            hash_owners: snapshot && self.profile.hashes_snapshot_owners(),
            symlink_mode_0777: snapshot,
        }
    }
}

/// What accompanies an entry's stat.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryData {
    /// Nothing: directories, links, devices and empty files.
    None,
    /// The whole content of a regular file.
    Bytes(Vec<u8>),
    /// Header + content already streamed through [`HeaderRules::entry_hasher`] of this tree's
    /// [`TreeOptions::header_rules`].
    Digest(EntryDigest),
}

/// One entry as a caller supplies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The path relative to the tree root (a leading `/` is allowed; it is cleaned).
    pub path: String,
    /// Its metadata.
    pub stat: Stat,
    /// Its content, where it has one.
    pub data: EntryData,
}

impl Entry {
    /// An entry without content (directory, link, device, empty file).
    pub fn new(path: impl Into<String>, stat: Stat) -> Entry {
        Entry {
            path: path.into(),
            stat,
            data: EntryData::None,
        }
    }

    /// A regular file with its bytes.
    pub fn with_content(path: impl Into<String>, stat: Stat, bytes: impl Into<Vec<u8>>) -> Entry {
        Entry {
            path: path.into(),
            stat,
            data: EntryData::Bytes(bytes.into()),
        }
    }

    /// An entry whose digest the caller streamed already.
    pub fn with_digest(path: impl Into<String>, stat: Stat, digest: EntryDigest) -> Entry {
        Entry {
            path: path.into(),
            stat,
            data: EntryData::Digest(digest),
        }
    }
}

/// BuildKit's record types (`CacheRecordType`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RecordKind {
    /// Recursive content of a directory, at the directory's own key.
    Dir,
    /// A directory's own metadata, at its key plus 0x00.
    DirHeader,
    /// Any non-directory, non-symlink entry.
    File,
    /// A symlink with its target.
    Symlink(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) kind: RecordKind,
    pub(crate) digest: Digest,
}

enum Pending {
    Hashed(RecordKind, Digest),
    HardLink { target: String },
}

/// Collects entries in any order and builds a [`ContentTree`].
pub struct ContentTreeBuilder {
    options: TreeOptions,
    rules: HeaderRules,
    root_header: Option<Digest>,
    pending: BTreeMap<Vec<u8>, Pending>,
}

impl ContentTreeBuilder {
    /// An empty builder.
    pub fn new(options: TreeOptions) -> ContentTreeBuilder {
        ContentTreeBuilder {
            options,
            rules: options.header_rules(),
            root_header: None,
            pending: BTreeMap::new(),
        }
    }

    /// The header rules file digests must be computed with.
    pub fn header_rules(&self) -> HeaderRules {
        self.rules
    }

    /// Adds one entry. Parents need not be added first; the order of calls never matters.
    pub fn insert(&mut self, entry: Entry) -> Result<(), ContentHashError> {
        if entry.path.contains('\0') {
            return Err(ContentHashError::InvalidPath { path: entry.path });
        }
        let path = key_path(&entry.path);
        let key = to_key(&path);
        if key.is_empty() {
            return self.insert_root(&entry.stat);
        }
        if self.pending.contains_key(&key) {
            return Err(ContentHashError::DuplicatePath { path });
        }
        let pending = match &entry.stat.kind {
            EntryKind::HardLink { target } => Pending::HardLink {
                target: target.clone(),
            },
            kind => {
                let record_kind = match kind {
                    EntryKind::Dir => RecordKind::Dir,
                    EntryKind::Symlink { target } => RecordKind::Symlink(target.clone()),
                    _ => RecordKind::File,
                };
                let digest = match entry.data {
                    EntryData::Digest(given) if !matches!(kind, EntryKind::Dir) => {
                        if given.rules() != self.rules {
                            return Err(ContentHashError::RulesMismatch { path });
                        }
                        given.digest().clone()
                    }
                    EntryData::Bytes(bytes) => self
                        .rules
                        .entry_digest(&entry.stat, &bytes)
                        .digest()
                        .clone(),
                    _ => {
                        if let EntryKind::File { size } = kind {
                            if *size > 0 {
                                return Err(ContentHashError::MissingContent { path, size: *size });
                            }
                        }
                        self.rules.entry_digest(&entry.stat, &[]).digest().clone()
                    }
                };
                Pending::Hashed(record_kind, digest)
            }
        };
        self.pending.insert(key, pending);
        Ok(())
    }

    fn insert_root(&mut self, stat: &Stat) -> Result<(), ContentHashError> {
        if stat.kind != EntryKind::Dir {
            return Err(ContentHashError::RootNotDirectory);
        }
        if self.root_header.is_some() {
            return Err(ContentHashError::DuplicatePath { path: "/".into() });
        }
        self.root_header = Some(self.rules.entry_digest(stat, &[]).digest().clone());
        Ok(())
    }

    /// Resolves hard links, hashes every directory and returns the finished tree.
    pub fn build(self) -> Result<ContentTree, ContentHashError> {
        // Spec 6.2: BuildKit never receives the local context's root, so it fakes the root
        // header as sha256(""); a snapshot's root is scanned like any directory.
        let root_header = match self.options.source {
            SourceKind::LocalContext => Digest::sha256_of(b""),
            SourceKind::Snapshot => self.root_header.ok_or(ContentHashError::MissingRoot)?,
        };
        let mut records = BTreeMap::new();
        records.insert(Vec::new(), dir_placeholder());
        records.insert(
            vec![0],
            Record {
                kind: RecordKind::DirHeader,
                digest: root_header,
            },
        );
        for (key, pending) in &self.pending {
            let record = match pending {
                Pending::Hashed(RecordKind::Dir, digest) => {
                    let mut header_key = key.clone();
                    header_key.push(0);
                    records.insert(
                        header_key,
                        Record {
                            kind: RecordKind::DirHeader,
                            digest: digest.clone(),
                        },
                    );
                    dir_placeholder()
                }
                Pending::Hashed(kind, digest) => Record {
                    kind: kind.clone(),
                    digest: digest.clone(),
                },
                Pending::HardLink { target } => resolve_hard_link(&self.pending, key, target)?,
            };
            records.insert(key.clone(), record);
        }
        hash_directories(&mut records);
        Ok(ContentTree {
            options: self.options,
            records,
        })
    }
}

fn dir_placeholder() -> Record {
    Record {
        kind: RecordKind::Dir,
        digest: Digest::sha256_of(b""),
    }
}

/// A hard link takes a copy of its target's record (spec 6.2); links to links are followed.
fn resolve_hard_link(
    pending: &BTreeMap<Vec<u8>, Pending>,
    key: &[u8],
    target: &str,
) -> Result<Record, ContentHashError> {
    let error = || ContentHashError::HardLinkTarget {
        path: key_to_path(key),
        target: target.to_owned(),
    };
    let mut next = target.to_owned();
    for _ in 0..=MAX_SYMLINKS {
        match pending.get(&to_key(&key_path(&next))) {
            Some(Pending::Hashed(RecordKind::Dir, _)) | None => return Err(error()),
            Some(Pending::Hashed(kind, digest)) => {
                return Ok(Record {
                    kind: kind.clone(),
                    digest: digest.clone(),
                });
            }
            Some(Pending::HardLink { target }) => next.clone_from(target),
        }
    }
    Err(error())
}

/// Computes every directory's content digest (spec 6.3) in one pass over the keys in byte
/// order: for a directory `k`, sha256 over each key under `k + 0x00` with `k` cut off, followed by
/// that entry's digest string, where a subdirectory stands for its whole subtree. Open
/// directories wait on a stack; a subdirectory writes into its parent when it is closed, which
/// is exactly its place in the parent's sequence because nothing else reaches the parent while
/// the subdirectory is open.
fn hash_directories(records: &mut BTreeMap<Vec<u8>, Record>) {
    let mut open: Vec<(&[u8], Hasher)> = Vec::new();
    let mut finished: Vec<(Vec<u8>, Digest)> = Vec::new();
    let close = |open: &mut Vec<(&[u8], Hasher)>, finished: &mut Vec<(Vec<u8>, Digest)>| {
        let (dir, hasher) = open.pop().expect("close is called on a non-empty stack");
        let digest = hasher.finish();
        if let Some((parent, parent_hasher)) = open.last_mut() {
            parent_hasher.update(&dir[parent.len()..]);
            parent_hasher.update(digest.as_str().as_bytes());
        }
        finished.push((dir.to_vec(), digest));
    };
    for (key, record) in records.iter() {
        while let Some((dir, _)) = open.last() {
            if key.len() > dir.len() && key.starts_with(dir) && key[dir.len()] == 0 {
                break;
            }
            close(&mut open, &mut finished);
        }
        if record.kind == RecordKind::Dir {
            open.push((key, Hasher::new(Algorithm::Sha256)));
        } else if let Some((dir, hasher)) = open.last_mut() {
            hasher.update(&key[dir.len()..]);
            hasher.update(record.digest.as_str().as_bytes());
        }
    }
    while !open.is_empty() {
        close(&mut open, &mut finished);
    }
    for (key, digest) in finished {
        if let Some(record) = records.get_mut(&key) {
            record.digest = digest;
        }
    }
}

/// The finished hash tree of one source.
#[derive(Debug, Clone)]
pub struct ContentTree {
    options: TreeOptions,
    pub(crate) records: BTreeMap<Vec<u8>, Record>,
}

impl ContentTree {
    /// The options the tree was built with.
    pub fn options(&self) -> TreeOptions {
        self.options
    }

    /// The content digest of the whole tree (the checksum of `/`).
    pub fn root_digest(&self) -> &Digest {
        &self.records[&Vec::new()].digest
    }

    /// The checksum of one path (spec 6.4): the path is cleaned to absolute, symlinks in parent
    /// components are followed, and the final component too when `follow_links` is set. A
    /// directory gives its content digest, anything else its entry digest.
    pub fn checksum(&self, path: &str, follow_links: bool) -> Result<Digest, ContentHashError> {
        let cleaned = key_path(path);
        match self.resolve(&cleaned, follow_links) {
            Ok(Some((_, record))) => Ok(record.digest.clone()),
            Ok(None) => Err(ContentHashError::NotFound {
                path: path.to_owned(),
            }),
            Err(Resolution::TooManyLinks) => Err(ContentHashError::TooManyLinks {
                path: path.to_owned(),
            }),
        }
    }

    /// Looks a cleaned path up component by component, replacing each symlink met on the way by
    /// its target (an absolute target restarts at the root, `..` is applied to the symlink-free
    /// path reached so far), as BuildKit v0.14+ `getFollowLinks` does. The final component is
    /// resolved only when `follow_trailing` is set. Missing intermediate components do not stop
    /// the walk (a later `..` may come back), but make the answer `None` unless one does.
    pub(crate) fn resolve(
        &self,
        cleaned: &str,
        follow_trailing: bool,
    ) -> Result<Option<(Vec<u8>, &Record)>, Resolution> {
        let key = to_key(cleaned);
        if let Some(record) = self.records.get(&key) {
            if !follow_trailing || !matches!(record.kind, RecordKind::Symlink(_)) {
                return Ok(Some((key, record)));
            }
        }
        if key.is_empty() {
            return Ok(None);
        }
        let mut current = String::new();
        let mut remaining = cleaned.to_owned();
        let mut found: Option<&Record> = None;
        let mut links = 0;
        while !remaining.is_empty() {
            let (part, rest) = match remaining.find('/') {
                Some(i) => (&remaining[..i], remaining[i + 1..].to_owned()),
                None => (remaining.as_str(), String::new()),
            };
            let next = key_path(&format!("{current}/{part}"));
            found = self.records.get(&to_key(&next));
            if let Some(Record {
                kind: RecordKind::Symlink(target),
                ..
            }) = found
            {
                if !follow_trailing && rest.is_empty() {
                    current = next;
                    break;
                }
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Resolution::TooManyLinks);
                }
                if target.starts_with('/') {
                    current.clear();
                }
                remaining = format!("{target}/{rest}");
            } else {
                current = next;
                remaining = rest;
            }
        }
        Ok(found.map(|record| (to_key(&current), record)))
    }
}

/// Why a resolution stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resolution {
    TooManyLinks,
}
