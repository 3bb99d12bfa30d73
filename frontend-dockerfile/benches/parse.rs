//! Parsing a generated 5,000-instruction Dockerfile, against a baseline measured in the same run:
//! splitting the same text into lines, the least any parser must do.

use std::fmt::Write as _;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_main};
use inlay_frontend_dockerfile::{instructions, parser};

/// A realistic mix: stages, ARG/ENV, RUN with continuations and mounts, COPY with flags, JSON
/// forms, LABELs, comments and heredocs; exactly `count` instructions.
fn generate(count: usize) -> String {
    let mut out = String::from("# syntax=docker/dockerfile:1\nARG BASE=debian:bookworm\n");
    let mut n = 1;
    let mut stage = 0;
    while n < count {
        let _ = match n % 10 {
            0 => {
                stage += 1;
                writeln!(out, "FROM ${{BASE}} AS stage{stage}")
            }
            1 => writeln!(
                out,
                "# install the build tools\nRUN apt-get update && \\\n    apt-get install -y --no-install-recommends \\\n      build-essential curl git && \\\n    rm -rf /var/lib/apt/lists/*"
            ),
            2 => writeln!(out, "ENV PATH=/usr/local/bin:$PATH LANG=C.UTF-8 N={n}"),
            3 => writeln!(
                out,
                "COPY --chown=1000:1000 --link src/ include/ /work/src/"
            ),
            4 => writeln!(
                out,
                "RUN --mount=type=cache,target=/root/.cache,sharing=locked --mount=type=bind,source=go.sum,target=go.sum go build -o /out/app{n} ./cmd/app"
            ),
            5 => writeln!(
                out,
                "LABEL org.opencontainers.image.title=\"app {n}\" version=1.{n}"
            ),
            6 => writeln!(out, "CMD [\"/out/app\", \"--port\", \"8080\"]"),
            7 => writeln!(
                out,
                "COPY <<EOF /etc/app{n}.conf\nlisten = 8080\nworkers = 4\nEOF"
            ),
            8 => writeln!(out, "WORKDIR /work/{n}"),
            _ => writeln!(out, "ARG VERSION_{n}=1.0.{n}"),
        };
        n += 1;
    }
    out
}

fn bench(c: &mut Criterion) {
    let text = generate(5_000);
    let parsed = parser::parse(text.as_bytes(), "Dockerfile").expect("the generated file parses");
    assert_eq!(parsed.nodes.len(), 5_000);

    let mut group = c.benchmark_group("dockerfile-5000");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("baseline: split lines", |b| {
        b.iter(|| black_box(&text).lines().map(str::len).sum::<usize>());
    });
    group.bench_function("parse (AST)", |b| {
        b.iter(|| parser::parse(black_box(text.as_bytes()), "Dockerfile").map(|d| d.nodes.len()));
    });
    group.bench_function("parse + typed instructions", |b| {
        b.iter(|| {
            instructions::parse_bytes(black_box(text.as_bytes()), "Dockerfile")
                .map(|d| d.stages.len())
        });
    });
    group.finish();
}

// criterion's macro defines an undocumented public function.
#[allow(missing_docs)]
mod group {
    criterion::criterion_group!(benches, super::bench);
}
use group::benches;

criterion_main!(benches);
