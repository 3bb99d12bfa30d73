//! Push and pull of 200 small blobs against a harness registry, concurrently vs one at a time.
//!
//! `cargo bench -p inlay-registry --bench blobs`; compare `concurrent` with `sequential` in each
//! group for the speed-up bounded concurrency gives.
#![allow(missing_docs, clippy::missing_panics_doc, clippy::unwrap_used)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use inlay_core::{Descriptor, media_types};
use inlay_registry::{BlobSource, Client, CredentialStore};
use support::registry::{Setup, TestRegistry};

const BLOBS: usize = 200;
const BLOB_SIZE: usize = 2048;

fn blobs(seed: u64) -> Vec<(Descriptor, BlobSource)> {
    (0..BLOBS as u64)
        .map(|i| {
            let b = Bytes::from(support::image::random_bytes(seed * 10_000 + i, BLOB_SIZE));
            (
                Descriptor::of_bytes(media_types::OCI_LAYER_GZIP, &b),
                BlobSource::Bytes(b),
            )
        })
        .collect()
}

fn client(concurrency: usize) -> Client {
    let mut config = support::test_config();
    config.concurrency = concurrency;
    Client::new(config, CredentialStore::empty()).unwrap()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let reg = TestRegistry::start(&Setup::Open);
    let host = reg.host();
    let seed = AtomicU64::new(1);
    let modes = [("concurrent", 8), ("sequential", 1)];

    let mut push = c.benchmark_group("push_200_small_blobs");
    push.sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .warm_up_time(Duration::from_secs(1));
    for (name, n) in modes {
        let client = client(n);
        let r = support::reference(&host, "bench/push:1");
        push.bench_function(name, |b| {
            b.iter_batched(
                || blobs(seed.fetch_add(1, Ordering::SeqCst)),
                |batch| rt.block_on(client.push_blobs(&r, batch)).unwrap(),
                BatchSize::PerIteration,
            );
        });
    }
    push.finish();

    let r = support::reference(&host, "bench/pull:1");
    let stored = blobs(0);
    let descriptors: Vec<Descriptor> = stored.iter().map(|(d, _)| d.clone()).collect();
    rt.block_on(client(8).push_blobs(&r, stored)).unwrap();
    let mut pull = c.benchmark_group("pull_200_small_blobs");
    pull.sample_size(10)
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1));
    for (name, n) in modes {
        let client = client(n);
        pull.bench_function(name, |b| {
            b.iter(|| rt.block_on(client.pull_blobs(&r, &descriptors)).unwrap());
        });
    }
    pull.finish();
    drop(reg);
}

criterion_group!(benches, bench);
criterion_main!(benches);
