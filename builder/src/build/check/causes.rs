//! The causes of a miss: which parent broke the chain, and what the cache reference's config
//! says differs (history text, build args, `ENV`, base layers, platform).

use inlay_core::Digest;
use inlay_core::cache::CacheStore;
use inlay_core::cache::artifact::{ExplainFacts, changed_paths};
use inlay_core::cache::matcher::{Alternative, KeyMatches};
use inlay_core::cachekey::{KeyGraph, KeyId, KeyKind, RecordKey};
use inlay_core::op::{Op, VertexId};

use super::history::{
    config_platform, diff_ids, env_before, history, layer_entries, run_parts, strip_marker,
};
use super::{CacheRefImage, MissCause};
use crate::build::{BuildRequest, Prepared};

pub(super) struct Context<'a> {
    pub(super) prepared: &'a Prepared,
    pub(super) matches: &'a KeyMatches,
    pub(super) refs: &'a [CacheRefImage],
    pub(super) dockerfile: Vec<String>,
    pub(super) request: &'a BuildRequest,
    /// This build's explain facts, computed when a cache reference has facts to compare.
    pub(super) facts: Option<ExplainFacts>,
}

impl Context<'_> {
    fn keys(&self) -> &KeyGraph {
        &self.prepared.plan.keys
    }

    fn store(&self) -> &CacheStore {
        &self.prepared.imported
    }

    pub(super) fn causes(&self, key: Option<KeyId>, vertex: VertexId) -> Vec<MissCause> {
        if self.store().origins().is_empty() {
            return vec![MissCause::NoCacheRef];
        }
        let Some(key) = key else {
            return vec![MissCause::Random];
        };
        let node = self.keys().node(key);
        let RecordKey::Stable(digest) = &node.record else {
            return vec![MissCause::Random];
        };
        if !self.matches.of(key).is_empty() {
            return vec![MissCause::NoResult];
        }
        // Another platform changes every key below the base: say so first.
        if let Some(platform) = self.platform_cause() {
            return vec![platform];
        }
        // A parent that matched nothing: the chain broke there (or a root changed). A content
        // key says more than the (random) local source beside it.
        for links in &node.inputs {
            if links.iter().any(|l| !self.matches.of(l.key).is_empty()) {
                continue;
            }
            let link = links
                .iter()
                .find(|l| matches!(self.keys().node(l.key).kind, KeyKind::Content { .. }))
                .or_else(|| links.first());
            let Some(link) = link else {
                continue;
            };
            return self.parent_causes(link.key);
        }
        // Every parent hit: the step itself changed.
        let alternatives: Vec<Vec<Alternative<'_>>> = node
            .inputs
            .iter()
            .map(|links| {
                links
                    .iter()
                    .map(|l| Alternative {
                        parents: self.matches.of(l.key),
                        selector: l.selector.as_ref(),
                    })
                    .collect()
            })
            .collect();
        let explanation = self.store().explain_miss(digest, &alternatives);
        let nearest = explanation.nearest.first().map(|n| n.digest.clone());
        let mut causes = self.history_causes(vertex);
        if causes.is_empty() {
            causes.extend(self.facts_command(vertex, nearest.as_ref()));
        }
        if causes.is_empty() {
            causes.push(MissCause::Definition { nearest });
        }
        causes
    }

    /// The old text of the record built on the same parent, from inlay's facts (steps of
    /// stages the image history does not carry).
    fn facts_command(&self, vertex: VertexId, nearest: Option<&Digest>) -> Option<MissCause> {
        let old = self.old_facts()?.step_with_record(nearest?)?;
        let new = self.step_description(vertex);
        (old.description != new).then(|| MissCause::Command {
            old: old.description.clone(),
            new,
        })
    }

    fn old_facts(&self) -> Option<&ExplainFacts> {
        self.reference_for()?.facts.as_ref()
    }

    fn step_description(&self, vertex: VertexId) -> String {
        let plan = &self.prepared.plan;
        plan.lowered
            .steps
            .iter()
            .find(|s| s.output.vertex == vertex)
            .map_or_else(
                || plan.lowered.graph.vertex(vertex).description.clone(),
                |s| s.description.clone(),
            )
    }

    /// The files that differ under a `COPY`, by inlay's facts on both sides.
    fn changed_files(&self, vertex: VertexId) -> Vec<String> {
        let description = self.step_description(vertex);
        let (Some(old), Some(new)) = (
            self.old_facts()
                .and_then(|f| f.step_described(&description)),
            self.facts
                .as_ref()
                .and_then(|f| f.step_described(&description)),
        ) else {
            return Vec::new();
        };
        changed_paths(&old.paths, &new.paths)
    }

    /// Why the parent `key` matched nothing.
    fn parent_causes(&self, key: KeyId) -> Vec<MissCause> {
        let plan = &self.prepared.plan;
        match self.keys().node(key).kind {
            KeyKind::Content { vertex, input } => {
                let paths = plan
                    .content
                    .iter()
                    .filter(|c| c.vertex == vertex && c.input == input)
                    .flat_map(|c| c.selectors.iter().map(|s| s.path.clone()))
                    .collect();
                vec![MissCause::CopySources {
                    paths,
                    changed: self.changed_files(vertex),
                }]
            }
            KeyKind::Definition { vertex, .. } => {
                if let Op::Source(source) = &plan.lowered.graph.vertex(vertex).op {
                    if let Some(reference) = source.identifier.strip_prefix("docker-image://") {
                        return self.base_causes(reference);
                    }
                    return vec![MissCause::ParentMissed {
                        step: plan.lowered.graph.vertex(vertex).description.clone(),
                    }];
                }
                vec![MissCause::ParentMissed {
                    step: self.chain_break(key),
                }]
            }
            _ => vec![MissCause::Definition { nearest: None }],
        }
    }

    /// The description of the first step up the chain from `key` that missed with every
    /// parent hitting (or whose root changed).
    fn chain_break(&self, key: KeyId) -> String {
        let plan = &self.prepared.plan;
        let mut at = key;
        loop {
            let node = self.keys().node(at);
            let unmatched_parent = node.inputs.iter().find_map(|links| {
                if links.iter().any(|l| !self.matches.of(l.key).is_empty()) {
                    None
                } else {
                    links.first().map(|l| l.key)
                }
            });
            match unmatched_parent {
                Some(parent)
                    if matches!(self.keys().node(parent).kind, KeyKind::Definition { vertex, .. }
                        if !matches!(plan.lowered.graph.vertex(vertex).op, Op::Source(_))) =>
                {
                    at = parent;
                }
                _ => break,
            }
        }
        let KeyKind::Definition { vertex, .. } = self.keys().node(at).kind else {
            return "an earlier step".to_owned();
        };
        plan.lowered
            .steps
            .iter()
            .find(|s| s.output.vertex == vertex)
            .map_or_else(
                || plan.lowered.graph.vertex(vertex).description.clone(),
                |s| s.description.clone(),
            )
    }

    fn reference_for(&self) -> Option<&CacheRefImage> {
        self.refs.first()
    }

    /// The cache reference's platform when it is not the build's.
    fn platform_cause(&self) -> Option<MissCause> {
        let build = self
            .prepared
            .input
            .platform
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let cache = config_platform(&self.reference_for()?.config);
        (cache != build).then_some(MissCause::Platform { cache, build })
    }

    /// The base image root matched nothing: another base (or the same layers under another
    /// manifest).
    fn base_causes(&self, pinned: &str) -> Vec<MissCause> {
        // The graph pins the base by digest: `name:tag@sha256:...`.
        let (reference, digest) = match pinned.split_once('@') {
            Some((r, d)) => (r, d.parse::<Digest>().ok()),
            None => (pinned, None),
        };
        let base = self.prepared.input.bases.iter().find(|b| {
            let name = b.reference.to_string();
            name == pinned || name == reference
        });
        let digest = digest.or_else(|| base.and_then(|b| b.manifest.clone()));
        let old_digest = self.old_facts().and_then(|f| {
            f.bases
                .iter()
                .find(|b| b.reference == reference || b.reference == pinned)
                .and_then(|b| b.digest.clone())
        });
        let Some(old) = self.reference_for() else {
            return vec![MissCause::BaseImage {
                reference: reference.to_owned(),
                digest,
                old: old_digest,
                detail: "no cache reference config to compare with".to_owned(),
            }];
        };
        let new_layers: Vec<String> = base
            .map(|b| {
                b.config
                    .rootfs
                    .diff_ids
                    .iter()
                    .map(ToString::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let old_layers = diff_ids(&old.config);
        let detail = if old_layers.starts_with(&new_layers) {
            "same layers, another image digest".to_owned()
        } else {
            let shared = old_layers
                .iter()
                .zip(&new_layers)
                .take_while(|(a, b)| a == b)
                .count();
            format!(
                "its {} layers are not the cache image's first layers ({shared} shared)",
                new_layers.len()
            )
        };
        vec![MissCause::BaseImage {
            reference: reference.to_owned(),
            digest,
            old: old_digest,
            detail,
        }]
    }

    /// What the cache reference's history says differs for the step of `vertex` (when the
    /// step is on the final chain, whose history the image carries).
    fn history_causes(&self, vertex: VertexId) -> Vec<MissCause> {
        let plan = &self.prepared.plan;
        let chain = plan.layer_chain();
        let Some(position) = chain.iter().position(|o| o.vertex == vertex) else {
            return Vec::new();
        };
        let Some(old) = self.reference_for() else {
            return Vec::new();
        };
        let Ok(new_config) = serde_json::to_value(&plan.lowered.image) else {
            return Vec::new();
        };
        let new_history = history(&new_config);
        let old_history = history(&old.config);
        let new_ops: Vec<usize> = layer_entries(&new_history);
        let old_ops: Vec<usize> = layer_entries(&old_history);
        let Some(base_count) = new_ops.len().checked_sub(chain.len()) else {
            return Vec::new();
        };
        let (Some(&new_at), Some(&old_at)) = (
            new_ops.get(base_count + position),
            old_ops.get(base_count + position),
        ) else {
            return Vec::new();
        };
        let new_text = &new_history[new_at].created_by;
        let old_text = &old_history[old_at].created_by;
        let mut causes = Vec::new();
        if new_text != old_text {
            match (run_parts(old_text), run_parts(new_text)) {
                (Some((old_args, old_cmd)), Some((new_args, new_cmd))) if old_cmd == new_cmd => {
                    let mut names: Vec<&String> = old_args.keys().chain(new_args.keys()).collect();
                    names.sort();
                    names.dedup();
                    for name in names {
                        if old_args.get(name) != new_args.get(name) {
                            causes.push(MissCause::Arg {
                                name: name.clone(),
                                old: old_args.get(name).cloned(),
                                new: new_args.get(name).cloned(),
                                line: self.declared("ARG", name, self.step_line(vertex)),
                            });
                        }
                    }
                }
                _ => causes.push(MissCause::Command {
                    old: strip_marker(old_text).to_owned(),
                    new: strip_marker(new_text).to_owned(),
                }),
            }
            return causes;
        }
        // The text is the same: an ENV in effect may differ (BuildKit puts it in the exec's
        // meta, not in the history text).
        // The stage's own entries start after the base's last layer entry.
        let own_start = |ops: &[usize]| {
            base_count
                .checked_sub(1)
                .and_then(|i| ops.get(i))
                .map_or(0, |i| i + 1)
        };
        let own_start_new = own_start(&new_ops);
        let own_start_old = own_start(&old_ops);
        let new_env = env_before(&new_history, own_start_new, new_at);
        let old_env = env_before(&old_history, own_start_old, old_at);
        let mut names: Vec<&String> = old_env.keys().chain(new_env.keys()).collect();
        names.sort();
        names.dedup();
        for name in names {
            if old_env.get(name) != new_env.get(name) {
                causes.push(MissCause::Env {
                    name: name.clone(),
                    old: old_env.get(name).cloned(),
                    new: new_env.get(name).cloned(),
                    line: self.declared("ENV", name, self.step_line(vertex)),
                });
            }
        }
        causes
    }

    fn step_line(&self, vertex: VertexId) -> usize {
        self.prepared
            .plan
            .lowered
            .steps
            .iter()
            .find(|s| s.output.vertex == vertex)
            .map_or(usize::MAX, |s| s.position.line)
    }

    /// The line of the last `KEYWORD NAME...` before `before` (a text scan: the instruction's
    /// first line).
    fn declared(&self, keyword: &str, name: &str, before: usize) -> Option<usize> {
        let _ = self.request;
        self.dockerfile
            .iter()
            .enumerate()
            .take(before.saturating_sub(1))
            .filter(|(_, line)| {
                let mut words = line.split_whitespace();
                words
                    .next()
                    .is_some_and(|w| w.eq_ignore_ascii_case(keyword))
                    && words.any(|w| {
                        w.split(['=', ' ']).next() == Some(name)
                            || w.trim_start_matches('\\') == name
                    })
            })
            .map(|(i, _)| i + 1)
            .next_back()
    }
}
