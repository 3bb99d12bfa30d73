//! House rules that a compiler does not check: dependencies point down the crate map, and `core`
//! stays pure (no IO, no async, no clock).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// The crate map, bottom first. A crate may depend only on crates of a strictly lower rank.
const RANKS: [(&str, u8); 9] = [
    ("inlay-core", 0),
    ("inlay-frontend-dockerfile", 1),
    ("inlay-registry", 1),
    ("inlay-testkit", 1),
    ("inlay-importer-registry", 2),
    ("inlay-exporter-inline", 2),
    ("inlay-builder", 3),
    ("inlay", 4),
    ("xtask", 5),
];

/// The dev-only test harness: any crate may dev-depend on it, none but these may depend on it
/// normally (it starts processes and binds ports; it has no place in a shipped binary).
const TESTKIT: &str = "inlay-testkit";
const TESTKIT_NORMAL_USERS: [&str; 1] = ["xtask"];

/// The only normal dependencies `core` may have: pure data and hashing crates.
const CORE_ALLOWED: [&str; 8] = [
    "serde",
    "serde_json",
    "sha2",
    "digest",
    "hex",
    "base64",
    "thiserror",
    "percent-encoding",
];

/// Source text that means IO, async or a clock; refused anywhere under `core/src`.
const CORE_FORBIDDEN_TEXT: [&str; 9] = [
    "std::fs",
    "std::net",
    "std::process",
    "std::env",
    "tokio",
    "reqwest",
    "SystemTime::now",
    "Instant::now",
    "std::io::stdin",
];

fn rank(name: &str) -> Option<u8> {
    RANKS.iter().find(|(n, _)| *n == name).map(|(_, r)| *r)
}

/// Runs every house check; the error lists every violation.
pub fn check(root: &Path) -> Result<()> {
    let mut problems = Vec::new();
    let metadata = metadata(root)?;
    check_edges(&metadata, &mut problems);
    check_core_source(&root.join("core").join("src"), &mut problems)?;
    if problems.is_empty() {
        eprintln!("xtask: house rules: ok");
        Ok(())
    } else {
        bail!("house rules broken:\n  - {}", problems.join("\n  - "))
    }
}

fn metadata(root: &Path) -> Result<Value> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root)
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).context("parsing cargo metadata")
}

fn check_edges(metadata: &Value, problems: &mut Vec<String>) {
    let packages = metadata["packages"].as_array().cloned().unwrap_or_default();
    for package in &packages {
        let name = package["name"].as_str().unwrap_or_default();
        let Some(own_rank) = rank(name) else {
            problems.push(format!(
                "workspace crate `{name}` is not on the crate map (xtask/src/house.rs)"
            ));
            continue;
        };
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            let is_dev = dep["kind"].as_str() == Some("dev");
            if dep_name == TESTKIT && !is_dev && !TESTKIT_NORMAL_USERS.contains(&name) {
                problems.push(format!(
                    "`{name}` depends on `{TESTKIT}` as a normal dependency; it is for [dev-dependencies] only"
                ));
                continue;
            }
            if let Some(dep_rank) = rank(dep_name) {
                // dev-dependencies may reach sideways for tests, never upwards.
                let ok = if is_dev {
                    dep_rank <= own_rank && dep_name != name
                } else {
                    dep_rank < own_rank
                };
                if !ok {
                    problems.push(format!(
                        "`{name}` depends on `{dep_name}`, which is not below it in the crate map"
                    ));
                }
            } else if name == "inlay-core" && !is_dev && !CORE_ALLOWED.contains(&dep_name) {
                problems.push(format!(
                    "`inlay-core` must stay pure but depends on `{dep_name}` (allowed: {CORE_ALLOWED:?})"
                ));
            }
        }
    }
}

fn check_core_source(dir: &Path, problems: &mut Vec<String>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        if path.is_dir() {
            check_core_source(&path, problems)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            for (number, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or_default();
                for needle in CORE_FORBIDDEN_TEXT {
                    if code.contains(needle) {
                        problems.push(format!(
                            "{}:{}: `core` must stay pure but uses `{needle}`",
                            path.display(),
                            number + 1
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems_of(packages: &Value) -> Vec<String> {
        let mut problems = Vec::new();
        check_edges(&serde_json::json!({ "packages": packages }), &mut problems);
        problems
    }

    #[test]
    fn testkit_is_a_dev_dependency_only() {
        let dev = serde_json::json!([
            {"name": "inlay-registry", "dependencies": [{"name": "inlay-testkit", "kind": "dev"}]},
            {"name": "inlay-builder", "dependencies": [{"name": "inlay-testkit", "kind": "dev"}]},
            {"name": "xtask", "dependencies": [{"name": "inlay-testkit", "kind": null}]},
            {"name": "inlay-testkit", "dependencies": [{"name": "inlay-core", "kind": null}]},
        ]);
        assert_eq!(problems_of(&dev), Vec::<String>::new());
        let normal = serde_json::json!([
            {"name": "inlay-builder", "dependencies": [{"name": "inlay-testkit", "kind": null}]},
        ]);
        let found = problems_of(&normal);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("dev-dependencies"), "{found:?}");
        let upwards = serde_json::json!([
            {"name": "inlay-testkit", "dependencies": [{"name": "inlay-registry", "kind": null}]},
        ]);
        assert_eq!(problems_of(&upwards).len(), 1);
    }
}
