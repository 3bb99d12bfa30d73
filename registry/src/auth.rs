//! What each registry host wants (anonymous, Basic, Bearer tokens) and the tokens obtained.
//!
//! A host's scheme is learned from its `WWW-Authenticate` challenge, on a `GET /v2/` ping before
//! the first request or from any later 401. Bearer tokens come from the challenge's realm
//! (distribution "Token Authentication Specification": `GET realm?service=&scope=` with Basic
//! credentials if any; `POST` `grant_type=refresh_token` for identity tokens) and are cached per
//! host and scope set until shortly before they expire. A 401 drops the cached token and asks
//! for a fresh one once.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use serde::Deserialize;
use url::Url;

use crate::challenge::{Challenge, parse_challenges};
use crate::credentials::Credential;
use crate::error::{RegistryError, Result, redact_url};

/// Tokens without `expires_in` live 60 s (the token specification's default).
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// A cached token is dropped this long before it expires, so it never expires in flight.
const TOKEN_EXPIRY_MARGIN: Duration = Duration::from_secs(10);

/// How a host authenticates, as learned from its challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HostAuth {
    /// No challenge seen: requests go without credentials.
    Anonymous,
    /// `Basic`: the credentials go with every request to the host.
    Basic,
    /// `Bearer`: tokens from `realm`.
    Bearer {
        /// The token endpoint.
        realm: Url,
        /// The `service` to name in token requests.
        service: Option<String>,
    },
}

impl HostAuth {
    /// The scheme a set of challenges asks for: Bearer over Basic; `None` if neither is usable.
    pub(crate) fn from_challenges(challenges: &[Challenge]) -> Option<HostAuth> {
        let bearer = challenges
            .iter()
            .find(|c| c.scheme == "bearer")
            .and_then(|c| {
                let realm = Url::parse(c.param("realm")?).ok()?;
                Some(HostAuth::Bearer {
                    realm,
                    service: c.param("service").map(str::to_owned),
                })
            });
        bearer.or_else(|| {
            challenges
                .iter()
                .any(|c| c.scheme == "basic")
                .then_some(HostAuth::Basic)
        })
    }

    /// The scheme and extra scopes of a `WWW-Authenticate` header value.
    pub(crate) fn from_header(value: &str) -> (Option<HostAuth>, Vec<String>) {
        let challenges = parse_challenges(value);
        let scopes = challenges
            .iter()
            .filter(|c| c.scheme == "bearer")
            .flat_map(Challenge::scopes)
            .collect();
        (HostAuth::from_challenges(&challenges), scopes)
    }
}

/// A bearer token; its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Token(pub(crate) String);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

#[derive(Debug)]
struct CachedToken {
    token: Token,
    good_until: Instant,
}

/// Scopes in a stable order, as a cache key.
pub(crate) fn scope_key(scopes: &[String]) -> String {
    let mut sorted: Vec<&str> = scopes.iter().map(String::as_str).collect();
    sorted.sort_unstable();
    sorted.dedup();
    sorted.join(" ")
}

/// Learned schemes and cached tokens, shared by all requests of a client.
#[derive(Debug, Default)]
pub(crate) struct AuthState {
    hosts: tokio::sync::Mutex<HashMap<String, HostAuth>>,
    tokens: tokio::sync::Mutex<HashMap<(String, String), CachedToken>>,
}

impl AuthState {
    pub(crate) async fn set_host(&self, origin: &str, auth: HostAuth) {
        self.hosts.lock().await.insert(origin.to_owned(), auth);
    }

    /// Serialises the first contact with a host, so that many concurrent requests ping once.
    pub(crate) async fn lock_hosts(
        &self,
    ) -> tokio::sync::MutexGuard<'_, HashMap<String, HostAuth>> {
        self.hosts.lock().await
    }

    pub(crate) async fn forget_token(&self, origin: &str, scopes: &[String]) {
        self.tokens
            .lock()
            .await
            .remove(&(origin.to_owned(), scope_key(scopes)));
    }

    /// A valid token for `scopes` at `origin`, fetched with `fetch` when none is cached.
    ///
    /// The cache lock is held while fetching so that concurrent requests wanting the same token
    /// make one token request.
    pub(crate) async fn token<F, Fut>(
        &self,
        origin: &str,
        scopes: &[String],
        fetch: F,
    ) -> Result<Token>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<(Token, Duration)>>,
    {
        let key = (origin.to_owned(), scope_key(scopes));
        let mut tokens = self.tokens.lock().await;
        if let Some(cached) = tokens.get(&key) {
            if Instant::now() < cached.good_until {
                return Ok(cached.token.clone());
            }
        }
        let (token, lifetime) = fetch().await?;
        let good_until = Instant::now() + lifetime.saturating_sub(TOKEN_EXPIRY_MARGIN);
        tokens.insert(
            key,
            CachedToken {
                token: token.clone(),
                good_until,
            },
        );
        Ok(token)
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// Asks `realm` for a token covering `scopes`.
pub(crate) async fn fetch_token(
    http: &reqwest::Client,
    realm: &Url,
    service: Option<&str>,
    scopes: &[String],
    credential: Option<&Credential>,
) -> Result<(Token, Duration)> {
    let fail = |reason: String| RegistryError::Token {
        realm: redact_url(realm),
        scope: scopes.to_vec(),
        reason,
    };
    let request = match credential {
        Some(Credential::IdentityToken(refresh)) => {
            // OAuth2 refresh-token grant, as docker does for `identitytoken`.
            let mut form: Vec<(&str, &str)> = vec![
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh.as_str()),
                ("client_id", "inlay"),
            ];
            if let Some(s) = service {
                form.push(("service", s));
            }
            let joined = scopes.join(" ");
            if !scopes.is_empty() {
                form.push(("scope", joined.as_str()));
            }
            let body = serde_urlencode(&form);
            http.post(realm.clone())
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(body)
        }
        other => {
            let mut url = realm.clone();
            {
                let mut q = url.query_pairs_mut();
                if let Some(s) = service {
                    q.append_pair("service", s);
                }
                for s in scopes {
                    q.append_pair("scope", s);
                }
            }
            let mut req = http.get(url);
            if let Some(header) = other.and_then(Credential::basic_header) {
                req = req.header(reqwest::header::AUTHORIZATION, header);
            }
            req
        }
    };
    tracing::debug!(realm = %redact_url(realm), scopes = ?scopes, "requesting token");
    let response = request
        .send()
        .await
        .map_err(|e| fail(format!("request failed: {}", e.without_url())))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|e| fail(format!("reading the answer failed: {}", e.without_url())))?;
    if !status.is_success() {
        let details = crate::error::parse_error_body(&body);
        let shown = details.first().map(ToString::to_string).unwrap_or_default();
        return Err(fail(format!("answered {} {shown}", status.as_u16())));
    }
    let answer: TokenAnswer =
        serde_json::from_slice(&body).map_err(|_| fail("answer is not token JSON".to_owned()))?;
    let token = answer
        .token
        .or(answer.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| fail("answer has no token".to_owned()))?;
    let lifetime = answer
        .expires_in
        .filter(|s| *s > 0)
        .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
    Ok((Token(token), lifetime))
}

fn serde_urlencode(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

/// The scope of pulling from `repository`.
pub fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

/// The scope of pushing to `repository`.
pub fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_wins_over_basic() {
        let (auth, scopes) = HostAuth::from_header(
            r#"Basic realm="x", Bearer realm="https://a/token",service="s",scope="repository:r:pull""#,
        );
        assert_eq!(
            auth,
            Some(HostAuth::Bearer {
                realm: Url::parse("https://a/token").unwrap(),
                service: Some("s".into())
            })
        );
        assert_eq!(scopes, vec!["repository:r:pull"]);
        assert_eq!(
            HostAuth::from_header(r#"Basic realm="x""#).0,
            Some(HostAuth::Basic)
        );
        assert_eq!(HostAuth::from_header("Bearer realm=\"not a url\"").0, None);
    }

    #[test]
    fn scope_keys_are_order_free() {
        let a = scope_key(&["b".into(), "a".into(), "a".into()]);
        assert_eq!(a, "a b");
    }

    #[test]
    fn token_debug_is_redacted() {
        assert!(!format!("{:?}", Token("secret".into())).contains("secret"));
    }

    #[tokio::test]
    async fn tokens_are_cached_until_expiry() {
        let state = AuthState::default();
        let scopes = vec!["repository:a:pull".to_owned()];
        let t = state
            .token("o", &scopes, || async {
                Ok((Token("one".into()), Duration::from_secs(300)))
            })
            .await
            .unwrap();
        assert_eq!(t.0, "one");
        let t = state
            .token("o", &scopes, || async { panic!("must be cached") })
            .await
            .unwrap();
        assert_eq!(t.0, "one");
        // A lifetime under the margin is never reused.
        let other = vec!["repository:b:pull".to_owned()];
        for n in ["x", "y"] {
            let t = state
                .token("o", &other, || async move {
                    Ok((Token(n.into()), Duration::from_secs(5)))
                })
                .await
                .unwrap();
            assert_eq!(t.0, n);
        }
        state.forget_token("o", &scopes).await;
        let t = state
            .token("o", &scopes, || async {
                Ok((Token("two".into()), Duration::from_secs(300)))
            })
            .await
            .unwrap();
        assert_eq!(t.0, "two");
    }
}
