//! Key planning: the cache keys a build will look up, without running anything.
//!
//! [`plan_keys`] lowers the Dockerfile for one [`KeyProfile`] (with the base images the caller
//! resolved, see [`base_images`]), reads the build context paths the `COPY`/`ADD` steps need
//! (honouring `.dockerignore`), computes their content keys with the profile's content-hash
//! rules, and solves the keys of the whole build ([`KeyGraph`], the final key, the keys of
//! every step with BuildKit's progress description). [`KeyPlan::export_records`] turns them
//! into the inline cache records BuildKit would write for a given image, so a caller holding a
//! pushed image can compare byte for byte.
//!
//! Content keys that need a built filesystem (`COPY --from=<stage>`, `COPY --from=<image>`)
//! are taken from [`PlanInput::stage_trees`] and [`PlanInput::image_trees`] when the caller has
//! them; otherwise the step is keyed by its definition links only and listed in [`KeyPlan::pending`].

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use inlay_core::cache::{ExportResult, RecordGraph, Timestamp, export_chain};
use inlay_core::cachekey::{KeyError, KeyGraph, KeyId, KeyProfile, KeySolver, cache_map};
use inlay_core::contenthash::{
    ContentHashError, ContentTree, ContentTreeBuilder, Entry, EntryKind, Profile, Selector,
    SourceKind, Stat, TreeOptions, content_key,
};
use inlay_core::op::{HostIp, Input, NetMode, Op, VertexId};
use inlay_core::{Descriptor, Digest, Platform, Reference};
use inlay_frontend_dockerfile::dockerignore::{Dockerignore, DockerignoreError};
use inlay_frontend_dockerfile::lower::{
    self, BaseImage, ContentOrigin, LowerError, LowerOptions, Lowered, ResolvedImage,
};
use inlay_frontend_dockerfile::stages;
use inlay_frontend_dockerfile::{DockerfileError, instructions, parser};

use crate::context::{ContextError, ContextOptions, hash_directory};

/// The content-hash rules that go with a key profile (spec section 5.8); see
/// [`KeyProfile::content_profile`].
pub fn content_profile(profile: KeyProfile) -> Profile {
    profile.content_profile()
}

/// Why a plan could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The Dockerfile does not parse or lower.
    #[error(transparent)]
    Lower(#[from] LowerError),
    /// The `.dockerignore` file is malformed.
    #[error("invalid .dockerignore in {path}")]
    Dockerignore {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: DockerignoreError,
    },
    /// Reading the context failed.
    #[error("cannot read the build context")]
    Context(#[from] ContextError),
    /// A content checksum failed (e.g. a source path that does not exist).
    #[error("cannot compute the content key of {description}")]
    Content {
        /// The step.
        description: String,
        /// Why.
        #[source]
        source: ContentHashError,
    },
    /// Key computation failed.
    #[error("cannot compute cache keys")]
    Keys(#[from] KeyError),
    /// `export_records` got a different number of times than the final chain has steps.
    #[error("the final chain has {steps} layer steps but {given} times were given")]
    CreatedCount {
        /// Layer steps of the final chain.
        steps: usize,
        /// Times given.
        given: usize,
    },
}

impl From<DockerfileError> for PlanError {
    fn from(e: DockerfileError) -> Self {
        PlanError::Lower(LowerError::Dockerfile(e))
    }
}

/// What a key plan needs.
#[derive(Debug, Clone)]
pub struct PlanInput {
    /// The build context directory.
    pub context_dir: PathBuf,
    /// The Dockerfile's bytes.
    pub dockerfile: Vec<u8>,
    /// Its name, for error messages and for `<name>.dockerignore`.
    pub dockerfile_name: String,
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--platform` (the target platform); linux/amd64 when `None`.
    pub platform: Option<stages::Platform>,
    /// The builder's own platform (`BUILDPLATFORM`); linux/amd64 when `None`.
    pub build_platform: Option<stages::Platform>,
    /// The build's network mode (`--network none` gives `"network":2` on every exec).
    pub network: NetMode,
    /// `--add-host` entries (`host`, `ip`), on every RUN in this order.
    pub extra_hosts: Vec<(String, String)>,
    /// The key profile.
    pub profile: KeyProfile,
    /// The base images [`base_images`] listed, resolved by the caller.
    pub bases: Vec<ResolvedImage>,
    /// Hook for `COPY --from=<stage>` content keys: the content tree of a built stage's
    /// result, by stage index (a [`SourceKind::Snapshot`] tree with the profile's rules).
    pub stage_trees: HashMap<usize, ContentTree>,
    /// Hook for `COPY --from=<image>` content keys: the content tree of an image's filesystem
    /// (its layers applied), by the reference as lowering resolved it
    /// ([`ContentOrigin::Image`]); a [`SourceKind::Snapshot`] tree with the profile's rules.
    pub image_trees: HashMap<Reference, ContentTree>,
}

impl PlanInput {
    /// A plan input with no build args, the last stage, linux/amd64 and the default network.
    pub fn new(
        context_dir: impl Into<PathBuf>,
        dockerfile: impl Into<Vec<u8>>,
        profile: KeyProfile,
    ) -> PlanInput {
        PlanInput {
            context_dir: context_dir.into(),
            dockerfile: dockerfile.into(),
            dockerfile_name: "Dockerfile".to_owned(),
            build_args: BTreeMap::new(),
            target: None,
            platform: None,
            build_platform: None,
            network: NetMode::Unset,
            extra_hosts: Vec::new(),
            profile,
            bases: Vec::new(),
            stage_trees: HashMap::new(),
            image_trees: HashMap::new(),
        }
    }

    fn lower_options(&self) -> LowerOptions {
        let mut options = LowerOptions::new(self.profile);
        options.build.build_args.clone_from(&self.build_args);
        options.build.target.clone_from(&self.target);
        options.build.target_platform.clone_from(&self.platform);
        if let Some(build) = &self.build_platform {
            options.build.build_platform = build.clone();
        }
        options.network = self.network;
        options.extra_hosts = self
            .extra_hosts
            .iter()
            .map(|(host, ip)| HostIp {
                host: host.clone(),
                ip: ip.clone(),
            })
            .collect();
        options
    }

    fn parse(&self) -> Result<(parser::Dockerfile, instructions::Instructions), PlanError> {
        let dockerfile = parser::parse(&self.dockerfile, &self.dockerfile_name)?;
        let parsed = instructions::parse(&dockerfile)?;
        Ok((dockerfile, parsed))
    }
}

/// Phase 1: the images the build needs, for the caller to resolve into
/// [`PlanInput::bases`].
pub fn base_images(input: &PlanInput) -> Result<Vec<BaseImage>, PlanError> {
    let (dockerfile, parsed) = input.parse()?;
    Ok(lower::base_images(
        &dockerfile,
        &parsed,
        &input.lower_options(),
    )?)
}

/// The keys of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepKeys {
    /// `[stage i/n] INSTRUCTION`.
    pub description: String,
    /// The step's op output.
    pub output: Input,
    /// Its record digests (two for an image with both keys; none if every key is random).
    pub records: Vec<Digest>,
}

/// A content key that could not be computed yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingContent {
    /// The consuming vertex.
    pub vertex: VertexId,
    /// Its graph input.
    pub input: usize,
    /// Where the files are.
    pub origin: ContentOrigin,
    /// The step's description.
    pub description: String,
    /// The paths the key will cover.
    pub selectors: Vec<Selector>,
}

/// A content key of the plan: which consumer input, over which paths of which files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentKeyInfo {
    /// The consuming vertex.
    pub vertex: VertexId,
    /// Its graph input.
    pub input: usize,
    /// Where the files are.
    pub origin: ContentOrigin,
    /// The selectors the checksum covers (spec section 5.4).
    pub selectors: Vec<Selector>,
    /// The content key digest (its record is `sha256("<key>@-1")`).
    pub key: Digest,
}

/// The keys of a build under one profile.
#[derive(Debug, Clone)]
pub struct KeyPlan {
    /// The profile.
    pub profile: KeyProfile,
    /// The lowered build (graph, image config with history, steps).
    pub lowered: Lowered,
    /// Every key, parents first.
    pub keys: KeyGraph,
    /// The first key of the target's final state (`None` for an empty `FROM scratch` build).
    pub final_key: Option<KeyId>,
    /// Per step, in graph order.
    pub steps: Vec<StepKeys>,
    /// The content keys computed (context files, heredocs, stage trees given).
    pub content: Vec<ContentKeyInfo>,
    /// Content keys that need a built filesystem the caller did not give.
    pub pending: Vec<PendingContent>,
}

/// Plans the keys of a build: lowering, context hashing, content keys, key solving.
pub fn plan_keys(input: &PlanInput) -> Result<KeyPlan, PlanError> {
    let (dockerfile, parsed) = input.parse()?;
    let options = input.lower_options();
    let lowered = lower::lower(&dockerfile, &parsed, &options, &input.bases)?;
    let platform = target_platform(input);
    let hash_profile = content_profile(input.profile);

    let (content_info, pending) = content_keys(input, &lowered, &platform, hash_profile)?;
    let mut content: HashMap<VertexId, Vec<(usize, Digest)>> = HashMap::new();
    for c in &content_info {
        content
            .entry(c.vertex)
            .or_default()
            .push((c.input, c.key.clone()));
    }

    let mut solver = KeySolver::new(&lowered.graph, input.profile, platform);
    let none = Vec::new();
    for vertex in lowered.graph.ancestors(lowered.target.vertex) {
        let facts = lowered.facts.get(&vertex).cloned().unwrap_or_default();
        solver.add_vertex(vertex, &facts, content.get(&vertex).unwrap_or(&none))?;
    }
    let keys = solver.into_keys();
    let final_key = keys.keys_of(lowered.target).first().copied();
    let steps = lowered
        .steps
        .iter()
        .map(|s| StepKeys {
            description: s.description.clone(),
            output: s.output,
            records: keys
                .keys_of(s.output)
                .iter()
                .filter_map(|k| keys.node(*k).record.stable().cloned())
                .collect(),
        })
        .collect();
    Ok(KeyPlan {
        profile: input.profile,
        lowered,
        keys,
        final_key,
        steps,
        content: content_info,
        pending,
    })
}

/// Content keys by consumer vertex and graph input, computed over the selectors the op's
/// CacheMap names for that input (spec section 5.4), and those that wait for a built tree.
type ContentKeys = (Vec<ContentKeyInfo>, Vec<PendingContent>);

fn content_keys(
    input: &PlanInput,
    lowered: &Lowered,
    platform: &Platform,
    hash_profile: Profile,
) -> Result<ContentKeys, PlanError> {
    let context_tree = match lowered.context {
        Some(_)
            if lowered
                .content_uses
                .iter()
                .any(|u| u.origin == ContentOrigin::Context) =>
        {
            Some(hash_context(input, lowered, hash_profile)?)
        }
        _ => None,
    };

    // Content keys by (vertex, graph input), computed over the selectors the op's CacheMap
    // names for that input.
    let mut content = Vec::new();
    let mut pending = Vec::new();
    for usage in &lowered.content_uses {
        let facts = lowered
            .facts
            .get(&usage.vertex)
            .cloned()
            .unwrap_or_default();
        let map = cache_map(
            &lowered.graph,
            usage.vertex,
            input.profile,
            platform,
            &facts,
        )?;
        let Some(selectors) = map.inputs.get(usage.input).and_then(|k| k.content.clone()) else {
            continue;
        };
        let selectors: Vec<Selector> = selectors
            .iter()
            .map(|s| Selector::new(s.path.clone(), s.wildcard, s.follow_links))
            .collect();
        let description = lowered.graph.vertex(usage.vertex).description.clone();
        let inline_tree;
        let tree = match &usage.origin {
            ContentOrigin::Context => context_tree.as_ref(),
            ContentOrigin::Stage(i) => input.stage_trees.get(i),
            ContentOrigin::Image(reference) => input.image_trees.get(reference),
            ContentOrigin::Directory {
                path,
                mode,
                uid,
                gid,
            } => {
                inline_tree =
                    directory_tree(hash_profile, path, *mode, *uid, *gid).map_err(|source| {
                        PlanError::Content {
                            description: description.clone(),
                            source,
                        }
                    })?;
                Some(&inline_tree)
            }
            ContentOrigin::Inline { path, mode, data } => {
                inline_tree =
                    inline_file_tree(hash_profile, path, *mode, data).map_err(|source| {
                        PlanError::Content {
                            description: description.clone(),
                            source,
                        }
                    })?;
                Some(&inline_tree)
            }
            _ => None,
        };
        let Some(tree) = tree else {
            pending.push(PendingContent {
                vertex: usage.vertex,
                input: usage.input,
                origin: usage.origin.clone(),
                description,
                selectors,
            });
            continue;
        };
        let key = content_key(tree, &selectors).map_err(|source| PlanError::Content {
            description,
            source,
        })?;
        content.push(ContentKeyInfo {
            vertex: usage.vertex,
            input: usage.input,
            origin: usage.origin.clone(),
            selectors,
            key,
        });
    }

    Ok((content, pending))
}

fn target_platform(input: &PlanInput) -> Platform {
    input
        .platform
        .as_ref()
        .map_or_else(Platform::linux_amd64, |p| {
            Platform::new(&p.os, &p.architecture, &p.variant)
        })
}

/// Reads the context paths the build needs, as the client sends them (after
/// `.dockerignore`), into a local-context tree.
fn hash_context(
    input: &PlanInput,
    lowered: &Lowered,
    profile: Profile,
) -> Result<ContentTree, PlanError> {
    let mut options = ContextOptions::new(TreeOptions::new(profile, SourceKind::LocalContext));
    if let Some(paths) = &lowered.context_paths {
        options = options.including(paths.iter().cloned());
    }
    if let Some(ignore) = read_dockerignore(&input.context_dir, &input.dockerfile_name)? {
        options = options.excluding(ignore);
    }
    Ok(hash_directory(&input.context_dir, &options)?)
}

/// `<Dockerfile>.dockerignore` beside the Dockerfile, else `.dockerignore` in the context.
pub(crate) fn read_dockerignore(
    context: &Path,
    dockerfile_name: &str,
) -> Result<Option<Dockerignore>, PlanError> {
    let choice =
        inlay_frontend_dockerfile::dockerignore::select_ignore_file(dockerfile_name, &|p| {
            context.join(p).is_file()
        });
    let path = match choice {
        Some(inlay_frontend_dockerfile::dockerignore::IgnoreFile::BesideDockerfile(p)) => {
            context.join(p)
        }
        Some(_) => context.join(".dockerignore"),
        None => return Ok(None),
    };
    let bytes = std::fs::read(&path).map_err(|source| ContextError::Io {
        path: path.clone(),
        source,
    })?;
    Dockerignore::parse(&bytes)
        .map(Some)
        .map_err(|source| PlanError::Dockerignore { path, source })
}

/// The tree of a heredoc file made on scratch: a root directory and one root-owned file.
fn inline_file_tree(
    profile: Profile,
    path: &str,
    mode: u32,
    data: &[u8],
) -> Result<ContentTree, ContentHashError> {
    let mut builder = ContentTreeBuilder::new(TreeOptions::new(profile, SourceKind::Snapshot));
    builder.insert(Entry::new("/", Stat::new(EntryKind::Dir, 0o755)))?;
    let stat = Stat::new(
        EntryKind::File {
            size: data.len() as u64,
        },
        mode,
    );
    builder.insert(Entry::with_content(path, stat, data.to_vec()))?;
    builder.build()
}

/// The tree of a directory made on scratch (a mount's `[internal] setting cache mount
/// permissions` mkdir): a root directory and the owned directory.
fn directory_tree(
    profile: Profile,
    path: &str,
    mode: u32,
    uid: u32,
    gid: u32,
) -> Result<ContentTree, ContentHashError> {
    let mut builder = ContentTreeBuilder::new(TreeOptions::new(profile, SourceKind::Snapshot));
    builder.insert(Entry::new("/", Stat::new(EntryKind::Dir, 0o755)))?;
    builder.insert(Entry::new(
        path,
        Stat::new(EntryKind::Dir, mode).with_owner(uid, gid),
    ))?;
    builder.build()
}

impl KeyPlan {
    /// The record digest of the final key.
    pub fn final_record(&self) -> Option<&Digest> {
        self.final_key
            .and_then(|k| self.keys.node(k).record.stable())
    }

    /// The layer-producing ops of the target's final chain, base first: each op's rootfs
    /// input back to the image (or scratch) it starts from.
    pub fn layer_chain(&self) -> Vec<Input> {
        let graph = &self.lowered.graph;
        let mut chain = Vec::new();
        let mut at = Some(self.lowered.target);
        while let Some(output) = at {
            let vertex = graph.vertex(output.vertex);
            at = match &vertex.op {
                Op::Exec(exec) => exec
                    .mounts
                    .iter()
                    .find(|m| m.dest == "/")
                    .and_then(|m| usize::try_from(m.input).ok())
                    .and_then(|i| vertex.inputs.get(i).copied()),
                Op::File(_) | Op::Merge(_) => vertex.inputs.first().copied(),
                _ => None,
            };
            if !matches!(vertex.op, Op::Source(_)) {
                chain.push(output);
            }
        }
        chain.reverse();
        chain
    }

    /// The inline cache records BuildKit writes for `image_layers` (the pushed image's layers,
    /// base first), given when each step of the final chain was stored (`createdAt`, one per
    /// [`KeyPlan::layer_chain`] entry). The step `k` of the chain owns image layers
    /// `0..=base + k`. `None` when no result fits the image (BuildKit writes no value then).
    pub fn export_records(
        &self,
        image_layers: &[Descriptor],
        created_at: &[Timestamp],
    ) -> Result<Option<RecordGraph>, PlanError> {
        let chain = self.layer_chain();
        if chain.len() != created_at.len() {
            return Err(PlanError::CreatedCount {
                steps: chain.len(),
                given: created_at.len(),
            });
        }
        let base = image_layers.len().saturating_sub(chain.len());
        let results: HashMap<Input, ExportResult> = chain
            .iter()
            .zip(created_at)
            .enumerate()
            .filter(|(k, _)| base + k < image_layers.len())
            .map(|(k, (output, t))| {
                (
                    *output,
                    ExportResult {
                        layers: image_layers[..=base + k].to_vec(),
                        created_at: *t,
                    },
                )
            })
            .collect();
        let Some(last) = self.final_key else {
            return Ok(None);
        };
        Ok(export_chain(image_layers, &[(&self.keys, last)], &results))
    }
}
