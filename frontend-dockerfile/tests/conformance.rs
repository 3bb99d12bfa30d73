//! BuildKit's own parser and lexer test data (`/work/shared/conformance`), read from disk so a
//! case added there is tested with no code change.

use std::collections::BTreeMap;
use std::path::PathBuf;

use inlay_frontend_dockerfile::parser;
use inlay_frontend_dockerfile::shell::Lexer;

fn shared() -> PathBuf {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/conformance");
    PathBuf::from(path)
        .canonicalize()
        .expect("the shared conformance folder sits beside the workspace")
}

fn case_dirs(folder: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(shared().join(folder))
        .expect("the conformance folder is readable")
        .map(|e| e.expect("the conformance folder is readable").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn parser_dumps_match_buildkit_byte_for_byte() {
    let dirs = case_dirs("buildkit-dockerfile-parser");
    assert!(
        dirs.len() >= 33,
        "expected the 33 BuildKit cases, found {}",
        dirs.len()
    );
    let mut failures = Vec::new();
    for dir in &dirs {
        let source = std::fs::read(dir.join("Dockerfile")).unwrap();
        let expected = std::fs::read_to_string(dir.join("result")).unwrap();
        match parser::parse(&source, "Dockerfile") {
            Ok(df) if df.dump() == expected => {}
            Ok(df) => failures.push(format!(
                "{}:\n--- expected\n{expected}--- got\n{}",
                dir.display(),
                df.dump()
            )),
            Err(e) => failures.push(format!("{}: {e}", dir.display())),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn negative_parser_cases_fail_with_a_located_error() {
    let dirs = case_dirs("buildkit-dockerfile-parser-negative");
    assert!(dirs.len() >= 4);
    for dir in &dirs {
        let source = std::fs::read(dir.join("Dockerfile")).unwrap();
        let err = parser::parse(&source, "Dockerfile")
            .expect_err(&format!("{} must not parse", dir.display()));
        let text = err.to_string();
        assert!(text.starts_with("Dockerfile:"), "{text}");
        assert!(err.line >= 1, "{text}");
    }
}

fn env_var_test_env() -> BTreeMap<String, String> {
    [
        ("PWD", "/home"),
        ("SHELL", "bash"),
        ("KOREAN", "한국어"),
        ("NULL", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

#[test]
fn lexer_passes_every_unix_line_of_env_var_test() {
    let text = std::fs::read_to_string(shared().join("buildkit-shell-lexer/envVarTest")).unwrap();
    let env = env_var_test_env();
    let lexer = Lexer::new('\\');
    let mut checked = 0;
    let mut failures = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.trim().split('|').collect();
        assert_eq!(fields.len(), 3, "line {}: {line}", number + 1);
        let (platform, input, expected) = (fields[0].trim(), fields[1].trim(), fields[2].trim());
        if platform == "W" {
            continue;
        }
        checked += 1;
        match (lexer.process_word(input, &env), expected) {
            (Err(_), "error") => {}
            (Ok(got), want) if got == want => {}
            (got, want) => failures.push(format!(
                "line {}: {input:?} want {want:?} got {got:?}",
                number + 1
            )),
        }
    }
    assert!(checked > 150, "only {checked} lines checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn lexer_passes_every_line_of_words_test() {
    let text = std::fs::read_to_string(shared().join("buildkit-shell-lexer/wordsTest")).unwrap();
    // BuildKit's test also loops over a raw-quotes mode, but re-reads an exhausted file there, so
    // only the plain mode is really exercised; so it is here.
    {
        let lexer = Lexer::new('\\');
        let mut env: Vec<(String, String)> = Vec::new();
        let mut failures = Vec::new();
        for (number, line) in text.lines().enumerate() {
            if line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix("ENV ") {
                let rest = rest.trim_start_matches(' ');
                let (k, v) = rest.split_once('=').unwrap_or((rest, ""));
                env.push((k.to_owned(), v.to_owned()));
                continue;
            }
            let (input, expected) = line.split_once('|').unwrap();
            let input = input.trim();
            let expected: Vec<&str> = expected.trim_start_matches(' ').split(',').collect();
            let got = lexer
                .process_words(input, &env)
                .unwrap_or_else(|_| vec!["error".to_owned()]);
            if got != expected {
                failures.push(format!(
                    "line {}: {input:?} want {expected:?} got {got:?}",
                    number + 1
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
