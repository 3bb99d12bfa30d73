//! The stage graph and ARG/ENV scoping.

use std::collections::BTreeMap;

use inlay_frontend_dockerfile::instructions::{self, Instruction};
use inlay_frontend_dockerfile::parser;
use inlay_frontend_dockerfile::stages::{
    self, Base, BuildOptions, DependencyKind, Platform, StageScope,
};

fn options(args: &[(&str, &str)], target: Option<&str>) -> BuildOptions {
    BuildOptions {
        build_args: args
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        target: target.map(str::to_owned),
        build_platform: Platform::linux_amd64(),
        target_platform: Platform::parse("linux/arm64"),
    }
}

fn graph(src: &str, opts: &BuildOptions) -> Result<stages::StageGraph, String> {
    let df = parser::parse(src.as_bytes(), "Dockerfile").map_err(|e| e.to_string())?;
    let parsed = instructions::parse(&df).map_err(|e| e.to_string())?;
    stages::resolve(&df, &parsed, opts).map_err(|e| e.to_string())
}

const MULTI: &str = "\
ARG GO=1.22
ARG BASE=alpine:${GO}
FROM --platform=$BUILDPLATFORM golang:${GO} AS Build
FROM ${BASE} AS test
COPY --from=BUILD /out /bin/
FROM build AS lint
FROM scratch AS release
COPY --from=0 /out /app
RUN --mount=from=test,target=/t true
COPY --from=busybox /bin/sh /sh
FROM release
";

#[test]
fn global_args_and_from_expansion() {
    let g = graph(MULTI, &options(&[("GO", "1.23")], None)).unwrap();
    assert_eq!(g.stages[0].base, Base::Image("golang:1.23".into()));
    assert_eq!(g.stages[0].platform.as_deref(), Some("linux/amd64"));
    assert_eq!(g.stages[1].base, Base::Image("alpine:1.23".into()));
    assert_eq!(g.stages[2].base, Base::Stage(0));
    assert_eq!(g.stages[3].base, Base::Scratch);
    assert_eq!(g.stages[4].base, Base::Stage(3));
    let value = |k: &str| {
        g.global_args
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(value("TARGETPLATFORM"), Some("linux/arm64"));
    assert_eq!(value("TARGETARCH"), Some("arm64"));
    assert_eq!(value("BUILDOS"), Some("linux"));
    assert_eq!(value("TARGETSTAGE"), Some("default"));
}

#[test]
fn dependencies_and_build_order() {
    let g = graph(MULTI, &options(&[], None)).unwrap();
    // COPY --from names are case-insensitive.
    assert_eq!(g.stages[1].dependencies, [(0, DependencyKind::CopyFrom(0))]);
    assert_eq!(
        g.stages[3].dependencies,
        [
            (0, DependencyKind::CopyFrom(0)),
            (1, DependencyKind::MountFrom(1))
        ]
    );
    assert_eq!(g.stages[3].external_sources, ["busybox"]);
    assert_eq!(g.target, 4);
    // `lint` (stage 2) is not needed by the default target.
    assert_eq!(g.build_order, [0, 1, 3, 4]);

    let g = graph(MULTI, &options(&[], Some("LINT"))).unwrap();
    assert_eq!((g.target, g.build_order.as_slice()), (2, &[0, 2][..]));
}

#[test]
fn target_and_reference_errors() {
    let err = graph(MULTI, &options(&[], Some("relase"))).unwrap_err();
    assert!(
        err.contains("target stage \"relase\" could not be found (did you mean release?)"),
        "{err}"
    );
    let err = graph("FROM a\nCOPY --from=5 x y\n", &options(&[], None)).unwrap_err();
    assert!(err.contains("invalid stage index 5"), "{err}");
    let err = graph("FROM a\nCOPY --from=$X x y\n", &options(&[], None)).unwrap_err();
    assert!(
        err.contains("variable expansion is not supported for --from"),
        "{err}"
    );
    let err = graph(
        "FROM a AS one\nCOPY --from=two x y\nFROM b AS two\nCOPY --from=one x y\n",
        &options(&[], None),
    )
    .unwrap_err();
    assert!(err.contains("circular dependency detected"), "{err}");
    let err = graph("ARG X\nFROM ${X}\n", &options(&[], None)).unwrap_err();
    assert!(
        err.starts_with("Dockerfile:2:1: base name (${X}) should not be blank"),
        "{err}"
    );
}

#[test]
fn from_a_later_stage_name_is_an_image() {
    let g = graph("FROM later\nFROM b AS later\n", &options(&[], None)).unwrap();
    assert_eq!(g.stages[0].base, Base::Image("later".into()));
}

#[test]
fn stage_scope_follows_arg_and_env_rules() {
    let src = "ARG V=global\nARG ONLY_GLOBAL=g\nFROM a\nARG V\nARG ONLY_GLOBAL\nARG D=$V-default\nARG B=unused\nENV E=$D P=$E\nWORKDIR /w/$E\nARG TARGETARCH\nARG NOT_SET\nUSER ${NOT_SET:-nobody}\nCOPY <<EOF '$E' /d/$V\n$V \"q\"\nEOF\n";
    let opts = options(&[("B", "from-cli"), ("HTTP_PROXY", "http://p")], None);
    let df = parser::parse(src.as_bytes(), "Dockerfile").unwrap();
    let parsed = instructions::parse(&df).unwrap();
    let g = stages::resolve(&df, &parsed, &opts).unwrap();
    let mut scope = StageScope::new(vec![("PATH".into(), "/bin".into())], &g, &opts, df.escape);
    let mut out = Vec::new();
    for located in &parsed.stages[0].instructions {
        let mut instruction = located.instruction.clone();
        scope.apply(&mut instruction).unwrap();
        out.push(instruction);
    }
    let env: BTreeMap<_, _> = scope.env().iter().cloned().collect();
    assert_eq!(env["V"], "global");
    assert_eq!(env["ONLY_GLOBAL"], "g");
    assert_eq!(env["D"], "global-default");
    assert_eq!(env["B"], "from-cli");
    assert_eq!(env["TARGETARCH"], "arm64");
    assert!(!env.contains_key("NOT_SET"));
    // ENV pairs in one instruction expand against the environment before it.
    assert_eq!(env["E"], "global-default");
    assert_eq!(env["P"], "");
    assert_eq!(out[5], Instruction::Workdir("/w/global-default".into()));
    assert_eq!(out[8], Instruction::User("nobody".into()));
    let Instruction::Copy(copy) = &out[9] else {
        panic!()
    };
    assert_eq!(copy.files.source_paths, ["$E"]);
    assert_eq!(copy.files.dest, "/d/global");
    assert_eq!(copy.files.source_contents[0].data, "global \"q\"\n");
    assert_eq!(
        scope.expand_words("${D} 80/tcp").unwrap(),
        ["global-default", "80/tcp"]
    );
    // Proxy build args reach RUN without an ARG.
    assert!(
        scope
            .run_env()
            .iter()
            .any(|(k, v)| k == "HTTP_PROXY" && v == "http://p")
    );
    assert!(!env.contains_key("HTTP_PROXY"));
}

#[test]
fn platforms_parse_and_normalise() {
    assert_eq!(
        Platform::parse("linux/arm/v7").unwrap().to_string(),
        "linux/arm/v7"
    );
    assert_eq!(
        Platform::parse("linux/arm").unwrap().to_string(),
        "linux/arm/v7"
    );
    assert_eq!(
        Platform::parse("linux/aarch64").unwrap().to_string(),
        "linux/arm64"
    );
    assert_eq!(
        Platform::parse("x86_64").unwrap().to_string(),
        "linux/amd64"
    );
    assert!(Platform::parse("linux//x").is_none());
}
