//! Exec mounts, merges and `--no-cache` through the solver with real components: cache mounts
//! persist across builds, secrets and tmpfs never reach a layer, the context binds read-only,
//! `COPY --link`'s merge concatenates chains. Skips where root, runc, busybox or
//! docker-registry is missing.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod solve_support;

use std::collections::HashMap;
use std::sync::Arc;

use inlay_builder::extract::{ExtractOptions, extract};
use inlay_builder::solver::{
    Filesystem, LayerRef, LocalCache, SolveRequest, Solver, SolverOptions,
};
use inlay_builder::source::{ImageSource, LocalSource, RegistryImages};
use inlay_builder::store::Store;
use inlay_core::op::{
    CacheOpt, CacheSharing, ChownOpt, ExecMeta, ExecOp, FileAction, FileActionKind, FileCopy,
    FileMkfile, FileOp, Graph, Input, MergeOp, Mount, MountType, Op, SecretOpt, SourceOp, UserOpt,
    VertexId,
};

const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn mount(dest: &str, mount_type: MountType, input: i64) -> Mount {
    Mount {
        dest: dest.to_owned(),
        mount_type,
        input,
        output: -1,
        readonly: false,
        ..Mount::rootfs(input)
    }
}

fn exec(graph: &mut Graph, inputs: Vec<Input>, command: &str, mounts: Vec<Mount>) -> VertexId {
    let mut meta = ExecMeta::shell(command, "/");
    meta.env = vec![PATH.to_owned()];
    let mut all = vec![Mount::rootfs(0)];
    all.extend(mounts);
    graph.add(
        Op::Exec(ExecOp {
            meta,
            mounts: all,
            ..ExecOp::default()
        }),
        inputs,
    )
}

fn layers(fs: &Filesystem) -> Vec<LayerRef> {
    fs.layers().unwrap().to_vec()
}

fn files_of(store: &Store, layer: &LayerRef) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    extract(
        std::io::BufReader::new(store.open_blob(&layer.digest).unwrap()),
        dir.path(),
        &ExtractOptions::default(),
    )
    .unwrap();
    dir
}

struct Setup {
    _registry: solve_support::TestRegistry,
    image: String,
    images: Arc<dyn ImageSource>,
    _store_dir: tempfile::TempDir,
    store: Store,
    context: tempfile::TempDir,
}

fn setup() -> Setup {
    let registry = solve_support::TestRegistry::start();
    let image = solve_support::push_busybox(&registry);
    let images: Arc<dyn ImageSource> =
        Arc::new(RegistryImages::new(solve_support::client()).unwrap());
    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    let context = tempfile::tempdir().unwrap();
    std::fs::write(context.path().join("input.txt"), "from the context\n").unwrap();
    Setup {
        _registry: registry,
        image,
        images,
        _store_dir: store_dir,
        store,
        context,
    }
}

fn request<'g>(s: &Setup, graph: &'g Graph, target: VertexId) -> SolveRequest<'g> {
    let mut r = SolveRequest::new(graph, Input::new(target, 0));
    r.images = Some(s.images.clone());
    r.cache = Some(Arc::new(LocalCache::new(s.store.clone())));
    r.locals = HashMap::from([("context".to_owned(), LocalSource::new(s.context.path()))]);
    r.secrets = HashMap::from([("token".to_owned(), b"s3cr3t".to_vec())]);
    r
}

#[test]
fn cache_secret_tmpfs_and_bind_mounts() {
    require_components!();
    let s = setup();
    let mut graph = Graph::default();
    let base = graph.add(Op::Source(SourceOp::image(&s.image)), vec![]);
    let context = graph.add(Op::Source(SourceOp::local("context")), vec![]);
    let mut cache = mount("/var/cache/app", MountType::Cache, -1);
    cache.cache_opt = Some(CacheOpt {
        id: "app-cache".to_owned(),
        ..CacheOpt::default()
    });
    let mut secret = mount("/run/secrets/token", MountType::Secret, -1);
    secret.secret_opt = Some(SecretOpt {
        id: "token".to_owned(),
        mode: 0o400,
        ..SecretOpt::default()
    });
    let tmpfs = mount("/scratch", MountType::Tmpfs, -1);
    let mut bind = mount("/ctx", MountType::Bind, 1);
    bind.readonly = true;
    let command = "echo run >> /var/cache/app/runs; \
         cat /run/secrets/token > /seen-secret; \
         echo tmp > /scratch/file; \
         cat /ctx/input.txt > /seen-context; \
         if touch /ctx/write 2>/dev/null; then echo writable > /ctx-state; else echo readonly > /ctx-state; fi";
    let run = exec(
        &mut graph,
        vec![Input::new(base, 0), Input::new(context, 0)],
        command,
        vec![cache, secret, tmpfs, bind],
    );
    let solver = Solver::new(s.store.clone(), SolverOptions::default());
    let outcome = solver.solve(&request(&s, &graph, run)).unwrap();
    let top = files_of(&s.store, layers(&outcome.result).last().unwrap());
    let root = top.path();
    assert_eq!(
        std::fs::read_to_string(root.join("seen-secret")).unwrap(),
        "s3cr3t"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("seen-context")).unwrap(),
        "from the context\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("ctx-state")).unwrap(),
        "readonly\n"
    );
    for absent in ["run/secrets", "scratch", "var/cache/app", "ctx"] {
        assert!(
            !root.join(absent).exists(),
            "{absent} leaked into the layer"
        );
    }
    let cache_dir = s.store.cache_mount_dir("app-cache").unwrap();
    assert_eq!(
        std::fs::read_to_string(cache_dir.join("runs")).unwrap(),
        "run\n"
    );

    // --no-cache runs it again, and the cache mount keeps what the first run left.
    let mut again = graph.clone();
    again.vertex_mut(run).ignore_cache = true;
    let outcome = solver.solve(&request(&s, &again, run)).unwrap();
    assert_eq!(outcome.runtime_runs, 1);
    assert_eq!(
        std::fs::read_to_string(cache_dir.join("runs")).unwrap(),
        "run\nrun\n"
    );

    // A missing secret fails the step.
    let mut r = request(&s, &again, run);
    r.secrets.clear();
    let err = solver.solve(&r).unwrap_err();
    assert!(format!("{err:?}").contains("MissingSecret"), "{err:?}");
}

#[test]
fn merge_concatenates_layer_chains() {
    require_components!();
    let s = setup();
    let mut graph = Graph::default();
    let base = graph.add(Op::Source(SourceOp::image(&s.image)), vec![]);
    let scratch = graph.add(Op::Source(SourceOp::scratch()), vec![]);
    let linked = graph.add(
        Op::File(FileOp {
            actions: vec![FileAction {
                input: 0,
                secondary_input: -1,
                output: 0,
                kind: FileActionKind::Mkfile(FileMkfile {
                    path: "/linked.txt".into(),
                    mode: 0o644,
                    data: b"linked\n".to_vec(),
                    owner: None,
                    timestamp: 0,
                }),
            }],
        }),
        vec![Input::new(scratch, 0)],
    );
    // `COPY --from=base --chown=app /etc/passwd /from-base/` onto the linked layer: a copy
    // whose source is a layered input (pulled and mounted as a read-only view).
    let mut from_base = FileCopy::new("/etc/passwd", "/from-base/");
    from_base.create_dest_path = true;
    from_base.follow_symlink = true;
    from_base.owner = Some(ChownOpt {
        user: Some(UserOpt::ById(1000)),
        group: None,
    });
    let copied = graph.add(
        Op::File(FileOp {
            actions: vec![FileAction {
                input: 0,
                secondary_input: 1,
                output: 0,
                kind: FileActionKind::Copy(from_base),
            }],
        }),
        vec![Input::new(linked, 0), Input::new(base, 0)],
    );
    let merged = graph.add(
        Op::Merge(MergeOp { inputs: vec![0, 1] }),
        vec![Input::new(base, 0), Input::new(copied, 0)],
    );
    let check = exec(
        &mut graph,
        vec![Input::new(merged, 0)],
        "cat /linked.txt > /checked && pwd > /where",
        vec![],
    );
    if let Op::Exec(op) = &mut graph.vertex_mut(check).op {
        // A working directory the rootfs lacks is created for the run.
        op.meta.cwd = "/made/for/run".to_owned();
    }
    let solver = Solver::new(s.store.clone(), SolverOptions::default());
    let merged_result = solver.solve(&request(&s, &graph, merged)).unwrap();
    let chain = layers(&merged_result.result);
    assert_eq!(chain.len(), 3, "base + (linked file + copied file)");
    // Only the copy needed the base's files.
    assert_eq!(merged_result.pulled, vec![chain[0].digest.clone()]);
    let copied_layer = files_of(&s.store, &chain[2]);
    let passwd = copied_layer.path().join("from-base/passwd");
    assert!(
        std::fs::read_to_string(&passwd)
            .unwrap()
            .contains("app:x:1000")
    );
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&passwd).unwrap()),
        1000
    );
    let outcome = solver.solve(&request(&s, &graph, check)).unwrap();
    let all = layers(&outcome.result);
    assert_eq!(&all[..3], &chain[..]);
    let top = files_of(&s.store, &all[3]);
    assert_eq!(
        std::fs::read_to_string(top.path().join("checked")).unwrap(),
        "linked\n"
    );
}

#[test]
fn independent_steps_run_at_the_same_time() {
    require_components!();
    let s = setup();
    let mut graph = Graph::default();
    let base = graph.add(Op::Source(SourceOp::image(&s.image)), vec![]);
    // Each step announces itself in a shared cache mount and waits (bounded) for the other:
    // both succeed only when they run concurrently.
    let rendezvous = |me: &str, other: &str| {
        format!(
            "touch /meet/{me}; i=0; while [ ! -e /meet/{other} ]; do i=$((i+1)); \
             if [ $i -gt 600 ]; then echo {other} never came; exit 1; fi; sleep 0.05; done; \
             echo {me} > /{me}.txt"
        )
    };
    let meet = || {
        let mut m = mount("/meet", MountType::Cache, -1);
        m.cache_opt = Some(CacheOpt {
            id: "rendezvous".to_owned(),
            ..CacheOpt::default()
        });
        m
    };
    let a = exec(
        &mut graph,
        vec![Input::new(base, 0)],
        &rendezvous("a", "b"),
        vec![meet()],
    );
    let b = exec(
        &mut graph,
        vec![Input::new(base, 0)],
        &rendezvous("b", "a"),
        vec![meet()],
    );
    let merged = graph.add(
        Op::Merge(MergeOp { inputs: vec![0, 1] }),
        vec![Input::new(a, 0), Input::new(b, 0)],
    );
    let solver = Solver::new(
        s.store.clone(),
        SolverOptions {
            parallelism: 2,
            ..SolverOptions::default()
        },
    );
    let outcome = solver.solve(&request(&s, &graph, merged)).unwrap();
    assert_eq!(outcome.runtime_runs, 2);
    // base, a's layer, base, b's layer.
    assert_eq!(layers(&outcome.result).len(), 4);
}

#[test]
fn locked_cache_mounts_admit_one_step_at_a_time() {
    require_components!();
    let s = setup();
    let mut graph = Graph::default();
    let base = graph.add(Op::Source(SourceOp::image(&s.image)), vec![]);
    let locked = || {
        let mut m = mount("/c", MountType::Cache, -1);
        m.cache_opt = Some(CacheOpt {
            id: "locked".to_owned(),
            sharing: CacheSharing::Locked,
        });
        m
    };
    let critical = |me: &str| {
        format!(
            "if [ -e /c/busy ]; then echo clash; exit 1; fi; touch /c/busy; \
             echo {me} >> /c/log; sleep 0.3; rm /c/busy"
        )
    };
    let a = exec(
        &mut graph,
        vec![Input::new(base, 0)],
        &critical("a"),
        vec![locked()],
    );
    let b = exec(
        &mut graph,
        vec![Input::new(base, 0)],
        &critical("b"),
        vec![locked()],
    );
    let merged = graph.add(
        Op::Merge(MergeOp { inputs: vec![0, 1] }),
        vec![Input::new(a, 0), Input::new(b, 0)],
    );
    let solver = Solver::new(
        s.store.clone(),
        SolverOptions {
            parallelism: 2,
            ..SolverOptions::default()
        },
    );
    solver.solve(&request(&s, &graph, merged)).unwrap();
    let log =
        std::fs::read_to_string(s.store.cache_mount_dir("locked").unwrap().join("log")).unwrap();
    let mut lines: Vec<&str> = log.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, vec!["a", "b"]);
}
