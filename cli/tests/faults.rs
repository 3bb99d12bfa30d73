//! Registry faults during whole builds: a base pull, a `--cache-from` import and a `--push`
//! through a fault-injecting proxy in front of the real registry. Each build either succeeds
//! through retries or fails with an error naming the status or cause; either way the store
//! verifies and every blob the registry stores matches its digest. One test per fault class;
//! each prints how many faults it injected.

// Test code: a failed unwrap is a failed test, in helpers as in `#[test]` functions.
#![allow(clippy::unwrap_used, clippy::print_stderr)]

#[path = "support/harden.rs"]
mod harden;

mod support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use harden::{assert_ok, assert_registry_storage_verifies, assert_store_consistent, build_quiet};

use inlay_testkit::faults::{Fault, FaultProxy, FaultRule};
use inlay_testkit::proxy::Seen;
use support::{Registry, push_busybox};

const DOCKERFILE: &str = "\
ARG BASE
FROM $BASE
COPY data.bin /data.bin
ARG ROUND=0
RUN echo $ROUND > /round && wc -c /data.bin > /size
";

/// A registry holding the busybox base and a cache image built from the context, a proxy
/// in front of it, and the context.
struct Bench {
    registry: Registry,
    tokio: tokio::runtime::Runtime,
    work: tempfile::TempDir,
    ctx: PathBuf,
}

impl Bench {
    fn new() -> Bench {
        let registry = Registry::start();
        let work = tempfile::tempdir().unwrap();
        let seed_root = work.path().join("seed-store");
        let base = push_busybox(&registry, &seed_root);
        let ctx = work.path().join("ctx");
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
        std::fs::write(ctx.join("data.bin"), harden::noise(11, 300_000)).unwrap();
        let cache = format!("{}/app:cache", registry.host());
        let out = build_quiet(
            &seed_root,
            &[
                "--build-arg",
                &format!("BASE={base}"),
                "-t",
                &cache,
                "--push",
                "--cache-to",
                "type=inline",
                ctx.to_str().unwrap(),
            ],
        );
        assert_ok(&out, "seeding the cache image");
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        Bench {
            registry,
            tokio,
            work,
            ctx,
        }
    }

    fn proxy(&self, rule: FaultRule) -> FaultProxy {
        self.tokio
            .block_on(FaultProxy::start(self.registry.addr, rule))
    }

    /// A build through `proxy` with a fresh store: base pulled, cache imported (its COPY
    /// layer pulled for the RUN that misses), result pushed with its inline cache.
    fn build(&self, proxy: &FaultProxy, round: usize, base_repo: &str) -> (Output, PathBuf) {
        let root = self.work.path().join(format!("store-{round}"));
        let host = proxy.host();
        let out = build_quiet(
            &root,
            &[
                "--build-arg",
                &format!("BASE={host}/{base_repo}"),
                "--build-arg",
                &format!("ROUND={round}"),
                "--cache-from",
                &format!("{host}/app:cache"),
                "-t",
                &format!("{host}/app:out-{round}"),
                "--push",
                "--cache-to",
                "type=inline",
                self.ctx.to_str().unwrap(),
            ],
        );
        (out, root)
    }

    /// The checks every fault class ends with: the store and the registry are whole.
    fn assert_nothing_corrupt(&self, root: &Path, class: &str) {
        assert_store_consistent(root, &format!("after {class}"));
        assert_registry_storage_verifies(&self.registry.dir.path().join("data"));
        let fetched =
            harden::assert_registry_images_verify(self.registry.addr, &["busybox", "app"]);
        assert!(fetched >= 6, "the base and the cache image at least");
    }
}

/// A build either succeeded or failed naming one of `causes` on its `ERROR:` line.
fn succeeded_or_clear(out: &Output, causes: &[&str]) -> bool {
    if out.status.success() {
        return true;
    }
    let text = String::from_utf8_lossy(&out.stderr);
    let error = text
        .lines()
        .find(|l| l.starts_with("ERROR:"))
        .unwrap_or_else(|| panic!("a failed build without an ERROR line:\n{text}"));
    assert!(
        causes.iter().any(|c| error.contains(c)),
        "the error names none of {causes:?}: {error}"
    );
    eprintln!("faults: the build failed with: {error}");
    false
}

fn is_blob_get(s: &Seen) -> bool {
    s.method == "GET" && s.path().contains("/blobs/sha256:")
}

fn is_put(s: &Seen) -> bool {
    s.method == "PUT"
}

fn is_manifest_get(s: &Seen) -> bool {
    s.method == "GET" && s.path().contains("/manifests/")
}

/// A rule that gives `fault` to the first `n` requests `matches` accepts.
fn first_n(n: usize, matches: fn(&Seen) -> bool, fault: Fault) -> FaultRule {
    let left = Arc::new(AtomicUsize::new(n));
    Arc::new(move |s: &Seen| {
        if matches(s)
            && left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            fault.clone()
        } else {
            Fault::Forward
        }
    })
}

fn report(class: &str, proxy: &FaultProxy, outcome: &str) {
    eprintln!(
        "faults {class}: {} injected {:?} over {} requests; {outcome}",
        proxy.stats.total(),
        proxy.stats.by_class(),
        proxy.stats.requests()
    );
}

#[test]
fn connection_resets_mid_body_are_survived() {
    let bench = Bench::new();
    let blobs = first_n(4, is_blob_get, Fault::Reset { after: 200 });
    let manifests = first_n(2, is_manifest_get, Fault::Reset { after: 20 });
    // Uploads whose answer is lost: the registry took the blob or manifest, the client saw a
    // reset and must find out or send again.
    let puts = first_n(2, is_put, Fault::Swallow);
    let proxy = bench.proxy(Arc::new(move |s: &Seen| {
        for rule in [&blobs, &manifests, &puts] {
            let fault = rule(s);
            if !matches!(fault, Fault::Forward) {
                return fault;
            }
        }
        Fault::Forward
    }));
    let (out, root) = bench.build(&proxy, 1, "busybox:latest");
    assert_ok(&out, "a build through resets");
    assert!(proxy.stats.total() >= 6, "{:?}", proxy.stats.by_class());
    report("reset", &proxy, "build succeeded");
    bench.assert_nothing_corrupt(&root, "resets");
}

#[test]
fn truncated_bodies_are_survived() {
    let bench = Bench::new();
    let blobs = first_n(4, is_blob_get, Fault::Truncate { after: 200 });
    let manifests = first_n(2, is_manifest_get, Fault::Truncate { after: 30 });
    let proxy = bench.proxy(Arc::new(move |s: &Seen| match blobs(s) {
        Fault::Forward => manifests(s),
        f => f,
    }));
    let (out, root) = bench.build(&proxy, 1, "busybox:latest");
    assert_ok(&out, "a build through truncated bodies");
    assert!(proxy.stats.total() >= 4, "{:?}", proxy.stats.by_class());
    report("truncate", &proxy, "build succeeded");
    bench.assert_nothing_corrupt(&root, "truncated bodies");
}

#[test]
fn stalls_and_slow_bodies_are_survived() {
    let bench = Bench::new();
    let stalls = first_n(
        2,
        is_blob_get,
        Fault::Stall {
            after: 4096,
            pause: Duration::from_secs(2),
        },
    );
    let drips = first_n(
        2,
        is_blob_get,
        Fault::Drip {
            chunk: 32 * 1024,
            pause: Duration::from_millis(10),
        },
    );
    let manifests = first_n(
        2,
        is_manifest_get,
        Fault::Stall {
            after: 10,
            pause: Duration::from_secs(1),
        },
    );
    let proxy = bench.proxy(Arc::new(move |s: &Seen| {
        for rule in [&stalls, &drips, &manifests] {
            let fault = rule(s);
            if !matches!(fault, Fault::Forward) {
                return fault;
            }
        }
        Fault::Forward
    }));
    let (out, root) = bench.build(&proxy, 1, "busybox:latest");
    assert_ok(&out, "a build through stalls");
    assert!(proxy.stats.total() >= 4, "{:?}", proxy.stats.by_class());
    report("stall/drip", &proxy, "build succeeded");
    bench.assert_nothing_corrupt(&root, "stalls");
}

#[test]
fn status_storms_are_retried_and_a_lasting_one_is_named() {
    let bench = Bench::new();
    // Every distinct request fails twice (500, 503 or 429 in turn) before it gets through.
    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let turn = Arc::new(AtomicUsize::new(0));
    let proxy = bench.proxy(Arc::new(move |s: &Seen| {
        let mut seen = seen.lock().unwrap();
        let tries = seen
            .entry(format!("{} {}", s.method, s.path()))
            .or_default();
        *tries += 1;
        if *tries > 2 {
            return Fault::Forward;
        }
        match turn.fetch_add(1, Ordering::SeqCst) % 3 {
            0 => Fault::Status {
                code: 500,
                retry_after: None,
            },
            1 => Fault::Status {
                code: 503,
                retry_after: None,
            },
            _ => Fault::Status {
                code: 429,
                retry_after: Some(0),
            },
        }
    }));
    let (out, root) = bench.build(&proxy, 1, "busybox:latest");
    assert_ok(&out, "a build through a status storm");
    report("status storm", &proxy, "build succeeded");
    bench.assert_nothing_corrupt(&root, "a status storm");

    // A registry that answers every manifest upload with 500: the build fails and says so.
    let lasting = bench.proxy(Arc::new(|s: &Seen| {
        if s.method == "PUT" && s.path().contains("/manifests/") {
            Fault::Status {
                code: 500,
                retry_after: None,
            }
        } else {
            Fault::Forward
        }
    }));
    let (out, root) = bench.build(&lasting, 2, "busybox:latest");
    assert!(!out.status.success(), "a push that never lands fails");
    assert!(!succeeded_or_clear(&out, &["500"]));
    report("lasting 500", &lasting, "build failed naming the status");
    bench.assert_nothing_corrupt(&root, "a lasting 500");
}

#[test]
fn mutated_blobs_are_fetched_again_and_never_stored() {
    let bench = Bench::new();
    // The first download of every blob arrives with a flipped byte: each is fetched again.
    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let proxy = bench.proxy(Arc::new(move |s: &Seen| {
        if !is_blob_get(s) {
            return Fault::Forward;
        }
        let mut seen = seen.lock().unwrap();
        let tries = seen.entry(s.path().to_owned()).or_default();
        *tries += 1;
        if *tries == 1 {
            Fault::Mutate { at: 100 }
        } else {
            Fault::Forward
        }
    }));
    let (out, root) = bench.build(&proxy, 1, "busybox:latest");
    assert_ok(&out, "a build whose first downloads are damaged");
    assert!(proxy.stats.total() >= 3, "{:?}", proxy.stats.by_class());
    report("mutate (once per blob)", &proxy, "build succeeded");
    bench.assert_nothing_corrupt(&root, "mutated blobs");

    // A registry that always serves damaged blobs: the build fails naming the digest.
    let always = bench.proxy(Arc::new(|s: &Seen| {
        if is_blob_get(s) {
            Fault::Mutate { at: 100 }
        } else {
            Fault::Forward
        }
    }));
    let (out, root) = bench.build(&always, 2, "busybox:latest");
    assert!(
        !out.status.success(),
        "damaged bytes every time fail the build"
    );
    assert!(!succeeded_or_clear(&out, &["digest"]));
    report("mutate (always)", &always, "build failed naming the digest");
    bench.assert_nothing_corrupt(&root, "always mutated blobs");
}

#[test]
fn oversized_manifests_are_refused_by_name() {
    let bench = Bench::new();
    let oversize = |s: &Seen| is_manifest_get(s) && s.path().contains("/busybox/");
    let proxy = bench.proxy(Arc::new(move |s: &Seen| {
        if oversize(s) {
            Fault::Oversize { bytes: 5 << 20 }
        } else {
            Fault::Forward
        }
    }));
    let (out, root) = bench.build(&proxy, 1, "busybox:latest");
    assert!(
        !out.status.success(),
        "a base with an oversized manifest fails"
    );
    assert!(!succeeded_or_clear(&out, &["larger than the limit"]));
    report(
        "oversize (base)",
        &proxy,
        "build failed naming the manifest",
    );
    bench.assert_nothing_corrupt(&root, "an oversized base manifest");

    // An oversized cache manifest is a warning and a cold build.
    let proxy = bench.proxy(Arc::new(|s: &Seen| {
        if is_manifest_get(s) && s.path().ends_with("/app/manifests/cache") {
            Fault::Oversize { bytes: 5 << 20 }
        } else {
            Fault::Forward
        }
    }));
    let (out, root) = bench.build(&proxy, 2, "busybox:latest");
    assert_ok(&out, "a build whose cache manifest is oversized");
    assert!(String::from_utf8_lossy(&out.stderr).contains("WARNING: cache import"));
    report("oversize (cache)", &proxy, "build succeeded with a warning");
    bench.assert_nothing_corrupt(&root, "an oversized cache manifest");
}

fn is_upload_body(s: &Seen) -> bool {
    (s.method == "PATCH" || s.method == "PUT")
        && s.path().contains("/blobs/uploads/")
        && s.header("content-length").is_some_and(|l| l != "0")
}

#[test]
fn uploads_damaged_on_the_way_are_sent_again_and_a_lasting_fault_is_named() {
    let bench = Bench::new();
    // The first upload of every blob arrives with a flipped byte: the registry refuses it (the
    // digest the client names does not match) and the client sends it again in a new session.
    let seen: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let proxy = bench.proxy(Arc::new(move |s: &Seen| {
        if !is_upload_body(s) {
            return Fault::Forward;
        }
        let digest = s
            .target
            .split("digest=")
            .nth(1)
            .unwrap_or("chunk")
            .to_owned();
        let mut seen = seen.lock().unwrap();
        let tries = seen.entry(digest).or_default();
        *tries += 1;
        if *tries == 1 {
            Fault::MutateUpload { at: 10 }
        } else {
            Fault::Forward
        }
    }));
    let (out, root) = bench.build(&proxy, 1, "busybox:latest");
    assert_ok(&out, "a push whose first uploads are damaged");
    assert!(proxy.stats.total() >= 1, "{:?}", proxy.stats.by_class());
    report("mutate-upload (once per blob)", &proxy, "build succeeded");
    bench.assert_nothing_corrupt(&root, "damaged uploads");

    // Every upload damaged: the build fails naming the registry's complaint, and nothing
    // half-pushed is taken for an image.
    let always = bench.proxy(Arc::new(|s: &Seen| {
        if is_upload_body(s) {
            Fault::MutateUpload { at: 10 }
        } else {
            Fault::Forward
        }
    }));
    let (out, root) = bench.build(&always, 2, "busybox:latest");
    assert!(
        !out.status.success(),
        "uploads damaged every time fail the push"
    );
    assert!(!succeeded_or_clear(&out, &["DIGEST_INVALID"]));
    report(
        "mutate-upload (always)",
        &always,
        "build failed naming DIGEST_INVALID",
    );
    bench.assert_nothing_corrupt(&root, "always damaged uploads");
}
