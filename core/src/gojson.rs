//! A JSON writer that produces the exact bytes Go's `encoding/json` produces.
//!
//! BuildKit's cache keys are sha256 digests of Go-marshalled structs (spec sections 5.5 to 5.7,
//! 9.1.2), so the pre-images must match Go byte for byte: fields in struct declaration order,
//! compact output, `<` `>` `&` U+2028 U+2029 escaped as `\u003c`-style sequences, byte slices as
//! padded standard base64, integers in plain decimal. `serde_json` differs on the escaping and
//! has no notion of Go's field order, hence this small builder.
//!
//! `omitempty` is the caller's business: use [`Object::field`] for always-written fields and
//! [`Object::omit_empty`] (Go's rule: `false`, `0`, `""`, empty arrays and byte strings, `null`)
//! for `omitempty` ones.
//!
//! ```
//! use inlay_core::gojson::{Object, Value};
//!
//! let pre_image = Object::new()
//!     .field("Digest", "sha256:706400ad74aba921c5afe8b1c2c72d34188005d607c3b2cf674c679775ae67ed")
//!     .field("OS", "linux")
//!     .field("Arch", "amd64")
//!     .omit_empty("Variant", "")
//!     .into_value();
//! assert_eq!(
//!     pre_image.digest().to_string(),
//!     "sha256:335bef4f7ed013244d052b7f43dc91131af1027b02ad517512be7ce8e63e897f"
//! );
//! assert_eq!(Value::from("a > b").to_json(), r#""a \u003e b""#);
//! ```

use base64::Engine as _;

use crate::Digest;

/// Which escape Go writes for backspace and form feed.
///
/// Go 1.22 started writing `\b` and `\f` (its release notes, "minor changes to the library",
/// `encoding/json`); earlier releases wrote `\u0008` and `\u000c`. So docker 20.10's BuildKit
/// 0.8 (built with an older Go) keys such a command differently from a current BuildKit (spec
/// section 2.3 leaves this open). Every other character is escaped the same way by both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ControlEscapes {
    /// `\u0008` and `\u000c`, as Go 1.21 and earlier.
    #[default]
    Unicode,
    /// `\b` and `\f`, as Go 1.22 and later.
    Short,
}

/// A JSON value laid out the way Go writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Value {
    /// `null` (a nil pointer, slice or map without `omitempty`).
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A signed integer in decimal.
    Int(i64),
    /// An unsigned integer in decimal.
    Uint(u64),
    /// A string, escaped as Go does.
    String(String),
    /// A Go `[]byte`: written as a string holding the padded standard base64 of the bytes.
    Bytes(Vec<u8>),
    /// An array.
    Array(Vec<Value>),
    /// An object (a Go struct or map) with its fields in the order given.
    Object(Object),
    /// Already-encoded JSON written verbatim (a Go `json.RawMessage` the caller has compacted).
    Raw(String),
}

/// An object whose fields are written in the order they were added, like a Go struct.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Object {
    fields: Vec<(String, Value)>,
}

impl Object {
    /// An empty object (`{}`).
    pub fn new() -> Object {
        Object::default()
    }

    /// A Go `map[string]T`: Go writes map keys in sorted byte order, whatever the insertion order.
    pub fn sorted_map<K: Into<String>, V: Into<Value>>(
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Object {
        let mut fields: Vec<(String, Value)> = entries
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        Object { fields }
    }

    /// Appends a field that is always written (no `omitempty`).
    #[must_use]
    pub fn field(mut self, name: impl Into<String>, value: impl Into<Value>) -> Object {
        self.fields.push((name.into(), value.into()));
        self
    }

    /// Appends an `omitempty` field: it is skipped when the value is Go-empty
    /// (see [`Value::is_go_empty`]).
    #[must_use]
    pub fn omit_empty(self, name: impl Into<String>, value: impl Into<Value>) -> Object {
        let value = value.into();
        if value.is_go_empty() {
            self
        } else {
            self.field(name, value)
        }
    }

    /// Appends a field only when `value` is `Some` (a nil pointer with `omitempty`).
    #[must_use]
    pub fn optional<V: Into<Value>>(self, name: impl Into<String>, value: Option<V>) -> Object {
        match value {
            Some(value) => self.field(name, value),
            None => self,
        }
    }

    /// Appends a field in place (for builders that fill an object in a loop).
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<Value>) {
        self.fields.push((name.into(), value.into()));
    }

    /// The fields in write order.
    pub fn fields(&self) -> &[(String, Value)] {
        &self.fields
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Wraps the object as a [`Value`].
    pub fn into_value(self) -> Value {
        Value::Object(self)
    }
}

impl Value {
    /// An array of anything convertible to values.
    pub fn array<V: Into<Value>>(items: impl IntoIterator<Item = V>) -> Value {
        Value::Array(items.into_iter().map(Into::into).collect())
    }

    /// Go's `omitempty` test: `false`, `0`, `""`, an empty array or byte string, and `null`.
    ///
    /// Objects are never empty in this sense: Go does not omit a struct value, and a non-nil
    /// pointer to an empty struct is written as `{}`. Raw JSON is never empty either. Build an
    /// empty Go map with [`Object::sorted_map`] and skip it yourself.
    pub fn is_go_empty(&self) -> bool {
        match self {
            Value::Null => true,
            Value::Bool(b) => !b,
            Value::Int(i) => *i == 0,
            Value::Uint(u) => *u == 0,
            Value::String(s) => s.is_empty(),
            Value::Bytes(b) => b.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(_) | Value::Raw(_) => false,
        }
    }

    /// The compact JSON text, with Go 1.21's escapes (see [`ControlEscapes`]).
    pub fn to_json(&self) -> String {
        self.to_json_with(ControlEscapes::default())
    }

    /// The compact JSON text with the given control-character escapes.
    pub fn to_json_with(&self, escapes: ControlEscapes) -> String {
        let mut out = String::new();
        self.write(&mut out, escapes);
        out
    }

    /// The sha256 digest of [`Value::to_json`], which is how BuildKit turns a pre-image into a
    /// CacheMap digest.
    pub fn digest(&self) -> Digest {
        self.digest_with(ControlEscapes::default())
    }

    /// The sha256 digest of [`Value::to_json_with`].
    pub fn digest_with(&self, escapes: ControlEscapes) -> Digest {
        Digest::sha256_of(self.to_json_with(escapes).as_bytes())
    }

    /// Appends the compact JSON text to `out`.
    pub fn write(&self, out: &mut String, escapes: ControlEscapes) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Bool(true) => out.push_str("true"),
            Value::Bool(false) => out.push_str("false"),
            Value::Int(i) => out.push_str(&i.to_string()),
            Value::Uint(u) => out.push_str(&u.to_string()),
            Value::String(s) => write_string(out, s, escapes),
            Value::Bytes(b) => {
                // base64 output is plain ASCII without characters that need escaping.
                out.push('"');
                base64::engine::general_purpose::STANDARD.encode_string(b, out);
                out.push('"');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out, escapes);
                }
                out.push(']');
            }
            Value::Object(object) => {
                out.push('{');
                for (i, (name, value)) in object.fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_string(out, name, escapes);
                    out.push(':');
                    value.write(out, escapes);
                }
                out.push('}');
            }
            Value::Raw(raw) => out.push_str(raw),
        }
    }
}

/// Appends `s` as a JSON string literal escaped exactly as Go's `encoding/json` does with HTML
/// escaping on (the default for `json.Marshal`).
pub fn write_string(out: &mut String, s: &str, escapes: ControlEscapes) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' if escapes == ControlEscapes::Short => out.push_str("\\b"),
            '\u{c}' if escapes == ControlEscapes::Short => out.push_str("\\f"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 || c == '<' || c == '>' || c == '&' => {
                let b = c as u32 as u8;
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `s` as a Go-escaped JSON string literal (quotes included).
pub fn quote(s: &str) -> String {
    let mut out = String::new();
    write_string(&mut out, s, ControlEscapes::default());
    out
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Value {
        Value::Int(i64::from(v))
    }
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Uint(v)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Value {
        Value::Uint(u64::from(v))
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::String(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::String(v)
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Value {
        Value::String(v.clone())
    }
}

impl From<&Digest> for Value {
    fn from(v: &Digest) -> Value {
        Value::String(v.to_string())
    }
}

impl From<Object> for Value {
    fn from(v: Object) -> Value {
        Value::Object(v)
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Value {
        Value::Array(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_go() {
        assert_eq!(quote("a<b>&c"), r#""a\u003cb\u003e\u0026c""#);
        assert_eq!(quote("\u{2028}\u{2029}"), r#""\u2028\u2029""#);
        assert_eq!(quote("q\"b\\"), r#""q\"b\\""#);
        assert_eq!(quote("\n\r\t"), r#""\n\r\t""#);
        assert_eq!(
            quote("\u{0}\u{1f}\u{8}\u{c}"),
            r#""\u0000\u001f\u0008\u000c""#
        );
        assert_eq!(quote("\u{7f}é"), "\"\u{7f}é\"");
        let mut short = String::new();
        write_string(&mut short, "\u{8}\u{c}", ControlEscapes::Short);
        assert_eq!(short, r#""\b\f""#);
    }

    #[test]
    fn writes_values_compactly_in_order() {
        let v = Object::new()
            .field("z", 1i64)
            .field("a", Value::array(["x", "y"]))
            .omit_empty("empty", "")
            .omit_empty("zero", 0i64)
            .omit_empty("no", false)
            .field("bytes", Value::Bytes(b"hi".to_vec()))
            .field("neg", -1i64)
            .field("obj", Object::new())
            .optional::<i64>("none", None)
            .field("null", Value::Null)
            .field("raw", Value::Raw("[1,2]".into()))
            .into_value();
        assert_eq!(
            v.to_json(),
            r#"{"z":1,"a":["x","y"],"bytes":"aGk=","neg":-1,"obj":{},"null":null,"raw":[1,2]}"#
        );
    }

    #[test]
    fn maps_are_sorted() {
        let m = Object::sorted_map([("b", 1i64), ("a", 2i64)]).into_value();
        assert_eq!(m.to_json(), r#"{"a":2,"b":1}"#);
    }
}
