//! `inlay`: a daemonless Dockerfile image builder whose BuildKit-compatible cache travels inside
//! the image it pushes.

// The binary is the one place that writes to the terminal.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod build;
mod build_flags;
mod inspect;
mod logging;
mod progress;
mod spec;
mod store_cmd;

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

#[derive(Debug, Subcommand)]
enum CacheCommand {
    /// Show the inline cache of an image (BuildKit's or inlay's) or a BuildKit registry cache:
    /// per platform, the records, the layer each result ends at, and the links as a tree.
    Inspect(inspect::InspectArgs),
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
        Command::Store(StoreCommand::Verify(args)) => store_cmd::verify(&args),
        Command::Prune(args) => store_cmd::prune(&args),
    }
}
