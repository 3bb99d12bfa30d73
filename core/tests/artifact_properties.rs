//! Properties of the cache artifact codec (`inlay_core::cache::artifact`): reading never
//! panics, and what is built reads back the same.

use inlay_core::cache::artifact::CacheArtifact;
use inlay_core::cache::{CacheConfig, CacheLayer, RecordGraph};
use inlay_core::descriptor::ANNOTATION_UNCOMPRESSED;
use inlay_core::{Descriptor, Digest, media_types};
use proptest::prelude::*;

proptest! {
    #[test]
    fn parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = CacheArtifact::parse(&bytes);
    }

    #[test]
    fn parsing_json_shapes_never_panics(text in r#"\{"(artifactType|layers|subject|config)":.{0,80}\}"#) {
        let _ = CacheArtifact::parse(text.as_bytes());
    }

    #[test]
    fn built_artifacts_read_back(contents in proptest::collection::vec(any::<Vec<u8>>(), 0..6)) {
        let layers: Vec<Descriptor> = contents
            .iter()
            .map(|c| {
                let mut d = Descriptor::of_bytes(media_types::OCI_LAYER_GZIP, c);
                d.annotations.insert(
                    ANNOTATION_UNCOMPRESSED.to_owned(),
                    Digest::sha256_of(&[c.as_slice(), b"tar"].concat()).to_string(),
                );
                d
            })
            .collect();
        let mut table: Vec<CacheLayer> = Vec::new();
        for d in &layers {
            if table.iter().all(|l| l.blob != d.digest) {
                table.push(CacheLayer {
                    blob: d.digest.clone(),
                    parent: table.len().checked_sub(1),
                    annotations: None,
                });
            }
        }
        let config = CacheConfig::new(table, RecordGraph::default()).unwrap();
        let subject = Descriptor::of_bytes(media_types::OCI_MANIFEST, b"{}");
        let built = CacheArtifact::build(subject, layers, &config).unwrap();
        let read = CacheArtifact::parse(built.manifest()).unwrap();
        prop_assert_eq!(read.layers(), built.layers());
        prop_assert_eq!(read.subject(), built.subject());
        prop_assert_eq!(read.cache_config_descriptor(), built.cache_config_descriptor());
        prop_assert_eq!(read.digest(), built.digest());
        prop_assert!(built.cache_config_descriptor().digest.verifies(built.cache_config()));
    }
}
