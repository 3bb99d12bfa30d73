//! The typed instruction model over the AST, as BuildKit's `instructions` package builds it:
//! each node checked (name, flags, argument count) and turned into an [`Instruction`], grouped
//! into [`Stage`]s, with the ARGs before the first FROM kept apart as meta ARGs.
//!
//! Expansion is not done here (it needs the stage's environment); [`Instruction::expand`] applies
//! BuildKit's rules for which words each instruction expands (`Expand` in `instructions/
//! commands.go`), and [`RunInstruction::mounts`] parses `--mount` after expansion.

mod flags;
pub mod mount;

pub use mount::{CacheSharing, Mount, MountType, parse_mount};

use crate::error::{DockerfileError, ErrorKind};
use crate::parser::{
    self, Dockerfile, Node, Position, SourceRange, chomp_heredoc_content, parse_heredoc,
};
use crate::suggest;
use flags::{Flags, parse_go_duration};

/// Every instruction BuildKit knows, lower-case.
pub const INSTRUCTION_NAMES: &[&str] = &[
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// `key=value` of ENV and LABEL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value, not yet expanded (quotes still in it).
    pub value: String,
    /// Written in the old `KEY value` form.
    pub no_delim: bool,
}

/// One name of an ARG, with its default if given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDefinition {
    /// The name.
    pub key: String,
    /// The default value, if `=` was given.
    pub value: Option<String>,
}

/// A file given inline as a heredoc to COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceContent {
    /// The heredoc delimiter, used as the file name.
    pub path: String,
    /// The body (tabs already chomped for `<<-`).
    pub data: String,
    /// Whether the body is expanded.
    pub expand: bool,
}

/// The sources and destination of COPY and ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcesAndDest {
    /// The destination.
    pub dest: String,
    /// Source paths (or URLs for ADD).
    pub source_paths: Vec<String>,
    /// Heredoc sources.
    pub source_contents: Vec<SourceContent>,
}

/// A heredoc given to RUN as a script or file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlineFile {
    /// The delimiter.
    pub name: String,
    /// The body.
    pub data: String,
    /// `<<-`: strip leading tabs.
    pub chomp: bool,
}

/// The command of RUN, CMD and ENTRYPOINT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// Exec form: the argv; shell form: one string.
    pub args: Vec<String>,
    /// Heredocs opened on the line.
    pub files: Vec<InlineFile>,
    /// Shell form: run through the stage's SHELL.
    pub prepend_shell: bool,
}

/// RUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunInstruction {
    /// What to run.
    pub command: CommandLine,
    /// The `--mount` values as written (parsed by [`RunInstruction::mounts`] after expansion).
    pub mount_specs: Vec<String>,
    /// `--network`: `default`, `none` or `host`.
    pub network: String,
    /// `--security`: `sandbox` or `insecure`.
    pub security: String,
    /// `--device` values.
    pub devices: Vec<String>,
    /// The flags given, by name.
    pub flags_used: Vec<String>,
}

impl RunInstruction {
    /// The mounts, each value expanded by `expand` first.
    pub fn mounts(
        &self,
        expand: &mut dyn FnMut(&str) -> Result<String, ErrorKind>,
    ) -> Result<Vec<Mount>, ErrorKind> {
        self.mount_specs
            .iter()
            .map(|spec| parse_mount(spec, expand))
            .collect()
    }
}

/// HEALTHCHECK's settings (durations in nanoseconds, 0 when not given).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", argv...]` or `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    /// `--interval`.
    pub interval: i64,
    /// `--timeout`.
    pub timeout: i64,
    /// `--start-period`.
    pub start_period: i64,
    /// `--start-interval`.
    pub start_interval: i64,
    /// `--retries`.
    pub retries: i32,
}

/// ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddInstruction {
    /// Sources and destination.
    pub files: SourcesAndDest,
    /// `--chown`.
    pub chown: String,
    /// `--chmod`.
    pub chmod: String,
    /// `--link`.
    pub link: bool,
    /// `--keep-git-dir`, if given.
    pub keep_git_dir: Option<bool>,
    /// `--checksum`.
    pub checksum: String,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
    /// `--unpack`, if given.
    pub unpack: Option<bool>,
}

/// COPY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyInstruction {
    /// Sources and destination.
    pub files: SourcesAndDest,
    /// `--from`: a stage name, stage index, image or context.
    pub from: String,
    /// `--chown`.
    pub chown: String,
    /// `--chmod`.
    pub chmod: String,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude` patterns.
    pub exclude: Vec<String>,
}

/// An instruction inside a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Instruction {
    /// ENV.
    Env(Vec<KeyValue>),
    /// MAINTAINER.
    Maintainer(String),
    /// LABEL.
    Label(Vec<KeyValue>),
    /// ADD.
    Add(AddInstruction),
    /// COPY.
    Copy(CopyInstruction),
    /// ONBUILD, with the trigger's text.
    Onbuild(String),
    /// WORKDIR.
    Workdir(String),
    /// RUN.
    Run(RunInstruction),
    /// CMD.
    Cmd(CommandLine),
    /// HEALTHCHECK.
    Healthcheck(HealthConfig),
    /// ENTRYPOINT.
    Entrypoint(CommandLine),
    /// EXPOSE (ports sorted as BuildKit sorts them).
    Expose(Vec<String>),
    /// USER.
    User(String),
    /// VOLUME.
    Volume(Vec<String>),
    /// STOPSIGNAL.
    StopSignal(String),
    /// ARG.
    Arg(Vec<ArgDefinition>),
    /// SHELL.
    Shell(Vec<String>),
}

/// An instruction with where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The instruction.
    pub instruction: Instruction,
    /// Where it is.
    pub range: SourceRange,
    /// Its logical line.
    pub original: String,
}

/// A build stage: a FROM and the instructions after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// `AS name`, lower-cased.
    pub name: Option<String>,
    /// The image or stage it starts from, not yet expanded.
    pub base_name: String,
    /// `--platform`, not yet expanded.
    pub platform: Option<String>,
    /// The instructions.
    pub instructions: Vec<Located>,
    /// Where the FROM is.
    pub range: SourceRange,
    /// The FROM line.
    pub original: String,
}

/// A Dockerfile as stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instructions {
    /// The ARGs before the first FROM.
    pub meta_args: Vec<Located>,
    /// The stages in order.
    pub stages: Vec<Stage>,
}

/// What one node becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Parsed {
    From {
        name: Option<String>,
        base: String,
        platform: Option<String>,
    },
    Instruction(Instruction),
}

fn invalid(message: impl Into<String>) -> ErrorKind {
    ErrorKind::invalid(message)
}

fn exactly_one(args: &[String], name: &str) -> Result<String, ErrorKind> {
    match args {
        [one] => Ok(one.clone()),
        _ => Err(invalid(format!("{name} requires exactly one argument"))),
    }
}

fn key_values(args: &[String], name: &str) -> Result<Vec<KeyValue>, ErrorKind> {
    if args.is_empty() {
        return Err(invalid(format!("{name} requires at least one argument")));
    }
    if args.len() % 3 != 0 {
        return Err(invalid(format!("bad input to {name}, too many arguments")));
    }
    args.chunks(3)
        .map(|c| {
            if c[0].is_empty() {
                return Err(invalid(format!("{name} names can not be blank")));
            }
            Ok(KeyValue {
                key: c[0].clone(),
                value: c[1].clone(),
                no_delim: c[2].is_empty(),
            })
        })
        .collect()
}

fn command_line(node: &Node, args: &[String]) -> CommandLine {
    let args = if node.json || args.is_empty() {
        args.to_vec()
    } else {
        vec![args.join(" ")]
    };
    CommandLine {
        args,
        files: node
            .heredocs
            .iter()
            .map(|h| InlineFile {
                name: h.name.clone(),
                data: h.content.clone(),
                chomp: h.chomp,
            })
            .collect(),
        prepend_shell: !node.json,
    }
}

fn sources_and_dest(node: &Node, args: &[String], name: &str) -> Result<SourcesAndDest, ErrorKind> {
    let Some((dest, sources)) = args.split_last() else {
        return Err(no_destination(name));
    };
    if matches!(parse_heredoc(dest), Ok(Some(_))) {
        return Err(invalid(format!(
            "{name} cannot accept a heredoc as a destination"
        )));
    }
    let mut files = SourcesAndDest {
        dest: dest.clone(),
        source_paths: Vec::new(),
        source_contents: Vec::new(),
    };
    for source in sources {
        match parse_heredoc(source) {
            Ok(Some(doc)) => {
                let content = node
                    .heredocs
                    .iter()
                    .rev()
                    .find(|h| h.name == doc.name)
                    .map(|h| h.content.clone())
                    .unwrap_or_default();
                let data = if doc.chomp {
                    chomp_heredoc_content(&content)
                } else {
                    content
                };
                files.source_contents.push(SourceContent {
                    path: doc.name,
                    data,
                    expand: doc.expand,
                });
            }
            _ => files.source_paths.push(source.clone()),
        }
    }
    Ok(files)
}

fn no_destination(name: &str) -> ErrorKind {
    invalid(format!(
        "{name} requires at least two arguments, but only one was provided. destination could not be determined"
    ))
}

fn optional_interval(flags: &Flags, name: &str) -> Result<i64, ErrorKind> {
    let value = flags.get(name);
    if value.is_empty() {
        return Ok(0);
    }
    let nanos = parse_go_duration(&value).ok_or_else(|| {
        invalid(format!(
            "time: invalid duration {}",
            crate::go_quote::quote(&value)
        ))
    })?;
    if nanos != 0 && nanos < 1_000_000 {
        return Err(invalid(format!(
            "interval {name:?} cannot be less than 1ms"
        )));
    }
    Ok(nanos)
}

fn healthcheck(node: &Node, args: &[String]) -> Result<HealthConfig, ErrorKind> {
    let Some((kind, rest)) = args.split_first() else {
        return Err(invalid("HEALTHCHECK requires at least one argument"));
    };
    let kind = kind.to_uppercase();
    if kind == "NONE" {
        if !rest.is_empty() {
            return Err(invalid("HEALTHCHECK NONE takes no arguments"));
        }
        return Ok(HealthConfig {
            test: vec![kind],
            ..HealthConfig::default()
        });
    }
    let flags = Flags::default()
        .string("interval")
        .string("timeout")
        .string("start-period")
        .string("start-interval")
        .string("retries")
        .parse(&node.flags)?;
    if kind != "CMD" {
        return Err(invalid(format!(
            "unknown type {kind:?} in HEALTHCHECK (try CMD)"
        )));
    }
    let command = command_line(node, rest).args;
    if command.is_empty() {
        return Err(invalid("missing command after HEALTHCHECK CMD"));
    }
    let mut test = vec![if node.json {
        kind
    } else {
        "CMD-SHELL".to_owned()
    }];
    test.extend(command);
    let retries = match flags.get_opt("retries") {
        None => 0,
        Some(v) => {
            let n: i32 = v
                .parse()
                .map_err(|_| invalid(format!("strconv.ParseInt: parsing {v:?}: invalid syntax")))?;
            if n < 0 {
                return Err(invalid(format!("--retries cannot be negative ({n})")));
            }
            n
        }
    };
    Ok(HealthConfig {
        test,
        interval: optional_interval(&flags, "interval")?,
        timeout: optional_interval(&flags, "timeout")?,
        start_period: optional_interval(&flags, "start-period")?,
        start_interval: optional_interval(&flags, "start-interval")?,
        retries,
    })
}

fn is_valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

fn from(node: &Node, args: &[String]) -> Result<Parsed, ErrorKind> {
    let name = match args {
        [_, as_word, name] if as_word.eq_ignore_ascii_case("as") => {
            let lower = name.to_lowercase();
            if !is_valid_stage_name(&lower) {
                return Err(invalid(format!(
                    "invalid name for build stage: {}, name can't start with a number or contain symbols",
                    crate::go_quote::quote(name)
                )));
            }
            Some(lower)
        }
        [_] => None,
        _ => return Err(invalid("FROM requires either one or three arguments")),
    };
    let flags = Flags::default().string("platform").parse(&node.flags)?;
    Ok(Parsed::From {
        name,
        base: args[0].clone(),
        platform: flags.get_opt("platform"),
    })
}

fn onbuild(node: &Node, args: &[String]) -> Result<Instruction, ErrorKind> {
    let Some(trigger) = args.first() else {
        return Err(invalid("ONBUILD requires at least one argument"));
    };
    Flags::default().parse(&node.flags)?;
    let trigger = trigger.trim().to_uppercase();
    match trigger.as_str() {
        "ONBUILD" => {
            return Err(invalid(
                "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
            ));
        }
        "MAINTAINER" | "FROM" => {
            return Err(invalid(format!(
                "{trigger} isn't allowed as an ONBUILD trigger"
            )));
        }
        _ => {}
    }
    // `(?i)^\s*ONBUILD\s*` removed from the original line.
    let trimmed = node.original.trim_start();
    let mut expression = match trimmed.get(..7) {
        Some(word) if word.eq_ignore_ascii_case("onbuild") => trimmed[7..].trim_start().to_owned(),
        _ => node.original.clone(),
    };
    for doc in &node.heredocs {
        expression.push('\n');
        expression.push_str(&doc.content);
        expression.push_str(&doc.name);
    }
    Ok(Instruction::Onbuild(expression))
}

fn run(node: &Node, args: &[String]) -> Result<Instruction, ErrorKind> {
    let flags = Flags::default()
        .strings("mount")
        .string("network")
        .string("security")
        .strings("device")
        .parse(&node.flags)?;
    let network = flags.get_opt("network").unwrap_or_else(|| "default".into());
    if !matches!(network.as_str(), "default" | "none" | "host") {
        return Err(invalid(format!(
            "invalid network mode {}",
            crate::go_quote::quote(&network)
        )));
    }
    let security = flags
        .get_opt("security")
        .unwrap_or_else(|| "sandbox".into());
    if !matches!(security.as_str(), "sandbox" | "insecure") {
        return Err(invalid(format!(
            "security {} is not valid",
            crate::go_quote::quote(&security)
        )));
    }
    let mount_specs = flags.get_all("mount");
    for spec in &mount_specs {
        mount::check_unexpanded(spec)?;
    }
    Ok(Instruction::Run(RunInstruction {
        command: command_line(node, args),
        mount_specs,
        network,
        security,
        devices: flags.get_all("device"),
        flags_used: flags.used(),
    }))
}

/// Turns one AST node into a typed instruction (BuildKit's `ParseInstruction`).
#[allow(clippy::too_many_lines)] // one arm per instruction
fn parse_node(node: &Node) -> Result<Parsed, ErrorKind> {
    let args = node.arg_words();
    let no_flags = || Flags::default().parse(&node.flags).map(|_| ());
    let instruction = match node.name.to_lowercase().as_str() {
        "env" => {
            no_flags()?;
            Instruction::Env(key_values(&args, "ENV")?)
        }
        "maintainer" => {
            let who = exactly_one(&args, "MAINTAINER")?;
            no_flags()?;
            Instruction::Maintainer(who)
        }
        "label" => {
            no_flags()?;
            Instruction::Label(key_values(&args, "LABEL")?)
        }
        "add" => {
            if args.len() < 2 {
                return Err(no_destination("ADD"));
            }
            let flags = Flags::default()
                .string("chown")
                .string("chmod")
                .bool("link")
                .bool("keep-git-dir")
                .string("checksum")
                .bool("unpack")
                .strings("exclude")
                .parse(&node.flags)?;
            Instruction::Add(AddInstruction {
                files: sources_and_dest(node, &args, "ADD")?,
                chown: flags.get("chown"),
                chmod: flags.get("chmod"),
                link: flags.get_bool("link").unwrap_or(false),
                keep_git_dir: flags.get_bool("keep-git-dir"),
                checksum: flags.get("checksum"),
                exclude: flags.get_all("exclude"),
                unpack: flags.get_bool("unpack"),
            })
        }
        "copy" => {
            if args.len() < 2 {
                return Err(no_destination("COPY"));
            }
            let flags = Flags::default()
                .string("chown")
                .string("from")
                .string("chmod")
                .bool("link")
                .strings("exclude")
                .bool("parents")
                .parse(&node.flags)?;
            Instruction::Copy(CopyInstruction {
                files: sources_and_dest(node, &args, "COPY")?,
                from: flags.get("from"),
                chown: flags.get("chown"),
                chmod: flags.get("chmod"),
                link: flags.get_bool("link").unwrap_or(false),
                parents: flags.get_bool("parents").unwrap_or(false),
                exclude: flags.get_all("exclude"),
            })
        }
        "from" => return from(node, &args),
        "onbuild" => onbuild(node, &args)?,
        "workdir" => {
            let path = exactly_one(&args, "WORKDIR")?;
            no_flags()?;
            Instruction::Workdir(path)
        }
        "run" => run(node, &args)?,
        "cmd" => {
            no_flags()?;
            Instruction::Cmd(command_line(node, &args))
        }
        "entrypoint" => {
            no_flags()?;
            Instruction::Entrypoint(command_line(node, &args))
        }
        "healthcheck" => Instruction::Healthcheck(healthcheck(node, &args)?),
        "expose" => {
            if args.is_empty() {
                return Err(invalid("EXPOSE requires at least one argument"));
            }
            no_flags()?;
            let mut ports = args;
            ports.sort();
            Instruction::Expose(ports)
        }
        "user" => {
            let user = exactly_one(&args, "USER")?;
            no_flags()?;
            Instruction::User(user)
        }
        "volume" => {
            if args.is_empty() {
                return Err(invalid("VOLUME requires at least one argument"));
            }
            no_flags()?;
            let mut volumes = Vec::with_capacity(args.len());
            for v in args {
                let v = v.trim();
                if v.is_empty() {
                    return Err(invalid("VOLUME specified can not be an empty string"));
                }
                volumes.push(v.to_owned());
            }
            Instruction::Volume(volumes)
        }
        // BuildKit reads no flags for STOPSIGNAL and ARG, so it ignores any given.
        "stopsignal" => Instruction::StopSignal(exactly_one(&args, "STOPSIGNAL")?),
        "arg" => {
            if args.is_empty() {
                return Err(invalid("ARG requires at least one argument"));
            }
            let mut defs = Vec::with_capacity(args.len());
            for arg in args {
                defs.push(match arg.split_once('=') {
                    Some(("", _)) => return Err(invalid("ARG names can not be blank")),
                    Some((k, v)) => ArgDefinition {
                        key: k.to_owned(),
                        value: Some(v.to_owned()),
                    },
                    None => ArgDefinition {
                        key: arg,
                        value: None,
                    },
                });
            }
            Instruction::Arg(defs)
        }
        "shell" => {
            no_flags()?;
            if args.is_empty() {
                return Err(invalid("SHELL requires at least one argument"));
            }
            if !node.json {
                return Err(invalid(format!(
                    "SHELL requires the arguments to be in JSON form: {}",
                    node.original
                )));
            }
            Instruction::Shell(args)
        }
        _ => {
            let upper: Vec<String> = INSTRUCTION_NAMES.iter().map(|n| n.to_uppercase()).collect();
            let options: Vec<&str> = upper.iter().map(String::as_str).collect();
            return Err(ErrorKind::UnknownInstruction {
                name: node.name.clone(),
                suggestion: suggest::closest(&node.name, &options, false),
            });
        }
    };
    Ok(Parsed::Instruction(instruction))
}

/// Where in a node's first line an error about `needle` points: the needle's column when it is
/// on that line, else the instruction's start.
fn error_position(dockerfile: &Dockerfile, node: &Node, kind: &ErrorKind) -> Position {
    let needle = match kind {
        ErrorKind::UnknownFlag { flag, .. } => Some(flag.as_str()),
        _ => None,
    };
    let start = node.range.start;
    if let Some(needle) = needle {
        let line = dockerfile.source_line(start.line);
        if let Some(byte) = line.find(needle) {
            return Position {
                line: start.line,
                column: line[..byte].chars().count() + 1,
            };
        }
    }
    start
}

/// Parses every node of `dockerfile` into stages (BuildKit's `instructions.Parse`).
pub fn parse(dockerfile: &Dockerfile) -> Result<Instructions, DockerfileError> {
    let mut out = Instructions {
        meta_args: Vec::new(),
        stages: Vec::new(),
    };
    for node in &dockerfile.nodes {
        let parsed = parse_node(node).map_err(|kind| {
            let position = error_position(dockerfile, node, &kind);
            dockerfile.error_at(position, kind)
        })?;
        match parsed {
            Parsed::From {
                name,
                base,
                platform,
            } => out.stages.push(Stage {
                name,
                base_name: base,
                platform,
                instructions: Vec::new(),
                range: node.range,
                original: node.original.trim().to_owned(),
            }),
            Parsed::Instruction(instruction) => {
                let located = Located {
                    instruction,
                    range: node.range,
                    original: node.original.clone(),
                };
                match out.stages.last_mut() {
                    Some(stage) => stage.instructions.push(located),
                    None if matches!(located.instruction, Instruction::Arg(_)) => {
                        out.meta_args.push(located);
                    }
                    None => {
                        return Err(dockerfile.error_at(
                            node.range.start,
                            invalid("no build stage in current context"),
                        ));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Parses Dockerfile bytes straight to stages.
pub fn parse_bytes(source: &[u8], file_name: &str) -> Result<Instructions, DockerfileError> {
    parse(&parser::parse(source, file_name)?)
}

impl Instruction {
    /// Expands the words BuildKit expands for this instruction, in place: ENV and LABEL keys and
    /// values; ADD/COPY sources, destination, `--chown`, `--chmod` (and ADD's `--checksum`);
    /// WORKDIR; USER; VOLUME; STOPSIGNAL is expanded only to report errors. ARG is left to the
    /// stage scope, which expands a default only when no build arg overrides it. RUN/CMD/ENTRYPOINT/SHELL/HEALTHCHECK/EXPOSE/ONBUILD are
    /// left alone (RUN's mounts expand in [`RunInstruction::mounts`]; EXPOSE is split with the
    /// lexer's word splitting by the caller, as BuildKit's dispatcher does).
    pub fn expand(
        &mut self,
        expand: &mut dyn FnMut(&str) -> Result<String, ErrorKind>,
    ) -> Result<(), ErrorKind> {
        fn all(
            values: &mut [String],
            expand: &mut dyn FnMut(&str) -> Result<String, ErrorKind>,
        ) -> Result<(), ErrorKind> {
            for v in values {
                *v = expand(v)?;
            }
            Ok(())
        }
        fn files(
            f: &mut SourcesAndDest,
            expand: &mut dyn FnMut(&str) -> Result<String, ErrorKind>,
        ) -> Result<(), ErrorKind> {
            all(&mut f.source_paths, expand)?;
            f.dest = expand(&f.dest)?;
            Ok(())
        }
        match self {
            Self::Env(pairs) | Self::Label(pairs) => {
                for kv in pairs {
                    kv.key = expand(&kv.key)?;
                    kv.value = expand(&kv.value)?;
                }
            }
            Self::Add(add) => {
                add.chown = expand(&add.chown)?;
                add.chmod = expand(&add.chmod)?;
                add.checksum = expand(&add.checksum)?;
                files(&mut add.files, expand)?;
            }
            Self::Copy(copy) => {
                copy.chown = expand(&copy.chown)?;
                copy.chmod = expand(&copy.chmod)?;
                files(&mut copy.files, expand)?;
            }
            Self::Workdir(path) | Self::User(path) => *path = expand(path)?,
            Self::Volume(volumes) => all(volumes, expand)?,
            Self::StopSignal(signal) => {
                expand(signal)?;
            }
            _ => {}
        }
        Ok(())
    }

    /// Expands the bodies of COPY/ADD heredoc sources whose delimiter was not quoted. BuildKit
    /// does this with its own lexer (escape `\`, quotes not processed): see
    /// [`crate::stages::StageScope::apply`].
    pub fn expand_heredocs(
        &mut self,
        expand: &mut dyn FnMut(&str) -> Result<String, ErrorKind>,
    ) -> Result<(), ErrorKind> {
        let files = match self {
            Self::Add(add) => &mut add.files,
            Self::Copy(copy) => &mut copy.files,
            _ => return Ok(()),
        };
        for content in files.source_contents.iter_mut().filter(|c| c.expand) {
            content.data = expand(&content.data)?;
        }
        Ok(())
    }
}
