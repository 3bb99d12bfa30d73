//! Against the real registry with token auth, tokens from an in-process token server signed with
//! a key the registry trusts through `rootcertbundle`.

mod support;

use std::sync::atomic::Ordering;

use bytes::Bytes;
use inlay_core::{Descriptor, Platform, media_types};
use inlay_registry::{BlobSource, Client, CredentialStore, PushOutcome, RegistryError};
use support::image::{TestImage, random_bytes};
use support::registry::{Setup, TestRegistry};
use support::token::TokenServer;
use support::{client_with_password, reference, test_config};

#[tokio::test]
async fn push_and_pull_with_bearer_tokens_cached_per_scope() {
    let tokens = TokenServer::start().await;
    let reg = TestRegistry::start(&Setup::Token(&tokens));
    let client = client_with_password(&reg.host(), test_config());
    support::push_pull_image_and_index(&client, &reg.host(), "tokened/app").await;
    // Dozens of requests, one token per scope set: push (pull,push) and pull.
    let issued = tokens.issued();
    assert!(
        (1..=3).contains(&issued),
        "{issued} tokens for one repository"
    );
    let scopes = tokens.scopes.lock().unwrap().clone();
    assert!(
        scopes.contains(&"repository:tokened/app:pull,push".to_owned()),
        "{scopes:?}"
    );
    assert!(
        scopes.contains(&"repository:tokened/app:pull".to_owned()),
        "{scopes:?}"
    );
}

#[tokio::test]
async fn a_rejected_token_is_refreshed_once() {
    let tokens = TokenServer::start().await;
    let reg = TestRegistry::start(&Setup::Token(&tokens));
    let client = client_with_password(&reg.host(), test_config());
    let image = TestImage::new(21, &[1000], Platform::linux_amd64());
    let r = reference(&reg.host(), "refresh/app:1");
    image.push(&client, &r).await;

    // A new client whose first token is already expired: the registry answers 401 and the
    // client asks for a fresh token, once.
    tokens.expired_tokens_left.store(1, Ordering::SeqCst);
    let before = tokens.issued();
    let fresh = client_with_password(&reg.host(), test_config());
    image.pull_and_check(&fresh, &r).await;
    assert_eq!(tokens.issued() - before, 2);
}

#[tokio::test]
async fn mount_across_repositories_with_tokens() {
    let tokens = TokenServer::start().await;
    let reg = TestRegistry::start(&Setup::Token(&tokens));
    let client = client_with_password(&reg.host(), test_config());
    let blob = Bytes::from(random_bytes(22, 256 * 1024));
    let desc = Descriptor::of_bytes(media_types::OCI_LAYER_GZIP, &blob);
    let base = reference(&reg.host(), "shared/base:1");
    client
        .push_blob(&base, &desc, BlobSource::Bytes(blob.clone()), None)
        .await
        .unwrap();
    let derived = reference(&reg.host(), "team/derived:1");
    let outcome = client
        .push_blob(&derived, &desc, BlobSource::Bytes(blob), Some(&base))
        .await
        .unwrap();
    assert_eq!(outcome, PushOutcome::Mounted);
    let scopes = tokens.scopes.lock().unwrap().clone();
    assert!(
        scopes.contains(&"repository:shared/base:pull".to_owned()),
        "{scopes:?}"
    );
}

#[tokio::test]
async fn no_credentials_means_no_token() {
    let tokens = TokenServer::start().await;
    let reg = TestRegistry::start(&Setup::Token(&tokens));
    let client = Client::new(test_config(), CredentialStore::empty()).unwrap();
    let err = client
        .get_manifest(&reference(&reg.host(), "x/y:1"))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Token { .. }), "{err}");
    assert!(err.to_string().contains("401"), "{err}");
}

#[tokio::test]
async fn identity_tokens_are_exchanged_with_the_refresh_grant() {
    let tokens = TokenServer::start().await;
    let reg = TestRegistry::start(&Setup::Token(&tokens));
    let mut store = CredentialStore::empty();
    store.insert(
        &reg.host(),
        inlay_registry::Credential::IdentityToken(support::token::REFRESH_TOKEN.to_owned()),
    );
    let client = Client::new(test_config(), store).unwrap();
    let image = TestImage::new(23, &[3000], Platform::linux_amd64());
    let r = reference(&reg.host(), "oauth/app:1");
    image.push(&client, &r).await;
    image.pull_and_check(&client, &r).await;
    assert!(tokens.issued() >= 1);
}
