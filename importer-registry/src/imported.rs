//! What an import produced: per cache reference, one record graph per origin (one platform
//! manifest's inline cache, one registry cache config, one stages artifact) with the lazy layer
//! descriptors its results point at, ready to be added to a [`CacheStore`].

use std::collections::HashMap;

use inlay_core::cache::{CacheConfig, CacheStore, OriginId, RecordGraph};
use inlay_core::{Descriptor, Digest, Platform, Reference};

use crate::error::ImportWarning;

/// What kind of cache a reference holds (spec section 4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheKind {
    /// An image whose configs carry `moby.buildkit.cache.v0`.
    Inline,
    /// A BuildKit registry cache in an index (layer blobs then the cache config).
    RegistryIndex,
    /// A BuildKit v0.12+ registry cache as an image manifest whose config is the cache config.
    RegistryManifest,
}

impl CacheKind {
    /// `inline`, `registry` or `registry-manifest`.
    pub fn name(self) -> &'static str {
        match self {
            CacheKind::Inline => "inline",
            CacheKind::RegistryIndex => "registry",
            CacheKind::RegistryManifest => "registry-manifest",
        }
    }
}

/// The records of one origin and the layers their results name.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum OriginRecords {
    /// An inline cache: `layers[i]` is image layer `i` (parent `i-1`), annotated with its
    /// diffID, creation time and history `created_by` (spec section 4.4).
    Inline {
        /// The records.
        graph: RecordGraph,
        /// The image's layer descriptors, base first.
        layers: Vec<Descriptor>,
    },
    /// A cache config (registry cache or stages artifact) and the blobs its container lists.
    Config {
        /// The config.
        config: CacheConfig,
        /// The container's layer descriptors by blob digest.
        blobs: HashMap<Digest, Descriptor>,
    },
}

/// Where an origin's records were found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OriginKind {
    /// One image manifest's inline cache.
    Inline,
    /// A BuildKit registry cache config.
    RegistryCache,
    /// inlay's stages cache artifact (see the crate docs).
    StagesArtifact,
}

/// One origin: one cache manager in BuildKit's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedOrigin {
    /// How the [`CacheStore`] will call it: `REF linux/amd64`, `REF registry cache`,
    /// `REF stages cache`.
    pub label: String,
    /// Where the records were found.
    pub kind: OriginKind,
    /// The platform, for an inline cache.
    pub platform: Option<Platform>,
    /// The manifest (or cache container) the records came from.
    pub manifest: Digest,
    /// The records and layers.
    pub records: OriginRecords,
}

impl ImportedOrigin {
    /// The record graph.
    pub fn graph(&self) -> &RecordGraph {
        match &self.records {
            OriginRecords::Inline { graph, .. } => graph,
            OriginRecords::Config { config, .. } => config.graph(),
        }
    }

    /// The descriptors of record `record`'s results, base first, each with the time it was
    /// stored; results with a layer that has no descriptor are left out (spec section 2.6).
    pub fn results(&self, record: usize) -> Vec<(Vec<Descriptor>, inlay_core::Timestamp)> {
        let Some(r) = self.graph().get(record) else {
            return Vec::new();
        };
        match &self.records {
            OriginRecords::Inline { layers, .. } => r
                .image_layer_lists_within(layers.len())
                .into_iter()
                .filter_map(|(positions, created)| {
                    let list: Option<Vec<Descriptor>> =
                        positions.iter().map(|p| layers.get(*p).cloned()).collect();
                    Some((list?, created))
                })
                .collect(),
            OriginRecords::Config { config, blobs } => r
                .results
                .iter()
                .map(|res| (config.chain(res.layer), res.created_at))
                .chain(r.chains.iter().map(|c| (c.layers.clone(), c.created_at)))
                .filter_map(|(indexes, created)| {
                    let list: Option<Vec<Descriptor>> = indexes
                        .iter()
                        .map(|l| {
                            config
                                .layers()
                                .get(*l)
                                .and_then(|layer| blobs.get(&layer.blob))
                                .cloned()
                        })
                        .collect();
                    list.filter(|l| !l.is_empty()).map(|l| (l, created))
                })
                .collect(),
        }
    }

    /// Adds the origin to `store`.
    pub fn add_to(&self, store: &mut CacheStore) -> OriginId {
        match &self.records {
            OriginRecords::Inline { graph, layers } => {
                store.import_inline(self.label.clone(), graph, layers)
            }
            OriginRecords::Config { config, blobs } => {
                store.import_config(self.label.clone(), config, blobs)
            }
        }
    }
}

/// Everything one cache reference gave.
#[derive(Debug)]
pub struct ImportedCache {
    /// The normalised reference.
    pub reference: Reference,
    /// The digest of the top-level manifest or index it resolved to.
    pub digest: Digest,
    /// What kind of cache it is.
    pub kind: CacheKind,
    /// The origins, in manifest order (stages artifacts last).
    pub origins: Vec<ImportedOrigin>,
    /// Parts that were skipped (a manifest with a corrupt cache, an unreadable artifact).
    pub warnings: Vec<ImportWarning>,
}

impl ImportedCache {
    /// Adds every origin to `store`.
    pub fn add_to(&self, store: &mut CacheStore) -> Vec<OriginId> {
        self.origins.iter().map(|o| o.add_to(store)).collect()
    }
}

/// The outcome of importing several references: what imported, and every warning (whole
/// references skipped and parts of references skipped).
#[derive(Debug, Default)]
pub struct Imports {
    /// The references that imported, in the order given.
    pub caches: Vec<ImportedCache>,
    /// The references that did not import at all.
    pub skipped: Vec<ImportWarning>,
}

impl Imports {
    /// Every warning: skipped references, then skipped parts.
    pub fn warnings(&self) -> impl Iterator<Item = &ImportWarning> {
        self.skipped
            .iter()
            .chain(self.caches.iter().flat_map(|c| c.warnings.iter()))
    }

    /// Adds every origin of every reference to `store` (one origin each, spec section 4.4
    /// step 3: queries fan out over them).
    pub fn add_to(&self, store: &mut CacheStore) -> Vec<OriginId> {
        self.caches.iter().flat_map(|c| c.add_to(store)).collect()
    }

    /// A new store holding every origin.
    pub fn to_store(&self) -> CacheStore {
        let mut store = CacheStore::new();
        self.add_to(&mut store);
        store
    }
}
