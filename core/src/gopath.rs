//! Go's `path` package for slash-separated paths: BuildKit cleans every path it hashes or
//! compares with these rules, so keys only agree when inlay cleans exactly the same way.
//!
//! ```
//! use inlay_core::gopath;
//!
//! assert_eq!(gopath::clean("a//b/../c/."), "a/c");
//! assert_eq!(gopath::join_root("out/"), "/out");
//! assert_eq!(gopath::base("/out/"), "out");
//! assert_eq!(gopath::dir("/a/b"), "/a");
//! ```

/// `path.Clean`: `.` dropped, `..` applied (kept at the front of a relative path, dropped above
/// the root of an absolute one), repeated and trailing slashes removed; `""` becomes `"."`.
pub fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for element in path.split('/') {
        match element {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

/// `path.Join("/", p)`: the absolute, cleaned form; never climbs above `/`.
pub fn join_root(path: &str) -> String {
    clean(&format!("/{path}"))
}

/// `path.Base`: the last element; `"."` for an empty path and `"/"` for the root.
pub fn base(path: &str) -> &str {
    if path.is_empty() {
        return ".";
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/";
    }
    match trimmed.rfind('/') {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    }
}

/// `path.Dir`: everything but the last element, cleaned.
pub fn dir(path: &str) -> String {
    match path.rfind('/') {
        Some(i) => clean(&path[..=i]),
        None => ".".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_go() {
        // Cases from Go's path package documentation and tests.
        for (input, want) in [
            ("", "."),
            ("abc", "abc"),
            ("abc/def", "abc/def"),
            ("a/b/c", "a/b/c"),
            (".", "."),
            ("..", ".."),
            ("../..", "../.."),
            ("../../abc", "../../abc"),
            ("/abc", "/abc"),
            ("/", "/"),
            ("abc/", "abc"),
            ("abc/def/", "abc/def"),
            ("/abc/def/", "/abc/def"),
            ("//abc", "/abc"),
            ("abc//def//ghi", "abc/def/ghi"),
            ("abc/./def", "abc/def"),
            ("/./abc/def", "/abc/def"),
            ("abc/../../././../def", "../../def"),
            ("/abc/def/../../..", "/"),
            ("a/../../b", "../b"),
        ] {
            assert_eq!(clean(input), want, "clean({input:?})");
        }
        assert_eq!(join_root(""), "/");
        assert_eq!(join_root("../.."), "/");
        assert_eq!(join_root("a/../b/"), "/b");
        assert_eq!(base(""), ".");
        assert_eq!(base("/"), "/");
        assert_eq!(base("a/b/"), "b");
        assert_eq!(dir("a/b/c"), "a/b");
        assert_eq!(dir("a"), ".");
        assert_eq!(dir("/a"), "/");
    }
}
