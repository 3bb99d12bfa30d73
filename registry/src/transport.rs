//! The client and its one way of sending a request: auth, redirects and retries.
//!
//! Every operation builds a [`Call`] and hands it to [`Client::send`], which
//! * attaches the host's authorization (learned by a `GET /v2/` ping on first contact),
//! * follows redirects of `GET`/`HEAD` itself, sending `Authorization` only to the registry's own
//!   origin (blob storage behind a redirect gets none; a presigned URL carries its own),
//! * answers a 401 by re-reading the challenge and fetching a fresh token once,
//! * retries connection errors, 408, 429 and transient 5xx with backoff (see [`crate::retry`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt as _;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, Response};
use url::Url;

use crate::auth::{AuthState, HostAuth, Token, fetch_token};
use crate::config::ClientConfig;
use crate::credentials::{Credential, CredentialStore};
use crate::endpoint::{Endpoint, is_loopback};
use crate::error::{RegistryError, Result, parse_error_body, redact_url};
use crate::retry::{is_retryable_status, retry_after};

/// Redirects followed per request; more is a loop or a hostile server.
const MAX_REDIRECTS: usize = 5;
/// How much of an error body is kept in an error.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// An OCI distribution client. Cheap to clone; clones share connections, tokens and credentials.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    pub(crate) http: reqwest::Client,
    pub(crate) credentials: CredentialStore,
    pub(crate) auth: AuthState,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .field("credentials", &self.inner.credentials)
            .finish_non_exhaustive()
    }
}

/// One request as an operation describes it; re-sendable (the body is shared bytes).
pub(crate) struct Call<'a> {
    pub(crate) endpoint: &'a Endpoint,
    pub(crate) method: Method,
    pub(crate) url: Url,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Option<Bytes>,
    pub(crate) scopes: Vec<String>,
}

impl<'a> Call<'a> {
    pub(crate) fn new(
        endpoint: &'a Endpoint,
        method: Method,
        url: Url,
        scopes: Vec<String>,
    ) -> Self {
        Call {
            endpoint,
            method,
            url,
            headers: HeaderMap::new(),
            body: None,
            scopes,
        }
    }

    pub(crate) fn header(mut self, name: reqwest::header::HeaderName, value: &str) -> Self {
        if let Ok(v) = HeaderValue::from_str(value) {
            self.headers.insert(name, v);
        }
        self
    }

    pub(crate) fn body(mut self, body: Bytes) -> Self {
        self.body = Some(body);
        self
    }
}

impl Client {
    /// A client with `config` and `credentials`.
    pub fn new(config: ClientConfig, credentials: CredentialStore) -> Result<Client> {
        let mut builder = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            // Redirects are followed by hand to control where credentials go.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .tcp_nodelay(true);
        for (host, ip) in &config.resolve {
            // reqwest ignores this port and uses the URL's.
            builder = builder.resolve(host, std::net::SocketAddr::new(*ip, 0));
        }
        if config.system_roots {
            if let Some(path) = ClientConfig::system_root_bundle() {
                // A missing or odd system bundle is not fatal: the webpki roots remain.
                match std::fs::read(&path)
                    .ok()
                    .and_then(|pem| reqwest::Certificate::from_pem_bundle(&pem).ok())
                {
                    Some(certs) => {
                        for cert in certs {
                            builder = builder.add_root_certificate(cert);
                        }
                    }
                    None => {
                        tracing::debug!(path = %path.display(), "system root bundle not usable");
                    }
                }
            }
        }
        for path in &config.ca_files {
            let pem = std::fs::read(path).map_err(|source| RegistryError::Io {
                path: path.clone(),
                source,
            })?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                RegistryError::ConfigFile {
                    path: path.clone(),
                    reason: format!("not PEM certificates: {e}"),
                }
            })?;
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| RegistryError::ClientSetup {
            reason: e.to_string(),
        })?;
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                http,
                credentials,
                auth: AuthState::default(),
            }),
        })
    }

    /// A client configured from the environment: [`ClientConfig::from_env`] and
    /// [`CredentialStore::from_env`].
    pub fn from_env() -> Result<Client> {
        Client::new(ClientConfig::from_env()?, CredentialStore::from_env()?)
    }

    /// The client's settings.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    async fn credential(&self, endpoint: &Endpoint) -> Result<Option<Credential>> {
        self.inner.credentials.get(&endpoint.credential_key).await
    }

    /// Learns how `endpoint` authenticates with `GET /v2/`, once per origin.
    async fn ensure_host_known(&self, endpoint: &Endpoint) -> Result<HostAuth> {
        let origin = endpoint.origin().ascii_serialization();
        let mut hosts = self.inner.auth.lock_hosts().await;
        if let Some(known) = hosts.get(&origin) {
            return Ok(known.clone());
        }
        let url = endpoint.url("/v2/")?;
        let learned = match self.inner.http.get(url.clone()).send().await {
            Ok(resp) if resp.status().as_u16() == 401 => resp
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| HostAuth::from_header(v).0)
                .unwrap_or(HostAuth::Anonymous),
            Ok(_) => HostAuth::Anonymous,
            Err(e) => {
                // Not fatal: the request itself will meet the same problem and be retried, and a
                // 401 on it teaches the scheme as well.
                tracing::debug!(url = %redact_url(&url), error = %e.without_url(), "ping failed");
                return Ok(HostAuth::Anonymous);
            }
        };
        tracing::debug!(origin = %origin, auth = ?scheme_name(&learned), "registry auth scheme");
        hosts.insert(origin, learned.clone());
        Ok(learned)
    }

    /// The `Authorization` value for a request to `endpoint` needing `scopes`.
    async fn authorization(
        &self,
        endpoint: &Endpoint,
        scopes: &[String],
    ) -> Result<Option<String>> {
        let host_auth = self.ensure_host_known(endpoint).await?;
        match host_auth {
            HostAuth::Anonymous => Ok(None),
            HostAuth::Basic => Ok(self
                .credential(endpoint)
                .await?
                .and_then(|c| c.basic_header())),
            HostAuth::Bearer { realm, service } => {
                let credential = self.credential(endpoint).await?;
                // Credentials go to the realm the registry names, but never in clear text to a
                // remote host.
                let realm_safe = realm.scheme() == "https"
                    || realm
                        .host_str()
                        .is_some_and(|h| is_loopback(h) || self.is_insecure_host(&realm));
                let credential = credential.filter(|_| realm_safe);
                let origin = endpoint.origin().ascii_serialization();
                let http = &self.inner.http;
                let token: Token = self
                    .inner
                    .auth
                    .token(&origin, scopes, || {
                        fetch_token(
                            http,
                            &realm,
                            service.as_deref(),
                            scopes,
                            credential.as_ref(),
                        )
                    })
                    .await?;
                Ok(Some(format!("Bearer {}", token.0)))
            }
        }
    }

    fn is_insecure_host(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let with_port = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        self.inner
            .config
            .insecure
            .iter()
            .any(|h| h.eq_ignore_ascii_case(&with_port) || h.eq_ignore_ascii_case(host))
    }

    /// Sends `call` with auth, redirects and retries; returns the final response whatever its
    /// status (callers decide what they accept with [`Client::expect`]).
    pub(crate) async fn send(&self, call: &Call<'_>) -> Result<Response> {
        let policy = &self.inner.config.retry;
        let mut scopes = call.scopes.clone();
        let mut attempt: u32 = 0;
        let mut reauthenticated = false;
        loop {
            attempt += 1;
            let authorization = self.authorization(call.endpoint, &scopes).await?;
            let result = self
                .send_following_redirects(call, authorization.as_deref())
                .await;
            let wait = match result {
                Err(error) => {
                    if attempt >= policy.max_attempts {
                        return Err(error);
                    }
                    tracing::debug!(method = %call.method, url = %redact_url(&call.url), attempt, error = %error, "retrying after a connection error");
                    policy.delay(attempt, None)
                }
                Ok(response) => {
                    let status = response.status().as_u16();
                    if status == 401 && !reauthenticated {
                        reauthenticated = true;
                        if self.relearn(call.endpoint, &response, &mut scopes).await {
                            // A fresh token is not a retry of a failure.
                            attempt -= 1;
                            continue;
                        }
                    }
                    if !is_retryable_status(status) || attempt >= policy.max_attempts {
                        return Ok(response);
                    }
                    let wait = policy.delay(attempt, retry_after(response.headers()));
                    tracing::debug!(method = %call.method, url = %redact_url(&call.url), status, attempt, wait_ms = wait.as_millis() as u64, "retrying");
                    wait
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// After a 401: takes the scheme and scopes of its challenge and forgets the token that
    /// failed. Returns whether trying again can help.
    async fn relearn(
        &self,
        endpoint: &Endpoint,
        response: &Response,
        scopes: &mut Vec<String>,
    ) -> bool {
        let Some(header) = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let (auth, extra) = HostAuth::from_header(header);
        let Some(auth) = auth else {
            return false;
        };
        let origin = endpoint.origin().ascii_serialization();
        self.inner.auth.forget_token(&origin, scopes).await;
        for s in extra {
            if !scopes.contains(&s) {
                scopes.push(s);
            }
        }
        self.inner.auth.set_host(&origin, auth).await;
        true
    }

    async fn send_following_redirects(
        &self,
        call: &Call<'_>,
        authorization: Option<&str>,
    ) -> Result<Response> {
        let origin = call.endpoint.origin();
        let mut url = call.url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let mut request = self
                .inner
                .http
                .request(call.method.clone(), url.clone())
                .headers(call.headers.clone());
            if url.origin() == origin {
                if let Some(value) = authorization {
                    request = request.header(AUTHORIZATION, value);
                }
            }
            if let Some(body) = &call.body {
                request = request.body(body.clone());
            }
            let response = request.send().await.map_err(|e| RegistryError::Transport {
                method: call.method.to_string(),
                url: redact_url(&url),
                source: e.without_url(),
            })?;
            tracing::trace!(method = %call.method, url = %redact_url(&url), status = response.status().as_u16(), "response");
            let follow = response.status().is_redirection()
                && (call.method == Method::GET || call.method == Method::HEAD);
            if !follow {
                return Ok(response);
            }
            let Some(next) = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|l| url.join(l).ok())
            else {
                return Ok(response);
            };
            tracing::debug!(from = %redact_url(&url), to = %redact_url(&next), "following redirect");
            url = next;
        }
        Err(RegistryError::Protocol {
            url: redact_url(&call.url),
            reason: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }

    /// `response` if its status is one of `ok`, else a [`RegistryError::Status`] with the
    /// registry's error body.
    pub(crate) async fn expect(
        method: &Method,
        response: Response,
        ok: &[u16],
    ) -> Result<Response> {
        let status = response.status().as_u16();
        if ok.contains(&status) {
            return Ok(response);
        }
        let url = redact_url(response.url());
        let body = read_limited(response, MAX_ERROR_BODY as u64, true)
            .await
            .unwrap_or_default();
        let errors = parse_error_body(&body);
        let body = if errors.is_empty() {
            String::from_utf8_lossy(&body)
                .trim()
                .chars()
                .take(512)
                .collect()
        } else {
            String::new()
        };
        Err(RegistryError::Status {
            method: method.to_string(),
            url,
            status,
            errors,
            body,
        })
    }
}

/// A small response read whole: what the callers of [`Client::fetch_small`] need of it.
pub(crate) struct SmallResponse {
    pub(crate) url: Url,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Client {
    /// Sends `call`, expects one of `ok`, and reads the body (at most `limit` bytes), sending
    /// again when the body breaks off: small documents are re-fetched rather than resumed.
    pub(crate) async fn fetch_small(
        &self,
        call: &Call<'_>,
        ok: &[u16],
        limit: u64,
    ) -> Result<SmallResponse> {
        let policy = &self.inner.config.retry;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let response = self.send(call).await?;
            let response = Client::expect(&call.method, response, ok).await?;
            let url = response.url().clone();
            let headers = response.headers().clone();
            match read_limited(response, limit, false).await {
                Ok(body) => return Ok(SmallResponse { url, headers, body }),
                Err(error @ RegistryError::Transport { .. }) if attempt < policy.max_attempts => {
                    tracing::debug!(url = %redact_url(&url), attempt, error = %error, "body broke off, fetching again");
                    tokio::time::sleep(policy.delay(attempt, None)).await;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

fn scheme_name(auth: &HostAuth) -> &'static str {
    match auth {
        HostAuth::Anonymous => "anonymous",
        HostAuth::Basic => "basic",
        HostAuth::Bearer { .. } => "bearer",
    }
}

/// Reads a whole body, refusing more than `limit` bytes (or cutting there when `truncate`).
pub(crate) async fn read_limited(response: Response, limit: u64, truncate: bool) -> Result<Bytes> {
    let url = redact_url(response.url());
    if !truncate && response.content_length().is_some_and(|n| n > limit) {
        return Err(RegistryError::TooLarge { url, limit });
    }
    let mut out = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| RegistryError::Transport {
            method: "GET".to_owned(),
            url: url.clone(),
            source: e.without_url(),
        })?;
        if (out.len() + chunk.len()) as u64 > limit {
            if truncate {
                let room = limit as usize - out.len();
                out.extend_from_slice(&chunk[..room]);
                break;
            }
            return Err(RegistryError::TooLarge { url, limit });
        }
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}
