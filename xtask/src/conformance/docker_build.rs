//! One case built by docker: build with the inline cache on, push, read the image back, decode
//! its records, and keep every input and output under the case's output folder.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use inlay_core::cache::RecordGraph;

use crate::conformance::cases::{BaseChoice, Case, render_dockerfile};
use crate::conformance::engine::{self, Engine};
use crate::conformance::registry_http::{self, PulledImage};
use crate::conformance::seam::ResolvedImage;

/// The image the busybox base was pushed as, with its registry facts.
pub struct BaseImage {
    /// `<registry>/busybox:latest`.
    pub reference: String,
    /// Its manifest and config as the registry serves them.
    pub image: PulledImage,
}

/// What docker made of one case.
pub struct DockerBuild {
    /// The Dockerfile as given to docker.
    pub dockerfile: String,
    /// Where it was written.
    pub dockerfile_path: PathBuf,
    /// What `BASE` was.
    pub base_reference: String,
    /// Every `--build-arg` given, in order.
    pub build_args: Vec<(String, String)>,
    /// The pushed image.
    pub image: PulledImage,
    /// Its inline cache records.
    pub records: RecordGraph,
    /// The images the build could name, as docker resolved them.
    pub images: Vec<ResolvedImage>,
    /// How long `docker build` took.
    pub build_time: Duration,
}

/// The repository a case's image is pushed to.
pub fn repository(case: &str) -> String {
    format!("case-{case}")
}

fn resolved(reference: &str, image: &PulledImage, in_local_store: bool) -> ResolvedImage {
    ResolvedImage {
        reference: reference.to_owned(),
        manifest_digest: image.manifest_digest.clone(),
        manifest: image.manifest.clone(),
        config: image.config.clone(),
        in_local_store,
    }
}

/// Writes docker's image, its records and the base images next to the rendered Dockerfile.
fn keep_outputs(
    out: &Path,
    image: &PulledImage,
    records: &RecordGraph,
    images: &[ResolvedImage],
) -> Result<()> {
    let mut files = vec![
        ("manifest.json".to_owned(), image.manifest.clone()),
        ("config.json".to_owned(), image.config.clone()),
        (
            "docker-records.json".to_owned(),
            records.to_json().into_bytes(),
        ),
    ];
    for (i, image) in images.iter().enumerate() {
        files.push((format!("base-{i}-manifest.json"), image.manifest.clone()));
        files.push((format!("base-{i}-config.json"), image.config.clone()));
    }
    for (name, bytes) in files {
        let path = out.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// `docker build` for `case` (without tag and context), and the build args it passes with a
/// value.
pub fn build_command(
    engine: &Engine,
    case: &Case,
    dockerfile: &Path,
    base_reference: &str,
) -> (Command, Vec<(String, String)>) {
    let mut build_args = vec![
        ("BUILDKIT_INLINE_CACHE".to_owned(), "1".to_owned()),
        ("BASE".to_owned(), base_reference.to_owned()),
    ];
    let mut command = engine.docker();
    command
        .args(["build", "--progress=plain", "-f"])
        .arg(dockerfile);
    for (name, value) in &build_args {
        command.arg("--build-arg").arg(format!("{name}={value}"));
    }
    for (name, value) in &case.options.build_args {
        match value {
            Some(value) => {
                command.arg("--build-arg").arg(format!("{name}={value}"));
                build_args.push((name.clone(), value.clone()));
            }
            // `--build-arg NAME` takes NAME from the client's environment, which docker()
            // does not set: the argument arrives undefined.
            None => {
                command.arg("--build-arg").arg(name);
            }
        }
    }
    if let Some(target) = &case.options.target {
        command.args(["--target", target]);
    }
    if let Some(network) = case.options.network.flag() {
        command.arg(format!("--network={network}"));
    }
    (command, build_args)
}

/// Builds, pushes and reads back one case; its files go to `out`.
pub fn build(engine: &Engine, base: &BaseImage, case: &Case, out: &Path) -> Result<DockerBuild> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    // Each case starts from an empty build cache: the inline export also writes "backlinks"
    // the daemon's cache knows from earlier builds (spec section 3.3), which would make a
    // case's records depend on the cases before it.
    engine::run(
        "docker builder prune",
        engine
            .docker()
            .args(["builder", "prune", "--all", "--force"]),
    )?;
    let mut images = vec![resolved(
        &base.reference,
        &base.image,
        case.options.base != BaseChoice::Remote,
    )];
    let base_reference = match &case.options.base {
        BaseChoice::Local => base.reference.clone(),
        BaseChoice::Remote => {
            engine::run("docker rmi", engine.docker().args(["rmi", &base.reference]))?;
            base.reference.clone()
        }
        BaseChoice::Case(parent) => {
            let reference = format!("{}/{}:v1", engine.registry(), repository(parent));
            let image =
                registry_http::pull_image(engine.registry_addr(), &repository(parent), "v1")
                    .with_context(|| format!("reading back base case {parent}"))?;
            images.push(resolved(&reference, &image, true));
            reference
        }
    };
    let template = std::fs::read_to_string(case.dir.join("Dockerfile"))
        .with_context(|| format!("reading {}", case.dir.join("Dockerfile").display()))?;
    let dockerfile = render_dockerfile(&template, &base_reference);
    let dockerfile_path = out.join("Dockerfile");
    std::fs::write(&dockerfile_path, &dockerfile)
        .with_context(|| format!("writing {}", dockerfile_path.display()))?;

    let (mut command, build_args) = build_command(engine, case, &dockerfile_path, &base_reference);
    let tag = format!("{}/{}:v1", engine.registry(), repository(&case.name));
    command.args(["-t", &tag]).arg(&case.dir);
    let started = Instant::now();
    let output = command.output().context("running docker build")?;
    let build_time = started.elapsed();
    let log = [output.stdout.as_slice(), output.stderr.as_slice()].concat();
    std::fs::write(out.join("build.log"), &log)
        .with_context(|| format!("writing {}", out.join("build.log").display()))?;
    if !output.status.success() {
        bail!(
            "docker build failed ({}); {} ends:\n{}",
            output.status,
            out.join("build.log").display(),
            engine::tail(&String::from_utf8_lossy(&log), 25)
        );
    }
    if case.options.base == BaseChoice::Remote {
        // Put the base back into the local store for the cases after this one.
        engine::run(
            "docker pull",
            engine.docker().args(["pull", &base.reference]),
        )?;
    }
    engine::run("docker push", engine.docker().args(["push", &tag]))?;
    let image = registry_http::pull_image(engine.registry_addr(), &repository(&case.name), "v1")?;
    let Some(value) = image.config_view.inline_cache() else {
        bail!("docker wrote no inline cache into the config of {tag}");
    };
    let records = RecordGraph::from_inline(value)
        .with_context(|| format!("decoding the inline cache of {tag}"))?;
    keep_outputs(out, &image, &records, &images)?;
    Ok(DockerBuild {
        dockerfile,
        dockerfile_path,
        base_reference,
        build_args,
        image,
        records,
        images,
        build_time,
    })
}
