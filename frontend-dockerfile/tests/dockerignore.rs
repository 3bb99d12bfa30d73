//! `.dockerignore` semantics, case by case (expectations from moby/patternmatcher's tests and
//! Docker's documentation).

use inlay_frontend_dockerfile::dockerignore::{
    Dockerignore, DockerignoreError, IgnoreFile, read_patterns, select_ignore_file,
};

/// (what the case shows, `.dockerignore` content, path, excluded?)
const CASES: &[(&str, &str, &str, bool)] = &[
    // exact names, anchored at the root
    ("exact file", "foo", "foo", true),
    (
        "exact file is anchored at the root",
        "foo",
        "sub/foo",
        false,
    ),
    ("no partial name match", "foo", "foobar", false),
    ("nested exact path", "a/b", "a/b", true),
    ("nested exact path, other parent", "a/b", "c/a/b", false),
    // leading / and ./
    ("leading slash is dropped", "/foo", "foo", true),
    ("leading ./ is dropped", "./foo", "foo", true),
    ("dot-dot is cleaned", "a/../foo", "foo", true),
    ("trailing slash is cleaned", "foo/", "foo", true),
    ("path given with ./ is cleaned", "foo", "./foo", true),
    // comments and spaces
    ("comment line is ignored", "# foo\nbar", "foo", false),
    ("only # at column 0 starts a comment", " #foo", "#foo", true),
    ("trailing spaces are trimmed", "foo   ", "foo", true),
    ("leading spaces are trimmed", "   foo", "foo", true),
    ("blank lines are skipped", "\n\n  \nfoo\n", "foo", true),
    ("CRLF line endings", "foo\r\nbar\r\n", "bar", true),
    // single star and question mark
    ("star within one element", "*.log", "a.log", true),
    ("star does not cross slashes", "*.log", "dir/a.log", false),
    ("star in a directory element", "*/a.log", "dir/a.log", true),
    (
        "star in a directory element, too deep",
        "*/a.log",
        "x/dir/a.log",
        false,
    ),
    ("question mark is one char", "a?c", "abc", true),
    ("question mark is not a slash", "a?c", "a/c", false),
    ("question mark needs a char", "a?c", "ac", false),
    // double star
    ("**/ prefix matches at the root", "**/foo", "foo", true),
    ("**/ prefix matches at any depth", "**/foo", "a/b/foo", true),
    ("**/ prefix keeps the name whole", "**/foo", "a/xfoo", false),
    (
        "trailing /** matches everything below",
        "dir/**",
        "dir/a/b",
        true,
    ),
    ("trailing /** is a prefix", "dir/**", "dirx", false),
    ("middle /**/ spans zero elements", "a/**/b", "a/b", true),
    ("middle /**/ spans many elements", "a/**/b", "a/x/y/b", true),
    ("**/*.go with star", "**/*.go", "pkg/x/main.go", true),
    ("**/*.go at the root", "**/*.go", "main.go", true),
    ("** alone matches everything", "**", "any/thing", true),
    // classes and escapes
    ("character class", "[abc].txt", "b.txt", true),
    ("character class miss", "[abc].txt", "d.txt", false),
    ("character range", "file[0-9]", "file7", true),
    ("negated class", "file[^0-9]", "filex", true),
    ("negated class miss", "file[^0-9]", "file1", false),
    ("escaped star is literal", "a\\*b", "a*b", true),
    ("escaped star does not glob", "a\\*b", "axb", false),
    ("dot is literal", "a.b", "axb", false),
    // directories and parents
    (
        "directory excludes its content",
        "build",
        "build/out/app",
        true,
    ),
    ("directory pattern with star", "b*", "build/out", true),
    (
        "file under excluded parent at depth",
        "a/b",
        "a/b/c/d",
        true,
    ),
    // exceptions and order
    (
        "exception re-includes",
        "*.md\n!README.md",
        "README.md",
        false,
    ),
    (
        "exception leaves others excluded",
        "*.md\n!README.md",
        "CHANGES.md",
        true,
    ),
    (
        "last match wins: exclude after exception",
        "!README.md\n*.md",
        "README.md",
        true,
    ),
    (
        "exception below an excluded directory",
        "docs\n!docs/keep.md",
        "docs/keep.md",
        false,
    ),
    (
        "excluded directory still hides siblings",
        "docs\n!docs/keep.md",
        "docs/other.md",
        true,
    ),
    (
        "re-exclusion after exception",
        "docs\n!docs/keep\ndocs/keep/tmp",
        "docs/keep/tmp/x",
        true,
    ),
    (
        "exception with double star",
        "**\n!src/**",
        "src/main.rs",
        false,
    ),
    (
        "everything but an exception",
        "*\n!Dockerfile",
        "Dockerfile",
        false,
    ),
    (
        "everything but an exception, others",
        "*\n!Dockerfile",
        "main.go",
        true,
    ),
    (
        "exception with leading slash",
        "*.txt\n!/keep.txt",
        "keep.txt",
        false,
    ),
    (
        "exception with spaces after !",
        "*.txt\n! keep.txt",
        "keep.txt",
        false,
    ),
    // the root itself
    ("context root is never excluded", "*", ".", false),
    ("BOM at the start is ignored", "\u{feff}foo", "foo", true),
];

#[test]
fn dockerignore_table() {
    assert!(CASES.len() >= 40);
    let mut failures = Vec::new();
    for (what, content, path, excluded) in CASES {
        let ignore = Dockerignore::parse(content.as_bytes()).unwrap();
        if ignore.is_excluded(path) != *excluded {
            failures.push(format!(
                "{what}: {content:?} vs {path:?}: expected excluded={excluded}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn reads_patterns_like_ignorefile() {
    let patterns = read_patterns(b"# c\n/a/\n!./b\n  c  \n\n../d\n/\n");
    assert_eq!(patterns, ["a", "!b", "c", "../d", "/"]);
}

#[test]
fn malformed_patterns_are_errors() {
    assert_eq!(
        Dockerignore::parse(b"!\n"),
        Err(DockerignoreError::LoneExclamation)
    );
    assert!(matches!(
        Dockerignore::parse(b"a[\n"),
        Err(DockerignoreError::BadPattern { .. })
    ));
    assert!(matches!(
        Dockerignore::parse(b"[]a]\n"),
        Err(DockerignoreError::BadPattern { .. })
    ));
    assert!(matches!(
        Dockerignore::parse(b"a\\\n"),
        Err(DockerignoreError::BadPattern { .. })
    ));
    assert!(matches!(
        Dockerignore::parse(b"[z-a]\n"),
        Err(DockerignoreError::BadPattern { .. })
    ));
}

#[test]
fn older_matches_checks_parents_at_pattern_depth_only() {
    let ignore = Dockerignore::new(&["a/*"]).unwrap();
    assert!(ignore.matches("a/b/c"));
    let ignore = Dockerignore::new(&["*"]).unwrap();
    assert!(ignore.matches("a/b/c"));
    assert!(!ignore.has_exceptions());
    assert!(Dockerignore::new(&["a", "!b"]).unwrap().has_exceptions());
}

#[test]
fn dockerfile_specific_ignore_file_wins() {
    let both = |p: &str| p == ".dockerignore" || p == "build/app.Dockerfile.dockerignore";
    assert_eq!(
        select_ignore_file("build/app.Dockerfile", &both),
        Some(IgnoreFile::BesideDockerfile(
            "build/app.Dockerfile.dockerignore".into()
        ))
    );
    let root_only = |p: &str| p == ".dockerignore";
    assert_eq!(
        select_ignore_file("Dockerfile", &root_only),
        Some(IgnoreFile::ContextRoot)
    );
    assert_eq!(select_ignore_file("Dockerfile", &|_| false), None);
}
