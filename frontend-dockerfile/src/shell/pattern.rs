//! The small wildcard language of `${V#p}`, `${V%p}` and `${V/p/r}`.
//!
//! BuildKit turns these patterns into a Go regular expression (`convertShellPatternToRegex` in
//! `frontend/dockerfile/shell/lex.go`): `*` is any run of characters, `?` one character, `\*`,
//! `\?` and `\\` are literals, `\}` and `\/` drop their backslash, any other escape is an error.
//! Go's `.` does not match a newline, so neither do `*` and `?` here. Matching follows Go's
//! leftmost-first preference (a backtracking order), which this module reproduces with a memoised
//! backtracking matcher instead of a regex engine.

use std::collections::HashSet;

/// One element of a compiled pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// Any run of characters except a newline.
    Star,
    /// Exactly one character except a newline.
    One,
    /// This character.
    Literal(char),
}

/// A compiled wildcard pattern.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    tokens: Vec<Token>,
    greedy: bool,
}

impl Pattern {
    /// Compiles `pattern`; `greedy` makes `*` prefer the longest run.
    pub(crate) fn compile(pattern: &str, greedy: bool) -> Result<Self, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            let ch = chars[i];
            i += 1;
            match ch {
                '*' => {
                    // Consecutive stars match the same strings with the same preference.
                    if tokens.last() != Some(&Token::Star) {
                        tokens.push(Token::Star);
                    }
                }
                '?' => tokens.push(Token::One),
                '\\' => {
                    if matches!(chars.get(i), Some('}' | '/')) {
                        continue;
                    }
                    match chars.get(i) {
                        Some(&c @ ('*' | '?' | '\\')) => {
                            i += 1;
                            tokens.push(Token::Literal(c));
                        }
                        Some(&c) => return Err(format!("invalid escape '\\{c}'")),
                        None => return Err("invalid escape '\\\u{fffd}'".to_owned()),
                    }
                }
                c => tokens.push(Token::Literal(c)),
            }
        }
        Ok(Self { tokens, greedy })
    }

    /// The end of the preferred match that starts exactly at `start`, if any.
    pub(crate) fn match_at(&self, text: &[char], start: usize) -> Option<usize> {
        self.match_from(text, start, &mut HashSet::new())
    }

    /// The leftmost match starting at or after `from`: `(start, end)`.
    pub(crate) fn find(&self, text: &[char], from: usize) -> Option<(usize, usize)> {
        // A star state that failed from one start fails from every start.
        let mut failed = HashSet::new();
        (from..=text.len()).find_map(|start| {
            self.match_from(text, start, &mut failed)
                .map(|end| (start, end))
        })
    }

    /// Depth-first search in Go's preference order with an explicit stack (no recursion, so no
    /// pattern can exhaust the call stack); star states known to fail are not tried again.
    fn match_from(
        &self,
        text: &[char],
        start: usize,
        failed: &mut HashSet<(usize, usize)>,
    ) -> Option<usize> {
        struct Choice {
            token: usize,
            from: usize,
            reach: usize,
            tried: usize,
        }
        // The fewest characters the tokens from each index on need: prunes hopeless lengths.
        let mut min_rest = vec![0; self.tokens.len() + 1];
        for (i, token) in self.tokens.iter().enumerate().rev() {
            min_rest[i] = min_rest[i + 1] + usize::from(*token != Token::Star);
        }
        let mut stack: Vec<Choice> = Vec::new();
        let (mut ti, mut si) = (0, start);
        loop {
            // Walk the tokens that have one way to match, up to the next star.
            loop {
                if text.len().saturating_sub(si) < min_rest[ti] {
                    break;
                }
                match self.tokens.get(ti) {
                    None => return Some(si),
                    Some(Token::Literal(c)) if text.get(si) == Some(c) => {
                        ti += 1;
                        si += 1;
                    }
                    Some(Token::One) if text.get(si).is_some_and(|&c| c != '\n') => {
                        ti += 1;
                        si += 1;
                    }
                    Some(Token::Star) if !failed.contains(&(ti, si)) => {
                        let reach = text[si..]
                            .iter()
                            .position(|&c| c == '\n')
                            .map_or(text.len(), |p| si + p);
                        stack.push(Choice {
                            token: ti,
                            from: si,
                            reach,
                            tried: 0,
                        });
                        break;
                    }
                    Some(_) => break,
                }
            }
            // Take the next untried length of the innermost star.
            loop {
                let choice = stack.last_mut()?;
                let count = choice.reach - choice.from + 1;
                if choice.tried == count {
                    failed.insert((choice.token, choice.from));
                    stack.pop();
                    continue;
                }
                let length = if self.greedy {
                    count - 1 - choice.tried
                } else {
                    choice.tried
                };
                choice.tried += 1;
                ti = choice.token + 1;
                si = choice.from + length;
                break;
            }
        }
    }
}

/// `${V#p}` / `${V##p}`: removes the preferred match of `pattern` anchored at the start.
pub(crate) fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let compiled = Pattern::compile(pattern, greedy)
        .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
    let chars: Vec<char> = value.chars().collect();
    Ok(match compiled.match_at(&chars, 0) {
        Some(end) => chars[end..].iter().collect(),
        None => value.to_owned(),
    })
}

/// `${V%p}` / `${V%%p}`: BuildKit reverses both the pattern (keeping escapes in front of what
/// they escape) and the value, then trims a prefix.
pub(crate) fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let reversed_pattern = reverse_pattern(pattern);
    let reversed_value: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reversed_pattern, &reversed_value, greedy)?;
    Ok(trimmed.chars().rev().collect())
}

fn reverse_pattern(pattern: &str) -> String {
    let chars: Vec<char> = pattern.chars().collect();
    if chars.is_empty() {
        return String::new();
    }
    let last = chars.len() - 1;
    let mut out = vec!['\0'; chars.len()];
    let mut i = 0;
    while i <= last {
        let out_index = last - i;
        if chars[i] == '\\' && i != last {
            out[out_index - 1] = '\\';
            out[out_index] = chars[i + 1];
            i += 2;
        } else {
            out[out_index] = chars[i];
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// `${V/p/r}` and `${V//p/r}`: Go's `FindStringIndex` + splice, or `ReplaceAllString` (whose
/// replacement template expands `$0`, `$$` and treats other group references as empty).
pub(crate) fn replace(
    pattern: &str,
    value: &str,
    replacement: &str,
    all: bool,
) -> Result<String, String> {
    let compiled = Pattern::compile(pattern, true)
        .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
    let chars: Vec<char> = value.chars().collect();
    if !all {
        return Ok(match compiled.find(&chars, 0) {
            Some((start, end)) => {
                let mut out: String = chars[..start].iter().collect();
                out.push_str(replacement);
                out.extend(&chars[end..]);
                out
            }
            None => value.to_owned(),
        });
    }
    // Mirrors the loop of Go's `regexp.(*Regexp).replaceAll`.
    let mut out = String::new();
    let mut last_match_end = 0;
    let mut search = 0;
    while search <= chars.len() {
        let Some((start, end)) = compiled.find(&chars, search) else {
            break;
        };
        out.extend(&chars[last_match_end..start]);
        if end > last_match_end || start == 0 {
            expand_template(&mut out, replacement, &chars[start..end]);
        }
        last_match_end = end;
        if search + 1 > end {
            search += 1;
        } else {
            search = end;
        }
    }
    out.extend(&chars[last_match_end.min(chars.len())..]);
    Ok(out)
}

/// Go's `regexp.Expand` for a pattern without capture groups.
fn expand_template(out: &mut String, template: &str, whole: &[char]) {
    let t: Vec<char> = template.chars().collect();
    let mut i = 0;
    while i < t.len() {
        if t[i] != '$' {
            out.push(t[i]);
            i += 1;
            continue;
        }
        if t.get(i + 1) == Some(&'$') {
            out.push('$');
            i += 2;
            continue;
        }
        let is_name = |c: char| c.is_alphanumeric() || c == '_';
        let (name, next) = if t.get(i + 1) == Some(&'{') {
            match t[i + 2..].iter().position(|&c| c == '}') {
                Some(len) if len > 0 && t[i + 2..i + 2 + len].iter().all(|&c| is_name(c)) => (
                    t[i + 2..i + 2 + len].iter().collect::<String>(),
                    i + 3 + len,
                ),
                _ => (String::new(), i + 1),
            }
        } else {
            let len = t[i + 1..].iter().take_while(|&&c| is_name(c)).count();
            (t[i + 1..i + 1 + len].iter().collect(), i + 1 + len)
        };
        if name.is_empty() {
            // Malformed reference: the `$` is kept as text.
            out.push('$');
            i += 1;
            continue;
        }
        if name.parse::<u64>() == Ok(0) {
            out.extend(whole);
        }
        i = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_escapes_like_buildkit() {
        assert!(Pattern::compile("\\", true).is_err());
        assert!(Pattern::compile("\\x", true).is_err());
        assert!(Pattern::compile("\\\\\\", true).is_err());
        assert!(Pattern::compile("a\\*\\?\\\\\\}", true).is_ok());
    }

    #[test]
    fn reverses_patterns_keeping_escapes() {
        assert_eq!(reverse_pattern("a\\*c"), "c\\*a");
        assert_eq!(reverse_pattern("\\\\\\ab"), "b\\a\\\\");
        assert_eq!(reverse_pattern("ab\\"), "\\ba");
        assert_eq!(reverse_pattern("\\\\b"), "b\\\\");
    }

    #[test]
    fn trims_and_replaces() {
        assert_eq!(trim_prefix("*/", "a/b/c", false).unwrap(), "b/c");
        assert_eq!(trim_prefix("*/", "a/b/c", true).unwrap(), "c");
        assert_eq!(trim_suffix("/*", "a/b/c", false).unwrap(), "a/b");
        assert_eq!(trim_suffix("/*", "a/b/c", true).unwrap(), "a");
        assert_eq!(replace("o", "foo", "0", false).unwrap(), "f0o");
        assert_eq!(replace("o", "foo", "0", true).unwrap(), "f00");
        assert_eq!(replace("", "ab", "-", true).unwrap(), "-a-b-");
        assert_eq!(replace("o", "foo", "[$0$$]", true).unwrap(), "f[o$][o$]");
    }
}
