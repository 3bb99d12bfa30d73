//! What a caller tells the content hasher about one file, and the per-entry ("header") hash of
//! spec 6.2: sha256 over a tarsum-v1 style header, followed by the bytes of a regular file.

use std::collections::BTreeMap;

use crate::digest::{Algorithm, Digest, Hasher};

/// The kind of a filesystem entry, with the data that only that kind has.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EntryKind {
    /// A regular file of `size` bytes.
    File {
        /// Size in bytes as the sender's stat reports it; it is written into the header.
        size: u64,
    },
    /// A directory.
    Dir,
    /// A symbolic link; `target` is the link text as read, relative or absolute.
    Symlink {
        /// The link target exactly as stored in the link.
        target: String,
    },
    /// A hard link to another entry of the same tree (as a local-context sender reports a second
    /// name of an inode it already sent). It takes the target's digest (spec 6.2).
    HardLink {
        /// The path of the first name, relative to the tree root or absolute.
        target: String,
    },
    /// A character device.
    CharDevice {
        /// Device major number.
        major: u64,
        /// Device minor number.
        minor: u64,
    },
    /// A block device.
    BlockDevice {
        /// Device major number.
        major: u64,
        /// Device minor number.
        minor: u64,
    },
    /// A named pipe.
    Fifo,
    /// A Unix socket; BuildKit clears the socket bit, so it hashes like an empty regular file.
    Socket,
}

/// The metadata of an entry as a stat reports it (times are deliberately absent: tarsum v1
/// drops `mtime`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Stat {
    /// Entry kind and kind-specific data.
    pub kind: EntryKind,
    /// Permission bits plus setuid (0o4000), setgid (0o2000) and sticky (0o1000); any file-type
    /// bits above 0o7777 are ignored.
    pub mode: u32,
    /// Owner user id (hashed only where the profile and source say so).
    pub uid: u32,
    /// Owner group id (hashed only where the profile and source say so).
    pub gid: u32,
    /// Extended attributes by name (as `getxattr` names them, e.g. `user.foo`).
    pub xattrs: BTreeMap<String, Vec<u8>>,
}

impl Stat {
    /// A stat with no owner and no extended attributes.
    pub fn new(kind: EntryKind, mode: u32) -> Stat {
        Stat {
            kind,
            mode,
            uid: 0,
            gid: 0,
            xattrs: BTreeMap::new(),
        }
    }

    /// Sets the owner.
    #[must_use]
    pub fn with_owner(mut self, uid: u32, gid: u32) -> Stat {
        self.uid = uid;
        self.gid = gid;
        self
    }

    /// Adds an extended attribute.
    #[must_use]
    pub fn with_xattr(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Stat {
        self.xattrs.insert(name.into(), value.into());
        self
    }

    /// Whether the entry's bytes follow the header in its hash (regular files with size > 0;
    /// BuildKit opens no other kind).
    pub fn has_content(&self) -> bool {
        matches!(self.kind, EntryKind::File { size } if size > 0)
    }
}

/// The version- and source-dependent choices that shape a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HeaderRules {
    /// Write the real uid/gid (BuildKit v0.11+ on snapshots) instead of `0`.
    pub hash_owners: bool,
    /// Force symlink permission bits to 0777, as BuildKit does for entries it finds by scanning a
    /// snapshot (local-context senders report the mode they saw).
    pub symlink_mode_0777: bool,
}

impl HeaderRules {
    /// The tarsum-v1 header bytes for `stat` (spec 6.2): field name then value, no separators,
    /// in the order name, mode, uid, gid, size, typeflag, linkname, uname, gname, devmajor,
    /// devminor, then the kept extended attributes sorted by name.
    pub fn header_bytes(&self, stat: &Stat) -> Vec<u8> {
        let mut mode = stat.mode & 0o7777;
        let (typeflag, size, linkname, major, minor) = match &stat.kind {
            EntryKind::File { size } => (b'0', *size, "", 0, 0),
            // Go's archive/tar cannot describe sockets, so BuildKit clears the bit and the entry
            // becomes a regular file of the stat's size, which is 0 for a socket. A hard link's
            // own header is only used when its target is absent; Go's `FileInfoHeader` sees a
            // regular file and ignores the link name.
            EntryKind::Socket | EntryKind::HardLink { .. } => (b'0', 0, "", 0, 0),
            EntryKind::Dir => (b'5', 0, "", 0, 0),
            EntryKind::Symlink { target } => {
                if self.symlink_mode_0777 {
                    mode |= 0o777;
                }
                (b'2', 0, target.as_str(), 0, 0)
            }
            EntryKind::CharDevice { major, minor } => (b'3', 0, "", *major, *minor),
            EntryKind::BlockDevice { major, minor } => (b'4', 0, "", *major, *minor),
            EntryKind::Fifo => (b'6', 0, "", 0, 0),
        };
        let (uid, gid) = if self.hash_owners {
            (stat.uid, stat.gid)
        } else {
            (0, 0)
        };
        let mut out = Vec::with_capacity(96 + linkname.len());
        out.extend_from_slice(b"name");
        out.extend_from_slice(format!("mode{mode}uid{uid}gid{gid}size{size}").as_bytes());
        out.extend_from_slice(b"typeflag");
        out.push(typeflag);
        out.extend_from_slice(b"linkname");
        out.extend_from_slice(linkname.as_bytes());
        out.extend_from_slice(format!("unamegnamedevmajor{major}devminor{minor}").as_bytes());
        // BTreeMap iterates in byte order of the names, which is Go's sort.Strings order.
        for (name, value) in &stat.xattrs {
            if xattr_is_hashed(name) {
                out.extend_from_slice(name.as_bytes());
                out.extend_from_slice(value);
            }
        }
        out
    }

    /// A hasher already fed with the header of `stat`; feed the file bytes (if
    /// [`Stat::has_content`]) and call [`EntryHasher::finish`]. This lets a caller stream a large
    /// file without holding it in memory.
    pub fn entry_hasher(&self, stat: &Stat) -> EntryHasher {
        let mut hasher = Hasher::new(Algorithm::Sha256);
        hasher.update(&self.header_bytes(stat));
        EntryHasher {
            hasher,
            rules: *self,
        }
    }

    /// The entry digest of `stat` with `content` (ignored unless [`Stat::has_content`]).
    pub fn entry_digest(&self, stat: &Stat, content: &[u8]) -> EntryDigest {
        let mut hasher = self.entry_hasher(stat);
        if stat.has_content() {
            hasher.update(content);
        }
        hasher.finish()
    }
}

/// BuildKit skips `security.*` (except `security.capability`) and `system.*` attributes.
fn xattr_is_hashed(name: &str) -> bool {
    name == "security.capability" || !(name.starts_with("security.") || name.starts_with("system."))
}

/// Streams header + content of one entry into sha256.
#[derive(Debug, Clone)]
pub struct EntryHasher {
    hasher: Hasher,
    rules: HeaderRules,
}

impl EntryHasher {
    /// Feeds file bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
    }

    /// The entry digest, tagged with the rules it was computed under.
    pub fn finish(self) -> EntryDigest {
        EntryDigest {
            digest: self.hasher.finish(),
            rules: self.rules,
        }
    }
}

/// A finished entry digest together with the [`HeaderRules`] that produced it, so that a tree
/// can refuse digests computed under other rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EntryDigest {
    digest: Digest,
    rules: HeaderRules,
}

impl EntryDigest {
    /// The digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The rules it was computed under.
    pub fn rules(&self) -> HeaderRules {
        self.rules
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: HeaderRules = HeaderRules {
        hash_owners: false,
        symlink_mode_0777: false,
    };
    const NEW_SNAPSHOT: HeaderRules = HeaderRules {
        hash_owners: true,
        symlink_mode_0777: true,
    };

    fn text(rules: HeaderRules, stat: &Stat) -> String {
        String::from_utf8(rules.header_bytes(stat)).unwrap()
    }

    #[test]
    fn sample_data_txt_header_and_digest() {
        // Spec 6.2 / 8.3: data.txt, mode 0644, 10 bytes "some data\n".
        let stat = Stat::new(EntryKind::File { size: 10 }, 0o644);
        assert_eq!(
            text(OLD, &stat),
            "namemode420uid0gid0size10typeflag0linknameunamegnamedevmajor0devminor0"
        );
        let digest = OLD.entry_digest(&stat, b"some data\n");
        assert_eq!(
            digest.digest().as_str(),
            "sha256:9a3b10e4117e3b78de36a2aa160b9e2598b434e956bdefb940b603ad70cb70d9"
        );
        // Streaming in pieces gives the same digest.
        let mut hasher = OLD.entry_hasher(&stat);
        hasher.update(b"some ");
        hasher.update(b"data\n");
        assert_eq!(hasher.finish(), digest);
    }

    #[test]
    fn owner_policy() {
        // Spec 6.2 / 8c: a RUN-chowned 1000:1000 file with mode 04750 hashes as mode2536 with
        // uid/gid 0 on v0.8 and with the real owner on v0.11+.
        let stat = Stat::new(EntryKind::File { size: 0 }, 0o4750).with_owner(1000, 1000);
        assert!(text(OLD, &stat).starts_with("namemode2536uid0gid0size0"));
        assert!(text(NEW_SNAPSHOT, &stat).starts_with("namemode2536uid1000gid1000size0"));
    }

    #[test]
    fn special_bits_and_kinds() {
        // setgid 02000 + sticky 01000 + 0755 = 0o3755 = 2029; file-type bits are dropped.
        let dir = Stat::new(EntryKind::Dir, 0o40000 | 0o3755);
        assert_eq!(
            text(OLD, &dir),
            "namemode2029uid0gid0size0typeflag5linknameunamegnamedevmajor0devminor0"
        );
        let link = Stat::new(
            EntryKind::Symlink {
                target: "../f1".into(),
            },
            0o755,
        );
        assert_eq!(
            text(OLD, &link),
            "namemode493uid0gid0size0typeflag2linkname../f1unamegnamedevmajor0devminor0"
        );
        // Found by scanning a snapshot: mode | 0777 = 511.
        assert!(text(NEW_SNAPSHOT, &link).starts_with("namemode511"));
        let chr = Stat::new(EntryKind::CharDevice { major: 1, minor: 3 }, 0o666);
        assert_eq!(
            text(OLD, &chr),
            "namemode438uid0gid0size0typeflag3linknameunamegnamedevmajor1devminor3"
        );
        let blk = Stat::new(EntryKind::BlockDevice { major: 8, minor: 1 }, 0o660);
        assert!(text(OLD, &blk).contains("typeflag4linknameunamegnamedevmajor8devminor1"));
        let fifo = Stat::new(EntryKind::Fifo, 0o644);
        assert!(text(OLD, &fifo).contains("size0typeflag6"));
        // A socket hashes like an empty regular file of the same mode.
        let socket = Stat::new(EntryKind::Socket, 0o755);
        let empty = Stat::new(EntryKind::File { size: 0 }, 0o755);
        assert_eq!(text(OLD, &socket), text(OLD, &empty));
        assert!(!socket.has_content());
        assert!(!empty.has_content());
    }

    #[test]
    fn xattrs_filtered_and_sorted() {
        // Kept: user.* and security.capability, sorted by name; dropped: other security.* and
        // system.*. Values are raw bytes appended right after the name.
        let stat = Stat::new(EntryKind::File { size: 0 }, 0o600)
            .with_xattr("user.z", b"2".to_vec())
            .with_xattr("system.posix_acl_access", b"acl".to_vec())
            .with_xattr("security.selinux", b"ctx".to_vec())
            .with_xattr("security.capability", vec![0x01, 0x00])
            .with_xattr("user.a", b"1".to_vec());
        let mut want =
            b"namemode384uid0gid0size0typeflag0linknameunamegnamedevmajor0devminor0".to_vec();
        want.extend_from_slice(b"security.capability\x01\x00user.a1user.z2");
        assert_eq!(OLD.header_bytes(&stat), want);
    }

    #[test]
    fn content_only_for_non_empty_regular_files() {
        let empty = Stat::new(EntryKind::File { size: 0 }, 0o644);
        let header = OLD.header_bytes(&empty);
        assert_eq!(
            OLD.entry_digest(&empty, b"ignored").digest(),
            &Digest::sha256_of(&header)
        );
    }
}
