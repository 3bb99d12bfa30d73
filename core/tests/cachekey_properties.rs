//! Key computation never panics, whatever indexes an op holds, is deterministic, and writes
//! pre-images that are valid JSON.

// Helpers outside #[test] fns are test code too.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use inlay_core::cachekey::{ImageKeyFacts, KeyProfile, VertexFacts, cache_map, solve_keys};
use inlay_core::op::{
    CacheOpt, ChownOpt, ExecMeta, ExecOp, FileAction, FileActionKind, FileCopy, FileMkdir, FileOp,
    FileRm, FileSymlink, Graph, Input, MergeOp, Mount, MountType, Op, SourceOp, UserOpt, VertexId,
};
use inlay_core::{Digest, Platform};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Spec {
    Image,
    Local,
    Scratch,
    Exec(Vec<(i64, i64, u8, bool, String)>),
    File(Vec<(i64, i64, i64, u8, String)>),
    Merge(Vec<i64>),
}

fn spec() -> impl Strategy<Value = Spec> {
    let idx = -2i64..5;
    prop_oneof![
        Just(Spec::Image),
        Just(Spec::Local),
        Just(Spec::Scratch),
        prop::collection::vec(
            (idx.clone(), -1i64..3, 0u8..5, any::<bool>(), "[a-c/.]{0,4}"),
            0..4
        )
        .prop_map(Spec::Exec),
        prop::collection::vec(
            (idx.clone(), idx.clone(), -1i64..3, 0u8..5, "[a-c/*.]{0,4}"),
            0..4
        )
        .prop_map(Spec::File),
        prop::collection::vec(idx, 0..4).prop_map(Spec::Merge),
    ]
}

fn op(spec: &Spec) -> Op {
    match spec {
        Spec::Image => Op::Source(SourceOp::image("busybox")),
        Spec::Local => Op::Source(SourceOp::local("context")),
        Spec::Scratch => Op::Source(SourceOp::scratch()),
        Spec::Exec(mounts) => Op::Exec(ExecOp {
            meta: ExecMeta::shell("true <&>", "/"),
            mounts: mounts
                .iter()
                .map(|(input, output, kind, readonly, path)| Mount {
                    input: *input,
                    selector: path.clone(),
                    dest: format!("/{path}"),
                    output: *output,
                    readonly: *readonly,
                    mount_type: match kind {
                        0 => MountType::Bind,
                        1 => MountType::Secret,
                        2 => MountType::Ssh,
                        3 => MountType::Cache,
                        _ => MountType::Tmpfs,
                    },
                    cache_opt: (*kind == 3).then(|| CacheOpt {
                        id: path.clone(),
                        ..CacheOpt::default()
                    }),
                    ..Mount::rootfs(0)
                })
                .collect(),
            ..ExecOp::default()
        }),
        Spec::File(actions) => Op::File(FileOp {
            actions: actions
                .iter()
                .map(|(input, secondary, output, kind, path)| FileAction {
                    input: *input,
                    secondary_input: *secondary,
                    output: *output,
                    kind: match kind {
                        0 => FileActionKind::Copy(FileCopy::new(path, "/dst")),
                        1 => {
                            let mut copy = FileCopy::new(path, "/dst");
                            copy.allow_wildcard = true;
                            copy.owner = Some(ChownOpt {
                                user: Some(UserOpt::ByName {
                                    name: "u".into(),
                                    input: *secondary,
                                }),
                                group: Some(UserOpt::ById(7)),
                            });
                            FileActionKind::Copy(copy)
                        }
                        2 => FileActionKind::Mkdir(FileMkdir {
                            path: path.clone(),
                            mode: 0o755,
                            make_parents: true,
                            owner: None,
                            timestamp: -1,
                        }),
                        3 => FileActionKind::Rm(FileRm {
                            path: path.clone(),
                            allow_not_found: true,
                            allow_wildcard: false,
                        }),
                        _ => FileActionKind::Symlink(FileSymlink {
                            oldpath: path.clone(),
                            newpath: "/l".into(),
                            owner: None,
                            timestamp: -1,
                        }),
                    },
                })
                .collect(),
        }),
        Spec::Merge(inputs) => Op::Merge(MergeOp {
            inputs: inputs.clone(),
        }),
    }
}

fn graph(specs: &[(Spec, Vec<prop::sample::Index>)]) -> Graph {
    let mut g = Graph::default();
    for (i, (spec, inputs)) in specs.iter().enumerate() {
        let inputs = if i == 0 {
            Vec::new()
        } else {
            inputs
                .iter()
                .map(|x| Input::new(VertexId(x.index(i)), 0))
                .collect()
        };
        g.add(op(spec), inputs);
    }
    g
}

proptest! {
    #[test]
    fn keys_never_panic_and_are_deterministic(
        specs in prop::collection::vec((spec(), prop::collection::vec(any::<prop::sample::Index>(), 0..3)), 1..7),
    ) {
        let g = graph(&specs);
        let image = VertexFacts {
            image: Some(ImageKeyFacts {
                manifest: Some(Digest::sha256_of(b"m")),
                diff_ids: vec![Digest::sha256_of(b"d")],
            }),
            ..VertexFacts::default()
        };
        let facts: HashMap<VertexId, VertexFacts> =
            g.iter().map(|(id, _)| (id, image.clone())).collect();
        let contents: HashMap<(VertexId, usize), Digest> = g
            .iter()
            .flat_map(|(id, v)| (0..v.inputs.len()).map(move |i| ((id, i), Digest::sha256_of(b"c"))))
            .collect();
        for profile in KeyProfile::ALL {
            for (id, _) in g.iter() {
                if let Ok(map) = cache_map(&g, id, profile, &Platform::linux_amd64(), &image) {
                    prop_assert_eq!(map.inputs.len(), g.vertex(id).inputs.len());
                    for key in &map.keys {
                        if !key.pre_image.starts_with("buildkit.source.v0:") {
                            prop_assert!(serde_json::from_str::<serde_json::Value>(&key.pre_image).is_ok());
                        }
                    }
                }
            }
            let last = VertexId(g.len() - 1);
            let once = solve_keys(&g, last, profile, &Platform::linux_amd64(), &facts, &contents);
            let twice = solve_keys(&g, last, profile, &Platform::linux_amd64(), &facts, &contents);
            prop_assert_eq!(once, twice);
        }
    }
}
