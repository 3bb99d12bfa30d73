//! Against the real registry without auth, directly and through counting and faulty proxies.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use inlay_core::{Descriptor, Platform, media_types};
use inlay_registry::{BlobSource, Client, CredentialStore, PushOutcome, RegistryError};
use support::http::Response;
use support::image::{TestImage, random_bytes};
use support::proxy::{Action, Proxy, Seen};
use support::registry::{Setup, TestRegistry};
use support::{anonymous_client, reference, test_config};

#[tokio::test]
async fn push_and_pull_image_and_index() {
    let reg = TestRegistry::start(&Setup::Open);
    support::push_pull_image_and_index(&anonymous_client(), &reg.host(), "team/app").await;
}

#[tokio::test]
async fn cross_repository_mount_moves_no_bytes() {
    let reg = TestRegistry::start(&Setup::Open);
    let client = anonymous_client();
    let blob = Bytes::from(random_bytes(7, 1024 * 1024));
    let desc = Descriptor::of_bytes(media_types::OCI_LAYER_GZIP, &blob);
    let source = reference(&reg.host(), "base/image:1");
    let outcome = client
        .push_blob(&source, &desc, BlobSource::Bytes(blob.clone()), None)
        .await
        .unwrap();
    assert_eq!(outcome, PushOutcome::Uploaded);

    let proxy = Proxy::counting(reg.addr).await;
    let via_proxy = anonymous_client();
    let target = reference(&proxy.host(), "derived/image:1");
    let from = reference(&proxy.host(), "base/image:1");
    let outcome = via_proxy
        .push_blob(&target, &desc, BlobSource::Bytes(blob.clone()), Some(&from))
        .await
        .unwrap();
    assert_eq!(outcome, PushOutcome::Mounted);
    let sent = proxy.stats.upstream_bytes.load(Ordering::SeqCst);
    assert!(
        sent < 8 * 1024,
        "{sent} bytes went to the registry for a mount"
    );
    assert_eq!(proxy.stats.count("POST", "mount="), 1);
    assert_eq!(proxy.stats.count("PUT", ""), 0);
    assert_eq!(
        via_proxy.blob_exists(&target, &desc.digest).await.unwrap(),
        Some(blob.len() as u64)
    );

    // A mount the registry refuses (the source does not have the blob) opens an ordinary
    // session (202), which the client then uploads into.
    let other = Bytes::from(random_bytes(8, 4096));
    let other_desc = Descriptor::of_bytes(media_types::OCI_LAYER_GZIP, &other);
    let outcome = via_proxy
        .push_blob(&target, &other_desc, BlobSource::Bytes(other), Some(&from))
        .await
        .unwrap();
    assert_eq!(outcome, PushOutcome::Uploaded);
}

#[tokio::test]
async fn large_blob_uploads_in_chunks_and_downloads_verified() {
    let reg = TestRegistry::start(&Setup::Open);
    let proxy = Proxy::counting(reg.addr).await;
    let mut config = test_config();
    config.chunk_size = 8 * 1024 * 1024;
    let client = Client::new(config, CredentialStore::empty()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.blob");
    let blob = random_bytes(64, 64 * 1024 * 1024);
    std::fs::write(&path, &blob).unwrap();
    let desc = Descriptor::of_bytes(media_types::OCI_LAYER_GZIP, &blob);
    drop(blob);
    let r = reference(&proxy.host(), "big/blob:1");
    let outcome = client
        .push_blob(&r, &desc, BlobSource::File(path), None)
        .await
        .unwrap();
    assert_eq!(outcome, PushOutcome::Uploaded);
    assert_eq!(proxy.stats.count("PATCH", "/blobs/uploads/"), 8);
    assert_eq!(proxy.stats.count("PUT", "digest="), 1);

    let out = dir.path().join("down.blob");
    let mut file = tokio::fs::File::create(&out).await.unwrap();
    let n = client.get_blob_to(&r, &desc, &mut file).await.unwrap();
    assert_eq!(n, 64 * 1024 * 1024);
    assert_eq!(std::fs::metadata(&out).unwrap().len(), n);
}

#[tokio::test]
async fn altered_download_is_rejected() {
    let reg = TestRegistry::start(&Setup::Open);
    let client = anonymous_client();
    let image = TestImage::new(3, &[50 * 1024], Platform::linux_amd64());
    let r = reference(&reg.host(), "victim/app:1");
    image.push(&client, &r).await;
    let layer = image.layers[0].0.clone();

    let proxy = Proxy::start(
        reg.addr,
        Arc::new(|seen: &Seen| {
            if seen.method == "GET" && seen.path().contains("/blobs/") {
                Action::Corrupt { at: 1000 }
            } else if seen.method == "GET" && seen.path().contains("/manifests/") {
                Action::Corrupt { at: 20 }
            } else {
                Action::Forward
            }
        }),
    )
    .await;
    let r = reference(&proxy.host(), "victim/app:1");
    let err = client.get_blob(&r, &layer).await.unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    let err = client.get_manifest(&r).await.unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
}

type FaultRule = Box<dyn Fn(&Seen) -> Option<Action> + Send + Sync>;

/// Fails the first request matching `(method, path part)` with `action`, then forwards.
fn once(
    method: &'static str,
    part: impl Into<String>,
    action: Action,
) -> impl Fn(&Seen) -> Option<Action> {
    let done = AtomicUsize::new(0);
    let part = part.into();
    move |seen: &Seen| {
        (seen.method == method
            && seen.target.contains(&part)
            && done.fetch_add(1, Ordering::SeqCst) == 0)
            .then(|| action.clone())
    }
}

#[tokio::test]
async fn faults_are_survived() {
    let reg = TestRegistry::start(&Setup::Open);
    let image = TestImage::new(4, &[300 * 1024, 3 * 1024 * 1024], Platform::linux_amd64());
    let big_layer = format!("/blobs/{}", image.layers[1].0.digest);
    let rules: Vec<FaultRule> = vec![
        Box::new(once(
            "HEAD",
            "/blobs/",
            Action::Respond(Response::new(429).header("Retry-After", "1")),
        )),
        Box::new(once(
            "POST",
            "/blobs/uploads/",
            Action::Respond(Response::new(503)),
        )),
        Box::new(once("PATCH", "/blobs/uploads/", Action::Swallow)),
        Box::new(once(
            "PATCH",
            "/blobs/uploads/",
            Action::Respond(Response::new(502)),
        )),
        Box::new(once(
            "PUT",
            "/manifests/",
            Action::Respond(Response::new(503)),
        )),
        Box::new(once("GET", "/manifests/", Action::CutAfter { bytes: 50 })),
        Box::new(once(
            "GET",
            big_layer.clone(),
            Action::CutAfter { bytes: 100_000 },
        )),
        Box::new(once("GET", big_layer, Action::Respond(Response::new(500)))),
    ];
    let proxy = Proxy::start(
        reg.addr,
        Arc::new(move |seen: &Seen| {
            rules
                .iter()
                .find_map(|r| r(seen))
                .unwrap_or(Action::Forward)
        }),
    )
    .await;
    let mut config = test_config();
    config.chunk_size = 1024 * 1024;
    let client = Client::new(config, CredentialStore::empty()).unwrap();
    let r = reference(&proxy.host(), "flaky/app:1");
    image.push(&client, &r).await;
    image.pull_and_check(&client, &r).await;

    let stats = &proxy.stats;
    let faults: Vec<String> = stats
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, a)| a != "Forward")
        .map(|(s, a)| format!("{} {} {a}", s.method, s.path()))
        .collect();
    assert_eq!(faults.len(), 8, "{faults:#?}");
    // The first download broke after 100 000 bytes, and the retry asked only for the rest.
    let ranged = stats
        .requests
        .lock()
        .unwrap()
        .iter()
        .filter(|(s, _)| s.header("range").is_some_and(|r| r.starts_with("bytes=")))
        .count();
    assert!(ranged >= 1, "no download was resumed by Range");
}

#[tokio::test]
async fn registry_error_body_is_shown_and_4xx_not_retried() {
    let reg = TestRegistry::start(&Setup::Open);
    let proxy = Proxy::counting(reg.addr).await;
    let client = anonymous_client();
    let image = TestImage::new(5, &[1000], Platform::linux_amd64());
    let r = reference(&proxy.host(), "broken/app:1");
    // The manifest names blobs the repository does not have: distribution answers 400.
    let err = client
        .put_manifest(&r, media_types::OCI_MANIFEST, image.manifest.clone())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(400), "{err}");
    assert_eq!(err.details()[0].code, "MANIFEST_BLOB_UNKNOWN", "{err}");
    let text = err.to_string();
    assert!(
        text.contains("MANIFEST_BLOB_UNKNOWN") && text.contains("/v2/broken/app/manifests/1"),
        "{text}"
    );
    assert_eq!(proxy.stats.count("PUT", "/manifests/"), 1);

    let err = client
        .get_manifest(&reference(&proxy.host(), "broken/app:missing"))
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(err.details()[0].code, "MANIFEST_UNKNOWN", "{err}");
    assert_eq!(proxy.stats.count("GET", "/manifests/missing"), 1);
}

#[tokio::test]
async fn referrers_fall_back_to_the_tag_schema() {
    let reg = TestRegistry::start(&Setup::Open);
    let client = anonymous_client();
    let host = reg.host();
    let subject = TestImage::new(6, &[100], Platform::linux_amd64());
    let r = reference(&host, "signed/app:1");
    subject.push(&client, &r).await;
    assert!(
        client
            .referrers(&r, &subject.digest(), None)
            .await
            .unwrap()
            .is_empty()
    );

    let signature = TestImage::new(7, &[10], Platform::linux_amd64());
    signature
        .push(&client, &reference(&host, "signed/app:sig"))
        .await;
    let mut sig_desc = Descriptor::of_bytes(media_types::OCI_MANIFEST, &signature.manifest);
    sig_desc.artifact_type = Some("application/vnd.example.signature".into());
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": media_types::OCI_INDEX, "manifests": [sig_desc],
    }))
    .unwrap();
    let tag = inlay_registry::referrers_tag(&subject.digest());
    client
        .put_manifest(&r.with_tag(&tag), media_types::OCI_INDEX, index.into())
        .await
        .unwrap();
    let found = client.referrers(&r, &subject.digest(), None).await.unwrap();
    assert_eq!(found, vec![sig_desc.clone()]);
    let filtered = client
        .referrers(&r, &subject.digest(), Some("application/vnd.other"))
        .await
        .unwrap();
    assert!(filtered.is_empty());
}

#[tokio::test]
async fn pulls_go_through_mirrors_and_fall_back_to_the_registry() {
    let reg = TestRegistry::start(&Setup::Open);
    let image = TestImage::new(9, &[4000], Platform::linux_amd64());
    let r = reference(&reg.host(), "mirrored/app:1");
    image.push(&anonymous_client(), &r).await;

    let mirror = Proxy::counting(reg.addr).await;
    let broken = support::http::HttpServer::start(Arc::new(|_req: support::http::Request| {
        Response::new(500)
    }))
    .await;
    let mut config = test_config();
    config.mirrors.insert(reg.host(), vec![mirror.host()]);
    let through_mirror = Client::new(config, CredentialStore::empty()).unwrap();
    image.pull_and_check(&through_mirror, &r).await;
    assert!(mirror.stats.count("GET", "/manifests/1") >= 1);
    assert!(mirror.stats.count("GET", "/blobs/") >= 2);

    let mut config = test_config();
    config
        .mirrors
        .insert(reg.host(), vec![broken.addr.to_string()]);
    let past_mirror = Client::new(config, CredentialStore::empty()).unwrap();
    image.pull_and_check(&past_mirror, &r).await;
}

#[test]
fn the_registry_process_ends_with_its_handle_even_on_panic() {
    let pid = std::sync::Mutex::new(None);
    let outcome = std::panic::catch_unwind(|| {
        let reg = TestRegistry::start(&Setup::Open);
        *pid.lock().unwrap() = Some(reg.pid());
        panic!("a failing test");
    });
    assert!(outcome.is_err());
    let pid = pid.lock().unwrap().expect("the registry started");
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "docker-registry {pid} outlived its test"
    );
}
