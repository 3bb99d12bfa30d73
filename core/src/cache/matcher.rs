//! Matching a build's keys against a [`CacheStore`] (spec section 4.6).
//!
//! The solver asks step by step. A source (or a content key) is looked up by digest among the
//! roots ([`CacheStore::match_root`]). An op with inputs is looked up with, per input, the
//! alternatives its keys offer: the records its parent matched, tagged with this op's
//! selector, or the records its content key matched, untagged ([`CacheStore::match_dependent`]).
//! A candidate must be reached from **every** input (alternatives within an input are alternatives),
//! inside one origin. Matched records without a result still count: descendants can hit
//! through them. The result to load is the newest by `createdAt`, the local cache winning ties
//! ([`CacheStore::best_result`]). [`CacheStore::lookup`] bundles the three and, on a miss,
//! says why.

use std::collections::BTreeSet;

use crate::Digest;
use crate::cache::store::{CacheStore, OriginId, RecordRef, StoredResult};
use crate::cachekey::{KeyGraph, KeyId, RecordKey};

/// The records a key matched, across origins.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchSet {
    records: BTreeSet<RecordRef>,
}

impl MatchSet {
    /// No record.
    pub fn new() -> MatchSet {
        MatchSet::default()
    }

    /// Whether nothing matched.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// How many records matched.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// The matched records in (origin, position) order.
    pub fn iter(&self) -> impl Iterator<Item = RecordRef> + '_ {
        self.records.iter().copied()
    }

    /// Whether `r` matched.
    pub fn contains(&self, r: RecordRef) -> bool {
        self.records.contains(&r)
    }

    fn in_origin(&self, origin: OriginId) -> impl Iterator<Item = usize> + '_ {
        self.records
            .range(
                RecordRef { origin, record: 0 }..=RecordRef {
                    origin,
                    record: usize::MAX,
                },
            )
            .map(|r| r.record)
    }
}

impl FromIterator<RecordRef> for MatchSet {
    fn from_iter<T: IntoIterator<Item = RecordRef>>(iter: T) -> MatchSet {
        MatchSet {
            records: iter.into_iter().collect(),
        }
    }
}

/// One way to satisfy an input: the records a parent key matched, and the link's selector.
#[derive(Debug, Clone, Copy)]
pub struct Alternative<'a> {
    /// What the parent key (a definition key or a content key) matched.
    pub parents: &'a MatchSet,
    /// The selector the link must carry (`None` for content keys and unselected inputs).
    pub selector: Option<&'a Digest>,
}

/// A hit: the record and the result to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit<'s> {
    /// The record whose result is loaded.
    pub record: RecordRef,
    /// The result.
    pub result: &'s StoredResult,
    /// The label of the origin it comes from.
    pub origin: &'s str,
}

/// The outcome of [`CacheStore::lookup`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lookup<'s> {
    /// A record matched and has a loadable result.
    Hit {
        /// The best result.
        hit: Hit<'s>,
        /// Every matched record (descendants query with these).
        matched: MatchSet,
    },
    /// Records matched but none has a loadable result: the op must run, yet descendants can
    /// still hit through these records.
    NoResult {
        /// The matched records.
        matched: MatchSet,
    },
    /// Nothing matched.
    Miss(MissExplanation),
}

/// Why a lookup found nothing, with what was nearest.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MissExplanation {
    /// The record digest looked up.
    pub digest: Option<Digest>,
    /// Whether the key is random (local sources): such keys never match.
    pub random: bool,
    /// Per input: the records with this digest reached through that input's links.
    pub inputs: Vec<InputReach>,
    /// The first input through which no record with this digest is linked, if any.
    pub first_unlinked_input: Option<usize>,
    /// Records with this digest anywhere in the store: the op itself is known, on other
    /// parents (or, for a root, with inputs).
    pub same_digest: Vec<RecordRef>,
    /// Records linked from the matched parents of the first unlinked input, whatever their
    /// digest or selector: what was built on the same parent before (the op changed).
    pub nearest: Vec<NearRecord>,
}

/// What one input's links reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputReach {
    /// The input index.
    pub input: usize,
    /// How many parent records its alternatives matched.
    pub parents_matched: usize,
    /// The records with the looked-up digest linked from them.
    pub reached: Vec<RecordRef>,
}

/// A record linked from a matched parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NearRecord {
    /// The record.
    pub record: RecordRef,
    /// Its digest.
    pub digest: Digest,
    /// The selectors of its links to the matched parents on that input.
    pub selectors: Vec<Option<Digest>>,
}

impl CacheStore {
    /// The root records with digest `digest`: a source or content-key lookup.
    pub fn match_root(&self, digest: &Digest) -> MatchSet {
        self.origins()
            .iter()
            .enumerate()
            .filter_map(|(o, origin)| {
                origin.root(digest).map(|record| RecordRef {
                    origin: OriginId(o),
                    record,
                })
            })
            .collect()
    }

    /// The records with digest `digest` reached from every input through one of its
    /// alternatives (an op lookup). With no inputs this is [`CacheStore::match_root`].
    pub fn match_dependent(&self, digest: &Digest, inputs: &[Vec<Alternative<'_>>]) -> MatchSet {
        if inputs.is_empty() {
            return self.match_root(digest);
        }
        let mut out = MatchSet::new();
        for o in 0..self.origins().len() {
            let origin = OriginId(o);
            let mut candidates: Option<BTreeSet<usize>> = None;
            for (i, alternatives) in inputs.iter().enumerate() {
                let reached = self.reach(origin, digest, i, alternatives);
                let next: BTreeSet<usize> = match candidates {
                    None => reached,
                    Some(c) => c.intersection(&reached).copied().collect(),
                };
                let empty = next.is_empty();
                candidates = Some(next);
                if empty {
                    break;
                }
            }
            out.records.extend(
                candidates
                    .unwrap_or_default()
                    .into_iter()
                    .map(|record| RecordRef { origin, record }),
            );
        }
        out
    }

    fn reach(
        &self,
        origin: OriginId,
        digest: &Digest,
        input: usize,
        alternatives: &[Alternative<'_>],
    ) -> BTreeSet<usize> {
        let store = self.origin(origin);
        let mut reached = BTreeSet::new();
        for alt in alternatives {
            for parent in alt.parents.in_origin(origin) {
                reached.extend(
                    store
                        .linked(parent, digest, input, alt.selector)
                        .iter()
                        .copied(),
                );
            }
        }
        reached
    }

    /// The result to load among `matched`: newest `createdAt`, the local cache first on a tie,
    /// then the earlier origin and record.
    pub fn best_result(&self, matched: &MatchSet) -> Option<Hit<'_>> {
        let mut best: Option<(RecordRef, &StoredResult)> = None;
        for r in matched.iter() {
            for result in &self.record(r).results {
                let better = match best {
                    None => true,
                    Some((b, current)) => {
                        let (new, old) = (
                            result.created_at.unix_nanos(),
                            current.created_at.unix_nanos(),
                        );
                        new > old
                            || (new == old
                                && self.origin(r.origin).is_local()
                                && !self.origin(b.origin).is_local())
                    }
                };
                if better {
                    best = Some((r, result));
                }
            }
        }
        best.map(|(record, result)| Hit {
            record,
            result,
            origin: self.origin(record.origin).label(),
        })
    }

    /// Looks an op up: match, pick the result, or explain the miss.
    pub fn lookup(&self, digest: &Digest, inputs: &[Vec<Alternative<'_>>]) -> Lookup<'_> {
        let matched = self.match_dependent(digest, inputs);
        if matched.is_empty() {
            return Lookup::Miss(self.explain_miss(digest, inputs));
        }
        match self.best_result(&matched) {
            Some(hit) => Lookup::Hit { hit, matched },
            None => Lookup::NoResult { matched },
        }
    }

    /// Why `digest` with these inputs matched nothing.
    pub fn explain_miss(
        &self,
        digest: &Digest,
        inputs: &[Vec<Alternative<'_>>],
    ) -> MissExplanation {
        let mut explanation = MissExplanation {
            digest: Some(digest.clone()),
            ..MissExplanation::default()
        };
        for (o, origin) in self.origins().iter().enumerate() {
            explanation
                .same_digest
                .extend(origin.with_digest(digest).iter().map(|&record| RecordRef {
                    origin: OriginId(o),
                    record,
                }));
        }
        for (i, alternatives) in inputs.iter().enumerate() {
            let mut reach = InputReach {
                input: i,
                parents_matched: alternatives.iter().map(|a| a.parents.len()).sum(),
                reached: Vec::new(),
            };
            for o in 0..self.origins().len() {
                let origin = OriginId(o);
                reach.reached.extend(
                    self.reach(origin, digest, i, alternatives)
                        .into_iter()
                        .map(|record| RecordRef { origin, record }),
                );
            }
            if reach.reached.is_empty() && explanation.first_unlinked_input.is_none() {
                explanation.first_unlinked_input = Some(i);
                explanation.nearest = self.nearest(i, alternatives);
            }
            explanation.inputs.push(reach);
        }
        explanation
    }

    fn nearest(&self, input: usize, alternatives: &[Alternative<'_>]) -> Vec<NearRecord> {
        let mut near: Vec<NearRecord> = Vec::new();
        for alt in alternatives {
            for parent in alt.parents.iter() {
                let origin = self.origin(parent.origin);
                for &dependent in origin.dependents(parent.record, input) {
                    let record = RecordRef {
                        origin: parent.origin,
                        record: dependent,
                    };
                    let stored = self.record(record);
                    let selectors: Vec<Option<Digest>> = stored.inputs[input]
                        .iter()
                        .filter(|l| l.parent == parent.record)
                        .map(|l| l.selector.clone())
                        .collect();
                    match near.iter_mut().find(|n| n.record == record) {
                        Some(n) => n.selectors.extend(selectors),
                        None => near.push(NearRecord {
                            record,
                            digest: stored.digest.clone(),
                            selectors,
                        }),
                    }
                }
            }
        }
        near
    }

    /// Matches every key of `keys`, parents first: what a solver that walks the whole graph
    /// finds. Random keys match nothing.
    pub fn match_keys(&self, keys: &KeyGraph) -> KeyMatches {
        let mut sets: Vec<MatchSet> = Vec::with_capacity(keys.nodes().len());
        for node in keys.nodes() {
            let set = match &node.record {
                RecordKey::Random(_) => MatchSet::new(),
                RecordKey::Stable(digest) => {
                    let inputs: Vec<Vec<Alternative<'_>>> = node
                        .inputs
                        .iter()
                        .map(|alternatives| {
                            alternatives
                                .iter()
                                .map(|l| Alternative {
                                    parents: &sets[l.key.0],
                                    selector: l.selector.as_ref(),
                                })
                                .collect()
                        })
                        .collect();
                    self.match_dependent(digest, &inputs)
                }
            };
            sets.push(set);
        }
        KeyMatches { sets }
    }
}

/// What every key of a [`KeyGraph`] matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMatches {
    sets: Vec<MatchSet>,
}

impl KeyMatches {
    /// The records key `id` matched.
    pub fn of(&self, id: KeyId) -> &MatchSet {
        &self.sets[id.0]
    }
}
