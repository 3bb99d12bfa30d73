//! Registry credentials: given in code, or read as Docker and Podman read them.
//!
//! Sources, first match wins: credentials set with [`CredentialStore::insert`]; then each auth
//! file in order (`$REGISTRY_AUTH_FILE`, then `$DOCKER_CONFIG/config.json` or
//! `~/.docker/config.json`), where a file's `credHelpers` entry for the host, else its
//! `credsStore`, is asked through the `docker-credential-<name> get` protocol before its `auths`
//! entry (`auth` = base64 `user:password`, or `identitytoken`).
//!
//! Secrets never show in `Debug` output: [`Credential`] redacts itself.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine as _;
use serde::Deserialize;
use tokio::io::AsyncWriteExt as _;

use crate::error::{RegistryError, Result};

/// Path of a Podman-style auth file (`{"auths": ...}`) read before Docker's config.
pub const ENV_REGISTRY_AUTH_FILE: &str = "REGISTRY_AUTH_FILE";
/// Directory holding Docker's `config.json` (default `~/.docker`).
pub const ENV_DOCKER_CONFIG: &str = "DOCKER_CONFIG";

/// The key Docker files Docker Hub credentials under.
const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// Credentials for one registry.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credential {
    /// A user name and password (or personal access token), for Basic auth and token realms.
    Basic {
        /// The user name.
        username: String,
        /// The password or access token.
        password: String,
    },
    /// An `OAuth2` refresh token (`identitytoken` in `config.json`), exchanged at the token realm.
    IdentityToken(String),
}

impl Credential {
    /// Basic credentials.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Credential {
        Credential::Basic {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The `Authorization: Basic ...` value, for Basic credentials.
    pub(crate) fn basic_header(&self) -> Option<String> {
        match self {
            Credential::Basic { username, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"))
            )),
            Credential::IdentityToken(_) => None,
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Credential::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}

#[derive(Deserialize, Default)]
struct AuthFileJson {
    #[serde(default)]
    auths: HashMap<String, AuthEntryJson>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: HashMap<String, String>,
}

#[derive(Deserialize, Default)]
struct AuthEntryJson {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// One parsed auth file.
struct AuthFile {
    path: PathBuf,
    auths: HashMap<String, Credential>,
    creds_store: Option<String>,
    cred_helpers: HashMap<String, String>,
}

/// The registry name a config key or host stands for: scheme and path dropped, Docker Hub's
/// aliases folded into `docker.io`.
pub fn normalize_registry_key(key: &str) -> String {
    let rest = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = rest.split('/').next().unwrap_or(rest).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            inlay_core::reference::DOCKER_HUB.to_owned()
        }
        _ => host,
    }
}

fn parse_auth_file(path: &Path, bytes: &[u8]) -> Result<AuthFile> {
    let bad = |reason: String| RegistryError::ConfigFile {
        path: path.to_owned(),
        reason,
    };
    let json: AuthFileJson =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not an auth file: {e}")))?;
    let mut auths = HashMap::new();
    for (key, entry) in json.auths {
        let cred = if let Some(token) = entry.identitytoken.filter(|t| !t.is_empty()) {
            Some(Credential::IdentityToken(token))
        } else if let Some(auth) = entry.auth.filter(|a| !a.is_empty()) {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| bad(format!("`auth` of {key:?} is not base64")))?;
            let text = String::from_utf8(decoded)
                .map_err(|_| bad(format!("`auth` of {key:?} is not UTF-8")))?;
            let (user, pass) = text
                .split_once(':')
                .ok_or_else(|| bad(format!("`auth` of {key:?} is not user:password")))?;
            Some(Credential::basic(user, pass))
        } else {
            match (entry.username, entry.password) {
                (Some(u), Some(p)) if !u.is_empty() => Some(Credential::basic(u, p)),
                _ => None,
            }
        };
        if let Some(cred) = cred {
            auths.insert(normalize_registry_key(&key), cred);
        }
    }
    Ok(AuthFile {
        path: path.to_owned(),
        auths,
        creds_store: json.creds_store.filter(|s| !s.is_empty()),
        cred_helpers: json
            .cred_helpers
            .into_iter()
            .map(|(k, v)| (normalize_registry_key(&k), v))
            .collect(),
    })
}

/// Where credentials come from; cheap to share behind the client.
#[derive(Default)]
pub struct CredentialStore {
    explicit: HashMap<String, Credential>,
    files: Vec<AuthFile>,
    helper_dir: Option<PathBuf>,
    helper_answers: Mutex<HashMap<(String, String), Option<Credential>>>,
}

impl fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let files: Vec<&Path> = self.files.iter().map(|a| a.path.as_path()).collect();
        let hosts: Vec<&String> = self.explicit.keys().collect();
        f.debug_struct("CredentialStore")
            .field("explicit_hosts", &hosts)
            .field("files", &files)
            .finish_non_exhaustive()
    }
}

impl CredentialStore {
    /// No credentials at all: every registry is accessed anonymously.
    pub fn empty() -> CredentialStore {
        CredentialStore::default()
    }

    /// The files Docker and Podman would read: `$REGISTRY_AUTH_FILE`, then
    /// `$DOCKER_CONFIG/config.json` (or `~/.docker/config.json`). Missing files are skipped.
    pub fn from_env() -> Result<CredentialStore> {
        CredentialStore::from_vars(|name| std::env::var_os(name))
    }

    /// [`CredentialStore::from_env`] with the environment given as a lookup.
    fn from_vars(var: impl Fn(&str) -> Option<std::ffi::OsString>) -> Result<CredentialStore> {
        let mut store = CredentialStore::empty();
        if let Some(path) = var(ENV_REGISTRY_AUTH_FILE) {
            store = store.with_file_if_exists(Path::new(&path))?;
        }
        let docker_dir = var(ENV_DOCKER_CONFIG)
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|h| Path::new(&h).join(".docker")));
        if let Some(dir) = docker_dir {
            store = store.with_file_if_exists(&dir.join("config.json"))?;
        }
        Ok(store)
    }

    /// Adds an auth file (Docker `config.json` or Podman `auth.json`) after those already read.
    pub fn with_file(mut self, path: &Path) -> Result<CredentialStore> {
        let bytes = std::fs::read(path).map_err(|source| RegistryError::Io {
            path: path.to_owned(),
            source,
        })?;
        self.files.push(parse_auth_file(path, &bytes)?);
        Ok(self)
    }

    fn with_file_if_exists(self, path: &Path) -> Result<CredentialStore> {
        if path.is_file() {
            self.with_file(path)
        } else {
            Ok(self)
        }
    }

    /// Looks credential helpers up in `dir` before `$PATH` (tests, bundled helpers).
    #[must_use]
    pub fn with_helper_dir(mut self, dir: impl Into<PathBuf>) -> CredentialStore {
        self.helper_dir = Some(dir.into());
        self
    }

    /// Sets the credentials for `registry` (a host such as `ghcr.io` or `localhost:5000`),
    /// taking precedence over every file.
    pub fn insert(&mut self, registry: &str, credential: Credential) {
        self.explicit
            .insert(normalize_registry_key(registry), credential);
    }

    /// The credentials for `registry`, if any source has some.
    pub async fn get(&self, registry: &str) -> Result<Option<Credential>> {
        let key = normalize_registry_key(registry);
        if let Some(c) = self.explicit.get(&key) {
            return Ok(Some(c.clone()));
        }
        for file in &self.files {
            let helper = file
                .cred_helpers
                .get(&key)
                .or(file.creds_store.as_ref())
                .cloned();
            if let Some(helper) = helper {
                if let Some(c) = self.ask_helper(&helper, &key).await? {
                    return Ok(Some(c));
                }
            }
            if let Some(c) = file.auths.get(&key) {
                return Ok(Some(c.clone()));
            }
        }
        Ok(None)
    }

    async fn ask_helper(&self, helper: &str, key: &str) -> Result<Option<Credential>> {
        let cache_key = (helper.to_owned(), key.to_owned());
        if let Some(answer) = self
            .helper_answers
            .lock()
            .map_err(|_| helper_error(helper, key, "answer cache poisoned"))?
            .get(&cache_key)
        {
            return Ok(answer.clone());
        }
        let answer = run_helper(self.helper_dir.as_deref(), helper, key).await?;
        self.helper_answers
            .lock()
            .map_err(|_| helper_error(helper, key, "answer cache poisoned"))?
            .insert(cache_key, answer.clone());
        Ok(answer)
    }
}

fn helper_error(helper: &str, registry: &str, reason: &str) -> RegistryError {
    RegistryError::CredentialHelper {
        program: format!("docker-credential-{helper}"),
        registry: registry.to_owned(),
        reason: reason.to_owned(),
    }
}

#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Runs `docker-credential-<helper> get` with the server URL on stdin (the docker-credential-helpers
/// protocol). A helper that says the credentials are not found yields `None`.
async fn run_helper(dir: Option<&Path>, helper: &str, key: &str) -> Result<Option<Credential>> {
    let program = format!("docker-credential-{helper}");
    let path = dir
        .map(|d| d.join(&program))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| PathBuf::from(&program));
    let server = if key == inlay_core::reference::DOCKER_HUB {
        DOCKER_HUB_AUTH_KEY.to_owned()
    } else {
        key.to_owned()
    };
    tracing::debug!(program = %program, registry = %key, "asking credential helper");
    let mut child = tokio::process::Command::new(&path)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| helper_error(helper, key, &format!("cannot start: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server.as_bytes())
            .await
            .map_err(|e| helper_error(helper, key, &format!("writing its input: {e}")))?;
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| helper_error(helper, key, &format!("waiting for it: {e}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        // The protocol reports a miss on stdout with a non-zero exit.
        if stdout.contains("credentials not found") {
            return Ok(None);
        }
        return Err(helper_error(
            helper,
            key,
            &format!("exited with {}", output.status),
        ));
    }
    let answer: HelperAnswer = serde_json::from_slice(&output.stdout)
        .map_err(|_| helper_error(helper, key, "its answer is not the expected JSON"))?;
    if answer.username == "<token>" {
        Ok(Some(Credential::IdentityToken(answer.secret)))
    } else if answer.username.is_empty() && answer.secret.is_empty() {
        Ok(None)
    } else {
        Ok(Some(Credential::basic(answer.username, answer.secret)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let c = Credential::basic("alice", "hunter2");
        let t = Credential::IdentityToken("refresh-secret".into());
        let shown = format!("{c:?} {t:?}");
        assert!(shown.contains("alice"));
        assert!(!shown.contains("hunter2") && !shown.contains("refresh-secret"));
        let mut store = CredentialStore::empty();
        store.insert("h", c);
        assert!(!format!("{store:?}").contains("hunter2"));
    }

    proptest::proptest! {
        #[test]
        fn key_normalisation_never_panics(s in ".*") {
            let _ = normalize_registry_key(&s);
        }

        #[test]
        fn auth_files_never_panic(s in ".*") {
            let _ = parse_auth_file(Path::new("x"), s.as_bytes());
        }
    }

    #[test]
    fn keys_normalise() {
        assert_eq!(normalize_registry_key(DOCKER_HUB_AUTH_KEY), "docker.io");
        assert_eq!(normalize_registry_key("https://ghcr.io"), "ghcr.io");
        assert_eq!(
            normalize_registry_key("http://LocalHost:5000/v2/"),
            "localhost:5000"
        );
    }

    #[tokio::test]
    async fn registry_auth_file_comes_before_docker_config() {
        let dir = tempfile::tempdir().unwrap();
        let podman = dir.path().join("auth.json");
        std::fs::write(
            &podman,
            r#"{"auths":{"r.example":{"auth":"cG9kOm1hbg=="}}}"#,
        )
        .unwrap();
        let docker = dir.path().join("docker");
        std::fs::create_dir(&docker).unwrap();
        std::fs::write(
            docker.join("config.json"),
            r#"{"auths":{"r.example":{"auth":"ZG9jazplcg=="},"d.example":{"auth":"ZDpl"}}}"#,
        )
        .unwrap();
        let vars = |name: &str| match name {
            ENV_REGISTRY_AUTH_FILE => Some(podman.clone().into_os_string()),
            ENV_DOCKER_CONFIG => Some(docker.clone().into_os_string()),
            _ => None,
        };
        let store = CredentialStore::from_vars(vars).unwrap();
        assert_eq!(
            store.get("r.example").await.unwrap(),
            Some(Credential::basic("pod", "man"))
        );
        assert_eq!(
            store.get("https://d.example/v1/").await.unwrap(),
            Some(Credential::basic("d", "e"))
        );
        assert_eq!(store.get("x.example").await.unwrap(), None);
        // HOME is the fallback for DOCKER_CONFIG; missing files are skipped.
        let home = |name: &str| (name == "HOME").then(|| dir.path().as_os_str().to_owned());
        assert!(CredentialStore::from_vars(home).unwrap().files.is_empty());
    }

    #[test]
    fn auth_file_entries() {
        let json = br#"{"auths":{
            "https://index.docker.io/v1/":{"auth":"dXNlcjpwYTpzcw=="},
            "ghcr.io":{"identitytoken":"tok"},
            "quay.io":{"username":"u","password":"p"},
            "empty.io":{}
        }}"#;
        let f = parse_auth_file(Path::new("c.json"), json).unwrap();
        assert_eq!(f.auths["docker.io"], Credential::basic("user", "pa:ss"));
        assert_eq!(f.auths["ghcr.io"], Credential::IdentityToken("tok".into()));
        assert_eq!(f.auths["quay.io"], Credential::basic("u", "p"));
        assert!(!f.auths.contains_key("empty.io"));
        assert!(parse_auth_file(Path::new("c.json"), b"[").is_err());
        assert!(parse_auth_file(Path::new("c.json"), br#"{"auths":{"x":{"auth":"!!"}}}"#).is_err());
    }
}
