//! Inputs the fuzz targets (`fuzz/`) found to misbehave, kept as regression tests named after
//! what they found.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use inlay_core::cache::{CacheStore, RecordGraph};
use inlay_core::{Descriptor, Digest};

/// `cache_inline` found it (an out-of-memory abort): a `layers` result index is only bounded by
/// JSON, and listing it as positions `0..=k` allocated gigabytes before the importer could drop
/// it for naming a layer the image lacks.
#[test]
fn inline_cache_with_a_huge_layer_index_is_dropped_without_allocating() {
    let root = Digest::sha256_of(b"root");
    let json = format!(
        r#"[{{"digest":"{root}","layers":[{{"layer":907460742}},{{"layer":1}}],"chains":[{{"layers":[0,907460742]}},{{"layers":[1,0]}}]}}]"#
    );
    let graph = RecordGraph::from_json(json.as_bytes()).unwrap();
    let record = &graph.records()[0];
    let lists: Vec<Vec<usize>> = record
        .image_layer_lists_within(2)
        .into_iter()
        .map(|(positions, _)| positions)
        .collect();
    assert_eq!(lists, vec![vec![0, 1], vec![1, 0]]);

    let layers: Vec<Descriptor> = (0..2u8)
        .map(|i| {
            Descriptor::new(
                "application/vnd.oci.image.layer.v1.tar+gzip",
                Digest::sha256_of(&[i]),
                1,
            )
        })
        .collect();
    let mut store = CacheStore::new();
    let origin = store.import_inline("hostile", &graph, &layers);
    assert_eq!(store.origin(origin).records().len(), 1);
    let stored = &store.origin(origin).records()[0];
    assert_eq!(stored.results.len(), 2);
    assert!(stored.results.iter().all(|r| r.layers.len() == 2));
}
