//! The solver's cache for a build with `--cache-from`: the local store first, then the
//! imported records, matched link by link as BuildKit's cache manager does (spec section 4.6).

use std::collections::HashMap;
use std::sync::Mutex;

use inlay_core::Digest;
use inlay_core::cache::CacheStore;
use inlay_core::cache::artifact::distribution_sources;
use inlay_core::cache::matcher::{Alternative, MatchSet};
use inlay_core::cachekey::{KeyGraph, KeyId};

use crate::progress::CacheOrigin;
use crate::solver::{CacheHit, CacheQuery, LayerRef, LocalCache, ResultCache, SolveError};

/// The solver's cache: the local store first, then the imported records, matched by their
/// links as BuildKit's cache manager does (spec section 4.6). An imported hit is a list of
/// layer descriptors whose `origin` is the repository they can be pulled from; nothing is
/// downloaded here.
pub struct ImportedCache {
    local: LocalCache,
    imported: CacheStore,
    matched: Mutex<HashMap<KeyId, MatchSet>>,
}

impl std::fmt::Debug for ImportedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportedCache")
            .field("origins", &self.imported.origins().len())
            .finish_non_exhaustive()
    }
}

impl ImportedCache {
    /// Asks `local`, then `imported`.
    pub fn new(local: LocalCache, imported: CacheStore) -> ImportedCache {
        ImportedCache {
            local,
            imported,
            matched: Mutex::new(HashMap::new()),
        }
    }

    /// The records key `id` matches (memoised: keys never change within a solve).
    fn match_key(
        &self,
        keys: &KeyGraph,
        id: KeyId,
        memo: &mut HashMap<KeyId, MatchSet>,
    ) -> MatchSet {
        if let Some(m) = memo.get(&id) {
            return m.clone();
        }
        let node = keys.node(id);
        let matched = match node.record.stable() {
            None => MatchSet::new(),
            Some(digest) if node.inputs.is_empty() => self.imported.match_root(digest),
            Some(digest) => {
                let parents: Vec<Vec<(MatchSet, Option<Digest>)>> = node
                    .inputs
                    .iter()
                    .map(|links| {
                        links
                            .iter()
                            .map(|l| (self.match_key(keys, l.key, memo), l.selector.clone()))
                            .collect()
                    })
                    .collect();
                let alternatives: Vec<Vec<Alternative<'_>>> = parents
                    .iter()
                    .map(|links| {
                        links
                            .iter()
                            .map(|(m, s)| Alternative {
                                parents: m,
                                selector: s.as_ref(),
                            })
                            .collect()
                    })
                    .collect();
                self.imported.match_dependent(digest, &alternatives)
            }
        };
        memo.insert(id, matched.clone());
        matched
    }
}

impl ResultCache for ImportedCache {
    fn lookup(&self, query: &CacheQuery<'_>) -> Result<Option<CacheHit>, SolveError> {
        if let Some(hit) = self.local.lookup(query)? {
            return Ok(Some(hit));
        }
        let Some(keys) = query.key_graph else {
            return Ok(None);
        };
        if self.imported.origins().is_empty() {
            return Ok(None);
        }
        let mut memo = self.matched.lock().map_err(|_| SolveError::Internal {
            reason: "imported cache lock poisoned".to_owned(),
        })?;
        for id in query.key_ids {
            let matched = self.match_key(keys, *id, &mut memo);
            let Some(hit) = self.imported.best_result(&matched) else {
                continue;
            };
            let layers: Option<Vec<LayerRef>> = hit
                .result
                .layers
                .iter()
                .map(|d| {
                    Some(LayerRef {
                        diff_id: d.uncompressed_digest()?,
                        digest: d.digest.clone(),
                        size: u64::try_from(d.size).ok()?,
                        media_type: d.media_type.clone(),
                        origin: distribution_sources(d)
                            .first()
                            .map(|(registry, repo)| format!("{registry}/{repo}")),
                    })
                })
                .collect();
            if let Some(layers) = layers {
                return Ok(Some(CacheHit {
                    layers,
                    origin: CacheOrigin::Other(hit.origin.to_owned()),
                }));
            }
        }
        Ok(None)
    }

    fn save(&self, query: &CacheQuery<'_>, layers: &[LayerRef]) -> Result<(), SolveError> {
        self.local.save(query, layers)
    }
}
