//! `inlay store verify` and `inlay prune`: the local store checked and made smaller.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, Result};
use inlay_builder::store::{PrunePolicy, Store};

/// `--root`, shared by the store commands.
#[derive(Debug, clap::Args)]
pub struct RootArg {
    /// Local store directory (default `/var/lib/inlay` as root, else `$XDG_DATA_HOME/inlay`).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
}

/// `inlay store verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    root: RootArg,
}

/// `inlay prune`.
#[derive(Debug, clap::Args)]
pub struct PruneArgs {
    #[command(flatten)]
    root: RootArg,
    /// Also remove what the local cache still refers to: everything but pinned content (the
    /// next build pulls or runs again).
    #[arg(long, short = 'a')]
    all: bool,
}

/// Opens the store; `as_is` leaves the leftovers of killed builds for `verify` to report
/// (any other open cleans them up first).
fn open(root: &RootArg, as_is: bool) -> Result<Store> {
    let root = match &root.root {
        Some(r) => r.clone(),
        None => Store::default_root().context("finding the store root")?,
    };
    let store = if as_is {
        Store::open_as_is(&root)
    } else {
        Store::open(&root)
    };
    store.with_context(|| format!("opening the store at {}", root.display()))
}

/// Exit codes of `store verify`: 0 consistent, 1 problems found, 2 could not check.
const EXIT_PROBLEMS: u8 = 1;
const EXIT_FAILED: u8 = 2;

/// Runs `inlay store verify`: 0 when the store is consistent, 1 (listing them) when not.
pub fn verify(args: &VerifyArgs) -> ExitCode {
    let result =
        open(&args.root, true).and_then(|store| store.verify().context("verifying the store"));
    match result {
        Ok(report) => {
            let problems = report.problems();
            for problem in &problems {
                println!("{problem}");
            }
            println!(
                "inlay: {} blobs, {} snapshots checked ({} being written): {}",
                report.blobs_checked,
                report.snapshots_checked,
                report.snapshots_in_progress,
                if problems.is_empty() {
                    "consistent".to_owned()
                } else {
                    format!("{} problems", problems.len())
                }
            );
            if problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_PROBLEMS)
            }
        }
        Err(err) => {
            eprintln!("inlay: error: {err:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Runs `inlay prune`: removes what nothing refers to (or, with `--all`, everything but pins),
/// cache mounts and leftovers, and prints the bytes freed.
pub fn prune(args: &PruneArgs) -> ExitCode {
    let policy = PrunePolicy {
        cache_mounts: true,
        all: args.all,
    };
    let result = open(&args.root, false).and_then(|store| store.prune(policy).context("pruning"));
    match result {
        Ok(report) => {
            println!(
                "inlay: removed {} blobs, {} snapshots, {} cache mounts, {} temporary entries",
                report.blobs, report.snapshots, report.cache_mounts, report.temp
            );
            println!("Total reclaimed space: {} bytes", report.bytes_freed);
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("inlay: error: {err:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}
