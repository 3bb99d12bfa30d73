//! The scheduling loop: vertices start once their inputs are done, at most `parallelism` at a
//! time, on scoped threads.

use std::collections::{BTreeMap, HashMap, VecDeque};

use inlay_core::op::{Input, VertexId};

use super::{Filesystem, SolveContext, SolveError};
use crate::source::ResolvedImage;

/// What the scheduling loop collected.
pub(super) struct Schedule {
    pub(super) results: HashMap<Input, Filesystem>,
    pub(super) executed: Vec<VertexId>,
    pub(super) cached: Vec<VertexId>,
    pub(super) images: BTreeMap<VertexId, ResolvedImage>,
    pub(super) failure: Option<SolveError>,
}

/// Runs every vertex the target needs, each once its inputs are done, at most `parallelism` at
/// a time; after a failure nothing new starts and the running ones are waited for.
pub(super) fn schedule(ctx: &SolveContext<'_, '_>, parallelism: usize) -> Schedule {
    let order = ctx.request.graph.ancestors(ctx.request.target.vertex);
    let mut waiting: HashMap<VertexId, usize> = HashMap::new();
    let mut dependents: HashMap<VertexId, Vec<VertexId>> = HashMap::new();
    let mut ready: VecDeque<VertexId> = VecDeque::new();
    for &v in &order {
        let mut deps: Vec<VertexId> = ctx
            .request
            .graph
            .vertex(v)
            .inputs
            .iter()
            .map(|i| i.vertex)
            .collect();
        deps.sort();
        deps.dedup();
        for d in &deps {
            dependents.entry(*d).or_default().push(v);
        }
        if deps.is_empty() {
            ready.push_back(v);
        } else {
            waiting.insert(v, deps.len());
        }
    }
    let mut results: HashMap<Input, Filesystem> = HashMap::new();
    let mut executed = Vec::new();
    let mut cached = Vec::new();
    let mut images = BTreeMap::new();
    let mut failure: Option<SolveError> = None;
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut running = 0usize;
        loop {
            while failure.is_none() && running < parallelism {
                let Some(v) = ready.pop_front() else { break };
                let inputs: Result<Vec<Filesystem>, SolveError> = ctx
                    .request
                    .graph
                    .vertex(v)
                    .inputs
                    .iter()
                    .map(|i| {
                        results.get(i).cloned().ok_or_else(|| SolveError::Internal {
                            reason: format!("vertex {} has no output {}", i.vertex.0, i.output),
                        })
                    })
                    .collect();
                let tx = tx.clone();

                running += 1;
                scope.spawn(move || {
                    let outcome = inputs.and_then(|inputs| ctx.run_vertex(v, &inputs));
                    let _ = tx.send((v, outcome));
                });
            }
            if running == 0 {
                break;
            }
            let Ok((v, outcome)) = rx.recv() else { break };
            running -= 1;
            match outcome {
                Ok(done) => {
                    for (output, fs) in done.outputs {
                        results.insert(Input::new(v, output), fs);
                    }
                    if done.cached {
                        cached.push(v);
                    } else {
                        executed.push(v);
                    }
                    if let Some(image) = done.image {
                        images.insert(v, image);
                    }
                    for d in dependents.get(&v).into_iter().flatten() {
                        if let Some(n) = waiting.get_mut(d) {
                            *n -= 1;
                            if *n == 0 {
                                waiting.remove(d);
                                ready.push_back(*d);
                            }
                        }
                    }
                }
                Err(e) => {
                    if failure.is_none() {
                        failure = Some(e);
                    }
                }
            }
        }
    });
    Schedule {
        results,
        executed,
        cached,
        images,
        failure,
    }
}
