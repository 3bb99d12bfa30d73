//! Cache keys of single ops per profile: exec mounts, owners, selectors, `COPY --from` links,
//! scratch inputs and merges (spec sections 5.3 to 5.6).

// Helpers outside #[test] fns are test code too.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;

use base64::Engine as _;
use inlay_core::cache::key::{content_record_digest, nul_joined_digest};
use inlay_core::cache::{ExportResult, Timestamp, export_chain};
use inlay_core::cachekey::{
    CacheMap, ImageKeyFacts, KeyProfile, RecordKey, VertexFacts, cache_map, solve_keys,
};
use inlay_core::op::{
    CacheOpt, CacheSharing, ChownOpt, ExecMeta, ExecOp, FileAction, FileActionKind, FileCopy,
    FileOp, Graph, Input, MergeOp, Mount, MountType, Op, SourceOp, UserOpt, VertexId,
};
use inlay_core::{Descriptor, Digest, Platform};

const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const ROOT_SELECTOR: &str =
    "sha256:8a5edab282632443219e051e4ade2d1d5bbc671c781051bf1437897cbdfea0f1";
const V08: KeyProfile = KeyProfile::BuildkitV08;
const CURRENT: KeyProfile = KeyProfile::BuildkitCurrent;

fn digest(s: &str) -> Digest {
    s.parse().unwrap()
}

fn map(graph: &Graph, v: VertexId, profile: KeyProfile) -> CacheMap {
    cache_map(
        graph,
        v,
        profile,
        &Platform::linux_amd64(),
        &VertexFacts::default(),
    )
    .unwrap()
}

fn image(graph: &mut Graph) -> VertexId {
    graph.add(
        Op::Source(SourceOp::image("docker.io/library/busybox:latest")),
        vec![],
    )
}

/// The JSON of each file action, decoded from the pre-image's base64 entries.
fn actions(map: &CacheMap) -> Vec<String> {
    let pre: serde_json::Value = serde_json::from_str(&map.keys[0].pre_image).unwrap();
    pre["Actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(a.as_str().unwrap())
                    .unwrap(),
            )
            .unwrap()
        })
        .collect()
}

fn dockerfile_copy(src: &str, dest: &str) -> FileCopy {
    let mut copy = FileCopy::new(src, dest);
    copy.follow_symlink = true;
    copy.dir_copy_contents = true;
    copy.create_dest_path = true;
    copy.allow_wildcard = true;
    copy.allow_empty_wildcard = true;
    copy
}

fn copy_action(input: i64, secondary: i64, output: i64, copy: FileCopy) -> FileAction {
    FileAction {
        input,
        secondary_input: secondary,
        output,
        kind: FileActionKind::Copy(copy),
    }
}

#[test]
fn run_mount_type_cache_in_both_profiles() {
    // RUN --mount=type=cache,target=/cache echo hi (spec section 5.5, verified JSONs).
    let mut graph = Graph::default();
    let base = image(&mut graph);
    let mut meta = ExecMeta::shell("echo hi", "/");
    meta.env = vec![PATH_ENV.to_owned()];
    let cache = Mount {
        input: -1,
        dest: "/cache".into(),
        output: -1,
        mount_type: MountType::Cache,
        cache_opt: Some(CacheOpt {
            id: "//cache".into(),
            sharing: CacheSharing::Shared,
        }),
        ..Mount::rootfs(-1)
    };
    let run = graph.add(
        Op::Exec(ExecOp {
            meta,
            mounts: vec![Mount::rootfs(0), cache.clone()],
            ..ExecOp::default()
        }),
        vec![Input::new(base, 0)],
    );
    let head = r#"{"Type":"buildkit.exec.v0","Exec":{"meta":{"args":["/bin/sh","-c","echo hi"],"env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"cwd":"/"},"#;
    let tail = r#"},"OS":"linux","Arch":"amd64"}"#;
    let old = map(&graph, run, V08);
    assert_eq!(
        old.keys[0].pre_image,
        format!(
            r#"{head}"mounts":[{{"input":0,"dest":"/","output":0}},{{"input":-1,"dest":"/cache","output":-1,"mountType":3,"cacheOpt":{{"ID":"//cache"}}}}]{tail}"#
        )
    );
    assert_eq!(old.inputs[0].selector, None);
    assert!(old.inputs[0].content.is_none());
    let new = map(&graph, run, CURRENT);
    assert_eq!(
        new.keys[0].pre_image,
        format!(
            r#"{head}"mounts":[{{"dest":"/"}},{{"input":-1,"dest":"/cache","output":-1,"mountType":3,"cacheOpt":{{"ID":"//cache"}}}}]{tail}"#
        )
    );
    assert_eq!(new.inputs[0].selector, Some(digest(ROOT_SELECTOR)));
    assert!(new.inputs[0].content.is_none());

    // id=foo,sharing=locked: v0.13+ clears both (verified on v0.24), v0.8 keeps them.
    if let Op::Exec(exec) = &mut graph.vertex_mut(run).op {
        exec.mounts[1].cache_opt = Some(CacheOpt {
            id: "/foo".into(),
            sharing: CacheSharing::Locked,
        });
    }
    assert!(
        map(&graph, run, CURRENT).keys[0]
            .pre_image
            .contains(r#""cacheOpt":{}"#)
    );
    assert!(
        map(&graph, run, V08).keys[0]
            .pre_image
            .contains(r#""cacheOpt":{"ID":"/foo","sharing":2}"#)
    );
}

#[test]
fn bind_mount_selectors_and_content_keys() {
    // RUN --mount=from=other,source=/src,target=/mnt: a read-only bind of input 1.
    let mut graph = Graph::default();
    let base = image(&mut graph);
    let other = image(&mut graph);
    let bind = Mount {
        input: 1,
        selector: "src".into(),
        dest: "/mnt".into(),
        output: -1,
        readonly: true,
        ..Mount::rootfs(1)
    };
    let run = graph.add(
        Op::Exec(ExecOp {
            meta: ExecMeta::shell("ls /mnt", "/"),
            mounts: vec![Mount::rootfs(0), bind],
            ..ExecOp::default()
        }),
        vec![Input::new(base, 0), Input::new(other, 0)],
    );
    for profile in KeyProfile::ALL {
        let m = map(&graph, run, profile);
        // The selector is cleared in the pre-image but names the link.
        assert!(!m.keys[0].pre_image.contains("selector"));
        assert_eq!(m.inputs[1].selector, Some(nul_joined_digest(&["/src"])));
        let content = m.inputs[1].content.as_ref().unwrap();
        assert_eq!(content.len(), 1);
        assert_eq!(content[0].path, "/src");
        assert!(m.inputs[0].content.is_none());
    }
}

#[test]
fn chown_owner_encodings_per_profile() {
    let mut graph = Graph::default();
    let base = image(&mut graph);
    let context = graph.add(Op::Source(SourceOp::local("context")), vec![]);
    let mut by_id = dockerfile_copy("/a.txt", "/a.txt");
    by_id.owner = Some(ChownOpt {
        user: Some(UserOpt::ById(1000)),
        group: Some(UserOpt::ById(0)),
    });
    let mut by_name = dockerfile_copy("/b.txt", "/b.txt");
    by_name.owner = Some(ChownOpt {
        user: Some(UserOpt::ByName {
            name: "app".into(),
            input: 0,
        }),
        group: Some(UserOpt::ByName {
            name: "staff".into(),
            input: 0,
        }),
    });
    let op = |copy| {
        Op::File(FileOp {
            actions: vec![copy_action(0, 1, 0, copy)],
        })
    };
    let inputs = vec![Input::new(base, 0), Input::new(context, 0)];
    let id_copy = graph.add(op(by_id), inputs.clone());
    let name_copy = graph.add(op(by_name), inputs);
    let rest = r#""mode":-1,"followSymlink":true,"dirCopyContents":true,"createDestPath":true,"allowWildcard":true,"allowEmptyWildcard":true,"timestamp":-1}"#;
    assert_eq!(
        actions(&map(&graph, id_copy, V08)),
        [format!(
            r#"{{"src":"a.txt","dest":"/a.txt","owner":{{"user":{{"User":{{"byID":1000}}}},"group":{{"User":{{}}}}}},{rest}"#
        )]
    );
    assert_eq!(
        actions(&map(&graph, id_copy, CURRENT)),
        [format!(
            r#"{{"src":"a.txt","dest":"/a.txt","owner":{{"user":{{"User":{{"byId":1000}}}},"group":{{"User":{{}}}}}},{rest}"#
        )]
    );
    assert_eq!(
        actions(&map(&graph, name_copy, V08)),
        [format!(
            r#"{{"src":"b.txt","dest":"/b.txt","owner":{{"user":{{"User":{{"byName":{{"name":"app","input":0}}}}}},"group":{{"User":{{"byName":{{"name":"staff","input":0}}}}}}}},{rest}"#
        )]
    );
    assert_eq!(
        actions(&map(&graph, name_copy, CURRENT)),
        [format!(
            r#"{{"src":"b.txt","dest":"/b.txt","owner":{{"user":{{"User":{{"byName":{{"name":"app"}}}}}},"group":{{"User":{{"byName":{{"name":"staff"}}}}}}}},{rest}"#
        )]
    );
    // The names resolve in input 0, the copy's base: base inputs take no selector (5.3).
    for profile in KeyProfile::ALL {
        let m = map(&graph, name_copy, profile);
        assert_eq!(m.inputs[0].selector, None);
        assert_eq!(m.inputs[1].selector, Some(nul_joined_digest(&["/b.txt"])));
    }
}

#[test]
fn multi_source_copy_selector_is_descending_content_ascending() {
    // COPY --from=stage /e.txt /s.txt /dst/ (spec section 5.3, verified in both versions).
    let mut graph = Graph::default();
    let base = image(&mut graph);
    let stage = image(&mut graph);
    let copy = graph.add(
        Op::File(FileOp {
            actions: vec![
                copy_action(0, 1, -1, dockerfile_copy("/e.txt", "/dst/")),
                copy_action(2, 1, 0, dockerfile_copy("/s.txt", "/dst/")),
            ],
        }),
        vec![Input::new(base, 0), Input::new(stage, 0)],
    );
    for profile in KeyProfile::ALL {
        let m = map(&graph, copy, profile);
        assert_eq!(
            m.inputs[1].selector,
            Some(nul_joined_digest(&["/s.txt", "/e.txt"]))
        );
        let paths: Vec<&str> = m.inputs[1]
            .content
            .as_ref()
            .unwrap()
            .iter()
            .map(|s| s.path.as_str())
            .collect();
        assert_eq!(paths, ["/e.txt", "/s.txt"]);
        // Default indexes: no `indexes` key.
        assert!(!m.keys[0].pre_image.contains("indexes"));
        assert_eq!(
            actions(&m)
                .iter()
                .map(|a| a.split(',').next().unwrap().to_owned())
                .collect::<Vec<_>>(),
            [r#"{"src":"e.txt""#, r#"{"src":"s.txt""#]
        );
    }
}

#[test]
fn copy_from_stage_links_two_alternatives() {
    // FROM busybox AS build / RUN make; FROM busybox / COPY --from=build /out/ ./
    let mut graph = Graph::default();
    let base = image(&mut graph);
    let build = graph.add(
        Op::Exec(ExecOp {
            meta: ExecMeta::shell("make", "/"),
            mounts: vec![Mount::rootfs(0)],
            ..ExecOp::default()
        }),
        vec![Input::new(base, 0)],
    );
    let copy = graph.add(
        Op::File(FileOp {
            actions: vec![copy_action(0, 1, 0, dockerfile_copy("/out", "/"))],
        }),
        vec![Input::new(base, 0), Input::new(build, 0)],
    );
    let content = digest("sha256:1111111111111111111111111111111111111111111111111111111111111111");
    let facts = HashMap::from([(
        base,
        VertexFacts {
            image: Some(ImageKeyFacts {
                manifest: None,
                diff_ids: vec![digest(
                    "sha256:3074da2ce01eeb63fd7d7a7f19841992f1c92fa0f7d8bcb3edd5fbed402545bb",
                )],
            }),
            ..VertexFacts::default()
        },
    )]);
    let contents = HashMap::from([((copy, 1), content.clone())]);
    let out_selector = nul_joined_digest(&["/out"]);
    for profile in KeyProfile::ALL {
        let keys = solve_keys(
            &graph,
            copy,
            profile,
            &Platform::linux_amd64(),
            &facts,
            &contents,
        )
        .unwrap();
        let last = keys.keys_of(Input::new(copy, 0))[0];
        let node = keys.node(last);
        assert_eq!(node.inputs.len(), 2);
        let input1 = &node.inputs[1];
        assert_eq!(input1.len(), 2);
        assert_eq!(input1[0].key, keys.keys_of(Input::new(build, 0))[0]);
        assert_eq!(input1[0].selector, Some(out_selector.clone()));
        assert_eq!(input1[1].selector, None);
        assert_eq!(
            keys.node(input1[1].key).record,
            RecordKey::Stable(content_record_digest(&content))
        );
        // Exported, both alternatives stay; the stage is not in the image, so its RUN has no
        // result but is written.
        let layer = Descriptor::new(
            "application/vnd.oci.image.layer.v1.tar+gzip",
            Digest::sha256_of(b"l0"),
            1,
        );
        let top = Descriptor::new(
            "application/vnd.oci.image.layer.v1.tar+gzip",
            Digest::sha256_of(b"l1"),
            1,
        );
        let results = HashMap::from([(
            Input::new(copy, 0),
            ExportResult {
                layers: vec![layer.clone(), top.clone()],
                created_at: Timestamp::ZERO,
            },
        )]);
        let graph_out = export_chain(&[layer, top], &[(&keys, last)], &results).unwrap();
        // chainID root, RUN, content key, COPY.
        assert_eq!(graph_out.len(), 4);
        let copy_record = graph_out
            .records()
            .iter()
            .find(|r| r.inputs.len() == 2)
            .unwrap();
        assert_eq!(copy_record.inputs[1].len(), 2);
        assert_eq!(copy_record.results[0].layer, 1);
        let run_record = &graph_out.records()[copy_record.inputs[0][0].link];
        assert!(run_record.is_root());
    }
}

#[test]
fn scratch_inputs_disappear_as_in_buildkit() {
    // FROM scratch / COPY data.txt /: BuildKit's file op has the context as its only input,
    // the copy's base is -1, so the indexes are not the default ones.
    let mut graph = Graph::default();
    let scratch = graph.add(Op::Source(SourceOp::scratch()), vec![]);
    let context = graph.add(Op::Source(SourceOp::local("context")), vec![]);
    let copy = graph.add(
        Op::File(FileOp {
            actions: vec![copy_action(
                0,
                1,
                0,
                dockerfile_copy("/data.txt", "/data.txt"),
            )],
        }),
        vec![Input::new(scratch, 0), Input::new(context, 0)],
    );
    let m = map(&graph, copy, V08);
    assert!(m.keys[0].pre_image.ends_with(r#","indexes":[[-1,0,0]]}"#));
    assert_eq!(m.inputs[0].buildkit_index, None);
    assert_eq!(m.inputs[1].buildkit_index, Some(0));
    assert_eq!(
        m.inputs[1].selector,
        Some(nul_joined_digest(&["/data.txt"]))
    );
    assert!(map(&graph, scratch, V08).keys.is_empty());
    // The key has one BuildKit input: the content key (the local key is random).
    let contents = HashMap::from([((copy, 1), Digest::sha256_of(b"x"))]);
    let keys = solve_keys(
        &graph,
        copy,
        V08,
        &Platform::linux_amd64(),
        &HashMap::new(),
        &contents,
    )
    .unwrap();
    let node = keys.node(keys.keys_of(Input::new(copy, 0))[0]);
    assert_eq!(node.inputs.len(), 1);
    assert_eq!(node.inputs[0].len(), 2);
    assert!(matches!(
        keys.node(node.inputs[0][0].key).record,
        RecordKey::Random(_)
    ));
}

#[test]
fn merge_pre_images() {
    let mut graph = Graph::default();
    let a = image(&mut graph);
    let b = image(&mut graph);
    let merge = graph.add(
        Op::Merge(MergeOp { inputs: vec![0, 1] }),
        vec![Input::new(a, 0), Input::new(b, 0)],
    );
    assert_eq!(
        map(&graph, merge, V08).keys[0].pre_image,
        r#"{"Type":"buildkit.merge.v0","Merge":{"inputs":[{"input":0},{"input":1}]}}"#
    );
    assert_eq!(
        map(&graph, merge, CURRENT).keys[0].pre_image,
        r#"{"Type":"buildkit.merge.v0","Merge":{"inputs":[{},{"input":1}]}}"#
    );
    let m = map(&graph, merge, CURRENT);
    assert!(
        m.inputs
            .iter()
            .all(|i| i.selector.is_none() && i.content.is_none())
    );
}

#[test]
fn image_keys_and_platform_fields() {
    let mut graph = Graph::default();
    let base = image(&mut graph);
    let facts = VertexFacts {
        image: Some(ImageKeyFacts {
            manifest: Some(digest(
                "sha256:706400ad74aba921c5afe8b1c2c72d34188005d607c3b2cf674c679775ae67ed",
            )),
            diff_ids: vec![digest(
                "sha256:3074da2ce01eeb63fd7d7a7f19841992f1c92fa0f7d8bcb3edd5fbed402545bb",
            )],
        }),
        ..VertexFacts::default()
    };
    for profile in KeyProfile::ALL {
        let m = cache_map(&graph, base, profile, &Platform::linux_amd64(), &facts).unwrap();
        // Spec section 8b.3, records 4 and 5.
        assert_eq!(
            m.record_digests(0),
            [
                digest("sha256:840e26d9f1ea58c00079e39a7bbe6c35a878f7b2fafc108d5b1b7d707e5a2b89"),
                digest("sha256:b139ea8bf07ace643415354a46ce11c0649b87a4c7c495c9ba2fc6029493ae74"),
            ]
        );
    }
    // OSVersion/OSFeatures enter exec keys only in the current profile.
    let mut windows = Platform::new("windows", "amd64", "");
    windows.os_version = "10.0.20348.1".into();
    let run = graph.add(
        Op::Exec(ExecOp {
            meta: ExecMeta::shell("dir", "/"),
            mounts: vec![Mount::rootfs(0)],
            ..ExecOp::default()
        }),
        vec![Input::new(base, 0)],
    );
    let pre = |p| {
        cache_map(&graph, run, p, &windows, &VertexFacts::default())
            .unwrap()
            .keys[0]
            .pre_image
            .clone()
    };
    assert!(pre(CURRENT).ends_with(r#""OS":"windows","Arch":"amd64","OSVersion":"10.0.20348.1"}"#));
    assert!(pre(V08).ends_with(r#""OS":"windows","Arch":"amd64"}"#));
    // A missing image fact is an error, not a panic.
    assert!(
        cache_map(
            &graph,
            base,
            V08,
            &Platform::linux_amd64(),
            &VertexFacts::default()
        )
        .is_err()
    );
}

#[test]
fn go_escapes_per_profile() {
    let mut graph = Graph::default();
    let base = image(&mut graph);
    let run = graph.add(
        Op::Exec(ExecOp {
            meta: ExecMeta::shell("printf '\u{8}\u{c}' && echo <x>", "/"),
            mounts: vec![Mount::rootfs(0)],
            ..ExecOp::default()
        }),
        vec![Input::new(base, 0)],
    );
    assert!(
        map(&graph, run, V08).keys[0]
            .pre_image
            .contains(r"'\u0008\u000c' \u0026\u0026 echo \u003cx\u003e")
    );
    assert!(
        map(&graph, run, CURRENT).keys[0]
            .pre_image
            .contains(r"'\b\f' \u0026\u0026")
    );
}
