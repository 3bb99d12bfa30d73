//! The op as BuildKit sees it: inlay gives `FROM scratch` a source vertex so every stage has a
//! root, BuildKit has no input at all there (`op::SourceOp::scratch`). Keys hash BuildKit's
//! view, so scratch inputs are removed and every reference to them becomes -1 (no input),
//! with later input indexes shifted down.

use crate::cachekey::KeyError;
use crate::op::{ChownOpt, FileActionKind, Graph, Op, UserOpt, VertexId};

/// An op renumbered to BuildKit's inputs.
pub(crate) struct Lowered {
    /// The op with input references renumbered.
    pub op: Op,
    /// Per graph input: its BuildKit input index, `None` for scratch.
    pub input_map: Vec<Option<usize>>,
}

impl Lowered {
    pub fn new(graph: &Graph, vertex: VertexId) -> Result<Lowered, KeyError> {
        if vertex.0 >= graph.len() {
            return Err(KeyError::UnknownVertex { vertex });
        }
        let v = graph.vertex(vertex);
        let mut next = 0;
        let input_map: Vec<Option<usize>> = v
            .inputs
            .iter()
            .map(|input| {
                let scratch =
                    matches!(&graph.vertex(input.vertex).op, Op::Source(s) if s.is_scratch());
                if scratch {
                    None
                } else {
                    next += 1;
                    Some(next - 1)
                }
            })
            .collect();
        let old = input_map.len();
        let removed = (old - next) as i64;
        let renumber = |i: i64| -> i64 {
            if i < 0 {
                i
            } else if let Ok(u) = usize::try_from(i) {
                if u < old {
                    input_map[u].map_or(-1, |n| n as i64)
                } else {
                    // File-action results are numbered after the inputs.
                    i - removed
                }
            } else {
                i
            }
        };
        let mut op = v.op.clone();
        if removed > 0 {
            match &mut op {
                Op::Source(_) => {}
                Op::Exec(exec) => {
                    for m in &mut exec.mounts {
                        m.input = renumber(m.input);
                    }
                }
                Op::File(file) => {
                    for a in &mut file.actions {
                        a.input = renumber(a.input);
                        a.secondary_input = renumber(a.secondary_input);
                        let owner = match &mut a.kind {
                            FileActionKind::Copy(c) => c.owner.as_mut(),
                            FileActionKind::Mkfile(m) => m.owner.as_mut(),
                            FileActionKind::Mkdir(m) => m.owner.as_mut(),
                            FileActionKind::Symlink(s) => s.owner.as_mut(),
                            _ => None,
                        };
                        if let Some(owner) = owner {
                            renumber_owner(owner, &renumber);
                        }
                    }
                }
                Op::Merge(merge) => {
                    merge.inputs = merge
                        .inputs
                        .iter()
                        .map(|i| renumber(*i))
                        .filter(|i| *i >= 0)
                        .collect();
                }
            }
        }
        Ok(Lowered { op, input_map })
    }

    /// How many inputs BuildKit sees.
    pub fn input_count(&self) -> usize {
        self.input_map.iter().flatten().count()
    }
}

fn renumber_owner(owner: &mut ChownOpt, renumber: &impl Fn(i64) -> i64) {
    for user in [owner.user.as_mut(), owner.group.as_mut()]
        .into_iter()
        .flatten()
    {
        if let UserOpt::ByName { input, .. } = user {
            *input = renumber(*input);
        }
    }
}
