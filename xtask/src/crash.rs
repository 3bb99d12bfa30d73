//! `cargo xtask crash-loop [--iterations N] [--seed S]`: the kill -9 loop, long.
//!
//! The loop itself is the test `cli/tests/crash.rs` (it needs the test harness: a real
//! registry, the busybox base); CI runs it with 10 iterations. This command runs the same test
//! with `INLAY_CRASH_ITERATIONS` and `INLAY_CRASH_SEED` set and its output shown, so a long run
//! and a CI run can never drift apart.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::packages::{TEST_PACKAGES, ensure};

/// The default of a long run (the issue asks for at least 50).
const DEFAULT_ITERATIONS: u32 = 60;

/// Runs the crash loop.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let mut iterations = DEFAULT_ITERATIONS;
    let mut seed: Option<u64> = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let value = rest.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--iterations" => iterations = value?.parse().context("--iterations N")?,
            "--seed" => seed = Some(parse_seed(value?)?),
            other => {
                bail!("usage: cargo xtask crash-loop [--iterations N] [--seed S]; not {other}")
            }
        }
    }
    ensure(&TEST_PACKAGES)?;
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs())
    });
    println!("xtask crash-loop: {iterations} iterations, seed {seed} (rerun with --seed {seed})");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(&cargo)
        .args([
            "test",
            "-p",
            "inlay",
            "--test",
            "crash",
            "--",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("INLAY_CRASH_ITERATIONS", iterations.to_string())
        .env("INLAY_CRASH_SEED", seed.to_string())
        .current_dir(root)
        .status()
        .with_context(|| format!("running {cargo} test"))?;
    if !status.success() {
        bail!("the crash loop failed (seed {seed}); see the output above");
    }
    Ok(())
}

fn parse_seed(text: &str) -> Result<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    }
    .with_context(|| format!("--seed {text}: a number"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_parse_in_decimal_and_hex() {
        assert_eq!(parse_seed("42").unwrap(), 42);
        assert_eq!(parse_seed("0x1f").unwrap(), 31);
        assert!(parse_seed("x").is_err());
    }
}
