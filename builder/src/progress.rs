//! Typed progress events of a solve, for the CLI (or any caller) to render.
//!
//! The builder never prints; it hands these to a [`ProgressSink`] from whichever worker thread
//! the event happens on, so a sink must be cheap and thread-safe (a channel sender is typical).

use std::sync::Arc;
use std::time::Duration;

use inlay_core::op::VertexId;

/// Where a cached result came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheOrigin {
    /// The local cache index in the store.
    Local,
    /// Another cache, named by the implementation (an imported registry cache, ...).
    Other(String),
}

/// Which output stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One thing that happened during a solve.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProgressEvent {
    /// A vertex started (its inputs are ready).
    Started {
        /// The vertex.
        vertex: VertexId,
        /// Its description.
        name: String,
    },
    /// A vertex's result came from a cache; it will not run.
    Cached {
        /// The vertex.
        vertex: VertexId,
        /// Where the result came from.
        origin: CacheOrigin,
    },
    /// A layer blob is being downloaded because a step needs the filesystem.
    Pulling {
        /// The vertex that needs it.
        vertex: VertexId,
        /// The blob.
        digest: inlay_core::Digest,
        /// Its size in bytes.
        size: u64,
    },
    /// A line a running command printed.
    Log {
        /// The vertex.
        vertex: VertexId,
        /// The stream.
        stream: LogStream,
        /// The line, without its newline.
        line: String,
    },
    /// A vertex finished.
    Done {
        /// The vertex.
        vertex: VertexId,
        /// How long it took (wall clock, input waiting excluded).
        duration: Duration,
        /// Bytes of new layer blobs it produced (0 when cached or for sources).
        bytes: u64,
    },
    /// A vertex failed; the solve stops scheduling new work.
    Failed {
        /// The vertex.
        vertex: VertexId,
        /// The error, rendered with its causes.
        error: String,
    },
}

/// Receives progress events; called from worker threads.
pub type ProgressSink = Arc<dyn Fn(ProgressEvent) + Send + Sync>;

/// A sink that drops every event.
pub fn discard() -> ProgressSink {
    Arc::new(|_| {})
}

/// An error and every cause below it on one line, `: `-separated, as progress events, warnings
/// and the CLI print them.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
