//! Why a cache config or inline cache value was refused.

use crate::DigestError;
use crate::cache::TimestampError;

/// A cache config or inline cache value that cannot be used, with the record or layer at fault.
///
/// Record and layer numbers are positions in the arrays as they were read (0-based).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheRecordError {
    /// The inline value is not standard padded base64.
    #[error("inline cache value is not standard padded base64")]
    Base64 {
        /// The decoder's complaint.
        #[source]
        source: base64::DecodeError,
    },
    /// The bytes are not JSON of the cache config shape.
    #[error("cache records are not JSON of the expected shape")]
    Json {
        /// The parser's complaint.
        #[source]
        source: serde_json::Error,
    },
    /// A record has no `digest`.
    #[error("record {record} has no digest")]
    MissingDigest {
        /// The record.
        record: usize,
    },
    /// A record's `digest` is not a valid digest.
    #[error("record {record} has an invalid digest")]
    BadDigest {
        /// The record.
        record: usize,
        /// Why the digest was refused.
        #[source]
        source: DigestError,
    },
    /// A link's `selector` is not a valid digest.
    #[error("record {record} input {input} alternative {alternative} has an invalid selector")]
    BadSelector {
        /// The record.
        record: usize,
        /// The input index.
        input: usize,
        /// The position in that input's alternatives.
        alternative: usize,
        /// Why the selector was refused.
        #[source]
        source: DigestError,
    },
    /// A link points outside the records array.
    #[error(
        "record {record} input {input} links to record {link}, but there are {records} records"
    )]
    LinkOutOfRange {
        /// The record.
        record: usize,
        /// The input index.
        input: usize,
        /// The link index as written.
        link: i64,
        /// How many records there are.
        records: usize,
    },
    /// An input has no alternatives (`[]`); BuildKit v0.10+ refuses these too (spec section 2.6).
    #[error("record {record} input {input} has no links")]
    EmptyInput {
        /// The record.
        record: usize,
        /// The input index.
        input: usize,
    },
    /// Following `inputs` from a record leads back to it (BuildKit: "invalid looping record").
    #[error("record {record} loops back to itself through its inputs")]
    Loop {
        /// A record on the cycle.
        record: usize,
    },
    /// A result refers to a negative layer index.
    #[error("record {record} has a result with negative layer index {layer}")]
    NegativeLayer {
        /// The record.
        record: usize,
        /// The index as written.
        layer: i64,
    },
    /// A result refers to a layer outside the config's `layers` table.
    #[error("record {record} has a result on layer {layer}, but there are {layers} layers")]
    LayerOutOfRange {
        /// The record.
        record: usize,
        /// The index as written.
        layer: i64,
        /// How many layers the table has.
        layers: usize,
    },
    /// A result's `createdAt` is not an RFC 3339 time.
    #[error("record {record} has a result with an invalid createdAt")]
    BadResultTime {
        /// The record.
        record: usize,
        /// Why the time was refused.
        #[source]
        source: TimestampError,
    },
    /// A layer has no `blob`.
    #[error("layer {layer} has no blob digest")]
    MissingBlob {
        /// The layer.
        layer: usize,
    },
    /// A layer's `blob` or `annotations.diffID` is not a valid digest.
    #[error("layer {layer} has an invalid {field} digest")]
    BadLayerDigest {
        /// The layer.
        layer: usize,
        /// `blob` or `diffID`.
        field: &'static str,
        /// Why the digest was refused.
        #[source]
        source: DigestError,
    },
    /// A layer's `annotations.createdAt` is not an RFC 3339 time.
    #[error("layer {layer} has an invalid createdAt annotation")]
    BadLayerTime {
        /// The layer.
        layer: usize,
        /// Why the time was refused.
        #[source]
        source: TimestampError,
    },
    /// A layer's `parent` points outside the table (or below -1).
    #[error("layer {layer} has parent {parent}, but there are {layers} layers")]
    ParentOutOfRange {
        /// The layer.
        layer: usize,
        /// The parent index as written.
        parent: i64,
        /// How many layers the table has.
        layers: usize,
    },
    /// Following `parent` from a layer leads back to it.
    #[error("layer {layer} is its own ancestor through parent links")]
    LayerLoop {
        /// A layer on the cycle.
        layer: usize,
    },
}
