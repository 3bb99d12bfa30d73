//! A check of the harness itself that needs no inlay planner: the base-image facts it recorded
//! must name the image roots docker actually wrote.
//!
//! docker 20.10 keys an image in its local store by chainID only, and an image it resolved
//! from the registry by manifest and chainID (spec section 5.7). Both keys follow from the
//! recorded manifest digest and config, so a case whose records contradict them means the
//! recorded facts are not what docker's build saw, and comparing inlay against them would be
//! meaningless.

use anyhow::{Context, Result};
use inlay_core::cache::RecordGraph;
use inlay_core::cache::key::source_cachemap_digest;
use inlay_core::cachekey::{KeyProfile, image_manifest_key};
use inlay_core::image::{ImageConfig, chain_id};
use inlay_core::{Digest, Platform, record_digest};

use crate::conformance::seam::ResolvedImage;

/// Which image roots docker wrote, and what contradicts the recorded facts.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RootCheck {
    /// `busybox:latest chainID`, `busybox:latest manifest`, ...
    pub found: Vec<String>,
    /// Contradictions between docker's records and the recorded facts.
    pub problems: Vec<String>,
}

/// The chainID root and manifest root record digests of an image.
pub fn roots(image: &ResolvedImage, platform: &Platform) -> Result<(Option<Digest>, Digest)> {
    let config: ImageConfig = serde_json::from_slice(&image.config)
        .with_context(|| format!("parsing the config of {}", image.reference))?;
    let chain = chain_id(&config.rootfs.diff_ids)
        .map(|chain| record_digest(&source_cachemap_digest(chain.as_str()), 0));
    let profile = KeyProfile::BuildkitV08;
    let manifest_key = image_manifest_key(&image.manifest_digest, platform, profile)
        .digest_with(profile.escapes());
    let manifest = record_digest(&source_cachemap_digest(manifest_key.as_str()), 0);
    Ok((chain, manifest))
}

/// Checks docker's image roots against the images a case could use.
pub fn check(
    images: &[ResolvedImage],
    platform: &Platform,
    records: &RecordGraph,
) -> Result<RootCheck> {
    let mut check = RootCheck::default();
    for image in images {
        let name = image
            .reference
            .rsplit('/')
            .next()
            .unwrap_or(&image.reference);
        let (chain, manifest) = roots(image, platform)?;
        let has_chain = chain
            .as_ref()
            .is_some_and(|c| records.find(c).next().is_some());
        let has_manifest = records.find(&manifest).next().is_some();
        if has_chain {
            check.found.push(format!("{name} chainID"));
        }
        if has_manifest {
            check.found.push(format!("{name} manifest"));
        }
        if image.in_local_store && has_manifest {
            check.problems.push(format!(
                "{name} was in dockerd's store, yet docker keyed it by manifest"
            ));
        }
        if !image.in_local_store && has_chain != has_manifest {
            check.problems.push(format!(
                "{name} was resolved from the registry, yet docker wrote only its {} root",
                if has_chain { "chainID" } else { "manifest" }
            ));
        }
    }
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::*;
    use inlay_core::cache::CacheRecord;

    const SAMPLE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/conformance/buildkit-v0.8-inline-sample"
    );

    fn sample_base(in_local_store: bool) -> ResolvedImage {
        let manifest = std::fs::read(format!("{SAMPLE}/base-manifest.json")).unwrap();
        ResolvedImage {
            reference: "localhost:5000/busybox:latest".into(),
            manifest_digest: Digest::sha256_of(&manifest),
            manifest,
            config: std::fs::read(format!("{SAMPLE}/base-config.json")).unwrap(),
            in_local_store,
        }
    }

    #[test]
    fn the_v08_sample_has_the_chain_root_only() {
        // Spec section 8.3: record 3 `b139ea8b…` is the busybox chainID root.
        let config: ImageConfig =
            serde_json::from_slice(&std::fs::read(format!("{SAMPLE}/config.json")).unwrap())
                .unwrap();
        let records = RecordGraph::from_inline(config.inline_cache().unwrap()).unwrap();
        let platform = Platform::linux_amd64();
        let local = check(&[sample_base(true)], &platform, &records).unwrap();
        assert_eq!(local.found, ["busybox:latest chainID"]);
        assert!(local.problems.is_empty());

        let (chain, manifest) = roots(&sample_base(true), &platform).unwrap();
        assert!(chain.unwrap().as_str().starts_with("sha256:b139ea8b"));
        // Spec section 5.7: the manifest root of the samples' base is `840e26d9…2b89`.
        assert!(manifest.as_str().starts_with("sha256:840e26d9"));

        let remote = check(&[sample_base(false)], &platform, &records).unwrap();
        assert_eq!(
            remote.problems,
            [
                "busybox:latest was resolved from the registry, yet docker wrote only its chainID root"
            ]
        );
    }

    #[test]
    fn a_manifest_root_for_a_local_image_is_a_problem() {
        let platform = Platform::linux_amd64();
        let (_, manifest) = roots(&sample_base(true), &platform).unwrap();
        let records = RecordGraph::new(vec![CacheRecord::root(manifest)]).unwrap();
        let local = check(&[sample_base(true)], &platform, &records).unwrap();
        assert_eq!(local.found, ["busybox:latest manifest"]);
        assert_eq!(local.problems.len(), 1);
    }
}
