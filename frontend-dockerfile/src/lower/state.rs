//! A stage being lowered: BuildKit's `dispatchState` (the LLB state's env, dir and user, the
//! image config being written, the ARGs seen) and how a stage starts from its base.

use std::collections::BTreeMap;

use inlay_core::Platform;
use inlay_core::image::{ContainerConfig, History, ImageConfig, RootFs};
use inlay_core::op::Input;

use super::{Base, LowerError, Lowering, paths};
use crate::instructions::Instruction;

/// The history comment BuildKit's Dockerfile frontend writes.
pub(crate) const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

/// The PATH every Linux stage gets when its image sets none.
pub(crate) const DEFAULT_PATH: &str =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One stage's dispatch state.
#[derive(Debug, Clone)]
pub(crate) struct StageState {
    /// The stage's index in the Dockerfile.
    pub index: usize,
    /// The current filesystem.
    pub root: Input,
    /// The LLB state's environment: setting a key again moves it to the end (LLB `EnvList`),
    /// unlike the image config's `Env`, where it is replaced in place.
    pub env: Vec<(String, String)>,
    /// The LLB state's directory (empty: unset, which execs see as `/`).
    pub dir: String,
    /// The LLB state's user (empty: unset).
    pub user: String,
    /// The image config being written.
    pub image: ImageConfig,
    /// ARGs declared so far (inherited from a base stage too), with their values.
    pub build_args: Vec<(String, Option<String>)>,
    /// The stage's platform.
    pub platform: Platform,
    /// `CMD` was set in this stage (ENTRYPOINT then keeps it).
    pub cmd_set: bool,
    name: String,
    cmd_index: usize,
    cmd_total: usize,
}

impl StageState {
    /// LLB `AddEnv`: set `key`, moving it to the end.
    pub fn add_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// The exec working directory.
    pub fn cwd(&self) -> String {
        if self.dir.is_empty() {
            "/".to_owned()
        } else {
            self.dir.clone()
        }
    }

    /// The container config, created on first use.
    pub fn config(&mut self) -> &mut ContainerConfig {
        self.image
            .config
            .get_or_insert_with(ContainerConfig::default)
    }

    /// BuildKit's `prefixCommand`: `[name i/n] ` before the instruction, counting the steps.
    pub fn prefix(&mut self, text: &str) -> String {
        if self.cmd_total == 0 {
            return text.to_owned();
        }
        self.cmd_index += 1;
        let width = self.cmd_total.to_string().len();
        let name = if self.name.is_empty() {
            String::new()
        } else {
            format!("{} ", self.name)
        };
        format!(
            "[{name}{:>width$}/{}] {text}",
            self.cmd_index, self.cmd_total
        )
    }

    /// BuildKit's `commitToHistory`; steps with an op get ` # buildkit`.
    pub fn history(&mut self, created_by: String, layer: bool, with_op: bool) {
        let created_by = if with_op {
            format!("{created_by} # buildkit")
        } else {
            created_by
        };
        self.image.history.push(History {
            created: None,
            created_by,
            author: String::new(),
            comment: HISTORY_COMMENT.to_owned(),
            empty_layer: !layer,
        });
    }
}

/// Sets `key` in a `KEY=value` list in place, or appends it (the image config's rule).
pub(crate) fn set_image_env(env: &mut Vec<String>, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    match env
        .iter_mut()
        .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
    {
        Some(e) => *e = entry,
        None => env.push(entry),
    }
}

/// BuildKit's `emptyImage`: what `FROM scratch` starts with.
fn empty_image(platform: &Platform) -> ImageConfig {
    ImageConfig {
        architecture: platform.architecture.clone(),
        os: platform.os.clone(),
        variant: (!platform.variant.is_empty()).then(|| platform.variant.clone()),
        rootfs: RootFs::default(),
        config: Some(ContainerConfig {
            working_dir: Some("/".to_owned()),
            env: Some(vec![format!("PATH={DEFAULT_PATH}")]),
            ..ContainerConfig::default()
        }),
        ..ImageConfig::default()
    }
}

impl Lowering<'_> {
    /// The state a stage starts in: its base's filesystem and image config, the image's env in
    /// the LLB state (PATH added when missing), its `WorkingDir` and `User` (spec section 8c).
    #[allow(clippy::too_many_lines)] // BuildKit's stage initialisation, step by step
    pub(crate) fn start_stage(
        &mut self,
        index: usize,
        done: &BTreeMap<usize, StageState>,
    ) -> Result<(StageState, Vec<String>), LowerError> {
        let mut triggers = Vec::new();
        let resolved_stage = &self.stage_graph.stages[index];
        let stage = &self.stage_graph.stages[index];
        let at = self.dockerfile_stage_position(index);
        let platform = super::stage_platform(self.options, resolved_stage.platform.as_deref());
        let total = self.step_total(index);
        let name = if self.names_shown {
            stage
                .name
                .clone()
                .unwrap_or_else(|| format!("stage-{index}"))
        } else {
            String::new()
        };
        let mut st = match &stage.base {
            Base::Stage(base) => {
                let parent = done.get(base).ok_or_else(|| {
                    self.error(
                        at,
                        format!("base stage {base} is not built before stage {index}"),
                    )
                })?;
                let mut st = parent.clone();
                st.index = index;
                if let Some(c) = st.image.config.as_mut() {
                    c.extra.remove("OnBuild");
                }
                st.cmd_set = false;
                st
            }
            Base::Scratch => StageState {
                index,
                root: self.scratch(),
                env: Vec::new(),
                dir: String::new(),
                user: String::new(),
                image: empty_image(&platform),
                build_args: Vec::new(),
                platform: platform.clone(),
                cmd_set: false,
                name: String::new(),
                cmd_index: 0,
                cmd_total: 0,
            },
            Base::Image(name_text) => {
                let reference = super::parse_reference(self.dockerfile, name_text, at)?;
                let resolved = self.resolved(&reference)?.clone();
                let mut shown = reference.to_string();
                if reference.digest().is_none() {
                    if let Some(d) = &resolved.manifest {
                        shown = format!("{shown}@{d}");
                    }
                }
                let root = self.image_source(&resolved, &platform, "");
                let mut image = resolved.config.clone();
                // BuildKit runs the base's ONBUILD triggers right after the FROM and clears
                // them from the child's config (v0.8 `convert.go`, `dispatchOnBuildTriggers`).
                if let Some(c) = image.config.as_mut() {
                    if let Some(value) = c.extra.remove("OnBuild") {
                        triggers = onbuild_triggers(&value).ok_or_else(|| {
                            self.error(
                                at,
                                format!("base image {reference} has malformed OnBuild triggers"),
                            )
                        })?;
                    }
                }
                let mut st = StageState {
                    index,
                    root,
                    env: Vec::new(),
                    dir: String::new(),
                    user: String::new(),
                    image,
                    build_args: Vec::new(),
                    platform: platform.clone(),
                    cmd_set: false,
                    name: name.clone(),
                    cmd_index: 0,
                    cmd_total: total,
                };
                if !self.is_scratch(root) {
                    self.step(&mut st, &format!("FROM {shown}"), root, at);
                }
                st
            }
        };
        st.name = name;
        st.cmd_total = total;
        if !matches!(stage.base, Base::Image(_)) {
            st.cmd_index = 0;
        }
        st.platform = platform;
        // Make sure PATH is set, then load the image's env into the LLB state.
        let config = st.config();
        let env = config.env.get_or_insert_with(Vec::new);
        if !env
            .iter()
            .any(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == "PATH")
        {
            env.push(format!("PATH={DEFAULT_PATH}"));
        }
        let env = env.clone();
        for entry in env {
            let (k, v) = entry.split_once('=').unwrap_or((entry.as_str(), ""));
            st.add_env(k, v);
        }
        let working_dir = st.config().working_dir.clone().unwrap_or_default();
        if !working_dir.is_empty() {
            let wd = if self.options.current() {
                paths::normalize(&working_dir, &working_dir, false)
            } else {
                working_dir
            };
            st.dir = paths::state_dir(&st.dir, &wd);
            st.config().working_dir = Some(wd);
        }
        if let Some(user) = st.config().user.clone().filter(|u| !u.is_empty()) {
            st.user = user;
        }
        Ok((st, triggers))
    }

    fn dockerfile_stage_position(&self, index: usize) -> crate::parser::Position {
        self.stage_positions[index]
    }

    /// BuildKit's `cmdTotal`: the FROM of an image, and every ADD, COPY, RUN and WORKDIR.
    fn step_total(&self, index: usize) -> usize {
        let from = usize::from(matches!(
            self.stage_graph.stages[index].base,
            Base::Image(_)
        ));
        from + self.step_counts[index]
    }
}

/// The trigger texts of an image config's `OnBuild` (`null` is none); `None` if malformed.
fn onbuild_triggers(value: &serde_json::Value) -> Option<Vec<String>> {
    match value {
        serde_json::Value::Null => Some(Vec::new()),
        serde_json::Value::Array(items) => items
            .iter()
            .map(|t| t.as_str().map(str::to_owned))
            .collect(),
        _ => None,
    }
}

/// How many op-producing instructions a stage has.
pub(crate) fn op_instruction_count(instructions: &[crate::instructions::Located]) -> usize {
    instructions
        .iter()
        .filter(|l| {
            matches!(
                l.instruction,
                Instruction::Add(_)
                    | Instruction::Copy(_)
                    | Instruction::Run(_)
                    | Instruction::Workdir(_)
            )
        })
        .count()
}
