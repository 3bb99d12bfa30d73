//! `inlay build` end to end: a Dockerfile and a context in, an image with BuildKit's inline
//! cache out (pushed, written as an OCI layout or docker archive, or unpacked).
//!
//! [`run`] reads the Dockerfile, resolves the base images through the registry (manifest and
//! config only), lowers and keys the build ([`crate::plan`]), imports every `--cache-from`
//! reference (a broken one is a warning, never fatal), solves with a cache that asks the local
//! store first and the imported records second ([`ImportedCache`]: a hit hands back the
//! imported layer descriptors, nothing is downloaded unless a later miss needs the files or an
//! output needs the bytes), assembles the image, writes the inline cache records of every step
//! of the final chain for each requested key profile (spec sections 3.2 and 8c), and sends the
//! image to its outputs.
//!
//! The phases live in their own modules: [`imported_cache`] (the solver's cache over the local
//! store and the imported records), `cache_export` (the inline records and the stages cache
//! artifact) and `outputs` (push, archives, `type=local`, `--iidfile`/`--metadata-file`).
//! [`prepare`] is everything before the solve (read, resolve, plan, import) on its own, for
//! callers that only want the keys and the imported cache: [`check`] is that dry run, step by
//! step hit or miss with the causes of each miss. A finished build explains its own misses
//! ([`BuildReport::missed`]) and says where its time went ([`BuildReport::timings`]).
//!
//! It deliberately does not print: progress goes to the caller's [`ProgressSink`], warnings and
//! figures come back in the [`BuildReport`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use inlay_core::cache::{CacheStore, Timestamp};
use inlay_core::cachekey::KeyProfile;
use inlay_core::op::{NetMode, Op, VertexId};
use inlay_core::{Compression, Descriptor, Digest, Platform};
use inlay_exporter_inline::{ConfigInput, ImageInput, Layer, ManifestFormat, write_image};
use inlay_frontend_dockerfile::lower::ResolvedImage as BaseResolved;
use inlay_frontend_dockerfile::stages;
use inlay_registry::{Client, ClientConfig, CredentialStore};

use crate::extract::ExtractError;
use crate::image::{EMPTY_TAR_DIFF_ID, ImageRequest, assemble};
use crate::plan::{KeyPlan, PlanError, PlanInput, base_images, plan_keys, read_dockerignore};
use crate::progress::{CacheOrigin, ProgressEvent, ProgressSink};
use crate::solver::{
    LayerRef, LocalCache, SolveError, SolveOutcome, SolveRequest, Solver, SolverOptions,
};
use crate::source::{ImageSource, LocalSource, RegistryImages, SourceError};
use crate::store::Store;

mod cache_export;
pub mod check;
mod explain_facts;
pub mod imported_cache;
mod outputs;

pub use imported_cache::{Distrust, ImportedCache};

/// Where the Dockerfile comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DockerfileSource {
    /// A file (`-f PATH`, default `<context>/Dockerfile`).
    Path(PathBuf),
    /// Bytes read by the caller (`-f -`, stdin).
    Bytes(Vec<u8>),
}

/// Where the image goes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildOutput {
    /// `type=image`: named, pushed when `push`.
    Image {
        /// The references.
        names: Vec<String>,
        /// Push to the registry.
        push: bool,
        /// OCI media types (else Docker schema 2).
        oci: bool,
    },
    /// `type=oci,dest=...` (a tar file).
    Oci {
        /// The tar file.
        dest: PathBuf,
        /// The names in its `index.json` (empty: those of the `Image` outputs).
        names: Vec<String>,
    },
    /// `type=docker,dest=...` (a tar for `docker load`).
    Docker {
        /// The tar file.
        dest: PathBuf,
        /// The names `docker load` tags it with (empty: those of the `Image` outputs).
        names: Vec<String>,
    },
    /// `type=local,dest=...`: the final filesystem unpacked.
    Local {
        /// The directory.
        dest: PathBuf,
    },
}

/// One build.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The context directory.
    pub context: PathBuf,
    /// The Dockerfile.
    pub dockerfile: DockerfileSource,
    /// Build args.
    pub build_args: BTreeMap<String, String>,
    /// Target stage.
    pub target: Option<String>,
    /// `--no-cache`: no cache is asked.
    pub no_cache: bool,
    /// `--cache-from` references.
    pub cache_from: Vec<String>,
    /// `--cache-to type=inline`: the key profiles whose records go into the image (`None`: no
    /// inline cache).
    pub inline_cache: Option<Vec<KeyProfile>>,
    /// Outputs.
    pub outputs: Vec<BuildOutput>,
    /// `--label`s.
    pub labels: BTreeMap<String, String>,
    /// Secrets by id.
    pub secrets: HashMap<String, Vec<u8>>,
    /// `--network`.
    pub network: NetMode,
    /// `--add-host` entries (`host`, `ip`).
    pub extra_hosts: Vec<(String, String)>,
    /// `--compression`: how new layers are compressed (zstd implies OCI media types, as
    /// Docker schema 2 has no zstd layer type).
    pub compression: Compression,
    /// `--oci-mediatypes`: OCI media types for every output (else Docker schema 2 unless an
    /// output asks for OCI).
    pub oci_media_types: bool,
    /// `--platform`: the target platform (`None`: the host's). RUN steps still run on the host,
    /// so a build for another platform can only copy and configure.
    pub platform: Option<stages::Platform>,
    /// The store's root.
    pub store_root: PathBuf,
    /// `SOURCE_DATE_EPOCH`.
    pub source_date_epoch: Option<i64>,
    /// `--iidfile`.
    pub iidfile: Option<PathBuf>,
    /// `--metadata-file`.
    pub metadata_file: Option<PathBuf>,
}

impl BuildRequest {
    /// A build of `context` with its `Dockerfile`, no outputs, no cache import or export.
    pub fn new(context: impl Into<PathBuf>, store_root: impl Into<PathBuf>) -> BuildRequest {
        let context = context.into();
        BuildRequest {
            dockerfile: DockerfileSource::Path(context.join("Dockerfile")),
            context,
            build_args: BTreeMap::new(),
            target: None,
            no_cache: false,
            cache_from: Vec::new(),
            inline_cache: None,
            outputs: Vec::new(),
            labels: BTreeMap::new(),
            secrets: HashMap::new(),
            network: NetMode::Unset,
            extra_hosts: Vec::new(),
            compression: Compression::Gzip,
            oci_media_types: false,
            platform: None,
            store_root: store_root.into(),
            source_date_epoch: None,
            iidfile: None,
            metadata_file: None,
        }
    }
}

/// What a build did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildReport {
    /// The image (manifest) digest.
    pub digest: Option<Digest>,
    /// The config digest.
    pub config_digest: Option<Digest>,
    /// Steps of the build (op-producing instructions that were solved).
    pub steps_total: usize,
    /// Steps served by a cache, per cache (`local` or the imported origin's label).
    pub steps_cached: BTreeMap<String, usize>,
    /// Commands run by the OCI runtime.
    pub runtime_runs: u64,
    /// Layer bytes downloaded (base layers for runs, cache layers, outputs).
    pub bytes_pulled: u64,
    /// Bytes uploaded by pushes.
    pub bytes_pushed: u64,
    /// Records in the inline cache (`None`: none written).
    pub inline_records: Option<usize>,
    /// Cache import warnings and other non-fatal problems.
    pub warnings: Vec<String>,
    /// Where the time went.
    pub timings: BuildTimings,
    /// The steps that did not come from any cache although `--cache-from` was given, each
    /// with why ([`check::StepCheck`]).
    pub missed: Vec<check::StepCheck>,
}

/// Where a build's time went. The solve's phases are summed over its workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BuildTimings {
    /// Reading the Dockerfile, resolving base images, keying, importing caches.
    pub resolve: Duration,
    /// Downloading layer blobs during the solve.
    pub pull: Duration,
    /// Extracting layers into snapshots.
    pub snapshot: Duration,
    /// Commands in the OCI runtime.
    pub run: Duration,
    /// Diffing snapshots into layers and compressing them.
    pub compress: Duration,
    /// Writing the inline cache records.
    pub cache_export: Duration,
    /// Sending the image to its outputs (push, archives, stages cache artifacts).
    pub push: Duration,
    /// The whole build.
    pub total: Duration,
}

impl BuildReport {
    /// Steps served by any cache.
    pub fn cached(&self) -> usize {
        self.steps_cached.values().sum()
    }
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The Dockerfile could not be read.
    #[error("reading {path}")]
    ReadDockerfile {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The Dockerfile does not parse, lower or key (its message names `file:line:col`).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A base image could not be resolved.
    #[error("resolving base image {reference}")]
    BaseImage {
        /// The reference.
        reference: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A RUN step is for a platform the host cannot run (no emulation).
    #[error(
        "{dockerfile}:{line}: {step} runs on {platform}, but this host runs {host} and inlay has no emulation; build for {host}, or run this stage on the build platform (`FROM --platform=$BUILDPLATFORM`)"
    )]
    ForeignRun {
        /// The Dockerfile's name.
        dockerfile: String,
        /// The RUN's line.
        line: usize,
        /// The step's description.
        step: String,
        /// The step's platform.
        platform: String,
        /// The host's platform.
        host: String,
    },
    /// A step failed.
    #[error(transparent)]
    Solve(#[from] SolveError),
    /// Setting up (store, registry client, runtime) failed.
    #[error("{what}: {reason}")]
    Setup {
        /// What was being set up.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// Writing the image or an output failed.
    #[error("{what}")]
    Output {
        /// The output.
        what: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn setup(what: &'static str) -> impl FnOnce(String) -> BuildError {
    move |reason| BuildError::Setup { what, reason }
}

fn output<E: std::error::Error + Send + Sync + 'static>(
    what: impl Into<String>,
) -> impl FnOnce(E) -> BuildError {
    let what = what.into();
    move |e| BuildError::Output {
        what,
        source: Box::new(e),
    }
}

/// The host's platform (images are built for it).
pub fn host_platform() -> stages::Platform {
    let architecture = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    };
    stages::Platform {
        os: "linux".to_owned(),
        architecture: architecture.to_owned(),
        variant: String::new(),
    }
}

/// A registry client configured from the environment (docker's config and credentials).
pub fn registry_client() -> Result<Client, BuildError> {
    let config = ClientConfig::from_env().map_err(|e| setup("registry config")(e.to_string()))?;
    let credentials =
        CredentialStore::from_env().map_err(|e| setup("registry credentials")(e.to_string()))?;
    Client::new(config, credentials).map_err(|e| setup("registry client")(e.to_string()))
}

/// What every phase of a build shares: the registry client, the async runtime that drives it,
/// the store and the image source.
pub struct Session {
    /// The registry client (docker's config and credentials).
    pub client: Client,
    /// The runtime the registry calls run on.
    pub tokio: tokio::runtime::Runtime,
    /// The local store.
    pub store: Store,
    /// Base and cached images through the registry.
    pub images: Arc<RegistryImages>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Opens the store at `store_root` and sets up the registry client from the environment.
    pub fn open(store_root: &std::path::Path) -> Result<Session, BuildError> {
        let client = registry_client()?;
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| setup("async runtime")(e.to_string()))?;
        let store = Store::open(store_root).map_err(|e| setup("store")(e.to_string()))?;
        let images = Arc::new(
            RegistryImages::new(client.clone())
                .map_err(|e| setup("registry images")(e.to_string()))?,
        );
        Ok(Session {
            client,
            tokio,
            store,
            images,
        })
    }
}

/// Everything known before the solve: the plan's input (bases resolved), the keys of the
/// solved profile, the profiles to export, and the imported caches.
#[derive(Debug)]
pub struct Prepared {
    /// The plan's input, base images resolved (manifest and config only).
    pub input: PlanInput,
    /// The keys of the primary profile.
    pub plan: KeyPlan,
    /// The profiles the inline cache is written for.
    pub profiles: Vec<KeyProfile>,
    /// The profile the solver keys with (`buildkit-current` when exported, else the first).
    pub primary: KeyProfile,
    /// The `--cache-from` records, merged (empty with `--no-cache` or no refs).
    pub imported: CacheStore,
}

/// Reads the Dockerfile, resolves the base images (manifest and config only; layers stay
/// lazy), plans the keys and imports every `--cache-from` reference. Import problems become
/// warnings in `report`, never errors.
pub fn prepare(
    request: &BuildRequest,
    session: &Session,
    report: &mut BuildReport,
) -> Result<Prepared, BuildError> {
    prepare_on(request, session, report, &host_platform())
}

/// [`prepare`] for a given target platform (a dry run can key any platform).
pub fn prepare_on(
    request: &BuildRequest,
    session: &Session,
    report: &mut BuildReport,
    platform: &stages::Platform,
) -> Result<Prepared, BuildError> {
    let (dockerfile, dockerfile_name) = read_dockerfile(request)?;
    let platform = platform.clone();
    let profiles = request
        .inline_cache
        .clone()
        .unwrap_or_else(|| vec![KeyProfile::BuildkitCurrent]);
    let primary = if profiles.contains(&KeyProfile::BuildkitCurrent) {
        KeyProfile::BuildkitCurrent
    } else {
        profiles
            .first()
            .copied()
            .unwrap_or(KeyProfile::BuildkitCurrent)
    };

    let mut input = PlanInput::new(&request.context, dockerfile, primary);
    input.dockerfile_name = dockerfile_name;
    input.build_args.clone_from(&request.build_args);
    input.target.clone_from(&request.target);
    input.platform = Some(request.platform.clone().unwrap_or_else(|| platform.clone()));
    input.build_platform = Some(platform);
    input.network = request.network;
    input.extra_hosts.clone_from(&request.extra_hosts);
    for base in base_images(&input)? {
        let name = base.reference.to_string();
        let base_error = |source: Box<dyn std::error::Error + Send + Sync>| BuildError::BaseImage {
            reference: name.clone(),
            source,
        };
        let resolved = session
            .images
            .resolve(&name, &base.platform)
            .map_err(|e| base_error(Box::new(e)))?;
        let config =
            serde_json::from_slice(&resolved.config).map_err(|e| base_error(Box::new(e)))?;
        input.bases.push(BaseResolved::new(
            base.reference.clone(),
            Some(resolved.top_digest.clone()),
            config,
        ));
    }
    let plan = plan_keys(&input)?;
    // FROM lines resolve an image and are never cached; the steps are the ops that build.
    report.steps_total = plan
        .lowered
        .steps
        .iter()
        .filter(|s| !matches!(plan.lowered.graph.vertex(s.output.vertex).op, Op::Source(_)))
        .count();

    // Cache imports: never fatal.
    let imported = if request.cache_from.is_empty() || request.no_cache {
        CacheStore::new()
    } else {
        let importer = inlay_importer_registry::Importer::new(session.client.clone());
        let imports = session
            .tokio
            .block_on(importer.import_all(&request.cache_from));
        for warning in imports.warnings() {
            report.warnings.push(format!("cache import: {warning}"));
        }
        imports.to_store()
    };
    Ok(Prepared {
        input,
        plan,
        profiles,
        primary,
        imported,
    })
}

/// Refuses a RUN whose platform is not the host's: its binaries would not run here.
fn refuse_foreign_runs(plan: &KeyPlan, dockerfile: &str) -> Result<(), BuildError> {
    let host = host_platform();
    let host = Platform::new(&host.os, &host.architecture, &host.variant);
    for step in &plan.lowered.steps {
        let vertex = plan.lowered.graph.vertex(step.output.vertex);
        if !matches!(vertex.op, Op::Exec(_)) {
            continue;
        }
        if let Some(platform) = vertex.platform.as_ref().filter(|p| **p != host) {
            return Err(BuildError::ForeignRun {
                dockerfile: dockerfile.to_owned(),
                line: step.position.line,
                step: step.description.clone(),
                platform: platform.to_string(),
                host: host.to_string(),
            });
        }
    }
    Ok(())
}

/// Runs a build.
pub fn run(request: &BuildRequest, progress: &ProgressSink) -> Result<BuildReport, BuildError> {
    let start = Instant::now();
    let mut report = BuildReport::default();
    let session = Session::open(&request.store_root)?;
    let prepared = prepare(request, &session, &mut report)?;
    // A dry run may key another platform's RUN steps; a build cannot run them.
    refuse_foreign_runs(&prepared.plan, &prepared.input.dockerfile_name)?;
    report.timings.resolve = start.elapsed();
    let distrust = Distrust::default();
    let mut attempt = 0;
    let outcome = loop {
        attempt += 1;
        let cache = (!request.no_cache).then(|| {
            Arc::new(
                ImportedCache::new(
                    LocalCache::new(session.store.clone()),
                    prepared.imported.clone(),
                )
                .verified(session.images.clone(), distrust.clone()),
            )
        });
        let solved = solve(
            request,
            &session,
            &prepared,
            cache.clone(),
            progress,
            &mut report,
        );
        if let Some(cache) = &cache {
            report.warnings.extend(cache.warnings());
        }
        match solved {
            Ok(outcome) => break outcome,
            // A layer an imported record promised turned out wrong when pulled: distrust it
            // and solve again (what is done so far is in the local cache); a few times at most,
            // each time with one more layer distrusted.
            Err(e) if attempt < MAX_SOLVES => {
                let suspect = suspect_layer(&e).filter(|d| {
                    cache.as_ref().is_some_and(|c| c.served(d))
                        && distrust.add(d.clone(), "was wrong when pulled".to_owned())
                });
                let Some(digest) = suspect else {
                    return Err(e);
                };
                report.warnings.push(format!(
                    "cache: imported layer {digest} was wrong when pulled; solving again without it ({})",
                    crate::progress::error_chain(&e)
                ));
            }
            Err(e) => return Err(e),
        }
    };
    report.timings.pull = outcome.timings.pull;
    report.timings.snapshot = outcome.timings.snapshot;
    report.timings.run = outcome.timings.run;
    report.timings.compress = outcome.timings.compress;
    if !request.cache_from.is_empty() && !request.no_cache && report.cached() < report.steps_total {
        let ran: HashSet<VertexId> = outcome.executed.iter().copied().collect();
        let mut warnings = Vec::new();
        report.missed = check::explain_missed(request, &session, &prepared, &mut warnings)
            .into_iter()
            .filter(|s| ran.contains(&s.vertex))
            .collect();
        report.warnings.extend(warnings);
    }
    let image = image(request, &session, &prepared, &outcome, &mut report)?;
    let sending = Instant::now();
    outputs::send(
        request,
        &session,
        &prepared,
        &outcome,
        &image,
        progress,
        &mut report,
    )?;
    report.timings.push = sending.elapsed();
    report.timings.total = start.elapsed();
    Ok(report)
}

/// How many times a build solves when imported layers turn out wrong.
const MAX_SOLVES: usize = 4;

/// The blob digest or diffID at the root of a failed pull or extraction, if that is the cause.
/// Transparent wrappers hide the middle of the `source()` chain, so the solver's own variants
/// are taken apart by hand and the rest of the chain is searched for an extraction error.
fn suspect_layer(error: &BuildError) -> Option<Digest> {
    fn of_solve(error: &SolveError) -> Option<Digest> {
        match error {
            SolveError::Vertex { source, .. } => of_solve(source),
            SolveError::Source(SourceError::Pull { digest, .. })
            | SolveError::MissingBlob { digest } => Some(digest.clone()),
            SolveError::Store(e) => of_chain(e),
            SolveError::Snapshot(e) => of_chain(e),
            _ => None,
        }
    }
    fn of_chain(error: &(dyn std::error::Error + 'static)) -> Option<Digest> {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(e) = cause {
            if let Some(ExtractError::DiffIdMismatch { expected, .. }) = e.downcast_ref() {
                return Some(expected.clone());
            }
            cause = e.source();
        }
        None
    }
    match error {
        BuildError::Solve(e) => of_solve(e),
        _ => None,
    }
}

/// Solves the plan's graph with `cache` (the local store first, then the imported records);
/// counts the cached steps per origin, the runs and the bytes pulled into `report`.
fn solve(
    request: &BuildRequest,
    session: &Session,
    prepared: &Prepared,
    cache: Option<Arc<ImportedCache>>,
    progress: &ProgressSink,
    report: &mut BuildReport,
) -> Result<SolveOutcome, BuildError> {
    let plan = &prepared.plan;
    let pulled = Arc::new(AtomicU64::new(0));
    let cached: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let sink: ProgressSink = {
        let progress = progress.clone();
        let pulled = pulled.clone();
        let cached = cached.clone();
        let steps: HashSet<VertexId> = plan.lowered.steps.iter().map(|s| s.output.vertex).collect();
        let unnamed: HashSet<_> = (0..plan.lowered.graph.len())
            .map(VertexId)
            .filter(|v| plan.lowered.graph.vertex(*v).description.is_empty())
            .collect();
        Arc::new(move |event: ProgressEvent| {
            if unnamed.contains(&event_vertex(&event)) {
                // BuildKit's progress shows no unnamed vertex (scratch, internal merges).
                return;
            }
            match &event {
                ProgressEvent::Pulling { size, .. } => {
                    pulled.fetch_add(*size, Ordering::Relaxed);
                }
                ProgressEvent::Cached { vertex, origin } if steps.contains(vertex) => {
                    let label = match origin {
                        CacheOrigin::Local => "local".to_owned(),
                        CacheOrigin::Other(l) => l.clone(),
                    };
                    if let Ok(mut c) = cached.lock() {
                        *c.entry(label).or_default() += 1;
                    }
                }
                _ => {}
            }
            progress(event);
        })
    };
    let host = host_platform();
    let mut options = SolverOptions {
        platform: Platform::new(&host.os, &host.architecture, &host.variant),
        profile: prepared.primary,
        ..SolverOptions::default()
    };
    options.layer.compression = request.compression;
    options.oci_media_types = oci_manifests(request);
    options.layer.source_date_epoch = request
        .source_date_epoch
        .and_then(|e| u64::try_from(e).ok());
    let solver = Solver::new(session.store.clone(), options);
    let mut solve = SolveRequest::new(&plan.lowered.graph, plan.lowered.target);
    let mut local = LocalSource::new(&request.context);
    if let Some(ignore) = read_dockerignore(&request.context, &prepared.input.dockerfile_name)? {
        let ignore = Arc::new(ignore);
        local = local.excluding(Arc::new(move |p: &str| ignore.matches(p)));
    }
    solve.locals.insert("context".to_owned(), local);
    solve.secrets.clone_from(&request.secrets);
    solve.images = Some(session.images.clone());
    solve.cache = cache.map(|c| c as Arc<dyn crate::solver::ResultCache>);
    solve.progress = sink;
    let result = solver.solve(&solve);
    report.bytes_pulled += pulled.load(Ordering::Relaxed);
    let outcome = result?;
    report.runtime_runs += outcome.runtime_runs;
    report.steps_cached = cached.lock().map(|c| c.clone()).unwrap_or_default();
    Ok(outcome)
}

/// Whether the image is written with OCI media types: asked for, an OCI output, or zstd
/// layers (Docker schema 2 has no zstd layer type).
fn oci_manifests(request: &BuildRequest) -> bool {
    request.oci_media_types
        || request.compression == Compression::Zstd
        || request.outputs.iter().any(|o| {
            matches!(
                o,
                BuildOutput::Image { oci: true, .. } | BuildOutput::Oci { .. }
            )
        })
}

/// The image as built: the written manifest and config, and the non-empty layers of the
/// result (what the manifest lists).
struct Image {
    built: inlay_exporter_inline::BuiltImage,
    kept: Vec<LayerRef>,
    created_at: Timestamp,
}

/// Assembles the config and manifest from the result's layers, with the inline cache records
/// when asked for.
fn image(
    request: &BuildRequest,
    session: &Session,
    prepared: &Prepared,
    outcome: &SolveOutcome,
    report: &mut BuildReport,
) -> Result<Image, BuildError> {
    let plan = &prepared.plan;
    let result_layers = outcome.result.layers().unwrap_or_default().to_vec();
    let oci = oci_manifests(request);
    let mut image_config = plan.lowered.image.clone();
    if !request.labels.is_empty() {
        let config = image_config.config.get_or_insert_with(Default::default);
        let labels = config.labels.get_or_insert_with(BTreeMap::new);
        labels.extend(request.labels.clone());
    }
    let history = image_config.history.clone();
    let template = serde_json::to_vec(&image_config).map_err(output("image config template"))?;
    let build_time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    let assembled = assemble(
        &session.store,
        &ImageRequest {
            layers: &result_layers,
            config_template: &template,
            history,
            source_date_epoch: request.source_date_epoch,
            build_time,
            oci,
        },
    )
    .map_err(output("assembling the image"))?;
    let kept: Vec<LayerRef> = result_layers
        .into_iter()
        .filter(|l| l.diff_id.as_str() != EMPTY_TAR_DIFF_ID)
        .collect();
    let layers: Vec<Layer> = kept
        .iter()
        .map(|l| Layer {
            descriptor: l.descriptor(),
            diff_id: l.diff_id.clone(),
        })
        .collect();
    let image_layers: Vec<Descriptor> = layers.iter().map(|l| l.descriptor.clone()).collect();
    let created_at = timestamp(request.source_date_epoch.unwrap_or(build_time));
    let exporting = Instant::now();
    let inline_cache = match &request.inline_cache {
        Some(profiles) => cache_export::inline_records(
            &prepared.input,
            plan,
            outcome,
            profiles,
            &image_layers,
            created_at,
            report,
        ),
        None => None,
    };
    report.timings.cache_export = exporting.elapsed();
    report.inline_records = inline_cache.as_ref().map(|g| g.records().len());
    let built = write_image(&ImageInput {
        config: ConfigInput::Final(assembled.config.clone()),
        layers,
        inline_cache,
        format: if oci {
            ManifestFormat::Oci
        } else {
            ManifestFormat::Docker
        },
        annotations: BTreeMap::new(),
    })
    .map_err(output("writing the image"))?;
    report.digest = Some(built.digest().clone());
    report.config_digest = Some(built.config_descriptor().digest.clone());
    Ok(Image {
        built,
        kept,
        created_at,
    })
}

fn read_dockerfile(request: &BuildRequest) -> Result<(Vec<u8>, String), BuildError> {
    match &request.dockerfile {
        DockerfileSource::Bytes(b) => Ok((b.clone(), "Dockerfile".to_owned())),
        DockerfileSource::Path(path) => {
            let bytes = std::fs::read(path).map_err(|source| BuildError::ReadDockerfile {
                path: path.clone(),
                source,
            })?;
            // The name decides `<name>.dockerignore`; BuildKit takes it relative to the context.
            let name = path
                .strip_prefix(&request.context)
                .unwrap_or(path)
                .to_string_lossy()
                .into_owned();
            Ok((bytes, name))
        }
    }
}

fn timestamp(seconds: i64) -> Timestamp {
    Timestamp::from_unix_nanos(i128::from(seconds) * 1_000_000_000)
        .or_else(|| Timestamp::from_unix_nanos(0))
        .expect("the epoch is a valid timestamp")
}

fn event_vertex(event: &ProgressEvent) -> VertexId {
    match event {
        ProgressEvent::Started { vertex, .. }
        | ProgressEvent::Cached { vertex, .. }
        | ProgressEvent::Pulling { vertex, .. }
        | ProgressEvent::Log { vertex, .. }
        | ProgressEvent::Done { vertex, .. }
        | ProgressEvent::Failed { vertex, .. } => *vertex,
    }
}
