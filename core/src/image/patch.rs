//! Changing an image config at the JSON level, as BuildKit's image writer does (spec section
//! 3.5): decode the top level into a map of raw values, replace or add keys, marshal the map
//! again. Go marshals a map with its keys sorted, and re-compacts every raw value with HTML
//! escaping; nested values otherwise keep their original key order and number spelling.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::cache::{RecordGraph, Timestamp};
use crate::gojson;
use crate::image::ImageError;

/// The image config key holding the inline cache (spec section 3.5).
pub const INLINE_CACHE_KEY: &str = "moby.buildkit.cache.v0";

/// An image config opened for patching: its top-level keys with their raw JSON values.
#[derive(Debug, Clone)]
pub struct ConfigPatch {
    keys: BTreeMap<String, Box<RawValue>>,
}

impl ConfigPatch {
    /// Opens config `bytes` (a JSON object).
    pub fn parse(bytes: &[u8]) -> Result<ConfigPatch, ImageError> {
        let keys: Option<BTreeMap<String, Box<RawValue>>> =
            serde_json::from_slice(bytes).map_err(|source| ImageError::Json {
                what: "image config",
                source,
            })?;
        keys.map(|keys| ConfigPatch { keys })
            .ok_or(ImageError::NotAnObject)
    }

    /// The raw value of a top-level key.
    pub fn get(&self, key: &str) -> Option<&RawValue> {
        self.keys.get(key).map(AsRef::as_ref)
    }

    /// Whether a top-level key is present.
    pub fn contains(&self, key: &str) -> bool {
        self.keys.contains_key(key)
    }

    /// The top-level keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Removes a top-level key, giving its raw value back.
    pub fn remove(&mut self, key: &str) -> Option<Box<RawValue>> {
        self.keys.remove(key)
    }

    /// Sets a top-level key to already-encoded JSON.
    pub fn set_raw(&mut self, key: impl Into<String>, value: Box<RawValue>) {
        self.keys.insert(key.into(), value);
    }

    /// Sets a top-level key to the JSON of `value` (field order as `value` serialises; Go's
    /// escaping is applied when the config is written).
    pub fn set<T: Serialize + ?Sized>(
        &mut self,
        key: impl Into<String>,
        value: &T,
    ) -> Result<(), ImageError> {
        let raw = serde_json::value::to_raw_value(value).map_err(|source| ImageError::Json {
            what: "image config value",
            source,
        })?;
        self.set_raw(key, raw);
        Ok(())
    }

    /// Sets a top-level key to a JSON string.
    pub fn set_string(&mut self, key: impl Into<String>, value: &str) {
        let raw = RawValue::from_string(gojson::quote(value))
            .expect("a quoted, escaped string is valid JSON");
        self.set_raw(key, raw);
    }

    /// Sets `moby.buildkit.cache.v0` to the canonical inline value of `graph`.
    pub fn set_inline_cache(&mut self, graph: &RecordGraph) {
        self.set_string(INLINE_CACHE_KEY, &graph.to_inline());
    }

    /// Sets `created` unless the config already has one (BuildKit's writer keeps the
    /// frontend's value).
    pub fn set_created_if_missing(&mut self, created: &Timestamp) {
        if !self.contains("created") {
            self.set_string("created", &created.to_string());
        }
    }

    /// The config bytes: top-level keys in sorted order, each value compacted with Go's
    /// escaping, no trailing newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::from("{");
        for (i, (key, value)) in self.keys.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            gojson::write_string(&mut out, key, gojson::ControlEscapes::default());
            out.push(':');
            go_compact(value.get(), &mut out);
        }
        out.push('}');
        out.into_bytes()
    }
}

/// Appends `json` (valid JSON) to `out` without insignificant whitespace and with `<`, `>`, `&`,
/// U+2028 and U+2029 inside strings escaped, as Go's `json.Compact` with HTML escaping (what
/// `json.Marshal` applies to a `json.RawMessage`).
pub fn go_compact(json: &str, out: &mut String) {
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            if escaped {
                escaped = false;
                out.push(c);
                continue;
            }
            match c {
                '\\' => {
                    escaped = true;
                    out.push(c);
                }
                '"' => {
                    in_string = false;
                    out.push(c);
                }
                '<' => out.push_str("\\u003c"),
                '>' => out.push_str("\\u003e"),
                '&' => out.push_str("\\u0026"),
                '\u{2028}' => out.push_str("\\u2028"),
                '\u{2029}' => out.push_str("\\u2029"),
                c => out.push(c),
            }
        } else {
            match c {
                ' ' | '\t' | '\n' | '\r' => {}
                '"' => {
                    in_string = true;
                    out.push(c);
                }
                c => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compacts_like_go() {
        let mut out = String::new();
        go_compact(
            "{ \"a\" : [1, 2.50 ,\"x > y \\\" & \u{2028}\"],\n\"b\":{} }",
            &mut out,
        );
        assert_eq!(
            out,
            r#"{"a":[1,2.50,"x \u003e y \" \u0026 \u2028"],"b":{}}"#
        );
    }

    #[test]
    fn sorts_top_level_and_keeps_nested_order() {
        let mut patch = ConfigPatch::parse(br#"{"z":{"b":1,"a":2},"a":"<"}"#).unwrap();
        patch.set_string("m", "&");
        assert_eq!(
            String::from_utf8(patch.to_bytes()).unwrap(),
            r#"{"a":"\u003c","m":"\u0026","z":{"b":1,"a":2}}"#
        );
        assert!(matches!(
            ConfigPatch::parse(b"null"),
            Err(ImageError::NotAnObject)
        ));
        assert!(ConfigPatch::parse(b"[1]").is_err());
    }
}
