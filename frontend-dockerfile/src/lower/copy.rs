//! `COPY`, `ADD` and `WORKDIR`: BuildKit's `dispatchCopy` and `dispatchWorkdir` with the LLB
//! client's file-op marshalling (spec sections 5.6 and 8c).

use std::fmt::Write as _;

use std::collections::BTreeMap;

use inlay_core::op::{
    ChownOpt, FileAction, FileActionKind, FileCopy, FileMkdir, FileOp, Input, MergeOp, Op, UserOpt,
};

use super::run::display_text;
use super::state::StageState;
use super::{ContentOrigin, ContentUse, LowerError, Lowering, Step, paths};
use crate::instructions::{AddInstruction, CopyInstruction, Located, SourcesAndDest};
use crate::parser::Position;

/// LLB's `WithUser`: `user[:group]`, each a name (resolved in the base's `/etc/passwd` or
/// `/etc/group`), a number, or `root` (0).
pub(crate) fn with_user(spec: &str) -> ChownOpt {
    let one = |part: &str| -> UserOpt {
        if part == "root" {
            return UserOpt::ById(0);
        }
        match part.parse::<i32>() {
            Ok(id) => UserOpt::ById(id as u32),
            Err(_) => UserOpt::ByName {
                name: part.to_owned(),
                input: 0,
            },
        }
    };
    let mut parts = spec.splitn(2, ':');
    let user = parts.next().map(one);
    let group = parts.next().map(one);
    ChownOpt { user, group }
}

/// A `--chmod` value: octal bits, or (current BuildKit) a symbolic mode string.
enum Chmod {
    None,
    Bits(i32),
    Symbolic(String),
}

/// Whether `text` is a symbolic mode BuildKit's `mode.Parse` accepts (`u+x`, `a=rX,g-w`).
fn symbolic_mode(text: &str) -> bool {
    !text.is_empty()
        && text.split(',').all(|clause| {
            let ops = clause.trim_start_matches(['u', 'g', 'o', 'a']);
            let mut chars = ops.chars().peekable();
            let mut any = false;
            while let Some(c) = chars.next() {
                if !matches!(c, '+' | '-' | '=') {
                    return false;
                }
                any = true;
                while chars.peek().is_some_and(|c| {
                    matches!(c, 'r' | 'w' | 'x' | 'X' | 's' | 't' | 'u' | 'g' | 'o')
                }) {
                    chars.next();
                }
            }
            any
        })
}

/// Whether an ADD source is remote (a URL or a git repository), which inlay does not lower.
fn is_remote(src: &str) -> bool {
    let lower = src.to_lowercase();
    ["http://", "https://", "git://", "git@", "ssh://"]
        .iter()
        .any(|p| lower.starts_with(p))
}

/// The flags shared by COPY and ADD.
struct CopyFlags<'a> {
    is_add: bool,
    chown: &'a str,
    chmod: &'a str,
    link: bool,
    exclude: &'a [String],
    unpack: Option<bool>,
}

impl Lowering<'_> {
    fn chmod(&self, text: &str, at: Position) -> Result<Chmod, LowerError> {
        if text.is_empty() {
            return Ok(Chmod::None);
        }
        let bad = || {
            self.error(
                at,
                format!(
                    "invalid chmod parameter: '{text}'. it should be octal string and between 0 and 07777"
                ),
            )
        };
        match u32::from_str_radix(text, 8) {
            Ok(bits) if bits <= 0o7777 => Ok(Chmod::Bits(bits as i32)),
            Ok(_) if self.options.current() => Err(bad()),
            // docker 20.10 ignores a --chmod it cannot read as octal.
            _ if !self.options.current() => Ok(Chmod::None),
            _ if text.chars().all(|c| c.is_ascii_digit()) => Err(bad()),
            _ if symbolic_mode(text) => Ok(Chmod::Symbolic(text.to_owned())),
            _ => Err(self.error(at, format!("invalid mode: {text}"))),
        }
    }

    /// The copy destination: relative to the working directory, a trailing `/` kept.
    fn copy_dest(&self, st: &StageState, dest: &str) -> String {
        let cwd = st.cwd();
        let dest_path = if self.options.current() {
            if dest.starts_with('/') {
                dest.to_owned()
            } else {
                let p = if dest == "." || dest.is_empty() {
                    "./"
                } else {
                    dest
                };
                paths::normalize(&cwd, p, true)
            }
        } else {
            let pp = if dest.starts_with('/') {
                dest.to_owned()
            } else {
                paths::join(&cwd, dest)
            };
            let mut d = paths::join("/", &pp);
            if dest == "." || dest.is_empty() || dest.ends_with('/') {
                d.push('/');
            }
            d
        };
        paths::llb_normalize(&cwd, &dest_path, true)
    }

    pub(crate) fn lower_copy(
        &mut self,
        st: &mut StageState,
        copy: &CopyInstruction,
        located: &Located,
        done: &BTreeMap<usize, StageState>,
    ) -> Result<(), LowerError> {
        let at = located.range.start;
        if copy.parents {
            return Err(self.error(at, "COPY --parents is not supported by inlay yet"));
        }
        let (source, origin) = if copy.from.is_empty() {
            (self.context(), ContentOrigin::Context)
        } else {
            self.named_state(&copy.from, done, at)?
        };
        let flags = CopyFlags {
            is_add: false,
            chown: &copy.chown,
            chmod: &copy.chmod,
            link: copy.link,
            exclude: &copy.exclude,
            unpack: None,
        };
        self.copy_files(st, &copy.files, source, &origin, &flags, located)
    }

    pub(crate) fn lower_add(
        &mut self,
        st: &mut StageState,
        add: &AddInstruction,
        located: &Located,
    ) -> Result<(), LowerError> {
        let at = located.range.start;
        if let Some(src) = add.files.source_paths.iter().find(|s| is_remote(s)) {
            return Err(self.error(
                at,
                format!("ADD of a URL or git source is not supported by inlay: {src}"),
            ));
        }
        if !add.checksum.is_empty() {
            return Err(self.error(at, "checksum requires HTTP(S) or Git sources"));
        }
        let source = self.context();
        let flags = CopyFlags {
            is_add: true,
            chown: &add.chown,
            chmod: &add.chmod,
            link: add.link,
            exclude: &add.exclude,
            unpack: add.unpack,
        };
        self.copy_files(
            st,
            &add.files,
            source,
            &ContentOrigin::Context,
            &flags,
            located,
        )
    }

    #[allow(clippy::too_many_lines)] // one BuildKit function, step by step
    fn copy_files(
        &mut self,
        st: &mut StageState,
        files: &SourcesAndDest,
        source: Input,
        origin: &ContentOrigin,
        flags: &CopyFlags<'_>,
        located: &Located,
    ) -> Result<(), LowerError> {
        let at = located.range.start;
        let current = self.options.current();
        let verb = if flags.is_add { "ADD" } else { "COPY" };
        if !current {
            if flags.link {
                return Err(self.error(
                    at,
                    format!("{verb} --link is not supported by docker 20.10's Dockerfile frontend (profile buildkit-v0.8)"),
                ));
            }
            if !flags.exclude.is_empty() {
                return Err(self.error(
                    at,
                    format!("{verb} --exclude is not supported by docker 20.10's Dockerfile frontend (profile buildkit-v0.8)"),
                ));
            }
            if !files.source_contents.is_empty() {
                return Err(self.error(
                    at,
                    "heredocs are not supported by docker 20.10's Dockerfile frontend (profile buildkit-v0.8)",
                ));
            }
        }
        let chmod = self.chmod(flags.chmod, at)?;
        let dest = self.copy_dest(st, &files.dest);
        let owner = (!flags.chown.is_empty()).then(|| with_user(flags.chown));
        let name = display_text(&located.original, &st.env, self.dockerfile.escape, false);

        let mut message = String::from(verb);
        if current && !flags.chown.is_empty() {
            let _ = write!(message, " --chown={}", flags.chown);
        }
        if current && !flags.chmod.is_empty() {
            let _ = write!(message, " --chmod={}", flags.chmod);
        }

        let link = current && flags.link && flags.chmod.is_empty();
        let base = if link { self.scratch() } else { st.root };
        let mut inputs: Vec<Input> = vec![base];
        let mut sources: Vec<(Input, ContentOrigin)> = Vec::new();
        let mut copies: Vec<(FileCopy, Input)> = Vec::new();
        let from_context = self.context.is_some_and(|c| c == source.vertex);
        for src in &files.source_paths {
            let _ = write!(message, " {src}");
            let mut c = FileCopy::new(&paths::clean(&format!("/{src}")), &dest);
            c.owner.clone_from(&owner);
            match &chmod {
                Chmod::None => {}
                Chmod::Bits(b) => c.mode = *b,
                Chmod::Symbolic(s) => c.mode_str.clone_from(s),
            }
            c.follow_symlink = true;
            c.dir_copy_contents = true;
            c.attempt_unpack_docker_compatibility = flags.unpack.unwrap_or(flags.is_add);
            c.create_dest_path = true;
            c.allow_wildcard = true;
            c.allow_empty_wildcard = true;
            c.exclude_patterns = flags.exclude.to_vec();
            copies.push((c, source));
            if !sources.iter().any(|(i, _)| *i == source) {
                sources.push((source, origin.clone()));
            }
            if from_context {
                self.context_paths.insert(paths::join("/", src));
            }
        }
        for content in &files.source_contents {
            let _ = write!(message, " <<{}", content.path);
            let path = paths::llb_normalize("", &content.path, false);
            let file = self.inline_file(&path, 0o644, content.data.as_bytes(), &st.platform);
            let mut c = FileCopy::new(&paths::clean(&content.path), &dest);
            c.owner.clone_from(&owner);
            match &chmod {
                Chmod::None => {}
                Chmod::Bits(b) => c.mode = *b,
                Chmod::Symbolic(s) => c.mode_str.clone_from(s),
            }
            c.create_dest_path = true;
            copies.push((c, file));
            sources.push((
                file,
                ContentOrigin::Inline {
                    path,
                    mode: 0o644,
                    data: content.data.as_bytes().to_vec(),
                },
            ));
        }
        let _ = write!(message, " {}", files.dest);

        // Inputs: the base first, then each copy source once, in action order.
        let mut secondary: Vec<i64> = Vec::with_capacity(copies.len());
        for (_, src) in &copies {
            let i = inputs.iter().position(|i| i == src).unwrap_or_else(|| {
                inputs.push(*src);
                inputs.len() - 1
            });
            secondary.push(i as i64);
        }
        let count = copies.len();
        let n_inputs = inputs.len() as i64;
        let actions: Vec<FileAction> = copies
            .into_iter()
            .zip(secondary)
            .enumerate()
            .map(|(k, ((c, _), sec))| FileAction {
                input: if k == 0 { 0 } else { n_inputs + k as i64 - 1 },
                secondary_input: sec,
                output: if k + 1 == count { 0 } else { -1 },
                kind: FileActionKind::Copy(c),
            })
            .collect();
        if actions.is_empty() {
            return Err(self.error(at, format!("{verb} has no source")));
        }
        let file = self.add(
            Op::File(FileOp { actions }),
            inputs.clone(),
            &st.platform,
            "",
        );
        for (src, origin) in sources {
            if self.is_scratch(src) {
                continue;
            }
            if let Some(input) = inputs.iter().position(|i| *i == src) {
                self.content_uses.push(ContentUse {
                    vertex: file.vertex,
                    input,
                    origin,
                });
            }
        }
        let description = st.prefix(&name);
        self.graph
            .vertex_mut(file.vertex)
            .description
            .clone_from(&description);
        let output = if link && !self.is_scratch(st.root) {
            let prefix = &description[..description.len() - name.len()];
            let merge_name = format!("{prefix}LINK {name}");
            self.add(
                Op::Merge(MergeOp { inputs: vec![0, 1] }),
                vec![st.root, file],
                &st.platform,
                &merge_name,
            )
        } else {
            file
        };
        self.steps.push(Step {
            stage: st.index,
            description,
            output,
            position: at,
        });
        st.root = output;
        st.history(message, true, true);
        Ok(())
    }

    #[allow(clippy::unnecessary_wraps)] // every instruction lowers through one signature
    pub(crate) fn lower_workdir(
        &mut self,
        st: &mut StageState,
        path: &str,
        located: &Located,
    ) -> Result<(), LowerError> {
        let at = located.range.start;
        let image_wd = st.config().working_dir.clone().unwrap_or_default();
        let wd = if self.options.current() {
            paths::normalize(&image_wd, path, false)
        } else if path.starts_with('/') {
            path.to_owned()
        } else {
            paths::join(&paths::join("/", &image_wd), path)
        };
        st.config().working_dir = Some(wd.clone());
        st.dir = if self.options.current() {
            paths::state_dir(&st.dir, &wd)
        } else {
            paths::state_dir(&st.dir, path)
        };
        let with_layer = wd != "/";
        if with_layer {
            let owner = (!st.user.is_empty())
                .then(|| st.config().user.clone())
                .flatten()
                .filter(|u| !u.is_empty())
                .map(|u| with_user(&u));
            let mkdir = FileMkdir {
                path: paths::llb_normalize(&st.cwd(), &wd, false),
                mode: 0o755,
                make_parents: true,
                owner,
                timestamp: -1,
            };
            let output = self.add(
                Op::File(FileOp {
                    actions: vec![FileAction {
                        input: 0,
                        secondary_input: -1,
                        output: 0,
                        kind: FileActionKind::Mkdir(mkdir),
                    }],
                }),
                vec![st.root],
                &st.platform,
                "",
            );
            st.root = output;
            let name = display_text(&located.original, &st.env, self.dockerfile.escape, false);
            self.step(st, &name, output, at);
        }
        st.history(format!("WORKDIR {wd}"), with_layer, false);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_modes() {
        assert_eq!(
            with_user("root:1000"),
            ChownOpt {
                user: Some(UserOpt::ById(0)),
                group: Some(UserOpt::ById(1000))
            }
        );
        assert_eq!(
            with_user("app"),
            ChownOpt {
                user: Some(UserOpt::ByName {
                    name: "app".into(),
                    input: 0
                }),
                group: None
            }
        );
        assert!(symbolic_mode("u+x"));
        assert!(symbolic_mode("a=rX,g-w"));
        assert!(!symbolic_mode("zz"));
        assert!(is_remote("https://example.com/a.tgz"));
        assert!(is_remote("git@github.com:moby/buildkit.git"));
        assert!(!is_remote("data.txt"));
    }
}
