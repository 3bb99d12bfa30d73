//! The build graph: BuildKit's LLB operations, modelled field for field.
//!
//! Cache keys hash op definitions (spec section 5), so the model keeps every field BuildKit's
//! `pb` messages have, with BuildKit's defaults, and nothing inlay-specific. Turning an op into a
//! key pre-image is the business of the cache-key module; executing it is the builder's.
//!
//! ```
//! use inlay_core::op::{ExecMeta, ExecOp, Graph, Input, Mount, Op, SourceOp};
//!
//! let mut graph = Graph::default();
//! let base = graph.add(Op::Source(SourceOp::image("docker.io/library/busybox:latest")), vec![]);
//! let run = graph.add(
//!     Op::Exec(ExecOp {
//!         meta: ExecMeta::shell("echo hello > /hello.txt", "/"),
//!         mounts: vec![Mount::rootfs(0)],
//!         ..ExecOp::default()
//!     }),
//!     vec![Input::new(base, 0)],
//! );
//! assert_eq!(graph.vertex(run).inputs.len(), 1);
//! ```

mod exec;
mod file;
mod source;

pub use exec::{
    CacheOpt, CacheSharing, ExecMeta, ExecOp, HostIp, Mount, MountType, NetMode, ProxyEnv,
    SecretEnv, SecretOpt, SecurityMode, SshOpt, TmpfsOpt, Ulimit,
};
pub use file::{
    ChownOpt, FileAction, FileActionKind, FileCopy, FileMkdir, FileMkfile, FileOp, FileRm,
    FileSymlink, UserOpt,
};
pub use source::SourceOp;

use crate::platform::Platform;

/// One operation of the build graph.
// Graphs hold tens to hundreds of ops; boxing would buy nothing measurable.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// A source: an image, the local build context, scratch, git, http.
    Source(SourceOp),
    /// A process run in a container (Dockerfile `RUN`).
    Exec(ExecOp),
    /// File actions (Dockerfile `COPY`, `ADD`, `WORKDIR`'s mkdir).
    File(FileOp),
    /// A merge of several inputs into one filesystem (`COPY --link`).
    Merge(MergeOp),
}

/// The merge of inputs `0..n` in order, later inputs on top (LLB `MergeOp`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MergeOp {
    /// The inputs merged, by index into the vertex's inputs.
    pub inputs: Vec<i64>,
}

/// Identifies a vertex inside its [`Graph`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VertexId(pub usize);

/// An edge: output `output` of vertex `vertex`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Input {
    /// The producing vertex.
    pub vertex: VertexId,
    /// Which of its outputs (0 for single-output ops).
    pub output: u32,
}

impl Input {
    /// Output `output` of `vertex`.
    pub fn new(vertex: VertexId, output: u32) -> Input {
        Input { vertex, output }
    }
}

/// An op with its inputs and the metadata that reaches the cache key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vertex {
    /// The operation.
    pub op: Op,
    /// Its inputs, in the op's input index order.
    pub inputs: Vec<Input>,
    /// The op's platform (the target platform for Dockerfile steps); keys of exec ops include it.
    pub platform: Option<Platform>,
    /// `--no-cache`: never look this op up in any cache.
    pub ignore_cache: bool,
    /// A human description, e.g. `[stage-0 2/5] RUN echo hello` (never part of a key).
    pub description: String,
}

/// A build graph: vertices in insertion order, inputs always pointing to earlier vertices, so
/// the order is a topological order by construction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Graph {
    vertices: Vec<Vertex>,
}

impl Graph {
    /// Adds an op whose inputs are already in the graph and returns its id.
    ///
    /// Inputs must point at earlier vertices; that keeps the graph acyclic by construction.
    pub fn add(&mut self, op: Op, inputs: Vec<Input>) -> VertexId {
        self.add_vertex(Vertex {
            op,
            inputs,
            platform: None,
            ignore_cache: false,
            description: String::new(),
        })
    }

    /// Adds a fully described vertex.
    ///
    /// # Panics
    /// When an input points at a vertex that is not yet in the graph: that is a bug in the
    /// caller (lowering), never a consequence of user input.
    pub fn add_vertex(&mut self, vertex: Vertex) -> VertexId {
        let id = VertexId(self.vertices.len());
        assert!(
            vertex.inputs.iter().all(|i| i.vertex.0 < id.0),
            "graph inputs must point to earlier vertices"
        );
        self.vertices.push(vertex);
        id
    }

    /// The vertex `id`.
    ///
    /// # Panics
    /// When `id` was not returned by this graph.
    pub fn vertex(&self, id: VertexId) -> &Vertex {
        &self.vertices[id.0]
    }

    /// Mutable access to vertex `id` (e.g. to set its description or platform).
    pub fn vertex_mut(&mut self, id: VertexId) -> &mut Vertex {
        &mut self.vertices[id.0]
    }

    /// All vertices in topological order with their ids.
    pub fn iter(&self) -> impl Iterator<Item = (VertexId, &Vertex)> {
        self.vertices
            .iter()
            .enumerate()
            .map(|(i, v)| (VertexId(i), v))
    }

    /// Number of vertices.
    pub fn len(&self) -> usize {
        self.vertices.len()
    }

    /// Whether the graph has no vertex.
    pub fn is_empty(&self) -> bool {
        self.vertices.is_empty()
    }

    /// The vertices `target` depends on, itself included, in topological order.
    pub fn ancestors(&self, target: VertexId) -> Vec<VertexId> {
        let mut needed = vec![false; self.vertices.len()];
        let mut stack = vec![target];
        while let Some(id) = stack.pop() {
            if std::mem::replace(&mut needed[id.0], true) {
                continue;
            }
            stack.extend(self.vertices[id.0].inputs.iter().map(|i| i.vertex));
        }
        needed
            .iter()
            .enumerate()
            .filter(|(_, n)| **n)
            .map(|(i, _)| VertexId(i))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ancestors_in_topological_order() {
        let mut g = Graph::default();
        let a = g.add(Op::Source(SourceOp::scratch()), vec![]);
        let b = g.add(Op::Source(SourceOp::image("busybox")), vec![]);
        let c = g.add(
            Op::Merge(MergeOp { inputs: vec![0, 1] }),
            vec![Input::new(a, 0), Input::new(b, 0)],
        );
        let _unrelated = g.add(Op::Source(SourceOp::scratch()), vec![]);
        assert_eq!(g.ancestors(c), vec![a, b, c]);
        assert_eq!(g.ancestors(b), vec![b]);
    }

    #[test]
    #[should_panic(expected = "earlier vertices")]
    fn refuses_forward_edges() {
        let mut g = Graph::default();
        g.add(
            Op::Source(SourceOp::scratch()),
            vec![Input::new(VertexId(3), 0)],
        );
    }
}
