//! The stage graph: which stage starts from which, which stages a target needs and in which
//! order, and the ARG/ENV scope instructions are expanded in. Pure: build args and platforms are
//! passed in; base images are not resolved here.
//!
//! Rules mirrored from BuildKit's `dockerfile2llb/convert.go`:
//! * global ARGs (before the first FROM) are expanded in order over the automatic platform ARGs
//!   (`BUILDPLATFORM`, `BUILDOS`, `BUILDARCH`, `BUILDVARIANT`, `TARGETPLATFORM`, `TARGETOS`,
//!   `TARGETARCH`, `TARGETVARIANT`, `TARGETSTAGE`...), a `--build-arg` replacing a default;
//!   they are what FROM names and `--platform` expand with, and nothing else;
//! * `FROM <name>` refers to an earlier stage named exactly so (names are stored lower-cased),
//!   otherwise to an image (`scratch` is the empty image);
//! * `COPY --from=` takes a stage name (case-insensitive, any stage), a stage index, or an image,
//!   and may not use variables; `RUN --mount=from=` takes a stage name or an image;
//! * `--target` names a stage (case-insensitive); the default is the last stage; stages the
//!   target does not reach are dropped; a cycle is an error;
//! * inside a stage, `ARG NAME` takes a `--build-arg`, else its default expanded with the stage's
//!   environment, else the global ARG's value; ARG and ENV values share one environment where
//!   the later definition wins; proxy build args (`HTTP_PROXY`... in either case) reach RUN
//!   without being declared.

use std::collections::BTreeMap;

use crate::error::{DockerfileError, ErrorKind};
use crate::instructions::{Instruction, Instructions, Stage};
use crate::parser::{Dockerfile, Position};
use crate::shell::{Lexer, ShellError};
use crate::suggest;

/// A platform as `os/architecture[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Platform {
    /// `linux`, `windows`...
    pub os: String,
    /// `amd64`, `arm64`...
    pub architecture: String,
    /// `v7`... or empty.
    pub variant: String,
}

impl Platform {
    /// `linux/amd64`.
    pub fn linux_amd64() -> Self {
        Self {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: String::new(),
        }
    }

    /// Parses `os/arch[/variant]` (or a bare architecture, taken as Linux), normalising common
    /// aliases as containerd does (`x86_64` → `amd64`, `aarch64` → `arm64`, `arm` → `arm/v7`).
    pub fn parse(text: &str) -> Option<Self> {
        let parts: Vec<String> = text.split('/').map(str::to_lowercase).collect();
        if parts.iter().any(String::is_empty) || parts.len() > 3 {
            return None;
        }
        let known_os = [
            "linux", "windows", "darwin", "freebsd", "netbsd", "openbsd", "solaris", "illumos",
            "aix",
        ];
        let (os, arch, variant) = match parts.as_slice() {
            [one] if known_os.contains(&one.as_str()) => {
                (one.clone(), "amd64".to_owned(), String::new())
            }
            [arch] => ("linux".to_owned(), arch.clone(), String::new()),
            [os, arch] => (os.clone(), arch.clone(), String::new()),
            [os, arch, variant] => (os.clone(), arch.clone(), variant.clone()),
            _ => return None,
        };
        let (arch, variant) = match (arch.as_str(), variant.as_str()) {
            ("aarch64" | "arm64", "8" | "v8") => ("arm64".to_owned(), String::new()),
            ("x86_64" | "x86-64" | "amd64", v) => ("amd64".to_owned(), v.to_owned()),
            ("aarch64", v) => ("arm64".to_owned(), v.to_owned()),
            ("armhf", _) | ("arm", "") => ("arm".to_owned(), "v7".to_owned()),
            ("armel", _) => ("arm".to_owned(), "v6".to_owned()),
            ("arm", v) if !v.starts_with('v') => ("arm".to_owned(), format!("v{v}")),
            ("i386" | "i686" | "x86", v) => ("386".to_owned(), v.to_owned()),
            (a, v) => (a.to_owned(), v.to_owned()),
        };
        Some(Self {
            os,
            architecture: arch,
            variant,
        })
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

/// What a build asks for, besides the Dockerfile.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// `--build-arg NAME=value`.
    pub build_args: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// The platform the build runs on.
    pub build_platform: Platform,
    /// `--platform`; the build platform when absent.
    pub target_platform: Option<Platform>,
}

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Base {
    /// `FROM scratch`.
    Scratch,
    /// An image reference (after ARG expansion).
    Image(String),
    /// An earlier stage, by index.
    Stage(usize),
}

/// Why a stage needs another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DependencyKind {
    /// `FROM <stage>`.
    Base,
    /// `COPY --from=<stage>` in instruction `n` of the stage.
    CopyFrom(usize),
    /// `RUN --mount=from=<stage>` in instruction `n` of the stage.
    MountFrom(usize),
}

/// A stage with its names and references resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedStage {
    /// Its index in the Dockerfile.
    pub index: usize,
    /// Its name, lower-cased.
    pub name: Option<String>,
    /// What it starts from.
    pub base: Base,
    /// Its `--platform`, expanded, if given.
    pub platform: Option<String>,
    /// The stages it needs and why, in instruction order.
    pub dependencies: Vec<(usize, DependencyKind)>,
    /// Images it copies or mounts from (`COPY --from=alpine`).
    pub external_sources: Vec<String>,
}

/// The resolved stages of a Dockerfile for one build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageGraph {
    /// The global ARG environment (platform ARGs, then global ARGs), in definition order.
    pub global_args: Vec<(String, String)>,
    /// Every stage.
    pub stages: Vec<ResolvedStage>,
    /// The stage built.
    pub target: usize,
    /// The stages the target needs, dependencies before dependents, the target last.
    pub build_order: Vec<usize>,
}

fn set(env: &mut Vec<(String, String)>, key: &str, value: String) {
    match env.iter_mut().find(|(k, _)| k == key) {
        Some(entry) => entry.1 = value,
        None => env.push((key.to_owned(), value)),
    }
}

/// The automatic platform ARGs (BuildKit's `defaultArgs`), with build args replacing them.
pub fn default_args(options: &BuildOptions, target_name: &str) -> Vec<(String, String)> {
    let build = &options.build_platform;
    let target = options.target_platform.as_ref().unwrap_or(build);
    let target_name = if target_name.is_empty() {
        "default"
    } else {
        target_name
    };
    let defaults = [
        ("BUILDPLATFORM", build.to_string()),
        ("BUILDOS", build.os.clone()),
        ("BUILDOSVERSION", String::new()),
        ("BUILDARCH", build.architecture.clone()),
        ("BUILDVARIANT", build.variant.clone()),
        ("TARGETPLATFORM", target.to_string()),
        ("TARGETOS", target.os.clone()),
        ("TARGETOSVERSION", String::new()),
        ("TARGETARCH", target.architecture.clone()),
        ("TARGETVARIANT", target.variant.clone()),
        ("TARGETSTAGE", target_name.to_owned()),
    ];
    let mut env = Vec::new();
    for (key, value) in defaults {
        let value = options.build_args.get(key).cloned().unwrap_or(value);
        set(&mut env, key, value);
    }
    env
}

/// Build args BuildKit passes to RUN as proxy settings without an ARG declaring them.
pub fn is_proxy_arg(name: &str) -> bool {
    [
        "http_proxy",
        "https_proxy",
        "ftp_proxy",
        "no_proxy",
        "all_proxy",
    ]
    .iter()
    .any(|p| name.eq_ignore_ascii_case(p))
}

fn expansion(e: ShellError) -> ErrorKind {
    ErrorKind::from(e)
}

/// Resolves the stages of `instructions` for a build with `options`. `dockerfile` locates errors.
#[allow(clippy::too_many_lines)] // the steps of BuildKit's toDispatchState, in order
pub fn resolve(
    dockerfile: &Dockerfile,
    instructions: &Instructions,
    options: &BuildOptions,
) -> Result<StageGraph, DockerfileError> {
    let lexer = Lexer::new(dockerfile.escape);
    let stages = &instructions.stages;
    let first_line = Position { line: 1, column: 1 };
    let Some(last) = stages.last() else {
        return Err(dockerfile.error_at(
            first_line,
            ErrorKind::invalid("dockerfile contains no stages to build"),
        ));
    };
    let target_name = options
        .target
        .clone()
        .unwrap_or_else(|| last.name.clone().unwrap_or_default());
    let mut global_args = default_args(options, &target_name);
    for located in &instructions.meta_args {
        let Instruction::Arg(defs) = &located.instruction else {
            continue;
        };
        for def in defs {
            let value = match options.build_args.get(&def.key) {
                Some(v) => Some(v.clone()),
                None => match &def.value {
                    Some(default) => Some(
                        lexer
                            .process_word(default, &global_args)
                            .map_err(|e| dockerfile.error_at(located.range.start, expansion(e)))?,
                    ),
                    None => None,
                },
            };
            if let Some(value) = value {
                set(&mut global_args, &def.key, value);
            }
        }
    }

    let names: Vec<Option<String>> = stages.iter().map(|s| s.name.clone()).collect();
    let find_by_name = |name: &str| {
        let lower = name.to_lowercase();
        names
            .iter()
            .position(|n| n.as_deref() == Some(lower.as_str()))
    };

    let mut resolved = Vec::with_capacity(stages.len());
    for (index, stage) in stages.iter().enumerate() {
        let at = |kind| dockerfile.error_at(stage.range.start, kind);
        let base_name = lexer
            .process_word(&stage.base_name, &global_args)
            .map_err(|e| at(expansion(e)))?;
        if base_name.is_empty() {
            return Err(at(ErrorKind::invalid(format!(
                "base name ({}) should not be blank",
                stage.base_name
            ))));
        }
        let platform = match &stage.platform {
            Some(p) => {
                let value = lexer
                    .process_word(p, &global_args)
                    .map_err(|e| at(expansion(e)))?;
                if value.is_empty() {
                    return Err(at(ErrorKind::invalid(format!(
                        "empty platform value from expression {p}"
                    ))));
                }
                if Platform::parse(&value).is_none() {
                    return Err(at(ErrorKind::invalid(format!(
                        "failed to parse platform {p}"
                    ))));
                }
                Some(value)
            }
            None => None,
        };
        // Only earlier stages, and only by their exact (lower-case) name.
        let base = match names[..index]
            .iter()
            .rposition(|n| n.as_deref() == Some(base_name.as_str()))
        {
            Some(i) => Base::Stage(i),
            None if base_name == "scratch" => Base::Scratch,
            None => Base::Image(base_name),
        };
        let mut dependencies = Vec::new();
        if let Base::Stage(i) = base {
            dependencies.push((i, DependencyKind::Base));
        }
        let mut external_sources = Vec::new();
        collect_references(
            dockerfile,
            stage,
            lexer,
            &find_by_name,
            stages.len(),
            &mut dependencies,
            &mut external_sources,
        )?;
        resolved.push(ResolvedStage {
            index,
            name: stage.name.clone(),
            base,
            platform,
            dependencies,
            external_sources,
        });
    }

    let target = match &options.target {
        None => stages.len() - 1,
        Some(t) => find_by_name(t).ok_or_else(|| {
            let known: Vec<&str> = names.iter().flatten().map(String::as_str).collect();
            dockerfile.error_at(
                first_line,
                ErrorKind::invalid(format!(
                    "target stage {} could not be found{}",
                    crate::go_quote::quote(t),
                    crate::error::suggestion_suffix(suggest::closest(t, &known, true).as_deref())
                )),
            )
        })?,
    };

    check_cycles(dockerfile, stages, &resolved)?;
    let mut build_order = Vec::new();
    let mut visited = vec![false; resolved.len()];
    order_from(target, &resolved, &mut visited, &mut build_order);
    Ok(StageGraph {
        global_args,
        stages: resolved,
        target,
        build_order,
    })
}

#[allow(clippy::too_many_arguments)]
fn collect_references(
    dockerfile: &Dockerfile,
    stage: &Stage,
    lexer: Lexer,
    find_by_name: &dyn Fn(&str) -> Option<usize>,
    stage_count: usize,
    dependencies: &mut Vec<(usize, DependencyKind)>,
    external: &mut Vec<String>,
) -> Result<(), DockerfileError> {
    for (n, located) in stage.instructions.iter().enumerate() {
        let at = |kind| dockerfile.error_at(located.range.start, kind);
        match &located.instruction {
            Instruction::Copy(copy) if !copy.from.is_empty() => {
                let from = &copy.from;
                let unchanged = lexer
                    .process_word(from, &crate::shell::EmptyEnv)
                    .map_err(|e| at(expansion(e)))?;
                if &unchanged != from {
                    return Err(at(ErrorKind::invalid(
                        "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround",
                    )));
                }
                if let Ok(i) = from.parse::<i64>() {
                    let i = usize::try_from(i)
                        .ok()
                        .filter(|&i| i < stage_count)
                        .ok_or_else(|| {
                            at(ErrorKind::invalid(format!("invalid stage index {i}")))
                        })?;
                    dependencies.push((i, DependencyKind::CopyFrom(n)));
                } else if let Some(i) = find_by_name(from) {
                    dependencies.push((i, DependencyKind::CopyFrom(n)));
                } else {
                    external.push(from.clone());
                }
            }
            Instruction::Run(run) => {
                for spec in &run.mount_specs {
                    let from = spec.split(',').find_map(|field| {
                        let (k, v) = field.split_once('=')?;
                        k.eq_ignore_ascii_case("from")
                            .then(|| v.trim_matches('"').to_owned())
                    });
                    let Some(from) = from.filter(|f| !f.is_empty()) else {
                        continue;
                    };
                    match find_by_name(&from) {
                        Some(i) => dependencies.push((i, DependencyKind::MountFrom(n))),
                        None => external.push(from),
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_cycles(
    dockerfile: &Dockerfile,
    stages: &[Stage],
    resolved: &[ResolvedStage],
) -> Result<(), DockerfileError> {
    // 0 = unvisited, 1 = on the current path, 2 = done.
    fn visit(i: usize, resolved: &[ResolvedStage], state: &mut [u8]) -> Option<usize> {
        if state[i] == 1 {
            return Some(i);
        }
        if state[i] == 2 {
            return None;
        }
        state[i] = 1;
        for &(dep, _) in &resolved[i].dependencies {
            if let Some(cycle) = visit(dep, resolved, state) {
                return Some(cycle);
            }
        }
        state[i] = 2;
        None
    }
    let mut state = vec![0u8; resolved.len()];
    for i in 0..resolved.len() {
        if let Some(at) = visit(i, resolved, &mut state) {
            let name = resolved[at]
                .name
                .clone()
                .unwrap_or_else(|| format!("stage-{at}"));
            return Err(dockerfile.error_at(
                stages[at].range.start,
                ErrorKind::invalid(format!("circular dependency detected on stage: {name}")),
            ));
        }
    }
    Ok(())
}

fn order_from(i: usize, resolved: &[ResolvedStage], visited: &mut [bool], out: &mut Vec<usize>) {
    if visited[i] {
        return;
    }
    visited[i] = true;
    let mut deps: Vec<usize> = resolved[i].dependencies.iter().map(|&(d, _)| d).collect();
    deps.sort_unstable();
    deps.dedup();
    for dep in deps {
        order_from(dep, resolved, visited, out);
    }
    out.push(i);
}

/// The environment instructions of one stage are expanded in, walked instruction by instruction.
#[derive(Debug, Clone)]
pub struct StageScope<'a> {
    env: Vec<(String, String)>,
    graph: &'a StageGraph,
    options: &'a BuildOptions,
    lexer: Lexer,
}

impl<'a> StageScope<'a> {
    /// A scope starting from the base's environment (an image config's `Env`, or the final
    /// environment of the base stage's scope).
    pub fn new(
        base_env: Vec<(String, String)>,
        graph: &'a StageGraph,
        options: &'a BuildOptions,
        escape: char,
    ) -> Self {
        Self {
            env: base_env,
            graph,
            options,
            lexer: Lexer::new(escape),
        }
    }

    /// The current environment (ENV and ARG values, later definitions winning).
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The environment a RUN sees: the scope's, plus proxy build args not set otherwise.
    pub fn run_env(&self) -> Vec<(String, String)> {
        let mut env = self.env.clone();
        for (k, v) in &self.options.build_args {
            if is_proxy_arg(k) && !env.iter().any(|(name, _)| name == k) {
                env.push((k.clone(), v.clone()));
            }
        }
        env
    }

    /// Expands one word in the current environment.
    pub fn expand(&self, word: &str) -> Result<String, ShellError> {
        self.lexer.process_word(word, &self.env)
    }

    /// Expands and splits a word as BuildKit does for EXPOSE ports (`ProcessWords`).
    pub fn expand_words(&self, word: &str) -> Result<Vec<String>, ShellError> {
        self.lexer.process_words(word, &self.env)
    }

    /// Expands `instruction` by BuildKit's rules and applies what it changes to the scope
    /// (ENV pairs; ARG values from build args, defaults or global ARGs).
    pub fn apply(&mut self, instruction: &mut Instruction) -> Result<(), ErrorKind> {
        if let Instruction::Arg(defs) = instruction {
            for def in defs.iter_mut() {
                let value = if let Some(v) = self.options.build_args.get(&def.key) {
                    Some(v.clone())
                } else if let Some(default) = &def.value {
                    Some(self.expand(default).map_err(ErrorKind::from)?)
                } else {
                    self.graph
                        .global_args
                        .iter()
                        .find(|(k, _)| k == &def.key)
                        .map(|(_, v)| v.clone())
                };
                if let Some(value) = &value {
                    set(&mut self.env, &def.key, value.clone());
                }
                def.value = value;
            }
            return Ok(());
        }
        let env = self.env.clone();
        let lexer = self.lexer;
        instruction.expand(&mut |word| lexer.process_word(word, &env).map_err(ErrorKind::from))?;
        let raw = Lexer {
            skip_process_quotes: true,
            ..Lexer::new('\\')
        };
        instruction
            .expand_heredocs(&mut |word| raw.process_word(word, &env).map_err(ErrorKind::from))?;
        if let Instruction::Env(pairs) = instruction {
            for kv in pairs.iter() {
                set(&mut self.env, &kv.key, kv.value.clone());
            }
        }
        Ok(())
    }
}
