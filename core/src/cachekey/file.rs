//! The CacheMap of a `FileOp` (spec sections 5.3, 5.4 and 5.6; BuildKit
//! `solver/llbsolver/ops/file.go`).

use std::collections::{BTreeMap, BTreeSet};

use crate::cache::key::nul_joined_digest;
use crate::cachekey::exec::dedupe_paths;
use crate::cachekey::{
    ContentSelector, DepKeying, KeyError, KeyProfile, OpDigest, OpKey, base_name,
};
use crate::gojson::{Object, Value};
use crate::op::{ChownOpt, FileAction, FileActionKind, FileOp, UserOpt, VertexId};

/// The file wrapper's type tag.
const FILE_TYPE: &str = "buildkit.file.v0";

/// Selectors collected per input, in insertion order.
type Selectors = BTreeMap<usize, Vec<ContentSelector>>;

pub(crate) fn file_cache_map(
    vertex: VertexId,
    file: &FileOp,
    inputs: usize,
    profile: KeyProfile,
) -> Result<(Vec<OpKey>, Vec<DepKeying>), KeyError> {
    let limit = inputs + file.actions.len();
    let mut selectors: Selectors = BTreeMap::new();
    let mut invalid: BTreeSet<i64> = BTreeSet::new();
    let mut actions = Vec::with_capacity(file.actions.len());
    let mut indexes = Vec::with_capacity(file.actions.len());
    for (n, action) in file.actions.iter().enumerate() {
        for (field, index) in [
            ("input", action.input),
            ("secondary input", action.secondary_input),
        ] {
            if index >= 0 && usize::try_from(index).map_or(true, |i| i >= limit) {
                return Err(KeyError::InputOutOfRange {
                    vertex,
                    field: format!("action {n} {field}"),
                    index,
                    inputs,
                });
            }
        }
        let json = action_json(
            vertex,
            n,
            action,
            inputs,
            profile,
            &mut selectors,
            &mut invalid,
        )?;
        actions.push(json.map_or(Value::Null, |j| {
            Value::Bytes(j.into_value().to_json_with(profile.escapes()).into_bytes())
        }));
        indexes.push([action.input, action.secondary_input, action.output]);
    }
    let mut wrapper = Object::new()
        .field("Type", FILE_TYPE)
        .field("Actions", Value::Array(actions));
    if !is_default_indexes(&indexes) {
        wrapper = wrapper.field(
            "indexes",
            Value::array(indexes.iter().map(|t| Value::array(t.iter().copied()))),
        );
    }
    let pre_image = wrapper.into_value().to_json_with(profile.escapes());
    let key = OpKey {
        digest: OpDigest::Stable(crate::Digest::sha256_of(pre_image.as_bytes())),
        pre_image,
    };
    let deps = (0..inputs)
        .map(|i| {
            let Some(sels) = selectors.get(&i) else {
                return (None, None);
            };
            if invalid.contains(&(i as i64)) {
                return (None, None);
            }
            // Descending byte order, "for historical reasons" in BuildKit.
            let mut paths: Vec<&str> = sels.iter().map(|s| s.path.as_str()).collect();
            paths.sort_unstable_by(|a, b| b.as_bytes().cmp(a.as_bytes()));
            (
                Some(nul_joined_digest(&paths)),
                Some(dedupe_selectors(sels, profile)),
            )
        })
        .collect();
    Ok((vec![key], deps))
}

fn action_json(
    vertex: VertexId,
    n: usize,
    action: &FileAction,
    inputs: usize,
    profile: KeyProfile,
    selectors: &mut Selectors,
    invalid: &mut BTreeSet<i64>,
) -> Result<Option<Object>, KeyError> {
    let mut mark_invalid = |i: i64| {
        if i != -1 {
            invalid.insert(i);
        }
    };
    let json = match &action.kind {
        FileActionKind::Copy(c) => {
            mark_invalid(action.input);
            process_owner(vertex, n, c.owner.as_ref(), inputs, profile, selectors)?;
            let mut src = c.src.clone();
            if action.secondary_input != -1
                && usize::try_from(action.secondary_input).is_ok_and(|s| s < inputs)
            {
                add_selector(
                    selectors,
                    action.secondary_input as usize,
                    ContentSelector {
                        path: c.src.clone(),
                        wildcard: c.allow_wildcard && contains_wildcards(&c.src),
                        follow_links: c.follow_symlink,
                        include_patterns: c.include_patterns.clone(),
                        exclude_patterns: c.exclude_patterns.clone(),
                    },
                    profile,
                );
                src = base_name(&c.src);
            }
            Object::new()
                .omit_empty("src", src)
                .omit_empty("dest", &c.dest)
                .optional("owner", c.owner.as_ref().map(|o| owner_json(o, profile)))
                .omit_empty("mode", c.mode)
                .omit_empty("followSymlink", c.follow_symlink)
                .omit_empty("dirCopyContents", c.dir_copy_contents)
                .omit_empty(
                    "attemptUnpackDockerCompatibility",
                    c.attempt_unpack_docker_compatibility,
                )
                .omit_empty("createDestPath", c.create_dest_path)
                .omit_empty("allowWildcard", c.allow_wildcard)
                .omit_empty("allowEmptyWildcard", c.allow_empty_wildcard)
                .omit_empty("timestamp", c.timestamp)
                .omit_empty("include_patterns", Value::array(c.include_patterns.iter()))
                .omit_empty("exclude_patterns", Value::array(c.exclude_patterns.iter()))
                .omit_empty(
                    "alwaysReplaceExistingDestPaths",
                    c.always_replace_existing_dest_paths,
                )
                .omit_empty("modeStr", &c.mode_str)
                .omit_empty("required_paths", Value::array(c.required_paths.iter()))
        }
        FileActionKind::Mkfile(m) => {
            mark_invalid(action.input);
            process_owner(vertex, n, m.owner.as_ref(), inputs, profile, selectors)?;
            Object::new()
                .omit_empty("path", &m.path)
                .omit_empty("mode", m.mode)
                .omit_empty("data", Value::Bytes(m.data.clone()))
                .optional("owner", m.owner.as_ref().map(|o| owner_json(o, profile)))
                .omit_empty("timestamp", m.timestamp)
        }
        FileActionKind::Mkdir(m) => {
            mark_invalid(action.input);
            process_owner(vertex, n, m.owner.as_ref(), inputs, profile, selectors)?;
            Object::new()
                .omit_empty("path", &m.path)
                .omit_empty("mode", m.mode)
                .omit_empty("makeParents", m.make_parents)
                .optional("owner", m.owner.as_ref().map(|o| owner_json(o, profile)))
                .omit_empty("timestamp", m.timestamp)
        }
        FileActionKind::Rm(r) => {
            mark_invalid(action.input);
            Object::new()
                .omit_empty("path", &r.path)
                .omit_empty("allowNotFound", r.allow_not_found)
                .omit_empty("allowWildcard", r.allow_wildcard)
        }
        FileActionKind::Symlink(s) => {
            // v0.8 has no symlink action: its switch leaves the entry nil, marshalled `null`.
            if !profile.v0_13() {
                return Ok(None);
            }
            mark_invalid(action.input);
            Object::new()
                .omit_empty("oldpath", &s.oldpath)
                .omit_empty("newpath", &s.newpath)
                .optional("owner", s.owner.as_ref().map(|o| owner_json(o, profile)))
                .omit_empty("timestamp", s.timestamp)
        }
    };
    Ok(Some(json))
}

/// `ChownOpt` as each version marshals it (spec section 5.6).
fn owner_json(owner: &ChownOpt, profile: KeyProfile) -> Object {
    let user = |u: &UserOpt| -> Object {
        let inner = match u {
            UserOpt::ByName { name, input } => {
                let named = Object::new().omit_empty("name", name);
                let named = if profile.protobuf_go() {
                    named.omit_empty("input", *input)
                } else {
                    named.field("input", *input)
                };
                Object::new().field("byName", named)
            }
            UserOpt::ById(id) => Object::new().omit_empty(
                if profile.protobuf_go() {
                    "byId"
                } else {
                    "byID"
                },
                *id,
            ),
        };
        Object::new().field("User", inner)
    };
    Object::new()
        .optional("user", owner.user.as_ref().map(user))
        .optional("group", owner.group.as_ref().map(user))
}

/// A chown by name reads `/etc/passwd` or `/etc/group` of the named input.
fn process_owner(
    vertex: VertexId,
    n: usize,
    owner: Option<&ChownOpt>,
    inputs: usize,
    profile: KeyProfile,
    selectors: &mut Selectors,
) -> Result<(), KeyError> {
    let Some(owner) = owner else { return Ok(()) };
    for (user, file) in [(&owner.user, "/etc/passwd"), (&owner.group, "/etc/group")] {
        if let Some(UserOpt::ByName { input, .. }) = user {
            let Some(i) = usize::try_from(*input).ok().filter(|i| *i < inputs) else {
                return Err(KeyError::InputOutOfRange {
                    vertex,
                    field: format!("action {n} owner"),
                    index: *input,
                    inputs,
                });
            };
            add_selector(
                selectors,
                i,
                ContentSelector {
                    path: file.to_owned(),
                    wildcard: false,
                    follow_links: true,
                    include_patterns: Vec::new(),
                    exclude_patterns: Vec::new(),
                },
                profile,
            );
        }
    }
    Ok(())
}

/// v0.8 keeps an input's selectors in a set; newer versions in a list.
fn add_selector(
    selectors: &mut Selectors,
    input: usize,
    sel: ContentSelector,
    profile: KeyProfile,
) {
    let list = selectors.entry(input).or_default();
    if profile.v0_13()
        || !list.iter().any(|s| {
            s.path == sel.path && s.wildcard == sel.wildcard && s.follow_links == sel.follow_links
        })
    {
        list.push(sel);
    }
}

fn contains_wildcards(path: &str) -> bool {
    let mut escaped = false;
    for c in path.chars() {
        match c {
            '\\' if !escaped => escaped = true,
            '*' | '?' | '[' if !escaped => return true,
            _ => escaped = false,
        }
    }
    false
}

/// BuildKit's `dedupeSelectors`: plain paths deduplicated per follow flag, wildcard (and
/// filtered) selectors kept, all sorted by path ascending (spec section 5.4).
fn dedupe_selectors(sels: &[ContentSelector], profile: KeyProfile) -> Vec<ContentSelector> {
    let special = |s: &ContentSelector| {
        s.wildcard || !s.include_patterns.is_empty() || !s.exclude_patterns.is_empty()
    };
    let plain = |follow: bool| -> Vec<String> {
        let paths: Vec<String> = sels
            .iter()
            .filter(|s| !special(s) && s.follow_links == follow)
            .map(|s| s.path.clone())
            .collect();
        dedupe_paths(&paths, profile)
    };
    let mut out: Vec<ContentSelector> = Vec::new();
    for follow in [false, true] {
        out.extend(plain(follow).into_iter().map(|path| ContentSelector {
            path,
            wildcard: false,
            follow_links: follow,
            include_patterns: Vec::new(),
            exclude_patterns: Vec::new(),
        }));
    }
    out.extend(sels.iter().filter(|s| special(s)).cloned());
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// BuildKit's `isDefaultIndexes`: the common wiring whose indexes older keys did not include.
fn is_default_indexes(indexes: &[[i64; 3]]) -> bool {
    if indexes.is_empty() {
        return false;
    }
    let n = indexes.len() as i64;
    indexes
        .iter()
        .enumerate()
        .all(|(i, [input, secondary, output])| {
            let i = i as i64;
            let input_ok = if i == 0 {
                *input == 0
            } else {
                *input == n + i - 1
            };
            let last = i == n - 1;
            input_ok
                && (*secondary == -1 || *secondary == 1)
                && (if last { *output == 0 } else { *output == -1 })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_indexes() {
        assert!(is_default_indexes(&[[0, 1, 0]]));
        assert!(is_default_indexes(&[[0, -1, 0]]));
        assert!(is_default_indexes(&[[0, 1, -1], [2, 1, 0]]));
        assert!(!is_default_indexes(&[[-1, 0, 0]]));
        assert!(!is_default_indexes(&[]));
        assert!(!is_default_indexes(&[[0, 1, 0], [2, 1, 0]]));
    }

    #[test]
    fn wildcards() {
        assert!(contains_wildcards("/*.txt"));
        assert!(contains_wildcards("a[bc]"));
        assert!(!contains_wildcards("/data.txt"));
        assert!(!contains_wildcards("a\\*b"));
    }
}
