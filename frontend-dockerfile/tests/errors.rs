//! Errors name the file, line and column, quote the line, and suggest what was meant.

use inlay_frontend_dockerfile::{DockerfileError, ErrorKind, instructions, parser};

fn parse_all(source: &str) -> Result<instructions::Instructions, DockerfileError> {
    instructions::parse_bytes(source.as_bytes(), "Dockerfile")
}

#[test]
fn unknown_instruction_with_suggestion() {
    let src = "FROM alpine\n\n# build\n\n\nRUN true\nRUNN echo hi\n";
    let err = parse_all(src).unwrap_err();
    assert_eq!((err.line, err.column), (7, 1));
    assert_eq!(err.source_line, "RUNN echo hi");
    let text = err.to_string();
    assert!(
        text.starts_with("Dockerfile:7:1: unknown instruction: RUNN (did you mean RUN?)\n"),
        "{text}"
    );
    assert!(text.contains(" 7 | RUNN echo hi\n"), "{text}");
    assert!(text.ends_with("   | ^"), "{text}");
}

#[test]
fn suggestion_keeps_the_users_case() {
    let err = parse_all("FROM alpine\ncopyy a b\n").unwrap_err();
    assert_eq!(
        err.kind,
        ErrorKind::UnknownInstruction {
            name: "copyy".into(),
            suggestion: Some("copy".into())
        }
    );
    let err = parse_all("FROM alpine\nFOOBAR x\n").unwrap_err();
    assert_eq!(
        err.to_string().lines().next().unwrap(),
        "Dockerfile:2:1: unknown instruction: FOOBAR"
    );
}

#[test]
fn indented_instruction_points_at_its_column() {
    let err = parse_all("FROM alpine\n    WROKDIR /app\n").unwrap_err();
    assert_eq!((err.line, err.column), (2, 5));
    assert!(err.to_string().contains("(did you mean WORKDIR?)"));
}

#[test]
fn unknown_flag_points_at_the_flag() {
    let err = parse_all("FROM alpine\nCOPY --chownn=1 a b\n").unwrap_err();
    assert_eq!((err.line, err.column), (2, 6));
    assert_eq!(
        err.to_string().lines().next().unwrap(),
        "Dockerfile:2:6: unknown flag: --chownn (did you mean chown?)"
    );
}

#[test]
fn mount_errors_suggest_types_and_keys() {
    let err = parse_all("FROM alpine\nRUN --mount=from=$X true\n").unwrap_err();
    assert!(
        err.to_string()
            .contains("'from' doesn't support variable expansion"),
        "{err}"
    );
    let df = instructions::parse_bytes(
        b"FROM a\nRUN --mount=type=cahce,target=/c true\n",
        "Dockerfile",
    )
    .unwrap();
    let instructions::Instruction::Run(run) = &df.stages[0].instructions[0].instruction else {
        panic!("expected RUN");
    };
    let err = run.mounts(&mut |v| Ok(v.to_owned())).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported mount type \"cahce\" (did you mean cache?)"
    );
}

#[test]
fn parser_errors_are_located() {
    let err = parser::parse(b"FROM a\nCMD [\"a\", 1]\n", "Dockerfile.dev").unwrap_err();
    assert_eq!(
        (err.file.as_str(), err.line, err.column),
        ("Dockerfile.dev", 2, 1)
    );
    assert_eq!(err.kind, ErrorKind::JsonNotStrings);

    let err = parser::parse(b"FROM a\nRUN <<EOF\necho hi\n", "Dockerfile").unwrap_err();
    assert!(matches!(err.kind, ErrorKind::UnterminatedHeredoc { .. }));
    assert_eq!(err.line, 2);

    let err = parser::parse(b"# escape=x\nFROM a\n", "Dockerfile").unwrap_err();
    assert_eq!(err.line, 1);
    assert!(err.to_string().contains("invalid escape token 'x'"));

    let err = parser::parse(b"# escape=`\n# escape=\\\nFROM a\n", "Dockerfile").unwrap_err();
    assert_eq!(err.line, 2);
    assert!(
        err.to_string()
            .contains("only one escape parser directive can be used")
    );

    let err = parser::parse(b"FROM a\nENV PATH\n", "Dockerfile").unwrap_err();
    assert_eq!(
        (
            err.line,
            err.to_string().contains("ENV must have two arguments")
        ),
        (2, true)
    );

    let err = parser::parse(b"FROM a\nENV a=b c\n", "Dockerfile").unwrap_err();
    assert!(err.to_string().contains("can't find = in \"c\""), "{err}");

    let err = parser::parse(b"\n# only comments\n\n", "Dockerfile").unwrap_err();
    assert_eq!(err.kind, ErrorKind::NoInstructions);
}

#[test]
fn instruction_errors_name_their_line() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "FROM a\nCOPY onlyone\n",
            2,
            "COPY requires at least two arguments",
        ),
        (
            "FROM a b\n",
            1,
            "FROM requires either one or three arguments",
        ),
        ("FROM a AS 1abc\n", 1, "invalid name for build stage"),
        (
            "FROM a\nWORKDIR\n",
            2,
            "WORKDIR requires exactly one argument",
        ),
        (
            "FROM a\nSHELL sh -c\n",
            2,
            "SHELL requires the arguments to be in JSON form",
        ),
        (
            "FROM a\nONBUILD FROM b\n",
            2,
            "FROM isn't allowed as an ONBUILD trigger",
        ),
        (
            "FROM a\nHEALTHCHECK --interval=1x CMD x\n",
            2,
            "invalid duration",
        ),
        (
            "FROM a\nHEALTHCHECK --retries=-1 CMD x\n",
            2,
            "--retries cannot be negative",
        ),
        (
            "FROM a\nRUN --network=bridge x\n",
            2,
            "invalid network mode",
        ),
        (
            "FROM a\nCOPY --link=maybe a b\n",
            2,
            "expecting boolean value",
        ),
        (
            "FROM a\nCOPY a <<EOF\nx\nEOF\n",
            2,
            "cannot accept a heredoc as a destination",
        ),
        ("RUN x\n", 1, "no build stage in current context"),
    ];
    for (src, line, needle) in cases {
        let err = parse_all(src).unwrap_err();
        assert_eq!(err.line, *line, "{src}: {err}");
        assert!(err.to_string().contains(needle), "{src}: {err}");
    }
}
