//! The registry cache config form, the v0.10+ `chains` form, and the refusals of spec section
//! 2.6, through the public API.

#![allow(clippy::unwrap_used)]

use inlay_core::Digest;
use inlay_core::cache::{CacheConfig, CacheRecordError, RecordGraph, Timestamp};

fn d(n: u8) -> String {
    Digest::sha256_of(&[n]).to_string()
}

#[test]
fn registry_config_absent_parent_means_zero() {
    let json = format!(
        r#"{{"layers":[{{"blob":"{b0}","parent":-1}},{{"blob":"{b1}"}},{{"blob":"{b2}","parent":1,"annotations":{{"mediaType":"m","diffID":"{b3}","size":7,"createdAt":"2026-01-01T00:00:00Z"}}}}],
           "records":[{{"digest":"{r0}"}},{{"layers":[{{"layer":2,"createdAt":"2026-01-01T00:00:01.5Z"}}],"digest":"{r1}","inputs":[[{{"link":0}}]]}}],
           "unknown":true}}"#,
        b0 = d(10),
        b1 = d(11),
        b2 = d(12),
        b3 = d(13),
        r0 = d(1),
        r1 = d(2),
    );
    let config = CacheConfig::from_json(json.as_bytes()).unwrap();
    assert_eq!(config.layers()[0].parent, None);
    assert_eq!(config.layers()[1].parent, Some(0), "absent parent is 0");
    let record = &config.graph().records()[1];
    assert_eq!(config.chain(record.results[0].layer), vec![0, 1, 2]);
    let annotations = config.layers()[2].annotations.as_ref().unwrap();
    assert_eq!(annotations.size, 7);
    assert_eq!(annotations.diff_id.as_ref().unwrap().to_string(), d(13));

    // Canonical form: layers sorted by blob, parents rewritten, `parent` 0 omitted, -1 written.
    let out = config.to_json();
    let again = CacheConfig::from_json(out.as_bytes()).unwrap();
    assert_eq!(again.to_json(), out);
    let blobs: Vec<String> = again.layers().iter().map(|l| l.blob.to_string()).collect();
    let mut sorted = blobs.clone();
    sorted.sort();
    assert_eq!(blobs, sorted);
    let top = again.graph().records()[1].results[0].layer;
    let chain: Vec<String> = again
        .chain(top)
        .into_iter()
        .map(|l| again.layers()[l].blob.to_string())
        .collect();
    assert_eq!(chain, vec![d(10), d(11), d(12)]);
    assert!(out.contains(r#""parent":-1"#));
    assert!(!out.contains("unknown"));
}

#[test]
fn chains_form_decodes_and_encodes() {
    let json = format!(
        r#"[{{"chains":[{{"layers":[0,2],"createdAt":"0001-01-01T00:00:00Z"}}],"digest":"{r1}","inputs":[[{{"selector":"{s}","link":1}}]]}},{{"digest":"{r0}"}}]"#,
        r0 = d(1),
        r1 = d(2),
        s = d(3),
    );
    let graph = RecordGraph::from_json(json.as_bytes()).unwrap();
    let record = &graph.records()[0];
    assert_eq!(record.chains[0].layers, vec![0, 2]);
    assert_eq!(record.chains[0].created_at, Timestamp::ZERO);
    assert!(record.results.is_empty());
    // Already in canonical order iff d(2) sorts before d(1); either way it round trips.
    let out = graph.to_json();
    assert!(out.contains(r#""chains":[{"layers":[0,2],"createdAt":"0001-01-01T00:00:00Z"}]"#));
    assert_eq!(
        RecordGraph::from_json(out.as_bytes()).unwrap().to_json(),
        out
    );
}

#[test]
fn missing_fields_take_go_zero_values() {
    // `link` absent means 0, `createdAt` absent means the zero time, nulls are empty.
    let json = format!(
        r#"[{{"digest":"{r0}","inputs":null,"layers":null}},{{"digest":"{r1}","layers":[{{"layer":0}}],"inputs":[[{{}}]]}}]"#,
        r0 = d(1),
        r1 = d(2),
    );
    let graph = RecordGraph::from_json(json.as_bytes()).unwrap();
    assert_eq!(graph.records()[1].inputs[0][0].link, 0);
    assert_eq!(graph.records()[1].results[0].created_at, Timestamp::ZERO);
    assert!(
        graph
            .to_json()
            .contains(r#"{"layer":0,"createdAt":"0001-01-01T00:00:00Z"}"#)
    );
    assert_eq!(RecordGraph::from_json(b"null").unwrap().len(), 0);
    assert_eq!(RecordGraph::default().to_json(), "[]");
    assert_eq!(CacheConfig::default().to_json(), "{}");
}

fn refusal(json: &str) -> CacheRecordError {
    RecordGraph::from_json(json.as_bytes()).unwrap_err()
}

#[test]
fn refusals_say_which_record() {
    let r0 = d(1);
    let r1 = d(2);
    assert!(matches!(
        refusal(&format!(
            r#"[{{"digest":"{r0}","inputs":[[{{"link":1}}]]}},{{"digest":"{r1}","inputs":[[{{"link":0}}]]}}]"#
        )),
        CacheRecordError::Loop { .. }
    ));
    assert!(matches!(
        refusal(&format!(
            r#"[{{"digest":"{r0}","inputs":[[{{"link":0}}]]}}]"#
        )),
        CacheRecordError::Loop { record: 0 }
    ));
    let err = refusal(&format!(
        r#"[{{"digest":"{r0}"}},{{"digest":"{r1}","inputs":[[{{"link":0}}],[{{"link":5}}]]}}]"#
    ));
    assert!(matches!(
        err,
        CacheRecordError::LinkOutOfRange {
            record: 1,
            input: 1,
            link: 5,
            records: 2
        }
    ));
    assert_eq!(
        err.to_string(),
        "record 1 input 1 links to record 5, but there are 2 records"
    );
    assert!(matches!(
        refusal(&format!(
            r#"[{{"digest":"{r0}","inputs":[[{{"link":-1}}]]}}]"#
        )),
        CacheRecordError::LinkOutOfRange { link: -1, .. }
    ));
    assert!(matches!(
        refusal(&format!(
            r#"[{{"digest":"{r0}"}},{{"digest":"{r1}","inputs":[[]]}}]"#
        )),
        CacheRecordError::EmptyInput {
            record: 1,
            input: 0
        }
    ));
    assert!(matches!(
        refusal(r#"[{"inputs":[]}]"#),
        CacheRecordError::MissingDigest { record: 0 }
    ));
    assert!(matches!(
        refusal(r#"[{"digest":"sha256:xyz"}]"#),
        CacheRecordError::BadDigest { record: 0, .. }
    ));
    assert!(matches!(
        refusal(&format!(
            r#"[{{"digest":"{r0}"}},{{"digest":"{r1}","inputs":[[{{"link":0,"selector":"/"}}]]}}]"#
        )),
        CacheRecordError::BadSelector {
            record: 1,
            input: 0,
            alternative: 0,
            ..
        }
    ));
    assert!(matches!(
        refusal(&format!(
            r#"[{{"digest":"{r0}","layers":[{{"layer":-2}}]}}]"#
        )),
        CacheRecordError::NegativeLayer {
            record: 0,
            layer: -2
        }
    ));
    assert!(matches!(
        refusal(&format!(
            r#"[{{"digest":"{r0}","layers":[{{"layer":0,"createdAt":"yesterday"}}]}}]"#
        )),
        CacheRecordError::BadResultTime { record: 0, .. }
    ));
    assert!(matches!(
        refusal(r#"{"records":[]}"#),
        CacheRecordError::Json { .. }
    ));
    assert!(matches!(
        RecordGraph::from_inline("not base64!"),
        Err(CacheRecordError::Base64 { .. })
    ));
}

#[test]
fn config_refusals_say_which_layer() {
    let b = d(10);
    let r0 = d(1);
    let config = |json: String| CacheConfig::from_json(json.as_bytes()).unwrap_err();
    assert!(matches!(
        config(format!(r#"{{"layers":[{{"blob":"{b}","parent":3}}]}}"#)),
        CacheRecordError::ParentOutOfRange {
            layer: 0,
            parent: 3,
            layers: 1
        }
    ));
    assert!(matches!(
        config(format!(r#"{{"layers":[{{"blob":"{b}"}}]}}"#)),
        CacheRecordError::LayerLoop { layer: 0 }
    ));
    assert!(matches!(
        config(r#"{"layers":[{"parent":-1}]}"#.to_owned()),
        CacheRecordError::MissingBlob { layer: 0 }
    ));
    assert!(matches!(
        config(format!(
            r#"{{"layers":[{{"blob":"{b}","parent":-1}}],"records":[{{"digest":"{r0}","layers":[{{"layer":1}}]}}]}}"#
        )),
        CacheRecordError::LayerOutOfRange {
            record: 0,
            layer: 1,
            layers: 1
        }
    ));
}
