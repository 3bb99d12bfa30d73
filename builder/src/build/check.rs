//! `inlay build --check`: a dry run that says, step by step, whether the `--cache-from`
//! references would serve the build, and why not.
//!
//! [`check`] does everything a build does before its solve ([`super::prepare`]: the Dockerfile
//! read, the base images and every cache reference resolved by manifest and config, every key
//! computed) and then matches the keys against the imported records link by link, exactly as
//! the solver's [`super::ImportedCache`] does (spec section 4.6). Nothing runs and no layer is
//! downloaded. The local store is not asked: the check answers "what does the shared cache
//! hold", which is the question a CI runner with an empty store has.
//!
//! A miss is explained ([`MissCause`]). Records carry only digests, so the old side of a
//! difference is read where it exists: the cache reference's image config (its `history`
//! `created_by` texts, which for `RUN` hold the build args as `RUN |N K=V ... cmd`, its
//! `rootfs` and its platform), the other key profile's records (a cache written by another
//! BuildKit generation), and the links of the records themselves (a content key that changed
//! while the step's definition did not means its `COPY` sources changed).

use std::collections::BTreeMap;

use inlay_core::Digest;
use inlay_core::cache::CacheStore;
use inlay_core::cache::matcher::{Alternative, KeyMatches};
use inlay_core::cachekey::{KeyGraph, KeyId, KeyKind, KeyProfile, RecordKey};
use inlay_core::op::{Op, VertexId};
use inlay_frontend_dockerfile::stages;
use serde_json::Value;

use super::{BuildError, BuildReport, BuildRequest, Prepared, Session, prepare_on};
use crate::plan::{KeyPlan, plan_keys};
use crate::source::ImageSource as _;

/// What a cache reference resolved to, for the explanations (manifest and config only).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheRefImage {
    /// The reference as given.
    pub reference: String,
    /// The top-level manifest (or index) digest.
    pub digest: Digest,
    /// The image config of the build's platform (its history, rootfs and platform).
    pub config: Value,
}

/// The outcome of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// An imported record matched and has a result.
    Hit {
        /// The origin label (`REF linux/amd64`, `REF stages cache`).
        origin: String,
        /// The record digest that matched.
        record: Digest,
    },
    /// Nothing usable matched; the causes found, most specific first.
    Miss(Vec<MissCause>),
}

/// One step of the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepCheck {
    /// The step number (1-based, build order).
    pub number: usize,
    /// The step's vertex in the build graph.
    pub vertex: VertexId,
    /// `[stage i/n] INSTRUCTION`.
    pub description: String,
    /// The Dockerfile line of the instruction.
    pub line: usize,
    /// The step's record digest under the solved profile (`None`: random key).
    pub record: Option<Digest>,
    /// Whether the key lacks a content key that needs a built stage or image
    /// (`COPY --from`): a hit is then decided on the definition links only.
    pub content_pending: bool,
    /// Hit or miss.
    pub verdict: Verdict,
}

impl StepCheck {
    /// Whether the step hit.
    pub fn is_hit(&self) -> bool {
        matches!(self.verdict, Verdict::Hit { .. })
    }
}

/// Why a step missed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MissCause {
    /// No cache reference was given or none imported.
    NoCacheRef,
    /// The step's key is random (it can never hit).
    Random,
    /// The records match under another key profile: the cache was written by another
    /// BuildKit generation (or with `--cache-to type=inline,profile=...`).
    KeyProfile {
        /// The profile the cache matches.
        cache: KeyProfile,
        /// The profile this build keys with.
        build: KeyProfile,
    },
    /// The instruction text changed.
    Command {
        /// The cached image's history text.
        old: String,
        /// This build's.
        new: String,
    },
    /// A build arg value changed (seen in `RUN |N K=V ...`).
    Arg {
        /// The ARG.
        name: String,
        /// The cached value (`None`: not set then).
        old: Option<String>,
        /// This build's value.
        new: Option<String>,
        /// The line of the `ARG` instruction that declared it.
        line: Option<usize>,
    },
    /// An `ENV` value in effect changed.
    Env {
        /// The variable.
        name: String,
        /// The cached value.
        old: Option<String>,
        /// This build's value.
        new: Option<String>,
        /// The line of the `ENV` instruction that sets it now.
        line: Option<usize>,
    },
    /// The base image is not the one the cache was built on.
    BaseImage {
        /// The base reference.
        reference: String,
        /// Its digest now.
        digest: Option<Digest>,
        /// What differs (layers, or only the manifest).
        detail: String,
    },
    /// The files a `COPY`/`ADD` reads changed (content, mode or owner).
    CopySources {
        /// The source paths the content key covers.
        paths: Vec<String>,
    },
    /// The cache was built for another platform.
    Platform {
        /// The cached image's platform.
        cache: String,
        /// This build's.
        build: String,
    },
    /// The step's parent missed: the chain broke at an earlier step.
    ParentMissed {
        /// The step where the chain broke.
        step: String,
    },
    /// The parents hit but no record for this step hangs off them and no old text differs
    /// (a flag, a mount, a selector).
    Definition {
        /// A record built on the same parent before (its digest), when there is one.
        nearest: Option<Digest>,
    },
    /// The record matched but the cache holds no result for it (e.g. a stage the inline cache
    /// does not carry).
    NoResult,
}

impl MissCause {
    /// A short machine name (`command`, `arg`, `env`, `base`, `copy`, `platform`,
    /// `key-profile`, `parent`, `definition`, `no-result`, `no-cache-ref`, `random`).
    pub fn kind(&self) -> &'static str {
        match self {
            MissCause::NoCacheRef => "no-cache-ref",
            MissCause::Random => "random",
            MissCause::KeyProfile { .. } => "key-profile",
            MissCause::Command { .. } => "command",
            MissCause::Arg { .. } => "arg",
            MissCause::Env { .. } => "env",
            MissCause::BaseImage { .. } => "base",
            MissCause::CopySources { .. } => "copy",
            MissCause::Platform { .. } => "platform",
            MissCause::ParentMissed { .. } => "parent",
            MissCause::Definition { .. } => "definition",
            MissCause::NoResult => "no-result",
        }
    }
}

fn shown(value: Option<&String>) -> String {
    value.map_or_else(|| "(unset)".to_owned(), |v| format!("{v:?}"))
}

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(" (line {l})")).unwrap_or_default()
}

impl std::fmt::Display for MissCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MissCause::NoCacheRef => write!(f, "no cache reference imported"),
            MissCause::Random => write!(f, "the step's key is random and never matches"),
            MissCause::KeyProfile { cache, build } => write!(
                f,
                "the cache was keyed with {} but this build keys with {} (a cache made by \
                 another BuildKit generation; --cache-to type=inline,profile=both writes both)",
                cache.name(),
                build.name()
            ),
            MissCause::Command { old, new } => {
                write!(f, "the command changed: was {old:?}, now {new:?}")
            }
            MissCause::Arg {
                name,
                old,
                new,
                line,
            } => write!(
                f,
                "build arg {name}{} changed: was {}, now {}",
                at_line(*line),
                shown(old.as_ref()),
                shown(new.as_ref())
            ),
            MissCause::Env {
                name,
                old,
                new,
                line,
            } => write!(
                f,
                "ENV {name}{} changed: was {}, now {}",
                at_line(*line),
                shown(old.as_ref()),
                shown(new.as_ref())
            ),
            MissCause::BaseImage {
                reference,
                digest,
                detail,
            } => {
                write!(f, "the base image {reference}")?;
                if let Some(d) = digest {
                    write!(f, " (now {d})")?;
                }
                write!(f, " is not the one the cache was built on: {detail}")
            }
            MissCause::CopySources { paths } => {
                const SHOWN: usize = 5;
                write!(f, "the COPY sources changed (content, mode or owner)")?;
                if !paths.is_empty() {
                    let list: Vec<&str> = paths.iter().take(SHOWN).map(String::as_str).collect();
                    write!(f, " under {}", list.join(", "))?;
                    if paths.len() > SHOWN {
                        write!(f, " and {} more", paths.len() - SHOWN)?;
                    }
                }
                Ok(())
            }
            MissCause::Platform { cache, build } => write!(
                f,
                "the cache was built for {cache}, this build is for {build}"
            ),
            MissCause::ParentMissed { step } => write!(
                f,
                "no cache ref has this step's parent; the chain broke at {step}"
            ),
            MissCause::Definition { nearest } => {
                write!(
                    f,
                    "the step's definition changed (a flag, mount or selector)"
                )?;
                if let Some(n) = nearest {
                    write!(f, "; the cache has {n} on the same parent")?;
                }
                Ok(())
            }
            MissCause::NoResult => {
                write!(f, "the record matched but the cache has no layers for it")
            }
        }
    }
}

/// Whether the final image would change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImageVerdict {
    /// No cache reference to compare with.
    Unknown,
    /// Every step of the final chain hits, the layers and config are the cache reference's.
    Unchanged {
        /// The cache reference.
        reference: String,
        /// Its digest, which the build reproduces.
        digest: Digest,
    },
    /// The image would differ from the cache reference.
    Changed {
        /// The cache reference compared with.
        reference: String,
        /// What differs.
        reasons: Vec<String>,
    },
}

/// The whole dry run.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    /// The profile the build keys with.
    pub profile: KeyProfile,
    /// The platform checked.
    pub platform: String,
    /// The cache references that resolved (manifest and config).
    pub cache_refs: Vec<CacheRefImage>,
    /// Every step, in build order (`FROM` lines left out).
    pub steps: Vec<StepCheck>,
    /// Whether the final image would change.
    pub image: ImageVerdict,
    /// Import problems and references that did not resolve.
    pub warnings: Vec<String>,
}

impl CheckReport {
    /// Whether every step hits.
    pub fn all_hit(&self) -> bool {
        self.steps.iter().all(StepCheck::is_hit)
    }

    /// The steps that miss.
    pub fn misses(&self) -> impl Iterator<Item = &StepCheck> {
        self.steps.iter().filter(|s| !s.is_hit())
    }
}

/// Runs the dry run of `request` for `platform` (the host's when `None`; any platform can be
/// checked since nothing runs).
pub fn check(
    request: &BuildRequest,
    platform: Option<&stages::Platform>,
) -> Result<CheckReport, BuildError> {
    let session = Session::open(&request.store_root)?;
    let platform = platform.cloned().unwrap_or_else(super::host_platform);
    let mut report = BuildReport::default();
    let prepared = prepare_on(request, &session, &mut report, &platform)?;
    let refs = resolve_refs(request, &session, &platform, &mut report.warnings);
    let others = other_plans(&prepared, &mut report.warnings);
    let steps = analyse(&prepared, &others, &refs, request);
    let image = image_verdict(&prepared, &refs, &steps, request);
    Ok(CheckReport {
        profile: prepared.primary,
        platform: platform.to_string(),
        cache_refs: refs,
        steps,
        image,
        warnings: report.warnings,
    })
}

/// The explanations of the steps of a finished build that did not come from a cache, for the
/// end-of-build summary. Problems become `warnings`.
pub(super) fn explain_missed(
    request: &BuildRequest,
    session: &Session,
    prepared: &Prepared,
    warnings: &mut Vec<String>,
) -> Vec<StepCheck> {
    let platform = super::host_platform();
    let refs = resolve_refs(request, session, &platform, warnings);
    let others = other_plans(prepared, warnings);
    analyse(prepared, &others, &refs, request)
        .into_iter()
        .filter(|s| !s.is_hit())
        .collect()
}

/// The cache references' manifests and configs (no layer).
fn resolve_refs(
    request: &BuildRequest,
    session: &Session,
    platform: &stages::Platform,
    warnings: &mut Vec<String>,
) -> Vec<CacheRefImage> {
    if request.no_cache {
        return Vec::new();
    }
    let mut refs = Vec::new();
    for reference in &request.cache_from {
        let target =
            inlay_core::Platform::new(&platform.os, &platform.architecture, &platform.variant);
        let resolved = session.images.resolve(reference, &target);
        match resolved {
            Ok(r) => match serde_json::from_slice(&r.config) {
                Ok(config) => refs.push(CacheRefImage {
                    reference: reference.clone(),
                    digest: r.top_digest,
                    config,
                }),
                Err(e) => warnings.push(format!("check: config of {reference}: {e}")),
            },
            Err(e) => warnings.push(format!("check: resolving {reference}: {e}")),
        }
    }
    refs
}

/// The plans of the profiles other than the solved one (to say "the cache matches under the
/// other profile").
fn other_plans(prepared: &Prepared, warnings: &mut Vec<String>) -> Vec<KeyPlan> {
    if prepared.imported.origins().is_empty() {
        return Vec::new();
    }
    KeyProfile::ALL
        .iter()
        .filter(|p| **p != prepared.primary)
        .filter_map(|p| {
            let mut input = prepared.input.clone();
            input.profile = *p;
            plan_keys(&input)
                .map_err(|e| warnings.push(format!("check: keying for {}: {e}", p.name())))
                .ok()
        })
        .collect()
}

/// The step checks of a prepared build against its imported records (pure: no IO).
pub fn analyse(
    prepared: &Prepared,
    others: &[KeyPlan],
    refs: &[CacheRefImage],
    request: &BuildRequest,
) -> Vec<StepCheck> {
    let plan = &prepared.plan;
    let store = &prepared.imported;
    let matches = store.match_keys(&plan.keys);
    let other_matches: Vec<KeyMatches> = others.iter().map(|p| store.match_keys(&p.keys)).collect();
    let context = Context {
        prepared,
        matches: &matches,
        refs,
        dockerfile: dockerfile_text(prepared),
        request,
    };
    let mut out = Vec::new();
    for (index, step) in plan.lowered.steps.iter().enumerate() {
        if matches!(
            plan.lowered.graph.vertex(step.output.vertex).op,
            Op::Source(_)
        ) {
            continue;
        }
        let keys = plan.keys.keys_of(step.output);
        let record = keys
            .iter()
            .find_map(|k| plan.keys.node(*k).record.stable().cloned());
        let content_pending = plan.pending.iter().any(|p| p.vertex == step.output.vertex);
        let hit = keys.iter().find_map(|k| {
            let set = matches.of(*k);
            store.best_result(set).map(|h| Verdict::Hit {
                origin: h.origin.to_owned(),
                record: store.record(h.record).digest.clone(),
            })
        });
        let verdict = hit.unwrap_or_else(|| {
            let profile = others.iter().zip(&other_matches).find_map(|(p, m)| {
                let other = p.steps.get(index)?;
                p.keys
                    .keys_of(other.output)
                    .iter()
                    .any(|k| store.best_result(m.of(*k)).is_some())
                    .then_some(p.profile)
            });
            Verdict::Miss(match profile {
                Some(cache) => vec![MissCause::KeyProfile {
                    cache,
                    build: plan.profile,
                }],
                None => context.causes(keys.first().copied(), step.output.vertex),
            })
        });
        out.push(StepCheck {
            number: out.len() + 1,
            vertex: step.output.vertex,
            description: step.description.clone(),
            line: step.position.line,
            record,
            content_pending,
            verdict,
        });
    }
    out
}

fn dockerfile_text(prepared: &Prepared) -> Vec<String> {
    String::from_utf8_lossy(&prepared.input.dockerfile)
        .lines()
        .map(str::to_owned)
        .collect()
}

struct Context<'a> {
    prepared: &'a Prepared,
    matches: &'a KeyMatches,
    refs: &'a [CacheRefImage],
    dockerfile: Vec<String>,
    request: &'a BuildRequest,
}

impl Context<'_> {
    fn keys(&self) -> &KeyGraph {
        &self.prepared.plan.keys
    }

    fn store(&self) -> &CacheStore {
        &self.prepared.imported
    }

    fn causes(&self, key: Option<KeyId>, vertex: VertexId) -> Vec<MissCause> {
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
            causes.push(MissCause::Definition { nearest });
        }
        causes
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
                vec![MissCause::CopySources { paths }]
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
        let Some(old) = self.reference_for() else {
            return vec![MissCause::BaseImage {
                reference: reference.to_owned(),
                digest,
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

/// One history entry, as much of it as the explanations read.
#[derive(Debug, Clone)]
struct HistoryEntry {
    created_by: String,
    empty_layer: bool,
}

fn history(config: &Value) -> Vec<HistoryEntry> {
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
fn layer_entries(history: &[HistoryEntry]) -> Vec<usize> {
    history
        .iter()
        .enumerate()
        .filter(|(_, h)| !h.empty_layer)
        .map(|(i, _)| i)
        .collect()
}

fn strip_marker(text: &str) -> &str {
    text.strip_suffix(" # buildkit").unwrap_or(text)
}

/// `RUN |N K=V ... cmd` → the args and the command (BuildKit's `RUN` history text).
fn run_parts(text: &str) -> Option<(BTreeMap<String, String>, String)> {
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
fn env_before(history: &[HistoryEntry], from: usize, to: usize) -> BTreeMap<String, String> {
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

fn config_platform(config: &Value) -> String {
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

fn diff_ids(config: &Value) -> Vec<String> {
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
fn image_verdict(
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
            let expected = super::timestamp(epoch);
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

/// Container configs compare without null-valued or empty fields (serialisers differ there).
fn same_container_config(new: &Value, old: Option<&Value>) -> bool {
    fn clean(v: &Value) -> Value {
        match v {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(_, v)| {
                        !v.is_null()
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
}
