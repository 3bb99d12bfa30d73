//! The in-memory cache graph: records that reference each other by index, as BuildKit's cache
//! config "v0" lays them out (spec sections 2.2 and 3).
//!
//! A [`RecordGraph`] is always valid: every link points at a record of the graph, no input is
//! an empty set of alternatives, and following links never loops. The JSON forms are
//! [`RecordGraph::from_inline`], [`RecordGraph::to_inline`], [`CacheConfig::from_json`] and
//! friends, in the `codec` module.

use crate::Digest;
use crate::cache::{CacheRecordError, Timestamp};

/// One cache key: an op output (or a content key) plus how it was reached and what it produced.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheRecord {
    /// The record digest (spec section 5.1).
    pub digest: Digest,
    /// Per op input index, the alternative parent records (any one of them satisfies the input).
    /// Empty for roots (sources and content keys).
    pub inputs: Vec<Vec<CacheInput>>,
    /// Results given as the top layer of a chain (`layers` on the wire).
    pub results: Vec<CacheResult>,
    /// Results given as an explicit layer list (`chains` on the wire, BuildKit v0.10+).
    pub chains: Vec<ChainedResult>,
}

/// A link from a record's input to the parent record that fed it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheInput {
    /// Index of the parent record in the same graph.
    pub link: usize,
    /// The selector digest narrowing the link (spec section 5.3), if any.
    pub selector: Option<Digest>,
}

/// A result named by the top layer of a chain.
///
/// In an inline cache `layer` is an image layer position and the result is image layers
/// `0..=layer`; in a registry cache config it indexes [`CacheConfig::layers`] and the result is
/// that layer plus its ancestors (spec sections 2.2 and 3.4).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheResult {
    /// Index of the top layer.
    pub layer: usize,
    /// When the exporter's cache stored the result.
    pub created_at: Timestamp,
}

/// A result named by an explicit list of layers, loaded in order without following parents.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ChainedResult {
    /// Layer indexes (image positions inline, table indexes in a registry cache config).
    pub layers: Vec<usize>,
    /// When the result was stored; BuildKit's inline exporter leaves this at the zero time.
    pub created_at: Timestamp,
}

impl CacheRecord {
    /// A root record (no inputs, no results) with the given digest.
    pub fn root(digest: Digest) -> CacheRecord {
        CacheRecord {
            digest,
            inputs: Vec::new(),
            results: Vec::new(),
            chains: Vec::new(),
        }
    }

    /// Whether the record has no inputs (an image source or a content key).
    pub fn is_root(&self) -> bool {
        self.inputs.is_empty()
    }

    /// The results of a record read from an **inline** cache for an image of `image_layers`
    /// layers, as lists of image layer positions base first: a `layers` result `k` is positions
    /// `0..=k`, a `chains` result is its list (spec section 3.4). Newest first is the caller's
    /// choice; this keeps wire order, `layers` results before `chains`.
    ///
    /// Results naming a position the image lacks are dropped, as the importer drops them (spec
    /// section 4.4), before anything is allocated for them. A fuzz finding: an inline cache whose record
    /// claimed `{"layer":907460742}` made the listing allocate gigabytes.
    pub fn image_layer_lists_within(&self, image_layers: usize) -> Vec<(Vec<usize>, Timestamp)> {
        self.results
            .iter()
            .filter(|r| r.layer < image_layers)
            .map(|r| ((0..=r.layer).collect(), r.created_at))
            .chain(
                self.chains
                    .iter()
                    .filter(|c| c.layers.iter().all(|&l| l < image_layers))
                    .map(|c| (c.layers.clone(), c.created_at)),
            )
            .collect()
    }

    /// Every layer index this record's results mention.
    pub fn layer_indexes(&self) -> impl Iterator<Item = usize> + '_ {
        self.results
            .iter()
            .map(|r| r.layer)
            .chain(self.chains.iter().flat_map(|c| c.layers.iter().copied()))
    }
}

/// A validated graph of cache records, the records array of a cache config or of an inline
/// cache value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordGraph {
    records: Vec<CacheRecord>,
}

impl RecordGraph {
    /// Checks `records` and wraps them: links must be in range, inputs non-empty, and the links
    /// acyclic. Record order is kept; [`RecordGraph::canonical`] gives BuildKit's order.
    pub fn new(records: Vec<CacheRecord>) -> Result<RecordGraph, CacheRecordError> {
        let count = records.len();
        for (r, record) in records.iter().enumerate() {
            for (i, alternatives) in record.inputs.iter().enumerate() {
                if alternatives.is_empty() {
                    return Err(CacheRecordError::EmptyInput {
                        record: r,
                        input: i,
                    });
                }
                for alternative in alternatives {
                    if alternative.link >= count {
                        return Err(CacheRecordError::LinkOutOfRange {
                            record: r,
                            input: i,
                            link: i64::try_from(alternative.link).unwrap_or(i64::MAX),
                            records: count,
                        });
                    }
                }
            }
        }
        check_acyclic(count, |r| {
            records[r].inputs.iter().flatten().map(|input| input.link)
        })
        .map_err(|record| CacheRecordError::Loop { record })?;
        Ok(RecordGraph { records })
    }

    /// Appends `record`, whose links must point at records already in the graph (so the graph
    /// stays acyclic by construction), and returns its index. This is how an exporter builds a
    /// graph: sources first, then each op after its inputs.
    pub fn push(&mut self, record: CacheRecord) -> Result<usize, CacheRecordError> {
        let index = self.records.len();
        for (i, alternatives) in record.inputs.iter().enumerate() {
            if alternatives.is_empty() {
                return Err(CacheRecordError::EmptyInput {
                    record: index,
                    input: i,
                });
            }
            if let Some(bad) = alternatives.iter().find(|a| a.link >= index) {
                return Err(CacheRecordError::LinkOutOfRange {
                    record: index,
                    input: i,
                    link: i64::try_from(bad.link).unwrap_or(i64::MAX),
                    records: index,
                });
            }
        }
        self.records.push(record);
        Ok(index)
    }

    /// The records, in graph order.
    pub fn records(&self) -> &[CacheRecord] {
        &self.records
    }

    /// The record at `index`.
    pub fn get(&self, index: usize) -> Option<&CacheRecord> {
        self.records.get(index)
    }

    /// How many records there are.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Gives the records back.
    pub fn into_records(self) -> Vec<CacheRecord> {
        self.records
    }

    /// Indexes of the records with digest `digest` (several records may share one digest when
    /// the same op ran on different inputs, spec section 1).
    pub fn find<'a>(&'a self, digest: &'a Digest) -> impl Iterator<Item = usize> + 'a {
        self.records
            .iter()
            .enumerate()
            .filter(move |(_, r)| r.digest == *digest)
            .map(|(i, _)| i)
    }

    /// Indexes of the records without inputs.
    pub fn roots(&self) -> impl Iterator<Item = usize> + '_ {
        self.records
            .iter()
            .enumerate()
            .filter(|(_, r)| r.is_root())
            .map(|(i, _)| i)
    }

    /// The records that link to `parent`: `(record index, input index, link)` for each link.
    pub fn dependents(&self, parent: usize) -> impl Iterator<Item = (usize, usize, &CacheInput)> {
        self.records
            .iter()
            .enumerate()
            .flat_map(move |(r, record)| {
                record
                    .inputs
                    .iter()
                    .enumerate()
                    .flat_map(move |(i, alternatives)| {
                        alternatives
                            .iter()
                            .filter(move |a| a.link == parent)
                            .map(move |a| (r, i, a))
                    })
            })
    }

    /// The records in an order where every record comes after all records it links to.
    pub fn topological_order(&self) -> Vec<usize> {
        post_order(self.records.len(), |r| {
            self.records[r]
                .inputs
                .iter()
                .flatten()
                .map(|input| input.link)
        })
    }
}

/// A layer of a registry cache config's `layers` table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheLayer {
    /// The compressed blob digest.
    pub blob: Digest,
    /// Index of the parent layer, `None` for a base layer (`-1` on the wire; an absent `parent`
    /// means 0, spec section 2.2).
    pub parent: Option<usize>,
    /// The descriptor fields some backends store with the layer (BuildKit v0.9+).
    pub annotations: Option<LayerAnnotations>,
}

/// The `annotations` of a [`CacheLayer`] (used by the gha/s3/azblob backends).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct LayerAnnotations {
    /// The layer media type; empty when absent.
    pub media_type: String,
    /// The uncompressed digest.
    pub diff_id: Option<Digest>,
    /// The blob size; 0 when absent.
    pub size: i64,
    /// The layer creation time (always written; zero when unknown).
    pub created_at: Timestamp,
}

/// A registry cache config (`application/vnd.buildkit.cacheconfig.v0`): a layers table plus the
/// record graph whose results index it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CacheConfig {
    layers: Vec<CacheLayer>,
    graph: RecordGraph,
}

impl CacheConfig {
    /// Checks that every parent and every result index is inside `layers` and that parents do
    /// not loop.
    pub fn new(
        layers: Vec<CacheLayer>,
        graph: RecordGraph,
    ) -> Result<CacheConfig, CacheRecordError> {
        let count = layers.len();
        for (l, layer) in layers.iter().enumerate() {
            if let Some(parent) = layer.parent {
                if parent >= count {
                    return Err(CacheRecordError::ParentOutOfRange {
                        layer: l,
                        parent: i64::try_from(parent).unwrap_or(i64::MAX),
                        layers: count,
                    });
                }
            }
        }
        check_acyclic(count, |l| layers[l].parent.into_iter())
            .map_err(|layer| CacheRecordError::LayerLoop { layer })?;
        for (r, record) in graph.records().iter().enumerate() {
            if let Some(layer) = record.layer_indexes().find(|&l| l >= count) {
                return Err(CacheRecordError::LayerOutOfRange {
                    record: r,
                    layer: i64::try_from(layer).unwrap_or(i64::MAX),
                    layers: count,
                });
            }
        }
        Ok(CacheConfig { layers, graph })
    }

    /// The layers table.
    pub fn layers(&self) -> &[CacheLayer] {
        &self.layers
    }

    /// The records.
    pub fn graph(&self) -> &RecordGraph {
        &self.graph
    }

    /// The layer chain of a [`CacheResult`], base first: `layer` and its ancestors.
    pub fn chain(&self, top: usize) -> Vec<usize> {
        let mut chain = Vec::new();
        let mut next = Some(top);
        while let Some(l) = next.filter(|&l| l < self.layers.len()) {
            chain.push(l);
            next = self.layers[l].parent;
        }
        chain.reverse();
        chain
    }

    /// Gives the parts back.
    pub fn into_parts(self) -> (Vec<CacheLayer>, RecordGraph) {
        (self.layers, self.graph)
    }
}

/// Depth-first post-order over nodes `0..count` with edges from `edges`, iterative so that long
/// chains cannot overflow the stack. Stops descending into nodes already on the path.
fn post_order<I: Iterator<Item = usize>>(count: usize, edges: impl Fn(usize) -> I) -> Vec<usize> {
    let mut state = vec![0u8; count]; // 0 new, 1 on path, 2 done
    let mut order = Vec::with_capacity(count);
    for start in 0..count {
        if state[start] != 0 {
            continue;
        }
        let mut stack = vec![(start, edges(start))];
        state[start] = 1;
        while let Some((node, children)) = stack.last_mut() {
            let node = *node;
            if let Some(child) = children.next() {
                if state[child] == 0 {
                    state[child] = 1;
                    stack.push((child, edges(child)));
                }
            } else {
                state[node] = 2;
                order.push(node);
                stack.pop();
            }
        }
    }
    order
}

/// `Err(node)` with a node on a cycle if following `edges` loops.
fn check_acyclic<I: Iterator<Item = usize>>(
    count: usize,
    edges: impl Fn(usize) -> I,
) -> Result<(), usize> {
    let mut state = vec![0u8; count];
    for start in 0..count {
        if state[start] != 0 {
            continue;
        }
        let mut stack = vec![(start, edges(start))];
        state[start] = 1;
        while let Some((node, children)) = stack.last_mut() {
            let node = *node;
            if let Some(child) = children.next() {
                match state[child] {
                    0 => {
                        state[child] = 1;
                        stack.push((child, edges(child)));
                    }
                    1 => return Err(child),
                    _ => {}
                }
            } else {
                state[node] = 2;
                stack.pop();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        Digest::sha256_of(&[n])
    }

    fn link(to: usize) -> CacheInput {
        CacheInput {
            link: to,
            selector: None,
        }
    }

    #[test]
    fn refuses_loops_bad_links_and_empty_inputs() {
        let mut a = CacheRecord::root(d(0));
        a.inputs = vec![vec![link(1)]];
        let mut b = CacheRecord::root(d(1));
        b.inputs = vec![vec![link(0)]];
        assert!(matches!(
            RecordGraph::new(vec![a.clone(), b]),
            Err(CacheRecordError::Loop { .. })
        ));
        let mut own = CacheRecord::root(d(2));
        own.inputs = vec![vec![link(0)]];
        assert!(matches!(
            RecordGraph::new(vec![own]),
            Err(CacheRecordError::Loop { record: 0 })
        ));
        assert!(matches!(
            RecordGraph::new(vec![a]),
            Err(CacheRecordError::LinkOutOfRange {
                record: 0,
                input: 0,
                link: 1,
                records: 1
            })
        ));
        let mut empty = CacheRecord::root(d(3));
        empty.inputs = vec![vec![]];
        assert!(matches!(
            RecordGraph::new(vec![empty]),
            Err(CacheRecordError::EmptyInput {
                record: 0,
                input: 0
            })
        ));
    }

    #[test]
    fn push_builds_acyclic_graphs() {
        let mut g = RecordGraph::default();
        let root = g.push(CacheRecord::root(d(0))).unwrap();
        let mut child = CacheRecord::root(d(1));
        child.inputs = vec![vec![link(root)]];
        child.results = vec![CacheResult {
            layer: 2,
            created_at: Timestamp::ZERO,
        }];
        child.chains = vec![ChainedResult {
            layers: vec![0, 3],
            created_at: Timestamp::ZERO,
        }];
        let child = g.push(child).unwrap();
        assert_eq!(child, 1);
        let mut forward = CacheRecord::root(d(2));
        forward.inputs = vec![vec![link(2)]];
        assert!(matches!(
            g.push(forward),
            Err(CacheRecordError::LinkOutOfRange { record: 2, .. })
        ));
        assert_eq!(
            g.records()[1].image_layer_lists_within(usize::MAX),
            vec![
                (vec![0, 1, 2], Timestamp::ZERO),
                (vec![0, 3], Timestamp::ZERO)
            ]
        );
        assert_eq!(RecordGraph::new(g.records().to_vec()).unwrap(), g);
    }

    #[test]
    fn queries() {
        let root = CacheRecord::root(d(0));
        let mut child = CacheRecord::root(d(1));
        child.inputs = vec![vec![link(1)]];
        let g = RecordGraph::new(vec![child, root]).unwrap();
        assert_eq!(g.roots().collect::<Vec<_>>(), vec![1]);
        assert_eq!(g.find(&d(1)).collect::<Vec<_>>(), vec![0]);
        assert_eq!(
            g.dependents(1).map(|(r, i, _)| (r, i)).collect::<Vec<_>>(),
            vec![(0, 0)]
        );
        assert_eq!(g.topological_order(), vec![1, 0]);
    }

    #[test]
    fn config_checks_layers() {
        let layer = |parent| CacheLayer {
            blob: d(9),
            parent,
            annotations: None,
        };
        assert!(matches!(
            CacheConfig::new(vec![layer(Some(1)), layer(Some(0))], RecordGraph::default()),
            Err(CacheRecordError::LayerLoop { .. })
        ));
        let config =
            CacheConfig::new(vec![layer(None), layer(Some(0))], RecordGraph::default()).unwrap();
        assert_eq!(config.chain(1), vec![0, 1]);
    }
}
