//! `cargo xtask fuzz-build`: builds every cargo-fuzz target under `fuzz/` on the stable
//! toolchain, installing cargo-fuzz first when it is missing.
//!
//! `-s none` skips the sanitizer (the address sanitizer needs nightly `-Z` flags); with it, cargo-fuzz
//! 0.13 passes only stable codegen flags (sancov coverage instrumentation, `--cfg fuzzing`), so
//! no `RUSTC_BOOTSTRAP` is needed: checked on rustc 1.95.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::run;

/// Installs cargo-fuzz if needed, then builds the fuzz targets.
pub fn build(root: &Path) -> Result<()> {
    run::step("cargo-fuzz installed", ensure_cargo_fuzz(root))?;
    run::step("fuzz targets built", build_targets(root))
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

fn has_cargo_fuzz(root: &Path) -> bool {
    Command::new(cargo())
        .args(["fuzz", "--version"])
        .current_dir(root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn ensure_cargo_fuzz(root: &Path) -> Result<()> {
    if has_cargo_fuzz(root) {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-fuzz (cargo install cargo-fuzz --locked)");
    run::cargo(root, &["install", "cargo-fuzz", "--locked"])
}

fn build_targets(root: &Path) -> Result<()> {
    let args = ["fuzz", "build", "-s", "none"];
    let status = Command::new(cargo())
        .args(args)
        .current_dir(root)
        .status()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}
