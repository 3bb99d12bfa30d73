//! The solver: executes a build graph ([`inlay_core::op::Graph`]) from a target output down.
//!
//! Every vertex the target depends on is visited once its inputs are done; independent vertices
//! run in parallel on up to [`SolverOptions::parallelism`] threads. For each vertex the solver
//! forms BuildKit's keys step by step ([`KeySolver`]; content keys of local-context inputs from
//! [`crate::context::hash_directory`]), asks the [`ResultCache`] (unless the vertex ignores the
//! cache), and on a miss runs it:
//!
//! * sources resolve (images through an [`ImageSource`]: manifest and config only, the layers
//!   stay lazy references; `local://` names are staged from the caller's directories);
//! * execs run in the OCI runtime over an overlay snapshot of their input, with cache, bind,
//!   tmpfs and secret mounts, and their upperdir becomes a new layer;
//! * file ops run in-process ([`crate::fileop`]) on a snapshot and their changes become a layer;
//! * merges concatenate their inputs' layer chains.
//!
//! Layer blobs are pulled and extracted only when a step that runs needs the files. A result is
//! a [`Filesystem`]: a chain of [`LayerRef`]s.
//!
//! ```
//! use std::sync::Arc;
//! use inlay_builder::solver::{LocalCache, SolveRequest, Solver, SolverOptions};
//! use inlay_builder::store::Store;
//! use inlay_core::op::{FileAction, FileActionKind, FileMkfile, FileOp, Graph, Input, Op, SourceOp};
//!
//! let mut graph = Graph::default();
//! let scratch = graph.add(Op::Source(SourceOp::scratch()), vec![]);
//! let file = graph.add(
//!     Op::File(FileOp {
//!         actions: vec![FileAction {
//!             input: 0,
//!             secondary_input: -1,
//!             output: 0,
//!             kind: FileActionKind::Mkfile(FileMkfile {
//!                 path: "/hello.txt".into(),
//!                 mode: 0o644,
//!                 data: b"hello\n".to_vec(),
//!                 owner: None,
//!                 timestamp: 0,
//!             }),
//!         }],
//!     }),
//!     vec![Input::new(scratch, 0)],
//! );
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path())?;
//! let solver = Solver::new(store.clone(), SolverOptions::default());
//! let mut request = SolveRequest::new(&graph, Input::new(file, 0));
//! request.cache = Some(Arc::new(LocalCache::new(store)));
//! let first = solver.solve(&request)?;
//! assert_eq!(first.result.layers().map(<[_]>::len), Some(1));
//! // The same graph again: served by the store's local cache.
//! let second = solver.solve(&request)?;
//! assert_eq!(second.cached, vec![file]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cache;
mod exec;
mod file_action;
mod keys;
mod result;
mod schedule;
mod timings;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use inlay_core::cachekey::{
    ImageKeyFacts, KeyError, KeyGraph, KeyId, KeyProfile, KeySolver, VertexFacts,
};
use inlay_core::contenthash::{self, ContentTree};
use inlay_core::op::{Graph, Input, Op, VertexId};
use inlay_core::{Digest, Platform};

pub use cache::{CacheHit, CacheQuery, LocalCache, ResultCache};
pub use keys::local_key;
pub use result::{Filesystem, LayerRef, StagedDir};
use schedule::{Schedule, schedule};
pub use timings::SolveTimings;
use timings::{Phase, PhaseClock};

use crate::context::ContextError;
use crate::fileop::FileOpError;
use crate::layer::{LayerError, LayerOptions, LayerSource, write_layer};
use crate::progress::{ProgressEvent, ProgressSink};
use crate::runtime::{Runtime, RuntimeError};
use crate::snapshot::{self, SnapshotError, SnapshotMode};
use crate::source::{ImageSource, LocalSource, ResolvedImage, SourceError, stage_local};
use crate::store::{Store, StoreError};

/// Why a solve failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SolveError {
    /// A vertex failed; `source` says why.
    #[error("{name}")]
    Vertex {
        /// The vertex.
        vertex: VertexId,
        /// Its description (or its id when it has none).
        name: String,
        /// The cause.
        #[source]
        source: Box<SolveError>,
    },
    /// Keys could not be formed.
    #[error("forming cache keys")]
    Key(#[from] KeyError),
    /// A source failed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The command of an exec failed (the error holds its status and last lines).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// A file action failed.
    #[error(transparent)]
    File(#[from] FileOpError),
    /// A snapshot could not be prepared.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A layer could not be written.
    #[error(transparent)]
    Layer(#[from] LayerError),
    /// The local context could not be hashed.
    #[error(transparent)]
    Context(#[from] ContextError),
    /// A content key could not be computed.
    #[error("computing a content key")]
    ContentHash(#[from] contenthash::ContentHashError),
    /// A secret the step needs was not given.
    #[error("secret {id} not found")]
    MissingSecret {
        /// The secret id.
        id: String,
    },
    /// The graph uses something this solver does not implement.
    #[error("unsupported: {what}")]
    Unsupported {
        /// What.
        what: String,
    },
    /// A layer's blob is neither in the store nor pullable.
    #[error("layer blob {digest} is not in the store and has no image to pull it from")]
    MissingBlob {
        /// The blob.
        digest: Digest,
    },
    /// A bug or broken invariant.
    #[error("internal error: {reason}")]
    Internal {
        /// What went wrong.
        reason: String,
    },
}

/// How the solver runs steps.
#[derive(Debug, Clone)]
pub struct SolverOptions {
    /// The OCI runtime for execs.
    pub runtime: Runtime,
    /// How writable snapshots are made.
    pub snapshot_mode: SnapshotMode,
    /// The platform for vertices without one (and for resolving images).
    pub platform: Platform,
    /// The BuildKit key scheme.
    pub profile: KeyProfile,
    /// Compression and `SOURCE_DATE_EPOCH` of new layers.
    pub layer: LayerOptions,
    /// OCI layer media types (else Docker's).
    pub oci_media_types: bool,
    /// At most this many vertices run at once.
    pub parallelism: usize,
}

impl Default for SolverOptions {
    fn default() -> Self {
        SolverOptions {
            runtime: Runtime::default(),
            snapshot_mode: SnapshotMode::Auto,
            platform: Platform::linux_amd64(),
            profile: KeyProfile::BuildkitCurrent,
            layer: LayerOptions::default(),
            oci_media_types: false,
            parallelism: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

/// One solve: the graph, its target, and what the caller provides.
#[derive(Clone)]
pub struct SolveRequest<'g> {
    /// The graph.
    pub graph: &'g Graph,
    /// The output wanted.
    pub target: Input,
    /// Local directories by name (`local://context` is `"context"`).
    pub locals: HashMap<String, LocalSource>,
    /// Secret contents by id (mounted as files, never written into layers).
    pub secrets: HashMap<String, Vec<u8>>,
    /// Where images come from (required when the graph has image sources).
    pub images: Option<Arc<dyn ImageSource>>,
    /// The cache to ask (`None`: never cached).
    pub cache: Option<Arc<dyn ResultCache>>,
    /// Progress events.
    pub progress: ProgressSink,
}

impl<'g> SolveRequest<'g> {
    /// A request for `target` of `graph` with nothing provided and events discarded.
    pub fn new(graph: &'g Graph, target: Input) -> SolveRequest<'g> {
        SolveRequest {
            graph,
            target,
            locals: HashMap::new(),
            secrets: HashMap::new(),
            images: None,
            cache: None,
            progress: crate::progress::discard(),
        }
    }
}

impl std::fmt::Debug for SolveRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SolveRequest")
            .field("target", &self.target)
            .field("locals", &self.locals)
            .field("secrets", &self.secrets.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// What a solve produced and did.
#[derive(Debug, Clone)]
pub struct SolveOutcome {
    /// The target's filesystem.
    pub result: Filesystem,
    /// Vertices that ran (sources resolved included), in completion order.
    pub executed: Vec<VertexId>,
    /// Vertices whose results came from the cache.
    pub cached: Vec<VertexId>,
    /// How many commands the OCI runtime ran.
    pub runtime_runs: u64,
    /// Blobs pulled from registries.
    pub pulled: Vec<Digest>,
    /// Images resolved, by source vertex.
    pub images: BTreeMap<VertexId, ResolvedImage>,
    /// The layer chain of every vertex output computed or found (local directories left out),
    /// for exporters that map keys to layers (the inline cache).
    pub results: BTreeMap<Input, Vec<LayerRef>>,
    /// The local key of every keyed vertex output.
    pub keys: BTreeMap<Input, Digest>,
    /// The BuildKit keys formed.
    pub key_graph: KeyGraph,
    /// Where the time went.
    pub timings: SolveTimings,
}

/// Runs build graphs against one store.
#[derive(Debug, Clone)]
pub struct Solver {
    store: Store,
    options: SolverOptions,
}

/// What one vertex produced.
struct VertexDone {
    outputs: Vec<(u32, Filesystem)>,
    cached: bool,
    image: Option<ResolvedImage>,
}

/// Keys and their memoised local digests, shared by the workers.
/// Per output of a vertex: its index, local key, record digests and key ids.
pub(crate) type OutputKeys = (u32, Digest, Vec<Digest>, Vec<KeyId>);

struct Keys<'g> {
    solver: KeySolver<'g>,
    memo: HashMap<KeyId, Option<Digest>>,
}

/// Everything the workers share during one solve.
pub(crate) struct SolveContext<'a, 'g> {
    pub(crate) store: &'a Store,
    pub(crate) options: &'a SolverOptions,
    pub(crate) request: &'a SolveRequest<'g>,
    keys: Mutex<Keys<'g>>,
    trees: Mutex<HashMap<PathBuf, Arc<ContentTree>>>,
    pulled: Mutex<Vec<Digest>>,
    pub(crate) runtime_runs: AtomicU64,
    pub(crate) clock: PhaseClock,
}

impl Solver {
    /// A solver over `store`.
    pub fn new(store: Store, options: SolverOptions) -> Solver {
        Solver { store, options }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The options.
    pub fn options(&self) -> &SolverOptions {
        &self.options
    }

    /// Solves `request.target`.
    pub fn solve(&self, request: &SolveRequest<'_>) -> Result<SolveOutcome, SolveError> {
        let graph = request.graph;
        if request.target.vertex.0 >= graph.len() {
            return Err(SolveError::Internal {
                reason: format!(
                    "target vertex {} is not in the graph",
                    request.target.vertex.0
                ),
            });
        }
        let ctx = SolveContext {
            store: &self.store,
            options: &self.options,
            request,
            keys: Mutex::new(Keys {
                solver: KeySolver::new(graph, self.options.profile, self.options.platform.clone()),
                memo: HashMap::new(),
            }),
            trees: Mutex::new(HashMap::new()),
            pulled: Mutex::new(Vec::new()),
            runtime_runs: AtomicU64::new(0),
            clock: PhaseClock::default(),
        };
        let Schedule {
            mut results,
            executed,
            cached,
            images,
            failure,
        } = schedule(&ctx, self.options.parallelism.max(1));
        if let Some(e) = failure {
            return Err(e);
        }
        let result = results
            .remove(&request.target)
            .ok_or_else(|| SolveError::Internal {
                reason: "the target produced no such output".to_owned(),
            })?;
        let keys = ctx.keys.into_inner().map_err(|_| SolveError::Internal {
            reason: "a worker panicked while forming keys".to_owned(),
        })?;
        let mut local_keys = BTreeMap::new();
        let key_graph = keys.solver.into_keys();
        for input in results.keys().chain(std::iter::once(&request.target)) {
            if let Some(d) = key_graph
                .keys_of(*input)
                .iter()
                .find_map(|k| keys.memo.get(k).cloned().flatten())
            {
                local_keys.insert(*input, d);
            }
        }
        let layer_results = results
            .iter()
            .chain(std::iter::once((&request.target, &result)))
            .filter_map(|(input, fs)| fs.layers().map(|l| (*input, l.to_vec())))
            .collect();
        Ok(SolveOutcome {
            results: layer_results,
            result,
            executed,
            cached,
            runtime_runs: ctx.runtime_runs.load(Ordering::Relaxed),
            pulled: ctx.pulled.into_inner().unwrap_or_default(),
            images,
            keys: local_keys,
            key_graph,
            timings: ctx.clock.totals(),
        })
    }
}

impl SolveContext<'_, '_> {
    pub(crate) fn emit(&self, event: ProgressEvent) {
        (self.request.progress)(event);
    }

    fn name(&self, v: VertexId) -> String {
        let d = &self.request.graph.vertex(v).description;
        if d.is_empty() {
            format!("vertex {}", v.0)
        } else {
            d.clone()
        }
    }

    fn run_vertex(&self, v: VertexId, inputs: &[Filesystem]) -> Result<VertexDone, SolveError> {
        let start = Instant::now();
        self.emit(ProgressEvent::Started {
            vertex: v,
            name: self.name(v),
        });
        match self.run_vertex_inner(v, inputs) {
            Ok((done, bytes)) => {
                self.emit(ProgressEvent::Done {
                    vertex: v,
                    duration: start.elapsed(),
                    bytes,
                });
                Ok(done)
            }
            Err(e) => {
                self.emit(ProgressEvent::Failed {
                    vertex: v,
                    error: crate::progress::error_chain(&e),
                });
                Err(SolveError::Vertex {
                    vertex: v,
                    name: self.name(v),
                    source: Box::new(e),
                })
            }
        }
    }

    fn run_vertex_inner(
        &self,
        v: VertexId,
        inputs: &[Filesystem],
    ) -> Result<(VertexDone, u64), SolveError> {
        let vertex = self.request.graph.vertex(v);
        if let Op::Source(source) = &vertex.op {
            let (fs, image, facts) = self.resolve_source(v, source)?;
            self.add_keys(v, &facts, inputs)?;
            let done = VertexDone {
                outputs: vec![(0, fs)],
                cached: false,
                image,
            };
            return Ok((done, 0));
        }
        let local_keys = self.add_keys(v, &VertexFacts::default(), inputs)?;
        let queries: Vec<OutputKeys> = local_keys;
        if !vertex.ignore_cache {
            if let Some(cache) = &self.request.cache {
                let mut hits = Vec::new();
                let keys = self.keys.lock().map_err(poisoned)?;
                for (output, key, records, ids) in &queries {
                    let query = CacheQuery {
                        vertex,
                        output: *output,
                        inputs,
                        local_key: key,
                        record_digests: records,
                        key_graph: Some(keys.solver.keys()),
                        key_ids: ids,
                    };
                    match cache.lookup(&query)? {
                        Some(hit) => hits.push((*output, hit)),
                        None => break,
                    }
                }
                drop(keys);
                if !queries.is_empty() && hits.len() == queries.len() {
                    if let Some((_, first)) = hits.first() {
                        self.emit(ProgressEvent::Cached {
                            vertex: v,
                            origin: first.origin.clone(),
                        });
                    }
                    let outputs = hits
                        .into_iter()
                        .map(|(o, hit)| (o, Filesystem::Layers(hit.layers)))
                        .collect();
                    let done = VertexDone {
                        outputs,
                        cached: true,
                        image: None,
                    };
                    return Ok((done, 0));
                }
            }
        }
        let (outputs, bytes) = match &vertex.op {
            Op::Exec(exec) => exec::run_exec(self, v, exec, inputs)?,
            Op::File(file) => file_action::run_file_op(self, v, file, inputs)?,
            Op::Merge(merge) => (merge_layers(&merge.inputs, inputs)?, 0),
            Op::Source(_) => unreachable_source()?,
            _ => {
                return Err(SolveError::Unsupported {
                    what: "an op kind this solver does not know".to_owned(),
                });
            }
        };
        if let Some(cache) = &self.request.cache {
            for (output, key, records, _) in &queries {
                let Some((_, Filesystem::Layers(layers))) =
                    outputs.iter().find(|(o, _)| o == output)
                else {
                    continue;
                };
                let query = CacheQuery {
                    vertex,
                    output: *output,
                    inputs,
                    local_key: key,
                    record_digests: records,
                    key_graph: None,
                    key_ids: &[],
                };
                cache.save(&query, layers)?;
            }
        }
        let done = VertexDone {
            outputs,
            cached: false,
            image: None,
        };
        Ok((done, bytes))
    }

    fn resolve_source(
        &self,
        v: VertexId,
        source: &inlay_core::op::SourceOp,
    ) -> Result<(Filesystem, Option<ResolvedImage>, VertexFacts), SolveError> {
        if source.is_scratch() {
            return Ok((Filesystem::scratch(), None, VertexFacts::default()));
        }
        if let Some(reference) = source.image_reference() {
            let images =
                self.request
                    .images
                    .as_ref()
                    .ok_or_else(|| SourceError::NoImageSource {
                        reference: reference.to_owned(),
                    })?;
            let platform = self
                .request
                .graph
                .vertex(v)
                .platform
                .clone()
                .unwrap_or_else(|| self.options.platform.clone());
            let image = images.resolve(reference, &platform)?;
            let facts = VertexFacts {
                image: Some(ImageKeyFacts {
                    manifest: Some(image.top_digest.clone()),
                    diff_ids: image.layers.iter().map(|l| l.diff_id.clone()).collect(),
                }),
                source_keys: Vec::new(),
            };
            return Ok((Filesystem::Layers(image.layers.clone()), Some(image), facts));
        }
        if let Some(name) = source.local_name() {
            let local = self
                .request
                .locals
                .get(name)
                .ok_or_else(|| SourceError::UnknownLocal {
                    name: name.to_owned(),
                })?;
            let dir = self.store.scratch_dir()?;
            stage_local(local, dir.path())?;
            let staged = Arc::new(StagedDir::new(dir));
            return Ok((Filesystem::Local(staged), None, VertexFacts::default()));
        }
        Err(SolveError::Unsupported {
            what: format!("source {}", source.identifier),
        })
    }

    /// The extracted snapshot directories of `layers`, bottom first, pulling blobs the store
    /// does not have yet.
    pub(crate) fn materialize(
        &self,
        v: VertexId,
        layers: &[LayerRef],
    ) -> Result<Vec<PathBuf>, SolveError> {
        let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
        let chain = snapshot::chain_ids(&diff_ids);
        let mut dirs = Vec::with_capacity(layers.len());
        for (layer, chain_id) in layers.iter().zip(&chain) {
            if let Some(done) = self.store.snapshot(chain_id) {
                dirs.push(done);
                continue;
            }
            // Two stages on one base pull its layers concurrently: the blob's lock makes one
            // of them download (and report it, so its bytes count once); the other waits and
            // reuses the stored blob.
            let fetched = self.store.ensure_blob(&layer.digest, || {
                let (Some(origin), Some(images)) = (&layer.origin, &self.request.images) else {
                    return Err(SolveError::MissingBlob {
                        digest: layer.digest.clone(),
                    });
                };
                self.emit(ProgressEvent::Pulling {
                    vertex: v,
                    digest: layer.digest.clone(),
                    size: layer.size,
                });
                self.clock.time(Phase::Pull, || {
                    images.pull_blob(origin, &layer.descriptor(), self.store)
                })?;
                Ok(())
            })?;
            if fetched {
                self.pulled
                    .lock()
                    .map_err(poisoned)?
                    .push(layer.digest.clone());
            }
            dirs.push(self.clock.time(Phase::Snapshot, || {
                snapshot::layer_snapshot(self.store, chain_id, &layer.digest, &layer.diff_id)
            })?);
        }
        Ok(dirs)
    }

    /// Writes the changes of a finished snapshot as a layer blob into the store.
    pub(crate) fn commit_layer(&self, source: LayerSource<'_>) -> Result<LayerRef, SolveError> {
        let (info, writer) = self.clock.time(Phase::Compress, || {
            let writer = self.store.blob_writer()?;
            write_layer(source, writer, &self.options.layer).map_err(SolveError::from)
        })?;
        writer.commit(Some(&info.digest))?;
        Ok(LayerRef {
            media_type: info.media_type(self.options.oci_media_types).to_owned(),
            diff_id: info.diff_id,
            digest: info.digest,
            size: info.size,
            origin: None,
        })
    }
}

fn unreachable_source() -> Result<(Vec<(u32, Filesystem)>, u64), SolveError> {
    Err(SolveError::Internal {
        reason: "sources are resolved before execution".to_owned(),
    })
}

fn poisoned<T>(_: T) -> SolveError {
    SolveError::Internal {
        reason: "a worker panicked while holding shared solve state".to_owned(),
    }
}

/// `COPY --link`'s merge: the inputs' layer chains one after the other.
fn merge_layers(
    order: &[i64],
    inputs: &[Filesystem],
) -> Result<Vec<(u32, Filesystem)>, SolveError> {
    let mut layers = Vec::new();
    for index in order {
        let fs = usize::try_from(*index)
            .ok()
            .and_then(|i| inputs.get(i))
            .ok_or_else(|| SolveError::Internal {
                reason: format!("merge input {index} does not exist"),
            })?;
        let chain = fs.layers().ok_or_else(|| SolveError::Unsupported {
            what: "merging a local directory".to_owned(),
        })?;
        layers.extend(chain.iter().cloned());
    }
    Ok(vec![(0, Filesystem::Layers(layers))])
}
