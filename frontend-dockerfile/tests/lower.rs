//! Lowering a Dockerfile to BuildKit's LLB: env order, paths, stages, mounts, flags, heredocs,
//! and the exact key pre-images BuildKit hashes (spec sections 5.5, 5.6 and 8c).

#![allow(clippy::unwrap_used)] // helpers outside #[test] fns

use std::collections::HashMap;

use inlay_core::cachekey::{KeyProfile, VertexFacts, cache_map, solve_keys};
use inlay_core::image::ImageConfig;
use inlay_core::op::{ExecOp, FileActionKind, FileCopy, Input, NetMode, Op, UserOpt, VertexId};
use inlay_core::{Digest, Platform};
use inlay_frontend_dockerfile::lower::{self, ContentOrigin, LowerOptions, Lowered, ResolvedImage};
use inlay_frontend_dockerfile::{instructions, parser};

const V08: KeyProfile = KeyProfile::BuildkitV08;
const CURRENT: KeyProfile = KeyProfile::BuildkitCurrent;
const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const BUSYBOX_DIFF: &str =
    "sha256:3074da2ce01eeb63fd7d7a7f19841992f1c92fa0f7d8bcb3edd5fbed402545bb";

fn busybox_config(env: &[&str]) -> ImageConfig {
    let env = serde_json::to_string(env).unwrap();
    serde_json::from_str(&format!(
        r#"{{"os":"linux","architecture":"amd64","config":{{"Env":{env}}},"rootfs":{{"type":"layers","diff_ids":["{BUSYBOX_DIFF}"]}}}}"#
    ))
    .unwrap()
}

fn options(profile: KeyProfile, args: &[(&str, &str)]) -> LowerOptions {
    let mut options = LowerOptions::new(profile);
    for (k, v) in args {
        options
            .build
            .build_args
            .insert((*k).to_owned(), (*v).to_owned());
    }
    options
}

fn try_lower(src: &str, options: &LowerOptions) -> Result<Lowered, String> {
    let df = parser::parse(src.as_bytes(), "Dockerfile").map_err(|e| e.to_string())?;
    let parsed = instructions::parse(&df).map_err(|e| e.to_string())?;
    let bases = lower::base_images(&df, &parsed, options).map_err(|e| e.to_string())?;
    let resolved: Vec<ResolvedImage> = bases
        .into_iter()
        .map(|b| ResolvedImage::new(b.reference, None, busybox_config(&[])))
        .collect();
    lower::lower(&df, &parsed, options, &resolved).map_err(|e| e.to_string())
}

fn lowered(src: &str, profile: KeyProfile) -> Lowered {
    try_lower(src, &options(profile, &[])).unwrap()
}

/// The exec ops of the build, in order.
fn execs(l: &Lowered) -> Vec<(VertexId, ExecOp)> {
    l.graph
        .iter()
        .filter_map(|(id, v)| match &v.op {
            Op::Exec(e) => Some((id, e.clone())),
            _ => None,
        })
        .collect()
}

/// The copy actions of the file op producing step `n`.
fn copies(l: &Lowered, step: usize) -> Vec<FileCopy> {
    let v = l.graph.vertex(l.steps[step].output.vertex);
    let Op::File(f) = &v.op else {
        panic!("step {step} is not a file op: {:?}", v.op)
    };
    f.actions
        .iter()
        .filter_map(|a| match &a.kind {
            FileActionKind::Copy(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

fn pre_image(l: &Lowered, v: VertexId, profile: KeyProfile) -> String {
    let facts = l.facts.get(&v).cloned().unwrap_or_default();
    cache_map(&l.graph, v, profile, &Platform::linux_amd64(), &facts)
        .unwrap()
        .keys[0]
        .pre_image
        .clone()
}

#[test]
fn env_order_follows_buildkit() {
    let src = "FROM busybox\nENV A=1 B=2\nARG V=x\nARG UNSET\nENV A=3\nRUN env\n";
    let l = try_lower(src, &options(CURRENT, &[("BUILDKIT_INLINE_CACHE", "1")])).unwrap();
    let env = &execs(&l)[0].1.meta.env;
    // Re-setting A moves it to the end; the ARG with a value is in the env; an undeclared
    // build arg and an ARG without value add nothing.
    assert_eq!(env, &[PATH, "B=2", "V=x", "A=3"]);
    // The image config replaces in place and keeps ARGs out.
    let image_env = l.image.config.as_ref().unwrap().env.clone().unwrap();
    assert_eq!(image_env, [PATH, "A=3", "B=2"]);
    // History of RUN lists the ARGs as BuildKit's runCommandString does.
    let last = l.image.history.last().unwrap();
    assert_eq!(
        last.created_by,
        "RUN |2 V=x UNSET= /bin/sh -c env # buildkit"
    );
}

#[test]
fn build_args_override_defaults_and_base_env_comes_first() {
    let src = "FROM busybox\nARG V=x\nRUN env\n";
    let l = try_lower(src, &options(V08, &[("V", "y")])).unwrap();
    assert_eq!(execs(&l)[0].1.meta.env, [PATH, "V=y"]);
    // docker 20.10 prints the default as written in ARG's history.
    assert!(l.image.history.iter().any(|h| h.created_by == "ARG V=x"));
}

#[test]
fn workdir_relative_and_absolute() {
    let src = "FROM busybox\nWORKDIR /app\nWORKDIR sub\nRUN pwd\nWORKDIR /\nRUN pwd\n";
    for profile in [V08, CURRENT] {
        let l = lowered(src, profile);
        let e = execs(&l);
        assert_eq!(e[0].1.meta.cwd, "/app/sub");
        assert_eq!(e[1].1.meta.cwd, "/");
        let mkdirs: Vec<String> = l
            .graph
            .iter()
            .filter_map(|(_, v)| match &v.op {
                Op::File(f) => match &f.actions[0].kind {
                    FileActionKind::Mkdir(m) => Some(m.path.clone()),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        // WORKDIR / makes no op; the others a mkdir each.
        assert_eq!(mkdirs, ["/app", "/app/sub"]);
        let wd: Vec<&str> = l
            .image
            .history
            .iter()
            .filter(|h| h.created_by.starts_with("WORKDIR"))
            .map(|h| h.created_by.as_str())
            .collect();
        assert_eq!(wd, ["WORKDIR /app", "WORKDIR /app/sub", "WORKDIR /"]);
        // The mkdir of WORKDIR /app is the same record in every version (spec section 5.6).
        let first_mkdir = l.steps[1].output.vertex;
        assert_eq!(
            pre_image(&l, first_mkdir, profile),
            r#"{"Type":"buildkit.file.v0","Actions":["eyJwYXRoIjoiL2FwcCIsIm1vZGUiOjQ5MywibWFrZVBhcmVudHMiOnRydWUsInRpbWVzdGFtcCI6LTF9"]}"#
        );
    }
}

#[test]
fn copy_destinations_resolve_against_the_workdir() {
    let src = "FROM busybox\nWORKDIR /app\nCOPY a.txt ./\nCOPY b.txt c/\nCOPY d.txt /abs\nCOPY e.txt .\nCOPY src/ ./src/\n";
    for profile in [V08, CURRENT] {
        let l = lowered(src, profile);
        let dests: Vec<(String, String)> = (2..=6)
            .map(|s| {
                let c = &copies(&l, s)[0];
                (c.src.clone(), c.dest.clone())
            })
            .collect();
        assert_eq!(
            dests,
            [
                ("/a.txt".into(), "/app/".into()),
                ("/b.txt".into(), "/app/c/".into()),
                ("/d.txt".into(), "/abs".into()),
                ("/e.txt".into(), "/app/".into()),
                ("/src".into(), "/app/src/".into()),
            ]
        );
        let c = &copies(&l, 2)[0];
        assert!(c.follow_symlink && c.dir_copy_contents && c.create_dest_path);
        assert!(
            c.allow_wildcard && c.allow_empty_wildcard && !c.attempt_unpack_docker_compatibility
        );
        assert_eq!((c.mode, c.timestamp), (-1, -1));
    }
}

#[test]
fn copy_from_a_stage_links_the_stage_and_a_content_key() {
    let src =
        "FROM busybox AS build\nRUN echo hi > /out\nFROM busybox\nCOPY --from=build /out/ ./\n";
    for profile in [V08, CURRENT] {
        let l = lowered(src, profile);
        let copy_step = l
            .steps
            .iter()
            .position(|s| s.description.contains("COPY"))
            .unwrap();
        let copy = l.steps[copy_step].output.vertex;
        let c = &copies(&l, copy_step)[0];
        assert_eq!((c.src.as_str(), c.dest.as_str()), ("/out", "/"));
        assert!(
            l.content_uses
                .iter()
                .any(|u| u.vertex == copy && u.input == 1 && u.origin == ContentOrigin::Stage(0))
        );
        // Keys: input 1 has two alternatives, the build stage's RUN with selector
        // sha256("/out") and the content key without one (spec section 8c).
        let facts: HashMap<VertexId, VertexFacts> = l.facts.clone();
        let content = HashMap::from([((copy, 1), Digest::sha256_of(b"tree"))]);
        let keys = solve_keys(
            &l.graph,
            l.target.vertex,
            profile,
            &Platform::linux_amd64(),
            &facts,
            &content,
        )
        .unwrap();
        let node = keys.node(keys.keys_of(Input::new(copy, 0))[0]);
        assert_eq!(node.inputs.len(), 2);
        assert_eq!(node.inputs[1].len(), 2);
        assert_eq!(node.inputs[1][0].selector, Some(Digest::sha256_of(b"/out")));
        assert_eq!(node.inputs[1][1].selector, None);
        // Stage names appear in progress descriptions.
        assert_eq!(
            l.steps[copy_step].description,
            "[stage-1 2/2] COPY --from=build /out/ ./"
        );
        assert_eq!(l.steps[1].description, "[build 2/2] RUN echo hi > /out");
    }
}

#[test]
fn exec_form_user_and_shell() {
    let src = "FROM busybox\nUSER 65534:65534\nRUN [\"echo\", \"a b\"]\nSHELL [\"/bin/bash\", \"-eu\", \"-c\"]\nRUN echo $HOME\nCMD echo hi\n";
    for profile in [V08, CURRENT] {
        let l = lowered(src, profile);
        let e = execs(&l);
        assert_eq!(e[0].1.meta.args, ["echo", "a b"]);
        assert_eq!(e[0].1.meta.user, "65534:65534");
        assert_eq!(e[1].1.meta.args, ["/bin/bash", "-eu", "-c", "echo $HOME"]);
        let config = l.image.config.as_ref().unwrap();
        assert_eq!(config.user.as_deref(), Some("65534:65534"));
        assert_eq!(
            config.cmd.clone().unwrap(),
            ["/bin/bash", "-eu", "-c", "echo hi"]
        );
        let by: Vec<&str> = l
            .image
            .history
            .iter()
            .map(|h| h.created_by.as_str())
            .collect();
        assert!(by.contains(&"USER 65534:65534"));
        assert!(by.contains(&"SHELL [/bin/bash -eu -c]"));
        assert!(by.contains(&r#"CMD ["/bin/bash" "-eu" "-c" "echo hi"]"#));
        assert!(by.contains(&"RUN echo a b # buildkit"));
        let pre = pre_image(&l, e[0].0, profile);
        assert!(
            pre.contains(r#""meta":{"args":["echo","a b"],"env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"cwd":"/","user":"65534:65534""#),
            "{pre}"
        );
    }
}

#[test]
fn cache_mounts_match_spec_5_5() {
    let src = "FROM busybox\nRUN --mount=type=cache,target=/cache true\n";
    let l = lowered(src, V08);
    let pre = pre_image(&l, execs(&l)[0].0, V08);
    assert!(pre.contains(r#""mounts":[{"input":0,"dest":"/","output":0},{"input":-1,"dest":"/cache","output":-1,"mountType":3,"cacheOpt":{"ID":"//cache"}}]"#), "{pre}");
    let l = lowered(src, CURRENT);
    let pre = pre_image(&l, execs(&l)[0].0, CURRENT);
    assert!(pre.contains(r#""mounts":[{"dest":"/"},{"input":-1,"dest":"/cache","output":-1,"mountType":3,"cacheOpt":{"ID":"//cache"}}]"#), "{pre}");
    assert!(
        pre.contains(r#""removeMountStubsRecursive":true},"mounts""#),
        "{pre}"
    );
}

#[test]
fn other_mounts_and_network() {
    let src = "FROM busybox\nRUN --mount=type=bind,source=src,target=/src --mount=type=tmpfs,target=/tmp --mount=type=secret,id=tok --mount=type=ssh make\n";
    let mut opts = options(CURRENT, &[]);
    opts.network = NetMode::None;
    let l = try_lower(src, &opts).unwrap();
    let (_, e) = &execs(&l)[0];
    let dests: Vec<&str> = e.mounts.iter().map(|m| m.dest.as_str()).collect();
    // Sorted by destination, secrets and ssh after.
    assert_eq!(
        dests,
        [
            "/",
            "/src",
            "/tmp",
            "/run/secrets/tok",
            "/run/buildkit/ssh_agent.0"
        ]
    );
    assert_eq!(e.mounts[1].selector, "/src");
    assert!(e.mounts[1].readonly);
    assert_eq!(e.network, NetMode::None);
    assert!(
        e.meta
            .env
            .iter()
            .any(|v| v == "SSH_AUTH_SOCK=/run/buildkit/ssh_agent.0")
    );
    assert_eq!(
        l.context_paths, None,
        "a tmpfs mount names the whole context, as BuildKit"
    );
    assert!(
        l.content_uses
            .iter()
            .any(|u| u.origin == ContentOrigin::Context)
    );
}

#[test]
fn tmpfs_opt_is_written_only_where_pb_mount_has_it() {
    // pb.Mount has no TmpfsOpt in v0.8 (docker 20.10); v0.10+ writes an empty one.
    let src = "FROM busybox\nRUN --mount=type=tmpfs,target=/t true\n";
    let l = lowered(src, V08);
    let pre = pre_image(&l, execs(&l)[0].0, V08);
    assert!(
        pre.contains(r#"{"input":-1,"dest":"/t","output":-1,"mountType":4}"#),
        "{pre}"
    );
    let l = lowered(src, CURRENT);
    let pre = pre_image(&l, execs(&l)[0].0, CURRENT);
    assert!(
        pre.contains(r#"{"input":-1,"dest":"/t","output":-1,"mountType":4,"TmpfsOpt":{}}"#),
        "{pre}"
    );
}

#[test]
fn cache_mount_permissions_are_a_keyed_directory() {
    let src = "FROM busybox\nRUN --mount=type=cache,target=/c,uid=1000,gid=1000,mode=0777 true\n";
    for profile in [V08, CURRENT] {
        let l = lowered(src, profile);
        let (exec, _) = execs(&l)[0];
        let uses: Vec<_> = l.content_uses.iter().filter(|u| u.vertex == exec).collect();
        assert_eq!(uses.len(), 1, "{profile}");
        assert_eq!(
            uses[0].origin,
            ContentOrigin::Directory {
                path: "/cache".to_owned(),
                mode: 0o755,
                uid: 1000,
                gid: 1000,
            }
        );
    }
}

#[test]
fn onbuild_triggers_of_the_base_run_after_the_from() {
    let df = parser::parse(b"FROM parent\nRUN true\n", "Dockerfile").unwrap();
    let parsed = instructions::parse(&df).unwrap();
    let opts = options(V08, &[]);
    let bases = lower::base_images(&df, &parsed, &opts).unwrap();
    let with_triggers = |triggers: &str| -> ImageConfig {
        serde_json::from_str(&format!(
            r#"{{"os":"linux","architecture":"amd64","config":{{"Env":["A=1"],"OnBuild":{triggers}}},"rootfs":{{"type":"layers","diff_ids":["{BUSYBOX_DIFF}"]}}}}"#
        ))
        .unwrap()
    };
    let resolved = vec![ResolvedImage::new(
        bases[0].reference.clone(),
        None,
        with_triggers(r#"["WORKDIR /w","ENV B=$A","RUN echo $B"]"#),
    )];
    let l = lower::lower(&df, &parsed, &opts, &resolved).unwrap();
    let descriptions: Vec<&str> = l.steps.iter().map(|s| s.description.as_str()).collect();
    // BuildKit's step total counts the Dockerfile's own steps only, hence "[3/2]".
    assert_eq!(
        descriptions,
        [
            "[1/2] FROM docker.io/library/parent:latest",
            "[2/2] WORKDIR /w",
            "[3/2] RUN echo 1",
            "[4/2] RUN true"
        ]
    );
    let (_, run) = &execs(&l)[1];
    assert_eq!(run.meta.cwd, "/w");
    assert!(
        run.meta.env.iter().any(|e| e == "B=1"),
        "{:?}",
        run.meta.env
    );
    let config = l.image.config.as_ref().unwrap();
    assert!(
        !config.extra.contains_key("OnBuild"),
        "triggers are consumed"
    );

    // A trigger must be one instruction.
    let resolved = vec![ResolvedImage::new(
        bases[0].reference.clone(),
        None,
        with_triggers(r#"["FROM other"]"#),
    )];
    let err = lower::lower(&df, &parsed, &opts, &resolved).unwrap_err();
    assert!(err.to_string().contains("Dockerfile:1"), "{err}");
}

#[test]
fn chown_and_chmod() {
    let src = "FROM busybox\nCOPY --chown=app:1000 --chmod=0755 run.sh /bin/\n";
    for profile in [V08, CURRENT] {
        let l = lowered(src, profile);
        let c = &copies(&l, 1)[0];
        assert_eq!(c.mode, 0o755);
        let owner = c.owner.clone().unwrap();
        assert_eq!(
            owner.user,
            Some(UserOpt::ByName {
                name: "app".into(),
                input: 0
            })
        );
        assert_eq!(owner.group, Some(UserOpt::ById(1000)));
    }
    let l = lowered(src, CURRENT);
    assert_eq!(
        l.image.history.last().unwrap().created_by,
        "COPY --chown=app:1000 --chmod=0755 run.sh /bin/ # buildkit"
    );
    let l = lowered("FROM busybox\nCOPY --chmod=u+x run.sh /bin/\n", CURRENT);
    assert_eq!(copies(&l, 1)[0].mode_str, "u+x");
    assert_eq!(copies(&l, 1)[0].mode, -1);
}

#[test]
fn link_makes_a_merge_on_current_and_is_refused_by_v08() {
    let src = "FROM busybox\nCOPY --link a.txt /a.txt\n";
    let l = lowered(src, CURRENT);
    let step = l.steps[1].output.vertex;
    let v = l.graph.vertex(step);
    assert!(matches!(v.op, Op::Merge(_)));
    assert_eq!(v.description, "[2/2] LINK COPY --link a.txt /a.txt");
    let file = v.inputs[1].vertex;
    assert!(pre_image(&l, step, CURRENT).starts_with(r#"{"Type":"buildkit.merge.v0""#));
    // The copy runs on scratch: its base input is absent (-1), so indexes are written.
    assert!(pre_image(&l, file, CURRENT).contains(r#""indexes":[[-1,0,0]]"#));
    let err = try_lower(src, &options(V08, &[])).unwrap_err();
    assert!(
        err.starts_with("Dockerfile:2:1: COPY --link is not supported"),
        "{err}"
    );
}

#[test]
fn heredoc_runs() {
    let src = "FROM busybox\nRUN <<EOF\necho a\necho b\nEOF\nRUN <<EOF\n#!/bin/sh\necho c\nEOF\nRUN cat <<A > /x\nhello\nA\n";
    let l = lowered(src, CURRENT);
    let e = execs(&l);
    assert_eq!(e[0].1.meta.args, ["/bin/sh", "-c", "echo a\necho b\n"]);
    assert_eq!(l.steps[1].description, "[2/4] RUN <<EOF (echo a...)");
    assert_eq!(e[1].1.meta.args, ["/bin/sh", "-c", "/dev/pipes/EOF"]);
    assert_eq!(e[1].1.mounts[1].dest, "/dev/pipes/");
    assert!(e[1].1.mounts[1].readonly);
    assert_eq!(
        e[2].1.meta.args,
        ["/bin/sh", "-c", "cat <<A > /x\nhello\nA"]
    );
    let err = try_lower(src, &options(V08, &[])).unwrap_err();
    assert!(
        err.starts_with("Dockerfile:2:1: heredocs are not supported"),
        "{err}"
    );
}

#[test]
fn add_of_a_local_file_unpacks() {
    let l = lowered("FROM busybox\nADD app.tar.gz /opt/\n", V08);
    let c = &copies(&l, 1)[0];
    assert!(c.attempt_unpack_docker_compatibility);
    assert_eq!((c.src.as_str(), c.dest.as_str()), ("/app.tar.gz", "/opt/"));
    assert_eq!(l.context_paths, Some(vec!["app.tar.gz".to_owned()]));
    assert_eq!(
        l.image.history.last().unwrap().created_by,
        "ADD app.tar.gz /opt/ # buildkit"
    );
}

#[test]
fn remote_sources_are_refused_with_a_location() {
    for src in [
        "FROM busybox\n\nADD https://example.com/a.tgz /a\n",
        "FROM busybox\n\nADD git@github.com:moby/buildkit.git /src\n",
    ] {
        let err = try_lower(src, &options(CURRENT, &[])).unwrap_err();
        assert!(
            err.starts_with("Dockerfile:3:1: ADD of a URL or git source is not supported"),
            "{err}"
        );
    }
}

#[test]
fn scratch_stages_and_metadata() {
    let src = "FROM scratch\nCOPY a /a\nLABEL x=y\nEXPOSE 80 53/udp\nVOLUME /data\nSTOPSIGNAL SIGTERM\nENTRYPOINT [\"/a\"]\n";
    let l = lowered(src, CURRENT);
    // The copy's base is scratch: BuildKit sees no input 0.
    assert!(pre_image(&l, l.steps[0].output.vertex, CURRENT).contains(r#""indexes":[[-1,0,0]]"#));
    let config = l.image.config.as_ref().unwrap();
    assert_eq!(config.env.clone().unwrap(), [PATH]);
    assert_eq!(config.working_dir.as_deref(), Some("/"));
    assert_eq!(config.entrypoint.clone().unwrap(), ["/a"]);
    assert!(config.extra["ExposedPorts"].get("53/udp").is_some());
    assert!(config.extra["Volumes"].get("/data").is_some());
    assert_eq!(config.extra["StopSignal"], "SIGTERM");
    let empty: Vec<bool> = l.image.history.iter().map(|h| h.empty_layer).collect();
    assert_eq!(empty, [false, true, true, true, true, true]);
}

#[test]
fn the_same_image_in_two_stages_is_one_source() {
    let l = lowered("FROM busybox AS a\nRUN a\nFROM busybox\nRUN b\n", V08);
    let sources = l
        .graph
        .iter()
        .filter(|(_, v)| matches!(&v.op, Op::Source(s) if s.image_reference().is_some()))
        .count();
    assert_eq!(sources, 1);
    // Only the target's ancestry is needed; stage a is not built for the default target.
    assert_eq!(l.steps.len(), 2);
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Lines mixing every instruction with awkward arguments.
    fn line() -> impl Strategy<Value = String> {
        let words = prop::sample::select(vec![
            "a",
            "/",
            ".",
            "./",
            "..",
            "$X",
            "${Y:-z}",
            "*.txt",
            "'q'",
            "\"q\"",
            "a/b/",
            "/c/.",
            "root",
            "1000:1000",
            "http://x/y",
            "<<EOF",
            "--link",
            "--chmod=0755",
            "--chmod=u+x",
            "--chown=app",
            "--from=s0",
            "--from=busybox",
            "--mount=type=cache,target=c",
            "--mount=type=bind,target=/b,rw",
            "--mount=type=tmpfs,target=/t",
            "--mount=type=secret,id=s",
            "--mount=type=ssh",
            "--network=none",
        ]);
        let instr = prop::sample::select(vec![
            "RUN",
            "COPY",
            "ADD",
            "WORKDIR",
            "ENV",
            "ARG",
            "LABEL",
            "USER",
            "SHELL",
            "CMD",
            "ENTRYPOINT",
            "EXPOSE",
            "VOLUME",
            "STOPSIGNAL",
            "ONBUILD",
            "HEALTHCHECK CMD",
        ]);
        (instr, prop::collection::vec(words, 1..4))
            .prop_map(|(i, w)| format!("{i} {}", w.join(" ")))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn lowering_never_panics(
            first in prop::collection::vec(line(), 0..6),
            second in prop::collection::vec(line(), 0..6),
            from_stage in any::<bool>(),
            current in any::<bool>(),
        ) {
            let base = if from_stage { "s0" } else { "scratch" };
            let src = format!(
                "FROM busybox AS s0\n{}\nFROM {base}\n{}\nEOF\n",
                first.join("\n"),
                second.join("\n")
            );
            let profile = if current { CURRENT } else { V08 };
            let _ = try_lower(&src, &options(profile, &[("Y", "1")]));
        }
    }
}
