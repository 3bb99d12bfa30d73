//! Parser behaviour beyond BuildKit's dump cases: heredocs, directives, positions, warnings.

use inlay_frontend_dockerfile::parser::{self, Arg, Position};

#[test]
fn heredocs_are_read_after_their_line() {
    let src = "FROM a\nRUN <<EOF\necho $HOME\nEOF\nRUN <<-'END' cat\n\t\tquoted\n\tEND\nCOPY <<one <<\"two\" /dest/\n1\none\n2\ntwo\nRUN [\"echo\", \"<<EOF\"]\n";
    let df = parser::parse(src.as_bytes(), "Dockerfile").unwrap();
    assert_eq!(df.nodes.len(), 5);
    let run = &df.nodes[1];
    assert_eq!(run.heredocs.len(), 1);
    assert_eq!(run.heredocs[0].name, "EOF");
    assert_eq!(run.heredocs[0].content, "echo $HOME\n");
    assert!(run.heredocs[0].expand);
    assert_eq!((run.range.start.line, run.range.end.line), (2, 4));

    let chomped = &df.nodes[2].heredocs[0];
    assert_eq!(
        (chomped.name.as_str(), chomped.chomp, chomped.expand),
        ("END", true, false)
    );
    assert_eq!(chomped.content, "\t\tquoted\n");

    let copy = &df.nodes[3];
    let names: Vec<&str> = copy.heredocs.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["one", "two"]);
    assert_eq!(copy.heredocs[1].content, "2\n");
    assert!(!copy.heredocs[1].expand);

    // JSON form never reads heredocs.
    assert!(df.nodes[4].heredocs.is_empty());
    assert_eq!(
        df.nodes[4].range.start,
        Position {
            line: 13,
            column: 1
        }
    );
}

#[test]
fn onbuild_triggers_can_carry_heredocs() {
    let df = parser::parse(b"FROM a\nONBUILD RUN <<EOF\nx\nEOF\n", "Dockerfile").unwrap();
    assert_eq!(df.nodes[1].heredocs.len(), 1);
    assert!(matches!(&df.nodes[1].args[0], Arg::Command(child) if child.name == "RUN"));
}

#[test]
fn directives_only_at_the_top() {
    let df = parser::parse(
        b"# syntax=docker/dockerfile:1\n# check=skip=all\n# escape=`\nFROM a\nRUN echo `\n  hi\n",
        "D",
    )
    .unwrap();
    assert_eq!(df.directive("syntax"), Some("docker/dockerfile:1"));
    assert_eq!(df.directive("check"), Some("skip=all"));
    assert_eq!(df.escape, '`');
    assert_eq!(df.dump(), "(from \"a\")\n(run \"echo   hi\")\n");

    let df = parser::parse(b"FROM a\n# escape=`\nRUN echo \\\n  hi\n", "D").unwrap();
    assert_eq!(df.escape, '\\');
    assert!(df.directives.is_empty());
}

#[test]
fn empty_continuation_lines_warn() {
    let df = parser::parse(b"FROM a\nRUN a \\\n\n  b\n", "D").unwrap();
    assert_eq!(df.dump(), "(from \"a\")\n(run \"a   b\")\n");
    assert_eq!(df.warnings.len(), 1);
    assert_eq!(df.warnings[0].line, 4);
}

#[test]
fn comments_are_kept_for_the_next_instruction() {
    let df = parser::parse(b"# the base\nFROM a\n#\n# my arg\nARG X\n", "D").unwrap();
    assert_eq!(df.nodes[0].comments, ["the base"]);
    assert_eq!(df.nodes[1].comments, ["my arg"]);
}

#[test]
fn bom_and_crlf_are_handled() {
    let df = parser::parse(b"\xef\xbb\xbfFROM a\r\nRUN b \\\r\n c\r\n", "D").unwrap();
    assert_eq!(df.dump(), "(from \"a\")\n(run \"b  c\")\n");
}

#[test]
fn unknown_instructions_parse_with_an_empty_argument() {
    let df = parser::parse(b"FROM a\nFOO bar\n", "D").unwrap();
    assert_eq!(df.nodes[1].dump(), "foo \"\"");
}

#[test]
fn very_long_lines_are_rejected_like_buildkit() {
    let mut src = b"FROM a\nRUN ".to_vec();
    src.extend(std::iter::repeat_n(b'x', 70_000));
    let err = parser::parse(&src, "D").unwrap_err();
    assert_eq!(err.line, 2);
}
