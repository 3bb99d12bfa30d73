//! Any bytes as an inline cache value (`moby.buildkit.cache.v0`): both as the base64 text of the
//! image config key and as the decoded JSON array. Decoding never panics, and whatever decodes
//! re-encodes to a canonical form that decodes again to the same canonical form.
#![no_main]

use inlay_core::Descriptor;
use inlay_core::cache::{CacheStore, RecordGraph};
use libfuzzer_sys::fuzz_target;

fn exercise(graph: &RecordGraph) {
    let json = graph.to_json();
    let again = RecordGraph::from_json(json.as_bytes())
        .unwrap_or_else(|e| panic!("canonical JSON does not decode: {e}\n{json}"));
    assert_eq!(again.to_json(), json, "canonical JSON is not a fixed point");
    let inline = graph.to_inline();
    let again = RecordGraph::from_inline(&inline).expect("canonical inline value decodes");
    assert_eq!(again.to_json(), json);
    let _ = graph.topological_order();
    for (index, record) in graph.records().iter().enumerate() {
        let _ = record.image_layer_lists_within(4);
        let _ = graph.dependents(index).count();
    }
    let layers: Vec<Descriptor> = (0..4u8)
        .map(|i| {
            Descriptor::new(
                "application/vnd.oci.image.layer.v1.tar+gzip",
                inlay_core::Digest::sha256_of(&[i]),
                1,
            )
        })
        .collect();
    let mut store = CacheStore::new();
    store.import_inline("fuzz", graph, &layers);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(graph) = RecordGraph::from_json(data) {
        exercise(&graph);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(graph) = RecordGraph::from_inline(text) {
            exercise(&graph);
        }
    }
});
