//! `cargo xtask fuzz-build`: builds every cargo-fuzz target under `fuzz/` on the stable
//! toolchain, installing cargo-fuzz first when it is missing.
//!
//! `-s none` skips the sanitizer (the address sanitizer needs nightly `-Z` flags); with it, cargo-fuzz
//! 0.13 passes only stable codegen flags (sancov coverage instrumentation, `--cfg fuzzing`), so
//! no `RUSTC_BOOTSTRAP` is needed: checked on rustc 1.95.

use std::path::Path;

use anyhow::Result;

use crate::run;

/// Installs cargo-fuzz if needed, then builds the fuzz targets.
pub fn build(root: &Path) -> Result<()> {
    run::step("cargo-fuzz installed", ensure_cargo_fuzz(root))?;
    run::step("fuzz targets built", build_targets(root))
}

fn ensure_cargo_fuzz(root: &Path) -> Result<()> {
    if run::has_cargo_subcommand(root, "fuzz") {
        return Ok(());
    }
    eprintln!("xtask: installing cargo-fuzz (cargo install cargo-fuzz --locked)");
    run::cargo(root, &["install", "cargo-fuzz", "--locked"])
}

fn build_targets(root: &Path) -> Result<()> {
    run::cargo(root, &["fuzz", "build", "-s", "none"])
}
