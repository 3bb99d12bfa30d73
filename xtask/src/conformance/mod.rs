//! `cargo xtask conformance buildkit`: a differential suite against real BuildKit.
//!
//! Every case under `conformance/buildkit/` is built by docker 20.10 (embedded BuildKit v0.8)
//! with the inline cache on, pushed to a private registry and read back; its records are then
//! compared with the records `inlay_builder::plan` computes for the same inputs, through the
//! [`seam`] ([`inlay_plan`] is inlay's side). Each case's inputs and docker's outputs are kept
//! under `target/conformance/buildkit/<case>/`. Then [`both_ways`] runs the real `inlay build`
//! against docker's pushed image (BuildKit → inlay) and docker against inlay's (inlay →
//! BuildKit). Last, [`interop`] hands inlay's images of `examples/` to the same docker engine
//! (`docker load`, `docker pull`, run, inspect); `cargo xtask conformance interop` runs only that.
//!
//! The suite needs root (packages, dockerd) and takes about two minutes; it is the last step
//! of `cargo xtask test`.

mod both_ways;
mod cases;
mod compare;
mod docker_build;
pub(crate) mod engine;
mod filesystems;
mod image_roots;
mod inlay_plan;
mod interop;
pub(crate) mod processes;
mod registry_http;
pub mod seam;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use inlay_core::Platform;
use inlay_core::cachekey::KeyProfile;

use crate::conformance::docker_build::{BaseImage, DockerBuild};
use crate::conformance::engine::Engine;
use crate::conformance::filesystems::{DockerFilesystems, Filesystems};
use crate::conformance::seam::{CaseInput, DockerTimes, RecordSource, SeamError};

const USAGE: &str = "usage: cargo xtask conformance buildkit [--case NAME]... [--keep] [--unpack STAGE]... [--docker-only]\n\
    \x20      cargo xtask conformance interop [--keep]\n\
    \x20 --case NAME     run only this case (and the case it takes its base from); repeatable\n\
    \x20 --keep          keep the scratch directory (dockerd and registry state and logs)\n\
    \x20 --unpack STAGE  also unpack the named stage's filesystem as docker built it into\n\
    \x20                 target/conformance/buildkit/<case>/filesystems/ (for content-key diffs)\n\
    \x20 --docker-only   build and check docker's side only; compare nothing";

/// Runs `cargo xtask conformance ARGS`.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("buildkit") => {
            let options = parse_args(&args[1..])?;
            if options.docker_only {
                buildkit(root, &options, &seam::DockerOnly)
            } else {
                buildkit(root, &options, &inlay_plan::InlayPlanner)
            }
        }
        Some("interop") => match &args[1..] {
            [] => interop::standalone(root, false),
            [keep] if keep == "--keep" => interop::standalone(root, true),
            _ => bail!("{USAGE}"),
        },
        _ => bail!("{USAGE}"),
    }
}

/// The suite as the last step of `cargo xtask test`. It needs root (it installs `docker.io` and
/// starts a private dockerd): without root it is skipped with a note, except in CI (`CI` set, as
/// CI services do), where it must run, so not being root is an error there.
pub fn test_step(root: &Path) -> Result<()> {
    if !running_as_root() {
        if in_ci() {
            bail!(
                "CI must run the buildkit conformance suite, but it needs root (it installs \
                 docker.io and starts dockerd): run `cargo xtask test` as root in CI"
            );
        }
        eprintln!(
            "xtask: conformance buildkit: SKIPPED, not root (it installs docker.io and starts a \
             private dockerd); run `sudo cargo xtask conformance buildkit`"
        );
        return Ok(());
    }
    run(root, &["buildkit".to_owned()])
}

fn running_as_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Whether this runs under a CI service: `CI` set to anything but empty, `0` or `false`.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| ci_value_is_set(&v))
}

fn ci_value_is_set(value: &str) -> bool {
    !matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "" | "0" | "false"
    )
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Options {
    only: Vec<String>,
    keep: bool,
    unpack: Vec<String>,
    docker_only: bool,
}

fn parse_args(args: &[String]) -> Result<Options> {
    let mut options = Options::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--case" => match args.next() {
                Some(name) => options.only.push(name.clone()),
                None => bail!("--case needs a name\n{USAGE}"),
            },
            "--keep" => options.keep = true,
            "--docker-only" => options.docker_only = true,
            "--unpack" => match args.next() {
                Some(stage) => options.unpack.push(stage.clone()),
                None => bail!("--unpack needs a stage name\n{USAGE}"),
            },
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(options)
}

/// How one case ended.
enum Outcome {
    Passed,
    Mismatch,
    NotCompared,
    InlayFailed(String),
    DockerFailed,
    HarnessCheckFailed(Vec<String>),
}

impl Outcome {
    fn describe(&self) -> String {
        match self {
            Outcome::Passed => "inlay matches".to_owned(),
            Outcome::Mismatch => "inlay DIFFERS (diff above)".to_owned(),
            Outcome::NotCompared => "not compared".to_owned(),
            Outcome::InlayFailed(err) => format!("inlay failed: {err}"),
            Outcome::DockerFailed => "docker failed".to_owned(),
            Outcome::HarnessCheckFailed(problems) => {
                format!(
                    "recorded base facts contradict docker: {}",
                    problems.join("; ")
                )
            }
        }
    }
}

/// Where the suite's time went.
#[derive(Default)]
struct Timings {
    install: Duration,
    start: Duration,
    base: Duration,
    cases: Duration,
    docker_build: Duration,
    both_ways: Duration,
    stop: Duration,
    total: Duration,
}

fn platform() -> Platform {
    match std::env::consts::ARCH {
        "aarch64" => Platform::new("linux", "arm64", ""),
        _ => Platform::linux_amd64(),
    }
}

fn buildkit(root: &Path, options: &Options, source: &dyn RecordSource) -> Result<()> {
    let suite_start = Instant::now();
    let mut timings = Timings::default();
    processes::install_interrupt_handler()?;
    let cases = cases::select(
        cases::load_cases(&root.join("conformance/buildkit"))?,
        &options.only,
    )?;

    let install_start = Instant::now();
    crate::packages::ensure(&crate::packages::DOCKER_PACKAGES)?;
    if !Path::new(engine::DOCKER).is_file() {
        bail!("{} is missing; install Debian's docker.io", engine::DOCKER);
    }
    timings.install = install_start.elapsed();

    let out = output_dir(root);
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("clearing {}", out.display()))?;
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    let start = Instant::now();
    let mut engine = Engine::start()?;
    if options.keep {
        engine.keep_scratch();
    }
    timings.start = start.elapsed();
    eprintln!(
        "xtask: dockerd and registry {} up in {:.1}s (scratch {})",
        engine.registry(),
        timings.start.as_secs_f64(),
        engine.scratch().display()
    );

    let base_start = Instant::now();
    let (reference, image) = engine.make_base()?;
    let base = BaseImage { reference, image };
    timings.base = base_start.elapsed();
    eprintln!(
        "xtask: base image {} ({}) in {:.1}s",
        base.reference,
        base.image.manifest_digest,
        timings.base.as_secs_f64()
    );

    // BuildKit-compatible both ways (see `both_ways`), with the real `inlay build`.
    let inlay = if options.docker_only {
        None
    } else {
        Some(both_ways::build_inlay(root, &target_dir(root))?)
    };
    let cases_start = Instant::now();
    let mut both = BothWays::default();
    let outcomes = run_cases(
        &engine,
        &base,
        &cases,
        source,
        &options.unpack,
        &out,
        &mut timings,
        inlay.as_deref().map(|i| (i, &mut both)),
    );
    timings.cases = cases_start.elapsed();
    // Docker interop on the same engine, when the whole suite runs with inlay.
    let interop = match inlay.as_deref() {
        Some(inlay) if options.only.is_empty() => Some(interop::run_all(
            inlay,
            &engine,
            &base.reference,
            root,
            &out.join("interop"),
        )),
        _ => None,
    };
    processes::park_if_interrupted();
    let stop_start = Instant::now();
    drop(engine);
    timings.stop = stop_start.elapsed();
    timings.total = suite_start.elapsed();
    let reported = report(&outcomes, &both, source, &timings, &out);
    match interop {
        Some(results) => reported.and(interop::report(&results)),
        None => reported,
    }
}

/// The results of the both-ways checks: passes and failures per direction.
#[derive(Default)]
struct BothWays {
    from_buildkit: Vec<(String, Result<String, String>)>,
    from_inlay: Vec<(String, Result<String, String>)>,
}

#[expect(
    clippy::too_many_arguments,
    reason = "the suite's state, passed down once"
)]
fn run_cases(
    engine: &Engine,
    base: &BaseImage,
    cases: &[cases::Case],
    source: &dyn RecordSource,
    unpack: &[String],
    out: &Path,
    timings: &mut Timings,
    mut both: Option<(&Path, &mut BothWays)>,
) -> Vec<(String, Outcome)> {
    let platform = platform();
    let mut outcomes = Vec::new();
    for case in cases {
        processes::park_if_interrupted();
        let case_out = out.join(&case.name);
        let docker = match docker_build::build(engine, base, case, &case_out) {
            Ok(docker) => docker,
            Err(err) => {
                // The interrupt handler may be stopping dockerd under this build.
                processes::park_if_interrupted();
                eprintln!("xtask: case {}: docker: {err:#}", case.name);
                outcomes.push((case.name.clone(), Outcome::DockerFailed));
                continue;
            }
        };
        timings.docker_build += docker.build_time;
        let filesystems = DockerFilesystems::new(
            engine,
            Box::new(|| {
                docker_build::build_command(
                    engine,
                    case,
                    &docker.dockerfile_path,
                    &docker.base_reference,
                )
                .0
            }),
            &case.dir,
            &case_out.join("filesystems"),
        );
        let (found, outcome) = match image_roots::check(&docker.images, &platform, &docker.records)
        {
            Ok(roots) if roots.problems.is_empty() => (
                roots.found.join(", "),
                compare_case(case, &docker, &platform, source, &filesystems, &case_out),
            ),
            Ok(roots) => (
                roots.found.join(", "),
                Outcome::HarnessCheckFailed(roots.problems),
            ),
            Err(err) => (
                String::new(),
                Outcome::HarnessCheckFailed(vec![format!("{err:#}")]),
            ),
        };
        for stage in unpack {
            match filesystems.stage(stage) {
                Ok(dir) => eprintln!(
                    "xtask: case {}: stage {stage} unpacked in {}",
                    case.name,
                    dir.display()
                ),
                Err(err) => eprintln!(
                    "xtask: case {}: stage {stage} not unpacked: {err:#}",
                    case.name
                ),
            }
        }
        eprintln!(
            "xtask: case {}: docker {:.1}s, {} records, {} layers, image roots [{found}]: {}",
            case.name,
            docker.build_time.as_secs_f64(),
            docker.records.len(),
            docker.image.manifest_view.layers.len(),
            outcome.describe()
        );
        outcomes.push((case.name.clone(), outcome));
        if let Some((inlay, both)) = both.as_mut() {
            let started = Instant::now();
            let result = both_ways::inlay_from_buildkit(inlay, engine, case, &docker, &case_out)
                .map_err(|e| format!("{e:#}"));
            eprintln!(
                "xtask: case {}: buildkit -> inlay: {}",
                case.name,
                result.as_ref().unwrap_or_else(|e| e)
            );
            both.from_buildkit.push((case.name.clone(), result));
            if both_ways::INLAY_PUSHED.contains(&case.name.as_str()) {
                let result =
                    both_ways::buildkit_from_inlay(inlay, engine, case, &docker, &case_out)
                        .map_err(|e| format!("{e:#}"));
                eprintln!(
                    "xtask: case {}: inlay -> buildkit: {}",
                    case.name,
                    result.as_ref().unwrap_or_else(|e| e)
                );
                both.from_inlay.push((case.name.clone(), result));
            }
            timings.both_ways += started.elapsed();
        }
    }
    outcomes
}

fn report(
    outcomes: &[(String, Outcome)],
    both: &BothWays,
    source: &dyn RecordSource,
    timings: &Timings,
    out: &Path,
) -> Result<()> {
    let count = |f: fn(&Outcome) -> bool| outcomes.iter().filter(|(_, o)| f(o)).count();
    let passed = count(|o| matches!(o, Outcome::Passed));
    let not_compared = count(|o| matches!(o, Outcome::NotCompared));
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|(_, o)| !matches!(o, Outcome::Passed | Outcome::NotCompared))
        .map(|(name, o)| format!("{name} ({})", o.describe()))
        .collect();
    println!(
        "conformance buildkit (docker 20.10, {}): {} cases, inlay source: {}",
        KeyProfile::BuildkitV08,
        outcomes.len(),
        source.name()
    );
    println!(
        "  {passed} match, {not_compared} not compared, {} failed",
        failed.len()
    );
    for failure in &failed {
        println!("    {failure}");
    }
    let mut both_failed = 0;
    for (direction, results) in [
        (
            "buildkit -> inlay (--cache-from docker's image)",
            &both.from_buildkit,
        ),
        (
            "inlay -> buildkit (docker --cache-from inlay's image)",
            &both.from_inlay,
        ),
    ] {
        if results.is_empty() {
            continue;
        }
        let failures: Vec<&String> = results
            .iter()
            .filter(|(_, r)| r.is_err())
            .map(|(n, _)| n)
            .collect();
        let excepted = results
            .iter()
            .filter(|(_, r)| r.as_ref().is_ok_and(|t| t.contains("(expected")))
            .count();
        both_failed += failures.len();
        println!(
            "  {direction}: {} full hit, {excepted} expected exceptions, {} failed{}",
            results.len() - excepted - failures.len(),
            failures.len(),
            if failures.is_empty() {
                String::new()
            } else {
                format!(
                    ": {}",
                    failures
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
    }
    println!(
        "  time: {:.1}s total: packages {:.1}s, dockerd/registry start {:.1}s, base image {:.1}s, cases {:.1}s (of which docker build {:.1}s, both ways {:.1}s), dockerd stop {:.1}s",
        timings.total.as_secs_f64(),
        timings.install.as_secs_f64(),
        timings.start.as_secs_f64(),
        timings.base.as_secs_f64(),
        timings.cases.as_secs_f64(),
        timings.docker_build.as_secs_f64(),
        timings.both_ways.as_secs_f64(),
        timings.stop.as_secs_f64()
    );
    println!("  docker's inputs and outputs: {}", out.display());
    if !failed.is_empty() {
        bail!("{} of {} cases failed", failed.len(), outcomes.len())
    }
    if both_failed > 0 {
        bail!("{both_failed} both-ways checks failed (lines above)")
    }
    Ok(())
}

fn compare_case(
    case: &cases::Case,
    docker: &DockerBuild,
    platform: &Platform,
    source: &dyn RecordSource,
    filesystems: &dyn Filesystems,
    out: &Path,
) -> Outcome {
    let times = DockerTimes::of(&docker.records);
    let input = CaseInput {
        context: &case.dir,
        dockerfile: docker.dockerfile.as_bytes(),
        build_args: &docker.build_args,
        target: case.options.target.as_deref(),
        platform,
        network: case.options.network,
        profile: KeyProfile::BuildkitV08,
        images: &docker.images,
        image_layers: &docker.image.manifest_view.layers,
        times: &times,
        filesystems,
    };
    match source.records(&input) {
        Err(SeamError::Skipped) => Outcome::NotCompared,
        Err(SeamError::Failed(err)) => Outcome::InlayFailed(format!("{err:#}")),
        Ok(inlay) => {
            let _ = std::fs::write(out.join("inlay-records.json"), inlay.graph.to_json());
            let comparison = compare::compare(&docker.records, &inlay);
            let report = compare::render(&case.name, &comparison);
            let _ = std::fs::write(out.join("diff.txt"), &report);
            if comparison.passed() {
                Outcome::Passed
            } else {
                println!("{report}");
                Outcome::Mismatch
            }
        }
    }
}

/// `target/conformance/buildkit` (or under `CARGO_TARGET_DIR`).
fn output_dir(root: &Path) -> PathBuf {
    target_dir(root).join("conformance/buildkit")
}

/// `target` (or `CARGO_TARGET_DIR`).
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn arguments_parse() {
        assert_eq!(parse_args(&[]).unwrap(), Options::default());
        assert_eq!(
            parse_args(&args(&["--case", "a", "--keep", "--case", "b"])).unwrap(),
            Options {
                only: args(&["a", "b"]),
                keep: true,
                unpack: Vec::new(),
                docker_only: false,
            }
        );
        assert!(parse_args(&args(&["--case"])).is_err());
        assert!(parse_args(&args(&["--fast"])).is_err());
        assert_eq!(
            parse_args(&args(&["--unpack", "builder"])).unwrap().unpack,
            ["builder"]
        );
        assert!(parse_args(&args(&["--unpack"])).is_err());
        assert!(parse_args(&args(&["--docker-only"])).unwrap().docker_only);
    }

    #[test]
    fn ci_values() {
        for set in ["true", "1", "yes", "TRUE"] {
            assert!(ci_value_is_set(set), "{set}");
        }
        for unset in ["", "0", "false", "False", " "] {
            assert!(!ci_value_is_set(unset), "{unset:?}");
        }
    }
}
