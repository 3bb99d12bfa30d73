//! "Did you mean ...?" suggestions, as BuildKit's `util/suggest` makes them: the option at the
//! smallest Levenshtein distance below 3, with the case of what the user wrote.

/// The option closest to `value`, if one is at distance 1 or 2. An exact match means the value
/// was fine and the error is about something else, so nothing is suggested.
pub(crate) fn closest(value: &str, options: &[&str], case_sensitive: bool) -> Option<String> {
    let folded = if case_sensitive {
        value.to_owned()
    } else {
        value.to_lowercase()
    };
    let mut best: Option<String> = None;
    let mut min = 3;
    for option in options {
        let candidate = if case_sensitive {
            (*option).to_owned()
        } else {
            option.to_lowercase()
        };
        if candidate == folded {
            return None;
        }
        let distance = levenshtein(&folded, &candidate);
        if distance < min {
            min = distance;
            best = Some(if case_sensitive {
                candidate
            } else {
                match_case(&candidate, value)
            });
        }
    }
    best
}

fn match_case(candidate: &str, original: &str) -> String {
    if original == original.to_lowercase() {
        candidate.to_lowercase()
    } else if original == original.to_uppercase() {
        candidate.to_uppercase()
    } else {
        candidate.to_owned()
    }
}

fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        current[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_options_in_the_users_case() {
        let options = ["RUN", "COPY", "FROM"];
        assert_eq!(closest("RUNN", &options, false).as_deref(), Some("RUN"));
        assert_eq!(closest("runn", &options, false).as_deref(), Some("run"));
        assert_eq!(closest("Cpy", &options, false).as_deref(), Some("copy"));
        assert_eq!(closest("BANANA", &options, false), None);
        assert_eq!(closest("run", &options, false), None);
    }
}
