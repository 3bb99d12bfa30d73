//! `inlay store verify` and `inlay prune` as a user runs them: exit codes, the listing of
//! problems, the bytes freed, and a store that still builds afterwards.

// Test code: a failed unwrap is a failed test, in helpers as in `#[test]` functions.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

#[path = "support/harden.rs"]
mod harden;
mod support;

use std::path::Path;
use std::process::{Command, Output};

use harden::{assert_ok, assert_store_consistent, build_quiet, store_verify};
use support::Fixture;

fn inlay(args: &[&str], root: &Path) -> Output {
    Command::new(harden::inlay_bin())
        .args(args)
        .arg("--root")
        .arg(root)
        .output()
        .unwrap()
}

/// The `N` of `Total reclaimed space: N bytes`.
fn reclaimed(out: &Output) -> u64 {
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("Total reclaimed space: "))
        .and_then(|rest| rest.strip_suffix(" bytes"))
        .unwrap_or_else(|| panic!("no reclaimed line in:\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn verify_lists_damage_and_prune_frees_space_the_next_build_does_not_miss() {
    let Fixture {
        registry: _registry,
        work: _work,
        root,
        base,
        ctx,
    } = Fixture::new();
    std::fs::write(
        ctx.join("Dockerfile"),
        "ARG BASE\nFROM $BASE\nRUN --mount=type=cache,target=/c echo x > /c/x && echo y > /y\n",
    )
    .unwrap();
    let base_arg = format!("BASE={base}");
    let build = || build_quiet(&root, &["--build-arg", &base_arg, ctx.to_str().unwrap()]);
    assert_ok(&build(), "the first build");
    let summary = store_verify(&root).unwrap();
    assert!(summary.contains("consistent"), "{summary}");

    // One flipped byte in a blob: exit 1, and the listing names the blob.
    let blob = harden::files_below(&root.join("blobs/sha256"))
        .into_iter()
        .next()
        .unwrap();
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();
    let listing = store_verify(&root).unwrap_err();
    assert!(
        listing.contains("corrupt blob") && listing.contains(&*blob.to_string_lossy()),
        "{listing}"
    );
    // Garbage in the store's temporary area is listed too.
    std::fs::write(root.join("tmp/stray"), b"left behind").unwrap();
    let listing = store_verify(&root).unwrap_err();
    assert!(listing.contains("abandoned temporary entry"), "{listing}");
    std::fs::remove_file(&blob).unwrap();

    // A default prune keeps what the local cache refers to and frees the rest.
    let out = inlay(&["prune"], &root);
    assert_ok(&out, "inlay prune");
    assert!(reclaimed(&out) > 0);
    assert_store_consistent(&root, "after a prune");
    let again = build();
    assert_ok(&again, "the build after a prune");

    // `--all` leaves only pins; the next build pulls and runs again, and succeeds.
    let out = inlay(&["prune", "--all"], &root);
    assert_ok(&out, "inlay prune --all");
    assert!(reclaimed(&out) > 100_000, "the base layer at least");
    assert!(harden::files_below(&root.join("blobs")).is_empty());
    assert!(harden::files_below(&root.join("cache-mounts")).is_empty());
    assert_store_consistent(&root, "after prune --all");
    assert_ok(&build(), "the build after prune --all");
    assert_store_consistent(&root, "at the end");
}
