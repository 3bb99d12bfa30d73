//! BuildKit's cache records: the inline cache value and the registry cache config (spec
//! sections 2 and 3), plus the digest formulas that name records (section 5.1).
//!
//! * [`RecordGraph`]: records referencing each other by index, always valid (links in range,
//!   no loops, no empty input sets). [`RecordGraph::from_inline`] reads the
//!   `moby.buildkit.cache.v0` value of any BuildKit version; [`RecordGraph::to_inline`] writes
//!   it canonically, byte for byte as BuildKit does.
//! * [`CacheConfig`]: a registry cache config blob, the same graph plus a layers table.
//! * [`key`]: `record_digest` and friends.
//! * [`store`] and [`matcher`]: imported caches and local results, and how a build's keys hit
//!   them (sections 4.5 and 4.6).
//! * [`export`]: a solved build's keys turned into inline records (sections 2.5 and 3.2).
//! * [`artifact`]: inlay's stages cache artifact (an OCI artifact holding a cache config for a
//!   multi-stage build's non-final stages) and the distribution source annotation.
//!
//! ```
//! use inlay_core::cache::RecordGraph;
//!
//! // `[{"digest":"sha256:…"}]`, one root record.
//! let value = "W3siZGlnZXN0Ijoic2hhMjU2OmIxMzllYThiZjA3YWNlNjQzNDE1MzU0YTQ2Y2UxMWMwNjQ5Yjg3YTRjN2M0OTVjOWJhMmZjNjAyOTQ5M2FlNzQifV0=";
//! let graph = RecordGraph::from_inline(value).unwrap();
//! assert_eq!(graph.len(), 1);
//! assert!(graph.records()[0].is_root());
//! assert_eq!(graph.to_inline(), value);
//! ```

pub mod artifact;
mod codec;
mod error;
pub mod export;
pub mod key;
pub mod matcher;
mod record;
pub mod store;
mod timestamp;

pub use error::CacheRecordError;
pub use export::{ExportResult, ResultForm, export_chain, export_chains};
pub use matcher::{Alternative, Hit, KeyMatches, Lookup, MatchSet, MissExplanation};
pub use record::{
    CacheConfig, CacheInput, CacheLayer, CacheRecord, CacheResult, ChainedResult, LayerAnnotations,
    RecordGraph,
};
pub use store::{CacheStore, Origin, OriginId, RecordRef, StoredLink, StoredRecord, StoredResult};
pub use timestamp::{Timestamp, TimestampError};
