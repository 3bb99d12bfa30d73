//! The cases under `conformance/buildkit/`: one folder each, holding a `Dockerfile`, its
//! context, and optionally a `case.args` file.
//!
//! `case.args` has one option a line (`#` starts a comment line):
//!
//! ```text
//! build-arg NAME=value     # a --build-arg (repeatable; `build-arg NAME` passes NAME unset)
//! target NAME              # --target
//! network none|host        # --network
//! base local|remote        # the busybox base: in dockerd's image store (default) or removed
//!                          # from it before the build, so docker resolves it from the registry
//! base case NAME           # BASE is the image case NAME pushed (built first)
//! ```
//!
//! In the Dockerfile, `{{BASE}}` is replaced by the base image reference, for the places where
//! docker 20.10 expands no build arg (`COPY --from=<image>`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::conformance::seam::NetworkMode;

/// Where a case's `BASE` build arg points.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BaseChoice {
    /// The busybox image, present in dockerd's local image store (only the chainID root).
    #[default]
    Local,
    /// The busybox image, removed from dockerd's store first (manifest and chainID roots).
    Remote,
    /// The image another case pushed.
    Case(String),
}

/// The build options of a case.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CaseOptions {
    /// `--build-arg`s beyond `BASE` and `BUILDKIT_INLINE_CACHE`; `None` passes the name alone.
    pub build_args: Vec<(String, Option<String>)>,
    /// `--target`.
    pub target: Option<String>,
    /// `--network`.
    pub network: NetworkMode,
    /// Where `BASE` points.
    pub base: BaseChoice,
}

/// One case folder.
#[derive(Debug, Clone)]
pub struct Case {
    /// The folder's name.
    pub name: String,
    /// The folder: the build context.
    pub dir: PathBuf,
    /// Its options.
    pub options: CaseOptions,
}

/// The file a case's options live in.
pub const OPTIONS_FILE: &str = "case.args";

/// The placeholder for the base image reference in a Dockerfile.
pub const BASE_PLACEHOLDER: &str = "{{BASE}}";

/// Reads `case.args`.
pub fn parse_options(text: &str) -> Result<CaseOptions> {
    let mut options = CaseOptions::default();
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once(char::is_whitespace)
            .map_or((line, ""), |(k, v)| (k, v.trim()));
        match (key, value) {
            ("build-arg" | "target" | "network" | "base", "") => {
                bail!("line {line_no}: `{key}` needs a value");
            }
            ("build-arg", arg) => {
                let (name, value) = match arg.split_once('=') {
                    Some((name, value)) => (name, Some(value.to_owned())),
                    None => (arg, None),
                };
                if name.is_empty() || name.contains(char::is_whitespace) {
                    bail!("line {line_no}: bad build-arg name {name:?}");
                }
                options.build_args.push((name.to_owned(), value));
            }
            ("target", target) => options.target = Some(target.to_owned()),
            ("network", "none") => options.network = NetworkMode::None,
            ("network", "host") => options.network = NetworkMode::Host,
            ("network", "default") => options.network = NetworkMode::Default,
            ("base", "local") => options.base = BaseChoice::Local,
            ("base", "remote") => options.base = BaseChoice::Remote,
            ("base", other) => match other.strip_prefix("case ") {
                Some(name) if !name.trim().is_empty() => {
                    options.base = BaseChoice::Case(name.trim().to_owned());
                }
                _ => bail!("line {line_no}: `base` takes local, remote or `case NAME`"),
            },
            _ => bail!("line {line_no}: unknown option {line:?}"),
        }
    }
    Ok(options)
}

/// Every case folder under `dir` (those with a `Dockerfile`), ordered so that a case whose base
/// is another case comes after it, else by name.
pub fn load_cases(dir: &Path) -> Result<Vec<Case>> {
    let mut cases = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let path = entry.path();
        if !path.join("Dockerfile").is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let options_path = path.join(OPTIONS_FILE);
        let options = if options_path.is_file() {
            let text = std::fs::read_to_string(&options_path)
                .with_context(|| format!("reading {}", options_path.display()))?;
            parse_options(&text).with_context(|| format!("in {}", options_path.display()))?
        } else {
            CaseOptions::default()
        };
        cases.push(Case {
            name,
            dir: path,
            options,
        });
    }
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    order_by_base(cases)
}

/// Puts every case after the case it takes its base from.
fn order_by_base(mut pending: Vec<Case>) -> Result<Vec<Case>> {
    let names: BTreeSet<String> = pending.iter().map(|c| c.name.clone()).collect();
    for case in &pending {
        if let BaseChoice::Case(base) = &case.options.base {
            if !names.contains(base) {
                bail!("case {} takes its base from unknown case {base}", case.name);
            }
        }
    }
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut ordered = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = pending.iter().position(|c| match &c.options.base {
            BaseChoice::Case(base) => done.contains(base),
            _ => true,
        });
        let Some(index) = ready else {
            bail!(
                "cases take their bases from each other in a loop: {:?}",
                pending.iter().map(|c| &c.name).collect::<Vec<_>>()
            );
        };
        let case = pending.remove(index);
        done.insert(case.name.clone());
        ordered.push(case);
    }
    Ok(ordered)
}

/// Keeps only the named cases (all when `only` is empty); an unknown name is an error.
pub fn select(cases: Vec<Case>, only: &[String]) -> Result<Vec<Case>> {
    if only.is_empty() {
        return Ok(cases);
    }
    for name in only {
        if !cases.iter().any(|c| &c.name == name) {
            bail!("no case named {name}");
        }
    }
    // A chosen case's base case is built too.
    let mut wanted: BTreeSet<&str> = only.iter().map(String::as_str).collect();
    loop {
        let before = wanted.len();
        for case in &cases {
            if let (true, BaseChoice::Case(base)) =
                (wanted.contains(case.name.as_str()), &case.options.base)
            {
                wanted.insert(base);
            }
        }
        if wanted.len() == before {
            break;
        }
    }
    let wanted: BTreeSet<String> = wanted.into_iter().map(str::to_owned).collect();
    Ok(cases
        .into_iter()
        .filter(|c| wanted.contains(&c.name))
        .collect())
}

/// The Dockerfile with `{{BASE}}` replaced by `base`.
pub fn render_dockerfile(text: &str, base: &str) -> String {
    text.replace(BASE_PLACEHOLDER, base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse() {
        let options = parse_options(
            "# comment\n\nbuild-arg GREETING=hello world\nbuild-arg EMPTY=\nbuild-arg UNSET\ntarget build\nnetwork none\nbase case parent\n",
        )
        .unwrap();
        assert_eq!(
            options,
            CaseOptions {
                build_args: vec![
                    ("GREETING".into(), Some("hello world".into())),
                    ("EMPTY".into(), Some(String::new())),
                    ("UNSET".into(), None),
                ],
                target: Some("build".into()),
                network: NetworkMode::None,
                base: BaseChoice::Case("parent".into()),
            }
        );
        assert_eq!(
            parse_options("base remote").unwrap().base,
            BaseChoice::Remote
        );
        assert_eq!(parse_options("").unwrap(), CaseOptions::default());
    }

    #[test]
    fn bad_options_name_their_line() {
        let err = parse_options("target x\nfrobnicate 1\n").unwrap_err();
        assert_eq!(err.to_string(), "line 2: unknown option \"frobnicate 1\"");
        assert!(
            parse_options("target")
                .unwrap_err()
                .to_string()
                .contains("needs a value")
        );
        assert!(parse_options("base case").is_err());
        assert!(parse_options("network bridge").is_err());
        assert!(parse_options("build-arg =x").is_err());
    }

    fn case(name: &str, base: BaseChoice) -> Case {
        Case {
            name: name.into(),
            dir: PathBuf::from(name),
            options: CaseOptions {
                base,
                ..CaseOptions::default()
            },
        }
    }

    #[test]
    fn base_cases_come_first() {
        let cases = vec![
            case("a-child", BaseChoice::Case("z-parent".into())),
            case("b", BaseChoice::Local),
            case("z-parent", BaseChoice::Local),
        ];
        let ordered = order_by_base(cases).unwrap();
        let names: Vec<&str> = ordered.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["b", "z-parent", "a-child"]);
    }

    #[test]
    fn loops_and_unknown_bases_fail() {
        let looped = vec![
            case("a", BaseChoice::Case("b".into())),
            case("b", BaseChoice::Case("a".into())),
        ];
        assert!(order_by_base(looped).is_err());
        assert!(order_by_base(vec![case("a", BaseChoice::Case("x".into()))]).is_err());
    }

    #[test]
    fn selecting_a_child_selects_its_parent() {
        let cases = vec![
            case("b", BaseChoice::Local),
            case("parent", BaseChoice::Local),
            case("child", BaseChoice::Case("parent".into())),
        ];
        let chosen = select(cases.clone(), &["child".into()]).unwrap();
        let names: Vec<&str> = chosen.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["parent", "child"]);
        assert_eq!(select(cases.clone(), &[]).unwrap().len(), 3);
        assert!(select(cases, &["nope".into()]).is_err());
    }

    #[test]
    fn dockerfiles_get_their_base() {
        assert_eq!(
            render_dockerfile(
                "COPY --from={{BASE}} /bin /x\n",
                "127.0.0.1:5000/busybox:latest"
            ),
            "COPY --from=127.0.0.1:5000/busybox:latest /bin /x\n"
        );
    }

    #[test]
    fn the_committed_cases_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance/buildkit");
        let cases = load_cases(&dir).unwrap();
        assert!(cases.len() >= 15, "{} cases", cases.len());
    }
}
