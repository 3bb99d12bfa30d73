//! Key plans against the real BuildKit inline caches of `shared/conformance` (spec sections 8
//! and 8b): the real lowering, the real content hasher over the real file and the real chain
//! export reproduce both inline values byte for byte.

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use inlay_builder::plan::{KeyPlan, PendingContent, PlanError, PlanInput, base_images, plan_keys};
use inlay_core::cache::{RecordGraph, Timestamp};
use inlay_core::cachekey::KeyProfile;
use inlay_core::contenthash::{
    ContentTreeBuilder, Entry, EntryKind, Profile, SourceKind, Stat, TreeOptions,
};
use inlay_core::image::{Document, ImageConfig, ImageManifest};
use inlay_core::op::NetMode;
use inlay_core::{Descriptor, Digest};
use inlay_frontend_dockerfile::lower::{ContentOrigin, ResolvedImage};

const V08: &str = "buildkit-v0.8-inline-sample";
const V024: &str = "buildkit-v0.24-inline-sample";

fn sample(name: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/conformance"
    ))
    .canonicalize()
    .unwrap()
    .join(name)
}

fn read(name: &str, file: &str) -> Vec<u8> {
    fs::read(sample(name).join(file)).unwrap()
}

fn config_of(bytes: Vec<u8>) -> ImageConfig {
    Document::<ImageConfig>::parse(bytes)
        .unwrap()
        .view()
        .clone()
}

fn manifest_of(bytes: Vec<u8>) -> ImageManifest {
    Document::<ImageManifest>::parse(bytes)
        .unwrap()
        .view()
        .clone()
}

/// A context holding the sample's `data.txt` with mode 0644.
fn context(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.txt");
    fs::copy(sample(name).join("data.txt"), &data).unwrap();
    fs::set_permissions(&data, fs::Permissions::from_mode(0o644)).unwrap();
    dir
}

fn input(name: &str, dir: &Path, profile: KeyProfile, with_manifest: bool) -> PlanInput {
    let mut input = PlanInput::new(dir, read(name, "Dockerfile"), profile);
    let bases = base_images(&input).unwrap();
    assert_eq!(bases.len(), 1);
    assert_eq!(
        bases[0].reference.to_string(),
        "localhost:5000/busybox:latest"
    );
    let config: ImageConfig = config_of(read(name, "base-config.json"));
    let manifest = Digest::sha256_of(&read(name, "base-manifest.json"));
    input.bases = vec![ResolvedImage::new(
        bases[0].reference.clone(),
        with_manifest.then_some(manifest),
        config,
    )];
    input
}

/// The sample image's layers, its config, and the `createdAt` of each result of its inline
/// cache, by layer index.
fn image(name: &str) -> (Vec<Descriptor>, ImageConfig, Vec<Timestamp>) {
    let manifest: ImageManifest = manifest_of(read(name, "manifest.json"));
    let config: ImageConfig = config_of(read(name, "config.json"));
    let graph = RecordGraph::from_inline(config.inline_cache().unwrap()).unwrap();
    let mut times: Vec<(usize, Timestamp)> = graph
        .records()
        .iter()
        .flat_map(|r| r.results.iter().map(|x| (x.layer, x.created_at)))
        .collect();
    times.sort_by_key(|(l, _)| *l);
    let times = times.into_iter().map(|(_, t)| t).collect();
    (manifest.layers, config, times)
}

fn reproduce(name: &str, plan: &KeyPlan) {
    let (layers, config, times) = image(name);
    assert_eq!(plan.layer_chain().len(), times.len());
    let graph = plan.export_records(&layers, &times).unwrap().unwrap();
    assert_eq!(graph.to_inline(), config.inline_cache().unwrap());
}

fn history(config: &ImageConfig) -> Vec<(String, bool)> {
    config
        .history
        .iter()
        .map(|h| (h.created_by.clone(), h.empty_layer))
        .collect()
}

#[test]
fn v08_profile_reproduces_the_docker_20_10_sample() {
    let dir = context(V08);
    // docker 20.10 with the base in its local store: no manifest key, only the chainID root.
    let plan = plan_keys(&input(V08, dir.path(), KeyProfile::BuildkitV08, false)).unwrap();
    assert!(plan.pending.is_empty());
    reproduce(V08, &plan);
    assert_eq!(
        plan.final_record().unwrap().to_string(),
        "sha256:c61c4fe0a25c97bb4fe001289eef9c2b4dca1be16edf753f346dc24c89749298"
    );
    let (_, config, _) = image(V08);
    assert_eq!(history(&plan.lowered.image), history(&config));
}

#[test]
fn current_profile_reproduces_the_v0_24_sample() {
    let dir = context(V024);
    let mut input = input(V024, dir.path(), KeyProfile::BuildkitCurrent, true);
    input.network = NetMode::None;
    let plan = plan_keys(&input).unwrap();
    reproduce(V024, &plan);
    let (_, config, _) = image(V024);
    assert_eq!(history(&plan.lowered.image), history(&config));
    let env = plan.lowered.image.config.as_ref().unwrap().env.clone();
    assert_eq!(env, config.config.as_ref().unwrap().env);
}

#[test]
fn steps_carry_progress_names_and_keys() {
    let dir = context(V024);
    let mut input = input(V024, dir.path(), KeyProfile::BuildkitCurrent, true);
    input.network = NetMode::None;
    let plan = plan_keys(&input).unwrap();
    let names: Vec<&str> = plan.steps.iter().map(|s| s.description.as_str()).collect();
    assert_eq!(
        names,
        [
            "[base 1/5] FROM localhost:5000/busybox:latest@sha256:706400ad74aba921c5afe8b1c2c72d34188005d607c3b2cf674c679775ae67ed",
            "[base 2/5] RUN echo hello > /hello.txt",
            "[base 3/5] COPY data.txt /data.txt",
            "[base 4/5] WORKDIR /app",
            "[base 5/5] RUN cat /data.txt > /app/out.txt",
        ]
    );
    // Both image roots, then one record per step.
    assert_eq!(
        plan.steps[0]
            .records
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>(),
        [
            "sha256:840e26d9f1ea58c00079e39a7bbe6c35a878f7b2fafc108d5b1b7d707e5a2b89",
            "sha256:b139ea8bf07ace643415354a46ce11c0649b87a4c7c495c9ba2fc6029493ae74",
        ]
    );
    assert_eq!(
        plan.steps[1].records[0].to_string(),
        "sha256:3c6573bf326fc4c1b46285b48a01e2c19e2dcd3fd34cb9a40420a96d08c5ecc8"
    );
    assert_eq!(
        plan.lowered.context_paths,
        Some(vec!["data.txt".to_owned()])
    );
}

#[test]
fn a_changed_context_file_changes_the_copy_and_later_keys() {
    let dir = context(V08);
    let plan = plan_keys(&input(V08, dir.path(), KeyProfile::BuildkitV08, false)).unwrap();
    fs::write(dir.path().join("data.txt"), b"other data").unwrap();
    let changed = plan_keys(&input(V08, dir.path(), KeyProfile::BuildkitV08, false)).unwrap();
    assert_eq!(plan.steps[1].records, changed.steps[1].records, "RUN echo");
    // The COPY's own digest is the same op; its content link differs, so the export differs.
    assert_ne!(plan.keys, changed.keys);
    let (layers, _, times) = image(V08);
    assert_ne!(
        plan.export_records(&layers, &times).unwrap(),
        changed.export_records(&layers, &times).unwrap()
    );
}

#[test]
fn dockerignore_hides_a_copied_file() {
    let dir = context(V08);
    fs::write(dir.path().join(".dockerignore"), b"*.txt\n").unwrap();
    let err = plan_keys(&input(V08, dir.path(), KeyProfile::BuildkitV08, false)).unwrap_err();
    assert!(matches!(err, PlanError::Content { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("[base 3/5] COPY data.txt /data.txt"),
        "{err}"
    );
    // An exception brings it back, with the same keys as without an ignore file.
    fs::write(dir.path().join(".dockerignore"), b"*.txt\n!data.txt\n").unwrap();
    let plan = plan_keys(&input(V08, dir.path(), KeyProfile::BuildkitV08, false)).unwrap();
    reproduce(V08, &plan);
}

#[test]
fn copy_from_stage_waits_for_the_stage_tree() {
    let dir = context(V08);
    fs::write(
        dir.path().join("Dockerfile"),
        b"FROM localhost:5000/busybox:latest AS build\nRUN echo hi > /out\nFROM scratch\nCOPY --from=build /out /out\n",
    )
    .unwrap();
    let mut plan_input = input(V08, dir.path(), KeyProfile::BuildkitCurrent, true);
    plan_input.dockerfile = fs::read(dir.path().join("Dockerfile")).unwrap();
    let plan = plan_keys(&plan_input).unwrap();
    assert_eq!(plan.pending.len(), 1);
    let PendingContent { origin, .. } = &plan.pending[0];
    assert_eq!(origin, &ContentOrigin::Stage(0));
    assert!(plan.final_record().is_some());

    // With the stage's tree supplied, the key is computed over /out.
    let mut tree =
        ContentTreeBuilder::new(TreeOptions::new(Profile::BuildkitV13, SourceKind::Snapshot));
    tree.insert(Entry::new("/", Stat::new(EntryKind::Dir, 0o755)))
        .unwrap();
    tree.insert(Entry::with_content(
        "/out",
        Stat::new(EntryKind::File { size: 3 }, 0o644),
        b"hi\n".to_vec(),
    ))
    .unwrap();
    plan_input.stage_trees.insert(0, tree.build().unwrap());
    let plan = plan_keys(&plan_input).unwrap();
    assert!(plan.pending.is_empty());
    assert_eq!(plan.content.len(), 1);
    assert_eq!(plan.content[0].selectors[0].path, "/out");
}

#[test]
fn copy_from_image_takes_the_image_tree() {
    let dir = context(V08);
    fs::write(
        dir.path().join("Dockerfile"),
        b"FROM scratch\nCOPY --from=localhost:5000/busybox:latest /etc/passwd /passwd\n",
    )
    .unwrap();
    let mut plan_input = input(V08, dir.path(), KeyProfile::BuildkitV08, false);
    plan_input.dockerfile = fs::read(dir.path().join("Dockerfile")).unwrap();
    let plan = plan_keys(&plan_input).unwrap();
    assert_eq!(plan.pending.len(), 1);
    let ContentOrigin::Image(reference) = plan.pending[0].origin.clone() else {
        panic!("{:?}", plan.pending[0].origin)
    };
    assert_eq!(reference.to_string(), "localhost:5000/busybox:latest");

    let mut tree =
        ContentTreeBuilder::new(TreeOptions::new(Profile::BuildkitV08, SourceKind::Snapshot));
    tree.insert(Entry::new("/", Stat::new(EntryKind::Dir, 0o755)))
        .unwrap();
    tree.insert(Entry::new("/etc", Stat::new(EntryKind::Dir, 0o755)))
        .unwrap();
    tree.insert(Entry::with_content(
        "/etc/passwd",
        Stat::new(EntryKind::File { size: 5 }, 0o644),
        b"root\n".to_vec(),
    ))
    .unwrap();
    plan_input
        .image_trees
        .insert(reference, tree.build().unwrap());
    let plan = plan_keys(&plan_input).unwrap();
    assert!(plan.pending.is_empty());
    assert_eq!(plan.content.len(), 1);
    assert_eq!(plan.content[0].selectors[0].path, "/etc/passwd");
}

#[test]
fn cache_mount_permissions_get_a_content_key() {
    let dir = context(V08);
    fs::write(
        dir.path().join("Dockerfile"),
        b"FROM localhost:5000/busybox:latest\nRUN --mount=type=cache,target=/c,uid=1000,mode=0700 true\n",
    )
    .unwrap();
    let mut plan_input = input(V08, dir.path(), KeyProfile::BuildkitV08, false);
    plan_input.dockerfile = fs::read(dir.path().join("Dockerfile")).unwrap();
    let plan = plan_keys(&plan_input).unwrap();
    assert!(plan.pending.is_empty());
    assert_eq!(plan.content.len(), 1);
    assert_eq!(plan.content[0].selectors[0].path, "/cache");
    assert!(matches!(
        plan.content[0].origin,
        ContentOrigin::Directory {
            mode: 0o700,
            uid: 1000,
            gid: 0,
            ..
        }
    ));
}

#[test]
fn content_profiles_follow_key_profiles() {
    use inlay_builder::plan::content_profile;
    assert_eq!(
        content_profile(KeyProfile::BuildkitV08),
        Profile::BuildkitV08
    );
    assert_eq!(
        content_profile(KeyProfile::BuildkitCurrent),
        Profile::BuildkitV13
    );
}
