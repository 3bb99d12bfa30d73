//! Go's `strconv.Quote` and `fmt`'s `%q` of a `[]string`, which BuildKit's AST dump uses.
//!
//! The conformance results are byte-for-byte output of Go's quoting, so this reproduces its
//! escape choices: `\a \b \f \n \r \t \v`, `\xNN` for other ASCII controls, `\uNNNN` /
//! `\UNNNNNNNN` for non-printable runes, and printable Unicode kept as is.

/// Quotes `text` the way Go's `strconv.Quote` does.
pub(crate) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for ch in text.chars() {
        push_escaped(&mut out, ch);
    }
    out.push('"');
    out
}

/// Formats a list the way Go's `fmt.Sprintf("%q", []string{...})` does: `["a" "b"]`.
pub(crate) fn quote_list(items: &[String]) -> String {
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&quote(item));
    }
    out.push(']');
    out
}

fn push_escaped(out: &mut String, ch: char) {
    use std::fmt::Write as _;
    match ch {
        '"' | '\\' => {
            out.push('\\');
            out.push(ch);
        }
        c if is_print(c) => out.push(c),
        '\u{7}' => out.push_str("\\a"),
        '\u{8}' => out.push_str("\\b"),
        '\u{c}' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{b}' => out.push_str("\\v"),
        c if (c as u32) < 0x20 || c == '\u{7f}' => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if (c as u32) < 0x10000 => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        c => {
            let _ = write!(out, "\\U{:08x}", c as u32);
        }
    }
}

/// An approximation of Go's `unicode.IsPrint` without Unicode tables: letters, marks, numbers,
/// punctuation, symbols and the ASCII space are printable; controls, other spaces, format
/// characters and private-use code points are not. Unassigned code points count as printable
/// here, where Go would escape them.
fn is_print(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(c,
        '\u{ad}'
        | '\u{600}'..='\u{605}'
        | '\u{61c}'
        | '\u{6dd}'
        | '\u{70f}'
        | '\u{180e}'
        | '\u{200b}'..='\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206f}'
        | '\u{e000}'..='\u{f8ff}'
        | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}'
        | '\u{fffe}'..='\u{ffff}'
        | '\u{e0001}'
        | '\u{e0020}'..='\u{e007f}'
        | '\u{f0000}'..='\u{10ffff}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(quote("\u{0} \u{7f} \t"), r#""\x00 \x7f \t""#);
        assert_eq!(quote("♥ ☃"), "\"♥ ☃\"");
        assert_eq!(quote("\u{a0}\u{feff}"), r#""\u00a0\ufeff""#);
        assert_eq!(quote("\u{f0000}"), r#""\U000f0000""#);
        assert_eq!(
            quote_list(&["--a".into(), "b c".into()]),
            r#"["--a" "b c"]"#
        );
    }
}
