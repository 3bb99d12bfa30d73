//! The solver end to end with real components: a busybox image pushed to a real registry, runc
//! over overlayfs, a context directory, and the store's local cache. Skips with a message where
//! root, runc, busybox or docker-registry is missing.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod solve_support;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use inlay_builder::extract::{ExtractOptions, extract};
use inlay_builder::image::{ImageRequest, assemble};
use inlay_builder::layer::LayerOptions;
use inlay_builder::progress::ProgressEvent;
use inlay_builder::solver::{
    Filesystem, LayerRef, LocalCache, SolveError, SolveOutcome, SolveRequest, Solver, SolverOptions,
};
use inlay_builder::source::{ImageSource, LocalSource, RegistryImages};
use inlay_builder::store::Store;
use inlay_core::image::History;
use inlay_core::op::{
    ExecMeta, ExecOp, FileAction, FileActionKind, FileCopy, FileMkdir, FileOp, Graph, Input, Mount,
    Op, SourceOp, Vertex, VertexId,
};

const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn vertex(graph: &mut Graph, op: Op, inputs: Vec<Input>, description: &str) -> VertexId {
    graph.add_vertex(Vertex {
        op,
        inputs,
        platform: None,
        ignore_cache: false,
        description: description.to_owned(),
    })
}

fn run(graph: &mut Graph, base: VertexId, command: &str, cwd: &str, name: &str) -> VertexId {
    let mut meta = ExecMeta::shell(command, cwd);
    meta.env = vec![PATH.to_owned()];
    vertex(
        graph,
        Op::Exec(ExecOp {
            meta,
            mounts: vec![Mount::rootfs(0)],
            ..ExecOp::default()
        }),
        vec![Input::new(base, 0)],
        name,
    )
}

/// What the Dockerfile frontend would emit for
/// ```text
/// FROM <busybox>
/// RUN echo built > /built.txt
/// COPY hello.txt /app/
/// WORKDIR /work
/// RUN cat /app/hello.txt > seen.txt
/// ```
struct Sample {
    graph: Graph,
    from: VertexId,
    first_run: VertexId,
    copy: VertexId,
    workdir: VertexId,
    second_run: VertexId,
}

fn sample_graph(image: &str, first_command: &str) -> Sample {
    let mut graph = Graph::default();
    let from = vertex(
        &mut graph,
        Op::Source(SourceOp::image(image)),
        vec![],
        "[1/5] FROM busybox",
    );
    let first_run = run(&mut graph, from, first_command, "/", "[2/5] RUN");
    let context = vertex(
        &mut graph,
        Op::Source(SourceOp::local("context")),
        vec![],
        "[internal] load build context",
    );
    let mut copy = FileCopy::new("/hello.txt", "/app/");
    copy.follow_symlink = true;
    copy.create_dest_path = true;
    copy.allow_wildcard = true;
    copy.allow_empty_wildcard = true;
    let copy = vertex(
        &mut graph,
        Op::File(FileOp {
            actions: vec![FileAction {
                input: 0,
                secondary_input: 1,
                output: 0,
                kind: FileActionKind::Copy(copy),
            }],
        }),
        vec![Input::new(first_run, 0), Input::new(context, 0)],
        "[3/5] COPY hello.txt /app/",
    );
    let workdir = vertex(
        &mut graph,
        Op::File(FileOp {
            actions: vec![FileAction {
                input: 0,
                secondary_input: -1,
                output: 0,
                kind: FileActionKind::Mkdir(FileMkdir {
                    path: "/work".to_owned(),
                    mode: 0o755,
                    make_parents: true,
                    owner: None,
                    timestamp: -1,
                }),
            }],
        }),
        vec![Input::new(copy, 0)],
        "[4/5] WORKDIR /work",
    );
    let second_run = run(
        &mut graph,
        workdir,
        "cat /app/hello.txt > seen.txt",
        "/work",
        "[5/5] RUN cat",
    );
    Sample {
        graph,
        from,
        first_run,
        copy,
        workdir,
        second_run,
    }
}

fn context_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hello.txt"), "hello from the context\n").unwrap();
    std::fs::write(dir.path().join("ignored.txt"), "never sent\n").unwrap();
    dir
}

fn solver(store: &Store) -> Solver {
    Solver::new(
        store.clone(),
        SolverOptions {
            layer: LayerOptions {
                source_date_epoch: Some(1_700_000_000),
                ..LayerOptions::default()
            },
            ..SolverOptions::default()
        },
    )
}

fn request<'g>(
    sample: &'g Sample,
    context: &Path,
    images: &Arc<dyn ImageSource>,
    store: &Store,
) -> SolveRequest<'g> {
    let mut request = SolveRequest::new(&sample.graph, Input::new(sample.second_run, 0));
    request.locals = HashMap::from([(
        "context".to_owned(),
        LocalSource::new(context).excluding(Arc::new(|p: &str| p == "ignored.txt")),
    )]);
    request.images = Some(images.clone());
    request.cache = Some(Arc::new(LocalCache::new(store.clone())));
    request
}

fn layers(outcome: &SolveOutcome) -> Vec<LayerRef> {
    match &outcome.result {
        Filesystem::Layers(l) => l.clone(),
        other => panic!("expected layers, got {other:?}"),
    }
}

fn extract_layer(store: &Store, layer: &LayerRef) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let blob = store.open_blob(&layer.digest).unwrap();
    let report = extract(
        std::io::BufReader::new(blob),
        dir.path(),
        &ExtractOptions::default(),
    )
    .unwrap();
    assert_eq!(report.diff_id, layer.diff_id);
    dir
}

fn history(n: usize) -> Vec<History> {
    (0..n)
        .map(|i| History {
            created_by: format!("step {i}"),
            ..History::default()
        })
        .collect()
}

#[test]
fn builds_an_image_from_a_registry_base_and_rebuilds_it_from_the_cache() {
    require_components!();
    let registry = solve_support::TestRegistry::start();
    let image = solve_support::push_busybox(&registry);
    let images: Arc<dyn ImageSource> =
        Arc::new(RegistryImages::new(solve_support::client()).unwrap());
    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    let context = context_dir();
    let sample = sample_graph(&image, "echo built > /built.txt");

    let (sink, events) = solve_support::recorder();
    let mut first = request(&sample, context.path(), &images, &store);
    first.progress = sink;
    let outcome = solver(&store).solve(&first).unwrap();
    assert_eq!(outcome.runtime_runs, 2);
    assert!(outcome.cached.is_empty());
    let result = layers(&outcome);
    assert_eq!(result.len(), 5, "base + RUN + COPY + WORKDIR + RUN");
    assert_eq!(outcome.results[&Input::new(sample.copy, 0)], result[..3]);
    assert!(outcome.keys.contains_key(&Input::new(sample.second_run, 0)));

    // The base layer was pulled once, for the first RUN, and announced on that vertex.
    assert_eq!(outcome.pulled, vec![result[0].digest.clone()]);
    check_pull_events(&sample, &events.lock().unwrap());

    check_layer_contents(&store, &result);

    // The image lists the layers.
    let template =
        br#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["sh"]}}"#;
    let assembled = assemble(
        &store,
        &ImageRequest {
            layers: &result,
            config_template: template,
            history: history(5),
            source_date_epoch: Some(1_700_000_000),
            build_time: 0,
            oci: true,
        },
    )
    .unwrap();
    assert!(store.has_blob(assembled.digest()));

    // A second identical solve on the same store runs nothing.
    let second = solver(&store)
        .solve(&request(&sample, context.path(), &images, &store))
        .unwrap();
    assert_eq!(second.runtime_runs, 0);
    for v in [
        sample.first_run,
        sample.copy,
        sample.workdir,
        sample.second_run,
    ] {
        assert!(second.cached.contains(&v), "vertex {v:?} was not cached");
    }
    assert_eq!(layers(&second), result);
    let again = assemble(
        &store,
        &ImageRequest {
            layers: &layers(&second),
            config_template: template,
            history: history(5),
            source_date_epoch: Some(1_700_000_000),
            build_time: 0,
            oci: true,
        },
    )
    .unwrap();
    assert_eq!(again.digest(), assembled.digest());

    // A changed context file misses from the COPY on, the first RUN stays cached.
    std::fs::write(context.path().join("hello.txt"), "changed\n").unwrap();
    let third = solver(&store)
        .solve(&request(&sample, context.path(), &images, &store))
        .unwrap();
    assert_eq!(third.runtime_runs, 1);
    assert!(third.cached.contains(&sample.first_run));
    assert!(third.executed.contains(&sample.copy));
}

#[test]
fn a_failing_command_reports_its_status_and_output() {
    require_components!();
    let registry = solve_support::TestRegistry::start();
    let image = solve_support::push_busybox(&registry);
    let images: Arc<dyn ImageSource> =
        Arc::new(RegistryImages::new(solve_support::client()).unwrap());
    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    let context = context_dir();
    let sample = sample_graph(&image, "echo about to fail; exit 3");
    let err = solver(&store)
        .solve(&request(&sample, context.path(), &images, &store))
        .unwrap_err();
    let SolveError::Vertex { vertex, source, .. } = &err else {
        panic!("unexpected error {err:?}");
    };
    assert_eq!(*vertex, sample.first_run);
    let text = source.to_string();
    assert!(text.contains("exit code 3"), "{text}");
    assert!(text.contains("about to fail"), "{text}");
}

#[test]
fn two_concurrent_solves_share_one_store() {
    require_components!();
    let registry = solve_support::TestRegistry::start();
    let image = solve_support::push_busybox(&registry);
    let images: Arc<dyn ImageSource> =
        Arc::new(RegistryImages::new(solve_support::client()).unwrap());
    let store_dir = tempfile::tempdir().unwrap();
    let store = Store::open(store_dir.path()).unwrap();
    let context = context_dir();
    let a = sample_graph(&image, "echo a > /which.txt");
    let b = sample_graph(&image, "echo b > /which.txt");
    let (ra, rb) = std::thread::scope(|s| {
        let ha = s.spawn(|| {
            solver(&store)
                .solve(&request(&a, context.path(), &images, &store))
                .unwrap()
        });
        let hb = s.spawn(|| {
            solver(&store)
                .solve(&request(&b, context.path(), &images, &store))
                .unwrap()
        });
        (ha.join().unwrap(), hb.join().unwrap())
    });
    let (la, lb) = (layers(&ra), layers(&rb));
    assert_eq!(la[0], lb[0], "same base");
    let wa = extract_layer(&store, &la[1]);
    let wb = extract_layer(&store, &lb[1]);
    assert_eq!(
        std::fs::read_to_string(wa.path().join("which.txt")).unwrap(),
        "a\n"
    );
    assert_eq!(
        std::fs::read_to_string(wb.path().join("which.txt")).unwrap(),
        "b\n"
    );
    assert!(store.verify().unwrap().is_ok());
    // Both results are in the local cache now.
    let again = solver(&store)
        .solve(&request(&a, context.path(), &images, &store))
        .unwrap();
    assert_eq!(again.runtime_runs, 0);
}

/// Each new layer of the sample holds exactly its step's files.
fn check_layer_contents(store: &Store, result: &[LayerRef]) {
    let run1 = extract_layer(store, &result[1]);
    assert_eq!(
        std::fs::read_to_string(run1.path().join("built.txt")).unwrap(),
        "built\n"
    );
    assert!(!run1.path().join("bin/busybox").exists());
    let copied = extract_layer(store, &result[2]);
    assert_eq!(
        std::fs::read_to_string(copied.path().join("app/hello.txt")).unwrap(),
        "hello from the context\n"
    );
    assert!(!copied.path().join("app/ignored.txt").exists());
    let workdir = extract_layer(store, &result[3]);
    assert!(workdir.path().join("work").is_dir());
    let run2 = extract_layer(store, &result[4]);
    assert_eq!(
        std::fs::read_to_string(run2.path().join("work/seen.txt")).unwrap(),
        "hello from the context\n"
    );
    assert!(
        !run2.path().join("proc").exists(),
        "mount stubs stay out of layers"
    );
}

/// The base layer was pulled once, for the first RUN, after the FROM was done.
fn check_pull_events(sample: &Sample, events: &[ProgressEvent]) {
    let pulls: Vec<&ProgressEvent> = events
        .iter()
        .filter(|e| matches!(e, ProgressEvent::Pulling { .. }))
        .collect();
    assert_eq!(pulls.len(), 1);
    assert!(
        matches!(pulls[0], ProgressEvent::Pulling { vertex, .. } if *vertex == sample.first_run)
    );
    let pull_at = events
        .iter()
        .position(|e| matches!(e, ProgressEvent::Pulling { .. }))
        .unwrap();
    let from_done = events
        .iter()
        .position(|e| matches!(e, ProgressEvent::Done { vertex, .. } if *vertex == sample.from))
        .unwrap();
    let run_started = events
        .iter()
        .position(
            |e| matches!(e, ProgressEvent::Started { vertex, .. } if *vertex == sample.first_run),
        )
        .unwrap();
    assert!(from_done < pull_at && run_started < pull_at);
    for v in [
        sample.first_run,
        sample.copy,
        sample.workdir,
        sample.second_run,
    ] {
        assert!(
            events
                .iter()
                .any(|e| matches!(e, ProgressEvent::Done { vertex, .. } if *vertex == v))
        );
    }
}
