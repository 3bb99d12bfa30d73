//! `inlay`: a daemonless Dockerfile image builder whose BuildKit-compatible cache travels inside
//! the image it pushes.

// The binary is the one place that writes to the terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod build;
mod build_flags;
mod check;
mod inspect;
mod logging;
mod progress;
mod spec;
mod store_cmd;
mod summary;
mod tty;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::build_flags::BuildFlags;

/// A daemonless Dockerfile image builder with BuildKit-compatible inline cache.
#[derive(Debug, Parser)]
#[command(name = "inlay", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build an image from a Dockerfile and a context (flags as `docker buildx build` spells them).
    Build(Box<BuildFlags>),
    /// Look at caches in a registry.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Explain why steps would miss the `--cache-from` caches: a dry run of `build` (same
    /// flags) that prints each missed step with every cause found (`--step N`: one step).
    /// Exit 0 when every shown step hits, 1 on a miss, 2 on an error.
    Explain(Box<ExplainArgs>),
    /// Check the local store.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Free space in the local store: blobs and snapshots nothing refers to, cache mounts,
    /// leftovers of killed builds (`--all`: everything but pinned content).
    Prune(store_cmd::PruneArgs),
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// Re-hash every blob, check every snapshot and look for leftovers of killed builds; exit 0
    /// when consistent, 1 listing the problems.
    Verify(store_cmd::VerifyArgs),
}

/// `inlay explain [build flags] [--step N]`.
#[derive(Debug, clap::Args)]
struct ExplainArgs {
    /// Explain only step N (as numbered by `inlay build --check`).
    #[arg(long)]
    step: Option<usize>,
    #[command(flatten)]
    build: BuildFlags,
}

#[derive(Debug, Subcommand)]
enum CacheCommand {
    /// Show the inline cache of an image (BuildKit's or inlay's) or a BuildKit registry cache:
    /// per platform, the records, the layer each result ends at, and the links as a tree.
    Inspect(inspect::InspectArgs),
    /// Dry run of `build` (same flags, alias of `inlay build --check`): resolve bases and cache
    /// references, compute every key, run nothing, download no layer; print per step HIT (which
    /// reference, which record) or MISS with why. Exit 0 all hit, 1 some miss, 2 error.
    Check(Box<BuildFlags>),
}

/// Exit codes: 0 success, 1 a failed build, 2 bad usage (clap's own code for usage errors too).
const EXIT_BUILD_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init();
    match cli.command {
        Command::Build(args) => match args.into_request() {
            Ok(request) => build::run(request),
            Err(err) => {
                eprintln!("inlay: error: {err:#}");
                ExitCode::from(EXIT_USAGE)
            }
        },
        Command::Cache(CacheCommand::Inspect(args)) => inspect::run(&args),
        Command::Cache(CacheCommand::Check(args)) => match args.into_request() {
            Ok(request) => check::run(request, check::View::Check),
            Err(err) => {
                eprintln!("inlay: error: {err:#}");
                ExitCode::from(EXIT_USAGE)
            }
        },
        Command::Explain(args) => {
            let step = args.step;
            match args.build.into_request() {
                Ok(request) => check::run(request, check::View::Explain { step }),
                Err(err) => {
                    eprintln!("inlay: error: {err:#}");
                    ExitCode::from(EXIT_USAGE)
                }
            }
        }
        Command::Store(StoreCommand::Verify(args)) => store_cmd::verify(&args),
        Command::Prune(args) => store_cmd::prune(&args),
    }
}
