//! Chain export: the keys of a solved build turned into the records of an inline cache
//! (spec sections 2.4, 2.5 and 3.2 to 3.4).
//!
//! The export starts at the final key of each profile and walks every input alternative back
//! to the roots (content keys included). Random keys are dropped with their links; a record
//! left with an input that has no link is dropped, and so are, in cascade, the records that
//! depended on it only through it. Records with inputs get the result the caller names for
//! their vertex output, as image layer positions: `layers` when the result is a prefix of the
//! image, `chains` otherwise (a v0.8 reader ignores `chains`). Roots never get results.
//! Several profiles can be exported into one value: shared records (the image roots, content
//! keys, file ops) are merged, so both old and new BuildKit find their own keys.
//!
//! With several profiles, two records of different profiles often hold the same layers, and
//! BuildKit v0.8's importer indexes results by their layers: loading one can pick the *other*
//! profile's record, whose parents the v0.8 solver never asked for, and fail with "failed to
//! load deleted cache" (`combinedCacheManager.Load` after `filterResults` in
//! `v0.8:solver/cachemanager.go` finds none of them). [`ResultForm::ChainsOnly`] writes a
//! chain's results as `chains`, which v0.8 does not read, so a v0.8 reader sees only the
//! results of its own profile's records.

use std::collections::{BTreeSet, HashMap};

use crate::cache::{CacheInput, CacheRecord, CacheResult, ChainedResult, RecordGraph, Timestamp};
use crate::cachekey::{KeyGraph, KeyId, KeyKind, RecordKey};
use crate::descriptor::Descriptor;
use crate::op::Input;

/// The result of one vertex output, as the builder knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportResult {
    /// The result's layers, base first (the "remote" of the result).
    pub layers: Vec<Descriptor>,
    /// When the result was stored in the local cache (`createdAt`).
    pub created_at: Timestamp,
}

/// How a chain's results are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ResultForm {
    /// As BuildKit writes them: `layers` for a prefix of the image, `chains` otherwise.
    #[default]
    Native,
    /// Always `chains` (v0.10+ readers only; hidden from v0.8, see the module docs).
    ChainsOnly,
}

/// The records of an inline cache for the final chain of `image_layers`, from the keys of one
/// or more profiles (`(keys, final key)` pairs) and the results of vertex outputs; results are
/// written as BuildKit writes them ([`ResultForm::Native`]).
///
/// Returns `None` when no result fits the image's layers: BuildKit then writes no inline
/// cache at all (spec section 3.2 step 3.4).
pub fn export_chain<S: std::hash::BuildHasher>(
    image_layers: &[Descriptor],
    chains: &[(&KeyGraph, KeyId)],
    results: &HashMap<Input, ExportResult, S>,
) -> Option<RecordGraph> {
    let chains: Vec<(&KeyGraph, KeyId, ResultForm)> = chains
        .iter()
        .map(|(keys, last)| (*keys, *last, ResultForm::Native))
        .collect();
    export_chains(image_layers, &chains, results)
}

/// [`export_chain`] with a [`ResultForm`] per chain.
pub fn export_chains<S: std::hash::BuildHasher>(
    image_layers: &[Descriptor],
    chains: &[(&KeyGraph, KeyId, ResultForm)],
    results: &HashMap<Input, ExportResult, S>,
) -> Option<RecordGraph> {
    let mut graph = RecordGraph::default();
    let mut any_result = false;
    for (keys, last, form) in chains {
        let reachable = reachable(keys, *last);
        let mut exported: HashMap<KeyId, usize> = HashMap::new();
        for id in reachable {
            let node = keys.node(id);
            let RecordKey::Stable(digest) = &node.record else {
                continue;
            };
            let mut inputs = Vec::with_capacity(node.inputs.len());
            let mut complete = true;
            for alternatives in &node.inputs {
                let links: Vec<CacheInput> = alternatives
                    .iter()
                    .filter_map(|alt| {
                        exported.get(&alt.key).map(|link| CacheInput {
                            link: *link,
                            selector: alt.selector.clone(),
                        })
                    })
                    .collect();
                if links.is_empty() {
                    complete = false;
                    break;
                }
                inputs.push(links);
            }
            if !complete {
                continue;
            }
            let mut record = CacheRecord::root(digest.clone());
            if !node.inputs.is_empty() {
                if let KeyKind::Definition { vertex, output, .. } = node.kind {
                    if let Some(result) = results.get(&Input::new(vertex, output)) {
                        let positions = match (image_positions(image_layers, &result.layers), form)
                        {
                            (Some(Positions::Prefix(top)), ResultForm::ChainsOnly) => {
                                Some(Positions::Chain((0..=top).collect()))
                            }
                            (positions, _) => positions,
                        };
                        match positions {
                            Some(Positions::Prefix(top)) => record.results.push(CacheResult {
                                layer: top,
                                created_at: result.created_at,
                            }),
                            Some(Positions::Chain(layers)) => record.chains.push(ChainedResult {
                                layers,
                                // BuildKit's inline exporter leaves chained results undated;
                                // inlay's own chained results keep their date.
                                created_at: if *form == ResultForm::ChainsOnly {
                                    result.created_at
                                } else {
                                    Timestamp::ZERO
                                },
                            }),
                            None => {}
                        }
                    }
                }
            }
            any_result |= !record.results.is_empty() || !record.chains.is_empty();
            record.inputs = inputs;
            let index = graph
                .push(record)
                .expect("links point at records pushed earlier and inputs are non-empty");
            exported.insert(id, index);
        }
    }
    any_result.then(|| graph.canonical())
}

/// The keys reachable from `last` through every alternative, parents first.
fn reachable(keys: &KeyGraph, last: KeyId) -> BTreeSet<KeyId> {
    let mut seen = BTreeSet::new();
    let mut stack = vec![last];
    while let Some(id) = stack.pop() {
        if id.0 >= keys.nodes().len() || !seen.insert(id) {
            continue;
        }
        stack.extend(keys.node(id).inputs.iter().flatten().map(|l| l.key));
    }
    // Key ids are allocated parents first, so ascending order is a topological order.
    seen
}

enum Positions {
    /// Image layers `0..=top`.
    Prefix(usize),
    /// Exactly these image layers.
    Chain(Vec<usize>),
}

/// Where a result's layers sit in the image, as BuildKit v0.10+ works it out: a layer matches
/// an image layer with the same blob digest or, failing that, the same uncompressed digest
/// (docker 20.10's diffID remotes). `None` when some layer is not in the image.
fn image_positions(image: &[Descriptor], layers: &[Descriptor]) -> Option<Positions> {
    if layers.is_empty() {
        return None;
    }
    let same = |a: &Descriptor, b: &Descriptor| {
        a.digest == b.digest
            || a.uncompressed_digest()
                .is_some_and(|d| d == b.digest || Some(&d) == b.uncompressed_digest().as_ref())
            || b.uncompressed_digest().is_some_and(|d| d == a.digest)
    };
    let prefix = layers.len() <= image.len() && layers.iter().zip(image).all(|(l, i)| same(l, i));
    if prefix {
        return Some(Positions::Prefix(layers.len() - 1));
    }
    let positions: Option<Vec<usize>> = layers
        .iter()
        .map(|l| image.iter().position(|i| same(l, i)))
        .collect();
    positions.map(Positions::Chain)
}
