//! `type=image,push=true` against the real registry (distribution 2.8) on 127.0.0.1, with a
//! counting proxy in front of it to see which requests a push makes.

// Test helpers outside `#[test]` functions unwrap too; scenarios read best in one piece.
#![allow(clippy::unwrap_used, clippy::too_many_lines)]

mod support;

use inlay_core::cache::RecordGraph;
use inlay_core::image::{Document, ImageConfig};
use inlay_core::{Descriptor, media_types};
use inlay_exporter_inline::{
    BlobLocation, BlobMap, ExportError, ManifestFormat, PushOptions, push_image, write_image,
};
use support::proxy::{Action, Proxy, Seen};
use support::registry::TestRegistry;
use support::{client, image_input, reference};

#[tokio::test]
async fn inline_cache_image_is_pushed_once_and_then_left_alone() {
    let registry = TestRegistry::start();
    let proxy = Proxy::counting(registry.addr).await;
    let client = client();
    let host = proxy.host();
    let target = reference(&host, "app/web:v1");

    let layers: &[(&str, &[u8])] = &[("base.txt", b"base"), ("app.txt", b"app v1")];
    let (input, blobs) = image_input(layers, ManifestFormat::Docker);
    let image = write_image(&input).unwrap();
    // Determinism: a second run over equal inputs (layers rebuilt from scratch) gives the same
    // manifest digest.
    let (again, _) = image_input(layers, ManifestFormat::Docker);
    assert_eq!(write_image(&again).unwrap().digest(), image.digest());

    let report = push_image(
        &client,
        &image,
        std::slice::from_ref(&target),
        &blobs,
        &PushOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.digest.as_ref(), Some(image.digest()));
    assert_eq!(report.blobs_uploaded, 3, "two layers and the config");
    assert_eq!(report.blobs_skipped + report.blobs_mounted, 0);
    let sizes: u64 = image
        .layers()
        .iter()
        .map(|l| l.descriptor.size as u64)
        .sum::<u64>()
        + image.config().len() as u64;
    assert_eq!(report.bytes_uploaded, sizes);
    assert_eq!(report.manifests_pushed, vec![target.clone()]);

    // Pull it back: the manifest is the exact bytes, the config carries the cache value.
    let pulled = client.get_manifest(&target).await.unwrap();
    assert_eq!(&pulled.bytes, image.manifest());
    assert_eq!(pulled.media_type, media_types::DOCKER_MANIFEST);
    let config_bytes = client
        .get_blob(&target, image.config_descriptor())
        .await
        .unwrap();
    let config =
        Document::<ImageConfig>::verified(config_bytes.to_vec(), &image.config_descriptor().digest)
            .unwrap();
    let value = config.view().inline_cache().unwrap();
    assert_eq!(
        RecordGraph::from_inline(value).unwrap(),
        input.inline_cache.clone().unwrap().canonical()
    );
    assert_eq!(config.view().rootfs.diff_ids.len(), 2);

    // The same image again under the same tag: HEAD on the tag, nothing else.
    proxy.stats.reset();
    let report = push_image(
        &client,
        &image,
        std::slice::from_ref(&target),
        &blobs,
        &PushOptions::default(),
    )
    .await
    .unwrap();
    assert!(report.manifests_pushed.is_empty());
    assert_eq!(report.bytes_uploaded, 0);
    let requests: Vec<String> = proxy
        .stats
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|(s, _)| format!("{} {}", s.method, s.path()))
        .collect();
    assert_eq!(requests, vec!["HEAD /v2/app/web/manifests/v1".to_owned()]);

    // A new tag for the same image: blobs are found (HEAD), only the manifest is PUT.
    proxy.stats.reset();
    let v2 = reference(&host, "app/web:v2");
    let report = push_image(
        &client,
        &image,
        std::slice::from_ref(&v2),
        &blobs,
        &PushOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.blobs_skipped, 3);
    assert_eq!(report.blobs_uploaded, 0);
    assert_eq!(report.manifests_pushed, vec![v2.clone()]);
    assert_eq!(proxy.stats.count("PUT", "/manifests/v2"), 1);
    assert_eq!(proxy.stats.count("POST", "/blobs/uploads/"), 0);
    assert_eq!(proxy.stats.count("PATCH", "/blobs/uploads/"), 0);
    assert_eq!(
        client.head_manifest(&v2).await.unwrap().unwrap().digest,
        *image.digest()
    );
}

#[tokio::test]
async fn oci_image_pushes_with_oci_media_types() {
    let registry = TestRegistry::start();
    let client = client();
    let target = reference(&registry.host(), "oci/img:1");
    let (input, blobs) = image_input(&[("a", b"a")], ManifestFormat::Oci);
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
    let pulled = client.get_manifest(&target).await.unwrap();
    assert_eq!(pulled.media_type, media_types::OCI_MANIFEST);
    assert_eq!(pulled.digest, *image.digest());
}

#[tokio::test]
async fn layer_from_another_repository_is_mounted() {
    let registry = TestRegistry::start();
    let proxy = Proxy::counting(registry.addr).await;
    let client = client();
    let host = proxy.host();
    let (input, blobs) = image_input(&[("base", b"shared base layer")], ManifestFormat::Docker);
    let image = write_image(&input).unwrap();
    let cache_repo = reference(&host, "team/cache:latest");
    push_image(
        &client,
        &image,
        std::slice::from_ref(&cache_repo),
        &blobs,
        &PushOptions::default(),
    )
    .await
    .unwrap();

    // The build hit the cache in team/cache and never downloaded the layer.
    let layer = &image.layers()[0].descriptor;
    let mut lazy = BlobMap::new();
    lazy.insert(
        layer.digest.clone(),
        BlobLocation::Registry(cache_repo.clone()),
    );
    proxy.stats.reset();
    let target = reference(&host, "team/app:v1");
    let report = push_image(
        &client,
        &image,
        std::slice::from_ref(&target),
        &lazy,
        &PushOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.blobs_mounted, 1);
    assert_eq!(report.blobs_uploaded, 1, "the config");
    assert_eq!(report.bytes_uploaded, image.config().len() as u64);
    assert_eq!(
        proxy.stats.count("GET", "/blobs/sha256:"),
        0,
        "nothing downloaded"
    );
    assert_eq!(
        proxy.stats.count(
            "POST",
            &format!("mount={}", layer.digest.as_str().replace(':', "%3A"))
        ),
        1
    );
    assert!(
        client
            .blob_exists(&target, &layer.digest)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn layer_from_another_registry_is_copied_once_and_verified() {
    let source_registry = TestRegistry::start();
    let target_registry = TestRegistry::start();
    let client = client();
    let (input, blobs) = image_input(&[("base", b"from elsewhere")], ManifestFormat::Docker);
    let image = write_image(&input).unwrap();
    let layer: Descriptor = image.layers()[0].descriptor.clone();
    let elsewhere = reference(&source_registry.host(), "lib/base:1");
    push_image(
        &client,
        &image,
        std::slice::from_ref(&elsewhere),
        &blobs,
        &PushOptions::default(),
    )
    .await
    .unwrap();

    // A proxy in front of the source that corrupts one byte of every blob it serves.
    let corrupting = Proxy::start(
        source_registry.addr,
        std::sync::Arc::new(|s: &Seen| {
            if s.method == "GET" && s.path().contains("/blobs/sha256:") {
                Action::Corrupt { at: 10 }
            } else {
                Action::Forward
            }
        }),
    )
    .await;
    let target = reference(&target_registry.host(), "prod/app:v1");
    let mut tampered = BlobMap::new();
    tampered.insert(
        layer.digest.clone(),
        BlobLocation::Registry(reference(&corrupting.host(), "lib/base")),
    );
    let spool = tempfile::tempdir().unwrap();
    let options = PushOptions {
        spool_dir: Some(spool.path().to_owned()),
        ..PushOptions::default()
    };
    let err = push_image(
        &client,
        &image,
        std::slice::from_ref(&target),
        &tampered,
        &options,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, ExportError::Registry { action: "fetch blob", source, .. }
            if matches!(**source, inlay_registry::RegistryError::DigestMismatch { .. })),
        "{err:?}"
    );
    assert!(
        client
            .blob_exists(&target, &layer.digest)
            .await
            .unwrap()
            .is_none()
    );
    assert!(client.head_manifest(&target).await.unwrap().is_none());
    assert_eq!(
        std::fs::read_dir(spool.path()).unwrap().count(),
        0,
        "spool cleaned"
    );

    // Through a counting proxy the same copy works, with exactly one download.
    let counting = Proxy::counting(source_registry.addr).await;
    let mut honest = BlobMap::new();
    honest.insert(
        layer.digest.clone(),
        BlobLocation::Registry(reference(&counting.host(), "lib/base")),
    );
    let report = push_image(
        &client,
        &image,
        std::slice::from_ref(&target),
        &honest,
        &options,
    )
    .await
    .unwrap();
    assert_eq!(report.blobs_uploaded, 2);
    assert_eq!(
        report.bytes_uploaded,
        layer.size as u64 + image.config().len() as u64
    );
    assert_eq!(counting.stats.count("GET", "/blobs/sha256:"), 1);
    let pulled = client.get_blob(&target, &layer).await.unwrap();
    assert!(layer.digest.verifies(&pulled));
}

#[tokio::test]
async fn a_blob_without_source_is_an_error_before_any_manifest() {
    let registry = TestRegistry::start();
    let client = client();
    let (input, _) = image_input(&[("x", b"x")], ManifestFormat::Docker);
    let image = write_image(&input).unwrap();
    let target = reference(&registry.host(), "missing/blob:1");
    let err = push_image(
        &client,
        &image,
        std::slice::from_ref(&target),
        &BlobMap::new(),
        &PushOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ExportError::MissingBlob { .. }), "{err:?}");
    assert!(client.head_manifest(&target).await.unwrap().is_none());
}

#[tokio::test]
async fn a_refused_mount_falls_back_to_one_verified_copy() {
    let registry = TestRegistry::start();
    // The registry refuses every mount (202 with an upload session, as when the user may not
    // read the source repository).
    let proxy = Proxy::start(
        registry.addr,
        std::sync::Arc::new(|s: &Seen| {
            if s.method == "POST" && s.target.contains("mount=") {
                Action::Respond(
                    support::http::Response::new(202)
                        .header("Location", "/v2/team/app/blobs/uploads/refused"),
                )
            } else {
                Action::Forward
            }
        }),
    )
    .await;
    let client = client();
    let host = proxy.host();
    let (input, blobs) = image_input(&[("base", b"not mountable")], ManifestFormat::Docker);
    let image = write_image(&input).unwrap();
    let cache_repo = reference(&host, "team/cache:latest");
    push_image(
        &client,
        &image,
        std::slice::from_ref(&cache_repo),
        &blobs,
        &PushOptions::default(),
    )
    .await
    .unwrap();
    let layer = image.layers()[0].descriptor.clone();
    let mut lazy = BlobMap::new();
    lazy.insert(layer.digest.clone(), BlobLocation::Registry(cache_repo));
    proxy.stats.reset();
    let target = reference(&host, "team/app:v1");
    let report = push_image(
        &client,
        &image,
        std::slice::from_ref(&target),
        &lazy,
        &PushOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(report.blobs_mounted, 0);
    assert_eq!(report.blobs_uploaded, 2);
    assert_eq!(proxy.stats.count("GET", "/blobs/sha256:"), 1);
    assert_eq!(proxy.stats.count("PUT", "/blobs/uploads/refused"), 0);
    let pulled = client.get_blob(&target, &layer).await.unwrap();
    assert!(layer.digest.verifies(&pulled));
}

#[tokio::test]
async fn a_manifest_refused_for_a_blob_being_linked_is_sent_again() {
    // When another client pushes the same blob, distribution rewrites its repository link in
    // place, and a manifest checked at that moment is refused as naming an unknown blob.
    let registry = TestRegistry::start();
    let refused = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let once = refused.clone();
    let proxy = Proxy::start(
        registry.addr,
        std::sync::Arc::new(move |s: &Seen| {
            if s.method == "PUT"
                && s.target.contains("/manifests/")
                && !once.swap(true, std::sync::atomic::Ordering::SeqCst)
            {
                Action::Respond(support::http::Response::new(400).json(&serde_json::json!({
                    "errors": [
                        {"code": "DIGEST_INVALID", "message": "provided digest did not match uploaded content"},
                        {"code": "MANIFEST_BLOB_UNKNOWN", "message": "blob unknown to registry"}
                    ]
                })))
            } else {
                Action::Forward
            }
        }),
    )
    .await;
    let client = client();
    let (input, blobs) = image_input(&[("base", b"raced")], ManifestFormat::Docker);
    let image = write_image(&input).unwrap();
    let target = reference(&proxy.host(), "team/raced:v1");
    push_image(
        &client,
        &image,
        std::slice::from_ref(&target),
        &blobs,
        &PushOptions::default(),
    )
    .await
    .unwrap();
    assert!(refused.load(std::sync::atomic::Ordering::SeqCst));
    assert_eq!(proxy.stats.count("PUT", "/manifests/"), 2);
    let head = client.head_manifest(&target).await.unwrap().unwrap();
    assert_eq!(&head.digest, image.digest());
}
