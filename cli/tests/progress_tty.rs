//! The live tty progress view, screenshotted under tmux (100x30) after a real build, with
//! durations, digests and byte counts masked, against an insta snapshot.

// Helpers outside #[test] fns are test code too.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{Registry, mask_digests, push_busybox};

fn tmux(socket: &str, args: &[&str]) -> std::process::Output {
    Command::new("tmux")
        .arg("-L")
        .arg(socket)
        .args(args)
        .output()
        .unwrap()
}

/// Masks what changes from run to run: times, digests, sizes, the registry's port.
fn normalise(screen: &str, host: &str) -> String {
    let mut out = Vec::new();
    for line in mask_digests(&screen.replace(host, "[registry]")).lines() {
        let mut words = Vec::new();
        for word in line.split(' ') {
            let w = word.trim_end_matches([',', ')']);
            let tail = &word[w.len()..];
            let masked = if w.ends_with('s')
                && w.len() > 1
                && w[..w.len() - 1]
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '.')
            {
                "[t]".to_owned()
            } else if w.len() > 3 && w.chars().all(|c| c.is_ascii_digit()) {
                "[n]".to_owned()
            } else {
                w.to_owned()
            };
            words.push(format!("{masked}{tail}"));
        }
        // Right-aligned times move with their width: squeeze runs of spaces.
        let joined = words.join(" ");
        let mut squeezed = String::new();
        for part in joined.split(' ').filter(|p| !p.is_empty()) {
            if !squeezed.is_empty() || joined.starts_with(' ') {
                squeezed.push(' ');
            }
            squeezed.push_str(part);
        }
        out.push(squeezed);
    }
    while out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    out.join("\n")
}

#[test]
fn tty_progress_under_tmux() {
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("tmux is not installed (cargo xtask install-deps)");
        return;
    }
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let base = push_busybox(&registry, &work.path().join("base-store"));
    let ctx = work.path().join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nRUN echo hello > /hello\nRUN echo world\n"),
    )
    .unwrap();
    let done = work.path().join("done");
    let script = work.path().join("build.sh");
    std::fs::write(
        &script,
        format!(
            "SOURCE_DATE_EPOCH=0 '{}' build --progress tty --root '{}' '{}'; touch '{}'; sleep 60\n",
            env!("CARGO_BIN_EXE_inlay"),
            work.path().join("store").display(),
            ctx.display(),
            done.display()
        ),
    )
    .unwrap();
    let socket = format!("inlay-test-{}", std::process::id());
    let started = tmux(
        &socket,
        &[
            "new-session",
            "-d",
            "-x",
            "100",
            "-y",
            "30",
            "-s",
            "progress",
            &format!("sh '{}'", script.display()),
        ],
    );
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    // -J joins the lines the terminal wrapped (their break moves with the masked widths).
    let capture = tmux(&socket, &["capture-pane", "-p", "-J", "-t", "progress"]);
    let _ = tmux(&socket, &["kill-server"]);
    assert!(done.exists(), "the build finished under tmux");
    let screen = String::from_utf8_lossy(&capture.stdout).into_owned();
    eprintln!("{screen}");
    assert!(!screen.contains("\x1b["), "escapes are interpreted by tmux");
    insta::assert_snapshot!("tty_build", normalise(&screen, &registry.host()));
}
