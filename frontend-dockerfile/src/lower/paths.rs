//! Path arithmetic exactly as Go's `path` package and BuildKit's `system.NormalizePath` and
//! LLB's `normalizePath` do it: keys hash the resulting strings, so a trailing `/` or an
//! uncleaned absolute path matters.

/// Go's `path.Clean`.
pub(crate) fn clean(p: &str) -> String {
    inlay_core::gopath::clean(p)
}

/// Go's `path.Join` of two elements (empty elements are skipped; the result is cleaned).
pub(crate) fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, true) => String::new(),
        (true, false) => clean(b),
        (false, true) => clean(a),
        (false, false) => clean(&format!("{a}/{b}")),
    }
}

/// Go's `path.Base`.
pub(crate) fn base(p: &str) -> String {
    if p.is_empty() {
        return ".".to_owned();
    }
    let trimmed = p.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/".to_owned();
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_owned()
}

/// Re-adds the trailing `/` (or `/.`) of `original` to `normalized`, as both BuildKit helpers
/// do with `keepSlash`.
fn keep_slash(original: &str, mut normalized: String) -> String {
    if original.ends_with('/') && !normalized.ends_with('/') {
        normalized.push('/');
    } else if original.ends_with("/.") {
        if normalized != "/" {
            normalized.push('/');
        }
        normalized.push('.');
    }
    normalized
}

/// BuildKit's `system.NormalizePath` on Linux: a relative path is joined to `parent` (made
/// absolute), an absolute one is kept as written.
pub(crate) fn normalize(parent: &str, new_path: &str, keep: bool) -> String {
    let parent = if parent.is_empty() { "/" } else { parent };
    let parent = if parent.starts_with('/') {
        parent.to_owned()
    } else {
        join("/", parent)
    };
    let new = if new_path.is_empty() {
        parent.clone()
    } else {
        new_path.to_owned()
    };
    let joined = if new.starts_with('/') {
        new
    } else {
        join(&parent, &new)
    };
    if keep {
        keep_slash(new_path, joined)
    } else {
        joined
    }
}

/// LLB's `normalizePath(parent, p, keepSlash)`, applied when an action is marshalled: always
/// cleaned, relative paths under `parent`.
pub(crate) fn llb_normalize(parent: &str, p: &str, keep: bool) -> String {
    let cleaned = clean(p);
    let cleaned = if cleaned.starts_with('/') {
        cleaned
    } else {
        clean(&format!("/{parent}/{cleaned}"))
    };
    if keep {
        keep_slash(p, cleaned)
    } else {
        cleaned
    }
}

/// LLB's `Dir`: a relative directory is joined to the previous one, an absolute one replaces
/// it as written.
pub(crate) fn state_dir(previous: &str, dir: &str) -> String {
    if dir.starts_with('/') {
        dir.to_owned()
    } else {
        join(if previous.is_empty() { "/" } else { previous }, dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_rules() {
        assert_eq!(clean("/a/../b//c/."), "/b/c");
        assert_eq!(join("/app", "./"), "/app");
        assert_eq!(base("/out/"), "out");
        assert_eq!(normalize("/app", "./", true), "/app/");
        assert_eq!(normalize("/app", "src/.", true), "/app/src/.");
        assert_eq!(normalize("/", "/x//y", false), "/x//y");
        assert_eq!(llb_normalize("/app", "/x//y/", true), "/x/y/");
        assert_eq!(llb_normalize("/", "/", true), "/");
        assert_eq!(state_dir("/app", "sub"), "/app/sub");
    }
}
