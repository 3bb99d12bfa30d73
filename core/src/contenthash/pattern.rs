//! Shell-style matching with the exact semantics of Go's `path.Match`, which BuildKit applies to
//! whole cleaned paths when a `COPY` source contains wildcards (spec 6.5).
//!
//! Rules mirrored: `*` matches any run of non-`/` characters, `?` one non-`/` character,
//! `[...]` / `[^...]` a character class (which, unlike `?`, may match `/`), `\` escapes the next
//! character. A malformed pattern is reported as an error, but only once Go would notice it: a
//! successful match returns before the rest of the pattern is validated.

/// The pattern is malformed (Go's `path.ErrBadPattern`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadPattern;

/// Whether `name` matches the whole of `pattern`, as Go's `path.Match` decides.
pub(crate) fn path_match(pattern: &str, name: &str) -> Result<bool, BadPattern> {
    let mut pattern = pattern.as_bytes();
    let mut name = name.as_bytes();
    'chunks: while !pattern.is_empty() {
        let (star, chunk, rest) = split_chunk(pattern);
        pattern = rest;
        if star && chunk.is_empty() {
            // A trailing star swallows the rest of one path component.
            return Ok(!name.contains(&b'/'));
        }
        let attempt = match_chunk(chunk, name);
        if let Ok(Some(after)) = attempt {
            // The last chunk must consume the whole name; otherwise let the star retry.
            if after.is_empty() || !pattern.is_empty() {
                name = after;
                continue;
            }
        }
        attempt?;
        if star {
            let mut skip = 0;
            while skip < name.len() && name[skip] != b'/' {
                match match_chunk(chunk, &name[skip + 1..])? {
                    Some(after) if pattern.is_empty() && !after.is_empty() => {}
                    Some(after) => {
                        name = after;
                        continue 'chunks;
                    }
                    None => {}
                }
                skip += 1;
            }
        }
        // No match: Go still validates the remaining chunks before answering false.
        while !pattern.is_empty() {
            let (_, chunk, rest) = split_chunk(pattern);
            pattern = rest;
            match_chunk(chunk, b"")?;
        }
        return Ok(false);
    }
    Ok(name.is_empty())
}

/// Splits off leading stars and the following run of non-star pattern bytes (stars inside a
/// character class belong to the run).
fn split_chunk(pattern: &[u8]) -> (bool, &[u8], &[u8]) {
    let stars = pattern.iter().take_while(|&&b| b == b'*').count();
    let pattern = &pattern[stars..];
    let mut in_class = false;
    let mut i = 0;
    while i < pattern.len() {
        match pattern[i] {
            b'\\' if i + 1 < pattern.len() => i += 1,
            b'[' => in_class = true,
            b']' => in_class = false,
            b'*' if !in_class => return (stars > 0, &pattern[..i], &pattern[i..]),
            _ => {}
        }
        i += 1;
    }
    (stars > 0, pattern, &[])
}

/// Matches a star-free chunk against the start of `name`; `Some(rest)` on success. After a
/// mismatch the chunk is still scanned to the end so that syntax errors surface as Go reports
/// them.
fn match_chunk<'n>(mut chunk: &[u8], mut name: &'n [u8]) -> Result<Option<&'n [u8]>, BadPattern> {
    let mut failed = false;
    while let Some(&first) = chunk.first() {
        if !failed && name.is_empty() {
            failed = true;
        }
        match first {
            b'[' => {
                let mut ch = 0u32;
                if !failed {
                    let (decoded, len) = decode_char(name);
                    ch = decoded;
                    name = &name[len..];
                }
                chunk = &chunk[1..];
                let negated = chunk.first() == Some(&b'^');
                if negated {
                    chunk = &chunk[1..];
                }
                let mut matched = false;
                let mut ranges = 0;
                loop {
                    if chunk.first() == Some(&b']') && ranges > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let (lo, rest) = class_char(chunk)?;
                    chunk = rest;
                    let mut hi = lo;
                    if chunk.first() == Some(&b'-') {
                        let (upper, rest) = class_char(&chunk[1..])?;
                        hi = upper;
                        chunk = rest;
                    }
                    if lo <= ch && ch <= hi {
                        matched = true;
                    }
                    ranges += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            b'?' => {
                if !failed {
                    if name[0] == b'/' {
                        failed = true;
                    }
                    let (_, len) = decode_char(name);
                    name = &name[len..];
                }
                chunk = &chunk[1..];
            }
            _ => {
                if first == b'\\' {
                    chunk = &chunk[1..];
                    if chunk.is_empty() {
                        return Err(BadPattern);
                    }
                }
                if !failed {
                    if chunk[0] != name[0] {
                        failed = true;
                    }
                    name = &name[1..];
                }
                chunk = &chunk[1..];
            }
        }
    }
    Ok(if failed { None } else { Some(name) })
}

/// One possibly escaped character of a class; Go rejects a class that ends right after it.
fn class_char(chunk: &[u8]) -> Result<(u32, &[u8]), BadPattern> {
    let mut chunk = chunk;
    match chunk.first() {
        None | Some(b'-' | b']') => return Err(BadPattern),
        Some(b'\\') => {
            chunk = &chunk[1..];
            if chunk.is_empty() {
                return Err(BadPattern);
            }
        }
        Some(_) => {}
    }
    let (ch, len) = decode_char(chunk);
    if ch == INVALID && len == 1 {
        return Err(BadPattern);
    }
    let rest = &chunk[len..];
    if rest.is_empty() {
        return Err(BadPattern);
    }
    Ok((ch, rest))
}

/// Go's `utf8.RuneError`, what decoding yields for an invalid byte.
const INVALID: u32 = 0xFFFD;

/// Decodes one UTF-8 character like Go's `utf8.DecodeRuneInString`: invalid input yields
/// `(U+FFFD, 1)`, empty input `(U+FFFD, 0)`.
fn decode_char(bytes: &[u8]) -> (u32, usize) {
    let Some(&lead) = bytes.first() else {
        return (INVALID, 0);
    };
    let len = match lead {
        0x00..=0x7F => return (u32::from(lead), 1),
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return (INVALID, 1),
    };
    match bytes.get(..len).map(std::str::from_utf8) {
        Some(Ok(text)) => text
            .chars()
            .next()
            .map_or((INVALID, 1), |c| (u32::from(c), len)),
        _ => (INVALID, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> Result<bool, BadPattern> {
        path_match(pattern, name)
    }

    #[test]
    fn go_match_table() {
        // Cases taken from the documented semantics of Go's path.Match.
        let table: &[(&str, &str, Result<bool, BadPattern>)] = &[
            ("abc", "abc", Ok(true)),
            ("*", "abc", Ok(true)),
            ("*c", "abc", Ok(true)),
            ("a*", "a", Ok(true)),
            ("a*", "abc", Ok(true)),
            ("a*", "ab/c", Ok(false)),
            ("a*/b", "abc/b", Ok(true)),
            ("a*/b", "a/c/b", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Ok(false)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
            ("ab[c]", "abc", Ok(true)),
            ("ab[b-d]", "abc", Ok(true)),
            ("ab[e-g]", "abc", Ok(false)),
            ("ab[^c]", "abc", Ok(false)),
            ("ab[^b-d]", "abc", Ok(false)),
            ("ab[^e-g]", "abc", Ok(true)),
            ("a\\*b", "a*b", Ok(true)),
            ("a\\*b", "ab", Ok(false)),
            ("a?b", "a☺b", Ok(true)),
            ("a[^a]b", "a☺b", Ok(true)),
            ("a???b", "a☺b", Ok(false)),
            ("a[^a][^a][^a]b", "a☺b", Ok(false)),
            ("[a-ζ]*", "α", Ok(true)),
            ("*[a-ζ]", "A", Ok(false)),
            ("a?b", "a/b", Ok(false)),
            ("a*b", "a/b", Ok(false)),
            ("[\\]a]", "]", Ok(true)),
            ("[\\-]", "-", Ok(true)),
            ("[x\\-]", "x", Ok(true)),
            ("[x\\-]", "-", Ok(true)),
            ("[x\\-]", "z", Ok(false)),
            ("[\\-x]", "x", Ok(true)),
            ("[\\-x]", "-", Ok(true)),
            ("[\\-x]", "a", Ok(false)),
            ("[]a]", "]", Err(BadPattern)),
            ("[-]", "-", Err(BadPattern)),
            ("[x-]", "x", Err(BadPattern)),
            ("[x-]", "-", Err(BadPattern)),
            ("[x-]", "z", Err(BadPattern)),
            ("[-x]", "x", Err(BadPattern)),
            ("[-x]", "-", Err(BadPattern)),
            ("[-x]", "a", Err(BadPattern)),
            ("\\", "a", Err(BadPattern)),
            ("[a-b-c]", "a", Err(BadPattern)),
            ("[", "a", Err(BadPattern)),
            ("[^", "a", Err(BadPattern)),
            ("[^bc", "a", Err(BadPattern)),
            ("a[", "a", Err(BadPattern)),
            ("a[", "ab", Err(BadPattern)),
            ("a[", "x", Err(BadPattern)),
            ("a/b[", "x", Err(BadPattern)),
            ("*x", "xxx", Ok(true)),
            ("/*.txt", "/a.txt", Ok(true)),
            ("/*.txt", "/d/a.txt", Ok(false)),
            ("/*.txt", "", Ok(false)),
            ("", "", Ok(true)),
        ];
        for (pattern, name, want) in table {
            assert_eq!(m(pattern, name), *want, "match({pattern:?}, {name:?})");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(pattern in "[a-c*?\\[\\]^\\\\/-]{0,12}", name in "[a-c/-]{0,12}") {
            let _ = path_match(&pattern, &name);
        }

        #[test]
        fn literal_patterns_match_themselves(name in "[a-z./]{0,16}") {
            proptest::prop_assert_eq!(path_match(&name, &name), Ok(true));
        }
    }
}
