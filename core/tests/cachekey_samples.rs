//! The samples' Dockerfile as the frontend would lower it, through key computation, chain
//! export and the matcher (spec sections 8 and 8b): both real inline values are reproduced
//! byte for byte, and importing them hits every step.

// Helpers outside #[test] fns are test code too.
#![allow(clippy::unwrap_used)]

mod shared_data;

use std::collections::HashMap;

use inlay_core::cache::{
    Alternative, CacheStore, ExportResult, Lookup, RecordGraph, ResultForm, StoredResult,
    Timestamp, export_chain, export_chains,
};
use inlay_core::cachekey::{
    ImageKeyFacts, KeyError, KeyGraph, KeyProfile, KeySolver, VertexFacts, cache_map, solve_keys,
};
use inlay_core::image::{ImageConfig, ImageManifest};
use inlay_core::op::{
    ExecMeta, ExecOp, FileAction, FileActionKind, FileCopy, FileMkdir, FileOp, Graph, Input, Mount,
    NetMode, Op, SourceOp, Vertex, VertexId,
};
use inlay_core::{Descriptor, Digest, Platform};

const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const DATA_TXT_KEY: &str =
    "sha256:edf9a02a27697d920699d4515e83795c9a02dfc7c9e016abe82ca93c43606355";
const S: &str = "sha256:8a5edab282632443219e051e4ade2d1d5bbc671c781051bf1437897cbdfea0f1";

fn digest(s: &str) -> Digest {
    s.parse().unwrap()
}

/// The vertices of the sample's build.
struct Sample {
    graph: Graph,
    image: VertexId,
    run_echo: VertexId,
    copy: VertexId,
    workdir: VertexId,
    run_cat: VertexId,
}

fn vertex(op: Op, inputs: Vec<Input>) -> Vertex {
    Vertex {
        op,
        inputs,
        platform: Some(Platform::linux_amd64()),
        ignore_cache: false,
        description: String::new(),
    }
}

fn run(command: &str, env: &[&str], cwd: &str, current_llb: bool, network: NetMode) -> Op {
    let mut meta = ExecMeta::shell(command, cwd);
    meta.env = env.iter().map(|e| (*e).to_owned()).collect();
    meta.remove_mount_stubs_recursive = current_llb;
    Op::Exec(ExecOp {
        meta,
        mounts: vec![Mount::rootfs(0)],
        network,
        ..ExecOp::default()
    })
}

/// The Dockerfile of `shared/conformance/buildkit-v0.8-inline-sample`, lowered as docker
/// 20.10's frontend (`current_llb` false) or a current frontend (true) emits it.
fn sample_graph(current_llb: bool, network: NetMode) -> Sample {
    let mut graph = Graph::default();
    let image = graph.add_vertex(vertex(
        Op::Source(SourceOp::image("localhost:5000/busybox:latest")),
        vec![],
    ));
    let run_echo = graph.add_vertex(vertex(
        run(
            "echo hello > /hello.txt",
            &[PATH_ENV],
            "/",
            current_llb,
            network,
        ),
        vec![Input::new(image, 0)],
    ));
    let context = graph.add_vertex(vertex(Op::Source(SourceOp::local("context")), vec![]));
    let mut copy = FileCopy::new("/data.txt", "/data.txt");
    copy.follow_symlink = true;
    copy.dir_copy_contents = true;
    copy.create_dest_path = true;
    copy.allow_wildcard = true;
    copy.allow_empty_wildcard = true;
    let copy = graph.add_vertex(vertex(
        Op::File(FileOp {
            actions: vec![FileAction {
                input: 0,
                secondary_input: 1,
                output: 0,
                kind: FileActionKind::Copy(copy),
            }],
        }),
        vec![Input::new(run_echo, 0), Input::new(context, 0)],
    ));
    let workdir = graph.add_vertex(vertex(
        Op::File(FileOp {
            actions: vec![FileAction {
                input: 0,
                secondary_input: -1,
                output: 0,
                kind: FileActionKind::Mkdir(FileMkdir {
                    path: "/app".into(),
                    mode: 0o755,
                    make_parents: true,
                    owner: None,
                    timestamp: -1,
                }),
            }],
        }),
        vec![Input::new(copy, 0)],
    ));
    let run_cat = graph.add_vertex(vertex(
        run(
            "cat /data.txt > /app/out.txt",
            &[PATH_ENV, "FOO=bar"],
            "/app",
            current_llb,
            network,
        ),
        vec![Input::new(workdir, 0)],
    ));
    Sample {
        graph,
        image,
        run_echo,
        copy,
        workdir,
        run_cat,
    }
}

fn base_facts(sample_dir: &str, with_manifest: bool) -> ImageKeyFacts {
    let manifest = shared_data::read(&format!("{sample_dir}/base-manifest.json"));
    let config: ImageConfig = serde_json::from_slice(&shared_data::read(&format!(
        "{sample_dir}/base-config.json"
    )))
    .unwrap();
    ImageKeyFacts {
        manifest: with_manifest.then(|| Digest::sha256_of(&manifest)),
        diff_ids: config.rootfs.diff_ids,
    }
}

fn key_graph(
    sample: &Sample,
    profile: KeyProfile,
    base: ImageKeyFacts,
    data_key: &str,
) -> KeyGraph {
    let facts = HashMap::from([(
        sample.image,
        VertexFacts {
            image: Some(base),
            ..VertexFacts::default()
        },
    )]);
    let content = HashMap::from([((sample.copy, 1), digest(data_key))]);
    solve_keys(
        &sample.graph,
        sample.run_cat,
        profile,
        &Platform::linux_amd64(),
        &facts,
        &content,
    )
    .unwrap()
}

fn image_layers(sample_dir: &str) -> (Vec<Descriptor>, ImageConfig) {
    let manifest: ImageManifest =
        serde_json::from_slice(&shared_data::read(&format!("{sample_dir}/manifest.json"))).unwrap();
    let config: ImageConfig =
        serde_json::from_slice(&shared_data::read(&format!("{sample_dir}/config.json"))).unwrap();
    (manifest.layers, config)
}

/// Results of the final chain: step `k` of `steps` has image layers `0..=k+1`.
fn results(
    layers: &[Descriptor],
    steps: &[VertexId],
    created: &[&str],
) -> HashMap<Input, ExportResult> {
    steps
        .iter()
        .zip(created)
        .enumerate()
        .map(|(k, (v, t))| {
            (
                Input::new(*v, 0),
                ExportResult {
                    layers: layers[..=k + 1].to_vec(),
                    created_at: t.parse::<Timestamp>().unwrap(),
                },
            )
        })
        .collect()
}

fn final_key(keys: &KeyGraph, v: VertexId) -> inlay_core::cachekey::KeyId {
    keys.keys_of(Input::new(v, 0))[0]
}

const V08: &str = "buildkit-v0.8-inline-sample";
const V024: &str = "buildkit-v0.24-inline-sample";
const V08_CREATED: [&str; 4] = [
    "2026-11-27T23:39:22.907466368Z",
    "2026-11-27T23:39:22.913682054Z",
    "2026-11-27T23:39:22.91950267Z",
    "2026-11-27T23:39:23.146733567Z",
];
const V024_CREATED: [&str; 4] = [
    "2026-11-28T00:27:13.539719048Z",
    "2026-11-28T00:27:13.563736568Z",
    "2026-11-28T00:27:13.586436532Z",
    "2026-11-28T00:27:13.665917759Z",
];

#[test]
fn v08_profile_reproduces_the_v08_inline_value() {
    let sample = sample_graph(false, NetMode::Unset);
    // docker 20.10 with the base in its local store: only the chainID root.
    let keys = key_graph(
        &sample,
        KeyProfile::BuildkitV08,
        base_facts(V08, false),
        DATA_TXT_KEY,
    );
    let (layers, config) = image_layers(V08);
    let steps = [sample.run_echo, sample.copy, sample.workdir, sample.run_cat];
    let exported = export_chain(
        &layers,
        &[(&keys, final_key(&keys, sample.run_cat))],
        &results(&layers, &steps, &V08_CREATED),
    )
    .unwrap();
    assert_eq!(exported.to_inline(), config.inline_cache().unwrap());
}

#[test]
fn current_profile_reproduces_the_v024_inline_value() {
    let sample = sample_graph(true, NetMode::None);
    let keys = key_graph(
        &sample,
        KeyProfile::BuildkitCurrent,
        base_facts(V024, true),
        DATA_TXT_KEY,
    );
    let (layers, config) = image_layers(V024);
    let steps = [sample.run_echo, sample.copy, sample.workdir, sample.run_cat];
    let exported = export_chain(
        &layers,
        &[(&keys, final_key(&keys, sample.run_cat))],
        &results(&layers, &steps, &V024_CREATED),
    )
    .unwrap();
    assert_eq!(exported.to_inline(), config.inline_cache().unwrap());
    // The RUN links carry sha256("/") (spec section 8b.2).
    let run = exported
        .records()
        .iter()
        .find(|r| {
            r.digest
                == digest("sha256:3c6573bf326fc4c1b46285b48a01e2c19e2dcd3fd34cb9a40420a96d08c5ecc8")
        })
        .unwrap();
    assert!(run.inputs[0].iter().all(|l| l.selector == Some(digest(S))));
    assert_eq!(run.inputs[0].len(), 2);
}

/// The samples' build lowered for v0.8 and for current BuildKit, and keyed for each.
fn both_profiles() -> (Sample, Sample, KeyGraph, KeyGraph) {
    let old_graph = sample_graph(false, NetMode::Unset);
    let new_graph = sample_graph(true, NetMode::None);
    let old = key_graph(
        &old_graph,
        KeyProfile::BuildkitV08,
        base_facts(V08, true),
        DATA_TXT_KEY,
    );
    let new = key_graph(
        &new_graph,
        KeyProfile::BuildkitCurrent,
        base_facts(V08, true),
        DATA_TXT_KEY,
    );
    (old_graph, new_graph, old, new)
}

/// Both profiles, importing `exported` (a round trip through the wire form), hit the last step
/// with the whole image.
fn assert_both_profiles_hit(
    exported: &RecordGraph,
    layers: &[Descriptor],
    profiles: [(&KeyGraph, &Sample); 2],
) {
    let round = RecordGraph::from_inline(&exported.to_inline()).unwrap();
    for (keys, sample) in profiles {
        let mut store = CacheStore::new();
        store.import_inline("both", &round, layers);
        let matches = store.match_keys(keys);
        let hit = store
            .best_result(matches.of(final_key(keys, sample.run_cat)))
            .unwrap();
        assert_eq!(hit.result.layers, layers);
    }
}

#[test]
fn both_profiles_export_into_one_value() {
    // The same build keyed for both: old and new BuildKit find their own records.
    let (old_graph, new_graph, old, new) = both_profiles();
    let (layers, _) = image_layers(V08);
    let steps = [
        old_graph.run_echo,
        old_graph.copy,
        old_graph.workdir,
        old_graph.run_cat,
    ];
    let exported = export_chain(
        &layers,
        &[
            (&old, final_key(&old, old_graph.run_cat)),
            (&new, final_key(&new, new_graph.run_cat)),
        ],
        &results(&layers, &steps, &V08_CREATED),
    )
    .unwrap();
    // Shared: 2 image roots, the content key; per profile: 2 RUNs; COPY and WORKDIR differ only
    // through their links (the COPY links to a different RUN), so each profile has its own.
    assert_eq!(exported.len(), 3 + 4 + 4);
    assert_both_profiles_hit(&exported, &layers, [(&old, &old_graph), (&new, &new_graph)]);
}

#[test]
fn with_both_profiles_v08_sees_one_record_per_result() {
    // BuildKit v0.8 indexes imported results by their layers and fails to load a step when it
    // picks the other profile's record ("failed to load deleted cache"); the other profile's
    // results go in `chains`, which v0.8 does not read.
    let (old_graph, new_graph, old, new) = both_profiles();
    let (layers, _) = image_layers(V08);
    let steps = [
        old_graph.run_echo,
        old_graph.copy,
        old_graph.workdir,
        old_graph.run_cat,
    ];
    let results = results(&layers, &steps, &V08_CREATED);
    let chains = [
        (&old, final_key(&old, old_graph.run_cat), ResultForm::Native),
        (
            &new,
            final_key(&new, new_graph.run_cat),
            ResultForm::ChainsOnly,
        ),
    ];
    let exported = export_chains(&layers, &chains, &results).unwrap();
    let mut tops: Vec<usize> = exported
        .records()
        .iter()
        .flat_map(|r| r.results.iter().map(|res| res.layer))
        .collect();
    let visible = tops.len();
    tops.sort_unstable();
    tops.dedup();
    assert_eq!(
        tops.len(),
        visible,
        "two v0.8-visible records share a result"
    );
    assert_eq!(visible, 4, "every v0.8 step keeps its result");
    assert!(exported.records().iter().any(|r| !r.chains.is_empty()));
    // Both profiles still hit every step, the current one through `chains`.
    assert_both_profiles_hit(&exported, &layers, [(&old, &old_graph), (&new, &new_graph)]);
    // Exported natively, the two profiles' records do share results.
    let native = export_chain(
        &layers,
        &[(chains[0].0, chains[0].1), (chains[1].0, chains[1].1)],
        &results,
    )
    .unwrap();
    let shared = native
        .records()
        .iter()
        .flat_map(|r| r.results.iter())
        .count();
    assert!(shared > visible);
}

#[test]
fn the_imported_v08_sample_hits_every_step() {
    let sample = sample_graph(false, NetMode::Unset);
    let (layers, config) = image_layers(V08);
    let graph = RecordGraph::from_inline(config.inline_cache().unwrap()).unwrap();
    let mut store = CacheStore::new();
    store.import_inline("localhost:5000/sample08 linux/amd64", &graph, &layers);

    let keys = key_graph(
        &sample,
        KeyProfile::BuildkitV08,
        base_facts(V08, true),
        DATA_TXT_KEY,
    );
    let matches = store.match_keys(&keys);
    // Both image keys are queried; the chainID root is there, the manifest root is not.
    let image_keys = keys.keys_of(Input::new(sample.image, 0));
    assert_eq!(image_keys.len(), 2);
    assert!(matches.of(image_keys[0]).is_empty());
    assert_eq!(matches.of(image_keys[1]).len(), 1);
    for (k, v) in [sample.run_echo, sample.copy, sample.workdir, sample.run_cat]
        .into_iter()
        .enumerate()
    {
        let hit = store
            .best_result(matches.of(final_key(&keys, v)))
            .unwrap_or_else(|| panic!("step {k} hits"));
        assert_eq!(hit.result.layers, layers[..=k + 1].to_vec(), "step {k}");
        assert_eq!(hit.result.created_at.to_string(), V08_CREATED[k]);
        assert_eq!(hit.origin, "localhost:5000/sample08 linux/amd64");
    }

    // A changed data.txt: the first RUN still hits, COPY and everything after miss.
    let changed = keys_with(&sample, &DATA_TXT_KEY.replace("edf9", "0000"));
    let matches = store.match_keys(&changed);
    assert!(
        store
            .best_result(matches.of(final_key(&changed, sample.run_echo)))
            .is_some()
    );
    for v in [sample.copy, sample.workdir, sample.run_cat] {
        assert!(matches.of(final_key(&changed, v)).is_empty());
    }
    // And the miss says why: input 1 of the COPY has no link; the nearest record is the one
    // built on the same RUN before.
    let copy_key = changed.node(final_key(&changed, sample.copy));
    let inputs: Vec<Vec<inlay_core::cache::Alternative<'_>>> = copy_key
        .inputs
        .iter()
        .map(|alts| {
            alts.iter()
                .map(|l| inlay_core::cache::Alternative {
                    parents: matches.of(l.key),
                    selector: l.selector.as_ref(),
                })
                .collect()
        })
        .collect();
    let Lookup::Miss(why) = store.lookup(copy_key.record.stable().unwrap(), &inputs) else {
        panic!("expected a miss");
    };
    assert_eq!(why.first_unlinked_input, Some(1));
    assert_eq!(why.inputs[0].reached.len(), 1);
    assert_eq!(why.same_digest.len(), 1);

    // The current profile misses from the first RUN on (spec section 8.6), but the image root
    // and the content key still match.
    let current_graph = sample_graph(true, NetMode::None);
    let current = key_graph(
        &current_graph,
        KeyProfile::BuildkitCurrent,
        base_facts(V08, true),
        DATA_TXT_KEY,
    );
    let matches = store.match_keys(&current);
    assert!(
        matches
            .of(final_key(&current, current_graph.run_echo))
            .is_empty()
    );
    assert!(
        !matches
            .of(current.keys_of(Input::new(current_graph.image, 0))[1])
            .is_empty()
    );
}

fn keys_with(sample: &Sample, data_key: &str) -> KeyGraph {
    key_graph(
        sample,
        KeyProfile::BuildkitV08,
        base_facts(V08, true),
        data_key,
    )
}

#[test]
fn cache_maps_of_the_sample_steps() {
    let sample = sample_graph(true, NetMode::None);
    let none = VertexFacts::default();
    let map = |v| {
        cache_map(
            &sample.graph,
            v,
            KeyProfile::BuildkitCurrent,
            &Platform::linux_amd64(),
            &none,
        )
        .unwrap()
    };
    let copy = map(sample.copy);
    // Input 1's definition links would carry sha256("/data.txt") (spec section 5.3).
    assert_eq!(
        copy.inputs[1].selector,
        Some(digest(
            "sha256:a81072089f5cc667c0bc20d8039510309a6ac2c1da9db97b6e769a55eec5d169"
        ))
    );
    assert_eq!(copy.inputs[0].selector, None);
    assert!(copy.inputs[0].content.is_none());
    let content = copy.inputs[1].content.as_ref().unwrap();
    assert_eq!(content.len(), 1);
    assert_eq!(content[0].path, "/data.txt");
    assert!(content[0].follow_links);
    assert_eq!(
        copy.record_digests(0)[0],
        digest("sha256:b69e04cd2050e4ec7e21405522fa5313dce88d81e637a848dbcc160953a82ecc")
    );
    let run = map(sample.run_echo);
    assert_eq!(run.inputs[0].selector, Some(digest(S)));
    assert!(run.inputs[0].content.is_none());
    // The local context's key is random.
    let local_source = cache_map(
        &sample.graph,
        sample.graph.vertex(sample.copy).inputs[1].vertex,
        KeyProfile::BuildkitCurrent,
        &Platform::linux_amd64(),
        &none,
    )
    .unwrap();
    assert!(local_source.record_digests(0).is_empty());
    assert_eq!(local_source.record_keys(0).len(), 1);
}

#[test]
fn keys_step_by_step_with_a_late_content_key() {
    let sample = sample_graph(false, NetMode::Unset);
    let mut solver = KeySolver::new(
        &sample.graph,
        KeyProfile::BuildkitV08,
        Platform::linux_amd64(),
    );
    let none = VertexFacts::default();
    let image = VertexFacts {
        image: Some(base_facts(V08, false)),
        ..VertexFacts::default()
    };
    for (id, _) in sample.graph.iter() {
        let facts = if id == sample.image { &image } else { &none };
        if id == sample.copy {
            // The solver asks which inputs take a content key and over which paths...
            let map = solver.cache_map(id, facts).unwrap();
            let paths: Vec<String> = map.inputs[1]
                .content
                .iter()
                .flatten()
                .map(|s| s.path.clone())
                .collect();
            assert_eq!(paths, ["/data.txt"]);
            // ...has the content-hash module compute it, then forms the key.
            solver
                .add_vertex(id, facts, &[(1, digest(DATA_TXT_KEY))])
                .unwrap();
        } else {
            solver.add_vertex(id, facts, &[]).unwrap();
        }
    }
    let keys = solver.into_keys();
    let last = keys.node(final_key(&keys, sample.run_cat));
    assert_eq!(
        last.record.stable().unwrap(),
        &digest("sha256:c61c4fe0a25c97bb4fe001289eef9c2b4dca1be16edf753f346dc24c89749298")
    );
    // Keying a vertex before its inputs is an error, not a panic.
    let mut early = KeySolver::new(
        &sample.graph,
        KeyProfile::BuildkitV08,
        Platform::linux_amd64(),
    );
    assert!(matches!(
        early.add_vertex(sample.run_cat, &none, &[]),
        Err(KeyError::InputNotKeyed { .. })
    ));
    assert!(matches!(
        early.add_vertex(VertexId(99), &none, &[]),
        Err(KeyError::UnknownVertex { .. })
    ));
}

#[test]
fn without_content_key_the_copy_and_its_descendants_are_not_exported() {
    // Random local keys are dropped; the COPY's input 1 keeps no link, so it goes, and the
    // WORKDIR and RUN after it go in cascade (spec section 2.5).
    let sample = sample_graph(false, NetMode::Unset);
    let facts = HashMap::from([(
        sample.image,
        VertexFacts {
            image: Some(base_facts(V08, false)),
            ..VertexFacts::default()
        },
    )]);
    let keys = solve_keys(
        &sample.graph,
        sample.run_cat,
        KeyProfile::BuildkitV08,
        &Platform::linux_amd64(),
        &facts,
        &HashMap::new(),
    )
    .unwrap();
    let (layers, _) = image_layers(V08);
    let steps = [sample.run_echo, sample.copy, sample.workdir, sample.run_cat];
    let exported = export_chain(
        &layers,
        &[(&keys, final_key(&keys, sample.run_cat))],
        &results(&layers, &steps, &V08_CREATED),
    )
    .unwrap();
    let digests: Vec<String> = exported
        .records()
        .iter()
        .map(|r| r.digest.to_string())
        .collect();
    assert_eq!(
        digests,
        [
            "sha256:1684127940f02bad5357d1571ebc6d3aff3b1b590a53fe80c2eac2f833ad6676",
            "sha256:b139ea8bf07ace643415354a46ce11c0649b87a4c7c495c9ba2fc6029493ae74",
        ]
    );
    // No result fits the image at all: no inline cache.
    assert!(
        export_chain(
            &layers[..1],
            &[(&keys, final_key(&keys, sample.run_cat))],
            &results(&layers, &steps, &V08_CREATED),
        )
        .is_none()
    );
}

#[test]
fn results_that_are_not_image_prefixes_become_chains() {
    let sample = sample_graph(false, NetMode::Unset);
    let keys = key_graph(
        &sample,
        KeyProfile::BuildkitV08,
        base_facts(V08, false),
        DATA_TXT_KEY,
    );
    let (layers, _) = image_layers(V08);
    // As after `COPY --link`: the last step's result is layers 0, 1 and 4 only.
    let mut results = results(
        &layers,
        &[sample.run_echo, sample.copy, sample.workdir, sample.run_cat],
        &V08_CREATED,
    );
    results
        .get_mut(&Input::new(sample.run_cat, 0))
        .unwrap()
        .layers = vec![layers[0].clone(), layers[1].clone(), layers[4].clone()];
    let exported = export_chain(
        &layers,
        &[(&keys, final_key(&keys, sample.run_cat))],
        &results,
    )
    .unwrap();
    let last = exported
        .records()
        .iter()
        .find(|r| {
            r.digest
                == digest("sha256:c61c4fe0a25c97bb4fe001289eef9c2b4dca1be16edf753f346dc24c89749298")
        })
        .unwrap();
    assert!(last.results.is_empty());
    assert_eq!(last.chains.len(), 1);
    assert_eq!(last.chains[0].layers, [0, 1, 4]);
    assert!(last.chains[0].created_at.is_zero());
    // Imported again, the chain is a result of exactly those layers.
    let mut store = CacheStore::new();
    store.import_inline("chains", &exported, &layers);
    let matches = store.match_keys(&keys);
    let hit = store
        .best_result(matches.of(final_key(&keys, sample.run_cat)))
        .unwrap();
    assert_eq!(
        hit.result.layers,
        results[&Input::new(sample.run_cat, 0)].layers
    );
}

#[test]
fn local_results_are_found_and_win_ties() {
    let sample = sample_graph(false, NetMode::Unset);
    let keys = key_graph(
        &sample,
        KeyProfile::BuildkitV08,
        base_facts(V08, true),
        DATA_TXT_KEY,
    );
    let (layers, config) = image_layers(V08);
    let mut store = CacheStore::new();
    store.import_inline(
        "registry",
        &RecordGraph::from_inline(config.inline_cache().unwrap()).unwrap(),
        &layers,
    );
    let run = final_key(&keys, sample.run_echo);
    let same_time = StoredResult {
        layers: layers[..2].to_vec(),
        created_at: V08_CREATED[0].parse().unwrap(),
    };
    let local = store
        .record_local(&keys, run, Some(same_time.clone()))
        .unwrap();
    // Storing again changes nothing.
    assert_eq!(store.record_local(&keys, run, Some(same_time)), Some(local));
    assert!(store.origin(local.origin).is_local());
    let matches = store.match_keys(&keys);
    assert_eq!(matches.of(run).len(), 2, "one record per origin");
    let hit = store.best_result(matches.of(run)).unwrap();
    assert_eq!(hit.record, local);
    assert_eq!(hit.origin, "local");
    // A local record without an imported counterpart: a newer RUN on top of the old chain.
    let newer = StoredResult {
        layers: layers.clone(),
        created_at: "2030-01-01T00:00:00Z".parse().unwrap(),
    };
    let last = final_key(&keys, sample.run_cat);
    store
        .record_local(&keys, last, Some(newer.clone()))
        .unwrap();
    let matches = store.match_keys(&keys);
    assert_eq!(store.best_result(matches.of(last)).unwrap().result, &newer);
}

#[test]
fn a_changed_run_misses_and_names_the_record_built_there_before() {
    let mut sample = sample_graph(false, NetMode::Unset);
    if let Op::Exec(exec) = &mut sample.graph.vertex_mut(sample.run_echo).op {
        exec.meta.args[2] = "echo bonjour > /hello.txt".into();
    }
    let keys = key_graph(
        &sample,
        KeyProfile::BuildkitV08,
        base_facts(V08, true),
        DATA_TXT_KEY,
    );
    let (layers, config) = image_layers(V08);
    let mut store = CacheStore::new();
    store.import_inline(
        "registry",
        &RecordGraph::from_inline(config.inline_cache().unwrap()).unwrap(),
        &layers,
    );
    let matches = store.match_keys(&keys);
    let run = keys.node(final_key(&keys, sample.run_echo));
    let inputs: Vec<Vec<Alternative<'_>>> = run
        .inputs
        .iter()
        .map(|alts| {
            alts.iter()
                .map(|l| Alternative {
                    parents: matches.of(l.key),
                    selector: l.selector.as_ref(),
                })
                .collect()
        })
        .collect();
    let Lookup::Miss(why) = store.lookup(run.record.stable().unwrap(), &inputs) else {
        panic!("a changed command misses");
    };
    assert_eq!(why.first_unlinked_input, Some(0));
    assert!(why.same_digest.is_empty());
    assert_eq!(why.inputs[0].parents_matched, 1, "the chainID root matched");
    assert_eq!(why.nearest.len(), 1);
    assert_eq!(
        why.nearest[0].digest,
        digest("sha256:1684127940f02bad5357d1571ebc6d3aff3b1b590a53fe80c2eac2f833ad6676")
    );
    assert_eq!(why.nearest[0].selectors, [None]);
    // The COPY and everything after miss too, but the content key still matches its root.
    assert!(matches.of(final_key(&keys, sample.copy)).is_empty());
    let copy = keys.node(final_key(&keys, sample.copy));
    assert_eq!(matches.of(copy.inputs[1][1].key).len(), 1);
}
