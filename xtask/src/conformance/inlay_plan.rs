//! inlay's side of the suite: `inlay_builder::plan` behind the [`RecordSource`] seam.
//!
//! The case's inputs become a [`PlanInput`]; the base images the plan asks for are the ones
//! the harness resolved (a base in dockerd's store gets no manifest digest: docker 20.10 keys
//! it by chainID only, spec section 5.7); `COPY --from=<stage>` content keys are computed over
//! the stage's filesystem as docker built it; the export gets docker's layers and `createdAt`
//! values, so its bytes can equal docker's.

use anyhow::{Context, Result};
use inlay_builder::context::{ContextOptions, hash_directory};
use inlay_builder::plan::{KeyPlan, PlanInput, base_images, content_profile, plan_keys};
use inlay_core::cache::Timestamp;
use inlay_core::cachekey::{KeyKind, cache_map};
use inlay_core::contenthash::{SourceKind, TreeOptions};
use inlay_core::image::ImageConfig;
use inlay_core::op::NetMode;
use inlay_core::{Platform, Reference};
use inlay_frontend_dockerfile::lower::{self, ContentOrigin};

use crate::conformance::seam::{
    CaseInput, InlayRecords, NetworkMode, RecordSource, SeamError, StepKey,
};

/// `inlay_builder::plan` as the suite's record source.
pub struct InlayPlanner;

impl RecordSource for InlayPlanner {
    fn name(&self) -> &'static str {
        "inlay_builder::plan"
    }

    fn records(&self, case: &CaseInput<'_>) -> Result<InlayRecords, SeamError> {
        plan(case).map_err(SeamError::Failed)
    }
}

fn normalised(reference: &str) -> String {
    reference
        .parse::<Reference>()
        .map_or_else(|_| reference.to_owned(), |r| r.to_string())
}

fn plan(case: &CaseInput<'_>) -> Result<InlayRecords> {
    let mut input = PlanInput::new(case.context, case.dockerfile.to_vec(), case.profile);
    input.build_args = case.build_args.iter().cloned().collect();
    input.target = case.target.map(str::to_owned);
    input.network = match case.network {
        NetworkMode::Default => NetMode::Unset,
        NetworkMode::None => NetMode::None,
        NetworkMode::Host => NetMode::Host,
    };
    for wanted in base_images(&input).context("listing the base images")? {
        let name = wanted.reference.to_string();
        let image = case
            .images
            .iter()
            .find(|i| normalised(&i.reference) == name)
            .with_context(|| format!("the harness did not resolve {name}"))?;
        let config: ImageConfig = serde_json::from_slice(&image.config)
            .with_context(|| format!("parsing the config of {name}"))?;
        input.bases.push(lower::ResolvedImage::new(
            wanted.reference.clone(),
            (!image.in_local_store).then(|| image.manifest_digest.clone()),
            config,
        ));
    }
    let mut plan = plan_keys(&input).context("planning the keys")?;
    if plan
        .pending
        .iter()
        .any(|p| matches!(p.origin, ContentOrigin::Stage(_) | ContentOrigin::Image(_)))
    {
        add_built_trees(&mut input, &plan, case)?;
        plan = plan_keys(&input).context("planning the keys with the built trees")?;
    }
    let times = chain_times(&plan, case);
    let graph = plan
        .export_records(case.image_layers, &times)
        .context("exporting the records")?
        .unwrap_or_default();
    Ok(InlayRecords {
        graph,
        steps: labelled_keys(&plan, case.platform),
    })
}

/// The content trees of the stages and images `COPY --from` reads, as docker built or pulled
/// them, into the plan's hooks.
fn add_built_trees(input: &mut PlanInput, plan: &KeyPlan, case: &CaseInput<'_>) -> Result<()> {
    let stages =
        inlay_frontend_dockerfile::instructions::parse_bytes(case.dockerfile, "Dockerfile")
            .context("parsing the Dockerfile for its stage names")?
            .stages;
    let options = ContextOptions::new(TreeOptions::new(
        content_profile(case.profile),
        SourceKind::Snapshot,
    ));
    for pending in &plan.pending {
        match &pending.origin {
            ContentOrigin::Stage(index) if !input.stage_trees.contains_key(index) => {
                let name = stages
                    .get(*index)
                    .and_then(|s| s.name.clone())
                    .unwrap_or_else(|| index.to_string());
                let dir = case.filesystems.stage(&name)?;
                let tree = hash_directory(&dir, &options)
                    .with_context(|| format!("hashing stage {name} in {}", dir.display()))?;
                input.stage_trees.insert(*index, tree);
            }
            ContentOrigin::Image(reference) if !input.image_trees.contains_key(reference) => {
                let wanted = reference.to_string();
                // docker knows the image by the name the Dockerfile gave it.
                let name = case
                    .images
                    .iter()
                    .find(|i| normalised(&i.reference) == wanted)
                    .map_or(wanted.clone(), |i| i.reference.clone());
                let dir = case.filesystems.image(&name)?;
                let tree = hash_directory(&dir, &options)
                    .with_context(|| format!("hashing image {name} in {}", dir.display()))?;
                input.image_trees.insert(reference.clone(), tree);
            }
            _ => {}
        }
    }
    Ok(())
}

/// docker's `createdAt` for each step of the final chain: by the step's record digest, else by
/// its image layer.
fn chain_times(plan: &KeyPlan, case: &CaseInput<'_>) -> Vec<Timestamp> {
    let chain = plan.layer_chain();
    let base = case.image_layers.len().saturating_sub(chain.len());
    chain
        .iter()
        .enumerate()
        .map(|(k, output)| {
            let record = plan
                .keys
                .keys_of(*output)
                .iter()
                .find_map(|id| plan.keys.node(*id).record.stable().cloned());
            match record {
                Some(record) => case.times.for_result(&record, base + k),
                None => case
                    .times
                    .by_layer
                    .get(&(base + k))
                    .copied()
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// Every stable key, labelled with its step and, for definition keys, its pre-image.
fn labelled_keys(plan: &KeyPlan, platform: &Platform) -> Vec<StepKey> {
    let graph = &plan.lowered.graph;
    plan.keys
        .nodes()
        .iter()
        .filter_map(|node| {
            let record = node.record.stable()?.clone();
            let (label, pre_image) = match node.kind {
                KeyKind::Definition { vertex, digest, .. } => {
                    let description = graph.vertex(vertex).description.clone();
                    let facts = plan.lowered.facts.get(&vertex).cloned().unwrap_or_default();
                    let pre = cache_map(graph, vertex, plan.profile, platform, &facts)
                        .ok()
                        .and_then(|map| map.keys.get(digest).map(|k| k.pre_image.clone()));
                    let label = if node.inputs.is_empty() && digest > 0 {
                        format!("{description} (key {digest})")
                    } else {
                        description
                    };
                    (label, pre)
                }
                KeyKind::Content { vertex, input } => (
                    format!(
                        "content of input {input} of {}",
                        graph.vertex(vertex).description
                    ),
                    None,
                ),
                _ => ("(key of an unknown kind)".to_owned(), None),
            };
            Some(StepKey {
                label,
                record,
                pre_image,
            })
        })
        .collect()
}
