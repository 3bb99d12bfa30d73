//! Running child commands with their output passed through.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Runs `cargo ARGS` in `root`, inheriting stdio.
pub fn cargo(root: &Path, args: &[&str]) -> Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(&cargo)
        .args(args)
        .current_dir(root)
        .status()
        .with_context(|| format!("running {cargo} {}", args.join(" ")))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Announces a step and labels its failure.
pub fn step(name: &str, result: Result<()>) -> Result<()> {
    match &result {
        Ok(()) => eprintln!("xtask: {name}: ok"),
        Err(_) => eprintln!("xtask: {name}: FAILED"),
    }
    result.with_context(|| format!("step `{name}`"))
}

/// Whether `cargo <name>` is installed (`cargo nextest`, `cargo fuzz`, ...).
pub fn has_cargo_subcommand(root: &Path, name: &str) -> bool {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    Command::new(cargo)
        .args([name, "--version"])
        .current_dir(root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether a program is on `PATH`.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}
