//! Paths and tree keys as BuildKit's content hasher spells them (spec 6.1).
//!
//! Every path is cleaned to an absolute path (Go's `path.Join("/", p)`), the root becomes the empty
//! string, and a key is that string with each `/` replaced by a 0x00 byte. Byte order of keys is
//! then "a path component boundary sorts before any character", which is the order of every
//! directory hash.

/// Cleans `path` to an absolute path with Go's lexical rules (`.` dropped, `..` applied, repeated
/// and trailing slashes removed, `..` above the root ignored); the root is `""`.
pub(crate) fn key_path(path: &str) -> String {
    let mut cleaned = crate::gopath::join_root(path);
    if cleaned == "/" {
        cleaned.clear();
    }
    cleaned
}

/// The cleaned absolute form with the root written as `/` (Go's `path.Join("/", p)`).
pub(crate) fn absolute(path: &str) -> String {
    let cleaned = key_path(path);
    if cleaned.is_empty() {
        "/".to_owned()
    } else {
        cleaned
    }
}

/// The tree key of an already cleaned path.
pub(crate) fn to_key(path: &str) -> Vec<u8> {
    path.bytes()
        .map(|b| if b == b'/' { 0 } else { b })
        .collect()
}

/// The path a key stands for (a header key keeps its trailing `/`).
pub(crate) fn key_to_path(key: &[u8]) -> String {
    let bytes: Vec<u8> = key.iter().map(|&b| if b == 0 { b'/' } else { b }).collect();
    // Keys are only ever built from `String`s with `/` swapped for 0x00, so this is UTF-8.
    String::from_utf8(bytes).expect("keys are built from UTF-8 paths")
}

/// Go's `path.Base`: the last element, `"."` for an empty path and `"/"` for the root.
pub(crate) fn go_base(path: &str) -> &str {
    crate::gopath::base(path)
}

/// Whether a path component holds `*`, `?` or `[` outside a backslash escape (BuildKit's
/// `containsWildcards`, used both to flag `COPY` selectors and to split wildcard prefixes).
pub fn contains_wildcards(name: &str) -> bool {
    let bytes = name.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'*' | b'?' | b'[' => return true,
            b'\\' => i += 1,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Splits a cleaned absolute pattern into the components before the first one with wildcards
/// and the rest (`/a/b*/c` gives `/a` and `b*/c`). A pattern whose first component is a wildcard
/// gives `/` as prefix (BuildKit v0.24+ `splitWildcards`).
pub(crate) fn split_wildcards(pattern: &str) -> (String, String) {
    let mut prefix: Vec<&str> = Vec::new();
    let mut rest: Vec<&str> = Vec::new();
    let mut found = false;
    for part in pattern.split('/') {
        if !found && contains_wildcards(part) {
            found = true;
        }
        let part = if part.is_empty() { "/" } else { part };
        if found {
            rest.push(part);
        } else {
            prefix.push(part);
        }
    }
    (go_join(&prefix), go_join(&rest))
}

/// Go's `path.Join` over elements: empty elements skipped, result cleaned, `""` if all empty.
fn go_join(parts: &[&str]) -> String {
    let joined = parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("/");
    if joined.is_empty() {
        return String::new();
    }
    go_clean(&joined)
}

/// Go's `path.Clean` for a non-empty path.
fn go_clean(path: &str) -> String {
    if path.starts_with('/') {
        return absolute(path);
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_like_go_path_join() {
        assert_eq!(key_path("/"), "");
        assert_eq!(key_path(""), "");
        assert_eq!(key_path("data.txt"), "/data.txt");
        assert_eq!(key_path("/a//b/./c/"), "/a/b/c");
        assert_eq!(key_path("../../a/../b"), "/b");
        assert_eq!(absolute(""), "/");
        assert_eq!(absolute("x/"), "/x");
    }

    #[test]
    fn keys_replace_slashes() {
        assert_eq!(to_key("/a/b"), b"\0a\0b");
        assert_eq!(key_to_path(b"\0a\0"), "/a/");
        assert_eq!(to_key(""), b"");
    }

    #[test]
    fn base_like_go() {
        assert_eq!(go_base(""), ".");
        assert_eq!(go_base("/"), "/");
        assert_eq!(go_base("/a/b.txt"), "b.txt");
        assert_eq!(go_base("/*.txt"), "*.txt");
    }

    #[test]
    fn wildcard_detection_and_split() {
        assert!(contains_wildcards("*.txt"));
        assert!(contains_wildcards("a[bc]"));
        assert!(!contains_wildcards("a\\*b"));
        assert!(!contains_wildcards("/plain/path"));
        assert_eq!(
            split_wildcards("/*.txt"),
            ("/".to_owned(), "*.txt".to_owned())
        );
        assert_eq!(
            split_wildcards("/src/*.rs"),
            ("/src".to_owned(), "*.rs".to_owned())
        );
        assert_eq!(
            split_wildcards("/a/b?/c"),
            ("/a".to_owned(), "b?/c".to_owned())
        );
    }
}
