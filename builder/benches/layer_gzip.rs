//! Writing a gzip layer from a 50 MB tree with inlay's layer writer, against `tar -cz` of the
//! same tree in the same run. Prints the ratio of the best times at the end.

// A benchmark reports to the terminal.
#![allow(clippy::print_stdout, clippy::unwrap_used, missing_docs)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use inlay_builder::layer::{LayerOptions, LayerSource, write_layer};

const FILES: usize = 200;
const FILE_SIZE: usize = 256 * 1024;

/// 200 files of 256 kibibytes: half words from a small vocabulary (compressible like source code),
/// half pseudo-random bytes (like binaries that gzip cannot shrink much).
fn make_tree(root: &Path) {
    let words = [
        "fn ", "let ", "match ", "layer ", "digest ", "{ ", "} ", "\n", "0x", "return ",
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..FILES {
        let dir = root.join(format!("dir{:02}", i % 16));
        std::fs::create_dir_all(&dir).unwrap();
        let mut data = Vec::with_capacity(FILE_SIZE);
        while data.len() < FILE_SIZE {
            if i % 2 == 0 {
                data.extend_from_slice(words[(next() % words.len() as u64) as usize].as_bytes());
            } else {
                data.extend_from_slice(&next().to_le_bytes());
            }
        }
        data.truncate(FILE_SIZE);
        std::fs::write(dir.join(format!("file{i:03}")), data).unwrap();
    }
}

fn inlay_gzip(root: &Path) {
    write_layer(
        LayerSource::Tree(root),
        std::io::sink(),
        &LayerOptions::default(),
    )
    .unwrap();
}

fn tar_gzip(root: &Path) {
    let status = Command::new("tar")
        .args(["--sort=name", "-cz", "-f", "-", "-C"])
        .arg(root)
        .arg(".")
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

fn best_of(runs: usize, f: impl Fn()) -> Duration {
    (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .min()
        .unwrap()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    make_tree(dir.path());
    let mut group = c.benchmark_group("gzip_layer_50MB");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("inlay_write_layer", |b| b.iter(|| inlay_gzip(dir.path())));
    group.bench_function("tar_cz", |b| b.iter(|| tar_gzip(dir.path())));
    group.finish();

    let inlay = best_of(3, || inlay_gzip(dir.path()));
    let tar = best_of(3, || tar_gzip(dir.path()));
    println!(
        "gzip layer of {} MB: inlay {:.3}s, tar -cz {:.3}s, inlay/tar time ratio {:.2}",
        FILES * FILE_SIZE / 1_000_000,
        inlay.as_secs_f64(),
        tar.as_secs_f64(),
        inlay.as_secs_f64() / tar.as_secs_f64()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
