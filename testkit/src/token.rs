//! An in-process token server for distribution's token auth.
//!
//! It issues real ES256 JWTs in distribution's format (`registry/auth/token`): the header
//! carries the signing certificate in `x5c`, which the registry verifies against its
//! `rootcertbundle` (the same self-signed certificate), and the claims carry `iss`, `aud`
//! (the service), `exp`/`nbf`/`iat` and the granted `access` list. The key and certificate are
//! made with the `openssl` CLI; signing uses `ring`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::json;

use crate::certificate::openssl;
use crate::http::{HttpServer, Request, Response};
use crate::registry::{PASSWORD, USER};

/// The service name (`aud`) tokens are issued for.
pub const SERVICE: &str = "inlay-test-registry";
/// The issuer (`iss`) of the tokens.
pub const ISSUER: &str = "inlay-test-issuer";
/// The refresh token (`identitytoken`) the server accepts in the `OAuth2` refresh grant.
pub const REFRESH_TOKEN: &str = "inlay-refresh-token";

/// A running token server at [`TokenServer::realm`]; stops when dropped.
pub struct TokenServer {
    server: HttpServer,
    dir: tempfile::TempDir,
    /// Token requests answered.
    pub issued: Arc<AtomicUsize>,
    /// Tokens to issue already expired (to test refresh on 401); counts down.
    pub expired_tokens_left: Arc<AtomicUsize>,
    /// `expires_in` announced, in seconds.
    pub lifetime: Arc<AtomicI64>,
    /// Every scope asked for, in order.
    pub scopes: Arc<std::sync::Mutex<Vec<String>>>,
    /// Every token issued, in order (to look for them where they must not be, such as logs).
    pub tokens: Arc<std::sync::Mutex<Vec<String>>>,
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_secs() as i64
}

/// `repository:name:a,b` → the claim's access entry.
fn access_entry(scope: &str) -> Option<serde_json::Value> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    Some(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}))
}

struct Signer {
    key: EcdsaKeyPair,
    cert_b64: String,
    rng: SystemRandom,
}

impl Signer {
    fn token(&self, access: &[serde_json::Value], expired: bool) -> String {
        let header = json!({"typ": "JWT", "alg": "ES256", "x5c": [self.cert_b64]});
        let t = now();
        // Past the registry's 60 s leeway when an expired token is wanted.
        let exp = if expired { t - 600 } else { t + 600 };
        let claims = json!({
            "iss": ISSUER, "sub": USER, "aud": SERVICE,
            "exp": exp, "nbf": t - 10, "iat": t - 10,
            "jti": format!("{}", fastrand::u64(..)),
            "access": access,
        });
        let signing_input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let sig = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .expect("ECDSA signing with a valid key");
        format!("{signing_input}.{}", b64url(sig.as_ref()))
    }
}

impl TokenServer {
    // One linear recipe (key, certificate, handler); split up it would read worse.
    #[allow(clippy::too_many_lines)]
    /// Starts a token server that wants `USER`/`PASSWORD` as Basic credentials.
    pub async fn start() -> TokenServer {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let p = dir.path();
        openssl(
            p,
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                "key.pem",
            ],
        );
        openssl(
            p,
            &[
                "pkcs8", "-topk8", "-nocrypt", "-in", "key.pem", "-outform", "DER", "-out",
                "key.p8",
            ],
        );
        openssl(
            p,
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                "key.pem",
                "-subj",
                "/CN=inlay-test-token",
                "-days",
                "2",
                "-out",
                "cert.pem",
            ],
        );
        openssl(
            p,
            &[
                "x509", "-in", "cert.pem", "-outform", "DER", "-out", "cert.der",
            ],
        );
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &std::fs::read(p.join("key.p8")).expect("reading the token key"),
            &rng,
        )
        .expect("openssl wrote a P-256 PKCS#8 key");
        let signer = Arc::new(Signer {
            key,
            cert_b64: base64::engine::general_purpose::STANDARD
                .encode(std::fs::read(p.join("cert.der")).expect("reading the token certificate")),
            rng,
        });
        let issued = Arc::new(AtomicUsize::new(0));
        let expired_tokens_left = Arc::new(AtomicUsize::new(0));
        let lifetime = Arc::new(AtomicI64::new(300));
        let scopes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let tokens = Arc::new(std::sync::Mutex::new(Vec::new()));
        let tokens_n = tokens.clone();
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
        );
        let (issued_n, expired_n, lifetime_n, scopes_n) = (
            issued.clone(),
            expired_tokens_left.clone(),
            lifetime.clone(),
            scopes.clone(),
        );
        let server = HttpServer::start(Arc::new(move |req: Request| {
            if req.path() != "/token" {
                return Response::new(404);
            }
            let asked = if req.method == "POST" {
                // The OAuth2 refresh-token grant docker uses for `identitytoken`s.
                let form: Vec<(String, String)> =
                    url::form_urlencoded::parse(&req.body).into_owned().collect();
                let field = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
                if field("grant_type") != Some("refresh_token")
                    || field("refresh_token") != Some(REFRESH_TOKEN)
                {
                    return Response::new(401);
                }
                if field("service") != Some(SERVICE) {
                    return Response::new(400);
                }
                field("scope").map(|s| vec![s.to_owned()]).unwrap_or_default()
            } else {
                if req.header("authorization") != Some(want.as_str()) {
                    return Response::new(401).json(
                        &json!({"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials"}]}),
                    );
                }
                if req.query("service") != [SERVICE] {
                    return Response::new(400);
                }
                req.query("scope")
            };
            scopes_n
                .lock()
                .expect("scope list lock")
                .extend(asked.iter().cloned());
            let access: Vec<_> = asked
                .iter()
                .flat_map(|sc| sc.split(' '))
                .filter_map(access_entry)
                .collect();
            let expired = expired_n
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            issued_n.fetch_add(1, Ordering::SeqCst);
            let token = signer.token(&access, expired);
            tokens_n.lock().expect("token list lock").push(token.clone());
            Response::new(200).json(&json!({
                "token": token,
                "expires_in": lifetime_n.load(Ordering::SeqCst),
            }))
        }))
        .await;
        TokenServer {
            server,
            dir,
            issued,
            expired_tokens_left,
            lifetime,
            scopes,
            tokens,
        }
    }

    /// The URL of the token endpoint, for the registry's `realm`.
    pub fn realm(&self) -> String {
        self.server.url("/token")
    }

    /// The certificate tokens are signed with, for the registry's `rootcertbundle`.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// How many tokens were issued so far.
    pub fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }
}
