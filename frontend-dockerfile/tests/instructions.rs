//! The typed instruction model.

use inlay_frontend_dockerfile::instructions::{self, Instruction, MountType};

fn stage0(src: &str) -> Vec<Instruction> {
    let parsed = instructions::parse_bytes(src.as_bytes(), "Dockerfile")
        .expect("the test Dockerfile parses");
    parsed.stages[0]
        .instructions
        .iter()
        .map(|l| l.instruction.clone())
        .collect()
}

#[test]
fn from_with_name_and_platform() {
    let parsed = instructions::parse_bytes(
        b"ARG BASE=alpine\nFROM --platform=$BUILDPLATFORM ${BASE} AS Build\nFROM scratch\n",
        "Dockerfile",
    )
    .unwrap();
    assert_eq!(parsed.meta_args.len(), 1);
    let stage = &parsed.stages[0];
    assert_eq!(stage.name.as_deref(), Some("build"));
    assert_eq!(stage.base_name, "${BASE}");
    assert_eq!(stage.platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(parsed.stages[1].name, None);
}

#[test]
fn env_label_and_arg_forms() {
    let got = stage0("FROM a\nENV A 1 2\nENV B=x C=\"y z\"\nLABEL k=v\nARG N V=1\n");
    let Instruction::Env(old) = &got[0] else {
        panic!()
    };
    assert_eq!(
        (old[0].key.as_str(), old[0].value.as_str(), old[0].no_delim),
        ("A", "1 2", true)
    );
    let Instruction::Env(new) = &got[1] else {
        panic!()
    };
    assert_eq!(new.len(), 2);
    assert_eq!(new[1].value, "\"y z\"");
    let Instruction::Arg(defs) = &got[3] else {
        panic!()
    };
    assert_eq!(defs[0].value, None);
    assert_eq!(defs[1].value.as_deref(), Some("1"));
}

#[test]
fn copy_and_add_flags_and_heredoc_sources() {
    let got = stage0(
        "FROM a\nCOPY --from=build --chown=1:1 --chmod=755 --link --parents --exclude=*.md --exclude=x src/ <<-EOF /dst/\n\thello $X\n\tEOF\nADD --checksum=sha256:abc --keep-git-dir=true --unpack=false https://x/y.tgz /\n",
    );
    let Instruction::Copy(copy) = &got[0] else {
        panic!()
    };
    assert_eq!(copy.from, "build");
    assert_eq!((copy.chown.as_str(), copy.chmod.as_str()), ("1:1", "755"));
    assert!(copy.link && copy.parents);
    assert_eq!(copy.exclude, ["*.md", "x"]);
    assert_eq!(copy.files.source_paths, ["src/"]);
    assert_eq!(copy.files.dest, "/dst/");
    assert_eq!(copy.files.source_contents[0].path, "EOF");
    assert_eq!(copy.files.source_contents[0].data, "hello $X\n");
    assert!(copy.files.source_contents[0].expand);
    let Instruction::Add(add) = &got[1] else {
        panic!()
    };
    assert_eq!(add.checksum, "sha256:abc");
    assert_eq!((add.keep_git_dir, add.unpack), (Some(true), Some(false)));
}

#[test]
fn run_flags_and_mounts() {
    let got = stage0(
        "FROM a\nRUN --mount=type=cache,target=/root/.cache,id=$ID --mount=type=secret,id=tok,required --network=none --security=insecure <<EOF\nmake\nEOF\n",
    );
    let Instruction::Run(run) = &got[0] else {
        panic!()
    };
    assert_eq!(run.network, "none");
    assert_eq!(run.security, "insecure");
    assert_eq!(run.command.args, ["<<EOF"]);
    assert_eq!(run.command.files[0].data, "make\n");
    assert!(run.command.prepend_shell);
    let mounts = run.mounts(&mut |v| Ok(v.replace("$ID", "go"))).unwrap();
    assert_eq!(mounts[0].kind, MountType::Cache);
    assert_eq!(mounts[0].cache_id, "go");
    assert!(mounts[1].required && mounts[1].read_only);
}

#[test]
fn exec_and_shell_forms() {
    let got = stage0(
        "FROM a\nCMD [\"a\", \"b\"]\nENTRYPOINT x y\nSHELL [\"/bin/bash\", \"-c\"]\nHEALTHCHECK --interval=30s --retries=3 CMD curl -f http://x\nHEALTHCHECK NONE\n",
    );
    let Instruction::Cmd(cmd) = &got[0] else {
        panic!()
    };
    assert_eq!(
        (cmd.args.as_slice(), cmd.prepend_shell),
        (&["a".to_owned(), "b".to_owned()][..], false)
    );
    let Instruction::Entrypoint(ep) = &got[1] else {
        panic!()
    };
    assert_eq!(ep.args, ["x y"]);
    let Instruction::Shell(shell) = &got[2] else {
        panic!()
    };
    assert_eq!(shell, &["/bin/bash", "-c"]);
    let Instruction::Healthcheck(h) = &got[3] else {
        panic!()
    };
    assert_eq!(h.test, ["CMD-SHELL", "curl -f http://x"]);
    assert_eq!((h.interval, h.retries), (30_000_000_000, 3));
    let Instruction::Healthcheck(none) = &got[4] else {
        panic!()
    };
    assert_eq!(none.test, ["NONE"]);
}

#[test]
fn remaining_instructions() {
    let got = stage0(
        "FROM a\nEXPOSE 8080 80/udp 443\nUSER app\nVOLUME [\"/a\", \"/b\"]\nWORKDIR /w\nSTOPSIGNAL SIGTERM\nMAINTAINER me\nONBUILD RUN echo hi\n",
    );
    assert_eq!(
        got[0],
        Instruction::Expose(vec!["443".into(), "80/udp".into(), "8080".into()])
    );
    assert_eq!(got[1], Instruction::User("app".into()));
    assert_eq!(got[2], Instruction::Volume(vec!["/a".into(), "/b".into()]));
    assert_eq!(got[3], Instruction::Workdir("/w".into()));
    assert_eq!(got[4], Instruction::StopSignal("SIGTERM".into()));
    assert_eq!(got[5], Instruction::Maintainer("me".into()));
    assert_eq!(got[6], Instruction::Onbuild("RUN echo hi".into()));
}
