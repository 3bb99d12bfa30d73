//! Nothing a log could hold carries a secret: every `tracing` event of a push and pull with
//! credentials, and every error and `Debug` rendering, is checked for them.
//!
//! The capturing subscriber is the process-wide default, so this test has a binary of its own.

mod support;

use std::sync::OnceLock;

use base64::Engine as _;
use inlay_core::Platform;
use inlay_registry::{Client, CredentialStore};
use support::capture::Capture;
use support::image::TestImage;
use support::registry::{PASSWORD, Setup, TestRegistry, USER};
use support::{client_with_password, reference, test_config};

fn capture() -> Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE
        .get_or_init(|| {
            let c = Capture::default();
            tracing::subscriber::set_global_default(c.clone()).expect("first and only subscriber");
            c
        })
        .clone()
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let reg = TestRegistry::start(&Setup::Basic);
    let client = client_with_password(&reg.host(), test_config());
    let image = TestImage::new(13, &[5000], Platform::linux_amd64());
    let r = reference(&reg.host(), "logged/app:1");
    let log = capture();
    let wrong = {
        let mut store = CredentialStore::empty();
        store.insert(
            &reg.host(),
            inlay_registry::Credential::basic(USER, "wr0ng-secret"),
        );
        Client::new(test_config(), store).unwrap()
    };
    image.push(&client, &r).await;
    image.pull_and_check(&client, &r).await;
    let err = wrong.get_manifest(&r).await.unwrap_err();
    let text = log.text();
    assert!(
        text.contains("pushed manifest"),
        "nothing was captured: {text}"
    );
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    for secret in [PASSWORD, basic.as_str(), "wr0ng-secret"] {
        assert!(!text.contains(secret), "a secret reached the log");
        assert!(!format!("{err} {err:?} {client:?}").contains(secret));
    }
}

#[tokio::test]
async fn tokens_never_reach_the_logs() {
    let tokens = support::token::TokenServer::start().await;
    let reg = TestRegistry::start(&Setup::Token(&tokens));
    let client = client_with_password(&reg.host(), test_config());
    let image = TestImage::new(14, &[5000], Platform::linux_amd64());
    let r = reference(&reg.host(), "logged/tokened:1");
    let log = capture();
    image.push(&client, &r).await;
    image.pull_and_check(&client, &r).await;
    assert!(tokens.issued() >= 1);
    let text = log.text();
    assert!(text.contains("requesting token"), "nothing was captured");
    // Every JWT starts with the base64url of `{"`.
    assert!(!text.contains("eyJ"), "a token reached the log");
    assert!(!text.contains(PASSWORD));
}
