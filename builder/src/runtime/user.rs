//! Resolving a Dockerfile `USER` (`name`, `uid`, `name:group`, `uid:gid`) against the rootfs's own
//! `/etc/passwd` and `/etc/group`, read inside the rootfs (symlinks followed inside it only), as
//! runc's libcontainer `GetExecUser` does for Docker and BuildKit.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use super::RuntimeError;
use crate::extract::resolve;

/// The numeric identity a process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups: every group of `/etc/group` that lists the user by name.
    pub additional_gids: Vec<u32>,
    /// The home directory from `/etc/passwd`, when the user has an entry.
    pub home: Option<String>,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Resolves `user` (empty means root) in `rootfs`.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<ResolvedUser, RuntimeError> {
    let (user_part, group_part) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let passwd = parse_passwd(&read_in_root(rootfs, "etc/passwd"));
    let groups = parse_group(&read_in_root(rootfs, "etc/group"));

    let entry = match user_part.parse::<u32>() {
        Ok(uid) => passwd.iter().find(|p| p.uid == uid),
        Err(_) => Some(passwd.iter().find(|p| p.name == user_part).ok_or_else(|| {
            RuntimeError::UnknownUser {
                user: user_part.to_owned(),
            }
        })?),
    };
    let uid = match user_part.parse::<u32>() {
        Ok(uid) => uid,
        Err(_) => entry.map_or(0, |e| e.uid),
    };
    let gid = match group_part.filter(|g| !g.is_empty()) {
        Some(group) => match group.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => {
                groups
                    .iter()
                    .find(|g| g.name == group)
                    .ok_or_else(|| RuntimeError::UnknownGroup {
                        group: group.to_owned(),
                    })?
                    .gid
            }
        },
        None => entry.map_or(0, |e| e.gid),
    };
    let mut additional_gids: Vec<u32> = match entry {
        Some(e) => groups
            .iter()
            .filter(|g| g.members.contains(&e.name) && g.gid != gid)
            .map(|g| g.gid)
            .collect(),
        None => Vec::new(),
    };
    additional_gids.sort_unstable();
    additional_gids.dedup();
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home: entry.map(|e| e.home.clone()),
    })
}

/// Reads a file of the rootfs, following symlinks inside it; empty when absent or unsafe.
fn read_in_root(rootfs: &Path, name: &str) -> String {
    let mut components: Vec<OsString> = name.split('/').map(OsString::from).collect();
    for _ in 0..40 {
        let Ok(Some((parent, base))) = resolve::resolve_name(rootfs, &components, false) else {
            return String::new();
        };
        if base == ".." {
            return String::new();
        }
        let path = parent.abs.join(&base);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => {
                let Ok(target) = std::fs::read_link(&path) else {
                    return String::new();
                };
                let start: PathBuf = if target.is_absolute() {
                    PathBuf::new()
                } else {
                    parent.rel.clone()
                };
                components = start
                    .components()
                    .chain(target.components())
                    .filter_map(|c| match c {
                        std::path::Component::Normal(p) => Some(p.to_os_string()),
                        std::path::Component::ParentDir => Some(OsString::from("..")),
                        _ => None,
                    })
                    .collect();
            }
            Ok(m) if m.is_file() => return std::fs::read_to_string(&path).unwrap_or_default(),
            _ => return String::new(),
        }
    }
    String::new()
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            Some(PasswdEntry {
                name: (*fields.first()?).to_owned(),
                uid: fields.get(2)?.parse().ok()?,
                gid: fields.get(3)?.parse().ok()?,
                home: fields.get(5).map(|s| (*s).to_owned()).unwrap_or_default(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            Some(GroupEntry {
                name: (*fields.first()?).to_owned(),
                gid: fields.get(2)?.parse().ok()?,
                members: fields
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("usr/share")).unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("usr/share/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::os::unix::fs::symlink("../usr/share/passwd", dir.path().join("etc/passwd")).unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nnogroup:x:65534:\napp:x:1000:\nwheel:x:10:app,root\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn names_ids_and_groups_resolve() {
        let root = rootfs();
        let u = resolve_user(root.path(), "").unwrap();
        assert_eq!((u.uid, u.gid, u.additional_gids.clone()), (0, 0, vec![10]));
        let u = resolve_user(root.path(), "nobody").unwrap();
        assert_eq!((u.uid, u.gid), (65534, 65534));
        let u = resolve_user(root.path(), "app:wheel").unwrap();
        assert_eq!((u.uid, u.gid), (1000, 10));
        let u = resolve_user(root.path(), "4242:7").unwrap();
        assert_eq!((u.uid, u.gid, u.home), (4242, 7, None));
        assert!(matches!(
            resolve_user(root.path(), "ghost"),
            Err(RuntimeError::UnknownUser { .. })
        ));
        assert!(matches!(
            resolve_user(root.path(), "app:ghosts"),
            Err(RuntimeError::UnknownGroup { .. })
        ));
    }
}
