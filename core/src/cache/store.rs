//! An in-memory cache store: imported record graphs and locally known results, indexed the way
//! BuildKit's key storage indexes them (spec section 4.5).
//!
//! Each [`Origin`] is one cache manager: one imported inline cache (one platform manifest), one
//! registry cache config, or the local cache. Matching happens inside one origin, because a
//! key's links must all be found in the same store (spec section 4.6 step 2); the
//! [`crate::cache::matcher`] queries fan out over all origins.
//!
//! Inside an origin, records without inputs are identified by their digest (BuildKit uses the
//! digest as their storage id, so equal roots are one), others by position; links are indexed
//! by (parent, dependent record digest, input index, selector).

use std::collections::HashMap;

use crate::Digest;
use crate::cache::{CacheConfig, CacheRecord, RecordGraph, Timestamp};
use crate::cachekey::{KeyGraph, KeyId, RecordKey};
use crate::descriptor::Descriptor;

/// Identifies an origin inside its [`CacheStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OriginId(pub usize);

/// A record inside a [`CacheStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordRef {
    /// The origin holding it.
    pub origin: OriginId,
    /// Its position in the origin.
    pub record: usize,
}

/// A loadable result: the layer descriptors of its filesystem, base first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResult {
    /// The layers (with `containerd.io/uncompressed` annotations when imported).
    pub layers: Vec<Descriptor>,
    /// When the exporter stored it; the newest wins.
    pub created_at: Timestamp,
}

/// A link to a parent record of the same origin.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StoredLink {
    /// The parent's position in the origin.
    pub parent: usize,
    /// The link's selector.
    pub selector: Option<Digest>,
}

/// A record of an origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Its record digest.
    pub digest: Digest,
    /// Per input, the alternative parents.
    pub inputs: Vec<Vec<StoredLink>>,
    /// Its loadable results (results whose layers could not all be found were dropped).
    pub results: Vec<StoredResult>,
    /// The positions of the records it came from in the imported graph (several for merged
    /// roots; empty for local records).
    pub imported_from: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LinkKey {
    parent: usize,
    dependent: Digest,
    input: usize,
    selector: Option<Digest>,
}

/// One cache manager's records.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    label: String,
    local: bool,
    records: Vec<StoredRecord>,
    roots: HashMap<Digest, usize>,
    links: HashMap<LinkKey, Vec<usize>>,
    by_digest: HashMap<Digest, Vec<usize>>,
    by_parent: HashMap<(usize, usize), Vec<usize>>,
    structural: HashMap<(Digest, Vec<Vec<StoredLink>>), usize>,
}

impl Origin {
    /// Where the records came from (`registry.example/app:cache linux/amd64`, `local`).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether this is the local cache (preferred on equal `createdAt`).
    pub fn is_local(&self) -> bool {
        self.local
    }

    /// The records.
    pub fn records(&self) -> &[StoredRecord] {
        &self.records
    }

    /// The root record with digest `digest`.
    pub fn root(&self, digest: &Digest) -> Option<usize> {
        self.roots.get(digest).copied()
    }

    /// The records with digest `digest`, roots and others.
    pub fn with_digest(&self, digest: &Digest) -> &[usize] {
        self.by_digest.get(digest).map_or(&[], Vec::as_slice)
    }

    /// The records that `dependent_digest` names and that link to `parent` on input `input`
    /// with exactly `selector`.
    pub fn linked(
        &self,
        parent: usize,
        dependent_digest: &Digest,
        input: usize,
        selector: Option<&Digest>,
    ) -> &[usize] {
        let key = LinkKey {
            parent,
            dependent: dependent_digest.clone(),
            input,
            selector: selector.cloned(),
        };
        self.links.get(&key).map_or(&[], Vec::as_slice)
    }

    /// Every record linking to `parent` on input `input`, whatever its digest or selector (for
    /// miss explanations: "what was built on this before").
    pub fn dependents(&self, parent: usize, input: usize) -> &[usize] {
        self.by_parent
            .get(&(parent, input))
            .map_or(&[], Vec::as_slice)
    }

    fn add(&mut self, record: StoredRecord) -> usize {
        let index = self.records.len();
        if record.inputs.is_empty() {
            self.roots.insert(record.digest.clone(), index);
        }
        self.by_digest
            .entry(record.digest.clone())
            .or_default()
            .push(index);
        for (i, alternatives) in record.inputs.iter().enumerate() {
            for link in alternatives {
                let key = LinkKey {
                    parent: link.parent,
                    dependent: record.digest.clone(),
                    input: i,
                    selector: link.selector.clone(),
                };
                let linked = self.links.entry(key).or_default();
                if !linked.contains(&index) {
                    linked.push(index);
                }
                let deps = self.by_parent.entry((link.parent, i)).or_default();
                if !deps.contains(&index) {
                    deps.push(index);
                }
            }
        }
        self.structural
            .entry((record.digest.clone(), record.inputs.clone()))
            .or_insert(index);
        self.records.push(record);
        index
    }

    /// The record with this digest and these links, created if missing.
    fn intern(&mut self, digest: &Digest, mut inputs: Vec<Vec<StoredLink>>) -> usize {
        for alternatives in &mut inputs {
            alternatives.sort();
            alternatives.dedup();
        }
        if inputs.is_empty() {
            if let Some(root) = self.root(digest) {
                return root;
            }
        } else if let Some(found) = self.structural.get(&(digest.clone(), inputs.clone())) {
            return *found;
        }
        self.add(StoredRecord {
            digest: digest.clone(),
            inputs,
            results: Vec::new(),
            imported_from: Vec::new(),
        })
    }
}

/// Every cache the build can hit: imported origins and the local cache.
#[derive(Debug, Clone, Default)]
pub struct CacheStore {
    origins: Vec<Origin>,
}

impl CacheStore {
    /// An empty store.
    pub fn new() -> CacheStore {
        CacheStore::default()
    }

    /// The origins, in the order they were added.
    pub fn origins(&self) -> &[Origin] {
        &self.origins
    }

    /// Origin `id`.
    ///
    /// # Panics
    /// When `id` does not come from this store.
    pub fn origin(&self, id: OriginId) -> &Origin {
        &self.origins[id.0]
    }

    /// The record `r`.
    ///
    /// # Panics
    /// When `r` does not come from this store.
    pub fn record(&self, r: RecordRef) -> &StoredRecord {
        &self.origins[r.origin.0].records[r.record]
    }

    /// Adds an imported record graph as a new origin; `results` gives the loadable results of
    /// each record (by its position in `graph`).
    pub fn import(
        &mut self,
        label: impl Into<String>,
        graph: &RecordGraph,
        mut results: impl FnMut(usize, &CacheRecord) -> Vec<StoredResult>,
    ) -> OriginId {
        let mut origin = Origin {
            label: label.into(),
            ..Origin::default()
        };
        let mut stored = vec![0usize; graph.len()];
        for r in graph.topological_order() {
            let record = &graph.records()[r];
            let found = results(r, record);
            let index = if record.is_root() {
                if let Some(existing) = origin.root(&record.digest) {
                    existing
                } else {
                    origin.add(StoredRecord {
                        digest: record.digest.clone(),
                        inputs: Vec::new(),
                        results: Vec::new(),
                        imported_from: Vec::new(),
                    })
                }
            } else {
                let inputs = record
                    .inputs
                    .iter()
                    .map(|alternatives| {
                        let mut links: Vec<StoredLink> = alternatives
                            .iter()
                            .map(|a| StoredLink {
                                parent: stored[a.link],
                                selector: a.selector.clone(),
                            })
                            .collect();
                        links.sort();
                        links.dedup();
                        links
                    })
                    .collect();
                origin.add(StoredRecord {
                    digest: record.digest.clone(),
                    inputs,
                    results: Vec::new(),
                    imported_from: Vec::new(),
                })
            };
            let target = &mut origin.records[index];
            target.imported_from.push(r);
            target.results.extend(found);
            stored[r] = index;
        }
        self.origins.push(origin);
        OriginId(self.origins.len() - 1)
    }

    /// Adds an inline cache: `image_layers` are the manifest's layer descriptors (annotated by
    /// the importer with their diffIDs), a `layers` result `k` is layers `0..=k`, a `chains`
    /// result its list; results naming a layer the image lacks are dropped (spec section 4.4).
    pub fn import_inline(
        &mut self,
        label: impl Into<String>,
        graph: &RecordGraph,
        image_layers: &[Descriptor],
    ) -> OriginId {
        self.import(label, graph, |_, record| {
            record
                .image_layer_lists_within(image_layers.len())
                .into_iter()
                .filter_map(|(positions, created_at)| {
                    let layers: Option<Vec<Descriptor>> = positions
                        .iter()
                        .map(|p| image_layers.get(*p).cloned())
                        .collect();
                    Some(StoredResult {
                        layers: layers?,
                        created_at,
                    })
                })
                .collect()
        })
    }

    /// Adds a registry cache config; `blobs` are the layer descriptors its container lists.
    /// A result with a layer whose blob has no descriptor is dropped (spec section 2.6).
    pub fn import_config(
        &mut self,
        label: impl Into<String>,
        config: &CacheConfig,
        blobs: &HashMap<Digest, Descriptor>,
    ) -> OriginId {
        let layer = |l: usize| -> Option<Descriptor> {
            config
                .layers()
                .get(l)
                .and_then(|layer| blobs.get(&layer.blob))
                .cloned()
        };
        self.import(label, config.graph(), |_, record| {
            let prefixes = record
                .results
                .iter()
                .map(|r| (config.chain(r.layer), r.created_at));
            let chains = record
                .chains
                .iter()
                .map(|c| (c.layers.clone(), c.created_at));
            prefixes
                .chain(chains)
                .filter_map(|(indexes, created_at)| {
                    let layers: Option<Vec<Descriptor>> = indexes.into_iter().map(layer).collect();
                    let layers = layers.filter(|l| !l.is_empty())?;
                    Some(StoredResult { layers, created_at })
                })
                .collect()
        })
    }

    /// The local cache's origin, created on first use.
    pub fn local(&mut self) -> OriginId {
        if let Some(i) = self.origins.iter().position(|o| o.local) {
            return OriginId(i);
        }
        self.origins.push(Origin {
            label: "local".to_owned(),
            local: true,
            ..Origin::default()
        });
        OriginId(self.origins.len() - 1)
    }

    /// Stores key `key` of `keys` (with every exportable key it depends on) in the local cache,
    /// with `result` if given: what the builder does after running or loading an op, so later
    /// builds (and the rest of this one) find it. Random keys are skipped; returns `None` when
    /// the key is random or an input has no storable link.
    pub fn record_local(
        &mut self,
        keys: &KeyGraph,
        key: KeyId,
        result: Option<StoredResult>,
    ) -> Option<RecordRef> {
        let origin_id = self.local();
        let origin = &mut self.origins[origin_id.0];
        let mut stored: HashMap<KeyId, usize> = HashMap::new();
        let mut order = Vec::new();
        let mut stack = vec![key];
        let mut seen = std::collections::BTreeSet::new();
        while let Some(id) = stack.pop() {
            if id.0 >= keys.nodes().len() || !seen.insert(id) {
                continue;
            }
            order.push(id);
            stack.extend(keys.node(id).inputs.iter().flatten().map(|l| l.key));
        }
        order.sort();
        for id in order {
            let node = keys.node(id);
            let RecordKey::Stable(digest) = &node.record else {
                continue;
            };
            let inputs: Option<Vec<Vec<StoredLink>>> = node
                .inputs
                .iter()
                .map(|alternatives| {
                    let links: Vec<StoredLink> = alternatives
                        .iter()
                        .filter_map(|a| {
                            stored.get(&a.key).map(|p| StoredLink {
                                parent: *p,
                                selector: a.selector.clone(),
                            })
                        })
                        .collect();
                    (!links.is_empty()).then_some(links)
                })
                .collect();
            if let Some(inputs) = inputs {
                stored.insert(id, origin.intern(digest, inputs));
            }
        }
        let index = *stored.get(&key)?;
        if let Some(result) = result {
            let record = &mut origin.records[index];
            if !record.results.contains(&result) {
                record.results.push(result);
            }
        }
        Some(RecordRef {
            origin: origin_id,
            record: index,
        })
    }
}
