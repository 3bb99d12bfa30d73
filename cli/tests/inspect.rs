//! `inlay cache inspect`: snapshots over the exact BuildKit samples (served by a mock registry)
//! and over images built here and pushed to the real registry, plus the error exit codes.

// Helpers outside #[test] fns are test code too.
#![allow(clippy::unwrap_used)]

// The importer's test harness: real registry, mock server, test images.
#[path = "../../importer-registry/tests/support/mod.rs"]
mod support;

use std::process::{Command, Output};
use std::sync::Arc;

use inlay_core::{Descriptor, Digest, Platform, media_types};
use serde_json::{Value, json};
use support::http::{HttpServer, Request, Response};
use support::image::{
    TestImage, cache_config, layer, push_index, push_registry_cache_index, push_stages_artifact,
};
use support::registry::{Setup, TestRegistry};
use support::{anonymous_client, read_conformance, reference};

/// Runs `inlay cache inspect ARGS` with no credentials and no retries.
fn inspect(args: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("registry.json");
    std::fs::write(&config, r#"{"max_attempts": 1}"#).unwrap();
    Command::new(env!("CARGO_BIN_EXE_inlay"))
        .args(["cache", "inspect"])
        .args(args)
        .env("INLAY_REGISTRY_CONFIG", &config)
        .env("DOCKER_CONFIG", dir.path())
        .env_remove("REGISTRY_AUTH_FILE")
        .output()
        .unwrap()
}

fn stdout(out: &Output, host: &str) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .replace(host, "[registry]")
}

/// Serves the sample's manifest and config bytes exactly, 404 for the rest.
async fn sample_server(sample: &str) -> HttpServer {
    let manifest = read_conformance(&format!("{sample}/manifest.json"));
    let config = read_conformance(&format!("{sample}/config.json"));
    let digest = Digest::sha256_of(&manifest);
    HttpServer::start(Arc::new(move |req: Request| {
        let path = req.path();
        if path == "/v2/sample/manifests/latest" {
            return Response::new(200)
                .header("Content-Type", media_types::DOCKER_MANIFEST)
                .header("Docker-Content-Digest", digest.as_str())
                .body(manifest.clone());
        }
        if path == format!("/v2/sample/blobs/{}", Digest::sha256_of(&config)) {
            return Response::new(200).body(config.clone());
        }
        Response::new(404).json(&json!({"errors": [{"code": "NOT_FOUND", "message": "not here"}]}))
    }))
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn v08_sample_table() {
    let server = sample_server("buildkit-v0.8-inline-sample").await;
    let host = server.addr.to_string();
    let out = tokio::task::spawn_blocking(move || inspect(&[&format!("{host}/sample")]))
        .await
        .unwrap();
    insta::assert_snapshot!(stdout(&out, &server.addr.to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn v024_sample_table_and_json() {
    let server = sample_server("buildkit-v0.24-inline-sample").await;
    let host = server.addr.to_string();
    let r = format!("{host}/sample");
    let (table, json) =
        tokio::task::spawn_blocking(move || (inspect(&[&r]), inspect(&["--format", "json", &r])))
            .await
            .unwrap();
    insta::assert_snapshot!("v024_sample_table", stdout(&table, &host));
    let text = stdout(&json, &host);
    let parsed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(parsed["kind"], "inline");
    assert_eq!(parsed["origins"][0]["records"].as_array().unwrap().len(), 7);
    assert_eq!(
        parsed["origins"][0]["layers"][4]["created_by"],
        "RUN /bin/sh -c cat /data.txt > /app/out.txt # buildkit"
    );
    insta::assert_snapshot!("v024_sample_json", text);
}

/// A two-platform image built here: the v0.8 sample's records on layers of our own, a stages
/// artifact for the index, inspected through the real registry.
#[tokio::test(flavor = "multi_thread")]
async fn built_multi_platform_image_with_stages_artifact() {
    let reg = TestRegistry::start(&Setup::Open);
    let client = anonymous_client();
    let host = reg.host();
    let config: Value =
        serde_json::from_slice(&read_conformance("buildkit-v0.8-inline-sample/config.json"))
            .unwrap();
    let amd = TestImage::new(
        (0..5).map(|i| layer(100 + i, 64)).collect(),
        config.clone(),
        Platform::linux_amd64(),
    );
    let arm = TestImage::new(
        (0..5).map(|i| layer(200 + i, 64)).collect(),
        config,
        Platform::new("linux", "arm64", ""),
    );
    amd.push(&client, &reference(&host, "built/app:amd64"))
        .await;
    arm.push(&client, &reference(&host, "built/app:arm64"))
        .await;
    let r = reference(&host, "built/app:v1");
    let index = push_index(&client, &r, &[amd.descriptor(), arm.descriptor()]).await;
    let stage_layers = vec![layer(300, 32), layer(301, 32)];
    let stage_config = cache_config(&format!(
        r#"{{"layers":[{{"blob":"{}","parent":-1}},{{"blob":"{}"}}],"records":[{{"digest":"sha256:b139ea8bf07ace643415354a46ce11c0649b87a4c7c495c9ba2fc6029493ae74"}},{{"layers":[{{"layer":1,"createdAt":"2026-01-02T03:04:05Z"}}],"digest":"sha256:3c6573bf326fc4c1b46285b48a01e2c19e2dcd3fd34cb9a40420a96d08c5ecc8","inputs":[[{{"selector":"sha256:8a5edab282632443219e051e4ade2d1d5bbc671c781051bf1437897cbdfea0f1","link":0}}]]}}]}}"#,
        stage_layers[0].descriptor.digest, stage_layers[1].descriptor.digest
    ));
    let subject = Descriptor::new(media_types::OCI_INDEX, index, 0);
    push_stages_artifact(&client, &r, subject, &stage_layers, &stage_config).await;

    let shown = r.to_string();
    let out = tokio::task::spawn_blocking(move || inspect(&[&shown]))
        .await
        .unwrap();
    insta::assert_snapshot!(stdout(&out, &host));
}

/// A BuildKit registry cache (index form) whose config has a `chains` result and a result
/// naming a blob the container does not list.
#[tokio::test(flavor = "multi_thread")]
async fn registry_cache_table() {
    let reg = TestRegistry::start(&Setup::Open);
    let client = anonymous_client();
    let host = reg.host();
    let layers = vec![layer(400, 16), layer(401, 16), layer(402, 16)];
    let unknown = Digest::sha256_of(b"not in the container");
    let config = cache_config(&format!(
        r#"{{"layers":[{{"blob":"{a}","parent":-1}},{{"blob":"{b}"}},{{"blob":"{c}","parent":-1}},{{"blob":"{unknown}","parent":1}}],"records":[{{"digest":"sha256:b139ea8bf07ace643415354a46ce11c0649b87a4c7c495c9ba2fc6029493ae74"}},{{"layers":[{{"layer":1,"createdAt":"2026-01-02T03:04:05Z"}}],"chains":[{{"layers":[0,2],"createdAt":"0001-01-01T00:00:00Z"}}],"digest":"sha256:1684127940f02bad5357d1571ebc6d3aff3b1b590a53fe80c2eac2f833ad6676","inputs":[[{{"link":0}}]]}},{{"layers":[{{"layer":3,"createdAt":"2026-01-02T03:04:06Z"}}],"digest":"sha256:807b3e8722c68572736f54d83fd741a5b1d69ccbef218fae52b4149a56d232ce","inputs":[[{{"link":1}}]]}}]}}"#,
        a = layers[0].descriptor.digest,
        b = layers[1].descriptor.digest,
        c = layers[2].descriptor.digest,
    ));
    let r = reference(&host, "rc/app:cache");
    push_registry_cache_index(&client, &r, &layers, &config).await;
    let shown = r.to_string();
    let (table, json) = tokio::task::spawn_blocking(move || {
        (inspect(&[&shown]), inspect(&["--format=json", &shown]))
    })
    .await
    .unwrap();
    insta::assert_snapshot!(stdout(&table, &host));
    let parsed: Value = serde_json::from_str(&stdout(&json, &host)).unwrap();
    assert_eq!(parsed["kind"], "registry");
    let records = &parsed["origins"][0]["records"];
    assert_eq!(records[1]["results"][1]["layers"], json!([0, 2]));
    assert_eq!(records[2]["results"][0]["loadable"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_have_clear_messages_and_exit_codes() {
    let reg = TestRegistry::start(&Setup::Open);
    let client = anonymous_client();
    let host = reg.host();
    let plain = TestImage::new(vec![layer(1, 10)], json!({}), Platform::linux_amd64());
    plain.push(&client, &reference(&host, "plain/app:v1")).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let h = host.clone();
    let (bad, missing, none, unreachable) = tokio::task::spawn_blocking(move || {
        (
            inspect(&["Bad Reference"]),
            inspect(&[&format!("{h}/missing/app:v1")]),
            inspect(&[&format!("{h}/plain/app:v1")]),
            inspect(&[&format!("{closed}/app:v1")]),
        )
    })
    .await
    .unwrap();
    let err = |o: &Output| String::from_utf8_lossy(&o.stderr).replace(&host, "[registry]");
    assert_eq!(bad.status.code(), Some(2), "{}", err(&bad));
    assert!(
        err(&bad).contains("invalid cache reference"),
        "{}",
        err(&bad)
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        err(&missing).contains("404") && err(&missing).contains("MANIFEST_UNKNOWN"),
        "{}",
        err(&missing)
    );
    assert_eq!(none.status.code(), Some(1));
    assert!(err(&none).contains("carries no cache"), "{}", err(&none));
    assert_eq!(unreachable.status.code(), Some(1));
    assert!(
        err(&unreachable).contains("failed"),
        "{}",
        err(&unreachable)
    );
    // Usage errors from clap exit with 2 as well.
    let usage = inspect(&["--format", "yaml", "x"]);
    assert_eq!(usage.status.code(), Some(2));
}
