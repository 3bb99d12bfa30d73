//! `RUN`: BuildKit's `dispatchRun`, `dispatchRunMounts`, `dispatchSecret` and `dispatchSSH`,
//! and the LLB client's exec marshalling (mounts sorted by destination, inputs de-duplicated,
//! outputs numbered; spec section 5.5).

use std::fmt::Write as _;

use std::collections::BTreeMap;

use inlay_core::op::{
    CacheOpt, CacheSharing, ChownOpt, ExecMeta, ExecOp, FileAction, FileActionKind, FileMkdir,
    FileMkfile, FileOp, Input, Mount, MountType, NetMode, Op, ProxyEnv, SecretEnv, SecretOpt,
    SecurityMode, SshOpt, TmpfsOpt, UserOpt,
};

use super::metadata::with_shell;
use super::state::StageState;
use super::{ContentOrigin, ContentUse, LowerError, Lowering, paths};
use crate::error::ErrorKind;
use crate::instructions::{self, Located, MountType as DfMountType, RunInstruction};
use crate::parser::{Position, chomp_heredoc_content, parse_heredoc};
use crate::shell::Lexer;
use crate::stages::is_proxy_arg;

/// A mount before the LLB client numbers inputs and outputs.
struct PendingMount {
    dest: String,
    source: Option<Input>,
    selector: String,
    readonly: bool,
    no_output: bool,
    cache: Option<CacheOpt>,
    tmpfs: Option<TmpfsOpt>,
    origin: Option<ContentOrigin>,
}

impl PendingMount {
    fn new(dest: String, source: Option<Input>) -> PendingMount {
        PendingMount {
            dest,
            source,
            selector: String::new(),
            readonly: false,
            no_output: false,
            cache: None,
            tmpfs: None,
            origin: None,
        }
    }
}

/// BuildKit's `runCommandString`: `|N K=V ... ` before the argv when ARGs are declared.
fn run_command_string(args: &[String], st: &StageState) -> String {
    let mut entries: Vec<(String, String)> = Vec::new();
    for (key, value) in &st.build_args {
        let v = st
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map_or_else(|| value.clone().unwrap_or_default(), |(_, v)| v.clone());
        match entries.iter_mut().find(|(k, _)| k == key) {
            Some(e) => e.1 = v,
            None => entries.push((key.clone(), v)),
        }
    }
    let mut words: Vec<String> = Vec::new();
    if !entries.is_empty() {
        words.push(format!("|{}", entries.len()));
        words.extend(entries.into_iter().map(|(k, v)| format!("{k}={v}")));
    }
    words.extend(args.iter().cloned());
    words.join(" ")
}

/// BuildKit's `summarizeHeredoc`: the first line, `...` if there are more.
fn summarize_heredoc(doc: &str) -> String {
    let doc = doc.trim();
    let normalized = doc.replace("\r\n", "\n");
    let mut lines = normalized.split('\n');
    let first = lines.next().unwrap_or_default().to_owned();
    if lines.next().is_some() {
        format!("{first}...")
    } else {
        first
    }
}

/// BuildKit's progress name of an instruction (`processCmdEnv` + `uppercaseCmd`): env
/// references expanded, the instruction word upper-cased. `RUN` keeps quotes and unset
/// references (`raw`); `COPY`, `ADD` and `WORKDIR` go through the ordinary lexer.
pub(crate) fn display_text(
    original: &str,
    env: &[(String, String)],
    escape: char,
    raw: bool,
) -> String {
    let lexer = Lexer {
        raw_quotes: raw,
        skip_unset_env: raw,
        ..Lexer::new(escape)
    };
    let text = lexer
        .process_word(original, &env.to_vec())
        .unwrap_or_else(|_| original.to_owned());
    match text.split_once(' ') {
        Some((word, rest)) => format!("{} {rest}", word.to_uppercase()),
        None => text.to_uppercase(),
    }
}

/// `WithUser`-style owner for `uid`/`gid` (BuildKit's `setCacheUIDGID`).
fn chown_ids(uid: u32, gid: u32) -> ChownOpt {
    ChownOpt {
        user: Some(UserOpt::ById(uid)),
        group: Some(UserOpt::ById(gid)),
    }
}

impl Lowering<'_> {
    #[allow(clippy::too_many_lines)] // one BuildKit function, step by step
    pub(crate) fn lower_run(
        &mut self,
        st: &mut StageState,
        run: &RunInstruction,
        located: &Located,
        done: &BTreeMap<usize, StageState>,
    ) -> Result<(), LowerError> {
        let at = located.range.start;
        let mut name = display_text(&located.original, &st.env, self.dockerfile.escape, true);
        let mut args = run.command.args.clone();
        let mut extra_mounts: Vec<PendingMount> = Vec::new();
        if !run.command.files.is_empty() {
            if !self.options.current() {
                return Err(self.error(
                    at,
                    "heredocs are not supported by docker 20.10's Dockerfile frontend (profile buildkit-v0.8)",
                ));
            }
            if args.len() != 1 || !run.command.prepend_shell {
                return Err(self.error(at, "parsing produced an invalid run command"));
            }
            let first = &run.command.files[0];
            if matches!(parse_heredoc(&args[0]), Ok(Some(_))) {
                let data = if first.chomp {
                    chomp_heredoc_content(&first.data)
                } else {
                    first.data.clone()
                };
                if data.starts_with("#!") {
                    // A script with a shebang becomes a file mounted at /dev/pipes/ and run.
                    let file = self.inline_file(
                        &paths::llb_normalize("/", &first.name, false),
                        0o755,
                        data.as_bytes(),
                        &st.platform,
                    );
                    let mut mount = PendingMount::new("/dev/pipes/".to_owned(), Some(file));
                    "/".clone_into(&mut mount.selector);
                    mount.readonly = true;
                    extra_mounts.push(mount);
                    args = vec![paths::join("/dev/pipes/", &first.name)];
                } else {
                    args = vec![data];
                }
                let _ = write!(name, " ({})", summarize_heredoc(&first.data));
            } else {
                let mut full = args[0].clone();
                for file in &run.command.files {
                    full.push('\n');
                    full.push_str(&file.data);
                    full.push_str(&file.name);
                }
                args = vec![full];
            }
        }
        if run.command.prepend_shell {
            args = with_shell(st, &args);
        }

        let lexer = Lexer::new(self.dockerfile.escape);
        let env_for_mounts = st.env.clone();
        let specs = run
            .mounts(&mut |w| {
                lexer
                    .process_word(w, &env_for_mounts)
                    .map_err(ErrorKind::from)
            })
            .map_err(|k| self.dockerfile.error_at(at, k))?;

        let mut pending = vec![PendingMount::new("/".to_owned(), Some(st.root))];
        pending.append(&mut extra_mounts);
        let mut secrets: Vec<Mount> = Vec::new();
        let mut secret_env: Vec<SecretEnv> = Vec::new();
        let mut ssh: Vec<Mount> = Vec::new();
        for spec in &specs {
            match spec.kind {
                DfMountType::Secret => {
                    self.secret_mount(spec, at, &mut secrets, &mut secret_env)?;
                }
                DfMountType::Ssh => {
                    if !spec.source.is_empty() {
                        return Err(self.error(at, "ssh does not support source"));
                    }
                    let target = if spec.target.is_empty() {
                        format!("/run/buildkit/ssh_agent.{}", ssh.len())
                    } else {
                        spec.target.clone()
                    };
                    ssh.push(Mount {
                        input: -1,
                        dest: target,
                        output: -1,
                        mount_type: MountType::Ssh,
                        ssh_opt: Some(SshOpt {
                            id: spec.cache_id.clone(),
                            uid: spec.uid.unwrap_or(0),
                            gid: spec.gid.unwrap_or(0),
                            mode: spec.mode.unwrap_or(0o600),
                            optional: !spec.required,
                        }),
                        ..Mount::rootfs(-1)
                    });
                }
                _ => pending.push(self.filesystem_mount(st, spec, at, done)?),
            }
        }

        // The LLB client sorts mounts by destination, then numbers inputs (equal inputs
        // shared) and outputs (writable mounts that keep their changes).
        pending.sort_by(|a, b| a.dest.cmp(&b.dest));
        let mut inputs: Vec<Input> = Vec::new();
        let mut mounts: Vec<Mount> = Vec::new();
        let mut origins: Vec<(usize, ContentOrigin)> = Vec::new();
        let mut next_output = 0i64;
        for m in pending {
            let input = match m.source {
                Some(source) => {
                    let i = inputs.iter().position(|i| *i == source).unwrap_or_else(|| {
                        inputs.push(source);
                        inputs.len() - 1
                    });
                    if let Some(origin) = m.origin {
                        origins.push((i, origin));
                    }
                    i as i64
                }
                None => -1,
            };
            let output = if m.no_output || m.readonly || m.cache.is_some() || m.tmpfs.is_some() {
                -1
            } else {
                next_output += 1;
                next_output - 1
            };
            let mount_type = if m.cache.is_some() {
                MountType::Cache
            } else if m.tmpfs.is_some() {
                MountType::Tmpfs
            } else {
                MountType::Bind
            };
            mounts.push(Mount {
                input,
                selector: m.selector,
                dest: m.dest,
                output,
                readonly: m.readonly,
                mount_type,
                tmpfs_opt: m.tmpfs,
                cache_opt: m.cache,
                ..Mount::rootfs(-1)
            });
        }
        mounts.append(&mut secrets);
        let mut env = st.env.clone();
        if let Some(first) = ssh.first() {
            if !env.iter().any(|(k, _)| k == "SSH_AUTH_SOCK") {
                env.push(("SSH_AUTH_SOCK".to_owned(), first.dest.clone()));
            }
        }
        mounts.append(&mut ssh);

        let network = match run.network.as_str() {
            "none" => NetMode::None,
            "host" => NetMode::Host,
            _ => self.options.network,
        };
        let security = if run.security == "insecure" {
            SecurityMode::Insecure
        } else {
            SecurityMode::Sandbox
        };
        let meta = ExecMeta {
            args: args.clone(),
            env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            cwd: st.cwd(),
            user: st.user.clone(),
            proxy_env: self.proxy_env(),
            remove_mount_stubs_recursive: self.options.current(),
            extra_hosts: self.options.extra_hosts.clone(),
            ..ExecMeta::default()
        };
        let exec = ExecOp {
            meta,
            mounts,
            network,
            security,
            secret_env,
        };
        let output = self.add(Op::Exec(exec), inputs, &st.platform, "");
        for (input, origin) in origins {
            self.content_uses.push(ContentUse {
                vertex: output.vertex,
                input,
                origin,
            });
        }
        st.root = output;
        self.step(st, &name, output, at);
        let created_by = format!("RUN {}", run_command_string(&args, st));
        st.history(created_by, true, true);
        Ok(())
    }

    /// BuildKit's `proxyEnvFromBuildArgs`.
    fn proxy_env(&self) -> Option<ProxyEnv> {
        let args = &self.options.build.build_args;
        if !args.keys().any(|k| is_proxy_arg(k)) {
            return None;
        }
        let get = |name: &str| {
            args.get(&name.to_uppercase())
                .or_else(|| args.get(name))
                .cloned()
                .unwrap_or_default()
        };
        Some(ProxyEnv {
            http_proxy: get("http_proxy"),
            https_proxy: get("https_proxy"),
            ftp_proxy: get("ftp_proxy"),
            no_proxy: get("no_proxy"),
            all_proxy: get("all_proxy"),
        })
    }

    /// A file op writing one file on scratch (heredocs), as `llb.Scratch().File(Mkfile(...))`.
    pub(crate) fn inline_file(
        &mut self,
        path: &str,
        mode: i32,
        data: &[u8],
        platform: &inlay_core::Platform,
    ) -> Input {
        let scratch = self.scratch();
        self.add(
            Op::File(FileOp {
                actions: vec![FileAction {
                    input: 0,
                    secondary_input: -1,
                    output: 0,
                    kind: FileActionKind::Mkfile(FileMkfile {
                        path: path.to_owned(),
                        mode,
                        data: data.to_vec(),
                        owner: None,
                        timestamp: -1,
                    }),
                }],
            }),
            vec![scratch],
            platform,
            "preparing inline document",
        )
    }

    fn secret_mount(
        &self,
        spec: &instructions::Mount,
        at: Position,
        secrets: &mut Vec<Mount>,
        secret_env: &mut Vec<SecretEnv>,
    ) -> Result<(), LowerError> {
        let mut id = spec.cache_id.clone();
        if !spec.source.is_empty() {
            id.clone_from(&spec.source);
        }
        if id.is_empty() {
            if spec.target.is_empty() {
                return Err(self.error(at, "one of source, target required"));
            }
            id = paths::base(&spec.target);
        }
        if let Some(name) = &spec.env {
            if !self.options.current() {
                return Err(self.error(
                    at,
                    "secrets as environment variables are not supported by docker 20.10's frontend",
                ));
            }
            secret_env.push(SecretEnv {
                id: id.clone(),
                name: name.clone(),
                optional: !spec.required,
            });
        }
        let target = if !spec.target.is_empty() {
            Some(spec.target.clone())
        } else if spec.env.is_none() {
            Some(format!("/run/secrets/{}", paths::base(&id)))
        } else {
            None
        };
        if let Some(dest) = target {
            secrets.push(Mount {
                input: -1,
                dest,
                output: -1,
                mount_type: MountType::Secret,
                secret_opt: Some(SecretOpt {
                    id,
                    uid: spec.uid.unwrap_or(0),
                    gid: spec.gid.unwrap_or(0),
                    mode: spec.mode.unwrap_or(0o400),
                    optional: !spec.required,
                }),
                ..Mount::rootfs(-1)
            });
        }
        Ok(())
    }

    /// A bind, cache or tmpfs mount.
    fn filesystem_mount(
        &mut self,
        st: &StageState,
        spec: &instructions::Mount,
        at: Position,
        done: &BTreeMap<usize, StageState>,
    ) -> Result<PendingMount, LowerError> {
        let mut from = spec.from.clone();
        if from.is_empty() && spec.kind == DfMountType::Cache {
            "scratch".clone_into(&mut from);
        }
        let (mut source, mut origin) = if spec.kind == DfMountType::Tmpfs {
            (None, None)
        } else if from.is_empty() {
            (Some(self.context()), Some(ContentOrigin::Context))
        } else {
            let (input, origin) = self.named_state(&from, done, at)?;
            (Some(input), Some(origin))
        };
        if source.is_some_and(|s| self.is_scratch(s)) {
            source = None;
            origin = None;
        }
        let mut target = spec.target.clone();
        if !paths::clean(&target).starts_with('/') {
            target = paths::join(&paths::join("/", &st.cwd()), &target);
        }
        if target == "/" {
            return Err(self.error(at, format!("invalid mount target {target:?}")));
        }
        let mut m = PendingMount::new(target, source);
        if spec.kind == DfMountType::Tmpfs {
            m.source = None;
            origin = None;
            m.tmpfs = Some(TmpfsOpt {
                size: spec.size_limit,
            });
        }
        if spec.read_only {
            m.readonly = true;
        } else if spec.kind == DfMountType::Bind && self.options.current() {
            // CapExecMountBindReadWriteNoOutput: a writable bind keeps no changes.
            m.no_output = true;
        }
        if spec.kind == DfMountType::Cache {
            let id = if spec.cache_id.is_empty() {
                paths::clean(&spec.target)
            } else {
                spec.cache_id.clone()
            };
            let sharing = match spec.cache_sharing {
                Some(instructions::CacheSharing::Private) => CacheSharing::Private,
                Some(instructions::CacheSharing::Locked) => CacheSharing::Locked,
                _ => CacheSharing::Shared,
            };
            m.cache = Some(CacheOpt {
                id: format!("{}/{id}", self.options.cache_id_namespace),
                sharing,
            });
        }
        let src = paths::join("/", &spec.source);
        if src != "/" {
            m.selector.clone_from(&src);
        } else if spec.uid.is_some() || spec.gid.is_some() || spec.mode.is_some() {
            // BuildKit's setCacheUIDGID: a /cache directory with the owner and mode, mounted.
            let base = match m.source {
                Some(s) => s,
                None => self.scratch(),
            };
            let mode = spec.mode.map_or(0o755, |m| m as i32);
            let mkdir = self.add(
                Op::File(FileOp {
                    actions: vec![FileAction {
                        input: 0,
                        secondary_input: -1,
                        output: 0,
                        kind: FileActionKind::Mkdir(FileMkdir {
                            path: "/cache".to_owned(),
                            mode,
                            make_parents: false,
                            owner: Some(chown_ids(spec.uid.unwrap_or(0), spec.gid.unwrap_or(0))),
                            timestamp: -1,
                        }),
                    }],
                }),
                vec![base],
                &st.platform,
                "[internal] setting cache mount permissions",
            );
            // The exec keys this input by content too (a cache mount has no output, spec
            // section 5.4). On scratch the content is just the new directory; on another base
            // it would need that base's files, which are not modelled here.
            origin = m.source.is_none().then(|| ContentOrigin::Directory {
                path: "/cache".to_owned(),
                // os.Mkdir in BuildKit's file backend applies the daemon's umask (022).
                mode: spec.mode.unwrap_or(0o755) & 0o777 & !0o022,
                uid: spec.uid.unwrap_or(0),
                gid: spec.gid.unwrap_or(0),
            });
            m.source = Some(mkdir);
            "/cache".clone_into(&mut m.selector);
        }
        if from.is_empty() {
            self.context_paths.insert(src);
        }
        m.origin = origin;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heredoc_summaries() {
        assert_eq!(summarize_heredoc("  echo a\necho b\n"), "echo a...");
        assert_eq!(summarize_heredoc("echo a\n"), "echo a");
    }

    #[test]
    fn display_uppercases_the_instruction() {
        let env = vec![("A".to_owned(), "x".to_owned())];
        assert_eq!(
            display_text("run echo $A '$B'", &env, '\\', true),
            "RUN echo x '$B'"
        );
        assert_eq!(display_text("copy $A $B /", &env, '\\', false), "COPY x  /");
    }
}
