//! `cargo xtask ...`: the workspace's chores, one command each.
//!
//! * `cargo xtask test`: the one test command (installs what tests need, checks format, lints, the
//!   house rules, builds the fuzz targets, runs every test, then the docker conformance suite).
//! * `cargo xtask house`: only the house rules (dependency direction, a pure `core`).
//! * `cargo xtask demo`: the main job end to end on this machine alone.
//! * `cargo xtask fuzz-build`: builds the cargo-fuzz targets under `fuzz/` (installs cargo-fuzz).
//! * `cargo xtask conformance buildkit`: inlay's cache records against docker 20.10's BuildKit,
//!   then the Docker interop checks (`cargo xtask conformance interop` runs only those).
//! * `cargo xtask bench`: inlay against `docker build`, cold and cached (not part of `test`).
//! * `cargo xtask crash-loop [--iterations N] [--seed S]`: `inlay build` killed with SIGKILL at
//!   random moments, the store verified after each next build (`cli/tests/crash.rs`, long).

// xtask is a developer tool that talks to the terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod conformance;
mod crash;
mod demo;
mod fuzz;
mod house;
mod packages;
mod run;

use std::path::PathBuf;

use anyhow::{Result, bail};

fn main() -> std::process::ExitCode {
    match real_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    match args.first().map(String::as_str) {
        Some("test") => test(&root, &args[1..]),
        Some("house") => house::check(&root),
        Some("demo") => demo::run(&root),
        Some("fuzz-build") => fuzz::build(&root),
        Some("install-deps") => packages::ensure(&packages::TEST_PACKAGES),
        Some("conformance") => conformance::run(&root, &args[1..]),
        Some("bench") => bench::run(&root, &args[1..]),
        Some("crash-loop") => crash::run(&root, &args[1..]),
        _ => bail!(
            "usage: cargo xtask <test|house|demo|install-deps|fuzz-build|conformance|bench|crash-loop>\n\
             \x20 test          install test dependencies, check fmt, clippy, house rules, build fuzz targets, run all tests, then conformance buildkit (root)\n\
             \x20 house         check dependency direction and core purity\n\
             \x20 demo          run the main job end to end on this machine\n\
             \x20 install-deps  install the Debian packages the tests need (as root)\n\
             \x20 fuzz-build    install cargo-fuzz if missing and build the fuzz targets\n\
             \x20 conformance buildkit  compare inlay's cache records with docker 20.10's (root; starts dockerd)\n\
             \x20 conformance interop   inlay's images of examples/ in docker 20.10: load, pull, run, inspect (root)\n\
             \x20 bench [--runs N] [--quick]  inlay vs docker build: wall time, peak memory, bytes fetched (root; not in test)\n\
             \x20 crash-loop [--iterations N] [--seed S]  kill -9 inlay builds at random moments, verify the store after each (root)"
        ),
    }
}

/// The workspace root: the parent of this crate's manifest directory.
fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map_or_else(|| manifest.clone(), std::path::Path::to_path_buf)
}

/// `cargo xtask test [-- extra nextest args]`.
fn test(root: &std::path::Path, extra: &[String]) -> Result<()> {
    packages::ensure(&packages::TEST_PACKAGES)?;
    run::step(
        "format",
        run::cargo(root, &["fmt", "--all", "--", "--check"]),
    )?;
    house::check(root)?;
    run::step(
        "clippy",
        run::cargo(
            root,
            &[
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ],
        ),
    )?;
    // CI builds every fuzz target on stable, so a change that breaks one fails here.
    fuzz::build(root)?;
    run::step(
        "doc tests",
        run::cargo(root, &["test", "--workspace", "--doc"]),
    )?;
    // Differential against a real docker engine; it needs root (skipped with a note when not
    // root, except in CI where it must run).
    run::step("conformance buildkit", conformance::test_step(root))?;
    // The runner's own summary closes the output, so the test suite goes last.
    if run::has_cargo_subcommand(root, "nextest") {
        let mut args = vec!["nextest", "run", "--workspace", "--no-fail-fast"];
        args.extend(extra.iter().map(String::as_str));
        run::step("tests (nextest)", run::cargo(root, &args))
    } else {
        let mut args = vec!["test", "--workspace", "--no-fail-fast"];
        args.extend(extra.iter().map(String::as_str));
        run::step("tests (cargo test)", run::cargo(root, &args))
    }
}
