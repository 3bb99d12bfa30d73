//! Keys during a solve: BuildKit's keys formed step by step, content keys of local-context
//! inputs, and the local cache key derived from them.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;

use inlay_core::Digest;
use inlay_core::cachekey::{KeyGraph, KeyId, KeyKind, RecordKey, VertexFacts};
use inlay_core::contenthash::{self, ContentTree, Selector, SourceKind, TreeOptions};
use inlay_core::op::{Input, VertexId};

use super::{Filesystem, Keys, SolveContext, SolveError, poisoned};
use crate::context::{ContextOptions, hash_directory};

impl SolveContext<'_, '_> {
    /// Adds the keys of `v` (content keys of local inputs computed first) and returns, per
    /// output, its local key and BuildKit record digests; outputs that cannot be keyed stably
    /// are left out (they are never cached).
    pub(super) fn add_keys(
        &self,
        v: VertexId,
        facts: &VertexFacts,
        inputs: &[Filesystem],
    ) -> Result<Vec<(u32, Digest, Vec<Digest>)>, SolveError> {
        let map = {
            let mut keys = self.keys.lock().map_err(poisoned)?;
            keys.solver.cache_map(v, facts)?.clone()
        };
        let mut content_keys = Vec::new();
        for (i, keying) in map.inputs.iter().enumerate() {
            let (Some(selectors), Some(Filesystem::Local(dir))) = (&keying.content, inputs.get(i))
            else {
                // Content keys of layered inputs would need their files; their definition keys
                // are stable already, so the local cache does without.
                continue;
            };
            let tree = self.context_tree(dir.path())?;
            let selectors: Vec<Selector> = selectors
                .iter()
                .map(|s| Selector::new(s.path.clone(), s.wildcard, s.follow_links))
                .collect();
            content_keys.push((i, contenthash::content_key(&tree, &selectors)?));
        }
        let mut keys = self.keys.lock().map_err(poisoned)?;
        keys.solver.add_vertex(v, facts, &content_keys)?;
        let Keys { solver, memo } = &mut *keys;
        let graph = solver.keys();
        let mut out = Vec::new();
        let outputs: Vec<Input> = graph
            .nodes()
            .iter()
            .filter_map(|n| match n.kind {
                KeyKind::Definition { vertex, output, .. } if vertex == v => {
                    Some(Input::new(vertex, output))
                }
                _ => None,
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for input in outputs {
            let ids = graph.keys_of(input).to_vec();
            let records: Vec<Digest> = ids
                .iter()
                .filter_map(|k| graph.node(*k).record.stable().cloned())
                .collect();
            if let Some(local) = ids.iter().rev().find_map(|k| local_key(graph, *k, memo)) {
                out.push((input.output, local, records));
            }
        }
        Ok(out)
    }

    fn context_tree(&self, dir: &std::path::Path) -> Result<Arc<ContentTree>, SolveError> {
        if let Some(tree) = self.trees.lock().map_err(poisoned)?.get(dir) {
            return Ok(tree.clone());
        }
        let options = ContextOptions::new(TreeOptions::new(
            self.options.profile.content_profile(),
            SourceKind::LocalContext,
        ));
        let tree = Arc::new(hash_directory(dir, &options)?);
        self.trees
            .lock()
            .map_err(poisoned)?
            .insert(dir.to_path_buf(), tree.clone());
        Ok(tree)
    }
}

/// The local cache key of key node `id`: its record digest and, per input, the key of one
/// alternative (a content key when there is one, as it is the one that can match again for a
/// local context whose definition key is random), hashed together. `None` when the node or an
/// input has only random keys: such a result is never cached.
pub fn local_key<S: std::hash::BuildHasher>(
    keys: &KeyGraph,
    id: KeyId,
    memo: &mut HashMap<KeyId, Option<Digest>, S>,
) -> Option<Digest> {
    if let Some(known) = memo.get(&id) {
        return known.clone();
    }
    let node = keys.node(id);
    let result = match &node.record {
        RecordKey::Random(_) => None,
        RecordKey::Stable(record) => {
            let mut pre = format!("inlay-local-key-v1 {record}");
            let mut complete = true;
            for (i, alternatives) in node.inputs.iter().enumerate() {
                let chosen = alternatives.iter().rev().find_map(|link| {
                    local_key(keys, link.key, memo).map(|d| (d, link.selector.clone()))
                });
                let Some((digest, selector)) = chosen else {
                    complete = false;
                    break;
                };
                let selector = selector.map(|s| s.to_string()).unwrap_or_default();
                let _ = write!(pre, " {i}:{digest}:{selector}");
            }
            complete.then(|| Digest::sha256_of(pre.as_bytes()))
        }
    };
    memo.insert(id, result.clone());
    result
}
