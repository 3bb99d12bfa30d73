//! The errors of the registry client, and the registry's own error body.
//!
//! Every error that comes from a request names the method and the URL with its query and any
//! user info removed ([`redact_url`]): upload locations carry opaque state, token realms carry
//! scopes and none of that belongs in a log.

use std::fmt;
use std::path::PathBuf;

use inlay_core::Digest;
use serde::Deserialize;

/// One entry of the registry's `{"errors": [...]}` body (distribution spec, "Error Codes").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorDetail {
    /// The machine-readable code, such as `MANIFEST_INVALID` or `BLOB_UNKNOWN`.
    pub code: String,
    /// The human-readable message.
    pub message: String,
    /// Free-form detail, rendered back to JSON text; empty when absent.
    pub detail: String,
}

impl fmt::Display for ErrorDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)?;
        if !self.detail.is_empty() {
            write!(f, " ({})", self.detail)?;
        }
        Ok(())
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    errors: Vec<RawErrorDetail>,
}

#[derive(Deserialize)]
struct RawErrorDetail {
    #[serde(default)]
    code: serde_json::Value,
    #[serde(default)]
    message: serde_json::Value,
    #[serde(default)]
    detail: serde_json::Value,
}

fn json_text(value: serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    }
}

/// Parses a registry error body; anything that is not the spec's shape yields no details.
pub(crate) fn parse_error_body(body: &[u8]) -> Vec<ErrorDetail> {
    serde_json::from_slice::<ErrorBody>(body)
        .map(|b| {
            b.errors
                .into_iter()
                .map(|e| ErrorDetail {
                    code: json_text(e.code),
                    message: json_text(e.message),
                    detail: json_text(e.detail),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `scheme://host[:port]/path` of `url`: no user info, no query, no fragment.
pub fn redact_url(url: &url::Url) -> String {
    let mut shown = url.clone();
    // Both setters only fail for URLs that cannot have credentials (`data:` and the like),
    // which have none to hide.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

fn render_details(errors: &[ErrorDetail], body: &str) -> String {
    if errors.is_empty() {
        if body.is_empty() {
            String::new()
        } else {
            format!(": {body}")
        }
    } else {
        let parts: Vec<String> = errors.iter().map(ToString::to_string).collect();
        format!(": {}", parts.join("; "))
    }
}

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The registry answered with a status the operation does not accept.
    #[error("{method} {url} answered {status}{}", render_details(.errors, .body))]
    Status {
        /// The request method.
        method: String,
        /// The request URL without secrets.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The registry's error entries, when the body had them.
        errors: Vec<ErrorDetail>,
        /// The start of the body when it was not the spec's error JSON.
        body: String,
    },
    /// The request could not be sent or its answer not read.
    #[error("{method} {url} failed")]
    Transport {
        /// The request method.
        method: String,
        /// The request URL without secrets.
        url: String,
        /// The underlying client error.
        #[source]
        source: reqwest::Error,
    },
    /// Content did not hash to the digest it was asked for or announced with.
    #[error("{url}: content has digest {actual}, expected {expected}")]
    DigestMismatch {
        /// The URL the content came from, without secrets.
        url: String,
        /// The digest asked for or announced.
        expected: Digest,
        /// The digest of what arrived.
        actual: Digest,
    },
    /// Content is not as long as its descriptor says.
    #[error("{url}: content is {actual} bytes, expected {expected}")]
    SizeMismatch {
        /// The URL the content came from, without secrets.
        url: String,
        /// The size from the descriptor.
        expected: u64,
        /// The size that arrived.
        actual: u64,
    },
    /// A manifest or small document was larger than the client accepts.
    #[error("{url}: content is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The URL the content came from, without secrets.
        url: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// The registry answered something the protocol does not allow.
    #[error("{url}: {reason}")]
    Protocol {
        /// The URL concerned, without secrets.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// A token could not be obtained.
    #[error("token from {realm} for {scope:?} failed: {reason}")]
    Token {
        /// The token realm, without secrets.
        realm: String,
        /// The scopes asked for.
        scope: Vec<String>,
        /// What went wrong.
        reason: String,
    },
    /// A credential helper failed.
    #[error("credential helper {program} for {registry} failed: {reason}")]
    CredentialHelper {
        /// The helper program name (`docker-credential-<name>`).
        program: String,
        /// The registry the credentials were asked for.
        registry: String,
        /// What went wrong (never the helper's output).
        reason: String,
    },
    /// A file could not be read.
    #[error("reading {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// A config or credentials file does not parse.
    #[error("parsing {path}: {reason}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Writing downloaded content to the caller's sink failed.
    #[error("writing blob {digest}")]
    Write {
        /// The blob being written.
        digest: Digest,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// An index has no manifest for the wanted platform.
    #[error("{reference}: no manifest for platform {platform}")]
    NoMatchingPlatform {
        /// The index reference.
        reference: String,
        /// The platform asked for.
        platform: String,
    },
    /// A host name or URL could not be made into a request URL.
    #[error("invalid registry URL {input:?}")]
    InvalidUrl {
        /// The offending text, without secrets.
        input: String,
    },
    /// The HTTP client could not be built (TLS roots and the like).
    #[error("building the HTTP client: {reason}")]
    ClientSetup {
        /// What went wrong.
        reason: String,
    },
}

impl RegistryError {
    /// The HTTP status, when the registry answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            RegistryError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The registry's error entries, when it sent some.
    pub fn details(&self) -> &[ErrorDetail] {
        match self {
            RegistryError::Status { errors, .. } => errors,
            _ => &[],
        }
    }

    /// Whether the registry said the content or repository does not exist.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

/// The crate's result type.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_is_parsed_and_rendered() {
        let body = br#"{"errors":[{"code":"MANIFEST_INVALID","message":"manifest invalid","detail":{"reason":"bad"}}]}"#;
        let errors = parse_error_body(body);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].code, "MANIFEST_INVALID");
        assert_eq!(errors[0].detail, r#"{"reason":"bad"}"#);
        let e = RegistryError::Status {
            method: "PUT".into(),
            url: "http://h/v2/x/manifests/y".into(),
            status: 400,
            errors,
            body: String::new(),
        };
        let text = e.to_string();
        assert!(
            text.contains("400") && text.contains("MANIFEST_INVALID"),
            "{text}"
        );
        assert!(parse_error_body(b"not json").is_empty());
    }

    #[test]
    fn urls_lose_secrets() {
        let u = url::Url::parse("https://user:pw@h:5000/v2/x/blobs/uploads/abc?_state=SECRET#f")
            .unwrap();
        assert_eq!(redact_url(&u), "https://h:5000/v2/x/blobs/uploads/abc");
    }
}
