//! Properties: no input makes the parser, the lexer or the `.dockerignore` matcher panic, and
//! parsing is stable (a dump re-parses to the same instructions where the dump is itself a
//! Dockerfile line, i.e. simple shell-form instructions).

use inlay_frontend_dockerfile::dockerignore::Dockerignore;
use inlay_frontend_dockerfile::shell::Lexer;
use inlay_frontend_dockerfile::{instructions, parser, stages};
use proptest::prelude::*;

/// Text biased towards Dockerfile syntax so the interesting paths are reached.
fn dockerfile_text() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "FROM ",
        "RUN ",
        "COPY ",
        "ADD ",
        "ENV ",
        "ARG ",
        "LABEL ",
        "ONBUILD ",
        "HEALTHCHECK ",
        "CMD ",
        "SHELL ",
        "WORKDIR ",
        "EXPOSE ",
        "VOLUME ",
        "USER ",
        "STOPSIGNAL ",
        "MAINTAINER ",
        "ENTRYPOINT ",
        "\n",
        "\\\n",
        "`\n",
        " ",
        "\t",
        "#",
        "# escape=`\n",
        "# syntax=x\n",
        "<<",
        "<<-",
        "EOF",
        "'",
        "\"",
        "[",
        "]",
        ",",
        "=",
        "--mount=",
        "--from=",
        "type=cache",
        "$",
        "${",
        "}",
        ":-",
        "%%",
        "##",
        "/",
        "AS ",
        "a",
        "0",
        "\r",
        "\u{feff}",
        "é",
        "\u{a0}",
        "--",
    ]);
    prop::collection::vec(
        prop_oneof![atoms.prop_map(str::to_owned), any::<String>()],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

fn word_text() -> impl Strategy<Value = String> {
    let atoms = prop::sample::select(vec![
        "$", "{", "}", ":", "-", "+", "?", "#", "%", "/", "\\", "'", "\"", "a", "V", "*", " ",
        "<<", "\n", "0", "é",
    ]);
    prop::collection::vec(
        prop_oneof![atoms.prop_map(str::to_owned), any::<String>()],
        0..30,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parsing_never_panics(text in dockerfile_text()) {
        if let Ok(df) = parser::parse(text.as_bytes(), "Dockerfile") {
            let _ = df.dump();
            if let Ok(parsed) = instructions::parse(&df) {
                let _ = stages::resolve(&df, &parsed, &stages::BuildOptions::default());
            }
        }
    }

    #[test]
    fn parsing_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parser::parse(&bytes, "Dockerfile").map(|df| instructions::parse(&df).is_ok());
    }

    #[test]
    fn lexing_never_panics(word in word_text(), value in word_text()) {
        let env = vec![("V".to_owned(), value)];
        for escape in ['\\', '`'] {
            let mut lexer = Lexer::new(escape);
            let _ = lexer.process_word(&word, &env);
            let _ = lexer.process_words(&word, &env);
            lexer.raw_quotes = true;
            lexer.raw_escapes = true;
            lexer.skip_unset_env = true;
            let _ = lexer.process_words(&word, &env);
        }
    }

    #[test]
    fn dockerignore_never_panics(content in word_text(), path in word_text()) {
        if let Ok(ignore) = Dockerignore::parse(content.as_bytes()) {
            let _ = ignore.is_excluded(&path);
            let _ = ignore.matches(&path);
        }
    }

    #[test]
    fn simple_run_lines_round_trip(words in prop::collection::vec("[a-z0-9]{1,8}", 1..6)) {
        let line = format!("FROM a\nRUN {}\n", words.join(" "));
        let df = parser::parse(line.as_bytes(), "D").unwrap();
        let again = parser::parse(df.nodes[1].original.as_bytes(), "D").unwrap();
        prop_assert_eq!(df.nodes[1].dump(), again.nodes[0].dump());
    }

    #[test]
    fn exclusion_then_exception_round_trips(name in "[a-z]{1,8}") {
        let ignore = Dockerignore::new(&["*".to_owned(), format!("!{name}")]).unwrap();
        prop_assert!(!ignore.is_excluded(&name));
        let other = format!("{name}x");
        prop_assert!(ignore.is_excluded(&other));
    }
}

/// Inputs that would exhaust the call stack of a naively recursive implementation; BuildKit's Go
/// stack grows, ours must not overflow either. Run on a small thread stack to be sure.
#[test]
fn deep_inputs_do_not_overflow_the_stack() {
    std::thread::Builder::new()
        .stack_size(1 << 20)
        .spawn(|| {
            let env = vec![("V".to_owned(), "a".repeat(2000))];
            let lexer = Lexer::new('\\');
            let nested = format!("{}x{}", "${a:-".repeat(20_000), "}".repeat(20_000));
            assert!(lexer.process_word(&nested, &env).is_err());
            let stars = format!("${{V#{}}}", "*a".repeat(1_000));
            // Shortest prefix: each star takes nothing, so 1000 of the 2000 `a` go.
            assert_eq!(lexer.process_word(&stars, &env).unwrap().len(), 1000);
            let stars = format!("${{V#{}}}", "*a".repeat(20_000));
            assert_eq!(lexer.process_word(&stars, &env).unwrap().len(), 2000);
            let stars = format!("${{V//{}/x}}", "?*".repeat(500));
            assert!(lexer.process_word(&stars, &env).is_ok());

            let onbuild = format!("FROM a\n{}RUN x\n", "ONBUILD ".repeat(7_000));
            assert!(parser::parse(onbuild.as_bytes(), "D").is_err());

            let pattern = "*a".repeat(2_000);
            let ignore = Dockerignore::new(&[pattern]).unwrap();
            assert!(ignore.is_excluded(&"a".repeat(3_000)));
            assert!(!ignore.is_excluded(&"a".repeat(1_000)));
        })
        .unwrap()
        .join()
        .unwrap();
}
