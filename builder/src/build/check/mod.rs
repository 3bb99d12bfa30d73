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

use inlay_core::Digest;
use inlay_core::cache::CacheStore;
use inlay_core::cache::artifact::{
    ExplainFacts, INLAY_EXPLAIN_ARTIFACT_TYPE, MAX_EXPLAIN_FACTS_SIZE,
};
use inlay_core::cache::matcher::KeyMatches;
use inlay_core::cachekey::KeyProfile;
use inlay_core::image::ImageManifest;
use inlay_core::op::Op;
use inlay_frontend_dockerfile::stages;

use super::{BuildError, BuildReport, BuildRequest, Prepared, Session, prepare_on};
use crate::plan::{KeyPlan, PlanInput, plan_keys};
use crate::source::ImageSource as _;

mod causes;
mod history;
mod report;

pub use report::{CacheRefImage, CheckReport, ImageVerdict, MissCause, StepCheck, Verdict};

use causes::Context;
use history::image_verdict;

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
    Ok(report_of(&prepared, refs, request, report.warnings))
}

/// Checks a build against caches the caller already has decoded: no registry, no store.
/// `input` has its bases resolved and its profile set (the one the build would key with);
/// `imported` holds the records of `refs`, whose configs give the old side of the
/// explanations. Used to explain against an image on disk (and by the BuildKit sample tests).
pub fn check_decoded(
    input: PlanInput,
    imported: CacheStore,
    refs: Vec<CacheRefImage>,
    request: &BuildRequest,
) -> Result<CheckReport, BuildError> {
    let plan = plan_keys(&input)?;
    let prepared = Prepared {
        profiles: vec![input.profile],
        primary: input.profile,
        input,
        plan,
        imported,
    };
    Ok(report_of(&prepared, refs, request, Vec::new()))
}

fn report_of(
    prepared: &Prepared,
    refs: Vec<CacheRefImage>,
    request: &BuildRequest,
    mut warnings: Vec<String>,
) -> CheckReport {
    let others = other_plans(prepared, &mut warnings);
    let steps = analyse(prepared, &others, &refs, request);
    let image = image_verdict(prepared, &refs, &steps, request);
    CheckReport {
        profile: prepared.primary,
        platform: prepared
            .input
            .platform
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        cache_refs: refs,
        steps,
        image,
        warnings,
    }
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
                    facts: explain_facts(session, reference, &r.top_digest),
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

/// inlay's explain facts for the image `digest` of `reference`, if it has any (a registry
/// without them, or any problem, is `None`: the explanations fall back on the config).
fn explain_facts(session: &Session, reference: &str, digest: &Digest) -> Option<ExplainFacts> {
    let parsed = inlay_core::Reference::parse(reference).ok()?;
    session.tokio.block_on(async {
        let client = &session.client;
        let found = client
            .referrers(&parsed, digest, Some(INLAY_EXPLAIN_ARTIFACT_TYPE))
            .await
            .ok()?;
        let artifact = found.first()?;
        let manifest = client
            .get_manifest(&parsed.with_digest(artifact.digest.clone()))
            .await
            .ok()?;
        let manifest: ImageManifest = serde_json::from_slice(&manifest.bytes).ok()?;
        let blob = manifest
            .layers
            .iter()
            .find(|l| l.media_type == INLAY_EXPLAIN_ARTIFACT_TYPE)?;
        if u64::try_from(blob.size).ok()? > MAX_EXPLAIN_FACTS_SIZE {
            return None;
        }
        let bytes = client.get_blob(&parsed, blob).await.ok()?;
        ExplainFacts::from_json(&bytes).ok()
    })
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
        facts: refs
            .iter()
            .any(|r| r.facts.is_some())
            .then(|| super::explain_facts::facts(prepared)),
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
