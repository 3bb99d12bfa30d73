//! The seam between the docker harness and inlay: "compute inlay's records for this case".
//!
//! The harness builds each case with docker, then hands everything docker's build depended on
//! (context, rendered Dockerfile, build args, target, platform, network mode, key profile, the
//! resolved base images) plus docker's layer list and `createdAt` values to a [`RecordSource`].
//! The comparison needs nothing else, so wiring inlay's planner in is one `impl` of that trait.

use std::collections::BTreeMap;
use std::path::Path;

use inlay_core::cache::RecordGraph;
use inlay_core::cachekey::KeyProfile;
use inlay_core::{Descriptor, Digest, Platform, Timestamp};

pub use crate::conformance::filesystems::Filesystems;

/// The network mode a case is built with (`docker build --network`); it enters every RUN's key
/// (spec section 5.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkMode {
    /// No `--network` flag: the daemon's default (sandbox) network.
    #[default]
    Default,
    /// `--network=none`.
    None,
    /// `--network=host`.
    Host,
}

impl NetworkMode {
    /// The `--network` value docker takes, when one is passed.
    pub fn flag(self) -> Option<&'static str> {
        match self {
            NetworkMode::Default => None,
            NetworkMode::None => Some("none"),
            NetworkMode::Host => Some("host"),
        }
    }
}

/// A base image as docker's build resolved it, fetched back from the local registry.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The reference as the case's Dockerfile or build args name it.
    pub reference: String,
    /// The digest of the registry's manifest bytes.
    pub manifest_digest: Digest,
    /// The manifest bytes, as the registry serves them.
    pub manifest: Vec<u8>,
    /// The config bytes.
    pub config: Vec<u8>,
    /// Whether the image was in dockerd's local image store during the build: docker 20.10 then
    /// keys it by chainID only, else by manifest and chainID (spec section 5.7).
    pub in_local_store: bool,
}

/// docker's `createdAt` values, for an exporter that must reproduce docker's bytes: by record
/// digest when inlay's record has docker's digest, else by the result's image layer index.
#[derive(Debug, Clone, Default)]
pub struct DockerTimes {
    /// `createdAt` of each docker record that has a result.
    pub by_record: BTreeMap<Digest, Timestamp>,
    /// `createdAt` of the (first) docker result on each image layer index.
    pub by_layer: BTreeMap<usize, Timestamp>,
}

impl DockerTimes {
    /// Collects the times of every result in docker's records.
    pub fn of(graph: &RecordGraph) -> DockerTimes {
        let mut times = DockerTimes::default();
        for record in graph.records() {
            for result in &record.results {
                times
                    .by_record
                    .entry(record.digest.clone())
                    .or_insert(result.created_at);
                times
                    .by_layer
                    .entry(result.layer)
                    .or_insert(result.created_at);
            }
        }
        times
    }

    /// The time docker gave `record`'s result, else the time of docker's result on `layer`, else
    /// the zero time.
    pub fn for_result(&self, record: &Digest, layer: usize) -> Timestamp {
        self.by_record
            .get(record)
            .or_else(|| self.by_layer.get(&layer))
            .copied()
            .unwrap_or_default()
    }
}

/// Everything one case's build depended on, and what docker produced that the export needs.
#[derive(Clone)]
pub struct CaseInput<'a> {
    /// The build context.
    pub context: &'a Path,
    /// The Dockerfile bytes docker was given (placeholders already filled in).
    pub dockerfile: &'a [u8],
    /// Every `--build-arg`, in the order given (`BASE` and `BUILDKIT_INLINE_CACHE` included).
    pub build_args: &'a [(String, String)],
    /// `--target`, if any.
    pub target: Option<&'a str>,
    /// The platform the build ran for.
    pub platform: &'a Platform,
    /// `--network`.
    pub network: NetworkMode,
    /// The key scheme of the engine (docker 20.10: [`KeyProfile::BuildkitV08`]).
    pub profile: KeyProfile,
    /// The images the build could name, resolved.
    pub images: &'a [ResolvedImage],
    /// The pushed image's layers (manifest order, base first).
    pub image_layers: &'a [Descriptor],
    /// docker's `createdAt` values.
    pub times: &'a DockerTimes,
    /// The filesystems `COPY --from=<stage|image>` reads, as docker built them, for their
    /// content keys.
    pub filesystems: &'a dyn Filesystems,
}

/// One key inlay computed, labelled for a readable diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepKey {
    /// What produced it: `Dockerfile:4 COPY data.txt /data.txt`, `FROM busybox (chainID)`,
    /// `content of /data.txt for Dockerfile:4`.
    pub label: String,
    /// The record digest.
    pub record: Digest,
    /// The pre-image whose sha256 is the CacheMap digest, when there is one to show.
    pub pre_image: Option<String>,
}

/// inlay's answer for one case.
#[derive(Debug, Clone)]
pub struct InlayRecords {
    /// The inline records inlay would export for docker's image.
    pub graph: RecordGraph,
    /// Every key inlay computed, in Dockerfile order, labelled.
    pub steps: Vec<StepKey>,
}

/// Why inlay gave no records for a case.
#[derive(Debug, thiserror::Error)]
pub enum SeamError {
    /// The source compares nothing (`--docker-only`).
    #[error("comparison skipped")]
    Skipped,
    /// The planner failed on this case.
    #[error("inlay failed on this case")]
    Failed(#[source] anyhow::Error),
}

/// Computes inlay's records for a case.
pub trait RecordSource {
    /// A short name for reports.
    fn name(&self) -> &str;

    /// inlay's records for the case.
    fn records(&self, case: &CaseInput<'_>) -> Result<InlayRecords, SeamError>;
}

/// The source of `--docker-only`: builds and checks docker's side, compares nothing.
pub struct DockerOnly;

impl RecordSource for DockerOnly {
    fn name(&self) -> &'static str {
        "none (--docker-only)"
    }

    fn records(&self, _case: &CaseInput<'_>) -> Result<InlayRecords, SeamError> {
        Err(SeamError::Skipped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_prefer_the_record_then_the_layer() {
        let value = r#"[{"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"},{"digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","inputs":[[{"link":0}]],"layers":[{"layer":1,"createdAt":"2026-11-28T01:00:00.5Z"}]}]"#;
        let graph = RecordGraph::from_json(value.as_bytes()).unwrap();
        let times = DockerTimes::of(&graph);
        let known: Digest =
            "sha256:2222222222222222222222222222222222222222222222222222222222222222"
                .parse()
                .unwrap();
        let other: Digest =
            "sha256:3333333333333333333333333333333333333333333333333333333333333333"
                .parse()
                .unwrap();
        let at: Timestamp = "2026-11-28T01:00:00.5Z".parse().unwrap();
        assert_eq!(times.for_result(&known, 7), at);
        assert_eq!(times.for_result(&other, 1), at);
        assert_eq!(times.for_result(&other, 2), Timestamp::default());
    }

    struct NoFilesystems;

    impl Filesystems for NoFilesystems {
        fn stage(&self, name: &str) -> anyhow::Result<std::path::PathBuf> {
            anyhow::bail!("no stage {name}")
        }

        fn image(&self, reference: &str) -> anyhow::Result<std::path::PathBuf> {
            anyhow::bail!("no image {reference}")
        }
    }

    #[test]
    fn docker_only_skips() {
        let input = CaseInput {
            context: Path::new("."),
            dockerfile: b"FROM scratch\n",
            build_args: &[],
            target: None,
            platform: &Platform::linux_amd64(),
            network: NetworkMode::Default,
            profile: KeyProfile::BuildkitV08,
            images: &[],
            image_layers: &[],
            times: &DockerTimes::default(),
            filesystems: &NoFilesystems,
        };
        assert!(matches!(
            DockerOnly.records(&input),
            Err(SeamError::Skipped)
        ));
    }
}
