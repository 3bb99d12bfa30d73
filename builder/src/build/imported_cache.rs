//! The solver's cache for a build with `--cache-from`: the local store first, then the
//! imported records, matched link by link as BuildKit's cache manager does (spec section 4.6).
//!
//! Imported hits are verified before they are used: every layer of the result must exist in
//! its repository with the size the record promises (one `HEAD` per layer, no bytes moved). A
//! result that fails is skipped with a warning and the next candidate, or the step itself,
//! takes its place. A layer that later turns out to be wrong when it is pulled (its bytes or
//! its diffID) is [distrusted](Distrust) and the build solves again without it (see
//! [`super::run`]), so a lying cache costs a rerun, never a wrong image.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use inlay_core::Digest;
use inlay_core::cache::artifact::distribution_sources;
use inlay_core::cache::matcher::{Alternative, MatchSet};
use inlay_core::cache::{CacheStore, RecordRef, StoredResult};
use inlay_core::cachekey::{KeyGraph, KeyId};

use crate::progress::CacheOrigin;
use crate::solver::{CacheHit, CacheQuery, LayerRef, LocalCache, ResultCache, SolveError};
use crate::source::ImageSource;

/// Layers a build no longer trusts from imported caches, by blob digest or diffID, with the
/// reason; shared across the solves of one build.
#[derive(Debug, Clone, Default)]
pub struct Distrust {
    layers: Arc<Mutex<BTreeMap<Digest, String>>>,
}

impl Distrust {
    /// Distrusts `digest` (a blob digest or a diffID); `false` when it already was.
    pub fn add(&self, digest: Digest, reason: String) -> bool {
        let mut layers = lock(&self.layers);
        if layers.contains_key(&digest) {
            return false;
        }
        layers.insert(digest, reason);
        true
    }

    /// Why the layer is distrusted, if it is.
    fn reason(&self, layer: &LayerRef) -> Option<String> {
        let layers = lock(&self.layers);
        layers
            .get(&layer.digest)
            .or_else(|| layers.get(&layer.diff_id))
            .cloned()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The maps stay valid even when a holder panicked.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The solver's cache: the local store first, then the imported records, matched by their
/// links as BuildKit's cache manager does (spec section 4.6). An imported hit is a list of
/// layer descriptors whose `origin` is the repository they can be pulled from; nothing is
/// downloaded here.
pub struct ImportedCache {
    local: LocalCache,
    imported: CacheStore,
    matched: Mutex<HashMap<KeyId, MatchSet>>,
    /// Where layers are checked (`None`: hits are taken on the record's word).
    registry: Option<Arc<dyn ImageSource>>,
    /// Verdicts per `(repository, blob)`: `None` when the layer is there as promised.
    checked: Mutex<HashMap<(String, Digest), Option<String>>>,
    distrust: Distrust,
    /// Blob digests and diffIDs of the imported results handed to the solver.
    served: Mutex<HashSet<Digest>>,
    warnings: Mutex<Vec<String>>,
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
            registry: None,
            checked: Mutex::new(HashMap::new()),
            distrust: Distrust::default(),
            served: Mutex::new(HashSet::new()),
            warnings: Mutex::new(Vec::new()),
        }
    }

    /// Checks every layer of an imported hit in `registry` (exists, promised size) and skips
    /// layers in `distrust`.
    #[must_use]
    pub fn verified(mut self, registry: Arc<dyn ImageSource>, distrust: Distrust) -> ImportedCache {
        self.registry = Some(registry);
        self.distrust = distrust;
        self
    }

    /// The results rejected so far, one line each.
    pub fn warnings(&self) -> Vec<String> {
        lock(&self.warnings).clone()
    }

    /// Whether `digest` (blob or diffID) came from an imported result in this solve.
    pub fn served(&self, digest: &Digest) -> bool {
        lock(&self.served).contains(digest)
    }

    /// Every loadable result among `matched`, best first: newest `createdAt`, then the local
    /// origin, then the earlier origin and record (the order of
    /// [`CacheStore::best_result`]).
    fn candidates(&self, matched: &MatchSet) -> Vec<(RecordRef, &StoredResult)> {
        let mut all: Vec<(RecordRef, &StoredResult)> = matched
            .iter()
            .flat_map(|r| {
                self.imported
                    .record(r)
                    .results
                    .iter()
                    .map(move |res| (r, res))
            })
            .collect();
        all.sort_by(|(a, ra), (b, rb)| {
            rb.created_at
                .unix_nanos()
                .cmp(&ra.created_at.unix_nanos())
                .then_with(|| {
                    let local = |r: &RecordRef| !self.imported.origin(r.origin).is_local();
                    local(a).cmp(&local(b))
                })
        });
        all
    }

    /// `None` when every layer can be loaded as the record promises, else why not.
    fn rejection(&self, layers: &[LayerRef]) -> Option<String> {
        for layer in layers {
            if let Some(reason) = self.distrust.reason(layer) {
                return Some(format!("layer {} {reason}", layer.digest));
            }
            let Some(registry) = &self.registry else {
                continue;
            };
            if self.local.store().has_blob(&layer.digest) {
                continue;
            }
            let Some(origin) = &layer.origin else {
                return Some(format!(
                    "layer {} names no repository to pull it from",
                    layer.digest
                ));
            };
            let key = (origin.clone(), layer.digest.clone());
            if let Some(verdict) = lock(&self.checked).get(&key) {
                if let Some(reason) = verdict {
                    return Some(reason.clone());
                }
                continue;
            }
            let verdict = match registry.blob_size(origin, &layer.digest) {
                // 0: the registry gave no length; existence is all it showed.
                Ok(Some(size)) if size == layer.size || size == 0 => None,
                Ok(Some(size)) => Some(format!(
                    "layer {} is {size} bytes in {origin}, the record promises {}",
                    layer.digest, layer.size
                )),
                Ok(None) => Some(format!("layer {} is missing from {origin}", layer.digest)),
                Err(e) => Some(format!("layer {} could not be checked: {e}", layer.digest)),
            };
            lock(&self.checked).insert(key, verdict.clone());
            if verdict.is_some() {
                return verdict;
            }
        }
        None
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
            for (record, result) in self.candidates(&matched) {
                let Some(layers) = layer_refs(result) else {
                    continue;
                };
                let origin = self.imported.origin(record.origin).label();
                if let Some(reason) = self.rejection(&layers) {
                    lock(&self.warnings).push(format!(
                        "{}: not taken from {origin}: {reason}",
                        query.vertex.description
                    ));
                    continue;
                }
                lock(&self.served).extend(
                    layers
                        .iter()
                        .flat_map(|l| [l.digest.clone(), l.diff_id.clone()]),
                );
                return Ok(Some(CacheHit {
                    layers,
                    origin: CacheOrigin::Other(origin.to_owned()),
                }));
            }
        }
        Ok(None)
    }

    fn save(&self, query: &CacheQuery<'_>, layers: &[LayerRef]) -> Result<(), SolveError> {
        self.local.save(query, layers)
    }
}

/// The layers of an imported result, each with its diffID and the repository it can be pulled
/// from; `None` when a descriptor lacks its diffID or has a negative size.
fn layer_refs(result: &StoredResult) -> Option<Vec<LayerRef>> {
    result
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
        .collect()
}
