//! Running a file-op vertex: its actions, in order, on one writable snapshot of the base input;
//! the changes become the new layer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use inlay_core::op::{FileOp, VertexId};

use super::exec::input_layers;
use super::{Filesystem, SolveContext, SolveError};
use crate::fileop;
use crate::snapshot::{self, ActiveSnapshot, SnapshotChanges};

pub(super) fn run_file_op(
    ctx: &SolveContext<'_, '_>,
    v: VertexId,
    op: &FileOp,
    inputs: &[Filesystem],
) -> Result<(Vec<(u32, Filesystem)>, u64), SolveError> {
    let count = i64::try_from(inputs.len()).unwrap_or(i64::MAX);
    let Some(first) = op.actions.first() else {
        return Err(SolveError::Unsupported {
            what: "a file op without actions".to_owned(),
        });
    };
    // BuildKit chains actions through their results (`input = input count + action index`);
    // inlay runs such a chain on one snapshot, which covers every chain the Dockerfile frontend
    // emits.
    for (i, action) in op.actions.iter().enumerate().skip(1) {
        let previous = count + i64::try_from(i).unwrap_or(i64::MAX) - 1;
        if action.input != previous {
            return Err(SolveError::Unsupported {
                what: "file actions that do not form one chain".to_owned(),
            });
        }
    }
    if op.actions[..op.actions.len() - 1]
        .iter()
        .any(|a| a.output >= 0)
    {
        return Err(SolveError::Unsupported {
            what: "outputs of intermediate file actions".to_owned(),
        });
    }
    let base = input_layers(inputs, first.input)?;
    let lowers = ctx.materialize(v, &base)?;
    let work = ctx.store.scratch_dir()?;
    let root_work = work.path().join("root");
    std::fs::create_dir(&root_work).map_err(|e| file_io(&root_work, e))?;
    let active = snapshot::prepare(&lowers, &root_work, ctx.options.snapshot_mode)?;
    let mut views: HashMap<usize, (PathBuf, Option<ActiveSnapshot>)> = HashMap::new();
    for action in &op.actions {
        let source = match usize::try_from(action.secondary_input) {
            Err(_) => None,
            Ok(i) if i >= inputs.len() => {
                return Err(SolveError::Unsupported {
                    what: "copying from the result of an earlier file action".to_owned(),
                });
            }
            Ok(i) => {
                if let std::collections::hash_map::Entry::Vacant(slot) = views.entry(i) {
                    let view = match &inputs[i] {
                        Filesystem::Local(dir) => (dir.path().to_path_buf(), None),
                        Filesystem::Layers(layers) => {
                            let lowers = ctx.materialize(v, layers)?;
                            let dir = work.path().join(format!("source-{i}"));
                            std::fs::create_dir(&dir).map_err(|e| file_io(&dir, e))?;
                            let snap = snapshot::prepare(&lowers, &dir, ctx.options.snapshot_mode)?;
                            (snap.rootfs().to_path_buf(), Some(snap))
                        }
                    };
                    slot.insert(view);
                }
                views.get(&i).map(|(p, _)| p.clone())
            }
        };
        fileop::apply(&action.kind, active.rootfs(), source.as_deref())?;
    }
    drop(views);
    let changes = active.finish()?;
    let layer = ctx.commit_layer(changes.layer_source())?;
    let bytes = layer.size;
    let mut layers = base;
    layers.push(layer);
    if let SnapshotChanges::Overlay { upper, .. } = &changes {
        adopt_upper(ctx.store, &layers, upper);
    }
    let output = op
        .actions
        .last()
        .and_then(|a| u32::try_from(a.output).ok())
        .unwrap_or(0);
    Ok((vec![(output, Filesystem::Layers(layers))], bytes))
}

/// Keeps a finished overlay upperdir (the step's changes, already in overlay-lowerdir form:
/// whiteouts as 0/0 devices, opaque directories marked) as the store's snapshot of `layers`'
/// chain, as containerd's overlay snapshotter commits an active snapshot. The files are then
/// neither deleted now nor extracted from the blob again when a later step needs them, which
/// for a large COPY is most of its time (every unlink of a written file can wait on a discard).
/// Best effort: when the store already has the snapshot or the rename fails, the upperdir is
/// removed with the scratch directory as before.
fn adopt_upper(store: &crate::store::Store, layers: &[crate::solver::LayerRef], upper: &Path) {
    let diff_ids: Vec<_> = layers.iter().map(|l| l.diff_id.clone()).collect();
    let Some(chain_id) = snapshot::chain_ids(&diff_ids).pop() else {
        return;
    };
    let adopted = store.ensure_snapshot(&chain_id, |fs| -> std::io::Result<()> {
        std::fs::remove_dir(fs)?;
        std::fs::rename(upper, fs)
    });
    if let Err(e) = adopted {
        tracing::debug!(error = %e, chain_id = %chain_id, "upperdir not adopted as a snapshot");
    }
}

fn file_io(path: &std::path::Path, source: std::io::Error) -> SolveError {
    SolveError::File(fileop::FileOpError::io(path.display().to_string(), source))
}
