//! Crash safety: `inlay build` and `inlay build --push --cache-from` killed with SIGKILL at
//! random moments (seeded), each followed by a build that must succeed and an
//! `inlay store verify` that must find the store consistent; at the end every blob the registry
//! stores matches its digest.
//!
//! CI runs a short loop; `cargo xtask crash-loop [--iterations N] [--seed S]` runs this same
//! test with `INLAY_CRASH_ITERATIONS` and `INLAY_CRASH_SEED` for the long one.

// Test code: a failed unwrap is a failed test, in helpers as in `#[test]` functions.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

#[path = "support/harden.rs"]
mod harden;

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use harden::{assert_ok, assert_registry_storage_verifies, assert_store_consistent, build_quiet};
use support::Fixture;

const DEFAULT_ITERATIONS: usize = 10;
const DEFAULT_SEED: u64 = 0x1a7_c0de;

const DOCKERFILE: &str = "\
ARG BASE
FROM $BASE
ARG ROUND=0
RUN mkdir -p /data && i=0; while [ $i -lt 200 ]; do echo \"$ROUND $i\" > /data/f$i; i=$((i+1)); done
COPY . /ctx
RUN wc -c /ctx/blob.bin > /size && echo $ROUND >> /size
";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Loop<'a> {
    root: &'a Path,
    ctx: &'a Path,
    base_arg: String,
    name: String,
}

impl Loop<'_> {
    fn args(&self, round: usize, push: bool) -> Vec<String> {
        let mut args = vec![
            "--build-arg".to_owned(),
            self.base_arg.clone(),
            "--build-arg".to_owned(),
            format!("ROUND={round}"),
        ];
        if push {
            args.extend([
                "-t".to_owned(),
                self.name.clone(),
                "--push".to_owned(),
                "--cache-to".to_owned(),
                "type=inline".to_owned(),
                "--cache-from".to_owned(),
                self.name.clone(),
            ]);
        }
        args.push(self.ctx.display().to_string());
        args
    }

    fn build(&self, round: usize, push: bool) -> std::process::Output {
        let args = self.args(round, push);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        build_quiet(self.root, &refs)
    }

    /// Starts a build and SIGKILLs it after `delay`; whether it had finished by then.
    fn kill_after(&self, round: usize, push: bool, delay: Duration) -> bool {
        let mut child = Command::new(harden::inlay_bin())
            .arg("build")
            .arg("--root")
            .arg(self.root)
            .args(["--progress", "plain"])
            .args(self.args(round, push))
            .env("SOURCE_DATE_EPOCH", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + delay;
        while Instant::now() < deadline {
            if child.try_wait().unwrap().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // `Child::kill` is SIGKILL: no destructor, no signal handler runs.
        let _ = child.kill();
        child.wait().unwrap();
        false
    }
}

#[test]
fn builds_killed_at_random_moments_leave_a_store_the_next_build_uses() {
    let iterations = env_or("INLAY_CRASH_ITERATIONS", DEFAULT_ITERATIONS);
    let seed = env_or("INLAY_CRASH_SEED", DEFAULT_SEED);
    let mut rng = fastrand::Rng::with_seed(seed);

    let Fixture {
        registry,
        work: _work,
        root,
        base,
        ctx,
    } = Fixture::new();
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    std::fs::write(ctx.join("blob.bin"), harden::noise(seed, 1 << 20)).unwrap();
    let lp = Loop {
        root: &root,
        ctx: &ctx,
        base_arg: format!("BASE={base}"),
        name: format!("{}/crash:latest", registry.host()),
    };

    // The windows the kills fall into, measured: a build from an empty store (pull, extract,
    // run, push), and builds on a warm store with and without a push.
    let timed = |round, push| {
        let started = Instant::now();
        assert_ok(&lp.build(round, push), "a measured build");
        started.elapsed()
    };
    std::fs::remove_dir_all(&root).unwrap();
    let cold = timed(1_000_000, true);
    let warm_push = timed(1_000_001, true);
    let warm = timed(1_000_002, false);
    eprintln!(
        "crash loop: seed {seed:#x}, {iterations} iterations, windows: cold {cold:?}, \
         warm push {warm_push:?}, warm {warm:?}"
    );

    let (mut killed, mut finished_first, mut pruned) = (0, 0, 0);
    for i in 0..iterations {
        let push = rng.bool();
        // Now and then start from an empty store, so kills also land in pulls and extractions.
        let from_empty = rng.u8(..4) == 0;
        if from_empty {
            let out = Command::new(harden::inlay_bin())
                .args(["prune", "--all", "--root"])
                .arg(&root)
                .output()
                .unwrap();
            assert_ok(&out, "inlay prune --all");
            pruned += 1;
        }
        let window = match (from_empty, push) {
            (true, _) => cold,
            (false, true) => warm_push,
            (false, false) => warm,
        };
        let delay = window.mul_f64(rng.f64());
        if lp.kill_after(i, push, delay) {
            finished_first += 1;
        } else {
            killed += 1;
        }
        let next = lp.build(i, rng.bool());
        assert_ok(
            &next,
            &format!("iteration {i} (killed after {delay:?}, push {push}): the next build"),
        );
        assert_store_consistent(&root, &format!("after iteration {i}"));
    }
    // The last round pushes for sure, then the registry holds only whole, matching blobs.
    assert_ok(&lp.build(iterations, true), "the final push");
    assert_store_consistent(&root, "at the end");
    let blobs = assert_registry_storage_verifies(&registry.dir.path().join("data"));
    eprintln!(
        "crash loop: {killed} builds killed mid-way, {finished_first} finished before their kill, \
         {pruned} prunes; every next build succeeded, the store verified {iterations} times, \
         {blobs} registry blobs match their digests"
    );
    assert!(killed * 2 >= iterations, "most kills land mid-build");
}
