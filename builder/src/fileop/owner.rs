//! Owners of created files: `--chown` by id or by name, names looked up in the destination's
//! `/etc/passwd` and `/etc/group` (BuildKit `file/user_linux.go` `readUser`: a user given by id
//! also sets the group to that id; a user by name takes the passwd entry's primary group; an
//! explicit group overrides either).

use std::path::Path;

use inlay_core::op::{ChownOpt, UserOpt};

use super::FileOpError;
use super::path::root_path;

/// A resolved owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// Resolves `chown` against the files of `root`; `None` keeps the source's owners.
pub fn resolve_owner(root: &Path, chown: Option<&ChownOpt>) -> Result<Option<Owner>, FileOpError> {
    let Some(chown) = chown else {
        return Ok(None);
    };
    if chown.user.is_none() && chown.group.is_none() {
        return Ok(None);
    }
    let mut owner = Owner { uid: 0, gid: 0 };
    match &chown.user {
        Some(UserOpt::ById(id)) => {
            owner.uid = *id;
            owner.gid = *id;
        }
        Some(UserOpt::ByName { name, .. }) => {
            let entry = lookup(root, "/etc/passwd", name)?
                .ok_or_else(|| FileOpError::UnknownUser { name: name.clone() })?;
            owner.uid = entry.0;
            owner.gid = entry.1.unwrap_or(entry.0);
        }
        None => {}
    }
    match &chown.group {
        Some(UserOpt::ById(id)) => owner.gid = *id,
        Some(UserOpt::ByName { name, .. }) => {
            let entry = lookup(root, "/etc/group", name)?
                .ok_or_else(|| FileOpError::UnknownGroup { name: name.clone() })?;
            owner.gid = entry.0;
        }
        None => {}
    }
    Ok(Some(owner))
}

/// The id (third field) and, for passwd, the primary group (fourth field) of `name` in the
/// colon-separated database `file`; a numeric name not found is taken as the id itself.
fn lookup(root: &Path, file: &str, name: &str) -> Result<Option<(u32, Option<u32>)>, FileOpError> {
    let path = root_path(root, file).map_err(|e| FileOpError::io(file, e))?;
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(FileOpError::io(file, e)),
    };
    for line in text.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 3 || fields[0] != name {
            continue;
        }
        let Ok(id) = fields[2].parse::<u32>() else {
            continue;
        };
        let group = fields.get(3).and_then(|g| g.parse::<u32>().ok());
        return Ok(Some((id, group)));
    }
    Ok(name.parse::<u32>().ok().map(|id| (id, None)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_from_the_root_and_ids_set_both() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1001:1002::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let by_name = ChownOpt {
            user: Some(UserOpt::ByName {
                name: "app".into(),
                input: 0,
            }),
            group: None,
        };
        assert_eq!(
            resolve_owner(dir.path(), Some(&by_name)).unwrap(),
            Some(Owner {
                uid: 1001,
                gid: 1002
            })
        );
        let with_group = ChownOpt {
            user: Some(UserOpt::ById(7)),
            group: Some(UserOpt::ByName {
                name: "staff".into(),
                input: 0,
            }),
        };
        assert_eq!(
            resolve_owner(dir.path(), Some(&with_group)).unwrap(),
            Some(Owner { uid: 7, gid: 50 })
        );
        let missing = ChownOpt {
            user: Some(UserOpt::ByName {
                name: "nobody-here".into(),
                input: 0,
            }),
            group: None,
        };
        assert!(resolve_owner(dir.path(), Some(&missing)).is_err());
        assert_eq!(resolve_owner(dir.path(), None).unwrap(), None);
    }
}
