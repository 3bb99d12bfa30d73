//! Reading the cache reference's image config: history entries, `RUN` texts, `ENV` values,
//! platform and layers; and the verdict on the final image.

use std::collections::BTreeMap;

use inlay_frontend_dockerfile::stages;
use serde_json::Value;

use super::{CacheRefImage, ImageVerdict, StepCheck};
use crate::build::{BuildRequest, Prepared};

/// One history entry, as much of it as the explanations read.
#[derive(Debug, Clone)]
pub(super) struct HistoryEntry {
    pub(super) created_by: String,
    pub(super) empty_layer: bool,
}

pub(super) fn history(config: &Value) -> Vec<HistoryEntry> {
    config
        .get("history")
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .map(|h| HistoryEntry {
                    created_by: h
                        .get("created_by")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                    empty_layer: h
                        .get("empty_layer")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The positions of the history entries that made a layer.
pub(super) fn layer_entries(history: &[HistoryEntry]) -> Vec<usize> {
    history
        .iter()
        .enumerate()
        .filter(|(_, h)| !h.empty_layer)
        .map(|(i, _)| i)
        .collect()
}

pub(super) fn strip_marker(text: &str) -> &str {
    text.strip_suffix(" # buildkit").unwrap_or(text)
}

/// `RUN |N K=V ... cmd` → the args and the command (BuildKit's `RUN` history text).
pub(super) fn run_parts(text: &str) -> Option<(BTreeMap<String, String>, String)> {
    let rest = strip_marker(text).strip_prefix("RUN ")?;
    let mut args = BTreeMap::new();
    let Some(counted) = rest.strip_prefix('|') else {
        return Some((args, rest.to_owned()));
    };
    let (count, mut rest) = counted.split_once(' ')?;
    let count: usize = count.parse().ok()?;
    for _ in 0..count {
        let (word, after) = rest.split_once(' ').unwrap_or((rest, ""));
        let (k, v) = word.split_once('=')?;
        args.insert(k.to_owned(), v.to_owned());
        rest = after;
    }
    Some((args, rest.to_owned()))
}

/// The `ENV` values set by history entries in `from..to`.
pub(super) fn env_before(
    history: &[HistoryEntry],
    from: usize,
    to: usize,
) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for h in history.iter().take(to).skip(from) {
        if let Some(rest) = h.created_by.strip_prefix("ENV ") {
            for word in rest.split_whitespace() {
                if let Some((k, v)) = word.split_once('=') {
                    env.insert(k.to_owned(), v.trim_matches('"').to_owned());
                }
            }
        }
    }
    env
}

pub(super) fn config_platform(config: &Value) -> String {
    let field = |name: &str| {
        config
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    stages::Platform {
        os: field("os"),
        architecture: field("architecture"),
        variant: field("variant"),
    }
    .to_string()
}

pub(super) fn diff_ids(config: &Value) -> Vec<String> {
    config
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .map(|ids| {
            ids.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Compares the would-be image with the first cache reference's.
pub(super) fn image_verdict(
    prepared: &Prepared,
    refs: &[CacheRefImage],
    steps: &[StepCheck],
    request: &BuildRequest,
) -> ImageVerdict {
    let Some(old) = refs.first() else {
        return ImageVerdict::Unknown;
    };
    let plan = &prepared.plan;
    let mut reasons = Vec::new();
    let chain = plan.layer_chain();
    let missed = chain
        .iter()
        .filter(|o| {
            plan.lowered
                .steps
                .iter()
                .zip(1..)
                .any(|(s, _)| s.output == **o && !step_hit(steps, &s.description))
        })
        .count();
    if missed > 0 {
        reasons.push(format!("{missed} step(s) of the final chain would run"));
    } else if let Some(layers) = final_layers(prepared) {
        if layers != diff_ids(&old.config) {
            reasons.push("the layers differ from the cache image's".to_owned());
        }
    }
    let Ok(new) = serde_json::to_value(&plan.lowered.image) else {
        return ImageVerdict::Unknown;
    };
    let new_texts: Vec<String> = history(&new).into_iter().map(|h| h.created_by).collect();
    let old_texts: Vec<String> = history(&old.config)
        .into_iter()
        .map(|h| h.created_by)
        .collect();
    if new_texts != old_texts {
        reasons.push("the history differs".to_owned());
    }
    let mut new_container = new.get("config").cloned().unwrap_or(Value::Null);
    if !request.labels.is_empty() {
        if let Some(obj) = new_container.as_object_mut() {
            let labels = obj
                .entry("Labels")
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
            if let Some(l) = labels.as_object_mut() {
                for (k, v) in &request.labels {
                    l.insert(k.clone(), Value::String(v.clone()));
                }
            }
        }
    }
    if !same_container_config(&new_container, old.config.get("config")) {
        reasons.push("the container config (env, cmd, labels...) differs".to_owned());
    }
    if config_platform(&new) != config_platform(&old.config) {
        reasons.push("the platform differs".to_owned());
    }
    match request.source_date_epoch {
        None => reasons.push(
            "the creation time is now (set SOURCE_DATE_EPOCH to reproduce the digest)".to_owned(),
        ),
        Some(epoch) => {
            let old_created = old
                .config
                .get("created")
                .and_then(Value::as_str)
                .and_then(|t| t.parse::<inlay_core::cache::Timestamp>().ok());
            let expected = crate::build::timestamp(epoch);
            if old_created.map(|t| t.unix_nanos()) != Some(expected.unix_nanos()) {
                reasons.push(format!(
                    "the creation time differs (SOURCE_DATE_EPOCH gives {expected})"
                ));
            }
        }
    }
    if reasons.is_empty() {
        ImageVerdict::Unchanged {
            reference: old.reference.clone(),
            digest: old.digest.clone(),
        }
    } else {
        ImageVerdict::Changed {
            reference: old.reference.clone(),
            reasons,
        }
    }
}

fn step_hit(steps: &[StepCheck], description: &str) -> bool {
    steps
        .iter()
        .find(|s| s.description == description)
        .is_none_or(StepCheck::is_hit)
}

/// Container configs compare without zero-valued fields (`null`, `false`, `""`, empty):
/// Docker's and BuildKit's serialisers differ there.
fn same_container_config(new: &Value, old: Option<&Value>) -> bool {
    fn clean(v: &Value) -> Value {
        match v {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(_, v)| {
                        !v.is_null()
                            && v.as_bool() != Some(false)
                            && v.as_str() != Some("")
                            && v.as_object().is_none_or(|o| !o.is_empty())
                            && v.as_array().is_none_or(|a| !a.is_empty())
                    })
                    .map(|(k, v)| (k.clone(), clean(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    clean(new) == clean(old.unwrap_or(&Value::Null))
}

/// The diffIDs of the final step's hit, base first.
fn final_layers(prepared: &Prepared) -> Option<Vec<String>> {
    let plan = &prepared.plan;
    let store = &prepared.imported;
    let matches = store.match_keys(&plan.keys);
    let hit = plan
        .keys
        .keys_of(plan.lowered.target)
        .iter()
        .find_map(|k| store.best_result(matches.of(*k)))?;
    hit.result
        .layers
        .iter()
        .map(|d| d.uncompressed_digest().map(|d| d.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_history_text_splits_into_args_and_command() {
        let (args, cmd) = run_parts("RUN |2 A=1 B=two /bin/sh -c echo $A # buildkit").unwrap();
        assert_eq!(args.get("A").unwrap(), "1");
        assert_eq!(args.get("B").unwrap(), "two");
        assert_eq!(cmd, "/bin/sh -c echo $A");
        let (args, cmd) = run_parts("RUN /bin/sh -c true # buildkit").unwrap();
        assert!(args.is_empty());
        assert_eq!(cmd, "/bin/sh -c true");
        assert!(run_parts("COPY a b # buildkit").is_none());
    }

    #[test]
    fn env_entries_fold_into_the_values_in_effect() {
        let h = |t: &str| HistoryEntry {
            created_by: t.to_owned(),
            empty_layer: true,
        };
        let history = vec![h("ENV A=1"), h("ENV B=2 A=3"), h("ENV C=4")];
        let env = env_before(&history, 0, 2);
        assert_eq!(env.get("A").unwrap(), "3");
        assert_eq!(env.get("B").unwrap(), "2");
        assert!(!env.contains_key("C"));
    }

    proptest::proptest! {
        /// History texts come from any image: reading them never panics, and a `RUN` text
        /// written from args and a command reads back as those.
        #[test]
        fn history_texts_never_panic_and_run_texts_round_trip(
            text in ".{0,80}",
            args in proptest::collection::btree_map("[A-Z][A-Z0-9_]{0,6}", "[a-z0-9.]{0,6}", 0..4),
            cmd in "[a-z /$>.-]{1,30}",
        ) {
            let _ = run_parts(&text);
            let _ = env_before(&[HistoryEntry { created_by: text.clone(), empty_layer: true }], 0, 1);
            let mut words = vec!["RUN".to_owned()];
            if !args.is_empty() {
                words.push(format!("|{}", args.len()));
                words.extend(args.iter().map(|(k, v)| format!("{k}={v}")));
            }
            words.push(format!("/bin/sh -c {cmd} # buildkit"));
            let written = words.join(" ");
            let (read_args, read_cmd) = run_parts(&written).unwrap();
            proptest::prop_assert_eq!(read_args, args);
            proptest::prop_assert_eq!(read_cmd, format!("/bin/sh -c {cmd}"));
        }
    }
}
