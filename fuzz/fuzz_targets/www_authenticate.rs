//! Any text as a `WWW-Authenticate` header: parsing the challenges and reading their parameters
//! and scopes never panics.
#![no_main]

use inlay_registry::challenge::parse_challenges;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let header = String::from_utf8_lossy(data);
    for challenge in parse_challenges(&header) {
        let _ = challenge.param("realm");
        let _ = challenge.param("service");
        let _ = challenge.scopes();
    }
});
