//! Instruction flags (`--from=...`) as BuildKit's `BFlags` reads them, and the small value
//! syntaxes flags use: Go booleans, Go durations, Docker's RAM sizes.

use std::collections::BTreeMap;

use crate::error::ErrorKind;
use crate::suggest;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FlagType {
    Bool,
    String,
    Strings,
}

/// The flags one instruction accepts, and what the user gave.
#[derive(Debug, Default)]
pub(crate) struct Flags {
    defined: BTreeMap<&'static str, FlagType>,
    values: BTreeMap<&'static str, Vec<String>>,
}

impl Flags {
    pub(crate) fn bool(mut self, name: &'static str) -> Self {
        self.defined.insert(name, FlagType::Bool);
        self
    }

    pub(crate) fn string(mut self, name: &'static str) -> Self {
        self.defined.insert(name, FlagType::String);
        self
    }

    pub(crate) fn strings(mut self, name: &'static str) -> Self {
        self.defined.insert(name, FlagType::Strings);
        self
    }

    /// Reads `args`: every one `--name[=value]` up to a lone `--`.
    pub(crate) fn parse(mut self, args: &[String]) -> Result<Self, ErrorKind> {
        for arg in args {
            if arg == "--" {
                break;
            }
            let Some(body) = arg.strip_prefix("--") else {
                return Err(ErrorKind::invalid(format!(
                    "arg should start with -- : {arg}"
                )));
            };
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (body, None),
            };
            let flag_name = format!("--{name}");
            let Some((&key, &kind)) = self.defined.get_key_value(name) else {
                let options: Vec<&str> = self.defined.keys().copied().collect();
                return Err(ErrorKind::UnknownFlag {
                    flag: flag_name,
                    suggestion: suggest::closest(name, &options, true),
                });
            };
            if kind != FlagType::Strings && self.values.contains_key(key) {
                return Err(ErrorKind::invalid(format!(
                    "duplicate flag specified: {flag_name}"
                )));
            }
            let stored = match kind {
                FlagType::Bool => match value {
                    Some("") => {
                        return Err(ErrorKind::invalid(format!(
                            "missing a value on flag: {flag_name}"
                        )));
                    }
                    None => "true".to_owned(),
                    Some(v) if v.eq_ignore_ascii_case("true") => "true".to_owned(),
                    Some(v) if v.eq_ignore_ascii_case("false") => "false".to_owned(),
                    Some(v) => {
                        return Err(ErrorKind::invalid(format!(
                            "expecting boolean value for flag {flag_name}, not: {v}"
                        )));
                    }
                },
                FlagType::String | FlagType::Strings => match value {
                    Some(v) => v.to_owned(),
                    None => {
                        return Err(ErrorKind::invalid(format!(
                            "missing a value on flag: {flag_name}"
                        )));
                    }
                },
            };
            self.values.entry(key).or_default().push(stored);
        }
        Ok(self)
    }

    /// A string flag's value ("" when not given).
    pub(crate) fn get(&self, name: &str) -> String {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .cloned()
            .unwrap_or_default()
    }

    /// A string flag's value when given.
    pub(crate) fn get_opt(&self, name: &str) -> Option<String> {
        self.values.get(name).and_then(|v| v.last()).cloned()
    }

    /// A bool flag: `None` when not given.
    pub(crate) fn get_bool(&self, name: &str) -> Option<bool> {
        self.values
            .get(name)
            .and_then(|v| v.last())
            .map(|v| v == "true")
    }

    /// Every value of a repeatable flag.
    pub(crate) fn get_all(&self, name: &str) -> Vec<String> {
        self.values.get(name).cloned().unwrap_or_default()
    }

    /// The names of the flags given.
    pub(crate) fn used(&self) -> Vec<String> {
        self.values.keys().map(|k| (*k).to_owned()).collect()
    }
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_go_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `time.ParseDuration`, in nanoseconds: `[-+]` then `<number>[.<fraction>]<unit>` repeated,
/// units `ns us µs μs ms s m h`; a bare `0` is allowed.
pub(crate) fn parse_go_duration(text: &str) -> Option<i64> {
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += value * scale;
    }
    if total > 9.223_372_036_854_775e18 {
        return None;
    }
    let nanos = total as i64;
    Some(if negative { -nanos } else { nanos })
}

/// Docker's `units.RAMInBytes`: `<number>[.<fraction>][ ][kmgtp][i][b]`, binary multiples.
pub(crate) fn parse_ram_in_bytes(text: &str) -> Option<i64> {
    let number_len = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let number = &text[..number_len];
    if number.is_empty() || !number.as_bytes()[0].is_ascii_digit() || number.ends_with('.') {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let mut suffix = text[number_len..]
        .strip_prefix(' ')
        .unwrap_or(&text[number_len..]);
    let mut multiplier = 1.0;
    if let Some(c) = suffix.chars().next() {
        let exponent = match c.to_ascii_lowercase() {
            'k' => Some(1),
            'm' => Some(2),
            'g' => Some(3),
            't' => Some(4),
            'p' => Some(5),
            _ => None,
        };
        if let Some(e) = exponent {
            multiplier = 1024f64.powi(e);
            suffix = &suffix[1..];
        }
    }
    let suffix = suffix.strip_prefix(['i', 'I']).unwrap_or(suffix);
    let suffix = suffix.strip_prefix(['b', 'B']).unwrap_or(suffix);
    if !suffix.is_empty() {
        return None;
    }
    Some((value * multiplier) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_flags_like_bflags() {
        let flags = Flags::default()
            .string("from")
            .bool("link")
            .strings("exclude")
            .parse(&[
                "--from=a".into(),
                "--link".into(),
                "--exclude=x".into(),
                "--exclude=y".into(),
            ])
            .unwrap();
        assert_eq!(flags.get("from"), "a");
        assert_eq!(flags.get_bool("link"), Some(true));
        assert_eq!(flags.get_all("exclude"), ["x", "y"]);
        let err = Flags::default()
            .string("from")
            .parse(&["--form=a".into()])
            .unwrap_err();
        assert_eq!(err.to_string(), "unknown flag: --form (did you mean from?)");
        assert!(
            Flags::default()
                .string("from")
                .parse(&["--from".into()])
                .is_err()
        );
        assert!(
            Flags::default()
                .bool("link")
                .parse(&["--link=maybe".into()])
                .is_err()
        );
        assert!(
            Flags::default()
                .string("from")
                .parse(&["--from=a".into(), "--from=b".into()])
                .is_err()
        );
    }

    #[test]
    fn parses_go_durations_and_sizes() {
        assert_eq!(parse_go_duration("5s"), Some(5_000_000_000));
        assert_eq!(parse_go_duration("1m30s"), Some(90_000_000_000));
        assert_eq!(parse_go_duration("1.5ms"), Some(1_500_000));
        assert_eq!(parse_go_duration("0"), Some(0));
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration("s"), None);
        assert_eq!(parse_ram_in_bytes("64m"), Some(64 << 20));
        assert_eq!(parse_ram_in_bytes("1.5KiB"), Some(1536));
        assert_eq!(parse_ram_in_bytes("10"), Some(10));
        assert_eq!(parse_ram_in_bytes("x"), None);
    }
}
