//! Test harness shared by inlay's crates; a dev-dependency only, never shipped.
//!
//! It starts Debian's `docker-registry` (CNCF distribution 2.8) on a free port of 127.0.0.1 in
//! the set-ups the tests need ([`registry::Setup`]: open, htpasswd, token, https) and kills it
//! when the handle drops, also when a test panics. Around it: an in-process token server
//! ([`token`]), a tiny HTTP/1.1 server for mocks of faults real registries will not produce on
//! demand ([`http`]), a counting and fault-injecting proxy ([`proxy`]), a proxy that injects
//! faults into whole builds and counts them by class ([`faults`]), a `tracing` capture
//! ([`capture`]), and image documents built from `inlay-core` types ([`image`]).
//!
//! It deliberately knows nothing of inlay's registry client: it depends only on
//! `inlay-core` and external crates, so that `inlay-registry` itself can dev-depend on it. Images
//! pushed with a client are built in each crate's own `tests/support`. Helpers panic on failure:
//! a broken harness is a failed test.
//!
//! ```
//! use inlay_testkit::http::Response;
//!
//! let reply = Response::new(404).header("Docker-Distribution-API-Version", "registry/2.0");
//! let bytes = inlay_testkit::http::render_response(&reply, false);
//! assert!(bytes.starts_with(b"HTTP/1.1 404"));
//! assert_eq!(inlay_testkit::reference("127.0.0.1:5000", "a/b:c").to_string(), "127.0.0.1:5000/a/b:c");
//! ```

pub mod capture;
mod certificate;
pub mod faults;
pub mod http;
pub mod image;
pub mod proxy;
pub mod registry;
pub mod token;

use inlay_core::Reference;

/// `host/path` parsed as a reference; panics on a malformed one (a bug in the test).
pub fn reference(host: &str, path: &str) -> Reference {
    format!("{host}/{path}")
        .parse()
        .unwrap_or_else(|e| panic!("test reference {host}/{path}: {e}"))
}
