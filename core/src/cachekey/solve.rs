//! Keys of a whole build, formed the way BuildKit's solver forms them (spec section 4.6 step 2):
//! a vertex output's key is its record digest plus, per input, the alternatives that can
//! satisfy it: every key of the parent output tagged with this op's selector, and the content
//! key of the input (no selector) when one was computed.

use std::collections::HashMap;

use crate::cache::key::content_record_digest;
use crate::cachekey::{CacheMap, KeyError, KeyProfile, RecordKey, VertexFacts, cache_map};
use crate::op::{Graph, Input, Op, VertexId};
use crate::{Digest, Platform};

/// Index of a key in its [`KeyGraph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub usize);

/// What a key stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyKind {
    /// Output `output` of `vertex`, from its CacheMap digest number `digest`.
    Definition {
        /// The vertex.
        vertex: VertexId,
        /// The output index.
        output: u32,
        /// Which of the op's CacheMap digests (image sources have two).
        digest: usize,
    },
    /// The content key of input `input` (graph order) of `vertex`.
    Content {
        /// The consuming vertex.
        vertex: VertexId,
        /// Its input index.
        input: usize,
    },
}

/// A dependency alternative: a parent key and the selector of the link.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyLink {
    /// The parent key.
    pub key: KeyId,
    /// The link's selector.
    pub selector: Option<Digest>,
}

/// One key: BuildKit's `CacheKey`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyNode {
    /// The record digest (or a random key).
    pub record: RecordKey,
    /// Per BuildKit input index, the alternatives. Empty for roots.
    pub inputs: Vec<Vec<KeyLink>>,
    /// What the key stands for.
    pub kind: KeyKind,
}

/// The keys of a build under one profile, parents before dependents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyGraph {
    profile: KeyProfile,
    nodes: Vec<KeyNode>,
    outputs: HashMap<Input, Vec<KeyId>>,
}

impl KeyGraph {
    /// The profile the keys were formed under.
    pub fn profile(&self) -> KeyProfile {
        self.profile
    }

    /// Every key, in an order where parents come first.
    pub fn nodes(&self) -> &[KeyNode] {
        &self.nodes
    }

    /// The key `id`.
    ///
    /// # Panics
    /// When `id` does not come from this graph.
    pub fn node(&self, id: KeyId) -> &KeyNode {
        &self.nodes[id.0]
    }

    /// The keys of a vertex output (two for an image source with both keys, none if unknown).
    pub fn keys_of(&self, output: Input) -> &[KeyId] {
        self.outputs.get(&output).map_or(&[], Vec::as_slice)
    }

    fn push(&mut self, node: KeyNode) -> KeyId {
        self.nodes.push(node);
        KeyId(self.nodes.len() - 1)
    }
}

/// Forms keys vertex by vertex, as a solver learns facts (content keys need the input's
/// files, so they arrive late).
#[derive(Debug)]
pub struct KeySolver<'g> {
    graph: &'g Graph,
    platform: Platform,
    maps: Vec<Option<CacheMap>>,
    keys: KeyGraph,
}

impl<'g> KeySolver<'g> {
    /// A solver over `graph` for `profile`; `default_platform` is used for vertices without a
    /// platform.
    pub fn new(graph: &'g Graph, profile: KeyProfile, default_platform: Platform) -> KeySolver<'g> {
        KeySolver {
            graph,
            platform: default_platform,
            maps: vec![None; graph.len()],
            keys: KeyGraph {
                profile,
                nodes: Vec::new(),
                outputs: HashMap::new(),
            },
        }
    }

    /// The CacheMap of `vertex`, computed on first use with `facts`.
    pub fn cache_map(
        &mut self,
        vertex: VertexId,
        facts: &VertexFacts,
    ) -> Result<&CacheMap, KeyError> {
        let slot = self
            .maps
            .get(vertex.0)
            .ok_or(KeyError::UnknownVertex { vertex })?;
        if slot.is_none() {
            let map = cache_map(self.graph, vertex, self.keys.profile, &self.platform, facts)?;
            self.maps[vertex.0] = Some(map);
        }
        Ok(self.maps[vertex.0].as_ref().expect("filled just above"))
    }

    /// Forms the keys of every output of `vertex`, whose inputs must have keys already.
    /// `content_keys` gives content key digests by graph input index (spec section 5.4); they
    /// are used only on inputs whose CacheMap takes one.
    ///
    /// A solver first keys a vertex without content keys (definition links may already hit),
    /// and adds it again once a content key is computed: the new keys replace the old ones for
    /// the vertices added afterwards, as BuildKit extends a key with its slow key. Whether to
    /// look a key up at all (`--no-cache`) is the caller's decision.
    pub fn add_vertex(
        &mut self,
        vertex: VertexId,
        facts: &VertexFacts,
        content_keys: &[(usize, Digest)],
    ) -> Result<(), KeyError> {
        self.cache_map(vertex, facts)?;
        let map = self.maps[vertex.0].clone().expect("computed above");
        let v = self.graph.vertex(vertex);
        // Per BuildKit input: the alternatives.
        let mut deps: Vec<Vec<KeyLink>> = Vec::new();
        for (i, (input, keying)) in v.inputs.iter().zip(&map.inputs).enumerate() {
            if keying.buildkit_index.is_none() {
                continue;
            }
            let parents = self.keys.keys_of(*input).to_vec();
            if parents.is_empty() {
                return Err(KeyError::InputNotKeyed {
                    vertex,
                    input: i,
                    parent: input.vertex,
                });
            }
            let mut alternatives: Vec<KeyLink> = parents
                .into_iter()
                .map(|key| KeyLink {
                    key,
                    selector: keying.selector.clone(),
                })
                .collect();
            if keying.content.is_some() {
                if let Some((_, content)) = content_keys.iter().find(|(n, _)| *n == i) {
                    let key = self.keys.push(KeyNode {
                        record: RecordKey::Stable(content_record_digest(content)),
                        inputs: Vec::new(),
                        kind: KeyKind::Content { vertex, input: i },
                    });
                    alternatives.push(KeyLink {
                        key,
                        selector: None,
                    });
                }
            }
            deps.push(alternatives);
        }
        for output in outputs(&v.op) {
            let ids: Vec<KeyId> = map
                .keys
                .iter()
                .enumerate()
                .map(|(d, key)| {
                    self.keys.push(KeyNode {
                        record: key.digest.record(i64::from(output)),
                        inputs: deps.clone(),
                        kind: KeyKind::Definition {
                            vertex,
                            output,
                            digest: d,
                        },
                    })
                })
                .collect();
            self.keys.outputs.insert(Input::new(vertex, output), ids);
        }
        Ok(())
    }

    /// The keys formed so far.
    pub fn keys(&self) -> &KeyGraph {
        &self.keys
    }

    /// Gives the keys back.
    pub fn into_keys(self) -> KeyGraph {
        self.keys
    }
}

/// The output indexes an op produces.
fn outputs(op: &Op) -> Vec<u32> {
    let mut outs: Vec<u32> = match op {
        Op::Exec(exec) => exec
            .mounts
            .iter()
            .filter_map(|m| u32::try_from(m.output).ok())
            .collect(),
        Op::File(file) => file
            .actions
            .iter()
            .filter_map(|a| u32::try_from(a.output).ok())
            .collect(),
        Op::Source(_) | Op::Merge(_) => vec![0],
    };
    outs.sort_unstable();
    outs.dedup();
    outs
}

/// The keys of every vertex `target` depends on, given all facts up front: per vertex its
/// [`VertexFacts`] (image sources need theirs) and the content keys by (vertex, graph input
/// index).
pub fn solve_keys<S1: std::hash::BuildHasher, S2: std::hash::BuildHasher>(
    graph: &Graph,
    target: VertexId,
    profile: KeyProfile,
    default_platform: &Platform,
    facts: &HashMap<VertexId, VertexFacts, S1>,
    content_keys: &HashMap<(VertexId, usize), Digest, S2>,
) -> Result<KeyGraph, KeyError> {
    if target.0 >= graph.len() {
        return Err(KeyError::UnknownVertex { vertex: target });
    }
    let mut solver = KeySolver::new(graph, profile, default_platform.clone());
    let none = VertexFacts::default();
    for vertex in graph.ancestors(target) {
        let contents: Vec<(usize, Digest)> = content_keys
            .iter()
            .filter(|((v, _), _)| *v == vertex)
            .map(|((_, i), d)| (*i, d.clone()))
            .collect();
        solver.add_vertex(vertex, facts.get(&vertex).unwrap_or(&none), &contents)?;
    }
    Ok(solver.into_keys())
}
