//! Checksums of wildcard sources (spec 6.5), in the three shapes BuildKit has had.

use super::Profile;
use super::error::ContentHashError;
use super::path::{go_base, key_path, key_to_path, split_wildcards, to_key};
use super::pattern::path_match;
use super::tree::{ContentTree, RecordKind, Resolution};
use crate::digest::{Algorithm, Digest, Hasher};

/// How a profile walks and combines wildcard matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WildcardRule {
    /// v0.8: matched directories contribute their content digest; names are base names.
    Matches,
    /// v0.9 to v0.25: directory headers and files are listed one by one; names are base names.
    /// Before v0.25 symlinks inside a matched directory are followed too.
    IncludedBaseNames {
        /// Follow symlinks below a matched directory (v0.9 to v0.24).
        follow_nested: bool,
    },
    /// v0.26+: as above, but names are paths relative to the pattern's literal prefix, in key form.
    IncludedRelativeKeys,
}

impl Profile {
    pub(crate) fn wildcard_rule(self) -> WildcardRule {
        match self {
            Profile::BuildkitV08 => WildcardRule::Matches,
            Profile::BuildkitV09 | Profile::BuildkitV11 | Profile::BuildkitV13 => {
                WildcardRule::IncludedBaseNames {
                    follow_nested: true,
                }
            }
            Profile::BuildkitV25 => WildcardRule::IncludedBaseNames {
                follow_nested: false,
            },
            Profile::BuildkitCurrent => WildcardRule::IncludedRelativeKeys,
        }
    }
}

/// One path taken into a wildcard checksum.
struct Included {
    path: String,
    digest: Digest,
    symlink: bool,
    follow: bool,
}

impl ContentTree {
    /// The checksum of a wildcard source such as `/*.txt` (spec 6.5), with the rules of this
    /// tree's profile. Symlinks among the matches are followed when `follow_links` is set.
    pub fn checksum_wildcard(
        &self,
        pattern: &str,
        follow_links: bool,
    ) -> Result<Digest, ContentHashError> {
        let ends_in_separator = pattern.ends_with('/');
        let cleaned = key_path(pattern);
        let rule = self.options().profile.wildcard_rule();
        let (prefix, mut included) = match rule {
            WildcardRule::Matches => (String::new(), self.v08_matches(&cleaned, follow_links)?),
            _ => self.included_paths(&cleaned, ends_in_separator, follow_links, rule)?,
        };
        for item in &mut included {
            if item.follow && item.symlink {
                item.digest = self.checksum(&item.path, true)?;
            }
        }
        if included.is_empty() {
            return Ok(Digest::sha256_of(b""));
        }
        if included.len() == 1 && go_base(&cleaned) == go_base(&included[0].path) {
            return Ok(included[0].digest.clone());
        }
        let mut hasher = Hasher::new(Algorithm::Sha256);
        for (i, item) in included.iter().enumerate() {
            if rule == WildcardRule::IncludedRelativeKeys {
                let relative = item
                    .path
                    .strip_prefix(prefix.as_str())
                    .unwrap_or(&item.path);
                let key = to_key(relative);
                hasher.update(if key.is_empty() { &[0] } else { &key });
            } else {
                if i != 0 {
                    hasher.update(&[0]);
                }
                hasher.update(go_base(&item.path).as_bytes());
            }
            hasher.update(item.digest.as_str().as_bytes());
        }
        Ok(hasher.finish())
    }

    /// v0.8.3 `wildcards`: every non-header key whose path matches, in key order; a matched
    /// directory stands for its subtree.
    fn v08_matches(
        &self,
        pattern: &str,
        follow_links: bool,
    ) -> Result<Vec<Included>, ContentHashError> {
        let mut out = Vec::new();
        let mut skip: Option<Vec<u8>> = None;
        for (key, record) in &self.records {
            if skip.as_ref().is_some_and(|prefix| key.starts_with(prefix)) {
                continue;
            }
            if key.last() == Some(&0) {
                continue;
            }
            let path = key_to_path(key);
            if !matches(pattern, &path)? {
                continue;
            }
            if record.kind == RecordKind::Dir {
                let mut prefix = key.clone();
                prefix.push(0);
                skip = Some(prefix);
            }
            out.push(Included {
                path,
                digest: record.digest.clone(),
                symlink: matches!(record.kind, RecordKind::Symlink(_)),
                follow: follow_links,
            });
        }
        Ok(out)
    }

    /// v0.9+ `includedPaths` for a wildcard without include/exclude patterns: resolve the
    /// literal prefix (following symlinks), then walk keys from there, listing directory headers
    /// and files (never directory content records) whose path matches, and everything below a
    /// matched directory. Returns the literal prefix as the pattern spells it (`""` for `/`).
    fn included_paths(
        &self,
        pattern: &str,
        ends_in_separator: bool,
        follow_links: bool,
        rule: WildcardRule,
    ) -> Result<(String, Vec<Included>), ContentHashError> {
        let (literal, wild) = split_wildcards(pattern);
        let (orig_prefix, start) = if literal == "/" {
            (String::new(), Some(Vec::new()))
        } else {
            // The final literal component is followed only if wildcard components come after.
            let resolved = self
                .resolve(&key_path(&literal), !wild.is_empty())
                .map_err(|Resolution::TooManyLinks| ContentHashError::TooManyLinks {
                    path: literal.clone(),
                })?;
            (literal, resolved.map(|(key, _)| key))
        };
        let Some(start) = start else {
            return Ok((orig_prefix, Vec::new()));
        };
        let resolved_prefix = if orig_prefix.is_empty() {
            String::new()
        } else {
            key_to_path(&start)
        };
        let mut out: Vec<Included> = Vec::new();
        // Paths of the directory headers enclosing the current key.
        let mut parents: Vec<String> = Vec::new();
        let mut last_matched_dir = String::new();
        for (key, record) in self.records.range(start..) {
            let mut path = key_to_path(key);
            if let Some(after) = path.strip_prefix(resolved_prefix.as_str()) {
                path = format!("{orig_prefix}{after}");
            }
            while let Some(parent) = parents.last() {
                if path.starts_with(&format!("{parent}/")) {
                    break;
                }
                parents.pop();
            }
            let has_parent = !parents.is_empty();
            let dir_header = key.last() == Some(&0);
            if dir_header {
                path.pop();
                if path == pattern && ends_in_separator {
                    continue;
                }
            }
            if !pattern.is_empty()
                && (last_matched_dir.is_empty()
                    || !path.starts_with(&format!("{last_matched_dir}/")))
            {
                if !matches(pattern, &path)? {
                    continue;
                }
                last_matched_dir.clone_from(&path);
            }
            if record.kind == RecordKind::DirHeader {
                parents.push(path.clone());
            }
            if record.kind != RecordKind::Dir {
                // v0.25+ follows only matches that are not inside a matched directory.
                let follow_nested = matches!(
                    rule,
                    WildcardRule::IncludedBaseNames {
                        follow_nested: true
                    }
                );
                let follow = follow_links && (follow_nested || !has_parent);
                out.push(Included {
                    path,
                    digest: record.digest.clone(),
                    symlink: matches!(record.kind, RecordKind::Symlink(_)),
                    follow,
                });
            }
        }
        Ok((orig_prefix, out))
    }
}

fn matches(pattern: &str, path: &str) -> Result<bool, ContentHashError> {
    path_match(pattern, path).map_err(|_| ContentHashError::BadPattern {
        pattern: pattern.to_owned(),
    })
}
