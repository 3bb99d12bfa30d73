//! Asking a cache before running a step, and the local cache index kept in the store.

use std::collections::BTreeMap;

use inlay_core::Digest;
use inlay_core::cachekey::{KeyGraph, KeyId};
use inlay_core::op::Vertex;

use super::{Filesystem, LayerRef, SolveError};
use crate::progress::CacheOrigin;
use crate::store::Store;

/// What a cache is asked about one output of a vertex.
#[derive(Debug)]
pub struct CacheQuery<'a> {
    /// The vertex.
    pub vertex: &'a Vertex,
    /// Which output.
    pub output: u32,
    /// The results of the vertex's inputs, in input order.
    pub inputs: &'a [Filesystem],
    /// The output's key as the local store indexes it (folds in the whole chain of keys and
    /// content keys below it; see [`super::local_key`]).
    pub local_key: &'a Digest,
    /// The BuildKit record digests of the output (one per CacheMap digest), for caches keyed
    /// like BuildKit's (an imported inline cache).
    pub record_digests: &'a [Digest],
    /// The BuildKit keys formed so far (this output's and every ancestor's), for caches that
    /// match by links (an imported inline cache, spec section 4.6); `None` on save.
    pub key_graph: Option<&'a KeyGraph>,
    /// This output's keys in [`CacheQuery::key_graph`].
    pub key_ids: &'a [KeyId],
}

/// A result a cache had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheHit {
    /// The layer chain.
    pub layers: Vec<LayerRef>,
    /// Where it came from.
    pub origin: CacheOrigin,
}

/// A cache the solver asks before running a step and tells about every result it computed.
pub trait ResultCache: Send + Sync {
    /// The cached result of `query`, if any.
    fn lookup(&self, query: &CacheQuery<'_>) -> Result<Option<CacheHit>, SolveError>;

    /// Records a freshly computed result.
    fn save(&self, query: &CacheQuery<'_>, layers: &[LayerRef]) -> Result<(), SolveError>;
}

/// The key of the local cache map in the store's `index.json`.
const INDEX_KEY: &str = "inlay.localCache.v1";

/// The local cache: `index.json` maps local key digests to layer chains. A hit is only given
/// when every layer can still be had (its blob is in the store, or it names an image to pull it
/// from), so a pruned store degrades to misses, never to failures.
#[derive(Debug, Clone)]
pub struct LocalCache {
    store: Store,
}

impl LocalCache {
    /// The local cache of `store`.
    pub fn new(store: Store) -> LocalCache {
        LocalCache { store }
    }

    /// The store it indexes.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn entries(&self) -> Result<BTreeMap<String, Vec<LayerRef>>, SolveError> {
        let index = self.store.index()?;
        Ok(index
            .extra
            .get(INDEX_KEY)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default())
    }
}

impl ResultCache for LocalCache {
    fn lookup(&self, query: &CacheQuery<'_>) -> Result<Option<CacheHit>, SolveError> {
        let entries = self.entries()?;
        let Some(layers) = entries.get(query.local_key.as_str()) else {
            return Ok(None);
        };
        let available = layers
            .iter()
            .all(|l| l.origin.is_some() || self.store.has_blob(&l.digest));
        Ok(available.then(|| CacheHit {
            layers: layers.clone(),
            origin: CacheOrigin::Local,
        }))
    }

    fn save(&self, query: &CacheQuery<'_>, layers: &[LayerRef]) -> Result<(), SolveError> {
        let value = serde_json::to_value(layers).map_err(|e| SolveError::Internal {
            reason: format!("serialising a cache entry: {e}"),
        })?;
        self.store.update_index(|index| {
            let map = index
                .extra
                .entry(INDEX_KEY.to_owned())
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            if let Some(map) = map.as_object_mut() {
                map.insert(query.local_key.to_string(), value);
            }
        })?;
        Ok(())
    }
}
