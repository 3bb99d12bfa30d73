//! "BuildKit-compatible both ways", checked with the real tools rather than with records.
//!
//! - BuildKit → inlay: after docker pushed a case, `inlay build` of the same inputs with a
//!   fresh store and `--cache-from` that image must take every step from its inline cache.
//!   BuildKit's inline cache only holds the steps in the final image's chain (spec section 3:
//!   the export walks the result's own records), so a multi-stage case can only hit its final
//!   stage's steps; such cases, and the ones inlay cannot build yet, are listed in
//!   [`EXCEPTIONS`] with the reason, never skipped silently.
//! - inlay → BuildKit: for [`INLAY_PUSHED`], `inlay build --push --cache-to type=inline`, then
//!   docker's build cache and the case's image are dropped and docker builds the case again
//!   with `--cache-from` inlay's image: every RUN/COPY/ADD/WORKDIR step must print `CACHED`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::conformance::cases::Case;
use crate::conformance::docker_build::{self, DockerBuild};
use crate::conformance::engine::{self, Engine};

/// What BuildKit → inlay can reach for a case that is not a full hit, and why.
pub enum Exception {
    /// Exactly this many of the steps are cached.
    Cached(usize, &'static str),
}

/// The cases where BuildKit → inlay is not a full hit, with the reason. Every case inlay
/// builds today; none is left out.
pub const EXCEPTIONS: &[(&str, Exception)] = &[
    (
        "copy-from-image",
        Exception::Cached(
            3,
            "stage tools (2 COPY) is not in the final image's chain, so not in its inline cache",
        ),
    ),
    (
        "multi-stage",
        Exception::Cached(
            5,
            "stages builder (3 steps) and helper (2) are not in the final image's chain",
        ),
    ),
    (
        "run-mount",
        Exception::Cached(
            8,
            "stage files (1 RUN, bind-mounted) is not in the final image's chain",
        ),
    ),
];

/// The cases inlay pushes and docker then builds from inlay's inline cache.
pub const INLAY_PUSHED: &[&str] = &["sample", "workdir", "run-chain-40", "user", "chown"];

/// `cargo build -p inlay`, once per suite; returns the binary.
pub fn build_inlay(root: &Path, target_dir: &Path) -> Result<PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    engine::run(
        "cargo build -p inlay",
        Command::new(cargo)
            .current_dir(root)
            .env("CARGO_TARGET_DIR", target_dir)
            .args(["build", "--quiet", "-p", "inlay"]),
    )?;
    Ok(target_dir.join("debug/inlay"))
}

/// `inlay build` of `case` with the same inputs docker had; the caller adds the rest.
fn inlay_command(inlay: &Path, case: &Case, docker: &DockerBuild, store: &Path) -> Command {
    let mut command = Command::new(inlay);
    command
        .args(["build", "--progress", "plain", "--root"])
        .arg(store)
        .arg("-f")
        .arg(&docker.dockerfile_path);
    for (name, value) in &docker.build_args {
        command.arg("--build-arg").arg(format!("{name}={value}"));
    }
    for (name, value) in &case.options.build_args {
        if value.is_none() {
            // As for docker: the name alone, from an environment that does not set it.
            command.env_remove(name).arg("--build-arg").arg(name);
        }
    }
    if let Some(target) = &case.options.target {
        command.args(["--target", target]);
    }
    if let Some(network) = case.options.network.flag() {
        command.args(["--network", network]);
    }
    command
}

/// Runs `command`, keeping its output in `log`; returns stderr, or the failure with its tail.
fn run_logged(what: &str, command: &mut Command, log: &Path) -> Result<String> {
    let output = command
        .output()
        .with_context(|| format!("running {what}"))?;
    let text = [output.stdout.as_slice(), output.stderr.as_slice()].concat();
    let text = String::from_utf8_lossy(&text).into_owned();
    let _ = std::fs::write(log, &text);
    if !output.status.success() {
        bail!(
            "{what} failed ({}); {} ends:\n{}",
            output.status,
            log.display(),
            engine::tail(&text, 25)
        );
    }
    Ok(text)
}

/// `(cached, total)` from inlay's summary line `inlay: X of Y steps cached, Z run, ...`.
fn summary_counts(text: &str) -> Option<(usize, usize)> {
    let line = text.lines().find(|l| l.contains(" steps cached, "))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let cached = words.get(1)?.parse().ok()?;
    let total = words.get(3)?.parse().ok()?;
    Some((cached, total))
}

/// BuildKit → inlay for one case; `Ok` describes the pass.
pub fn inlay_from_buildkit(
    inlay: &Path,
    engine: &Engine,
    case: &Case,
    docker: &DockerBuild,
    out: &Path,
) -> Result<String> {
    let expected = EXCEPTIONS
        .iter()
        .find(|(name, _)| *name == case.name)
        .map(|(_, e)| e);
    let store = out.join("inlay-store");
    let _ = std::fs::remove_dir_all(&store);
    let image = format!(
        "{}/{}:v1",
        engine.registry(),
        docker_build::repository(&case.name)
    );
    let mut command = inlay_command(inlay, case, docker, &store);
    command
        .args(["--cache-from", &image])
        .args(["--cache-to", "type=inline,profile=buildkit-v0.8"])
        .arg("--output")
        .arg(format!(
            "type=oci,dest={}",
            out.join("inlay-image.oci.tar").display()
        ))
        .arg(&case.dir);
    let log = out.join("inlay-from-buildkit.log");
    let text = run_logged("inlay build --cache-from", &mut command, &log);
    let _ = std::fs::remove_dir_all(&store);
    let text = text?;
    let Some((cached, total)) = summary_counts(&text) else {
        bail!(
            "no summary line in {}:\n{}",
            log.display(),
            engine::tail(&text, 25)
        );
    };
    match expected {
        None if cached == total => Ok(format!("{cached} of {total} steps cached")),
        Some(Exception::Cached(want, reason)) if cached == *want => Ok(format!(
            "{cached} of {total} steps cached (expected: {reason})"
        )),
        _ => bail!(
            "{cached} of {total} steps cached, expected {}; {} ends:\n{}",
            expected.map_or(total, |Exception::Cached(want, _)| *want),
            log.display(),
            engine::tail(&text, 25)
        ),
    }
}

/// inlay → BuildKit for one case; `Ok` describes the pass.
pub fn buildkit_from_inlay(
    inlay: &Path,
    engine: &Engine,
    case: &Case,
    docker: &DockerBuild,
    out: &Path,
) -> Result<String> {
    let store = out.join("inlay-push-store");
    let _ = std::fs::remove_dir_all(&store);
    let image = format!("{}/inlay-{}:v1", engine.registry(), case.name);
    let mut command = inlay_command(inlay, case, docker, &store);
    command
        .args(["--push", "-t", &image, "--cache-to", "type=inline"])
        .arg(&case.dir);
    let pushed = run_logged(
        "inlay build --push",
        &mut command,
        &out.join("inlay-push.log"),
    );
    let _ = std::fs::remove_dir_all(&store);
    pushed?;
    // Docker must find nothing of its own: no image of the case, then no build cache. In this
    // order: pruning first leaves records the image still held, which BuildKit v0.8 then
    // fails to load ("failed to load deleted cache") once the image is gone.
    let own = format!(
        "{}/{}:v1",
        engine.registry(),
        docker_build::repository(&case.name)
    );
    engine::run("docker rmi", engine.docker().args(["rmi", &own]))?;
    engine::run(
        "docker builder prune",
        engine
            .docker()
            .args(["builder", "prune", "--all", "--force"]),
    )?;
    let (mut command, _) = docker_build::build_command(
        engine,
        case,
        &docker.dockerfile_path,
        &docker.base_reference,
    );
    command.args(["--cache-from", &image]).arg(&case.dir);
    let log = out.join("docker-from-inlay.log");
    let text = run_logged("docker build --cache-from", &mut command, &log)?;
    let steps = plain_progress_steps(&text);
    let missing: Vec<&str> = steps
        .iter()
        .filter(|(_, s)| !s.hit())
        .map(|(id, _)| id.as_str())
        .collect();
    let quirks = steps.values().filter(|s| s.deleted_cache).count();
    if steps.is_empty() || !missing.is_empty() {
        bail!(
            "{} of {} steps CACHED, not: {}{}; {} ends:\n{}",
            steps.len() - missing.len(),
            steps.len(),
            missing.join(", "),
            if quirks > 0 {
                " (BuildKit v0.8 could not load a record: \"failed to load deleted cache\")"
            } else {
                ""
            },
            log.display(),
            engine::tail(&text, 25)
        );
    }
    Ok(format!("{} of {} steps CACHED", steps.len(), steps.len()))
}

/// What BuildKit's plain progress said of one Dockerfile step.
#[derive(Default, Debug, PartialEq, Eq)]
struct StepProgress {
    /// `#N CACHED`.
    cached: bool,
    /// `#N DONE <time>`: the step ran.
    done: bool,
    /// `#N ERROR: failed to load deleted cache`: BuildKit v0.8 prints it when loading a hit
    /// picks another record holding the same layers (see `inlay_core::cache::export`). inlay
    /// hides its other profile's results from v0.8 so this no longer happens: a step with the
    /// notice is not a hit.
    deleted_cache: bool,
}

impl StepProgress {
    /// Whether the step came from the cache: `CACHED`, and no v0.8 load failure.
    fn hit(&self) -> bool {
        self.cached && !self.deleted_cache
    }
}

/// From BuildKit's plain progress: the vertices that are Dockerfile steps (`#5 [2/4] RUN ...`)
/// and what was said of each.
fn plain_progress_steps(text: &str) -> BTreeMap<String, StepProgress> {
    let mut steps = BTreeMap::new();
    let mut said: Vec<(&str, &str)> = Vec::new();
    for line in text.lines() {
        let Some((id, rest)) = line.split_once(' ') else {
            continue;
        };
        if !id.starts_with('#') {
            continue;
        }
        said.push((id, rest.trim()));
        if let Some((_, instruction)) = rest.strip_prefix('[').and_then(|r| r.split_once("] ")) {
            let word = instruction.split_whitespace().next().unwrap_or_default();
            if ["RUN", "COPY", "ADD", "WORKDIR"].contains(&word) && !rest.starts_with("[internal]")
            {
                steps.insert(id.to_owned(), StepProgress::default());
            }
        }
    }
    for (id, rest) in said {
        if let Some(step) = steps.get_mut(id) {
            if rest == "CACHED" {
                step.cached = true;
            } else if rest.starts_with("DONE ") {
                step.done = true;
            } else if rest == "ERROR: failed to load deleted cache" {
                step.deleted_cache = true;
            }
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_parses() {
        let text = "x\ninlay: 3 of 5 steps cached, 2 run, 10 bytes pulled, 0 bytes pushed\n";
        assert_eq!(summary_counts(text), Some((3, 5)));
        assert_eq!(summary_counts("nothing"), None);
    }

    #[test]
    fn plain_progress_parses() {
        let text = "#1 [internal] load build definition from Dockerfile\n\
                    #4 [1/3] FROM r/busybox:latest\n\
                    #5 [2/3] RUN echo hi\n\
                    #5 CACHED\n\
                    #6 [stage-1 3/3] COPY a /a\n\
                    #6 DONE 0.1s\n\
                    #7 [stage-1 4/4] RUN x\n\
                    #7 ERROR: failed to load deleted cache\n";
        let steps = plain_progress_steps(text);
        assert_eq!(steps.keys().collect::<Vec<_>>(), ["#5", "#6", "#7"]);
        assert!(steps["#5"].cached && !steps["#5"].done);
        assert!(steps["#6"].done && !steps["#6"].cached);
        assert!(steps["#7"].deleted_cache && !steps["#7"].done);
    }
}
