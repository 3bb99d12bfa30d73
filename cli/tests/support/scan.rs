//! Looking for a secret everywhere a build could have put it: raw bytes, base64 at any
//! alignment, inside gzip streams, tar archives and base64 strings of JSON documents (the
//! inline cache is base64 JSON inside the image config).

// Helpers outside #[test] fns are test code too.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Read;
use std::path::Path;

use base64::Engine as _;

/// The needles one secret yields: its bytes and the stable cores of its base64 encodings
/// (standard and URL-safe) at each of the three alignments.
pub struct Needles {
    name: String,
    patterns: Vec<Vec<u8>>,
}

impl Needles {
    /// The needles of `secret`, called `name` in failure messages.
    pub fn new(name: &str, secret: &[u8]) -> Needles {
        let mut patterns = vec![secret.to_vec()];
        for engine in [
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::URL_SAFE,
        ] {
            for shift in 0..3usize {
                let mut shifted = vec![0u8; shift];
                shifted.extend_from_slice(secret);
                let encoded = engine.encode(&shifted);
                // Drop the characters that depend on the bytes before and after the secret.
                let start = (shift * 4).div_ceil(3) + 1;
                let end = encoded.len().saturating_sub(4);
                if end > start + 8 {
                    patterns.push(encoded.as_bytes()[start..end].to_vec());
                }
            }
        }
        Needles {
            name: name.to_owned(),
            patterns,
        }
    }

    /// Where in `haystack` (or what it decodes to) a needle shows up, as a description.
    pub fn find(&self, haystack: &[u8]) -> Option<String> {
        self.find_in(haystack, 0)
    }

    fn find_in(&self, haystack: &[u8], depth: usize) -> Option<String> {
        for pattern in &self.patterns {
            if contains(haystack, pattern) {
                return Some(format!(
                    "{} (as {:?})",
                    self.name,
                    String::from_utf8_lossy(pattern)
                ));
            }
        }
        if depth > 4 {
            return None;
        }
        if haystack.starts_with(&[0x1f, 0x8b]) {
            let mut plain = Vec::new();
            if flate2::read::MultiGzDecoder::new(haystack)
                .read_to_end(&mut plain)
                .is_ok()
            {
                if let Some(hit) = self.find_in(&plain, depth + 1) {
                    return Some(format!("gzip > {hit}"));
                }
            }
        }
        if haystack.len() > 262 && &haystack[257..262] == b"ustar" {
            let mut archive = tar::Archive::new(haystack);
            if let Ok(entries) = archive.entries() {
                for entry in entries.flatten() {
                    let path = entry
                        .path()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default();
                    let mut entry = entry;
                    let mut bytes = Vec::new();
                    if entry.read_to_end(&mut bytes).is_ok() {
                        if let Some(hit) = self.find_in(&bytes, depth + 1) {
                            return Some(format!("tar entry {path} > {hit}"));
                        }
                    }
                }
            }
        }
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(haystack) {
            let mut strings = Vec::new();
            json_strings(&value, &mut strings);
            for s in strings {
                for engine in [
                    base64::engine::general_purpose::STANDARD,
                    base64::engine::general_purpose::URL_SAFE,
                ] {
                    if let Ok(decoded) = engine.decode(s.trim()) {
                        if let Some(hit) = self.find_in(&decoded, depth + 1) {
                            return Some(format!("base64 JSON string > {hit}"));
                        }
                    }
                }
            }
        }
        None
    }

    /// Every file below `dir` (symlinks not followed) that holds a needle: `path: how`.
    pub fn find_in_tree(&self, dir: &Path) -> Vec<String> {
        crate::harden::files_below(dir)
            .into_iter()
            .filter_map(|path| {
                let bytes = std::fs::read(&path).ok()?;
                self.find(&bytes)
                    .map(|how| format!("{}: {how}", path.display()))
            })
            .collect()
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

fn json_strings<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match value {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(items) => items.iter().for_each(|v| json_strings(v, out)),
        serde_json::Value::Object(map) => map.values().for_each(|v| json_strings(v, out)),
        _ => {}
    }
}

#[test]
fn needles_are_found_raw_in_base64_and_in_gzip() {
    use std::io::Write;
    let needles = Needles::new("s", b"the-secret-value-123");
    assert!(needles.find(b"xx the-secret-value-123 yy").is_some());
    for prefix in ["", "a", "ab", "abc"] {
        let text = base64::engine::general_purpose::STANDARD
            .encode(format!("{prefix}the-secret-value-123 and more"));
        assert!(needles.find(text.as_bytes()).is_some(), "prefix {prefix:?}");
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"....the-secret-value-123....").unwrap();
    assert!(needles.find(&gz.finish().unwrap()).is_some());
    let json = serde_json::json!({"cache": base64::engine::general_purpose::STANDARD.encode("{\"k\":\"the-secret-value-123\"}")});
    assert!(needles.find(json.to_string().as_bytes()).is_some());
    assert!(needles.find(b"nothing here").is_none());
}
