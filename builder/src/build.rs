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
//! It deliberately does not print: progress goes to the caller's [`ProgressSink`], warnings and
//! figures come back in the [`BuildReport`].

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use inlay_core::cache::artifact::distribution_sources;
use inlay_core::cache::export::{ExportResult, export_chain};
use inlay_core::cache::matcher::{Alternative, MatchSet};
use inlay_core::cache::{CacheConfig, CacheLayer, CacheStore, RecordGraph, Timestamp};
use inlay_core::cachekey::{KeyGraph, KeyId, KeyProfile};
use inlay_core::descriptor::ANNOTATION_UNCOMPRESSED;
use inlay_core::op::{Input, NetMode, Op, VertexId};
use inlay_core::{Descriptor, Digest, Platform, Reference};
use inlay_exporter_inline::{
    ArchiveDestination, ArchiveFormat, BlobLocation, BlobMap, CacheArtifact, ConfigInput,
    ImageInput, Layer, ManifestFormat, PushOptions, write_archive, write_image,
};
use inlay_frontend_dockerfile::lower::ResolvedImage as BaseResolved;
use inlay_frontend_dockerfile::stages;
use inlay_registry::{Client, ClientConfig, CredentialStore};

use crate::image::{EMPTY_TAR_DIFF_ID, ImageRequest, assemble};
use crate::plan::{KeyPlan, PlanError, PlanInput, base_images, plan_keys, read_dockerignore};
use crate::progress::{CacheOrigin, ProgressEvent, ProgressSink};
use crate::solver::{
    CacheHit, CacheQuery, LayerRef, LocalCache, ResultCache, SolveError, SolveRequest, Solver,
    SolverOptions,
};
use crate::source::{ImageSource, LocalSource, RegistryImages};
use crate::store::Store;

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
    },
    /// `type=docker,dest=...` (a tar for `docker load`).
    Docker {
        /// The tar file.
        dest: PathBuf,
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

/// Runs a build.
#[allow(clippy::too_many_lines)] // one linear story: read, plan, import, solve, export, output
pub fn run(request: &BuildRequest, progress: &ProgressSink) -> Result<BuildReport, BuildError> {
    let mut report = BuildReport::default();
    let (dockerfile, dockerfile_name) = read_dockerfile(request)?;
    let client = registry_client()?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| setup("async runtime")(e.to_string()))?;
    let store = Store::open(&request.store_root).map_err(|e| setup("store")(e.to_string()))?;
    let images = Arc::new(
        RegistryImages::new(client.clone()).map_err(|e| setup("registry images")(e.to_string()))?,
    );
    let platform = host_platform();
    let core_platform = Platform::new(&platform.os, &platform.architecture, &platform.variant);
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

    // Base images: manifest and config only; layers stay lazy.
    let mut input = PlanInput::new(&request.context, dockerfile, primary);
    input.dockerfile_name = dockerfile_name;
    input.build_args.clone_from(&request.build_args);
    input.target.clone_from(&request.target);
    input.platform = Some(platform.clone());
    input.network = request.network;
    for base in base_images(&input)? {
        let name = base.reference.to_string();
        let resolved =
            images
                .resolve(&name, &base.platform)
                .map_err(|e| BuildError::BaseImage {
                    reference: name.clone(),
                    source: Box::new(e),
                })?;
        let config =
            serde_json::from_slice(&resolved.config).map_err(|e| BuildError::BaseImage {
                reference: name.clone(),
                source: Box::new(e),
            })?;
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
        let importer = inlay_importer_registry::Importer::new(client.clone());
        let imports = tokio.block_on(importer.import_all(&request.cache_from));
        for warning in imports.warnings() {
            report.warnings.push(format!("cache import: {warning}"));
        }
        imports.to_store()
    };

    // Solve.
    let pulled = Arc::new(AtomicU64::new(0));
    let cached: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let sink: ProgressSink = {
        let progress = progress.clone();
        let pulled = pulled.clone();
        let cached = cached.clone();
        let steps: std::collections::HashSet<VertexId> =
            plan.lowered.steps.iter().map(|s| s.output.vertex).collect();
        let unnamed: std::collections::HashSet<_> = (0..plan.lowered.graph.len())
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
    let mut options = SolverOptions {
        platform: core_platform.clone(),
        profile: primary,
        ..SolverOptions::default()
    };
    options.layer.source_date_epoch = request
        .source_date_epoch
        .and_then(|e| u64::try_from(e).ok());
    let solver = Solver::new(store.clone(), options);
    let mut solve = SolveRequest::new(&plan.lowered.graph, plan.lowered.target);
    let mut local = LocalSource::new(&request.context);
    if let Some(ignore) = read_dockerignore(&request.context, &input.dockerfile_name)? {
        let ignore = Arc::new(ignore);
        local = local.excluding(Arc::new(move |p: &str| ignore.matches(p)));
    }
    solve.locals.insert("context".to_owned(), local);
    solve.secrets.clone_from(&request.secrets);
    solve.images = Some(images.clone());
    if !request.no_cache {
        solve.cache = Some(Arc::new(ImportedCache::new(
            LocalCache::new(store.clone()),
            imported,
        )));
    }
    solve.progress = sink;
    let outcome = solver.solve(&solve)?;
    report.runtime_runs = outcome.runtime_runs;
    report.steps_cached = cached.lock().map(|c| c.clone()).unwrap_or_default();

    // The image.
    let result_layers = outcome.result.layers().unwrap_or_default().to_vec();
    let oci = request.outputs.iter().any(|o| {
        matches!(
            o,
            BuildOutput::Image { oci: true, .. } | BuildOutput::Oci { .. }
        )
    });
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
        .map_or(0, |d| d.as_secs() as i64);
    let assembled = assemble(
        &store,
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
    let kept: Vec<&LayerRef> = result_layers
        .iter()
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
    let inline_cache = match &request.inline_cache {
        Some(profiles) => inline_records(
            &input,
            &plan,
            &outcome,
            profiles,
            &image_layers,
            created_at,
            &mut report,
        ),
        None => None,
    };
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

    // Outputs.
    let mut blobs = BlobMap::new();
    blobs.insert(
        built.config_descriptor().digest.clone(),
        BlobLocation::Bytes(built.config().clone()),
    );
    let every_layer: Vec<&LayerRef> = outcome
        .results
        .values()
        .flatten()
        .chain(kept.iter().copied())
        .collect();
    // A layer that already lives in a target's registry is mounted there rather than uploaded.
    let push_registries: std::collections::BTreeSet<String> = request
        .outputs
        .iter()
        .filter_map(|o| match o {
            BuildOutput::Image {
                names, push: true, ..
            } => Some(names),
            _ => None,
        })
        .flatten()
        .filter_map(|n| Reference::parse(n).ok())
        .map(|r| r.registry().to_owned())
        .collect();
    for layer in every_layer {
        let origin = layer
            .origin
            .as_deref()
            .and_then(|o| Reference::parse(o).ok());
        if let Some(origin) = origin.filter(|o| push_registries.contains(o.registry())) {
            blobs.insert(layer.digest.clone(), BlobLocation::Registry(origin));
            continue;
        }
        if store.has_blob(&layer.digest) {
            if let Ok(path) = store.blob_path(&layer.digest) {
                blobs.insert(layer.digest.clone(), BlobLocation::File(path));
                continue;
            }
        }
        if let Some(origin) = layer
            .origin
            .as_deref()
            .and_then(|o| Reference::parse(o).ok())
        {
            blobs.insert(layer.digest.clone(), BlobLocation::Registry(origin));
        }
    }
    let spool = store.scratch_dir().map_err(output("spool directory"))?;
    let push_options = PushOptions {
        spool_dir: Some(spool.path().to_path_buf()),
        ..PushOptions::default()
    };
    let mut names = Vec::new();
    for out in &request.outputs {
        match out {
            BuildOutput::Image {
                names: refs, push, ..
            } => {
                let targets = refs
                    .iter()
                    .map(|r| Reference::parse(r))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(output("image name"))?;
                names.extend(targets.iter().map(ToString::to_string));
                if *push {
                    let pushed = tokio
                        .block_on(inlay_exporter_inline::push_image(
                            &client,
                            &built,
                            &targets,
                            &blobs,
                            &push_options,
                        ))
                        .map_err(output("pushing the image"))?;
                    report.bytes_pushed += pushed.bytes_uploaded;
                    if request.inline_cache.is_some() {
                        for artifact in
                            stage_artifacts(&plan, &outcome, &built, created_at, &mut report)
                        {
                            for target in &targets {
                                match tokio.block_on(inlay_exporter_inline::push_cache_artifact(
                                    &client,
                                    target,
                                    &artifact,
                                    &blobs,
                                    &push_options,
                                )) {
                                    Ok(r) => report.bytes_pushed += r.blobs.bytes_uploaded,
                                    Err(e) => report
                                        .warnings
                                        .push(format!("stages cache for {target}: {e}")),
                                }
                            }
                        }
                    }
                }
            }
            BuildOutput::Oci { dest } | BuildOutput::Docker { dest } => {
                let format = if matches!(out, BuildOutput::Oci { .. }) {
                    ArchiveFormat::Oci
                } else {
                    ArchiveFormat::Docker
                };
                let archive_names = request
                    .outputs
                    .iter()
                    .filter_map(|o| match o {
                        BuildOutput::Image { names, .. } => Some(names),
                        _ => None,
                    })
                    .flatten()
                    .filter_map(|n| Reference::parse(n).ok())
                    .collect::<Vec<_>>();
                let written = tokio
                    .block_on(write_archive(
                        &built,
                        &archive_names,
                        format,
                        &ArchiveDestination::Tar(dest.clone()),
                        &blobs,
                        Some(&client),
                        Some(spool.path()),
                    ))
                    .map_err(output(format!("writing {}", dest.display())))?;
                report.bytes_pulled += written.bytes_fetched;
            }
            BuildOutput::Local { dest } => {
                unpack(&store, images.as_ref(), &kept, dest, progress)?;
            }
        }
    }
    report.bytes_pulled += pulled.load(Ordering::Relaxed);
    write_files(request, &built, &names)?;
    Ok(report)
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

/// The inline cache records of the final chain for every requested profile. The solved
/// profile's keys are the solver's own; another profile's keys come from its own plan, its
/// chain's results being the solved chain's, step for step (both lowerings make one op per
/// instruction).
fn inline_records(
    input: &PlanInput,
    plan: &KeyPlan,
    outcome: &crate::solver::SolveOutcome,
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
    let mut chains: Vec<(&KeyGraph, KeyId)> = Vec::new();
    if profiles.contains(&plan.profile) {
        if let Some(k) = outcome.key_graph.keys_of(plan.lowered.target).first() {
            chains.push((&outcome.key_graph, *k));
        }
    }
    for p in &others {
        if let Some(k) = p.final_key {
            chains.push((&p.keys, k));
        }
    }
    export_chain(image_layers, &chains, &results)
}

/// Unpacks the final layers into `dest` (`type=local`).
fn unpack(
    store: &Store,
    images: &dyn ImageSource,
    layers: &[&LayerRef],
    dest: &Path,
    progress: &ProgressSink,
) -> Result<(), BuildError> {
    let _ = progress;
    for layer in layers {
        if !store.has_blob(&layer.digest) {
            let origin = layer.origin.clone().unwrap_or_default();
            images
                .pull_blob(&origin, &layer.descriptor(), store)
                .map_err(output(format!("pulling {}", layer.digest)))?;
        }
        let blob = store
            .open_blob(&layer.digest)
            .map_err(output(format!("opening {}", layer.digest)))?;
        crate::extract::extract(blob, dest, &crate::extract::ExtractOptions::default())
            .map_err(output(format!("unpacking into {}", dest.display())))?;
    }
    Ok(())
}

/// `--iidfile` and `--metadata-file`, as buildx writes them.
fn write_files(
    request: &BuildRequest,
    built: &inlay_exporter_inline::BuiltImage,
    names: &[String],
) -> Result<(), BuildError> {
    if let Some(path) = &request.iidfile {
        std::fs::write(path, built.digest().to_string())
            .map_err(output(format!("writing {}", path.display())))?;
    }
    if let Some(path) = &request.metadata_file {
        let mut meta = serde_json::Map::new();
        meta.insert(
            "containerimage.config.digest".to_owned(),
            built.config_descriptor().digest.to_string().into(),
        );
        meta.insert(
            "containerimage.digest".to_owned(),
            built.digest().to_string().into(),
        );
        if !names.is_empty() {
            meta.insert("image.name".to_owned(), names.join(",").into());
        }
        let text = serde_json::to_vec_pretty(&meta).map_err(output("metadata"))?;
        std::fs::write(path, text).map_err(output(format!("writing {}", path.display())))?;
    }
    Ok(())
}

/// The solver's cache: the local store first, then the imported records, matched by their
/// links as BuildKit's cache manager does (spec section 4.6). An imported hit is a list of
/// layer descriptors whose `origin` is the repository they can be pulled from; nothing is
/// downloaded here.
pub struct ImportedCache {
    local: LocalCache,
    imported: CacheStore,
    matched: Mutex<HashMap<KeyId, MatchSet>>,
}

impl std::fmt::Debug for ImportedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportedCache")
            .field("origins", &self.imported.origins().len())
            .finish_non_exhaustive()
    }
}

impl ImportedCache {
    /// Asks `local`, then `imported`.
    pub fn new(local: LocalCache, imported: CacheStore) -> ImportedCache {
        ImportedCache {
            local,
            imported,
            matched: Mutex::new(HashMap::new()),
        }
    }

    /// The records key `id` matches (memoised: keys never change within a solve).
    fn match_key(
        &self,
        keys: &KeyGraph,
        id: KeyId,
        memo: &mut HashMap<KeyId, MatchSet>,
    ) -> MatchSet {
        if let Some(m) = memo.get(&id) {
            return m.clone();
        }
        let node = keys.node(id);
        let matched = match node.record.stable() {
            None => MatchSet::new(),
            Some(digest) if node.inputs.is_empty() => self.imported.match_root(digest),
            Some(digest) => {
                let parents: Vec<Vec<(MatchSet, Option<Digest>)>> = node
                    .inputs
                    .iter()
                    .map(|links| {
                        links
                            .iter()
                            .map(|l| (self.match_key(keys, l.key, memo), l.selector.clone()))
                            .collect()
                    })
                    .collect();
                let alternatives: Vec<Vec<Alternative<'_>>> = parents
                    .iter()
                    .map(|links| {
                        links
                            .iter()
                            .map(|(m, s)| Alternative {
                                parents: m,
                                selector: s.as_ref(),
                            })
                            .collect()
                    })
                    .collect();
                self.imported.match_dependent(digest, &alternatives)
            }
        };
        memo.insert(id, matched.clone());
        matched
    }
}

impl ResultCache for ImportedCache {
    fn lookup(&self, query: &CacheQuery<'_>) -> Result<Option<CacheHit>, SolveError> {
        if let Some(hit) = self.local.lookup(query)? {
            return Ok(Some(hit));
        }
        let Some(keys) = query.key_graph else {
            return Ok(None);
        };
        if self.imported.origins().is_empty() {
            return Ok(None);
        }
        let mut memo = self.matched.lock().map_err(|_| SolveError::Internal {
            reason: "imported cache lock poisoned".to_owned(),
        })?;
        for id in query.key_ids {
            let matched = self.match_key(keys, *id, &mut memo);
            let Some(hit) = self.imported.best_result(&matched) else {
                continue;
            };
            let layers: Option<Vec<LayerRef>> = hit
                .result
                .layers
                .iter()
                .map(|d| {
                    Some(LayerRef {
                        diff_id: d.uncompressed_digest()?,
                        digest: d.digest.clone(),
                        size: u64::try_from(d.size).ok()?,
                        media_type: d.media_type.clone(),
                        origin: distribution_sources(d)
                            .first()
                            .map(|(registry, repo)| format!("{registry}/{repo}")),
                    })
                })
                .collect();
            if let Some(layers) = layers {
                return Ok(Some(CacheHit {
                    layers,
                    origin: CacheOrigin::Other(hit.origin.to_owned()),
                }));
            }
        }
        Ok(None)
    }

    fn save(&self, query: &CacheQuery<'_>, layers: &[LayerRef]) -> Result<(), SolveError> {
        self.local.save(query, layers)
    }
}

/// The cache artifacts of the non-final stages (one per stage): each stage's chain exported
/// as a registry cache config whose layer table is that stage's layers, base first, so a
/// record's result index means the same chain as in an inline cache.
fn stage_artifacts(
    plan: &KeyPlan,
    outcome: &crate::solver::SolveOutcome,
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
