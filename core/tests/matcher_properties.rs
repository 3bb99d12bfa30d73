//! The matcher against a brute-force reference on random record graphs: for random keys, the
//! records matched (through the link index, parents to dependents) are exactly those the
//! recursive definition of a match (record to its own inputs) accepts, in every origin, and the
//! best result is the newest one among them.

// Helpers outside #[test] fns are test code too.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use inlay_core::cache::{
    Alternative, CacheInput, CacheRecord, CacheResult, CacheStore, MatchSet, OriginId, RecordGraph,
    Timestamp,
};
use inlay_core::{Descriptor, Digest};
use proptest::prelude::*;

const IMAGE_LAYERS: usize = 4;

fn pool_digest(n: u8) -> Digest {
    Digest::sha256_of(&[b'd', n])
}

fn pool_selector(n: u8) -> Option<Digest> {
    (n > 0).then(|| Digest::sha256_of(&[b's', n]))
}

/// A test key: a digest and, per input, alternatives (earlier key, selector).
#[derive(Debug, Clone)]
struct TestKey {
    digest: Digest,
    inputs: Vec<Vec<(usize, Option<Digest>)>>,
}

fn records(max: usize) -> impl Strategy<Value = RecordGraph> {
    prop::collection::vec(
        (
            0u8..4,
            prop::collection::vec(
                prop::collection::vec((any::<prop::sample::Index>(), 0u8..3), 1..3),
                0..3,
            ),
            prop::collection::vec((0usize..IMAGE_LAYERS + 2, 0i128..5), 0..3),
        ),
        1..max,
    )
    .prop_map(|specs| {
        let mut out: Vec<CacheRecord> = Vec::new();
        for (i, (d, inputs, results)) in specs.into_iter().enumerate() {
            let mut record = CacheRecord::root(pool_digest(d));
            if i > 0 {
                record.inputs = inputs
                    .into_iter()
                    .map(|alts| {
                        alts.into_iter()
                            .map(|(link, s)| CacheInput {
                                link: link.index(i),
                                selector: pool_selector(s),
                            })
                            .collect()
                    })
                    .collect();
            }
            record.results = results
                .into_iter()
                .map(|(layer, t)| CacheResult {
                    layer,
                    created_at: Timestamp::from_unix_nanos(1_700_000_000_000_000_000 + t).unwrap(),
                })
                .collect();
            out.push(record);
        }
        RecordGraph::new(out).unwrap()
    })
}

fn keys(max: usize) -> impl Strategy<Value = Vec<TestKey>> {
    prop::collection::vec(
        (
            0u8..4,
            prop::collection::vec(
                prop::collection::vec((any::<prop::sample::Index>(), 0u8..3), 1..3),
                0..3,
            ),
        ),
        1..max,
    )
    .prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (d, inputs))| TestKey {
                digest: pool_digest(d),
                inputs: if i == 0 {
                    Vec::new()
                } else {
                    inputs
                        .into_iter()
                        .map(|alts| {
                            alts.into_iter()
                                .map(|(k, s)| (k.index(i), pool_selector(s)))
                                .collect()
                        })
                        .collect()
                },
            })
            .collect()
    })
}

/// The recursive definition: record `r` matches key `k` when the digests agree and, for every
/// input of the key, one of the record's links on that input carries the same selector as one
/// of the key's alternatives and leads to a record matching that alternative's key. A key
/// without inputs matches only records without inputs.
fn brute(graph: &RecordGraph, keys: &[TestKey]) -> Vec<BTreeSet<usize>> {
    let mut sets: Vec<BTreeSet<usize>> = Vec::new();
    for key in keys {
        let set = graph
            .records()
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.digest == key.digest
                    && if key.inputs.is_empty() {
                        r.inputs.is_empty()
                    } else {
                        key.inputs.iter().enumerate().all(|(i, alts)| {
                            r.inputs.get(i).is_some_and(|links| {
                                links.iter().any(|l| {
                                    alts.iter().any(|(k, s)| {
                                        *s == l.selector && sets[*k].contains(&l.link)
                                    })
                                })
                            })
                        })
                    }
            })
            .map(|(i, _)| i)
            .collect();
        sets.push(set);
    }
    sets
}

/// Keys mirroring the records of `graph` (so that deep matches are common), each perturbed by
/// its code: 0 to 2 exact, 3 another digest, 4 another selector on the first link, 5 the last
/// input dropped.
fn mirror(graph: &RecordGraph, codes: &[u8]) -> Vec<TestKey> {
    let mut keys = Vec::new();
    for (r, record) in graph.records().iter().enumerate() {
        let code = codes.get(r).copied().unwrap_or(0);
        let mut key = TestKey {
            digest: record.digest.clone(),
            inputs: record
                .inputs
                .iter()
                .map(|alts| alts.iter().map(|a| (a.link, a.selector.clone())).collect())
                .collect(),
        };
        match code {
            3 => key.digest = pool_digest(code),
            4 => {
                if let Some(first) = key.inputs.first_mut().and_then(|a| a.first_mut()) {
                    first.1 = match first.1 {
                        None => pool_selector(1),
                        Some(_) => None,
                    };
                }
            }
            5 => {
                key.inputs.pop();
            }
            _ => {}
        }
        keys.push(key);
    }
    keys
}

fn layers() -> Vec<Descriptor> {
    (0..IMAGE_LAYERS)
        .map(|i| {
            Descriptor::new(
                "application/vnd.oci.image.layer.v1.tar+gzip",
                Digest::sha256_of(&[b'l', i as u8]),
                1,
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn matcher_agrees_with_brute_force(
        graphs in prop::collection::vec(records(14), 1..3),
        random_keys in keys(10),
        codes in prop::collection::vec(0u8..6, 14),
    ) {
        // Mirrored keys first (their links index themselves), then random ones on top.
        let mut keys = mirror(&graphs[0], &codes);
        let offset = keys.len();
        keys.extend(random_keys.into_iter().map(|mut k| {
            for alts in &mut k.inputs {
                for (link, _) in alts.iter_mut() {
                    *link += offset;
                }
            }
            k
        }));
        let image = layers();
        let mut store = CacheStore::new();
        for (n, g) in graphs.iter().enumerate() {
            store.import_inline(format!("origin {n}"), g, &image);
        }
        // Step by step, as a solver asks.
        let mut sets: Vec<MatchSet> = Vec::new();
        for key in &keys {
            let inputs: Vec<Vec<Alternative<'_>>> = key
                .inputs
                .iter()
                .map(|alts| {
                    alts.iter()
                        .map(|(k, s)| Alternative { parents: &sets[*k], selector: s.as_ref() })
                        .collect()
                })
                .collect();
            let set = store.match_dependent(&key.digest, &inputs);
            sets.push(set);
        }
        for (o, g) in graphs.iter().enumerate() {
            let expected = brute(g, &keys);
            for (k, set) in sets.iter().enumerate() {
                let got: BTreeSet<usize> = set
                    .iter()
                    .filter(|r| r.origin == OriginId(o))
                    .flat_map(|r| store.record(r).imported_from.clone())
                    .collect();
                prop_assert_eq!(&got, &expected[k], "origin {} key {}", o, k);
            }
        }
        // The best result is the newest loadable one among all matched records.
        for (k, set) in sets.iter().enumerate() {
            let newest = graphs
                .iter()
                .enumerate()
                .flat_map(|(o, g)| {
                    brute(g, &keys)[k]
                        .iter()
                        .flat_map(|r| g.records()[*r].results.clone())
                        .filter(|res| res.layer < IMAGE_LAYERS)
                        .map(|res| res.created_at.unix_nanos())
                        .map(move |t| (t, o))
                        .collect::<Vec<_>>()
                })
                .map(|(t, _)| t)
                .max();
            let best = store.best_result(set);
            prop_assert_eq!(best.as_ref().map(|h| h.result.created_at.unix_nanos()), newest, "key {}", k);
            if let Some(hit) = best {
                prop_assert!(set.contains(hit.record));
                prop_assert!(hit.result.layers.len() <= IMAGE_LAYERS);
            }
        }
    }

    #[test]
    fn explanations_never_panic_and_agree_with_misses(
        graph in records(12),
        keys in keys(8),
    ) {
        let mut store = CacheStore::new();
        store.import_inline("o", &graph, &layers());
        let mut sets: Vec<MatchSet> = Vec::new();
        for key in &keys {
            let inputs: Vec<Vec<Alternative<'_>>> = key
                .inputs
                .iter()
                .map(|alts| {
                    alts.iter()
                        .map(|(k, s)| Alternative { parents: &sets[*k], selector: s.as_ref() })
                        .collect()
                })
                .collect();
            let set = store.match_dependent(&key.digest, &inputs);
            if set.is_empty() && !key.inputs.is_empty() {
                let why = store.explain_miss(&key.digest, &inputs);
                prop_assert_eq!(why.inputs.len(), key.inputs.len());
                // Either some input reaches nothing, or the inputs reach disjoint records.
                if let Some(i) = why.first_unlinked_input {
                    prop_assert!(why.inputs[i].reached.is_empty());
                }
            }
            sets.push(set);
        }
    }
}
