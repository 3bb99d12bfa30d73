//! `cargo xtask bench`: inlay against `docker build` (docker 20.10's BuildKit) on the same
//! machine, the same contexts and the same base image.
//!
//! Three generated contexts ([`contexts`]): a small multi-stage build, one COPY of a large
//! context (20,000 files, about 200 MB), and 40 sequential RUN steps. For each, in one run:
//!
//! - cold: inlay with a fresh store, and `docker build` after `docker rmi` of every image and
//!   `docker builder prune -af`, so both pull the busybox base from the registry;
//! - cached: each tool first builds and pushes with its inline cache (inlay
//!   `--cache-to type=inline`, docker `--build-arg BUILDKIT_INLINE_CACHE=1`), its local state is
//!   wiped, and the measured job rebuilds with `--cache-from` and pushes again (the CI job).
//!
//! Figures: wall time, peak summed RSS of the process tree ([`memory`]; for docker the client,
//! dockerd, containerd and runc, minus dockerd's and containerd's idle RSS before the build)
//! and bytes fetched from the registry (its access log, [`fetched`]). The median of `--runs`
//! goes to a table, printed and written to `target/bench/report.md`. The bench is not part of
//! `cargo xtask test`: it takes minutes, and timings never belong in tests.

mod contexts;
mod fetched;
mod memory;
mod table;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::conformance::engine::{self, Engine};
use crate::conformance::processes::{self, ScratchDir};
use contexts::{BenchContext, Sizes};
use fetched::AccessLog;
use table::{Figures, Row};

const USAGE: &str = "usage: cargo xtask bench [--runs N] [--quick] [--keep]\n\
    \x20 --runs N  measure N times and report the median (default 1)\n\
    \x20 --quick   small contexts (2,000 files of 20 MB, 10 RUN steps): a smoke run\n\
    \x20 --keep    keep the scratch directory (contexts, stores, dockerd state)";

#[derive(Debug, PartialEq, Eq)]
struct Options {
    runs: usize,
    quick: bool,
    keep: bool,
}

fn parse_args(args: &[String]) -> Result<Options> {
    let mut options = Options {
        runs: 1,
        quick: false,
        keep: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => {
                options.runs = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .with_context(|| format!("--runs needs a positive number\n{USAGE}"))?;
            }
            "--quick" => options.quick = true,
            "--keep" => options.keep = true,
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(options)
}

/// Runs `cargo xtask bench ARGS`.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let options = parse_args(args)?;
    processes::install_interrupt_handler()?;
    crate::packages::ensure(&crate::packages::DOCKER_PACKAGES)?;
    crate::packages::ensure(&crate::packages::TEST_PACKAGES)?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    eprintln!("xtask: bench: building inlay (release)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    engine::run(
        "cargo build --release -p inlay",
        Command::new(cargo)
            .current_dir(root)
            .env("CARGO_TARGET_DIR", &target)
            .args(["build", "--release", "--quiet", "-p", "inlay"]),
    )?;
    let inlay = target.join("release/inlay");
    let out = target.join("bench");
    std::fs::create_dir_all(out.join("logs"))
        .with_context(|| format!("creating {}", out.display()))?;

    let mut scratch = ScratchDir::new("inlay-bench")?;
    if options.keep {
        scratch.keep();
    }
    let sizes = if options.quick {
        Sizes::QUICK
    } else {
        Sizes::FULL
    };
    let generated = Instant::now();
    let contexts = contexts::generate(&scratch.path().join("contexts"), sizes)?;
    eprintln!(
        "xtask: bench: contexts generated in {:.1}s",
        generated.elapsed().as_secs_f64()
    );

    let mut engine = Engine::start()?;
    if options.keep {
        engine.keep_scratch();
    }
    let (base, _) = engine.make_base()?;
    let bench = Bench {
        dockerd: dockerd_pid(&engine)?,
        log: AccessLog::new(&engine.scratch().join("registry.log")),
        engine: &engine,
        inlay: &inlay,
        base: &base,
        stores: scratch.path().join("stores"),
        logs: out.join("logs"),
    };
    let mut rows = Vec::new();
    for context in &contexts {
        let mut samples: [Vec<(Figures, Figures)>; 2] = [Vec::new(), Vec::new()];
        for run in 1..=options.runs {
            processes::park_if_interrupted();
            eprintln!("xtask: bench: {} run {run}/{}", context.name, options.runs);
            let cold = bench.cold(context)?;
            progress(context, "cold", &cold);
            samples[0].push(cold);
            let cached = bench.cached(context)?;
            progress(context, "cached", &cached);
            samples[1].push(cached);
        }
        for (scenario, runs) in ["cold", "cached"].into_iter().zip(samples) {
            rows.push(Row::median(context, scenario, &runs));
        }
    }
    processes::park_if_interrupted();
    drop(engine);

    let report = table::render(
        &rows,
        &table::Setup {
            runs: options.runs,
            quick: options.quick,
            cores: std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
            inlay_commit: git_head(root),
            docker: docker_version(),
        },
    );
    let path = out.join("report.md");
    std::fs::write(&path, &report).with_context(|| format!("writing {}", path.display()))?;
    println!("{report}");
    println!(
        "written to {}; build logs in {}",
        path.display(),
        out.join("logs").display()
    );
    Ok(())
}

/// One line per measured pair, as it comes.
fn progress(context: &BenchContext, scenario: &str, (inlay, docker): &(Figures, Figures)) {
    eprintln!(
        "xtask: bench: {} {scenario}: inlay {:.2}s {:.0} MiB {:.2} MiB fetched ({} steps cached), \
         docker {:.2}s {:.0} MiB {:.2} MiB fetched ({} steps cached)",
        context.name,
        inlay.wall.as_secs_f64(),
        contexts::mib(inlay.peak),
        contexts::mib(inlay.fetched),
        inlay.hits,
        docker.wall.as_secs_f64(),
        contexts::mib(docker.peak),
        contexts::mib(docker.fetched),
        docker.hits,
    );
}

/// What the measurements share.
struct Bench<'a> {
    engine: &'a Engine,
    inlay: &'a Path,
    base: &'a str,
    dockerd: u32,
    log: AccessLog,
    stores: PathBuf,
    logs: PathBuf,
}

impl Bench<'_> {
    /// Cold builds: `(inlay, docker)`.
    fn cold(&self, context: &BenchContext) -> Result<(Figures, Figures)> {
        let store = self.fresh_store("cold")?;
        let mut command = self.inlay_build(&store, context);
        command.arg(&context.dir);
        let inlay = self.measure_inlay(command, &format!("{}-cold-inlay", context.name))?;
        let _ = std::fs::remove_dir_all(&store);

        self.docker_reset()?;
        let mut command = self.docker_build(context);
        command
            .args(["-t", &format!("bench-{}:cold", context.name)])
            .arg(&context.dir);
        let docker =
            self.measure_docker(vec![command], &format!("{}-cold-docker", context.name))?;
        self.docker_reset()?;
        Ok((inlay, docker))
    }

    /// Fully cached rebuilds after wiping local state: `(inlay, docker)`.
    fn cached(&self, context: &BenchContext) -> Result<(Figures, Figures)> {
        let image = format!("{}/inlay-{}:cache", self.engine.registry(), context.name);
        let seed_store = self.fresh_store("seed")?;
        let mut seed = self.inlay_build(&seed_store, context);
        seed.args(["--push", "-t", &image, "--cache-to", "type=inline"])
            .arg(&context.dir);
        self.run_logged(seed, &format!("{}-seed-inlay", context.name))?;
        let _ = std::fs::remove_dir_all(&seed_store);
        let store = self.fresh_store("cached")?;
        let mut command = self.inlay_build(&store, context);
        command
            .args(["--push", "-t", &image, "--cache-to", "type=inline"])
            .args(["--cache-from", &format!("type=registry,ref={image}")])
            .arg(&context.dir);
        let inlay = self.measure_inlay(command, &format!("{}-cached-inlay", context.name))?;
        let _ = std::fs::remove_dir_all(&store);

        let image = format!("{}/docker-{}:cache", self.engine.registry(), context.name);
        self.docker_reset()?;
        let mut seed = self.docker_build(context);
        seed.args(["--build-arg", "BUILDKIT_INLINE_CACHE=1", "-t", &image])
            .arg(&context.dir);
        self.run_logged(seed, &format!("{}-seed-docker", context.name))?;
        let mut push = self.engine.docker();
        push.args(["push", &image]);
        self.run_logged(push, &format!("{}-seed-docker-push", context.name))?;
        self.docker_reset()?;
        let mut build = self.docker_build(context);
        build
            .args(["--build-arg", "BUILDKIT_INLINE_CACHE=1", "-t", &image])
            .args(["--cache-from", &image])
            .arg(&context.dir);
        let mut push = self.engine.docker();
        push.args(["push", &image]);
        let docker = self.measure_docker(
            vec![build, push],
            &format!("{}-cached-docker", context.name),
        )?;
        self.docker_reset()?;
        Ok((inlay, docker))
    }

    fn fresh_store(&self, name: &str) -> Result<PathBuf> {
        let store = self.stores.join(name);
        if store.exists() {
            std::fs::remove_dir_all(&store)
                .with_context(|| format!("wiping {}", store.display()))?;
        }
        Ok(store)
    }

    /// `inlay build` with plain progress, the store and the base; the caller adds the rest.
    fn inlay_build(&self, store: &Path, context: &BenchContext) -> Command {
        let mut command = Command::new(self.inlay);
        command
            .args(["build", "--progress", "plain", "--root"])
            .arg(store)
            .arg("--build-arg")
            .arg(format!("BASE={}", self.base))
            .arg("-f")
            .arg(context.dir.join("Dockerfile"))
            .stdin(Stdio::null());
        command
    }

    /// `docker build` with plain progress and the base; the caller adds the rest.
    fn docker_build(&self, context: &BenchContext) -> Command {
        let mut command = self.engine.docker();
        command
            .args(["build", "--progress=plain", "--build-arg"])
            .arg(format!("BASE={}", self.base))
            .arg("-f")
            .arg(context.dir.join("Dockerfile"));
        command
    }

    /// Every image gone, then docker's build cache (in this order: pruning first leaves records
    /// the images still hold).
    fn docker_reset(&self) -> Result<()> {
        let listed = engine::run(
            "docker images",
            self.engine.docker().args(["images", "--all", "--quiet"]),
        )?;
        let ids: Vec<String> = String::from_utf8_lossy(&listed.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        if !ids.is_empty() {
            engine::run(
                "docker rmi",
                self.engine.docker().args(["rmi", "--force"]).args(&ids),
            )?;
        }
        engine::run(
            "docker builder prune",
            self.engine
                .docker()
                .args(["builder", "prune", "--all", "--force"]),
        )?;
        Ok(())
    }

    /// Runs an unmeasured command, its output into the logs.
    fn run_logged(&self, mut command: Command, name: &str) -> Result<String> {
        let log = self.logs.join(format!("{name}.log"));
        let child = spawn(&mut command, &log)?;
        finish(child, &log, name)
    }

    fn measure_inlay(&self, mut command: Command, name: &str) -> Result<Figures> {
        let log = self.logs.join(format!("{name}.log"));
        let mark = self.log.mark();
        let started = Instant::now();
        let child = spawn(&mut command, &log)?;
        let sampler = memory::Sampler::start(&[child.id()]);
        let result = finish(child, &log, name);
        let wall = started.elapsed();
        let peak = sampler.stop();
        let text = result?;
        let (fetched, requests) = self.log.fetched_since(mark);
        Ok(Figures {
            wall,
            peak,
            fetched,
            requests,
            hits: inlay_hits(&text),
        })
    }

    /// Runs `commands` one after the other as one measured job.
    fn measure_docker(&self, commands: Vec<Command>, name: &str) -> Result<Figures> {
        let idle = self.dockerd_idle();
        let mark = self.log.mark();
        let sampler = memory::Sampler::start(&[self.dockerd]);
        let started = Instant::now();
        let mut texts = String::new();
        for (i, mut command) in commands.into_iter().enumerate() {
            let log = self.logs.join(format!("{name}-{i}.log"));
            let child = spawn(&mut command, &log)?;
            sampler.add_root(child.id());
            texts.push_str(&finish(child, &log, name)?);
        }
        let wall = started.elapsed();
        let peak = sampler.stop();
        let (fetched, requests) = self.log.fetched_since(mark);
        Ok(Figures {
            wall,
            peak: peak.saturating_sub(idle),
            fetched,
            requests,
            hits: docker_hits(&texts),
        })
    }

    /// dockerd's and containerd's RSS at rest: the largest of a few samples.
    fn dockerd_idle(&self) -> u64 {
        std::thread::sleep(Duration::from_millis(500));
        (0..10)
            .map(|_| {
                std::thread::sleep(memory::PERIOD);
                memory::tree_rss(&[self.dockerd])
            })
            .max()
            .unwrap_or(0)
    }
}

fn spawn(command: &mut Command, log: &Path) -> Result<std::process::Child> {
    let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    command
        .stdout(file.try_clone().context("duplicating a log file")?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("starting {command:?}"))
}

/// Waits for `child`; its log's text, or an error with its tail.
fn finish(mut child: std::process::Child, log: &Path, name: &str) -> Result<String> {
    let status = child
        .wait()
        .with_context(|| format!("waiting for {name}"))?;
    let text = std::fs::read_to_string(log).unwrap_or_default();
    if !status.success() {
        bail!(
            "{name} failed ({status}); {} ends:\n{}",
            log.display(),
            engine::tail(&text, 25)
        );
    }
    Ok(text)
}

/// `X/Y` from inlay's summary line `inlay: X of Y steps cached, ...`.
fn inlay_hits(text: &str) -> String {
    text.lines()
        .find(|l| l.contains(" steps cached, "))
        .and_then(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            Some(format!("{}/{}", words.get(1)?, words.get(3)?))
        })
        .unwrap_or_else(|| "?".to_owned())
}

/// `X/Y`: Dockerfile steps (RUN, COPY, ADD, WORKDIR) BuildKit's plain progress marks `CACHED`.
fn docker_hits(text: &str) -> String {
    let mut steps = std::collections::BTreeMap::new();
    for line in text.lines() {
        let Some((id, rest)) = line.split_once(' ') else {
            continue;
        };
        if !id.starts_with('#') {
            continue;
        }
        if let Some((_, instruction)) = rest.strip_prefix('[').and_then(|r| r.split_once("] ")) {
            let word = instruction.split_whitespace().next().unwrap_or_default();
            if ["RUN", "COPY", "ADD", "WORKDIR"].contains(&word) && !rest.starts_with("[internal]")
            {
                steps.entry(id.to_owned()).or_insert(false);
            }
        } else if rest.trim() == "CACHED" {
            if let Some(cached) = steps.get_mut(id) {
                *cached = true;
            }
        }
    }
    format!("{}/{}", steps.values().filter(|c| **c).count(), steps.len())
}

fn dockerd_pid(engine: &Engine) -> Result<u32> {
    let path = engine.scratch().join("dockerd.pid");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    text.trim()
        .parse()
        .with_context(|| format!("parsing {} ({text:?})", path.display()))
}

fn git_head(root: &Path) -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn docker_version() -> String {
    Command::new(engine::DOCKER)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn arguments_parse() {
        assert_eq!(
            parse_args(&[]).unwrap(),
            Options {
                runs: 1,
                quick: false,
                keep: false
            }
        );
        let options = parse_args(&args(&["--runs", "3", "--quick"])).unwrap();
        assert_eq!((options.runs, options.quick), (3, true));
        assert!(parse_args(&args(&["--runs", "0"])).is_err());
        assert!(parse_args(&args(&["--runs"])).is_err());
        assert!(parse_args(&args(&["--fast"])).is_err());
    }

    #[test]
    fn hits_are_counted() {
        assert_eq!(
            inlay_hits("x\ninlay: 3 of 5 steps cached, 2 run, 10 bytes pulled\n"),
            "3/5"
        );
        assert_eq!(inlay_hits("nothing"), "?");
        let docker = "#1 [internal] load build definition\n\
                      #5 [2/3] RUN echo hi\n\
                      #5 CACHED\n\
                      #6 [3/3] COPY a /a\n\
                      #6 DONE 0.1s\n";
        assert_eq!(docker_hits(docker), "1/2");
    }
}
