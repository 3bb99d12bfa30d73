//! Reading the read-only conformance data under `<workspace root>/../shared`.

use std::path::PathBuf;

/// The `shared/conformance` folder, canonicalised.
pub fn conformance_dir() -> PathBuf {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/conformance");
    std::fs::canonicalize(dir).unwrap_or_else(|e| panic!("conformance data at {dir}: {e}"))
}

/// The bytes of `relative` under `shared/conformance`.
pub fn read(relative: &str) -> Vec<u8> {
    let path = conformance_dir().join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}
