//! Byte-exact tar headers for reproducible layers: ustar where the values fit, a PAX extended
//! header (POSIX.1-2001 `x` entry) for what does not, the way Go's `archive/tar` chooses formats
//! (USTAR first, PAX otherwise) so BuildKit-made and inlay-made layers read the same everywhere.

use std::collections::BTreeMap;
use std::io::{self, Write};

use tar::{EntryType, Header};

/// The largest value an 8-byte octal ustar field (uid, gid) holds.
const MAX_OCTAL_ID: u64 = 0o7_777_777;
/// The largest value the 12-byte octal size field holds.
const MAX_OCTAL_SIZE: u64 = 0o77_777_777_777;
/// One tar block.
pub(crate) const BLOCK: usize = 512;

/// Everything one tar entry header says, before it is encoded.
#[derive(Debug, Clone, Default)]
pub(crate) struct EntryHeader {
    /// The entry name as stored (no leading `/`; directories end in `/`).
    pub name: Vec<u8>,
    /// Link target for symlinks and hard links.
    pub link_name: Vec<u8>,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: u64,
    pub dev_major: u32,
    pub dev_minor: u32,
    /// Extended attributes, written as `SCHILY.xattr.<name>` PAX records (sorted by name).
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// The entry types a layer holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Kind {
    #[default]
    Regular,
    Directory,
    Symlink,
    HardLink,
    Char,
    Block,
    Fifo,
}

impl Kind {
    fn entry_type(self) -> EntryType {
        match self {
            Kind::Regular => EntryType::Regular,
            Kind::Directory => EntryType::Directory,
            Kind::Symlink => EntryType::Symlink,
            Kind::HardLink => EntryType::Link,
            Kind::Char => EntryType::Char,
            Kind::Block => EntryType::Block,
            Kind::Fifo => EntryType::Fifo,
        }
    }
}

/// Writes the header block(s) of `entry` (a PAX `x` entry first when needed). The caller writes
/// `entry.size` data bytes and then [`padding`] zero bytes.
pub(crate) fn write_header(out: &mut impl Write, entry: &EntryHeader) -> io::Result<()> {
    let mut pax: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut header = Header::new_ustar();
    header.set_entry_type(entry.kind.entry_type());
    header.set_mode(entry.mode & 0o7777);
    header.set_mtime(entry.mtime);

    if !set_ustar_name(&mut header, &entry.name) {
        pax.insert(b"path".to_vec(), entry.name.clone());
    }
    if !entry.link_name.is_empty() {
        let ustar = header.as_ustar_mut().expect("header was made as ustar");
        if entry.link_name.len() <= ustar.linkname.len() {
            ustar.linkname[..entry.link_name.len()].copy_from_slice(&entry.link_name);
        } else {
            pax.insert(b"linkpath".to_vec(), entry.link_name.clone());
        }
    }
    if entry.uid > MAX_OCTAL_ID {
        pax.insert(b"uid".to_vec(), entry.uid.to_string().into_bytes());
        header.set_uid(0);
    } else {
        header.set_uid(entry.uid);
    }
    if entry.gid > MAX_OCTAL_ID {
        pax.insert(b"gid".to_vec(), entry.gid.to_string().into_bytes());
        header.set_gid(0);
    } else {
        header.set_gid(entry.gid);
    }
    if entry.size > MAX_OCTAL_SIZE {
        pax.insert(b"size".to_vec(), entry.size.to_string().into_bytes());
    }
    header.set_size(entry.size);
    if matches!(entry.kind, Kind::Char | Kind::Block) {
        header.set_device_major(entry.dev_major)?;
        header.set_device_minor(entry.dev_minor)?;
    }
    for (name, value) in &entry.xattrs {
        let mut key = b"SCHILY.xattr.".to_vec();
        key.extend_from_slice(name);
        pax.insert(key, value.clone());
    }
    header.set_cksum();

    if !pax.is_empty() {
        write_pax(out, &entry.name, &pax)?;
    }
    out.write_all(header.as_bytes())
}

/// Zero bytes needed after `size` data bytes to fill the last block.
pub(crate) fn padding(size: u64) -> usize {
    let rem = (size % BLOCK as u64) as usize;
    if rem == 0 { 0 } else { BLOCK - rem }
}

/// The end-of-archive marker: two zero blocks.
pub(crate) fn write_trailer(out: &mut impl Write) -> io::Result<()> {
    out.write_all(&[0u8; BLOCK * 2])
}

/// Puts `name` into the ustar `name`/`prefix` fields; false when it does not fit (or is not
/// representable, e.g. it holds a NUL), in which case a shortened name is stored and the caller
/// adds a PAX `path` record.
fn set_ustar_name(header: &mut Header, name: &[u8]) -> bool {
    let ustar = header.as_ustar_mut().expect("header was made as ustar");
    let fits = !name.contains(&0);
    if fits && name.len() <= ustar.name.len() {
        ustar.name[..name.len()].copy_from_slice(name);
        return true;
    }
    if fits {
        // Split at a `/` so that prefix <= 155 and name <= 100 bytes, as ustar readers join them.
        let trimmed = name.strip_suffix(b"/").unwrap_or(name);
        for (i, b) in trimmed.iter().enumerate().rev() {
            if *b != b'/' {
                continue;
            }
            let (prefix, rest) = (&name[..i], &name[i + 1..]);
            if rest.len() > ustar.name.len() {
                break;
            }
            if prefix.len() <= ustar.prefix.len() && !prefix.is_empty() && !rest.is_empty() {
                ustar.prefix[..prefix.len()].copy_from_slice(prefix);
                ustar.name[..rest.len()].copy_from_slice(rest);
                return true;
            }
        }
    }
    // A readable stand-in for old readers; the PAX record holds the real name.
    let short: Vec<u8> = name
        .iter()
        .copied()
        .filter(|b| *b != 0)
        .take(ustar.name.len())
        .collect();
    ustar.name[..short.len()].copy_from_slice(&short);
    false
}

/// Writes one PAX extended header entry holding `records` (sorted, so the bytes are stable).
fn write_pax(
    out: &mut impl Write,
    name: &[u8],
    records: &BTreeMap<Vec<u8>, Vec<u8>>,
) -> io::Result<()> {
    let mut body = Vec::new();
    for (key, value) in records {
        // "%d %s=%s\n" where the length counts itself, as POSIX pax specifies.
        let base = key.len() + value.len() + 3;
        let mut len = base + base.to_string().len();
        if len.to_string().len() != base.to_string().len() {
            len = base + len.to_string().len();
        }
        body.extend_from_slice(len.to_string().as_bytes());
        body.push(b' ');
        body.extend_from_slice(key);
        body.push(b'=');
        body.extend_from_slice(value);
        body.push(b'\n');
    }
    // Go's archive/tar names the record "<dir>/PaxHeaders.0/<base>"; any stable name will do.
    let trimmed = name.strip_suffix(b"/").unwrap_or(name);
    let base = trimmed.rsplit(|b| *b == b'/').next().unwrap_or(trimmed);
    let mut pax_name = b"PaxHeaders.0/".to_vec();
    pax_name.extend(base.iter().copied().filter(|b| *b != 0));
    pax_name.truncate(100);
    let mut header = Header::new_ustar();
    header.set_entry_type(EntryType::XHeader);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_size(body.len() as u64);
    {
        let ustar = header.as_ustar_mut().expect("header was made as ustar");
        ustar.name[..pax_name.len()].copy_from_slice(&pax_name);
    }
    header.set_cksum();
    out.write_all(header.as_bytes())?;
    out.write_all(&body)?;
    out.write_all(&[0u8; BLOCK][..padding(body.len() as u64)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_back(bytes: &[u8]) -> Vec<(Vec<u8>, Option<Vec<u8>>, u64)> {
        let mut archive = tar::Archive::new(bytes);
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path_bytes().into_owned(),
                    e.link_name_bytes().map(std::borrow::Cow::into_owned),
                    e.header().uid().unwrap(),
                )
            })
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn any_name_link_and_id_round_trips(
            parts in proptest::collection::vec("[a-zA-Z0-9._ é-]{1,60}", 1..8),
            link in "[a-zA-Z0-9/._-]{0,300}",
            uid in 0u64..5_000_000,
            xattr in proptest::option::of("[a-z]{1,20}"),
        ) {
            let name = parts.join("/");
            let mut entry = EntryHeader {
                name: name.clone().into_bytes(),
                link_name: link.clone().into_bytes(),
                kind: if link.is_empty() { Kind::Regular } else { Kind::Symlink },
                uid,
                ..EntryHeader::default()
            };
            if let Some(x) = &xattr {
                entry.xattrs.insert(format!("user.{x}").into_bytes(), x.clone().into_bytes());
            }
            let mut out = Vec::new();
            write_header(&mut out, &entry).unwrap();
            write_trailer(&mut out).unwrap();
            proptest::prop_assert_eq!(out.len() % BLOCK, 0);
            let mut archive = tar::Archive::new(out.as_slice());
            let mut entries = archive.entries().unwrap();
            let mut got = entries.next().unwrap().unwrap();
            proptest::prop_assert_eq!(got.path_bytes().into_owned(), name.into_bytes());
            if !link.is_empty() {
                proptest::prop_assert_eq!(
                    got.link_name_bytes().map(std::borrow::Cow::into_owned),
                    Some(link.into_bytes())
                );
            }
            proptest::prop_assert_eq!(got.header().uid().unwrap(), uid);
            let xattrs: Vec<(String, Vec<u8>)> = got
                .pax_extensions()
                .unwrap()
                .into_iter()
                .flatten()
                .map(Result::unwrap)
                .filter_map(|r| {
                    r.key().unwrap().strip_prefix("SCHILY.xattr.").map(|k| (k.to_owned(), r.value_bytes().to_vec()))
                })
                .collect();
            let want: Vec<(String, Vec<u8>)> =
                xattr.map(|x| (format!("user.{x}"), x.into_bytes())).into_iter().collect();
            proptest::prop_assert_eq!(xattrs, want);
            proptest::prop_assert!(entries.next().is_none());
        }
    }

    #[test]
    fn pax_length_counts_itself() {
        let mut records = BTreeMap::new();
        records.insert(b"path".to_vec(), vec![b'a'; 90]);
        let mut out = Vec::new();
        write_pax(&mut out, b"x", &records).unwrap();
        let body = &out[BLOCK..];
        let text =
            std::str::from_utf8(&body[..=body.iter().position(|b| *b == b'\n').unwrap()]).unwrap();
        let (len, _) = text.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), text.len());
    }

    #[test]
    fn long_names_links_and_ids_survive() {
        let long = format!("{}/{}", "d".repeat(120), "f".repeat(140));
        let mid = format!("{}/{}", "p".repeat(120), "n".repeat(60));
        let mut out = Vec::new();
        for (name, link, uid) in [
            (long.clone(), String::new(), 5u64),
            (mid.clone(), "l".repeat(150), 3_000_000),
        ] {
            let entry = EntryHeader {
                name: name.into_bytes(),
                link_name: link.into_bytes(),
                kind: Kind::Symlink,
                uid,
                ..EntryHeader::default()
            };
            write_header(&mut out, &entry).unwrap();
        }
        write_trailer(&mut out).unwrap();
        let got = read_back(&out);
        assert_eq!(got[0].0, long.as_bytes());
        assert_eq!(got[1].0, mid.as_bytes());
        assert_eq!(got[1].1.as_deref(), Some("l".repeat(150).as_bytes()));
        assert_eq!(got[1].2, 3_000_000);
    }
}
