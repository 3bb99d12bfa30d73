//! Shell-word expansion and splitting with the semantics of BuildKit's lexer
//! (`frontend/dockerfile/shell/lex.go`).
//!
//! This is not a shell: it knows quotes, the escape character, `$NAME`, `${NAME}` and the
//! modifiers `:-  -  :+  +  :?  ?  #  ##  %  %%  /  //`, nothing else. [`Lexer::process_word`]
//! expands one word keeping spaces (what `ENV`, `WORKDIR`, `COPY` paths... get);
//! [`Lexer::process_words`] also splits the result on unquoted whitespace.
//!
//! ```
//! use std::collections::BTreeMap;
//! use inlay_frontend_dockerfile::shell::Lexer;
//!
//! let env = BTreeMap::from([("V".to_owned(), "a/b/c".to_owned())]);
//! let lexer = Lexer::new('\\');
//! assert_eq!(lexer.process_word("${V%/*} ${X:-none}", &env).unwrap(), "a/b none");
//! assert_eq!(lexer.process_words("x 'y z'", &env).unwrap(), ["x", "y z"]);
//! ```

mod pattern;

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Where variables come from during expansion.
pub trait Env {
    /// The value of `name`, or `None` when it is not set (an empty value is set).
    fn lookup(&self, name: &str) -> Option<&str>;
}

impl Env for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl<S: std::hash::BuildHasher> Env for HashMap<String, String, S> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Env for [(String, String)] {
    /// The last entry with the name wins, as in BuildKit's `EnvsFromSlice`.
    fn lookup(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Env for Vec<(String, String)> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.as_slice().lookup(name)
    }
}

/// An environment with nothing set.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmptyEnv;

impl Env for EmptyEnv {
    fn lookup(&self, _name: &str) -> Option<&str> {
        None
    }
}

/// Why a word could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failed to process {}: {kind}", crate::go_quote::quote(word))]
pub struct ShellError {
    /// The word being expanded.
    pub word: String,
    /// What went wrong.
    pub kind: ShellErrorKind,
}

/// The failures of expansion, worded as BuildKit words them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShellErrorKind {
    /// `${` without its `}`.
    #[error("syntax error: missing '}}'")]
    MissingBrace,
    /// `${V/p` without the `/` before the replacement.
    #[error("syntax error: missing '/' in ${{}}")]
    MissingSlash,
    /// `${}`, `${:...}` or `${{...`.
    #[error("syntax error: bad substitution")]
    BadSubstitution,
    /// A modifier the lexer does not know, such as `${V:#x}` or `${V!}`.
    #[error("unsupported modifier ({0}) in substitution")]
    UnsupportedModifier(String),
    /// `${V?msg}` with `V` unset, or `${V:?msg}` with `V` unset or empty.
    #[error("{name}: {message}")]
    Required {
        /// The variable.
        name: String,
        /// The user's message or BuildKit's default one.
        message: String,
    },
    /// A malformed `#`, `%` or `/` pattern.
    #[error("{0}")]
    InvalidPattern(String),
    /// `${...}` groups nested deeper than BuildKit's growable Go stack would notice, but ours
    /// would.
    #[error("substitutions nested more than {0} deep")]
    TooDeep(usize),
    /// A quote or `${`-group left open at the end of the word.
    #[error("unexpected end of statement while looking for matching {0}")]
    Unterminated(String),
}

/// The result of [`Lexer::process_word_with_matches`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansion {
    /// The expanded word.
    pub result: String,
    /// Variables that were looked up and set.
    pub matched: BTreeSet<String>,
    /// Variables that were looked up and not set.
    pub unmatched: BTreeSet<String>,
}

/// BuildKit's `shell.Lex`: the escape character and the switches some callers turn on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(clippy::struct_excessive_bools)] // the switches are BuildKit's, one flag each
pub struct Lexer {
    /// The escape character: `\` or `` ` `` (from the `# escape=` directive).
    pub escape: char,
    /// Keep quote characters in the output (used to detect quoted heredoc delimiters).
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Treat quotes as ordinary characters.
    pub skip_process_quotes: bool,
    /// Leave references to unset variables as they were written.
    pub skip_unset_env: bool,
}

impl Default for Lexer {
    fn default() -> Self {
        Self::new('\\')
    }
}

impl Lexer {
    /// A lexer with the given escape character and every switch off.
    pub fn new(escape: char) -> Self {
        Self {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_process_quotes: false,
            skip_unset_env: false,
        }
    }

    /// Expands `word` as one word (BuildKit's `ProcessWord`).
    pub fn process_word(&self, word: &str, env: &dyn Env) -> Result<String, ShellError> {
        self.process_word_with_matches(word, env).map(|e| e.result)
    }

    /// Expands `word` and reports which variables it used (`ProcessWordWithMatches`).
    pub fn process_word_with_matches(
        &self,
        word: &str,
        env: &dyn Env,
    ) -> Result<Expansion, ShellError> {
        let mut state = State::new(self, word, env, true);
        let (result, _) = state
            .process_stop_on(None, self.raw_escapes)
            .map_err(|kind| ShellError {
                word: word.to_owned(),
                kind,
            })?;
        Ok(Expansion {
            result,
            matched: state.matched,
            unmatched: state.unmatched,
        })
    }

    /// Expands `word` and splits it on unquoted whitespace (BuildKit's `ProcessWords`).
    pub fn process_words(&self, word: &str, env: &dyn Env) -> Result<Vec<String>, ShellError> {
        let mut state = State::new(self, word, env, false);
        state
            .process_stop_on(None, self.raw_escapes)
            .map(|(_, words)| words)
            .map_err(|kind| ShellError {
                word: word.to_owned(),
                kind,
            })
    }
}

/// Go's `unicode.IsSpace`.
fn is_space(c: char) -> bool {
    c.is_whitespace()
}

/// The words being collected. BuildKit keeps the current word's buffer in the lexer itself, so a
/// nested `${V:-...}` resets it; `State::words_buf` reproduces that sharing.
#[derive(Default)]
struct Words {
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, buf: &mut String, ch: char) {
        if is_space(ch) && self.in_word {
            if !buf.is_empty() {
                self.words.push(std::mem::take(buf));
                self.in_word = false;
            }
        } else if !is_space(ch) {
            self.add_raw_char(buf, ch);
        }
    }

    fn add_raw_char(&mut self, buf: &mut String, ch: char) {
        buf.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, buf: &mut String, text: &str) {
        for ch in text.chars() {
            self.add_char(buf, ch);
        }
    }

    fn add_raw_string(&mut self, buf: &mut String, text: &str) {
        buf.push_str(text);
        self.in_word = true;
    }

    fn finish(mut self, buf: &mut String) -> Vec<String> {
        if !buf.is_empty() {
            self.words.push(std::mem::take(buf));
        }
        self.words
    }
}

struct State<'a> {
    lexer: &'a Lexer,
    chars: Vec<char>,
    pos: usize,
    env: &'a dyn Env,
    raw_escapes: bool,
    capture: bool,
    matched: BTreeSet<String>,
    unmatched: BTreeSet<String>,
    words_buf: String,
    depth: usize,
}

/// The deepest `${a:-${b:-...}}` nesting expanded.
const MAX_DEPTH: usize = 256;

type Step<T> = Result<T, ShellErrorKind>;

impl<'a> State<'a> {
    fn new(lexer: &'a Lexer, word: &str, env: &'a dyn Env, capture: bool) -> Self {
        Self {
            lexer,
            chars: word.chars().collect(),
            pos: 0,
            env,
            raw_escapes: lexer.raw_escapes,
            capture,
            matched: BTreeSet::new(),
            unmatched: BTreeSet::new(),
            words_buf: String::new(),
            depth: 0,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let ch = self.peek();
        if ch.is_some() {
            self.pos += 1;
        }
        ch
    }

    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Step<(String, Vec<String>)> {
        if self.depth >= MAX_DEPTH {
            return Err(ShellErrorKind::TooDeep(MAX_DEPTH));
        }
        self.depth += 1;
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let outcome = self.stop_on_inner(stop);
        self.raw_escapes = saved;
        self.depth -= 1;
        outcome
    }

    fn stop_on_inner(&mut self, stop: Option<char>) -> Step<(String, Vec<String>)> {
        let mut result = String::new();
        self.words_buf.clear();
        let mut words = Words::default();
        let quotes = !self.lexer.skip_process_quotes;
        while let Some(ch) = self.peek() {
            if stop == Some(ch) {
                self.pos += 1;
                let words = words.finish(&mut self.words_buf);
                return Ok((result, words));
            }
            match ch {
                '$' => {
                    let tmp = self.process_dollar()?;
                    result.push_str(&tmp);
                    words.add_string(&mut self.words_buf, &tmp);
                }
                '<' => {
                    let tmp = self.process_possible_heredoc();
                    result.push_str(&tmp);
                    words.add_raw_string(&mut self.words_buf, &tmp);
                }
                '\'' if quotes => {
                    let tmp = self.process_single_quote()?;
                    result.push_str(&tmp);
                    words.add_raw_string(&mut self.words_buf, &tmp);
                }
                '"' if quotes => {
                    let tmp = self.process_double_quote()?;
                    result.push_str(&tmp);
                    words.add_raw_string(&mut self.words_buf, &tmp);
                }
                _ => {
                    self.pos += 1;
                    if ch == self.lexer.escape {
                        if self.raw_escapes {
                            words.add_raw_char(&mut self.words_buf, ch);
                            result.push(ch);
                        }
                        // The escape character escapes anything but the end of the word.
                        let Some(escaped) = self.next() else { break };
                        words.add_raw_char(&mut self.words_buf, escaped);
                        result.push(escaped);
                    } else {
                        words.add_char(&mut self.words_buf, ch);
                        result.push(ch);
                    }
                }
            }
        }
        if let Some(stop) = stop {
            return Err(ShellErrorKind::Unterminated(stop.to_string()));
        }
        let words = words.finish(&mut self.words_buf);
        Ok((result, words))
    }

    fn process_single_quote(&mut self) -> Step<String> {
        // Everything up to the next `'` is literal; `'` cannot be escaped inside.
        let mut result = String::new();
        let open = self.next();
        if self.lexer.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => return Err(ShellErrorKind::Unterminated("single-quote".into())),
                Some('\'') => {
                    if self.lexer.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Step<String> {
        // `$` expands; the escape character escapes only `"`, `$` and itself.
        let mut result = String::new();
        let open = self.next();
        if self.lexer.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => return Err(ShellErrorKind::Unterminated("double-quote".into())),
                Some('"') => {
                    self.pos += 1;
                    if self.lexer.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                }
                Some(mut ch) => {
                    self.pos += 1;
                    if ch == self.lexer.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            None => continue,
                            Some(next)
                                if next == '"' || next == '$' || next == self.lexer.escape =>
                            {
                                self.pos += 1;
                                ch = next;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    #[allow(clippy::too_many_lines)] // one `match` per modifier, as in BuildKit's processDollar
    fn process_dollar(&mut self) -> Step<String> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.get_env(&name) {
                Some(value) => value,
                None if self.lexer.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1;
        match self.peek() {
            None => return Err(ShellErrorKind::MissingBrace),
            Some('{' | '}' | ':') => return Err(ShellErrorKind::BadSubstitution),
            Some(_) => {}
        }
        let name = self.process_name();
        let Some(first) = self.next() else {
            return Err(ShellErrorKind::UnsupportedModifier("\u{fffd}".into()));
        };
        match first {
            '}' => Ok(match self.get_env(&name) {
                Some(value) => value,
                None if self.lexer.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            '/' => self.process_replace(&name),
            _ => {
                let mut modifier = first.to_string();
                let mut null_is_unset = false;
                let mut op = first;
                if first == ':' {
                    null_is_unset = true;
                    let Some(second) = self.next() else {
                        return Err(ShellErrorKind::MissingBrace);
                    };
                    modifier.push(second);
                    op = second;
                } else if !matches!(first, '+' | '-' | '?' | '#' | '%') {
                    return Err(ShellErrorKind::UnsupportedModifier(modifier));
                }
                let raw = op == '#' || op == '%';
                if null_is_unset && raw {
                    return Err(ShellErrorKind::UnsupportedModifier(modifier));
                }
                let word = match self.process_stop_on(Some('}'), raw) {
                    Ok((word, _)) => word,
                    Err(_) if self.peek().is_none() => return Err(ShellErrorKind::MissingBrace),
                    Err(e) => return Err(e),
                };
                let value = self.get_env(&name);
                let Some(value) = value else {
                    if self.lexer.skip_unset_env {
                        return Ok(format!("${{{name}{modifier}{word}}}"));
                    }
                    return Self::apply_unset(op, &name, word, modifier);
                };
                let null = null_is_unset && value.is_empty();
                match op {
                    '-' => Ok(if null { word } else { value }),
                    '+' => Ok(if null { String::new() } else { word }),
                    '?' => {
                        if null {
                            let message = if word.is_empty() {
                                "is not allowed to be empty".to_owned()
                            } else {
                                word
                            };
                            return Err(ShellErrorKind::Required { name, message });
                        }
                        Ok(value)
                    }
                    '%' | '#' => {
                        let (greedy, pattern) = match word.strip_prefix(op) {
                            Some(rest) => (true, rest.to_owned()),
                            None => (false, word),
                        };
                        let trimmed = if op == '%' {
                            pattern::trim_suffix(&pattern, &value, greedy)
                        } else {
                            pattern::trim_prefix(&pattern, &value, greedy)
                        };
                        trimmed.map_err(ShellErrorKind::InvalidPattern)
                    }
                    _ => Err(ShellErrorKind::UnsupportedModifier(modifier)),
                }
            }
        }
    }

    /// The modifiers' results for an unset variable.
    fn apply_unset(op: char, name: &str, word: String, modifier: String) -> Step<String> {
        match op {
            '-' => Ok(word),
            '+' => Ok(String::new()),
            '?' => Err(ShellErrorKind::Required {
                name: name.to_owned(),
                message: if word.is_empty() {
                    "is not allowed to be unset".to_owned()
                } else {
                    word
                },
            }),
            '%' | '#' => {
                let (greedy, pattern) = match word.strip_prefix(op) {
                    Some(rest) => (true, rest.to_owned()),
                    None => (false, word),
                };
                let trimmed = if op == '%' {
                    pattern::trim_suffix(&pattern, "", greedy)
                } else {
                    pattern::trim_prefix(&pattern, "", greedy)
                };
                trimmed.map_err(ShellErrorKind::InvalidPattern)
            }
            _ => Err(ShellErrorKind::UnsupportedModifier(modifier)),
        }
    }

    fn process_replace(&mut self, name: &str) -> Step<String> {
        let all = self.peek() == Some('/');
        if all {
            self.pos += 1;
        }
        let pattern = match self.process_stop_on(Some('/'), true) {
            Ok((p, _)) => p,
            Err(_) if self.peek().is_none() => return Err(ShellErrorKind::MissingSlash),
            Err(e) => return Err(e),
        };
        let replacement = match self.process_stop_on(Some('}'), true) {
            Ok((r, _)) => r,
            Err(_) if self.peek().is_none() => return Err(ShellErrorKind::MissingBrace),
            Err(e) => return Err(e),
        };
        let value = match self.get_env(name) {
            Some(v) => v,
            None if self.lexer.skip_unset_env => {
                return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
            }
            None => String::new(),
        };
        pattern::replace(&pattern, &value, &replacement, all)
            .map_err(ShellErrorKind::InvalidPattern)
    }

    fn process_name(&mut self) -> String {
        // A name is letters, digits and `_`; a leading digit run or one special parameter
        // (`@*#?-$!0`) is a name on its own.
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && is_digit(ch) {
                while let Some(d) = self.peek().filter(|&c| is_digit(c)) {
                    self.pos += 1;
                    name.push(d);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.pos += 1;
                return ch.to_string();
            }
            if !(ch.is_alphabetic() || is_digit(ch) || ch == '_') {
                break;
            }
            self.pos += 1;
            name.push(ch);
        }
        name
    }

    fn process_possible_heredoc(&mut self) -> String {
        self.pos += 1;
        if self.peek() != Some('<') {
            return "<".into();
        }
        self.pos += 1;
        let mut result = String::from("<<");
        while let Some(c) = self.peek().filter(|c| matches!(c, '\t' | '\r' | ' ')) {
            result.push(c);
            self.pos += 1;
        }
        result
    }

    fn get_env(&mut self, name: &str) -> Option<String> {
        let value = self.env.lookup(name).map(str::to_owned);
        if self.capture {
            if value.is_some() {
                self.matched.insert(name.to_owned());
            } else {
                self.unmatched.insert(name.to_owned());
            }
        }
        value
    }
}

/// Go's `unicode.IsDigit` (decimal digits of any script).
fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || is_decimal_digit(c)
}

/// Non-ASCII decimal digits: the common `Nd` blocks, each a run of ten code points.
fn is_decimal_digit(c: char) -> bool {
    const ZEROS: &[u32] = &[
        0x660, 0x6f0, 0x7c0, 0x966, 0x9e6, 0xa66, 0xae6, 0xb66, 0xbe6, 0xc66, 0xce6, 0xd66, 0xde6,
        0xe50, 0xed0, 0xf20, 0x1040, 0x1090, 0x17e0, 0x1810, 0x1946, 0x19d0, 0x1a80, 0x1a90,
        0x1b50, 0x1bb0, 0x1c40, 0x1c50, 0xa620, 0xa8d0, 0xa900, 0xa9d0, 0xa9f0, 0xaa50, 0xabf0,
        0xff10,
    ];
    let code = c as u32;
    ZEROS.iter().any(|&zero| (zero..zero + 10).contains(&code))
}
