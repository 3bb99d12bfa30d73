//! Errors that point at a place in a Dockerfile.

use crate::shell::ShellError;

/// A Dockerfile error with its location: `Dockerfile:7:1: unknown instruction: RUNN (did you
/// mean RUN?)` followed by the quoted source line and a caret under the column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {kind}\n{}", self.snippet())]
pub struct DockerfileError {
    /// The file name the caller gave the parser.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// The text of that line, without its line ending.
    pub source_line: String,
    /// What is wrong.
    pub kind: ErrorKind,
}

impl DockerfileError {
    /// The quoted line with a caret under the column, as shown under the message.
    pub fn snippet(&self) -> String {
        let number = self.line.to_string();
        let pad = " ".repeat(number.len());
        let caret_pad: String = self
            .source_line
            .chars()
            .take(self.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        format!(" {number} | {}\n {pad} | {caret_pad}^", self.source_line)
    }
}

/// What is wrong with a Dockerfile. Messages follow BuildKit's wording, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file has no instruction at all (only comments, directives or blank lines).
    #[error("file with no instructions")]
    NoInstructions,
    /// A line is longer than Go's `bufio.Scanner` accepts, which BuildKit inherits.
    #[error("dockerfile line greater than max allowed size of 65535")]
    LineTooLong,
    /// A parser directive appears twice.
    #[error("only one {name} parser directive can be used")]
    DuplicateDirective {
        /// The directive (`syntax`, `escape` or `check`).
        name: String,
    },
    /// `# escape=` names something other than `\` or `` ` ``.
    #[error("invalid escape token '{value}' does not match ` or \\")]
    InvalidEscape {
        /// The value given.
        value: String,
    },
    /// A JSON array with something other than strings in it.
    #[error("when using JSON array syntax, arrays must be comprised of strings only")]
    JsonNotStrings,
    /// `ENV name` / `LABEL name` without a value.
    #[error("{instruction} must have two arguments")]
    MissingValue {
        /// `ENV` or `LABEL`.
        instruction: String,
    },
    /// A `name=value` list with a word lacking `=`.
    #[error(
        "syntax error - can't find = in {}. must be of the form: name=value",
        crate::go_quote::quote(word)
    )]
    MissingEquals {
        /// The word without `=`.
        word: String,
    },
    /// A heredoc whose closing delimiter never comes.
    #[error("unterminated heredoc")]
    UnterminatedHeredoc {
        /// The delimiter looked for.
        delimiter: String,
    },
    /// An instruction name BuildKit does not know.
    #[error("unknown instruction: {name}{}", suggestion_suffix(suggestion.as_deref()))]
    UnknownInstruction {
        /// The name as written.
        name: String,
        /// The closest known instruction, if one is close.
        suggestion: Option<String>,
    },
    /// A `--flag` the instruction does not take.
    #[error("unknown flag: {flag}{}", suggestion_suffix(suggestion.as_deref()))]
    UnknownFlag {
        /// The flag as written, with its dashes.
        flag: String,
        /// The closest flag the instruction takes, if one is close.
        suggestion: Option<String>,
    },
    /// An instruction whose arguments or flags are wrong; the message says how.
    #[error("{message}")]
    Invalid {
        /// BuildKit's message for the problem.
        message: String,
    },
    /// Word expansion failed.
    #[error(transparent)]
    Expansion(Box<ShellError>),
}

impl From<ShellError> for ErrorKind {
    fn from(error: ShellError) -> Self {
        Self::Expansion(Box::new(error))
    }
}

pub(crate) fn suggestion_suffix(suggestion: Option<&str>) -> String {
    suggestion.map_or_else(String::new, |s| format!(" (did you mean {s}?)"))
}

impl ErrorKind {
    /// An [`ErrorKind::Invalid`] with this message.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid {
            message: message.into(),
        }
    }
}
