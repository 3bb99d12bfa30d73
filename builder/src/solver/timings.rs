//! Where a solve's time went, summed over its workers: pulling blobs, extracting snapshots,
//! running commands, writing (diffing and compressing) layers.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Time spent per phase of a solve, summed over the workers (parallel steps add up).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SolveTimings {
    /// Downloading layer blobs.
    pub pull: Duration,
    /// Extracting layers into snapshots.
    pub snapshot: Duration,
    /// Commands in the OCI runtime.
    pub run: Duration,
    /// Diffing snapshots into layers and compressing them.
    pub compress: Duration,
}

/// The shared counters behind [`SolveTimings`].
#[derive(Debug, Default)]
pub(crate) struct PhaseClock {
    pull: AtomicU64,
    snapshot: AtomicU64,
    run: AtomicU64,
    compress: AtomicU64,
}

/// A phase of [`PhaseClock`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Phase {
    Pull,
    Snapshot,
    Run,
    Compress,
}

impl PhaseClock {
    /// Runs `f`, adding its wall time to `phase`.
    pub(crate) fn time<T>(&self, phase: Phase, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = f();
        let nanos = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let counter = match phase {
            Phase::Pull => &self.pull,
            Phase::Snapshot => &self.snapshot,
            Phase::Run => &self.run,
            Phase::Compress => &self.compress,
        };
        counter.fetch_add(nanos, Ordering::Relaxed);
        out
    }

    /// The totals.
    pub(crate) fn totals(&self) -> SolveTimings {
        let d = |c: &AtomicU64| Duration::from_nanos(c.load(Ordering::Relaxed));
        SolveTimings {
            pull: d(&self.pull),
            snapshot: d(&self.snapshot),
            run: d(&self.run),
            compress: d(&self.compress),
        }
    }
}
