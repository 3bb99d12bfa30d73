//! The real BuildKit inline caches of `shared/conformance` (spec sections 8 and 8b): decoding,
//! byte-exact re-encoding, config patching and the image documents around them.

// Helpers outside #[test] fns are test code too.
#![allow(clippy::unwrap_used)]

mod shared_data;

use inlay_core::Digest;
use inlay_core::cache::{CacheInput, RecordGraph, Timestamp};
use inlay_core::image::{
    ConfigPatch, Document, INLINE_CACHE_KEY, ImageConfig, ImageManifest, ManifestOrIndex, chain_id,
};

const S: &str = "sha256:8a5edab282632443219e051e4ade2d1d5bbc671c781051bf1437897cbdfea0f1";

fn digest(text: &str) -> Digest {
    text.parse().unwrap()
}

fn inline_value(sample: &str) -> String {
    let config: ImageConfig =
        serde_json::from_slice(&shared_data::read(&format!("{sample}/config.json"))).unwrap();
    config
        .inline_cache()
        .expect("sample has an inline cache")
        .to_owned()
}

/// One expected record: digest, `(layer, createdAt)` result, inputs as `(link, selector)`.
type Expected = (
    &'static str,
    Option<(usize, &'static str)>,
    Vec<Vec<(usize, Option<&'static str>)>>,
);

fn check(graph: &RecordGraph, expected: &[Expected]) {
    assert_eq!(graph.len(), expected.len());
    for (record, (d, result, inputs)) in graph.records().iter().zip(expected) {
        assert_eq!(record.digest, digest(d));
        assert!(record.chains.is_empty());
        match result {
            None => assert!(record.results.is_empty(), "{d} has no result"),
            Some((layer, time)) => {
                assert_eq!(record.results.len(), 1);
                assert_eq!(record.results[0].layer, *layer);
                assert_eq!(
                    record.results[0].created_at,
                    time.parse::<Timestamp>().unwrap()
                );
                assert_eq!(record.results[0].created_at.to_string(), *time);
            }
        }
        let want: Vec<Vec<CacheInput>> = inputs
            .iter()
            .map(|alternatives| {
                alternatives
                    .iter()
                    .map(|(link, selector)| CacheInput {
                        link: *link,
                        selector: selector.map(digest),
                    })
                    .collect()
            })
            .collect();
        assert_eq!(record.inputs, want, "inputs of {d}");
    }
}

#[test]
fn v08_sample_decodes_to_the_six_records_of_section_8_2() {
    let value = inline_value("buildkit-v0.8-inline-sample");
    assert_eq!(value.len(), 1188);
    let graph = RecordGraph::from_inline(&value).unwrap();
    check(
        &graph,
        &[
            (
                "sha256:1684127940f02bad5357d1571ebc6d3aff3b1b590a53fe80c2eac2f833ad6676",
                Some((1, "2026-11-27T23:39:22.907466368Z")),
                vec![vec![(3, None)]],
            ),
            (
                "sha256:49a13ab823a708f0b77162d2e5484869f0902b17bc1fcca6956e273931644ad7",
                None,
                vec![],
            ),
            (
                "sha256:807b3e8722c68572736f54d83fd741a5b1d69ccbef218fae52b4149a56d232ce",
                Some((3, "2026-11-27T23:39:22.91950267Z")),
                vec![vec![(4, None)]],
            ),
            (
                "sha256:b139ea8bf07ace643415354a46ce11c0649b87a4c7c495c9ba2fc6029493ae74",
                None,
                vec![],
            ),
            (
                "sha256:b69e04cd2050e4ec7e21405522fa5313dce88d81e637a848dbcc160953a82ecc",
                Some((2, "2026-11-27T23:39:22.913682054Z")),
                vec![vec![(0, None)], vec![(1, None)]],
            ),
            (
                "sha256:c61c4fe0a25c97bb4fe001289eef9c2b4dca1be16edf753f346dc24c89749298",
                Some((4, "2026-11-27T23:39:23.146733567Z")),
                vec![vec![(2, None)]],
            ),
        ],
    );
    assert_eq!(graph.roots().collect::<Vec<_>>(), vec![1, 3]);
    assert_eq!(graph.to_inline(), value, "re-encoding is byte for byte");
    assert_eq!(graph.canonical(), graph, "the sample is already canonical");
}

#[test]
fn v024_sample_decodes_to_the_seven_records_of_section_8b_2() {
    let value = inline_value("buildkit-v0.24-inline-sample");
    assert_eq!(value.len(), 1660);
    let graph = RecordGraph::from_inline(&value).unwrap();
    check(
        &graph,
        &[
            (
                "sha256:3c6573bf326fc4c1b46285b48a01e2c19e2dcd3fd34cb9a40420a96d08c5ecc8",
                Some((1, "2026-11-28T00:27:13.539719048Z")),
                vec![vec![(4, Some(S)), (5, Some(S))]],
            ),
            (
                "sha256:49a13ab823a708f0b77162d2e5484869f0902b17bc1fcca6956e273931644ad7",
                None,
                vec![],
            ),
            (
                "sha256:7bd17ac9b8214bfa83b01d11ca204b31cc68a440e8fc9942c62b83ee61bdff75",
                Some((4, "2026-11-28T00:27:13.665917759Z")),
                vec![vec![(3, Some(S))]],
            ),
            (
                "sha256:807b3e8722c68572736f54d83fd741a5b1d69ccbef218fae52b4149a56d232ce",
                Some((3, "2026-11-28T00:27:13.586436532Z")),
                vec![vec![(6, None)]],
            ),
            (
                "sha256:840e26d9f1ea58c00079e39a7bbe6c35a878f7b2fafc108d5b1b7d707e5a2b89",
                None,
                vec![],
            ),
            (
                "sha256:b139ea8bf07ace643415354a46ce11c0649b87a4c7c495c9ba2fc6029493ae74",
                None,
                vec![],
            ),
            (
                "sha256:b69e04cd2050e4ec7e21405522fa5313dce88d81e637a848dbcc160953a82ecc",
                Some((2, "2026-11-28T00:27:13.563736568Z")),
                vec![vec![(0, None)], vec![(1, None)]],
            ),
        ],
    );
    assert_eq!(graph.to_inline(), value, "re-encoding is byte for byte");
}

#[test]
fn encoding_ignores_the_order_records_arrive_in() {
    let graph = RecordGraph::from_inline(&inline_value("buildkit-v0.24-inline-sample")).unwrap();
    // Reverse the records and remap every link.
    let n = graph.len();
    let reversed = graph
        .records()
        .iter()
        .rev()
        .cloned()
        .map(|mut r| {
            for alternatives in &mut r.inputs {
                for a in alternatives.iter_mut() {
                    a.link = n - 1 - a.link;
                }
                alternatives.reverse();
            }
            r
        })
        .collect();
    let reversed = RecordGraph::new(reversed).unwrap();
    assert_ne!(reversed, graph);
    assert_eq!(reversed.to_inline(), graph.to_inline());
    assert_eq!(reversed.canonical(), graph);
}

#[test]
fn config_patching_reproduces_the_sample_configs() {
    for sample in [
        "buildkit-v0.8-inline-sample",
        "buildkit-v0.24-inline-sample",
    ] {
        let original = shared_data::read(&format!("{sample}/config.json"));
        let mut patch = ConfigPatch::parse(&original).unwrap();
        let keys: Vec<&str> = patch.keys().collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted);

        let value = patch.remove(INLINE_CACHE_KEY).expect("sample has the key");
        let without = patch.to_bytes();
        assert_ne!(without, original);
        assert!(
            !String::from_utf8(without)
                .unwrap()
                .contains(INLINE_CACHE_KEY)
        );

        // Re-adding the same raw value, or the re-encoded graph, gives the exact bytes back.
        patch.set_raw(INLINE_CACHE_KEY, value.clone());
        assert_eq!(patch.to_bytes(), original, "{sample}");
        patch.remove(INLINE_CACHE_KEY);
        let inline: String = serde_json::from_str(value.get()).unwrap();
        patch.set_inline_cache(&RecordGraph::from_inline(&inline).unwrap());
        assert_eq!(patch.to_bytes(), original, "{sample}");

        // Replacing keys with their own typed values keeps the bytes too.
        let config: ImageConfig = serde_json::from_slice(&original).unwrap();
        patch.set("rootfs", &config.rootfs).unwrap();
        patch.set("history", &config.history).unwrap();
        patch.set_created_if_missing(&Timestamp::ZERO);
        assert_eq!(patch.to_bytes(), original, "{sample}");
    }
}

#[test]
fn config_patching_sorts_a_frontend_config() {
    let mut patch = ConfigPatch::parse(
        br#"{"rootfs":{"type":"layers","diff_ids":[]}, "os":"linux","architecture":"amd64"}"#,
    )
    .unwrap();
    patch.set_created_if_missing(&"2026-11-27T23:39:23.145272357Z".parse().unwrap());
    assert_eq!(
        String::from_utf8(patch.to_bytes()).unwrap(),
        r#"{"architecture":"amd64","created":"2026-11-27T23:39:23.145272357Z","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
    );
}

#[test]
fn chain_id_of_the_base_image_is_its_single_diff_id() {
    let base: ImageConfig = serde_json::from_slice(&shared_data::read(
        "buildkit-v0.8-inline-sample/base-config.json",
    ))
    .unwrap();
    assert_eq!(
        chain_id(&base.rootfs.diff_ids),
        Some(digest(
            "sha256:3074da2ce01eeb63fd7d7a7f19841992f1c92fa0f7d8bcb3edd5fbed402545bb"
        ))
    );
    // A five-layer chain, folded by hand.
    let app: ImageConfig = serde_json::from_slice(&shared_data::read(
        "buildkit-v0.8-inline-sample/config.json",
    ))
    .unwrap();
    let ids = &app.rootfs.diff_ids;
    assert_eq!(ids.len(), 5);
    let mut chain = ids[0].clone();
    for id in &ids[1..] {
        chain = Digest::sha256_of(format!("{chain} {id}").as_bytes());
    }
    assert_eq!(chain_id(ids), Some(chain));
}

#[test]
fn documents_keep_their_bytes_and_digests() {
    for (sample, config_digest) in [
        (
            "buildkit-v0.8-inline-sample",
            "sha256:d8f77e374b05bba58075a052516ecd472d5ae313188ef188d76e704d769a9ec4",
        ),
        (
            "buildkit-v0.24-inline-sample",
            "sha256:90284c762d5328409b9b2e7ef882130db87fa40882e976cebd29bc028e20e80c",
        ),
    ] {
        let manifest =
            Document::<ImageManifest>::parse(shared_data::read(&format!("{sample}/manifest.json")))
                .unwrap();
        assert_eq!(manifest.view().config.digest, digest(config_digest));
        assert_eq!(manifest.view().layers.len(), 5);
        let config_bytes = shared_data::read(&format!("{sample}/config.json"));
        let config =
            Document::<ImageConfig>::verified(config_bytes.clone(), &manifest.view().config.digest)
                .unwrap();
        assert_eq!(config.bytes(), config_bytes.as_slice());
        assert_eq!(config.view().history.len(), 7);
        assert_eq!(config.view().layer_history().count(), 5);
        assert_eq!(
            config.descriptor(&manifest.view().config.media_type).size,
            manifest.view().config.size
        );
        let mut tampered = config_bytes;
        tampered.push(b' ');
        assert!(Document::<ImageConfig>::verified(tampered, config.digest()).is_err());
    }
    let base = ManifestOrIndex::parse(
        shared_data::read("buildkit-v0.24-inline-sample/base-manifest.json"),
        None,
    )
    .unwrap();
    assert!(matches!(base, ManifestOrIndex::Manifest(_)));
    assert_eq!(
        base.digest(),
        &digest("sha256:706400ad74aba921c5afe8b1c2c72d34188005d607c3b2cf674c679775ae67ed")
    );
    let index = ManifestOrIndex::parse(
        br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:706400ad74aba921c5afe8b1c2c72d34188005d607c3b2cf674c679775ae67ed","size":527,"platform":{"architecture":"amd64","os":"linux"}}],"x-unknown":[1]}"#.to_vec(),
        None,
    )
    .unwrap();
    let ManifestOrIndex::Index(index) = index else {
        panic!("an index")
    };
    assert_eq!(
        index
            .view()
            .manifests_for(&inlay_core::Platform::linux_amd64())
            .count(),
        1
    );
    assert!(index.view().extra.contains_key("x-unknown"));
}
