//! Property tests of the codecs: round trips, order independence, and never panicking on any
//! input (house style point 11).

#![allow(clippy::unwrap_used)]

use inlay_core::Digest;
use inlay_core::cache::{
    CacheConfig, CacheInput, CacheLayer, CacheRecord, CacheResult, ChainedResult, LayerAnnotations,
    RecordGraph, Timestamp,
};
use inlay_core::gojson;
use inlay_core::image::{ConfigPatch, Document, ImageConfig, ManifestOrIndex};
use proptest::prelude::*;

/// A record before links are resolved: links are seeds taken modulo the record's position, so
/// every generated graph is acyclic.
#[derive(Debug, Clone)]
struct Seed {
    digest: u8,
    inputs: Vec<Vec<(usize, Option<u8>)>>,
    results: Vec<(usize, u8)>,
    chains: Vec<(Vec<usize>, u8)>,
}

fn small_digest(n: u8) -> Digest {
    Digest::sha256_of(&[n])
}

fn time(n: u8) -> Timestamp {
    match n % 4 {
        0 => Timestamp::ZERO,
        1 => "2026-11-27T23:39:22.91950267Z".parse().unwrap(),
        2 => "2026-11-27T23:39:22.907466368+02:00".parse().unwrap(),
        _ => Timestamp::from_unix_nanos(i128::from(n) * 1_000_000_007).unwrap(),
    }
}

fn seed() -> impl Strategy<Value = Seed> {
    (
        0u8..6,
        prop::collection::vec(
            prop::collection::vec((any::<usize>(), prop::option::of(0u8..3)), 1..4),
            0..4,
        ),
        prop::collection::vec((0usize..8, any::<u8>()), 0..3),
        prop::collection::vec((prop::collection::vec(0usize..8, 0..4), any::<u8>()), 0..2),
    )
        .prop_map(|(digest, inputs, results, chains)| Seed {
            digest,
            inputs,
            results,
            chains,
        })
}

fn build(seeds: &[Seed], layer_count: usize) -> Vec<CacheRecord> {
    seeds
        .iter()
        .enumerate()
        .map(|(i, s)| CacheRecord {
            digest: small_digest(s.digest),
            // The first record cannot link anywhere, so it is a root.
            inputs: if i == 0 {
                Vec::new()
            } else {
                s.inputs
                    .iter()
                    .map(|alternatives| {
                        alternatives
                            .iter()
                            .map(|(link, selector)| CacheInput {
                                link: link % i,
                                selector: selector.map(|n| small_digest(100 + n)),
                            })
                            .collect()
                    })
                    .collect()
            },
            results: s
                .results
                .iter()
                .map(|(layer, t)| CacheResult {
                    layer: layer % layer_count,
                    created_at: time(*t),
                })
                .collect(),
            chains: s
                .chains
                .iter()
                .map(|(layers, t)| ChainedResult {
                    layers: layers.iter().map(|l| l % layer_count).collect(),
                    created_at: time(*t),
                })
                .collect(),
        })
        .collect()
}

/// Moves record `i` to `order[i]`, rewriting links.
fn permute(records: &[CacheRecord], order: &[usize]) -> Vec<CacheRecord> {
    let mut out: Vec<Option<CacheRecord>> = vec![None; records.len()];
    for (i, record) in records.iter().enumerate() {
        let mut record = record.clone();
        for alternatives in &mut record.inputs {
            for a in alternatives.iter_mut() {
                a.link = order[a.link];
            }
            alternatives.reverse();
        }
        out[order[i]] = Some(record);
    }
    out.into_iter().map(Option::unwrap).collect()
}

fn graph_and_permutation() -> impl Strategy<Value = (Vec<CacheRecord>, Vec<usize>)> {
    prop::collection::vec(seed(), 0..12).prop_flat_map(|seeds| {
        let n = seeds.len();
        let records = build(&seeds, 8);
        (
            Just(records),
            Just((0..n).collect::<Vec<_>>()).prop_shuffle(),
        )
    })
}

fn layers() -> impl Strategy<Value = Vec<CacheLayer>> {
    prop::collection::vec(
        (
            0u8..4,
            any::<usize>(),
            any::<bool>(),
            prop::option::of(0u8..3),
        ),
        1..8,
    )
    .prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (blob, parent, has_parent, annotation))| CacheLayer {
                blob: small_digest(200 + blob),
                parent: (has_parent && i > 0).then(|| parent % i),
                annotations: annotation.map(|n| LayerAnnotations {
                    media_type: if n == 0 {
                        String::new()
                    } else {
                        "application/vnd.oci.image.layer.v1.tar+gzip".to_owned()
                    },
                    diff_id: (n == 2).then(|| small_digest(250)),
                    size: i64::from(n) * 100,
                    created_at: time(n),
                }),
            })
            .collect()
    })
}

/// Arbitrary JSON, biased towards the keys and shapes of cache configs.
fn json() -> impl Strategy<Value = serde_json::Value> {
    let key = prop::sample::select(vec![
        "digest",
        "inputs",
        "layers",
        "chains",
        "link",
        "selector",
        "layer",
        "createdAt",
        "parent",
        "blob",
        "records",
        "annotations",
        "diffID",
        "size",
        "mediaType",
        "manifests",
        "schemaVersion",
        "config",
        "rootfs",
        "diff_ids",
        "history",
        "x",
    ]);
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        (-3i64..12).prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::from(
            "sha256:b139ea8bf07ace643415354a46ce11c0649b87a4c7c495c9ba2fc6029493ae74"
        )),
        Just(serde_json::Value::from("2026-11-27T23:39:22.91950267Z")),
        ".{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6).prop_map(|fields| {
                serde_json::Value::Object(
                    fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                )
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn record_graphs_round_trip((records, order) in graph_and_permutation()) {
        let graph = RecordGraph::new(records.clone()).unwrap();
        let canonical = graph.canonical();
        prop_assert_eq!(&canonical.canonical(), &canonical, "canonical is idempotent");
        let json = graph.to_json();
        let decoded = RecordGraph::from_json(json.as_bytes()).unwrap();
        prop_assert_eq!(&decoded, &canonical);
        prop_assert_eq!(decoded.to_json(), json.clone());
        let inline = graph.to_inline();
        prop_assert_eq!(RecordGraph::from_inline(&inline).unwrap(), canonical.clone());
        // The same graph given in another order encodes to the same bytes.
        let shuffled = RecordGraph::new(permute(&records, &order)).unwrap();
        prop_assert_eq!(shuffled.to_json(), json);
        // Canonical graphs round trip exactly.
        prop_assert_eq!(RecordGraph::from_json(canonical.to_json().as_bytes()).unwrap(), canonical);
    }

    #[test]
    fn cache_configs_round_trip(
        layers in layers(),
        seeds in prop::collection::vec(seed(), 0..8),
    ) {
        let records = build(&seeds, layers.len());
        let config = CacheConfig::new(layers, RecordGraph::new(records).unwrap()).unwrap();
        let canonical = config.canonical();
        prop_assert_eq!(&canonical.canonical(), &canonical);
        let json = config.to_json();
        let decoded = CacheConfig::from_json(json.as_bytes()).unwrap();
        prop_assert_eq!(&decoded, &canonical);
        prop_assert_eq!(decoded.to_json(), json);
        // Layer chains survive renumbering: every result names the same blobs.
        let blobs = |c: &CacheConfig, top: usize| -> Vec<Digest> {
            c.chain(top).into_iter().map(|l| c.layers()[l].blob.clone()).collect()
        };
        let mut before: Vec<(Digest, Vec<Digest>)> = config.graph().records().iter()
            .flat_map(|r| r.results.iter().map(|res| (r.digest.clone(), blobs(&config, res.layer))))
            .collect();
        let mut after: Vec<(Digest, Vec<Digest>)> = decoded.graph().records().iter()
            .flat_map(|r| r.results.iter().map(|res| (r.digest.clone(), blobs(&decoded, res.layer))))
            .collect();
        before.sort();
        before.dedup();
        after.sort();
        after.dedup();
        prop_assert_eq!(before, after);
    }

    #[test]
    fn cache_config_encoding_ignores_layer_and_record_order(
        (layers, layer_order) in layers().prop_flat_map(|layers| {
            let n = layers.len();
            (Just(layers), Just((0..n).collect::<Vec<_>>()).prop_shuffle())
        }),
        (seeds, record_order) in prop::collection::vec(seed(), 0..8).prop_flat_map(|seeds| {
            let n = seeds.len();
            (Just(seeds), Just((0..n).collect::<Vec<_>>()).prop_shuffle())
        }),
    ) {
        let records = build(&seeds, layers.len());
        let config = CacheConfig::new(layers.clone(), RecordGraph::new(records.clone()).unwrap())
            .unwrap();
        let mut moved_layers: Vec<Option<CacheLayer>> = vec![None; layers.len()];
        for (l, layer) in layers.iter().enumerate() {
            let mut layer = layer.clone();
            layer.parent = layer.parent.map(|p| layer_order[p]);
            moved_layers[layer_order[l]] = Some(layer);
        }
        let moved_records: Vec<CacheRecord> = permute(&records, &record_order)
            .into_iter()
            .map(|mut r| {
                for result in &mut r.results {
                    result.layer = layer_order[result.layer];
                }
                for chain in &mut r.chains {
                    for l in &mut chain.layers {
                        *l = layer_order[*l];
                    }
                }
                r
            })
            .collect();
        let moved = CacheConfig::new(
            moved_layers.into_iter().map(Option::unwrap).collect(),
            RecordGraph::new(moved_records).unwrap(),
        )
        .unwrap();
        prop_assert_eq!(moved.to_json(), config.to_json());
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = RecordGraph::from_json(&bytes);
        let _ = CacheConfig::from_json(&bytes);
        let _ = ConfigPatch::parse(&bytes);
        let _ = Document::<ImageConfig>::parse(bytes.clone());
        let _ = ManifestOrIndex::parse(bytes.clone(), None);
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = RecordGraph::from_inline(text);
            let _ = text.parse::<Timestamp>();
        }
    }

    #[test]
    fn decoding_arbitrary_json_never_panics(value in json()) {
        let bytes = serde_json::to_vec(&value).unwrap();
        for candidate in [bytes.clone(), serde_json::to_vec(&serde_json::json!([value])).unwrap()] {
            if let Ok(graph) = RecordGraph::from_json(&candidate) {
                // Whatever decodes also encodes and decodes again.
                let again = RecordGraph::from_json(graph.to_json().as_bytes()).unwrap();
                prop_assert_eq!(again, graph.canonical());
            }
            if let Ok(config) = CacheConfig::from_json(&candidate) {
                let again = CacheConfig::from_json(config.to_json().as_bytes()).unwrap();
                prop_assert_eq!(again, config.canonical());
            }
            if let Ok(patch) = ConfigPatch::parse(&candidate) {
                let out = patch.to_bytes();
                prop_assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok());
            }
            let _ = Document::<ImageConfig>::parse(candidate.clone());
            let _ = ManifestOrIndex::parse(candidate, Some("application/vnd.oci.image.index.v1+json"));
        }
    }

    #[test]
    fn gojson_strings_match_serde_without_html_or_control_chars(
        s in "[^<>&\u{2028}\u{2029}\u{0}-\u{1f}]*",
    ) {
        prop_assert_eq!(gojson::quote(&s), serde_json::to_string(&s).unwrap());
    }

    #[test]
    fn gojson_strings_parse_back(s in any::<String>()) {
        let quoted = gojson::quote(&s);
        prop_assert_eq!(serde_json::from_str::<String>(&quoted).unwrap(), s.clone());
        let mut short = String::new();
        gojson::write_string(&mut short, &s, gojson::ControlEscapes::Short);
        prop_assert_eq!(serde_json::from_str::<String>(&short).unwrap(), s);
        let html_free = !quoted.contains(['<', '>', '&', '\u{2028}', '\u{2029}']);
        prop_assert!(html_free);
    }

    #[test]
    fn go_compact_keeps_the_value(value in json()) {
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        let plain = serde_json::to_string(&value).unwrap();
        let mut from_pretty = String::new();
        inlay_core::image::go_compact(&pretty, &mut from_pretty);
        let mut from_plain = String::new();
        inlay_core::image::go_compact(&plain, &mut from_plain);
        prop_assert_eq!(&from_pretty, &from_plain);
        let escaped = !from_plain.contains(['\n', '<', '>', '&']);
        prop_assert!(escaped);
        // Same parse path on both sides (serde_json's float parsing is not exact).
        let back: serde_json::Value = serde_json::from_str(&from_plain).unwrap();
        let reference: serde_json::Value = serde_json::from_str(&plain).unwrap();
        prop_assert_eq!(back, reference);
    }

    #[test]
    fn timestamps_round_trip(nanos in -62_135_596_800_000_000_000i128..253_402_300_799_999_999_999i128,
                             offset in -1439i16..1440) {
        let utc = Timestamp::from_unix_nanos(nanos).unwrap();
        prop_assert_eq!(utc.unix_nanos(), nanos);
        prop_assert_eq!(utc.to_string().parse::<Timestamp>().unwrap(), utc);
        // The same instant written with an offset parses to the same instant.
        let shifted = Timestamp::from_unix_nanos(nanos + i128::from(offset) * 60_000_000_000);
        if let Some(shifted) = shifted {
            let text = shifted.to_string();
            let with_offset = format!(
                "{}{}{:02}:{:02}",
                text.trim_end_matches('Z'),
                if offset < 0 { '-' } else { '+' },
                offset.unsigned_abs() / 60,
                offset.unsigned_abs() % 60
            );
            let parsed: Timestamp = with_offset.parse().unwrap();
            prop_assert_eq!(parsed.unix_nanos(), nanos);
            prop_assert_eq!(parsed.to_string().parse::<Timestamp>().unwrap(), parsed);
        }
    }
}
