//! `cargo xtask demo`: the main job end to end on this machine alone.

use std::path::Path;

use anyhow::Result;

/// Runs the demo. Building images is not implemented yet, so for now it says so plainly and
/// shows what already works.
pub fn run(root: &Path) -> Result<()> {
    crate::packages::ensure(&crate::packages::TEST_PACKAGES)?;
    println!("inlay demo");
    println!("==========");
    println!();
    println!("Building images is not implemented yet (see the builder issue).");
    println!("What works today: the pure core (digests, references, inline cache records),");
    println!("checked against BuildKit's own inline-cache samples by `cargo xtask test`.");
    println!();
    println!("Example context: {}", root.join("examples/hello").display());
    Ok(())
}
