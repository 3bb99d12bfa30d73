//! Parser directives: `# syntax=`, `# escape=`, `# check=` at the very top of the file.
//!
//! As BuildKit's `DirectiveParser`: directives are read while every line is a `#` comment of the
//! form `# key = value` with a known key; the first other line (blank, comment, instruction)
//! ends them for good. A repeated directive is an error.

use crate::error::ErrorKind;

/// One parser directive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// `syntax`, `escape` or `check`, lower-cased.
    pub name: String,
    /// The value, trimmed.
    pub value: String,
    /// 1-based line.
    pub line: usize,
}

#[derive(Debug, Default)]
pub(crate) struct DirectiveParser {
    done: bool,
    pub(crate) found: Vec<Directive>,
}

impl DirectiveParser {
    /// Looks at one line (already stripped of its line ending); returns the directive it holds.
    pub(crate) fn parse_line(
        &mut self,
        line: &str,
        line_number: usize,
    ) -> Result<Option<&Directive>, ErrorKind> {
        if self.done {
            return Ok(None);
        }
        let Some(rest) = line.strip_prefix('#') else {
            self.done = true;
            return Ok(None);
        };
        let Some((key, value)) = split_directive(rest.trim_start()) else {
            self.done = true;
            return Ok(None);
        };
        let key = key.to_ascii_lowercase();
        if !matches!(key.as_str(), "syntax" | "escape" | "check") {
            self.done = true;
            return Ok(None);
        }
        if self.found.iter().any(|d| d.name == key) {
            return Err(ErrorKind::DuplicateDirective { name: key });
        }
        self.found.push(Directive {
            name: key,
            value: value.to_owned(),
            line: line_number,
        });
        Ok(self.found.last())
    }
}

/// Go's `\s`: the ASCII whitespace of RE2.
fn is_re_space(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{c}' | '\r' | ' ')
}

/// `^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`
fn split_directive(text: &str) -> Option<(&str, &str)> {
    let mut chars = text.char_indices();
    let (_, first) = chars.next()?;
    if !first.is_ascii_alphabetic() {
        return None;
    }
    let key_end = text
        .char_indices()
        .find(|&(_, c)| !c.is_ascii_alphanumeric())
        .map_or(text.len(), |(i, _)| i);
    let key = &text[..key_end];
    let rest = text[key_end..].trim_start_matches(is_re_space);
    let rest = rest.strip_prefix('=')?;
    let value = rest.trim_matches(is_re_space);
    // `.` does not match a newline, and the value must not be empty.
    if value.is_empty() || value.contains('\n') {
        return None;
    }
    Some((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_directives_until_the_first_other_line() {
        let mut p = DirectiveParser::default();
        assert!(
            p.parse_line("# syntax = docker/dockerfile:1", 1)
                .unwrap()
                .is_some()
        );
        assert!(p.parse_line("#escape=`", 2).unwrap().is_some());
        assert!(p.parse_line("# escape=\\", 3).is_err());
        assert!(p.parse_line("# not a directive", 4).unwrap().is_none());
        assert!(p.parse_line("# check=skip=all", 5).unwrap().is_none());
        assert_eq!(p.found.len(), 2);
    }

    #[test]
    fn splits_like_the_regex() {
        assert_eq!(split_directive("escape = ` "), Some(("escape", "`")));
        assert_eq!(split_directive("k=a b"), Some(("k", "a b")));
        assert_eq!(split_directive("k="), None);
        assert_eq!(split_directive("1k=a"), None);
        assert_eq!(split_directive("k-x=a"), None);
    }
}
