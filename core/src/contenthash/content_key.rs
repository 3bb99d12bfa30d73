//! Content keys (spec 5.4) and the selector digests of file and exec ops (spec 5.3).

use super::Profile;
use super::error::ContentHashError;
use super::path::{absolute, contains_wildcards};
use super::tree::ContentTree;
use crate::digest::Digest;

/// One path an op reads from an input, as BuildKit's `llbsolver.Selector` holds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Selector {
    /// The path as the op spells it (e.g. a `COPY` source, `/data.txt`).
    pub path: String,
    /// Checksum it as a wildcard (spec 6.5).
    pub wildcard: bool,
    /// Follow a symlink in the final component.
    pub follow_links: bool,
}

impl Selector {
    /// A plain selector.
    pub fn new(path: impl Into<String>, wildcard: bool, follow_links: bool) -> Selector {
        Selector {
            path: path.into(),
            wildcard,
            follow_links,
        }
    }

    /// The selector of a copy action's source: a wildcard only if the action allows wildcards
    /// **and** the path really contains `*`, `?` or `[` (BuildKit `addSelector`).
    pub fn copy_source(src: &str, allow_wildcard: bool, follow_symlink: bool) -> Selector {
        Selector::new(
            src,
            allow_wildcard && contains_wildcards(src),
            follow_symlink,
        )
    }
}

/// The selector list a file op's content function sees (BuildKit `dedupeSelectors`): plain paths
/// de-duplicated per follow flag with any path below another listed path dropped, wildcards
/// kept as given, all sorted ascending by path. v0.8 first reduces the list to a set.
pub fn content_selectors(profile: Profile, selectors: &[Selector]) -> Vec<Selector> {
    let selectors = as_profile_list(profile, selectors);
    let mut out = Vec::with_capacity(selectors.len());
    for follow in [false, true] {
        let paths: Vec<&str> = selectors
            .iter()
            .filter(|s| !s.wildcard && s.follow_links == follow)
            .map(|s| s.path.as_str())
            .collect();
        out.extend(
            drop_descendants(profile, &paths)
                .into_iter()
                .map(|p| Selector::new(p, false, follow)),
        );
    }
    out.extend(selectors.iter().filter(|s| s.wildcard).cloned());
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// BuildKit `dedupePaths`: unique paths without those that have another listed path as an
/// ancestor, sorted. Before v0.13 the ancestor test appends `/` to the other path, so `/` hides
/// nothing; from v0.13 (`091fb2c80`) a trailing `/` is not doubled and `/` hides every path.
fn drop_descendants(profile: Profile, paths: &[&str]) -> Vec<String> {
    let mut unique: Vec<&str> = paths.to_vec();
    unique.sort_unstable();
    unique.dedup();
    let as_parent = |p: &str| {
        if profile >= Profile::BuildkitV13 && p.ends_with('/') {
            p.to_owned()
        } else {
            format!("{p}/")
        }
    };
    unique
        .iter()
        .filter(|p1| {
            !unique
                .iter()
                .any(|p2| p1 != &p2 && p1.starts_with(&as_parent(p2)))
        })
        .map(|p| (*p).to_owned())
        .collect()
}

/// v0.8 keeps selectors in a set keyed by (path, wildcard, follow); later versions in a list.
fn as_profile_list(profile: Profile, selectors: &[Selector]) -> Vec<Selector> {
    let mut list = selectors.to_vec();
    if profile == Profile::BuildkitV08 {
        list.sort();
        list.dedup();
    }
    list
}

/// The content key digest of one op input (spec 5.4): the checksum string of each selector
/// (after [`content_selectors`]; no selectors means the root), joined by 0x00, then sha256.
/// The cache record of the key is sha256(`"<key>@-1"`).
pub fn content_key(tree: &ContentTree, selectors: &[Selector]) -> Result<Digest, ContentHashError> {
    let mut selectors = content_selectors(tree.options().profile, selectors);
    if selectors.is_empty() {
        selectors.push(Selector::new("", false, false));
    }
    let mut joined = Vec::new();
    for (i, selector) in selectors.iter().enumerate() {
        if i != 0 {
            joined.push(0);
        }
        let path = absolute(&selector.path);
        let checksum = if selector.wildcard {
            tree.checksum_wildcard(&path, selector.follow_links)?
        } else {
            tree.checksum(&path, selector.follow_links)?
        };
        joined.extend_from_slice(checksum.as_str().as_bytes());
    }
    Ok(Digest::sha256_of(&joined))
}

/// The selector digest a file op puts on an input's definition link (spec 5.3): every source
/// path of the input sorted in descending byte order, joined by 0x00. v0.8 first reduces the
/// selectors to a set; later versions hash a repeated path twice.
pub fn file_op_selector_digest(profile: Profile, selectors: &[Selector]) -> Digest {
    let list = as_profile_list(profile, selectors);
    let mut paths: Vec<&str> = list.iter().map(|s| s.path.as_str()).collect();
    paths.sort_unstable_by(|a, b| b.cmp(a));
    Digest::sha256_of(paths.join("\0").as_bytes())
}

/// The selectors of an exec op's content function for one input (spec 5.3), given the
/// `selector` field of every mount that uses the input, in mount order: the paths the selector
/// digest uses, de-duplicated and sorted, each following links. From v0.13 a list holding `/`
/// means the whole input (no selectors).
pub fn exec_content_selectors(profile: Profile, mount_selectors: &[&str]) -> Vec<Selector> {
    let paths = exec_selector_paths(profile, mount_selectors);
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    let deduped = drop_descendants(profile, &paths);
    if profile >= Profile::BuildkitV13 && deduped.iter().any(|p| p.is_empty() || p == "/") {
        return Vec::new();
    }
    deduped
        .into_iter()
        .map(|p| Selector::new(p, false, true))
        .collect()
}

/// Up to v0.12 only non-empty mount selectors count; from v0.13 every mount does, an empty
/// selector meaning `/`. Each path is made absolute.
fn exec_selector_paths(profile: Profile, mount_selectors: &[&str]) -> Vec<String> {
    let every_mount = profile >= Profile::BuildkitV13;
    mount_selectors
        .iter()
        .filter(|s| every_mount || !s.is_empty())
        .map(|s| absolute(s))
        .collect()
}

/// The selector digest an exec op puts on an input (spec 5.3), given the `selector` field of
/// every mount that uses the input, in mount (destination) order. Up to v0.12 only non-empty
/// selectors count, so a plain `RUN` has none (`None`); from v0.13 every mount counts, an empty
/// selector meaning `/`. Each path is made absolute and the list is joined by 0x00. From v0.13
/// the caller leaves out secret, ssh and tmpfs mounts, which BuildKit skips.
pub fn exec_selector_digest(profile: Profile, mount_selectors: &[&str]) -> Option<Digest> {
    let paths = exec_selector_paths(profile, mount_selectors);
    if paths.is_empty() {
        return None;
    }
    Some(Digest::sha256_of(paths.join("\0").as_bytes()))
}
