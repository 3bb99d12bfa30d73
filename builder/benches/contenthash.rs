//! Content-hashing a 200 MB, 20,000-file context (three directory levels) against the baseline
//! `find ... -print0 | xargs -0 sha256sum` over the same files.
//!
//! Run with `cargo bench -p inlay-builder --bench contenthash`. Besides criterion's report it
//! prints the best-of-three wall times and the ratio inlay / sha256sum on stderr.

#![allow(clippy::unwrap_used)] // a bench fails loudly on a broken fixture

use std::fs;
use std::hint::black_box;
use std::io::Write;
use std::num::NonZeroUsize;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use inlay_builder::context::{ContextOptions, hash_directory};
use inlay_core::contenthash::{Profile, SourceKind, TreeOptions};

const TOP: usize = 20;
const MID: usize = 10;
const LEAF: usize = 10;
const FILES_PER_DIR: usize = 10;
const FILE_SIZE: usize = 10_000;

/// Writes 20 x 10 x 10 directories with 10 files of 10,000 pseudo-random bytes each:
/// 20,000 files, 200 MB.
fn generate(root: &Path) -> u64 {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buffer = vec![0u8; FILE_SIZE];
    let mut total = 0;
    for top in 0..TOP {
        for mid in 0..MID {
            for leaf in 0..LEAF {
                let dir = root.join(format!("t{top:02}/m{mid}/l{leaf}"));
                fs::create_dir_all(&dir).unwrap();
                for file in 0..FILES_PER_DIR {
                    for chunk in buffer.chunks_mut(8) {
                        // xorshift64: cheap bytes that do not compress or dedupe.
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
                    }
                    let mut f = fs::File::create(dir.join(format!("f{file}.bin"))).unwrap();
                    f.write_all(&buffer).unwrap();
                    total += FILE_SIZE as u64;
                }
            }
        }
    }
    total
}

fn inlay(root: &Path, threads: usize) {
    let mut options = ContextOptions::new(TreeOptions::new(
        Profile::BuildkitCurrent,
        SourceKind::LocalContext,
    ));
    options.threads = NonZeroUsize::new(threads).unwrap();
    let tree = hash_directory(root, &options).unwrap();
    black_box(tree.root_digest());
}

fn sha256sum(root: &Path, parallel: usize) {
    let script = format!("find . -type f -print0 | xargs -0 -P{parallel} sha256sum");
    let status = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(root)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

fn best_of_three(mut run: impl FnMut()) -> Duration {
    (0..3)
        .map(|_| {
            let start = Instant::now();
            run();
            start.elapsed()
        })
        .min()
        .unwrap()
}

#[allow(clippy::print_stderr)] // the bench reports its ratio on stderr, next to criterion's.
fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`: skip the 200 MB fixture.
    if !std::env::args().any(|arg| arg == "--bench") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let bytes = generate(root);
    let threads = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);

    let mut criterion = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(6))
        .configure_from_args();
    let mut group = criterion.benchmark_group("context_200MB_20k_files");
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function(format!("inlay_{threads}_threads"), |b| {
        b.iter(|| inlay(root, threads));
    });
    group.bench_function("inlay_1_thread", |b| b.iter(|| inlay(root, 1)));
    group.bench_function("sha256sum", |b| b.iter(|| sha256sum(root, 1)));
    group.bench_function(format!("sha256sum_P{threads}"), |b| {
        b.iter(|| sha256sum(root, threads));
    });
    group.finish();
    criterion.final_summary();

    let ours = best_of_three(|| inlay(root, threads));
    let ours_single = best_of_three(|| inlay(root, 1));
    let base = best_of_three(|| sha256sum(root, 1));
    let base_parallel = best_of_three(|| sha256sum(root, threads));
    eprintln!(
        "best of 3: inlay {threads} threads {ours:?}, inlay 1 thread {ours_single:?}, \
         sha256sum {base:?}, sha256sum -P{threads} {base_parallel:?}"
    );
    eprintln!(
        "ratio inlay/sha256sum: {:.2} ({threads} threads vs one process), {:.2} (1 thread vs one \
         process), {:.2} ({threads} threads vs -P{threads})",
        ours.as_secs_f64() / base.as_secs_f64(),
        ours_single.as_secs_f64() / base.as_secs_f64(),
        ours.as_secs_f64() / base_parallel.as_secs_f64(),
    );
}
