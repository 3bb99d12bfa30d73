//! Faults a real registry will not produce on demand, from small mock servers on 127.0.0.1.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use inlay_core::{Descriptor, Digest, media_types};
use inlay_registry::{BlobSource, Client, Credential, CredentialStore, RegistryError};
use support::http::{HttpServer, Request, Response};
use support::{reference, test_config};

#[tokio::test]
async fn oversized_manifest_is_refused() {
    let server = HttpServer::start(Arc::new(|req: Request| {
        if req.path() == "/v2/" {
            return Response::new(200);
        }
        Response::new(200)
            .header("Content-Type", media_types::OCI_MANIFEST)
            .body(vec![b' '; 5 * 1024 * 1024])
    }))
    .await;
    let client = Client::new(test_config(), CredentialStore::empty()).unwrap();
    let err = client
        .get_manifest(&reference(&server.addr.to_string(), "big/one:1"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::TooLarge { limit, .. } if limit == 4 * 1024 * 1024),
        "{err}"
    );
}

#[tokio::test]
async fn announced_digest_must_match_the_bytes() {
    let server = HttpServer::start(Arc::new(|_req: Request| {
        Response::new(200)
            .header("Content-Type", media_types::OCI_MANIFEST)
            .header(
                "Docker-Content-Digest",
                Digest::sha256_of(b"something else").as_str(),
            )
            .body(r#"{"schemaVersion":2}"#)
    }))
    .await;
    let client = Client::new(test_config(), CredentialStore::empty()).unwrap();
    let err = client
        .get_manifest(&reference(&server.addr.to_string(), "lying/one:1"))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
}

#[tokio::test]
async fn longer_blob_than_described_is_refused() {
    let server = HttpServer::start(Arc::new(|_req: Request| {
        Response::new(200).body(vec![0u8; 2000])
    }))
    .await;
    let client = Client::new(test_config(), CredentialStore::empty()).unwrap();
    let desc = Descriptor::of_bytes(media_types::OCI_LAYER_GZIP, &[0u8; 1000]);
    let err = client
        .get_blob(&reference(&server.addr.to_string(), "long/one:1"), &desc)
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::SizeMismatch { .. }), "{err}");
}

#[tokio::test]
async fn redirect_to_blob_storage_drops_credentials() {
    let blob = Bytes::from_static(b"layer bytes in object storage");
    let desc = Descriptor::of_bytes(media_types::OCI_LAYER_GZIP, &blob);
    let storage_auth: Arc<Mutex<Vec<Option<String>>>> = Arc::default();
    let seen = storage_auth.clone();
    let body = blob.clone();
    let storage = HttpServer::start(Arc::new(move |req: Request| {
        seen.lock()
            .unwrap()
            .push(req.header("authorization").map(str::to_owned));
        Response::new(200).body(body.to_vec())
    }))
    .await;
    let target = storage.url("/bucket/blob?X-Signature=abc");
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("user:secret")
    );
    let registry_auth = Arc::new(AtomicUsize::new(0));
    let counted = registry_auth.clone();
    let registry = HttpServer::start(Arc::new(move |req: Request| {
        if req.header("authorization") != Some(want.as_str()) {
            return Response::new(401).header("WWW-Authenticate", r#"Basic realm="mock""#);
        }
        counted.fetch_add(1, Ordering::SeqCst);
        if req.path() == "/v2/" {
            return Response::new(200);
        }
        Response::new(307).header("Location", &target)
    }))
    .await;
    let host = registry.addr.to_string();
    let mut store = CredentialStore::empty();
    store.insert(&host, Credential::basic("user", "secret"));
    let client = Client::new(test_config(), store).unwrap();
    let got = client
        .get_blob(&reference(&host, "r/one:1"), &desc)
        .await
        .unwrap();
    assert_eq!(got, blob);
    assert!(registry_auth.load(Ordering::SeqCst) >= 1);
    assert_eq!(*storage_auth.lock().unwrap(), vec![None]);
}

#[tokio::test]
async fn chunks_honour_the_registry_minimum() {
    const MIN: usize = 4096;
    let patches: Arc<Mutex<Vec<(String, usize)>>> = Arc::default();
    let stored: Arc<Mutex<Vec<u8>>> = Arc::default();
    let (p, s) = (patches.clone(), stored.clone());
    let server = HttpServer::start(Arc::new(move |req: Request| match req.method.as_str() {
        "GET" => Response::new(200),
        "HEAD" => Response::new(404),
        "POST" => Response::new(202)
            .header("Location", "/v2/r/blobs/uploads/u1")
            .header("OCI-Chunk-Min-Length", &MIN.to_string()),
        "PATCH" => {
            let mut st = s.lock().unwrap();
            p.lock().unwrap().push((
                req.header("content-range").unwrap_or("").to_owned(),
                req.body.len(),
            ));
            st.extend_from_slice(&req.body);
            Response::new(202)
                .header("Location", "/v2/r/blobs/uploads/u1")
                .header("Range", &format!("0-{}", st.len() - 1))
        }
        "PUT" => {
            let st = s.lock().unwrap();
            let digest = req.query("digest");
            if digest == [Digest::sha256_of(&st).to_string()] {
                Response::new(201).header("Docker-Content-Digest", &digest[0])
            } else {
                Response::new(400)
            }
        }
        _ => Response::new(405),
    }))
    .await;
    let mut config = test_config();
    config.chunk_size = 1000;
    let client = Client::new(config, CredentialStore::empty()).unwrap();
    let blob = support::image::random_bytes(31, 10_000);
    let desc = Descriptor::of_bytes(media_types::OCI_LAYER_GZIP, &blob);
    client
        .push_blob(
            &reference(&server.addr.to_string(), "r:1"),
            &desc,
            BlobSource::from(blob.clone()),
            None,
        )
        .await
        .unwrap();
    let patches = patches.lock().unwrap().clone();
    assert_eq!(
        patches,
        vec![
            ("0-4095".to_owned(), 4096),
            ("4096-8191".to_owned(), 4096),
            ("8192-9999".to_owned(), 1808)
        ]
    );
    assert_eq!(*stored.lock().unwrap(), blob);
}

#[tokio::test]
async fn retries_stop_after_the_policy_allows() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let server = HttpServer::start(Arc::new(move |req: Request| {
        if req.path() == "/v2/" {
            return Response::new(200);
        }
        h.fetch_add(1, Ordering::SeqCst);
        Response::new(503)
            .json(&serde_json::json!({"errors": [{"code": "UNAVAILABLE", "message": "try later"}]}))
    }))
    .await;
    let config = test_config();
    let attempts = config.retry.max_attempts as usize;
    let client = Client::new(config, CredentialStore::empty()).unwrap();
    let err = client
        .get_manifest(&reference(&server.addr.to_string(), "down/one:1"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(503), "{err}");
    assert!(err.to_string().contains("try later"), "{err}");
    assert_eq!(hits.load(Ordering::SeqCst), attempts);
}
