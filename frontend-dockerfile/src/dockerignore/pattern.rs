//! One `.dockerignore` pattern, compiled as moby/patternmatcher compiles it: an exact string, a
//! prefix (`dir/**`), a suffix (`**/name`), or a small regular expression over `[^/]*` (`*`),
//! `[^/]` (`?`), `(.*/)?` (`**/`), `.*` (trailing `**`), bracket classes and escaped literals.
//!
//! Deviations from Go's regexp translation, on patterns no one writes: `*` and `?` inside a
//! bracket class are literal here, and `\d`-style escapes are literal characters.

/// How a compiled pattern matches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum MatchKind {
    Exact,
    Prefix,
    Suffix,
    Regex(Vec<Token>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `[^/]`
    NotSlash,
    /// `[^/]*`
    NotSlashRun,
    /// `.*` (Go's `.` stops at a newline)
    AnyRun,
    /// `(.*/)?`
    OptionalDirs,
    /// `[...]`
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// A bare `^`, which Go's regexp reads as an anchor.
    Anchor,
}

/// A compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    pub(crate) cleaned: String,
    pub(crate) dirs: usize,
    pub(crate) exclusion: bool,
    kind: MatchKind,
}

/// Why a pattern is malformed (Go's `filepath.ErrBadPattern`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadPattern;

/// Checks `filepath.Match`'s syntax: classes closed and non-empty, ranges well formed, no
/// trailing backslash.
fn validate(pattern: &str) -> Result<(), BadPattern> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    let escaped = |i: &mut usize| -> Result<char, BadPattern> {
        let c = *chars.get(*i).ok_or(BadPattern)?;
        if c == '-' || c == ']' {
            return Err(BadPattern);
        }
        if c == '\\' {
            *i += 1;
            let c = *chars.get(*i).ok_or(BadPattern)?;
            *i += 1;
            return Ok(c);
        }
        *i += 1;
        Ok(c)
    };
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if i + 1 >= chars.len() {
                    return Err(BadPattern);
                }
                i += 2;
            }
            '[' => {
                i += 1;
                if chars.get(i) == Some(&'^') {
                    i += 1;
                }
                let mut count = 0;
                loop {
                    if chars.get(i) == Some(&']') && count > 0 {
                        i += 1;
                        break;
                    }
                    let lo = escaped(&mut i)?;
                    let mut hi = lo;
                    if chars.get(i) == Some(&'-') {
                        i += 1;
                        hi = escaped(&mut i)?;
                    }
                    if lo > hi {
                        return Err(BadPattern);
                    }
                    count += 1;
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

fn parse_class(chars: &[char], mut i: usize) -> (Token, usize) {
    // `chars[i]` is just after `[`; the pattern passed `validate`.
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let take = |i: &mut usize| -> char {
        let mut c = chars.get(*i).copied().unwrap_or('\0');
        if c == '\\' {
            *i += 1;
            c = chars.get(*i).copied().unwrap_or('\0');
        }
        *i += 1;
        c
    };
    while i < chars.len() && (chars[i] != ']' || ranges.is_empty()) {
        let lo = take(&mut i);
        let mut hi = lo;
        if chars.get(i) == Some(&'-') {
            i += 1;
            hi = take(&mut i);
        }
        ranges.push((lo, hi));
    }
    (Token::Class { negated, ranges }, i + 1)
}

impl Pattern {
    /// Compiles a cleaned pattern (without its `!`).
    pub(crate) fn new(cleaned: String, exclusion: bool) -> Result<Self, BadPattern> {
        validate(&cleaned)?;
        let chars: Vec<char> = cleaned.chars().collect();
        let mut tokens = Vec::new();
        let mut exact = true;
        let mut kind_hint: Option<&str> = None; // "prefix" | "suffix" | "regex"
        let mut i = 0;
        let mut iteration = 0;
        while i < chars.len() {
            let ch = chars[i];
            i += 1;
            match ch {
                '*' if chars.get(i) == Some(&'*') => {
                    i += 1;
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                    }
                    if i >= chars.len() {
                        if kind_hint.is_none() && exact {
                            kind_hint = Some("prefix");
                        } else {
                            tokens.push(Token::AnyRun);
                            kind_hint = Some("regex");
                        }
                    } else {
                        tokens.push(Token::OptionalDirs);
                        kind_hint = Some("regex");
                    }
                    if iteration == 0 {
                        kind_hint = Some("suffix");
                    }
                    exact = false;
                }
                '*' => {
                    tokens.push(Token::NotSlashRun);
                    kind_hint = Some("regex");
                    exact = false;
                }
                '?' => {
                    tokens.push(Token::NotSlash);
                    kind_hint = Some("regex");
                    exact = false;
                }
                '\\' => match chars.get(i) {
                    Some(&c) => {
                        i += 1;
                        tokens.push(Token::Literal(c));
                        kind_hint = Some("regex");
                        exact = false;
                    }
                    None => tokens.push(Token::Literal('\\')),
                },
                '[' => {
                    let (class, next) = parse_class(&chars, i);
                    tokens.push(class);
                    i = next;
                    kind_hint = Some("regex");
                    exact = false;
                }
                '^' => tokens.push(Token::Anchor),
                c => tokens.push(Token::Literal(c)),
            }
            iteration += 1;
        }
        let kind = match kind_hint {
            None => MatchKind::Exact,
            Some("prefix") => MatchKind::Prefix,
            Some("suffix") => MatchKind::Suffix,
            Some(_) => MatchKind::Regex(tokens),
        };
        let dirs = cleaned.split('/').count();
        Ok(Self {
            cleaned,
            dirs,
            exclusion,
            kind,
        })
    }

    /// Whether `path` (slash-separated, relative to the context root) matches.
    pub(crate) fn matches(&self, path: &str) -> bool {
        match &self.kind {
            MatchKind::Exact => path == self.cleaned,
            MatchKind::Prefix => path.starts_with(&self.cleaned[..self.cleaned.len() - 2]),
            MatchKind::Suffix => {
                let suffix = &self.cleaned[2..];
                path.ends_with(suffix) || suffix.strip_prefix('/').is_some_and(|s| path == s)
            }
            MatchKind::Regex(tokens) => simulate(tokens, path),
        }
    }
}

/// Runs the pattern as a Thompson NFA over `path`: no recursion and no backtracking, so any
/// pattern and path take time proportional to their product.
fn simulate(tokens: &[Token], path: &str) -> bool {
    let n = tokens.len();
    // `active[t]`: about to match token t; `inside[t]`: within the `.*` of an `(.*/)?` at t.
    let mut active = vec![false; n + 1];
    let mut inside = vec![false; n + 1];
    active[0] = true;
    close(tokens, &mut active, &mut inside, true);
    for c in path.chars() {
        let mut next = vec![false; n + 1];
        let mut next_inside = vec![false; n + 1];
        for t in 0..n {
            if inside[t] {
                if c != '\n' {
                    next_inside[t] = true;
                }
                if c == '/' {
                    next[t + 1] = true;
                }
            }
            if !active[t] {
                continue;
            }
            match &tokens[t] {
                Token::Literal(x) if *x == c => next[t + 1] = true,
                Token::NotSlash if c != '/' => next[t + 1] = true,
                Token::Class { negated, ranges }
                    if ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated =>
                {
                    next[t + 1] = true;
                }
                Token::NotSlashRun if c != '/' => next[t] = true,
                Token::AnyRun if c != '\n' => next[t] = true,
                _ => {}
            }
        }
        active = next;
        inside = next_inside;
        close(tokens, &mut active, &mut inside, false);
        if !active.iter().chain(inside.iter()).any(|&a| a) {
            return false;
        }
    }
    active[n]
}

/// Follows the moves that consume nothing; they only go forward, so one pass suffices.
fn close(tokens: &[Token], active: &mut [bool], inside: &mut [bool], at_start: bool) {
    for t in 0..tokens.len() {
        if !active[t] {
            continue;
        }
        match &tokens[t] {
            Token::NotSlashRun | Token::AnyRun => active[t + 1] = true,
            Token::OptionalDirs => {
                active[t + 1] = true;
                inside[t] = true;
            }
            Token::Anchor if at_start => active[t + 1] = true,
            _ => {}
        }
    }
}
