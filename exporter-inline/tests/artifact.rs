//! The stages cache artifact: pushed next to its image on distribution 2.8 (no referrers
//! API) and found again through `Client::referrers`, which then reads the referrers tag.

// Test helpers outside `#[test]` functions unwrap too; scenarios read best in one piece.
#![allow(clippy::unwrap_used, clippy::too_many_lines)]

mod support;

use inlay_core::cache::{
    CacheConfig, CacheInput, CacheLayer, CacheRecord, CacheResult, RecordGraph,
};
use inlay_core::{Digest, Timestamp, media_types};
use inlay_exporter_inline::artifact::ARTIFACT_TYPE;
use inlay_exporter_inline::{
    BlobLocation, CacheArtifact, ManifestFormat, PushOptions, push_cache_artifact, push_image,
    write_image,
};
use inlay_registry::referrers_tag;
use support::proxy::Proxy;
use support::registry::TestRegistry;
use support::{annotated, client, gzip_layer, image_input, reference};

/// The builder stage's cache: a root and a step whose result is both stage layers.
fn stage_config(layers: &[&Digest]) -> CacheConfig {
    let table = layers
        .iter()
        .enumerate()
        .map(|(i, d)| CacheLayer {
            blob: (*d).clone(),
            parent: i.checked_sub(1),
            annotations: None,
        })
        .collect();
    let root = CacheRecord::root(Digest::sha256_of(b"builder base"));
    let mut step = CacheRecord::root(Digest::sha256_of(b"builder step"));
    step.inputs = vec![vec![CacheInput {
        link: 0,
        selector: None,
    }]];
    step.results = vec![CacheResult {
        layer: layers.len() - 1,
        created_at: Timestamp::ZERO,
    }];
    CacheConfig::new(table, RecordGraph::new(vec![root, step]).unwrap()).unwrap()
}

#[tokio::test]
async fn artifact_is_found_through_the_referrers_tag() {
    let registry = TestRegistry::start();
    let proxy = Proxy::counting(registry.addr).await;
    let client = client();
    let host = proxy.host();
    let target = reference(&host, "multi/app:v1");

    let (input, mut blobs) = image_input(&[("final", b"final stage")], ManifestFormat::Oci);
    let image = write_image(&input).unwrap();
    push_image(
        &client,
        &image,
        std::slice::from_ref(&target),
        &blobs,
        &PushOptions::default(),
    )
    .await
    .unwrap();

    let (builder_a, bytes_a) = gzip_layer("toolchain", b"compilers");
    let (builder_b, bytes_b) = gzip_layer("objects", b"object files");
    blobs.insert(
        builder_a.descriptor.digest.clone(),
        BlobLocation::Bytes(bytes_a),
    );
    blobs.insert(
        builder_b.descriptor.digest.clone(),
        BlobLocation::Bytes(bytes_b),
    );
    let config = stage_config(&[&builder_a.descriptor.digest, &builder_b.descriptor.digest]);
    let artifact = CacheArtifact::build(
        image.manifest_descriptor().clone(),
        vec![annotated(&builder_a), annotated(&builder_b)],
        &config,
    )
    .unwrap();

    let report = push_cache_artifact(&client, &target, &artifact, &blobs, &PushOptions::default())
        .await
        .unwrap();
    assert_eq!(&report.digest, artifact.digest());
    assert!(report.index_updated);
    assert_eq!(
        report.referrers_tag.tag(),
        Some(referrers_tag(image.digest()).as_str())
    );
    assert_eq!(
        report.blobs.blobs_uploaded, 3,
        "two layers and the cache config"
    );

    // Found from the image alone.
    proxy.stats.reset();
    let found = client
        .referrers(&target, image.digest(), Some(ARTIFACT_TYPE))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].digest, *artifact.digest());
    assert_eq!(found[0].artifact_type.as_deref(), Some(ARTIFACT_TYPE));
    assert_eq!(
        proxy.stats.count("GET", "/referrers/"),
        1,
        "the API was asked first"
    );
    assert_eq!(
        proxy.stats.count(
            "GET",
            &format!("/manifests/{}", referrers_tag(image.digest()))
        ),
        1,
        "distribution 2.8 has no referrers API: the tag answered"
    );

    // What was found reads back as the artifact, subject and cache config included.
    let manifest = client
        .get_manifest(&target.with_digest(found[0].digest.clone()))
        .await
        .unwrap();
    assert_eq!(manifest.media_type, media_types::OCI_MANIFEST);
    assert_eq!(&manifest.bytes, artifact.manifest());
    let read: inlay_core::image::ImageManifest = serde_json::from_slice(&manifest.bytes).unwrap();
    assert_eq!(read.artifact_type.as_deref(), Some(ARTIFACT_TYPE));
    assert_eq!(read.subject.as_ref(), Some(image.manifest_descriptor()));
    assert_eq!(read.config.media_type, media_types::BUILDKIT_CACHE_CONFIG);
    assert_eq!(read.layers, artifact.layers());
    let blob = client.get_blob(&target, &read.config).await.unwrap();
    assert_eq!(CacheConfig::from_json(&blob).unwrap(), config.canonical());
    for layer in &read.layers {
        assert!(layer.uncompressed_digest().is_some());
        assert!(
            client
                .blob_exists(&target, &layer.digest)
                .await
                .unwrap()
                .is_some()
        );
    }

    // Pushing it again changes nothing; a second artifact joins the same index.
    let again = push_cache_artifact(&client, &target, &artifact, &blobs, &PushOptions::default())
        .await
        .unwrap();
    assert!(!again.index_updated);
    assert_eq!(again.blobs.blobs_uploaded, 0);
    let other = CacheArtifact::build(
        image.manifest_descriptor().clone(),
        vec![annotated(&builder_a)],
        &stage_config(&[&builder_a.descriptor.digest]),
    )
    .unwrap();
    push_cache_artifact(&client, &target, &other, &blobs, &PushOptions::default())
        .await
        .unwrap();
    let mut both: Vec<Digest> = client
        .referrers(&target, image.digest(), Some(ARTIFACT_TYPE))
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.digest)
        .collect();
    both.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    let mut expected = vec![artifact.digest().clone(), other.digest().clone()];
    expected.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    assert_eq!(both, expected);
}
