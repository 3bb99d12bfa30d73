//! The `WWW-Authenticate` header (RFC 7235 challenges), as registries send it.
//!
//! A pure function of the header text: it accepts the sloppy forms registries produce (missing
//! spaces, unquoted values, several challenges in one header) and returns what it could read. It
//! never panics, whatever the input (a property test holds it to that).

/// One authentication challenge: a scheme and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The scheme, lower-cased (`bearer`, `basic`, ...).
    pub scheme: String,
    /// Parameters in order; names lower-cased, values unquoted.
    pub params: Vec<(String, String)>,
}

impl Challenge {
    /// The value of parameter `name` (lower-case), if present.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `scope` parameter split into its space-separated scopes.
    pub fn scopes(&self) -> Vec<String> {
        self.param("scope")
            .map(|s| {
                s.split(' ')
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~/:".contains(c)
}

struct Cursor<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
}

impl Cursor<'_> {
    fn skip_ws(&mut self) {
        while self.chars.next_if(|c| c.is_whitespace()).is_some() {}
    }

    fn skip_ws_and_commas(&mut self) {
        while self
            .chars
            .next_if(|c| c.is_whitespace() || *c == ',')
            .is_some()
        {}
    }

    fn token(&mut self) -> String {
        let mut out = String::new();
        while let Some(c) = self.chars.next_if(|c| is_token_char(*c)) {
            out.push(c);
        }
        out
    }

    /// A quoted string after its opening quote, with `\` escapes; an unterminated one ends the
    /// input.
    fn quoted(&mut self) -> String {
        let mut out = String::new();
        while let Some(c) = self.chars.next() {
            match c {
                '"' => break,
                '\\' => {
                    if let Some(next) = self.chars.next() {
                        out.push(next);
                    }
                }
                other => out.push(other),
            }
        }
        out
    }

    /// A parameter value: quoted, or everything up to the next comma.
    fn value(&mut self) -> String {
        self.skip_ws();
        if self.chars.next_if_eq(&'"').is_some() {
            return self.quoted();
        }
        let mut out = String::new();
        while let Some(c) = self.chars.next_if(|c| *c != ',') {
            out.push(c);
        }
        out.trim_end().to_owned()
    }

    /// Skips one character the grammar has no place for.
    fn skip_junk(&mut self) {
        self.chars.next();
    }
}

/// Parses every challenge in a `WWW-Authenticate` header value.
///
/// ```
/// use inlay_registry::challenge::parse_challenges;
///
/// let c = parse_challenges(r#"Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull""#);
/// assert_eq!(c[0].scheme, "bearer");
/// assert_eq!(c[0].param("realm"), Some("https://auth.example/token"));
/// assert_eq!(c[0].scopes(), vec!["repository:a/b:pull"]);
/// ```
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut cur = Cursor {
        chars: header.chars().peekable(),
    };
    let mut out: Vec<Challenge> = Vec::new();
    loop {
        cur.skip_ws_and_commas();
        if cur.chars.peek().is_none() {
            break;
        }
        let word = cur.token();
        if word.is_empty() {
            cur.skip_junk();
            continue;
        }
        cur.skip_ws();
        if cur.chars.next_if_eq(&'=').is_some() {
            // `name=value` belongs to the challenge being read; a parameter before any scheme,
            // or a token68 (`abc==`), has no challenge to go to and is dropped.
            let value = cur.value();
            if let Some(last) = out.last_mut() {
                // `=` padding of a token68 parses as an empty name; there is nothing to keep.
                if !word.is_empty() {
                    last.params.push((word.to_ascii_lowercase(), value));
                }
            }
        } else {
            out.push(Challenge {
                scheme: word.to_ascii_lowercase(),
                params: Vec::new(),
            });
            // A scheme may be followed directly by its first parameter without a comma.
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn docker_hub_challenge() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].param("service"), Some("registry.docker.io"));
        assert_eq!(c[0].scopes(), vec!["repository:library/busybox:pull,push"]);
    }

    #[test]
    fn several_challenges_and_odd_spacing() {
        let c = parse_challenges(
            r#"Basic realm="Registry Realm" , Bearer realm=https://x/token, service = "a \"b\"""#,
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some("Registry Realm"));
        assert_eq!(c[1].param("realm"), Some("https://x/token"));
        assert_eq!(c[1].param("service"), Some("a \"b\""));
    }

    #[test]
    fn multiple_scopes_split_on_spaces() {
        let c = parse_challenges(r#"Bearer realm="r",scope="repository:a:pull repository:b:pull""#);
        assert_eq!(
            c[0].scopes(),
            vec!["repository:a:pull", "repository:b:pull"]
        );
    }

    #[test]
    fn garbage_yields_nothing_much() {
        assert!(parse_challenges("").is_empty());
        assert!(parse_challenges("=\"").is_empty());
        let c = parse_challenges("Bearer realm=\"unterminated");
        assert_eq!(c[0].param("realm"), Some("unterminated"));
    }

    fn quote(s: &str) -> String {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    }

    proptest! {
        #[test]
        fn never_panics(s in ".*") {
            let _ = parse_challenges(&s);
        }

        #[test]
        fn never_panics_on_header_like_text(s in "[A-Za-z =,\"\\\\:/.]{0,80}") {
            let _ = parse_challenges(&s);
        }

        #[test]
        fn round_trips_quoted_params(
            scheme in "[A-Za-z][A-Za-z0-9]{0,8}",
            params in proptest::collection::vec(("[a-z][a-z0-9_]{0,8}", "[^\u{0}]{0,20}"), 0..5),
        ) {
            let rendered: Vec<String> = params.iter().map(|(k, v)| format!("{k}={}", quote(v))).collect();
            let header = format!("{scheme} {}", rendered.join(","));
            let parsed = parse_challenges(&header);
            prop_assert_eq!(parsed.len(), 1);
            prop_assert_eq!(&parsed[0].scheme, &scheme.to_ascii_lowercase());
            prop_assert_eq!(&parsed[0].params, &params);
        }
    }
}
