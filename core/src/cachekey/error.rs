//! Why a cache key could not be formed.

use crate::op::VertexId;

/// A vertex whose keys cannot be computed, with the vertex and the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The profile name is not one inlay knows.
    #[error("unknown cache key profile {name:?} (known: buildkit-v0.8, buildkit-current)")]
    UnknownProfile {
        /// The name given.
        name: String,
    },
    /// An image source has no resolved image facts.
    #[error("image source {vertex:?} was not resolved (no manifest digest or diff_ids given)")]
    MissingImageFacts {
        /// The vertex.
        vertex: VertexId,
    },
    /// A source whose key BuildKit computes from remote state the caller did not give.
    #[error("source {vertex:?} ({identifier}) needs its source keys from the caller")]
    MissingSourceKeys {
        /// The vertex.
        vertex: VertexId,
        /// Its identifier.
        identifier: String,
    },
    /// An op refers to an input index the vertex does not have.
    #[error("{vertex:?} {field} refers to input {index}, but the op has {inputs} inputs")]
    InputOutOfRange {
        /// The vertex.
        vertex: VertexId,
        /// Which field (`mount /dest`, `action 2`, ...).
        field: String,
        /// The index.
        index: i64,
        /// How many inputs the op has.
        inputs: usize,
    },
    /// A vertex was keyed before one of its inputs.
    #[error("{vertex:?} input {input} comes from {parent:?}, which has no keys yet")]
    InputNotKeyed {
        /// The vertex.
        vertex: VertexId,
        /// The input index.
        input: usize,
        /// The parent vertex.
        parent: VertexId,
    },
    /// A vertex id that is not in the graph.
    #[error("{vertex:?} is not in the graph")]
    UnknownVertex {
        /// The vertex.
        vertex: VertexId,
    },
}
