//! Against the real registry over https (rustls), with a certificate from a test CA.

mod support;

use inlay_registry::{Client, CredentialStore, RegistryError};
use support::registry::{Setup, TLS_NAME, TestRegistry};
use support::{reference, test_config};

fn tls_config(reg: &TestRegistry, trust_test_ca: bool) -> inlay_registry::ClientConfig {
    let mut config = test_config();
    config.resolve.insert(TLS_NAME.to_owned(), reg.addr.ip());
    if trust_test_ca {
        config.ca_files.push(reg.dir.path().join("ca.crt"));
    }
    config
}

#[tokio::test]
async fn push_and_pull_over_https() {
    let reg = TestRegistry::start(&Setup::Tls);
    let host = format!("{TLS_NAME}:{}", reg.addr.port());
    let client = Client::new(tls_config(&reg, true), CredentialStore::empty()).unwrap();
    support::push_pull_image_and_index(&client, &host, "secure/app").await;
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    let reg = TestRegistry::start(&Setup::Tls);
    let host = format!("{TLS_NAME}:{}", reg.addr.port());
    let mut config = tls_config(&reg, false);
    config.retry.max_attempts = 1;
    let client = Client::new(config, CredentialStore::empty()).unwrap();
    let err = client
        .get_manifest(&reference(&host, "secure/app:1"))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::Transport { .. }), "{err}");
    assert!(
        err.to_string().starts_with(&format!("GET https://{host}/")),
        "{err}"
    );
}
