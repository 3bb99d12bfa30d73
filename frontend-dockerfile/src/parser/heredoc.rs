//! Heredoc markers (`<<EOF`, `<<-EOF`, `<<"EOF"`, `3<<EOF`) on RUN, COPY and ADD lines.
//!
//! As BuildKit's `heredocsFromLine` / `ParseHeredoc`: the line is split into words with quotes and
//! escapes kept, each word matching `^(\d*)<<(-?)\s*([^<]*)$` names a heredoc, and the delimiter
//! is the word lexed once with and once without raw quotes: if the quote counts differ, part of
//! the delimiter was quoted and the body is not expanded.

use super::Heredoc;
use crate::shell::{EmptyEnv, Lexer, ShellError};

/// The heredocs a line opens, in order (contents still empty).
pub(crate) fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, ShellError> {
    let lexer = Lexer {
        raw_quotes: true,
        raw_escapes: true,
        skip_unset_env: true,
        ..Lexer::new('\\')
    };
    // BuildKit ignores a lexing failure here: such a line simply has no heredocs.
    let words = lexer.process_words(line, &EmptyEnv).unwrap_or_default();
    let mut docs = Vec::new();
    for word in words {
        if let Some(doc) = parse_heredoc(&word)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// `ParseHeredoc`: the heredoc a single word opens, if it is one.
pub fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, ShellError> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let Some(after) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, after) = match after.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, after),
    };
    let rest = after.trim_start_matches(['\t', '\n', '\u{c}', '\r', ' ']);
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    // Go's ParseUint fails on overflow and BuildKit then uses 0.
    let file_descriptor = word[..digits].parse::<u32>().unwrap_or(0);

    let mut lexer = Lexer {
        skip_unset_env: true,
        ..Lexer::new('\\')
    };
    let words = lexer.process_words(rest, &EmptyEnv)?;
    if words.len() != 1 {
        return Ok(None);
    }
    lexer.raw_quotes = true;
    let raw_words = lexer.process_words(rest, &EmptyEnv)?;
    if raw_words.len() != words.len() {
        return Ok(None);
    }
    let count = |w: &str| w.chars().filter(|&c| c == '\'' || c == '"').count();
    let name = words.into_iter().next().unwrap_or_default();
    let expand = count(&name) == count(&raw_words[0]);
    Ok(Some(Heredoc {
        name,
        file_descriptor,
        expand,
        chomp,
        content: String::new(),
    }))
}

/// Removes leading tabs from every line, as `<<-` asks (`ChompHeredocContent`).
pub fn chomp_heredoc_content(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|line| line.trim_start_matches('\t'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_heredoc_words() {
        let doc = parse_heredoc("<<EOF").unwrap().unwrap();
        assert_eq!(
            (doc.name.as_str(), doc.expand, doc.chomp),
            ("EOF", true, false)
        );
        let doc = parse_heredoc("<<-'EOF'").unwrap().unwrap();
        assert_eq!(
            (doc.name.as_str(), doc.expand, doc.chomp),
            ("EOF", false, true)
        );
        let doc = parse_heredoc("3<<\"E\"OF").unwrap().unwrap();
        assert_eq!(
            (doc.name.as_str(), doc.expand, doc.file_descriptor),
            ("EOF", false, 3)
        );
        assert!(parse_heredoc("<<").unwrap().is_none());
        assert!(parse_heredoc("a<<EOF").unwrap().is_none());
        assert!(parse_heredoc("<<'EOF").is_err());
    }

    #[test]
    fn chomps_leading_tabs() {
        assert_eq!(chomp_heredoc_content("\t\ta\n\tb\n c\n"), "a\nb\n c\n");
    }
}
