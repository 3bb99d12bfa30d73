//! Against the real registry with htpasswd (bcrypt) Basic auth.

mod support;

use std::io::Write as _;

use base64::Engine as _;
use inlay_core::Platform;
use inlay_registry::{Client, CredentialStore};
use support::image::TestImage;
use support::registry::{PASSWORD, Setup, TestRegistry, USER};
use support::{client_with_password, reference, test_config};

#[tokio::test]
async fn push_and_pull_with_basic_credentials() {
    let reg = TestRegistry::start(&Setup::Basic);
    let client = client_with_password(&reg.host(), test_config());
    support::push_pull_image_and_index(&client, &reg.host(), "private/app").await;
}

#[tokio::test]
async fn missing_or_wrong_credentials_are_refused_with_401() {
    let reg = TestRegistry::start(&Setup::Basic);
    let r = reference(&reg.host(), "private/app:1");
    let anonymous = Client::new(test_config(), CredentialStore::empty()).unwrap();
    let err = anonymous.get_manifest(&r).await.unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    assert_eq!(err.details()[0].code, "UNAUTHORIZED", "{err}");

    let mut store = CredentialStore::empty();
    store.insert(
        &reg.host(),
        inlay_registry::Credential::basic(USER, "wrong"),
    );
    let wrong = Client::new(test_config(), store).unwrap();
    let err = wrong.head_manifest(&r).await.unwrap_err();
    assert_eq!(err.status(), Some(401), "{err}");
    assert!(!err.to_string().contains("wrong"));
}

fn write_docker_config(dir: &std::path::Path, json: &serde_json::Value) -> std::path::PathBuf {
    let path = dir.join("config.json");
    std::fs::write(&path, json.to_string()).expect("temp dir is writable");
    path
}

#[tokio::test]
async fn credentials_from_docker_config_auths() {
    let reg = TestRegistry::start(&Setup::Basic);
    let dir = tempfile::tempdir().unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let path = write_docker_config(
        dir.path(),
        &serde_json::json!({"auths": {format!("http://{}", reg.host()): {"auth": auth}}}),
    );
    let store = CredentialStore::empty().with_file(&path).unwrap();
    let client = Client::new(test_config(), store).unwrap();
    let image = TestImage::new(11, &[5000], Platform::linux_amd64());
    let r = reference(&reg.host(), "from/config:1");
    image.push(&client, &r).await;
    image.pull_and_check(&client, &r).await;
}

#[cfg(unix)]
#[tokio::test]
async fn credentials_from_a_credential_helper() {
    use std::os::unix::fs::PermissionsExt as _;

    let reg = TestRegistry::start(&Setup::Basic);
    let dir = tempfile::tempdir().unwrap();
    // A helper in the docker-credential-helpers protocol: server URL on stdin, JSON on stdout.
    let helper = dir.path().join("docker-credential-inlaytest");
    let mut f = std::fs::File::create(&helper).unwrap();
    writeln!(
        f,
        "#!/bin/sh\nread server\nif [ \"$1\" = get ] && [ \"$server\" = \"{host}\" ]; then\n  printf '{{\"ServerURL\":\"%s\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}' \"$server\"\nelse\n  echo 'credentials not found in native keychain'; exit 1\nfi",
        host = reg.host()
    )
    .unwrap();
    drop(f);
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = write_docker_config(
        dir.path(),
        &serde_json::json!({"credHelpers": {reg.host(): "inlaytest"}, "credsStore": "inlaytest"}),
    );
    let store = CredentialStore::empty()
        .with_file(&path)
        .unwrap()
        .with_helper_dir(dir.path());
    assert!(store.get("other.example").await.unwrap().is_none());
    let client = Client::new(test_config(), store).unwrap();
    let image = TestImage::new(12, &[5000], Platform::linux_amd64());
    let r = reference(&reg.host(), "from/helper:1");
    image.push(&client, &r).await;
    image.pull_and_check(&client, &r).await;
}
