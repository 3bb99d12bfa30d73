//! Every record digest of the two BuildKit samples, recomputed from pre-images built by hand with
//! the Go-JSON writer (spec sections 8.3 and 8b.3). This proves the writer's bytes and the record
//! digest formula against real BuildKit output.

// Helpers outside #[test] fns are test code too.
#![allow(clippy::unwrap_used)]

mod shared_data;

use inlay_core::cache::RecordGraph;
use inlay_core::cache::key::{
    content_record_digest, nul_joined_digest, record_digest, source_cachemap_digest,
};
use inlay_core::gojson::{Object, Value};
use inlay_core::image::{ImageConfig, chain_id};

const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The exec op wrapper of a plain Dockerfile `RUN` (spec section 5.5): no `mounts` (single root
/// mount rule), `removeMountStubsRecursive` only from LLB v0.11, `network` only when forced.
fn exec(command: &str, env: &[&str], cwd: &str, current_llb: bool, network: i64) -> Value {
    let meta = Object::new()
        .field("args", Value::array(["/bin/sh", "-c", command]))
        .field("env", Value::array(env.iter().copied()))
        .field("cwd", cwd)
        .omit_empty("removeMountStubsRecursive", current_llb);
    Object::new()
        .field("Type", "buildkit.exec.v0")
        .field(
            "Exec",
            Object::new()
                .field("meta", meta)
                .omit_empty("network", network),
        )
        .field("OS", "linux")
        .field("Arch", "amd64")
        .omit_empty("Variant", "")
        .into_value()
}

/// A file op with one action (default indexes, so no `indexes` key; spec section 5.6).
fn file_op(action: &Value) -> Value {
    Object::new()
        .field("Type", "buildkit.file.v0")
        .field(
            "Actions",
            Value::array([Value::Bytes(action.to_json().into_bytes())]),
        )
        .into_value()
}

/// `COPY data.txt /data.txt`: a `FileActionCopy` with `src` cut to its base name.
fn copy_data_txt() -> Value {
    Object::new()
        .field("src", "data.txt")
        .field("dest", "/data.txt")
        .omit_empty("owner", Value::Null)
        .field("mode", -1i64)
        .field("followSymlink", true)
        .field("dirCopyContents", true)
        .omit_empty("attemptUnpackDockerCompatibility", false)
        .field("createDestPath", true)
        .field("allowWildcard", true)
        .field("allowEmptyWildcard", true)
        .field("timestamp", -1i64)
        .into_value()
}

/// `WORKDIR /app`: a `FileActionMkDir`.
fn mkdir_app() -> Value {
    Object::new()
        .field("path", "/app")
        .field("mode", 493i64)
        .field("makeParents", true)
        .omit_empty("owner", Value::Null)
        .field("timestamp", -1i64)
        .into_value()
}

fn chain_id_root() -> inlay_core::Digest {
    let base: ImageConfig = serde_json::from_slice(&shared_data::read(
        "buildkit-v0.8-inline-sample/base-config.json",
    ))
    .unwrap();
    let chain = chain_id(&base.rootfs.diff_ids).unwrap();
    let source = source_cachemap_digest(chain.as_str());
    assert_eq!(
        source.as_str(),
        "sha256:00d37c272237d075c12a5e8088bd0da3b89390179618351ef62a2ddcfca7fc7a"
    );
    record_digest(&source, 0)
}

fn manifest_root() -> inlay_core::Digest {
    let key = Object::new()
        .field(
            "Digest",
            "sha256:706400ad74aba921c5afe8b1c2c72d34188005d607c3b2cf674c679775ae67ed",
        )
        .field("OS", "linux")
        .field("Arch", "amd64")
        .omit_empty("Variant", "")
        .into_value();
    assert_eq!(
        key.digest().as_str(),
        "sha256:335bef4f7ed013244d052b7f43dc91131af1027b02ad517512be7ce8e63e897f"
    );
    let source = source_cachemap_digest(key.digest().as_str());
    assert_eq!(
        source.as_str(),
        "sha256:4890ec28896a3760e40c49fbf3a25394e290b338cf6b42f49721ad48611fc1ca"
    );
    record_digest(&source, 0)
}

fn content_root() -> inlay_core::Digest {
    content_record_digest(&nul_joined_digest(&[
        "sha256:9a3b10e4117e3b78de36a2aa160b9e2598b434e956bdefb940b603ad70cb70d9",
    ]))
}

fn sample_digests(sample: &str) -> Vec<String> {
    let config: ImageConfig =
        serde_json::from_slice(&shared_data::read(&format!("{sample}/config.json"))).unwrap();
    let graph = RecordGraph::from_inline(config.inline_cache().unwrap()).unwrap();
    graph
        .records()
        .iter()
        .map(|r| r.digest.to_string())
        .collect()
}

#[test]
fn file_op_pre_images_match_section_8b_3() {
    let copy = file_op(&copy_data_txt());
    assert_eq!(
        copy.to_json(),
        r#"{"Type":"buildkit.file.v0","Actions":["eyJzcmMiOiJkYXRhLnR4dCIsImRlc3QiOiIvZGF0YS50eHQiLCJtb2RlIjotMSwiZm9sbG93U3ltbGluayI6dHJ1ZSwiZGlyQ29weUNvbnRlbnRzIjp0cnVlLCJjcmVhdGVEZXN0UGF0aCI6dHJ1ZSwiYWxsb3dXaWxkY2FyZCI6dHJ1ZSwiYWxsb3dFbXB0eVdpbGRjYXJkIjp0cnVlLCJ0aW1lc3RhbXAiOi0xfQ=="]}"#
    );
    assert_eq!(
        copy.digest().as_str(),
        "sha256:c85637ed0dd685788ddc21f8e372d83495ef4008652dfd3b0d3199d8fa148f83"
    );
    let mkdir = file_op(&mkdir_app());
    assert_eq!(
        mkdir.to_json(),
        r#"{"Type":"buildkit.file.v0","Actions":["eyJwYXRoIjoiL2FwcCIsIm1vZGUiOjQ5MywibWFrZVBhcmVudHMiOnRydWUsInRpbWVzdGFtcCI6LTF9"]}"#
    );
    assert_eq!(
        mkdir.digest().as_str(),
        "sha256:7ea5325d7cca0cfc78567c2d7347cc6dac674e45bef5edb2a83f5b7cf188ff3a"
    );
}

#[test]
fn v08_records_recomputed_from_pre_images() {
    let run_echo = exec("echo hello > /hello.txt", &[PATH_ENV], "/", false, 0);
    assert_eq!(
        run_echo.to_json(),
        r#"{"Type":"buildkit.exec.v0","Exec":{"meta":{"args":["/bin/sh","-c","echo hello \u003e /hello.txt"],"env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"cwd":"/"}},"OS":"linux","Arch":"amd64"}"#
    );
    let run_cat = exec(
        "cat /data.txt > /app/out.txt",
        &[PATH_ENV, "FOO=bar"],
        "/app",
        false,
        0,
    );
    let mut computed = vec![
        record_digest(&run_echo.digest(), 0).to_string(),
        content_root().to_string(),
        record_digest(&file_op(&mkdir_app()).digest(), 0).to_string(),
        chain_id_root().to_string(),
        record_digest(&file_op(&copy_data_txt()).digest(), 0).to_string(),
        record_digest(&run_cat.digest(), 0).to_string(),
    ];
    // Section 8.2 lists the records sorted by digest, in this order.
    assert_eq!(computed, sample_digests("buildkit-v0.8-inline-sample"));
    computed.sort();
    assert_eq!(computed, sample_digests("buildkit-v0.8-inline-sample"));
}

#[test]
fn v024_records_recomputed_from_pre_images() {
    let run_echo = exec("echo hello > /hello.txt", &[PATH_ENV], "/", true, 2);
    assert_eq!(
        run_echo.digest().as_str(),
        "sha256:ed895bdd4a2d669a4bf65c22b1abf901dd6aa9517f20d9cc9d58dc199ce96741"
    );
    let run_cat = exec(
        "cat /data.txt > /app/out.txt",
        &[PATH_ENV, "FOO=bar"],
        "/app",
        true,
        2,
    );
    assert_eq!(
        run_cat.digest().as_str(),
        "sha256:caca87c6810665cd6923164b951398b723ca87ea42cbb11bb56911c3c2998c28"
    );
    // Section 8b.5: the record digests without the forced network mode.
    let unforced = |command, env: &[&str], cwd| {
        record_digest(&exec(command, env, cwd, true, 0).digest(), 0).to_string()
    };
    assert_eq!(
        unforced("echo hello > /hello.txt", &[PATH_ENV], "/"),
        "sha256:13aacef9451278d620bdb9cf786911ef025e6acf579a00b15f8bb2fe8582432b"
    );
    assert_eq!(
        unforced(
            "cat /data.txt > /app/out.txt",
            &[PATH_ENV, "FOO=bar"],
            "/app"
        ),
        "sha256:13e7f3fe2498276f727a25c331ccb37f8e17d7271038eb435c5d997095a83f94"
    );
    let computed = vec![
        record_digest(&run_echo.digest(), 0).to_string(),
        content_root().to_string(),
        record_digest(&run_cat.digest(), 0).to_string(),
        record_digest(&file_op(&mkdir_app()).digest(), 0).to_string(),
        manifest_root().to_string(),
        chain_id_root().to_string(),
        record_digest(&file_op(&copy_data_txt()).digest(), 0).to_string(),
    ];
    assert_eq!(computed, sample_digests("buildkit-v0.24-inline-sample"));
    assert_eq!(
        nul_joined_digest(&["/"]).as_str(),
        "sha256:8a5edab282632443219e051e4ade2d1d5bbc671c781051bf1437897cbdfea0f1",
        "the selector S on the RUN links"
    );
}
