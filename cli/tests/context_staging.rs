//! The staged build context hard-links the user's files when it can: nothing a build does may
//! then write through to them, and files of other owners are still copied and reset to 0:0.

// Test code: unwrap is the assertion.
#![allow(clippy::unwrap_used)]

mod support;

use std::os::unix::fs::MetadataExt;

use support::{Fixture, inlay_build};

#[test]
fn a_writable_bind_of_the_context_never_writes_to_the_users_files() {
    let Fixture {
        registry: _registry,
        work,
        root,
        base,
        ctx,
    } = Fixture::new();
    std::fs::write(ctx.join("a.txt"), "original\n").unwrap();
    std::fs::write(ctx.join("b.txt"), "someone else's\n").unwrap();
    std::os::unix::fs::chown(ctx.join("b.txt"), Some(1000), Some(1000)).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "ARG BASE\nFROM $BASE\n\
         RUN --mount=type=bind,rw,target=/ctx sh -c 'echo changed > /ctx/a.txt; echo x >> /ctx/b.txt; cat /ctx/a.txt > /seen'\n\
         COPY a.txt b.txt /copied/\n",
    )
    .unwrap();
    let out_dir = work.path().join("out");
    let out = inlay_build(
        &root,
        &[
            "--build-arg",
            &format!("BASE={base}"),
            "--output",
            &format!("type=local,dest={}", out_dir.display()),
            ctx.to_str().unwrap(),
        ],
    );
    assert!(out.status.success());
    // Inside the RUN the write was visible; outside it never happened.
    assert_eq!(
        std::fs::read_to_string(out_dir.join("seen")).unwrap(),
        "changed\n"
    );
    assert_eq!(
        std::fs::read_to_string(ctx.join("a.txt")).unwrap(),
        "original\n"
    );
    assert_eq!(
        std::fs::read_to_string(ctx.join("b.txt")).unwrap(),
        "someone else's\n"
    );
    // The COPY read the context as it is, owners reset to 0:0 as BuildKit's file sync does.
    assert_eq!(
        std::fs::read_to_string(out_dir.join("copied/a.txt")).unwrap(),
        "original\n"
    );
    let copied = std::fs::metadata(out_dir.join("copied/b.txt")).unwrap();
    assert_eq!((copied.uid(), copied.gid()), (0, 0));
    // The user's files keep their owners and link counts (the staged links are gone).
    let b = std::fs::metadata(ctx.join("b.txt")).unwrap();
    assert_eq!((b.uid(), b.gid()), (1000, 1000));
    assert_eq!(std::fs::metadata(ctx.join("a.txt")).unwrap().nlink(), 1);
}
