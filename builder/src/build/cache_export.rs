//! What a build leaves for the next one: the inline cache records of every step of the final
//! chain, for each requested key profile (spec sections 3.2 and 8c), and the stages cache
//! artifacts that carry the other stages (inlay's addition; stock BuildKit reads only the
//! config part).

use std::collections::{BTreeMap, HashMap};

use inlay_core::Descriptor;
use inlay_core::cache::export::{ExportResult, ResultForm, export_chain, export_chains};
use inlay_core::cache::{CacheConfig, CacheLayer, RecordGraph, Timestamp};
use inlay_core::cachekey::{KeyGraph, KeyId, KeyProfile};
use inlay_core::descriptor::ANNOTATION_UNCOMPRESSED;
use inlay_core::op::Input;
use inlay_exporter_inline::CacheArtifact;

use super::BuildReport;
use crate::image::EMPTY_TAR_DIFF_ID;
use crate::plan::{KeyPlan, PlanInput, plan_keys};
use crate::solver::{LayerRef, SolveOutcome};

/// The inline cache records of the final chain for every requested profile. The solved
/// profile's keys are the solver's own; another profile's keys come from its own plan, its
/// chain's results being the solved chain's, step for step (both lowerings make one op per
/// instruction).
pub(super) fn inline_records(
    input: &PlanInput,
    plan: &KeyPlan,
    outcome: &SolveOutcome,
    profiles: &[KeyProfile],
    image_layers: &[Descriptor],
    created_at: Timestamp,
    report: &mut BuildReport,
) -> Option<RecordGraph> {
    let result_of = |layers: &[LayerRef]| ExportResult {
        layers: layers
            .iter()
            .filter(|l| l.diff_id.as_str() != EMPTY_TAR_DIFF_ID)
            .map(LayerRef::descriptor)
            .collect(),
        created_at,
    };
    let mut results: HashMap<Input, ExportResult> = outcome
        .results
        .iter()
        .map(|(i, l)| (*i, result_of(l)))
        .collect();
    let mut others = Vec::new();
    for profile in profiles {
        if *profile == plan.profile {
            continue;
        }
        let mut other = input.clone();
        other.profile = *profile;
        match plan_keys(&other) {
            Ok(p) => {
                let ours = plan.layer_chain();
                let theirs = p.layer_chain();
                if ours.len() == theirs.len() {
                    for (o, t) in ours.iter().zip(&theirs) {
                        if let Some(l) = outcome.results.get(o) {
                            results.entry(*t).or_insert_with(|| result_of(l));
                        }
                    }
                    others.push(p);
                } else {
                    report.warnings.push(format!(
                        "inline cache: the {} chain differs in length; its records are left out",
                        profile.name()
                    ));
                }
            }
            Err(e) => report
                .warnings
                .push(format!("inline cache: keying for {}: {e}", profile.name())),
        }
    }
    // With v0.8's records in the value, every other profile's results go in `chains`, which
    // v0.8 does not read: two records holding the same layers make v0.8 fail to load the
    // final step ("failed to load deleted cache"; see `inlay_core::cache::export`).
    let form = |profile: KeyProfile| {
        if profiles.len() > 1
            && profiles.contains(&KeyProfile::BuildkitV08)
            && profile != KeyProfile::BuildkitV08
        {
            ResultForm::ChainsOnly
        } else {
            ResultForm::Native
        }
    };
    let mut chains: Vec<(&KeyGraph, KeyId, ResultForm)> = Vec::new();
    if profiles.contains(&plan.profile) {
        if let Some(k) = outcome.key_graph.keys_of(plan.lowered.target).first() {
            chains.push((&outcome.key_graph, *k, form(plan.profile)));
        }
    }
    for p in &others {
        if let Some(k) = p.final_key {
            chains.push((&p.keys, k, form(p.profile)));
        }
    }
    export_chains(image_layers, &chains, &results)
}

/// The cache artifacts of the non-final stages (one per stage): each stage's chain exported
/// as a registry cache config whose layer table is that stage's layers, base first, so a
/// record's result index means the same chain as in an inline cache.
pub(super) fn stage_artifacts(
    plan: &KeyPlan,
    outcome: &SolveOutcome,
    image: &inlay_exporter_inline::BuiltImage,
    created_at: Timestamp,
    report: &mut BuildReport,
) -> Vec<CacheArtifact> {
    let steps = &plan.lowered.steps;
    let Some(target_stage) = steps
        .iter()
        .find(|s| s.output == plan.lowered.target)
        .map(|s| s.stage)
    else {
        return Vec::new();
    };
    let mut last_of_stage: BTreeMap<usize, Input> = BTreeMap::new();
    for step in steps {
        if step.stage != target_stage {
            last_of_stage.insert(step.stage, step.output);
        }
    }
    let non_empty = |layers: &[LayerRef]| -> Vec<LayerRef> {
        layers
            .iter()
            .filter(|l| l.diff_id.as_str() != EMPTY_TAR_DIFF_ID)
            .cloned()
            .collect()
    };
    let results: HashMap<Input, ExportResult> = outcome
        .results
        .iter()
        .map(|(i, l)| {
            (
                *i,
                ExportResult {
                    layers: non_empty(l).iter().map(LayerRef::descriptor).collect(),
                    created_at,
                },
            )
        })
        .collect();
    let mut out = Vec::new();
    for output in last_of_stage.values() {
        let Some(layers) = outcome.results.get(output).map(|l| non_empty(l)) else {
            continue;
        };
        let Some(key) = outcome.key_graph.keys_of(*output).first() else {
            continue;
        };
        let descriptors: Vec<Descriptor> = layers.iter().map(LayerRef::descriptor).collect();
        let Some(graph) = export_chain(&descriptors, &[(&outcome.key_graph, *key)], &results)
        else {
            continue;
        };
        let table = layers
            .iter()
            .enumerate()
            .map(|(i, l)| CacheLayer {
                blob: l.digest.clone(),
                parent: i.checked_sub(1),
                annotations: None,
            })
            .collect();
        let annotated = layers
            .iter()
            .map(|l| {
                let mut d = l.descriptor();
                d.annotations
                    .insert(ANNOTATION_UNCOMPRESSED.to_owned(), l.diff_id.to_string());
                d
            })
            .collect();
        let built = CacheConfig::new(table, graph)
            .map_err(|e| e.to_string())
            .and_then(|config| {
                CacheArtifact::build(image.manifest_descriptor().clone(), annotated, &config)
                    .map_err(|e| e.to_string())
            });
        match built {
            Ok(a) => out.push(a),
            Err(e) => report.warnings.push(format!("stages cache: {e}")),
        }
    }
    out
}
