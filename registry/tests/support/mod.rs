//! The registry crate's test support: client settings and test images on top of the shared
//! harness (`inlay-testkit`: the real registry in its set-ups, a token server, proxies).
// Each test binary includes this module and uses a different part of it.
#![allow(unused_imports, dead_code, clippy::unwrap_used)]

pub mod image;

pub use inlay_testkit::{capture, http, proxy, reference, registry, token};

use std::time::Duration;

use inlay_registry::{Client, ClientConfig, Credential, CredentialStore, RetryPolicy};

/// Client settings for tests: quick backoff so that retries cost milliseconds.
pub fn test_config() -> ClientConfig {
    ClientConfig {
        retry: RetryPolicy {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            max_retry_after: Duration::from_secs(2),
        },
        ..ClientConfig::default()
    }
}

pub fn anonymous_client() -> Client {
    Client::new(test_config(), CredentialStore::empty()).unwrap()
}

/// A client holding the harness user's credentials for `host`.
pub fn client_with_password(host: &str, config: ClientConfig) -> Client {
    let mut store = CredentialStore::empty();
    store.insert(host, Credential::basic(registry::USER, registry::PASSWORD));
    Client::new(config, store).unwrap()
}

/// The scenario every set-up runs: push two single-platform images and an index over them, then
/// pull the index, both platforms, every blob, and list the tags.
pub async fn push_pull_image_and_index(client: &Client, host: &str, repo: &str) {
    use inlay_core::{Platform, media_types};
    use inlay_registry::PushOutcome;

    let amd = image::TestImage::new(1, &[1024, 64 * 1024, 300 * 1024], Platform::linux_amd64());
    let arm = image::TestImage::new(
        2,
        &[2048, 100 * 1024],
        Platform::new("linux", "arm64", "v8"),
    );
    let amd_ref = reference(host, &format!("{repo}:amd64"));
    let arm_ref = reference(host, &format!("{repo}:arm64"));
    let multi = reference(host, &format!("{repo}:multi"));

    let outcomes = amd.push(client, &amd_ref).await;
    assert!(
        outcomes.iter().all(|o| *o == PushOutcome::Uploaded),
        "{outcomes:?}"
    );
    arm.push(client, &arm_ref).await;
    let index_bytes = image::index(&[&amd, &arm]);
    let index_digest = client
        .put_manifest(&multi, media_types::OCI_INDEX, index_bytes.clone())
        .await
        .unwrap();

    let top = client.get_manifest(&multi).await.unwrap();
    assert!(top.is_index());
    assert_eq!(top.bytes, index_bytes);
    assert_eq!(top.digest, index_digest);
    let head = client.head_manifest(&multi).await.unwrap().unwrap();
    assert_eq!(head.digest, index_digest);
    assert_eq!(head.size, index_bytes.len() as u64);

    amd.pull_and_check(client, &multi).await;
    arm.pull_and_check(client, &multi).await;
    let err = client
        .get_manifest_for_platform(&multi, &Platform::new("windows", "amd64", ""))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            inlay_registry::RegistryError::NoMatchingPlatform { .. }
        ),
        "{err}"
    );
    amd.pull_and_check(client, &amd_ref.with_digest(amd.digest()))
        .await;

    // Pushing again moves nothing.
    let again = amd.push(client, &amd_ref).await;
    assert!(
        again.iter().all(|o| *o == PushOutcome::AlreadyPresent),
        "{again:?}"
    );

    let mut tags = client.list_tags(&multi).await.unwrap();
    tags.sort();
    assert_eq!(tags, vec!["amd64", "arm64", "multi"]);
    assert!(
        client
            .head_manifest(&reference(host, &format!("{repo}:nope")))
            .await
            .unwrap()
            .is_none()
    );
}
