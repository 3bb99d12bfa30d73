//! One logical line to one AST node: BuildKit's `split_command.go` and `line_parsers.go`.
//!
//! Some of BuildKit's scanners walk bytes rather than characters (`extractBuilderFlags`,
//! `parseHealthConfig`); they are reproduced byte-wise, including Go's habit of treating the
//! bytes 0x85 and 0xA0 as spaces there.

use super::{Arg, Node};
use crate::error::ErrorKind;

/// `[\t\v\f\r ]`, BuildKit's `reWhitespace` class.
pub(crate) fn is_re_whitespace(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// Go's `unicode.IsSpace` applied to a single byte taken as a rune.
fn is_space_byte(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' | 0x85 | 0xa0)
}

/// `reWhitespace.Split(text, limit)` for limit 2 (`Some(2)`) or no limit (`None`).
pub(crate) fn split_whitespace_re(text: &str, limit: Option<usize>) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    loop {
        if limit.is_some_and(|l| parts.len() + 1 >= l) {
            parts.push(rest);
            return parts;
        }
        let Some(start) = rest.find(is_re_whitespace) else {
            parts.push(rest);
            return parts;
        };
        let after = &rest[start..];
        let run = after.len() - after.trim_start_matches(is_re_whitespace).len();
        parts.push(&rest[..start]);
        rest = &rest[start + run..];
    }
}

/// How deep `ONBUILD ONBUILD ...` may nest in the AST. BuildKit's Go stack grows without bound;
/// ours does not, and the typed layer rejects any nesting anyway.
const MAX_ONBUILD_DEPTH: usize = 64;

/// Builds the node for one logical line (`newNodeFromLine`).
pub(crate) fn node_from_line(
    line: &str,
    escape: char,
    comments: Vec<String>,
) -> Result<Node, ErrorKind> {
    node_at_depth(line, escape, comments, 0)
}

fn node_at_depth(
    line: &str,
    escape: char,
    comments: Vec<String>,
    depth: usize,
) -> Result<Node, ErrorKind> {
    let (command, flags, args) = split_command(line, escape);
    let (args, json) = match command.to_lowercase().as_str() {
        "add" | "copy" | "volume" => parse_maybe_json_to_list(&args)?,
        "arg" => (words_to_args(parse_words(&args, escape)), false),
        "cmd" | "entrypoint" | "run" | "shell" => parse_maybe_json(&args)?,
        "env" => (parse_name_val(&args, "ENV", escape)?, false),
        "label" => (parse_name_val(&args, "LABEL", escape)?, false),
        "expose" | "from" => (parse_strings_whitespace_delimited(&args), false),
        "healthcheck" => parse_health_config(&args)?,
        "maintainer" | "stopsignal" | "user" | "workdir" => (parse_string(&args), false),
        "onbuild" => {
            if args.is_empty() {
                (Vec::new(), false)
            } else {
                if depth >= MAX_ONBUILD_DEPTH {
                    return Err(ErrorKind::invalid("ONBUILD triggers nested too deeply"));
                }
                let child = node_at_depth(&args, escape, Vec::new(), depth + 1)?;
                (vec![Arg::Command(Box::new(child))], false)
            }
        }
        // BuildKit's parser keeps unknown instructions with one empty argument; the typed
        // layer rejects them with a suggestion.
        _ => (vec![Arg::Word(String::new())], false),
    };
    Ok(Node {
        name: command,
        original: line.to_owned(),
        flags,
        args,
        json,
        heredocs: Vec::new(),
        comments,
        range: super::SourceRange::default(),
    })
}

fn words_to_args(words: Vec<String>) -> Vec<Arg> {
    words.into_iter().map(Arg::Word).collect()
}

/// `splitCommand`: the instruction name, its `--flags`, and the rest.
fn split_command(line: &str, escape: char) -> (String, Vec<String>, String) {
    let trimmed = line.trim();
    let parts = split_whitespace_re(trimmed, Some(2));
    let command = parts.first().copied().unwrap_or_default().to_owned();
    match parts.get(1) {
        Some(rest) => {
            let (args, flags) = extract_builder_flags(rest, escape);
            (command, flags, args.trim().to_owned())
        }
        None => (command, Vec::new(), String::new()),
    }
}

#[derive(PartialEq, Eq, Clone, Copy)]
enum Phase {
    Spaces,
    Word,
    Quote,
}

/// `extractBuilderFlags`: leading words starting with `--` are flags (quotes and escapes
/// processed), up to the first other word or a lone `--`.
fn extract_builder_flags(line: &str, escape: char) -> (String, Vec<String>) {
    let bytes = line.as_bytes();
    let n = bytes.len();
    let escape = u8::try_from(escape).unwrap_or(b'\\');
    let rest_from = |pos: usize| String::from_utf8_lossy(&bytes[pos..]).into_owned();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = 0u8;
    let mut blank_ok = false;
    let mut pos = 0;
    let mut ch = 0u8;
    while pos <= n {
        if pos != n {
            ch = bytes[pos];
        }
        if phase == Phase::Spaces {
            if pos == n {
                break;
            }
            if is_space_byte(ch) {
                pos += 1;
                continue;
            }
            if ch != b'-' || pos + 1 == n || bytes[pos + 1] != b'-' {
                return (rest_from(pos), words);
            }
            phase = Phase::Word;
        }
        if pos == n {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if is_space_byte(ch) {
                phase = Phase::Spaces;
                if word == "--" {
                    return (rest_from(pos), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == b'\'' || ch == b'"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            if ch == escape {
                if pos + 1 == n {
                    pos += 1;
                    continue;
                }
                pos += 1;
                ch = bytes[pos];
            }
            // Go writes each byte as a rune here.
            word.push(char::from(ch));
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        if ch == escape {
            if pos + 1 == n {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            ch = bytes[pos];
        }
        word.push(char::from(ch));
        pos += 1;
    }
    (String::new(), words)
}

/// `parseWords`: whitespace-separated words, quotes and escapes kept in the text.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let chars: Vec<char> = rest.chars().collect();
    let n = chars.len();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut word = String::new();
    let mut pos = 0;
    while pos <= n {
        let mut ch = chars.get(pos).copied().unwrap_or('\0');
        if phase == Phase::Spaces {
            if pos == n {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if pos == n {
            if blank_ok || !word.is_empty() {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + 1 == n {
                    pos += 1;
                    continue;
                }
                // Outside quotes the escape and what follows are both kept, even a quote.
                word.push(ch);
                pos += 1;
                ch = chars[pos];
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
        }
        // Inside single quotes the escape character escapes nothing.
        if ch == escape && quote != '\'' {
            if pos + 1 == n {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            word.push(ch);
            ch = chars[pos];
        }
        word.push(ch);
        pos += 1;
    }
    words
}

/// `parseNameVal` for ENV and LABEL: `key value` (old form) or `k=v k2=v2 ...`, as triples of
/// key, value and separator (`""` or `"="`).
fn parse_name_val(rest: &str, instruction: &str, escape: char) -> Result<Vec<Arg>, ErrorKind> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let parts = split_whitespace_re(rest, Some(2));
        if parts.len() < 2 {
            return Err(ErrorKind::MissingValue {
                instruction: instruction.to_owned(),
            });
        }
        return Ok(vec![
            Arg::Word(parts[0].to_owned()),
            Arg::Word(parts[1].to_owned()),
            Arg::Word(String::new()),
        ]);
    }
    let mut args = Vec::with_capacity(words.len() * 3);
    for word in words {
        let Some((key, value)) = word.split_once('=') else {
            return Err(ErrorKind::MissingEquals { word });
        };
        args.push(Arg::Word(key.to_owned()));
        args.push(Arg::Word(value.to_owned()));
        args.push(Arg::Word("=".to_owned()));
    }
    Ok(args)
}

fn parse_strings_whitespace_delimited(rest: &str) -> Vec<Arg> {
    if rest.is_empty() {
        return Vec::new();
    }
    split_whitespace_re(rest, None)
        .into_iter()
        .map(|s| Arg::Word(s.to_owned()))
        .collect()
}

fn parse_string(rest: &str) -> Vec<Arg> {
    if rest.is_empty() {
        Vec::new()
    } else {
        vec![Arg::Word(rest.to_owned())]
    }
}

/// What `parseJSON` concluded.
enum Json {
    Strings(Vec<String>),
    /// Not a JSON array of strings: the caller falls back to the shell form.
    NotJson,
}

/// `parseJSON`: a strict JSON array; an array holding a non-string is an error, anything that
/// is not valid JSON falls back to the shell form.
fn parse_json(rest: &str) -> Result<Json, ErrorKind> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Ok(Json::NotJson);
    }
    let Ok(values) = serde_json::from_str::<Vec<serde_json::Value>>(rest) else {
        return Ok(Json::NotJson);
    };
    values
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(ErrorKind::JsonNotStrings),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Json::Strings)
}

fn parse_maybe_json(rest: &str) -> Result<(Vec<Arg>, bool), ErrorKind> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    Ok(match parse_json(rest)? {
        Json::Strings(items) => (words_to_args(items), true),
        Json::NotJson => (vec![Arg::Word(rest.to_owned())], false),
    })
}

fn parse_maybe_json_to_list(rest: &str) -> Result<(Vec<Arg>, bool), ErrorKind> {
    Ok(match parse_json(rest)? {
        Json::Strings(items) => (words_to_args(items), true),
        Json::NotJson => (parse_strings_whitespace_delimited(rest), false),
    })
}

/// `parseHealthConfig`: the type word (`CMD`, `NONE`...) then a maybe-JSON command.
fn parse_health_config(rest: &str) -> Result<(Vec<Arg>, bool), ErrorKind> {
    let bytes = rest.as_bytes();
    let sep = bytes
        .iter()
        .position(|&b| is_space_byte(b))
        .unwrap_or(bytes.len());
    if sep == 0 {
        return Ok((Vec::new(), false));
    }
    let next = bytes[sep..]
        .iter()
        .position(|&b| !is_space_byte(b))
        .map_or(bytes.len(), |p| sep + p);
    let kind = String::from_utf8_lossy(&bytes[..sep]).into_owned();
    let command = String::from_utf8_lossy(&bytes[next..]).into_owned();
    let (mut args, json) = parse_maybe_json(&command)?;
    args.insert(0, Arg::Word(kind));
    Ok((args, json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_flags() {
        let (rest, flags) = extract_builder_flags("--a=1 --b='x y' -- --c z", '\\');
        assert_eq!(flags, ["--a=1", "--b=x y"]);
        assert_eq!(rest, " --c z");
        let (rest, flags) = extract_builder_flags("--doit", '\\');
        assert_eq!((rest.as_str(), flags), ("", vec!["--doit".to_owned()]));
    }

    #[test]
    fn splits_words_keeping_quotes() {
        assert_eq!(parse_words("a 'b c' d\\ e", '\\'), ["a", "'b c'", "d\\ e"]);
        assert_eq!(parse_words("name=\"a\\\"b\"", '\\'), ["name=\"a\\\"b\""]);
    }

    #[test]
    fn splits_on_go_whitespace_class() {
        assert_eq!(split_whitespace_re("a \t b  c", None), ["a", "b", "c"]);
        assert_eq!(split_whitespace_re("a  b c", Some(2)), ["a", "b c"]);
        assert_eq!(split_whitespace_re("a", Some(2)), ["a"]);
    }
}
