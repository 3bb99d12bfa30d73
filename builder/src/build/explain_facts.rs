//! The explain facts a pushed build leaves beside its image (see
//! [`inlay_core::cache::artifact::INLAY_EXPLAIN_ARTIFACT_TYPE`]): the base digests, every
//! step's description and record digests, and the checksum of every context file a `COPY`/`ADD`
//! read, so that a later check names the files that changed rather than "the sources".
//! Records carry digests only; the image config's history carries the final chain's texts but
//! nothing about files or non-final stages.

use std::collections::BTreeMap;
use std::path::Path;

use inlay_core::Digest;
use inlay_core::cache::artifact::{BaseFact, ExplainFacts, StepFact};
use inlay_core::contenthash::{ContentTree, Selector, SourceKind, TreeOptions, path_match};
use inlay_core::op::Op;
use inlay_frontend_dockerfile::lower::ContentOrigin;

use super::Prepared;
use crate::context::{ContextOptions, hash_directory};
use crate::plan::read_dockerignore;

/// How many files one step lists at most (the blob stays small; the check names a few).
const MAX_PATHS_PER_STEP: usize = 256;

/// The facts of a prepared build. Context problems leave the paths out, never fail.
pub(super) fn facts(prepared: &Prepared) -> ExplainFacts {
    let plan = &prepared.plan;
    let tree = context_tree(prepared);
    let bases = prepared
        .input
        .bases
        .iter()
        .map(|b| BaseFact {
            reference: b.reference.to_string(),
            digest: b.manifest.clone(),
        })
        .collect();
    let mut steps = Vec::new();
    for (step, keys) in plan.lowered.steps.iter().zip(&plan.steps) {
        if matches!(
            plan.lowered.graph.vertex(step.output.vertex).op,
            Op::Source(_)
        ) {
            continue;
        }
        let mut fact = StepFact {
            description: step.description.clone(),
            records: keys.records.clone(),
            paths: BTreeMap::new(),
            paths_truncated: false,
        };
        if let Some(tree) = &tree {
            for content in plan
                .content
                .iter()
                .filter(|c| c.vertex == step.output.vertex && c.origin == ContentOrigin::Context)
            {
                let (paths, truncated) =
                    file_checksums(&prepared.input.context_dir, tree, &content.selectors);
                fact.paths.extend(paths);
                fact.paths_truncated |= truncated;
            }
        }
        steps.push(fact);
    }
    ExplainFacts { bases, steps }
}

/// The context as the build read it (the paths it needs, `.dockerignore` applied).
fn context_tree(prepared: &Prepared) -> Option<ContentTree> {
    let plan = &prepared.plan;
    if !plan
        .content
        .iter()
        .any(|c| c.origin == ContentOrigin::Context)
    {
        return None;
    }
    let input = &prepared.input;
    let mut options = ContextOptions::new(TreeOptions::new(
        input.profile.content_profile(),
        SourceKind::LocalContext,
    ));
    if let Some(paths) = &plan.lowered.context_paths {
        options = options.including(paths.iter().cloned());
    }
    if let Ok(Some(ignore)) = read_dockerignore(&input.context_dir, &input.dockerfile_name) {
        options = options.excluding(ignore);
    }
    hash_directory(&input.context_dir, &options).ok()
}

/// The checksum of every file under `selectors` (walking the context directory; files the
/// tree does not hold, e.g. ignored ones, are left out).
fn file_checksums(
    root: &Path,
    tree: &ContentTree,
    selectors: &[Selector],
) -> (BTreeMap<String, Digest>, bool) {
    let mut files = Vec::new();
    walk(root, "", &mut files);
    let mut out = BTreeMap::new();
    let mut truncated = false;
    for file in files {
        let wanted = selectors.iter().any(|s| covers(s, &file));
        if !wanted {
            continue;
        }
        if out.len() == MAX_PATHS_PER_STEP {
            truncated = true;
            break;
        }
        if let Ok(digest) = tree.checksum(&file, false) {
            out.insert(file, digest);
        }
    }
    (out, truncated)
}

/// Whether `file` (`/a/b`) is the selector's path or below it (a wildcard matches any
/// prefix of the file's components).
fn covers(selector: &Selector, file: &str) -> bool {
    let path = if selector.path.starts_with('/') {
        selector.path.clone()
    } else {
        format!("/{}", selector.path)
    };
    let path = path.trim_end_matches('/');
    if path.is_empty() || path == "/." {
        return true;
    }
    if !selector.wildcard {
        return file == path || file.starts_with(&format!("{path}/"));
    }
    let mut prefix = String::new();
    for component in file.split('/').filter(|c| !c.is_empty()) {
        prefix.push('/');
        prefix.push_str(component);
        if path_match(path, &prefix).unwrap_or(false) {
            return true;
        }
    }
    false
}

/// Every regular file and symlink below `dir`, as `/relative/path`, sorted.
fn walk(root: &Path, relative: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(root.join(relative.trim_start_matches('/'))) else {
        return;
    };
    let mut names: Vec<_> = entries.flatten().collect();
    names.sort_by_key(std::fs::DirEntry::file_name);
    for entry in names {
        let path = format!("{relative}/{}", entry.file_name().to_string_lossy());
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(root, &path, out),
            Ok(_) => out.push(path),
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_cover_their_path_and_below() {
        let plain = Selector::new("/src".to_owned(), false, false);
        assert!(covers(&plain, "/src"));
        assert!(covers(&plain, "/src/a.txt"));
        assert!(!covers(&plain, "/srcx"));
        let wild = Selector::new("/*.txt".to_owned(), true, false);
        assert!(covers(&wild, "/a.txt"));
        assert!(!covers(&wild, "/a.md"));
        let root = Selector::new("/".to_owned(), false, false);
        assert!(covers(&root, "/anything"));
    }
}
