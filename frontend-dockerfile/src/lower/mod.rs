//! Lowering: a parsed Dockerfile turned into exactly the LLB BuildKit's Dockerfile frontend
//! emits (`dockerfile2llb/convert.go`), for one [`KeyProfile`], plus the image config and
//! history BuildKit writes (spec sections 5.5 to 5.7 and 8c).
//!
//! Two phases, because the op graph depends on the base images' configs:
//!
//! 1. [`base_images`] lists the images a build needs (every reachable `FROM` image,
//!    `COPY --from=<image>`, `RUN --mount=from=<image>`), normalised as [`Reference`]s with the
//!    platform they are wanted for. The caller resolves each (manifest digest + config).
//! 2. [`lower`] builds the [`Graph`] with those [`ResolvedImage`]s: sources, one exec per `RUN`,
//!    one file op per `COPY`/`ADD`/`WORKDIR`, merges for `COPY --link`, with BuildKit's env
//!    order, working directory, user, network mode and mount layout, and per vertex the facts
//!    its cache key needs ([`VertexFacts`]).
//!
//! Deliberately pure: no file is read (the caller hashes the context paths named in
//! [`Lowered::context_paths`]), no image is fetched, no clock is read (history entries carry no
//! `created` time). Remote sources (`ADD <url>`, git) and `COPY --parents` are refused with a
//! located error rather than lowered to wrong keys.
//!
//! ```
//! use inlay_core::cachekey::KeyProfile;
//! use inlay_core::image::ImageConfig;
//! use inlay_frontend_dockerfile::lower::{self, LowerOptions, ResolvedImage};
//! use inlay_frontend_dockerfile::{instructions, parser};
//!
//! let df = parser::parse(b"FROM busybox\nWORKDIR /app\nRUN echo hi\n", "Dockerfile")?;
//! let parsed = instructions::parse(&df)?;
//! let options = LowerOptions::new(KeyProfile::BuildkitCurrent);
//! let bases = lower::base_images(&df, &parsed, &options)?;
//! assert_eq!(bases[0].reference.to_string(), "docker.io/library/busybox:latest");
//! let config: ImageConfig = serde_json::from_str(
//!     r#"{"os":"linux","architecture":"amd64","rootfs":{"type":"layers","diff_ids":["sha256:3074da2ce01eeb63fd7d7a7f19841992f1c92fa0f7d8bcb3edd5fbed402545bb"]}}"#,
//! )?;
//! let resolved = [ResolvedImage::new(bases[0].reference.clone(), None, config)];
//! let lowered = lower::lower(&df, &parsed, &options, &resolved)?;
//! assert_eq!(lowered.steps.len(), 3);
//! assert_eq!(lowered.steps[2].description, "[3/3] RUN echo hi");
//! assert_eq!(lowered.image.config.unwrap().working_dir.as_deref(), Some("/app"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod copy;
mod metadata;
mod paths;
mod run;
mod state;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use inlay_core::cachekey::{ImageKeyFacts, KeyProfile, VertexFacts};
use inlay_core::image::ImageConfig;
use inlay_core::op::{Graph, HostIp, Input, NetMode, Op, SourceOp, Vertex, VertexId};
use inlay_core::{Digest, Platform, Reference};

use crate::error::{DockerfileError, ErrorKind};
use crate::instructions::{Instruction, Instructions};
use crate::parser::{Dockerfile, Position};
use crate::stages::{self, Base, BuildOptions, StageGraph};
use state::StageState;

/// What a lowering is for: the build's options and the BuildKit version whose LLB to emit.
#[derive(Debug, Clone)]
pub struct LowerOptions {
    /// Build args, target stage and platforms.
    pub build: BuildOptions,
    /// Which BuildKit's frontend to imitate (docker 20.10's v0.8 or the current one).
    pub profile: KeyProfile,
    /// The build's forced network mode, put on every exec (`--network`, `force-network-mode`).
    pub network: NetMode,
    /// Prefix of cache-mount ids (BuildKit's `cacheIDNamespace`; empty by default).
    pub cache_id_namespace: String,
    /// `--add-host` entries, put on every exec in the order given (BuildKit's `add-hosts`
    /// frontend option; only the names reach the keys, spec section 5.5).
    pub extra_hosts: Vec<HostIp>,
}

impl LowerOptions {
    /// Defaults for `profile`: no build args, the last stage, linux/amd64, default network.
    pub fn new(profile: KeyProfile) -> LowerOptions {
        LowerOptions {
            build: BuildOptions {
                build_platform: stages::Platform::linux_amd64(),
                ..BuildOptions::default()
            },
            profile,
            network: NetMode::Unset,
            cache_id_namespace: String::new(),
            extra_hosts: Vec::new(),
        }
    }

    /// Whether the LLB is written by a current client library (heredocs, `--link`, v0.24 path
    /// rules, `removeMountStubsRecursive`).
    fn current(&self) -> bool {
        self.profile != KeyProfile::BuildkitV08
    }

    fn target_platform(&self) -> Platform {
        let p = self
            .build
            .target_platform
            .as_ref()
            .unwrap_or(&self.build.build_platform);
        core_platform(p)
    }
}

/// An image the build needs, for the caller to resolve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseImage {
    /// The normalised reference (`docker.io/library/busybox:latest`).
    pub reference: Reference,
    /// The platform it is wanted for (the stage's `--platform`, else the target platform).
    pub platform: Platform,
}

/// A base image as the caller resolved it.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedImage {
    /// The reference, as [`base_images`] gave it.
    pub reference: Reference,
    /// The resolved top-level descriptor's digest (index or manifest). `None` reproduces docker
    /// 20.10 with the image in its local store: no digest is pinned and only the chainID key
    /// exists (spec section 5.7).
    pub manifest: Option<Digest>,
    /// The platform's image config.
    pub config: ImageConfig,
}

impl ResolvedImage {
    /// A resolved image.
    pub fn new(reference: Reference, manifest: Option<Digest>, config: ImageConfig) -> Self {
        ResolvedImage {
            reference,
            manifest,
            config,
        }
    }
}

/// One instruction that produced an op, as BuildKit's progress names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The stage's index in the Dockerfile.
    pub stage: usize,
    /// `[stage-name i/n] INSTRUCTION`, as BuildKit's plain progress prints it.
    pub description: String,
    /// The state after the step (its op's output).
    pub output: Input,
    /// Where the instruction is.
    pub position: Position,
}

/// Where the files behind a content key come from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ContentOrigin {
    /// The local build context (hash it with the context walker).
    Context,
    /// The result of a stage (`COPY --from=<stage>`): known only once that stage is built.
    Stage(usize),
    /// An image's filesystem (`COPY --from=<image>`): known only once its layers are pulled.
    Image(Reference),
    /// A heredoc file made in-process: a single file at `path` with `mode`.
    Inline {
        /// Absolute path of the file inside its filesystem.
        path: String,
        /// File mode bits.
        mode: u32,
        /// The file's bytes.
        data: Vec<u8>,
    },
    /// A directory made in-process on an empty filesystem: the `[internal] setting cache mount
    /// permissions` mkdir of a `RUN --mount` with `uid`, `gid` or `mode` (BuildKit v0.8
    /// `convert_runmount.go`, `setCacheUIDGIDFileOp`).
    Directory {
        /// Absolute path of the directory inside its filesystem.
        path: String,
        /// Permission bits as created (the requested mode under the daemon's 022 umask).
        mode: u32,
        /// Owner user id.
        uid: u32,
        /// Owner group id.
        gid: u32,
    },
}

/// A consumer input whose content key needs files from `origin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentUse {
    /// The consuming vertex (a `COPY` file op or an exec with a read-only mount).
    pub vertex: VertexId,
    /// Its input index in the graph.
    pub input: usize,
    /// Where the files are.
    pub origin: ContentOrigin,
}

/// A lowered build.
#[derive(Debug, Clone)]
pub struct Lowered {
    /// The op graph; vertices carry their platform and progress description.
    pub graph: Graph,
    /// The target stage's final state (for `FROM scratch` with nothing else, a scratch source).
    pub target: Input,
    /// The target's image config: `config` (`Env`, `Cmd`, `Entrypoint`, `WorkingDir`, `User`,
    /// `Labels`, `ExposedPorts`, `Volumes`, `StopSignal`, `Healthcheck`, `OnBuild`, `Shell`), the base image's
    /// history followed by one entry per step (no `created` times), `rootfs` of the base only.
    pub image: ImageConfig,
    /// Every op-producing step of the stages built, in graph order.
    pub steps: Vec<Step>,
    /// Key facts of image sources.
    pub facts: HashMap<VertexId, VertexFacts>,
    /// The local context source, if any step reads the context.
    pub context: Option<VertexId>,
    /// The context paths the build reads (BuildKit's `FollowPaths`, relative, sorted);
    /// `None` means the whole context.
    pub context_paths: Option<Vec<String>>,
    /// The inputs that take content keys and where their files come from.
    pub content_uses: Vec<ContentUse>,
}

/// Why lowering failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LowerError {
    /// A problem at a place in the Dockerfile (`Dockerfile:3:1: ...`).
    #[error(transparent)]
    Dockerfile(#[from] DockerfileError),
    /// The caller did not resolve an image [`base_images`] listed.
    #[error("base image {reference} was not resolved")]
    Unresolved {
        /// The reference.
        reference: String,
    },
}

/// An inherited ONBUILD trigger as the instruction it carries, placed at the stage's FROM (where
/// BuildKit reports its errors). The trigger is parsed alone, with the default escape; it must
/// be one instruction other than FROM (v0.8 `dispatchOnBuildTriggers`).
fn onbuild_instruction(
    dockerfile: &Dockerfile,
    trigger: &str,
    from: crate::parser::SourceRange,
) -> Result<crate::instructions::Located, LowerError> {
    let invalid = |message: String| -> LowerError {
        dockerfile
            .error_at(from.start, ErrorKind::invalid(message))
            .into()
    };
    // A FROM line first, so the trigger parses as a stage's only instruction.
    let text = format!("FROM scratch\n{trigger}\n");
    let parsed = crate::instructions::parse_bytes(text.as_bytes(), &dockerfile.file_name)
        .map_err(|e| invalid(format!("invalid ONBUILD trigger {trigger:?}: {e}")))?;
    match parsed.stages.as_slice() {
        [stage] if stage.instructions.len() == 1 => {
            let mut located = stage.instructions[0].clone();
            located.range = from;
            Ok(located)
        }
        _ => Err(invalid(format!(
            "onbuild trigger should be a single expression: {trigger:?}"
        ))),
    }
}

/// The images a build needs, each once, in the order the stages use them.
pub fn base_images(
    dockerfile: &Dockerfile,
    instructions: &Instructions,
    options: &LowerOptions,
) -> Result<Vec<BaseImage>, LowerError> {
    let graph = stages::resolve(dockerfile, instructions, &options.build)?;
    let mut out: Vec<BaseImage> = Vec::new();
    let mut push = |name: &str, platform: Platform, at: Position| -> Result<(), LowerError> {
        let reference = parse_reference(dockerfile, name, at)?;
        let image = BaseImage {
            reference,
            platform,
        };
        if !out.contains(&image) {
            out.push(image);
        }
        Ok(())
    };
    for &i in &graph.build_order {
        let stage = &graph.stages[i];
        let at = instructions.stages[i].range.start;
        if let Base::Image(name) = &stage.base {
            push(name, stage_platform(options, stage.platform.as_deref()), at)?;
        }
        for name in stage.external_sources.iter().filter(|n| *n != "scratch") {
            push(name, options.target_platform(), at)?;
        }
    }
    Ok(out)
}

/// Lowers the stages the target needs, with the caller's resolved images.
pub fn lower(
    dockerfile: &Dockerfile,
    instructions: &Instructions,
    options: &LowerOptions,
    images: &[ResolvedImage],
) -> Result<Lowered, LowerError> {
    let stage_graph = stages::resolve(dockerfile, instructions, &options.build)?;
    let mut lowering = Lowering {
        dockerfile,
        options,
        images,
        stage_graph: &stage_graph,
        graph: Graph::default(),
        facts: HashMap::new(),
        sources: HashMap::new(),
        scratch: None,
        context: None,
        context_paths: BTreeSet::new(),
        steps: Vec::new(),
        content_uses: Vec::new(),
        names_shown: names_shown(instructions),
        stage_positions: instructions.stages.iter().map(|s| s.range.start).collect(),
        step_counts: instructions
            .stages
            .iter()
            .map(|s| state::op_instruction_count(&s.instructions))
            .collect(),
    };
    let mut done: BTreeMap<usize, StageState> = BTreeMap::new();
    let needed: BTreeSet<usize> = stage_graph.build_order.iter().copied().collect();
    // BuildKit dispatches stages in Dockerfile order; a stage may only use earlier ones.
    for index in needed {
        let stage = &instructions.stages[index];
        for (dep, _) in &stage_graph.stages[index].dependencies {
            if *dep >= index {
                return Err(dockerfile
                    .error_at(
                        stage.range.start,
                        ErrorKind::invalid(format!(
                            "stage {} needs stage {}, which must be defined before it",
                            stage_label(instructions, index),
                            stage_label(instructions, *dep)
                        )),
                    )
                    .into());
            }
        }
        let (mut st, triggers) = lowering.start_stage(index, &done)?;
        for trigger in &triggers {
            let located = onbuild_instruction(dockerfile, trigger, stage.range)?;
            lowering.dispatch(&mut st, &located, &done)?;
        }
        for located in &stage.instructions {
            lowering.dispatch(&mut st, located, &done)?;
        }
        done.insert(index, st);
    }
    let target_state = done
        .remove(&stage_graph.target)
        .expect("the target is in the build order");
    let mut image = target_state.image;
    let platform = options.target_platform();
    image.os.clone_from(&platform.os);
    image.architecture.clone_from(&platform.architecture);
    if !platform.variant.is_empty() {
        image.variant = Some(platform.variant.clone());
    }
    let context_paths = normalize_context_paths(&lowering.context_paths);
    if let Some(ctx) = lowering.context {
        if let Op::Source(source) = &mut lowering.graph.vertex_mut(ctx).op {
            if let Some(paths) = &context_paths {
                let list = serde_json::to_string(paths).expect("a list of strings serialises");
                source.attrs.insert("local.followpaths".to_owned(), list);
            }
            source
                .attrs
                .insert("local.sharedkeyhint".to_owned(), "context".to_owned());
        }
    }
    Ok(Lowered {
        graph: lowering.graph,
        target: target_state.root,
        image,
        steps: lowering.steps,
        facts: lowering.facts,
        context: lowering.context,
        context_paths,
        content_uses: lowering.content_uses,
    })
}

/// BuildKit's `normalizeContextPaths`: relative, sorted; `/` means everything (`None`).
fn normalize_context_paths(paths: &BTreeSet<String>) -> Option<Vec<String>> {
    if paths.iter().any(|p| p == "/") {
        return None;
    }
    let mut out: Vec<String> = paths.iter().map(|p| paths::join(".", p)).collect();
    out.sort();
    Some(out)
}

/// Whether progress names carry the stage name: BuildKit drops it when the build has a single
/// dispatch state, and counts `COPY --from=<image>` and every `RUN --mount` (whose empty
/// `from` names the scratch image) as extra states.
fn names_shown(instructions: &Instructions) -> bool {
    if instructions.stages.len() > 1 {
        return true;
    }
    instructions.stages.iter().any(|s| {
        s.instructions.iter().any(|l| match &l.instruction {
            Instruction::Copy(c) => !c.from.is_empty(),
            Instruction::Run(r) => !r.mount_specs.is_empty(),
            _ => false,
        })
    })
}

fn stage_label(instructions: &Instructions, index: usize) -> String {
    instructions.stages[index]
        .name
        .clone()
        .unwrap_or_else(|| format!("stage-{index}"))
}

pub(crate) fn core_platform(p: &stages::Platform) -> Platform {
    Platform::new(&p.os, &p.architecture, &p.variant)
}

fn stage_platform(options: &LowerOptions, platform: Option<&str>) -> Platform {
    platform
        .and_then(stages::Platform::parse)
        .map_or_else(|| options.target_platform(), |p| core_platform(&p))
}

fn parse_reference(
    dockerfile: &Dockerfile,
    name: &str,
    at: Position,
) -> Result<Reference, LowerError> {
    Reference::parse(name).map_err(|e| {
        dockerfile
            .error_at(at, ErrorKind::invalid(format!("invalid image name: {e}")))
            .into()
    })
}

/// The state of one lowering.
struct Lowering<'a> {
    dockerfile: &'a Dockerfile,
    options: &'a LowerOptions,
    images: &'a [ResolvedImage],
    stage_graph: &'a StageGraph,
    graph: Graph,
    facts: HashMap<VertexId, VertexFacts>,
    /// Image sources by (identifier, platform), so one image used twice is one op.
    sources: HashMap<(String, Platform), Input>,
    scratch: Option<VertexId>,
    context: Option<VertexId>,
    context_paths: BTreeSet<String>,
    steps: Vec<Step>,
    content_uses: Vec<ContentUse>,
    names_shown: bool,
    stage_positions: Vec<Position>,
    step_counts: Vec<usize>,
}

impl Lowering<'_> {
    fn error(&self, at: Position, message: impl Into<String>) -> LowerError {
        self.dockerfile
            .error_at(at, ErrorKind::invalid(message))
            .into()
    }

    fn add(&mut self, op: Op, inputs: Vec<Input>, platform: &Platform, description: &str) -> Input {
        let id = self.graph.add_vertex(Vertex {
            op,
            inputs,
            platform: Some(platform.clone()),
            ignore_cache: false,
            description: description.to_owned(),
        });
        Input::new(id, 0)
    }

    /// The empty filesystem (one vertex for the whole build; keys never see it).
    fn scratch(&mut self) -> Input {
        let id = *self
            .scratch
            .get_or_insert_with(|| self.graph.add(Op::Source(SourceOp::scratch()), vec![]));
        Input::new(id, 0)
    }

    fn is_scratch(&self, input: Input) -> bool {
        Some(input.vertex) == self.scratch
    }

    /// The local build context source.
    fn context(&mut self) -> Input {
        let id = *self.context.get_or_insert_with(|| {
            self.graph.add_vertex(Vertex {
                op: Op::Source(SourceOp::local("context")),
                inputs: vec![],
                platform: None,
                ignore_cache: false,
                description: "[internal] load build context".to_owned(),
            })
        });
        Input::new(id, 0)
    }

    fn resolved(&self, reference: &Reference) -> Result<&ResolvedImage, LowerError> {
        self.images
            .iter()
            .find(|i| &i.reference == reference)
            .ok_or_else(|| LowerError::Unresolved {
                reference: reference.to_string(),
            })
    }

    /// The source op of an image (shared when used twice), or scratch for an image without
    /// layers, as BuildKit does.
    fn image_source(
        &mut self,
        resolved: &ResolvedImage,
        platform: &Platform,
        description: &str,
    ) -> Input {
        let layerless = resolved.config.rootfs.diff_ids.is_empty()
            && resolved.config.history.iter().all(|h| h.empty_layer);
        if layerless {
            return self.scratch();
        }
        let mut identifier = resolved.reference.to_string();
        if resolved.reference.digest().is_none() {
            if let Some(d) = &resolved.manifest {
                identifier = format!("{identifier}@{d}");
            }
        }
        let key = (identifier.clone(), platform.clone());
        if let Some(input) = self.sources.get(&key) {
            return *input;
        }
        let input = self.add(
            Op::Source(SourceOp::image(&identifier)),
            vec![],
            platform,
            description,
        );
        self.facts.insert(
            input.vertex,
            VertexFacts {
                image: Some(ImageKeyFacts {
                    manifest: resolved.manifest.clone(),
                    diff_ids: resolved.config.rootfs.diff_ids.clone(),
                }),
                ..VertexFacts::default()
            },
        );
        self.sources.insert(key, input);
        input
    }

    /// The state `COPY --from=` / `RUN --mount=from=` names: a stage's result or an image.
    fn named_state(
        &mut self,
        from: &str,
        done: &BTreeMap<usize, StageState>,
        at: Position,
    ) -> Result<(Input, ContentOrigin), LowerError> {
        let names: Vec<Option<&str>> = self
            .stage_graph
            .stages
            .iter()
            .map(|s| s.name.as_deref())
            .collect();
        let lower = from.to_lowercase();
        let by_name = names.iter().position(|n| *n == Some(lower.as_str()));
        let by_index = from
            .parse::<usize>()
            .ok()
            .filter(|i| *i < self.stage_graph.stages.len());
        if let Some(i) = by_name.or(by_index) {
            let st = done.get(&i).ok_or_else(|| {
                self.error(
                    at,
                    format!("cannot copy from stage {from:?}, it needs to be defined before the current stage"),
                )
            })?;
            return Ok((st.root, ContentOrigin::Stage(i)));
        }
        if from == "scratch" {
            return Ok((self.scratch(), ContentOrigin::Context));
        }
        let reference = parse_reference(self.dockerfile, from, at)?;
        let resolved = self.resolved(&reference)?.clone();
        let platform = self.options.target_platform();
        let input = self.image_source(&resolved, &platform, &format!("FROM {reference}"));
        Ok((input, ContentOrigin::Image(reference)))
    }

    /// Records a step: its description on the vertex and in the step list.
    fn step(&mut self, st: &mut StageState, text: &str, output: Input, at: Position) -> String {
        let description = st.prefix(text);
        self.graph
            .vertex_mut(output.vertex)
            .description
            .clone_from(&description);
        self.steps.push(Step {
            stage: st.index,
            description: description.clone(),
            output,
            position: at,
        });
        description
    }
}
