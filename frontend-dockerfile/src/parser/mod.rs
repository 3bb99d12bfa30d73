//! BuildKit's generic Dockerfile AST (`frontend/dockerfile/parser`): one [`Node`] per
//! instruction, with its original text, `--flags`, arguments and heredocs.
//!
//! The reading rules are BuildKit's, including its quirks: parser directives only at the top,
//! comments dropped (also inside continuations), the escape character at the end of a line
//! continuing it, empty continuation lines skipped with a warning, a continuation running into
//! the end of the file, heredoc bodies read after RUN/COPY/ADD lines that open them, JSON (exec)
//! form with a silent fall-back to the shell form when the JSON is invalid. Instruction names
//! are not checked here; [`crate::instructions`] does that.
//!
//! [`Dockerfile::dump`] prints the AST exactly as BuildKit's `Node.Dump` does, which is what the
//! conformance suite compares.

mod directives;
mod heredoc;
pub(crate) mod line;

pub use directives::Directive;
pub use heredoc::{chomp_heredoc_content, parse_heredoc};

use crate::error::{DockerfileError, ErrorKind};
use crate::go_quote;

/// A place in the source: 1-based line and 1-based column (in characters).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
}

/// The source text an instruction spans, from its first character to the end of its last line
/// (heredoc bodies included).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SourceRange {
    /// Where the instruction starts.
    pub start: Position,
    /// Where its last line ends.
    pub end: Position,
}

/// A heredoc attached to an instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter, with quotes removed.
    pub name: String,
    /// The file descriptor written before `<<` (`3<<EOF`), 0 when none.
    pub file_descriptor: u32,
    /// Whether `$VARS` in the body are expanded (the delimiter was not quoted).
    pub expand: bool,
    /// `<<-`: leading tabs are removed from the body.
    pub chomp: bool,
    /// The body, each line with its line ending, without the delimiter line.
    pub content: String,
}

/// One argument of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// A word, as BuildKit's parser split it.
    Word(String),
    /// The instruction an `ONBUILD` carries.
    Command(Box<Node>),
}

/// One instruction as BuildKit's parser sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The instruction name as written (`RUN`, `run`, `Copy`...).
    pub name: String,
    /// The logical line: continuations joined, comments dropped.
    pub original: String,
    /// The leading `--flags`, quotes and escapes processed.
    pub flags: Vec<String>,
    /// The arguments.
    pub args: Vec<Arg>,
    /// Whether the arguments were given in JSON (exec) form.
    pub json: bool,
    /// Heredocs opened on this line, with their bodies.
    pub heredocs: Vec<Heredoc>,
    /// The comment lines right above the instruction, without `#`.
    pub comments: Vec<String>,
    /// Where the instruction is.
    pub range: SourceRange,
}

impl Node {
    /// BuildKit's `Node.Dump` for this node: `run ["--flag"] "arg" ...`.
    pub fn dump(&self) -> String {
        let mut out = self.name.to_lowercase();
        if !self.flags.is_empty() {
            out.push(' ');
            out.push_str(&go_quote::quote_list(&self.flags));
        }
        for arg in &self.args {
            out.push(' ');
            match arg {
                Arg::Word(word) => out.push_str(&go_quote::quote(word)),
                Arg::Command(child) => {
                    out.push('(');
                    out.push_str(&child.dump());
                    out.push(')');
                }
            }
        }
        out.trim().to_owned()
    }

    /// The words of the arguments, with an `ONBUILD` trigger flattened to its name and words
    /// (BuildKit's `nodeArgs`).
    pub fn arg_words(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.args.len());
        for arg in &self.args {
            match arg {
                Arg::Word(word) => out.push(word.clone()),
                Arg::Command(child) => {
                    out.push(child.name.clone());
                    out.extend(child.arg_words());
                }
            }
        }
        out
    }

    /// Whether heredocs on this line are read (RUN, COPY, ADD in shell form, also as ONBUILD
    /// triggers).
    fn can_contain_heredoc(&self) -> bool {
        let mut node = self;
        if node.name.eq_ignore_ascii_case("onbuild") {
            if let Some(Arg::Command(child)) = node.args.first() {
                node = child;
            }
        }
        let lower = node.name.to_lowercase();
        matches!(lower.as_str(), "add" | "copy" | "run") && !node.json
    }
}

/// A warning BuildKit's parser gives without failing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// The message.
    pub message: String,
    /// The line it is about (the last line of the instruction).
    pub line: usize,
}

/// A parsed Dockerfile: the instruction nodes plus what the parser learned on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The file name the caller gave, used in error messages.
    pub file_name: String,
    /// The instructions, in order.
    pub nodes: Vec<Node>,
    /// The parser directives found at the top.
    pub directives: Vec<Directive>,
    /// The escape character in force (`\` unless `# escape=` said otherwise).
    pub escape: char,
    /// Non-fatal findings, such as empty continuation lines.
    pub warnings: Vec<Warning>,
    lines: Vec<String>,
}

impl Dockerfile {
    /// The AST in BuildKit's dump format, one `(instruction ...)` per line, ending with a newline.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            out.push('(');
            out.push_str(&node.dump());
            out.push_str(")\n");
        }
        out
    }

    /// The text of a 1-based source line without its line ending (empty when out of range).
    pub fn source_line(&self, line: usize) -> &str {
        line.checked_sub(1)
            .and_then(|i| self.lines.get(i))
            .map_or("", String::as_str)
    }

    /// An error located at `position` in this file.
    pub fn error_at(&self, position: Position, kind: ErrorKind) -> DockerfileError {
        located(&self.file_name, &self.lines, position, kind)
    }

    /// The value of a parser directive (`syntax`, `escape`, `check`), if present.
    pub fn directive(&self, name: &str) -> Option<&str> {
        self.directives
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.value.as_str())
    }
}

fn located(file: &str, lines: &[String], position: Position, kind: ErrorKind) -> DockerfileError {
    let source_line = position
        .line
        .checked_sub(1)
        .and_then(|i| lines.get(i))
        .cloned()
        .unwrap_or_default();
    DockerfileError {
        file: file.to_owned(),
        line: position.line,
        column: position.column.max(1),
        source_line,
        kind,
    }
}

/// The longest line Go's `bufio.Scanner` reads with its default buffer, line ending included.
const MAX_LINE: usize = 64 * 1024;

fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Strips a trailing escape character (and the spaces/tabs after it) that continues the line,
/// unless it is itself escaped. Returns the line and whether it ends the instruction.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    if let Some(before) = trimmed.strip_suffix(escape) {
        if before.is_empty() || !before.ends_with(escape) {
            return (before, false);
        }
    }
    (line, true)
}

fn leading_columns(line: &str) -> usize {
    line.chars().take_while(|c| c.is_whitespace()).count() + 1
}

/// Parses a Dockerfile. `source` is the file's bytes (invalid UTF-8 is replaced by U+FFFD);
/// `file_name` only names the file in errors.
///
/// ```
/// let df = inlay_frontend_dockerfile::parser::parse(b"FROM alpine\nRUN echo \\\n  hi\n", "Dockerfile")?;
/// assert_eq!(df.dump(), "(from \"alpine\")\n(run \"echo   hi\")\n");
/// # Ok::<(), inlay_frontend_dockerfile::DockerfileError>(())
/// ```
#[allow(clippy::too_many_lines)] // one loop, as BuildKit's Parse, kept whole to stay comparable
pub fn parse(source: &[u8], file_name: &str) -> Result<Dockerfile, DockerfileError> {
    let text = String::from_utf8_lossy(source);
    let raw_lines: Vec<&str> = text.split_inclusive('\n').collect();
    let lines: Vec<String> = raw_lines
        .iter()
        .map(|l| trim_newline(l).to_owned())
        .collect();
    let fail = |line: usize, column: usize, kind: ErrorKind| {
        located(file_name, &lines, Position { line, column }, kind)
    };
    for (i, raw) in raw_lines.iter().enumerate() {
        let limit = if raw.ends_with('\n') {
            MAX_LINE
        } else {
            MAX_LINE - 1
        };
        if raw.len() > limit {
            return Err(fail(i + 1, 1, ErrorKind::LineTooLong));
        }
    }

    let mut escape = '\\';
    let mut directive_parser = directives::DirectiveParser::default();
    let mut nodes = Vec::new();
    let mut warnings = Vec::new();
    let mut comments: Vec<String> = Vec::new();
    // `current` counts the lines consumed so far, so after reading a line it is its number.
    let mut current = 0;
    let mut next_line = 0;

    while next_line < raw_lines.len() {
        let mut first = raw_lines[next_line];
        next_line += 1;
        if current == 0 {
            first = first.strip_prefix('\u{feff}').unwrap_or(first);
        }
        if is_comment(first) {
            // BuildKit drops the first byte of the line, which is `#` only when the comment is
            // not indented.
            let mut chars = first.chars();
            chars.next();
            let comment = chars.as_str().trim();
            if comment.is_empty() {
                comments.clear();
            } else {
                comments.push(comment.to_owned());
            }
        }
        let token = trim_newline(first).trim_start();
        match directive_parser.parse_line(token, current + 1) {
            Ok(Some(directive)) => {
                if directive.name == "escape" {
                    escape = match directive.value.as_str() {
                        "`" => '`',
                        "\\" => '\\',
                        other => {
                            let value = other.to_owned();
                            return Err(fail(current + 1, 1, ErrorKind::InvalidEscape { value }));
                        }
                    };
                }
                comments.pop();
            }
            Ok(None) => {}
            Err(kind) => return Err(fail(current + 1, 1, kind)),
        }
        let token = if is_comment(token) { "" } else { token };
        current += 1;
        let start_line = current;
        let start_column = leading_columns(first);

        let (head, mut end_of_line) = trim_continuation(token, escape);
        if end_of_line && head.is_empty() {
            continue;
        }
        let mut logical = head.to_owned();
        let mut has_empty_continuation = false;
        while !end_of_line && next_line < raw_lines.len() {
            let raw = raw_lines[next_line];
            next_line += 1;
            current += 1;
            if is_comment(raw) {
                continue;
            }
            let piece = trim_newline(raw);
            if piece.trim_start().is_empty() {
                has_empty_continuation = true;
                continue;
            }
            let (piece, eol) = trim_continuation(piece, escape);
            end_of_line = eol;
            logical.push_str(piece);
        }
        if has_empty_continuation {
            warnings.push(Warning {
                message: format!("empty continuation line found in: {logical}"),
                line: current,
            });
        }

        let mut node = line::node_from_line(&logical, escape, std::mem::take(&mut comments))
            .map_err(|kind| fail(start_line, start_column, kind))?;

        if node.can_contain_heredoc() && logical.contains("<<") {
            let heredocs = heredoc::heredocs_from_line(&logical)
                .map_err(|e| fail(start_line, start_column, ErrorKind::from(e)))?;
            for mut doc in heredocs {
                let mut terminated = false;
                while next_line < raw_lines.len() {
                    let raw = raw_lines[next_line];
                    next_line += 1;
                    current += 1;
                    let mut candidate = trim_newline(raw);
                    if doc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == doc.name {
                        terminated = true;
                        break;
                    }
                    doc.content.push_str(raw);
                }
                if !terminated {
                    let delimiter = doc.name.clone();
                    return Err(fail(
                        start_line,
                        start_column,
                        ErrorKind::UnterminatedHeredoc { delimiter },
                    ));
                }
                node.heredocs.push(doc);
            }
        }

        node.range = SourceRange {
            start: Position {
                line: start_line,
                column: start_column,
            },
            end: Position {
                line: current,
                column: lines.get(current - 1).map_or(0, |l| l.chars().count()) + 1,
            },
        };
        nodes.push(node);
        comments.clear();
    }

    if nodes.is_empty() {
        return Err(fail(current.max(1), 1, ErrorKind::NoInstructions));
    }
    Ok(Dockerfile {
        file_name: file_name.to_owned(),
        nodes,
        directives: directive_parser.found,
        escape,
        warnings,
        lines,
    })
}
