//! Any `.dockerignore` content and path: reading, compiling and matching never panic. The input
//! is split at its first NUL byte: patterns before, the path after.
#![no_main]

use inlay_frontend_dockerfile::dockerignore::Dockerignore;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (content, path) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"a/b/c"[..]),
    };
    let path = String::from_utf8_lossy(path);
    if let Ok(ignore) = Dockerignore::parse(content) {
        let _ = ignore.is_excluded(&path);
        let _ = ignore.matches(&path);
    }
});
