//! `inlay build`: the flags mapped onto [`inlay_builder::build::BuildRequest`], the build run
//! with a progress renderer, and the end-of-build summary.

use std::collections::{BTreeMap, HashMap};
use std::io::Read as _;
use std::process::ExitCode;

use anyhow::{Context as _, Result, bail};
use inlay_builder::build::{self, BuildOutput, DockerfileSource};
use inlay_builder::store::Store;
use inlay_core::Compression;
use inlay_core::cachekey::KeyProfile;
use inlay_core::op::NetMode;
use inlay_frontend_dockerfile::stages;

use crate::build_flags::BuildRequest as Flags;
use crate::progress::{self, Mode};
use crate::spec::{CacheFrom, CacheProfiles, CacheTo, Output, SecretSource};
use crate::{EXIT_BUILD_FAILED, EXIT_USAGE};

/// Runs `inlay build`; returns the process exit code.
pub fn run(flags: Flags) -> ExitCode {
    if flags.check {
        return crate::check::run(flags, crate::check::View::Check);
    }
    let (request, mode, tempdir) = match to_request(flags) {
        Ok(r) => r,
        Err(err) => {
            eprintln!("inlay: error: {err:#}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let sink = progress::sink(mode);
    let result = build::run(&request, &sink);
    // The live view stops redrawing before the summary is printed.
    drop(sink);
    drop(tempdir);
    match result {
        Ok(report) => {
            if mode != Mode::Quiet {
                crate::summary::print(&report, &request.cache_from);
            } else if let Some(digest) = &report.digest {
                println!("{digest}");
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("ERROR: {}", inlay_builder::progress::error_chain(&err));
            ExitCode::from(EXIT_BUILD_FAILED)
        }
    }
}

pub type Prepared = (build::BuildRequest, Mode, Option<tempfile::TempDir>);

fn inline_profiles(cache_to: &CacheTo) -> Vec<KeyProfile> {
    match cache_to {
        CacheTo::Inline { profiles } => match profiles {
            CacheProfiles::Both => vec![KeyProfile::BuildkitV08, KeyProfile::BuildkitCurrent],
            CacheProfiles::V08 => vec![KeyProfile::BuildkitV08],
            CacheProfiles::Current => vec![KeyProfile::BuildkitCurrent],
        },
    }
}

#[allow(clippy::too_many_lines)] // a flat list of flag mappings
pub fn to_request(flags: Flags) -> Result<Prepared> {
    let mode = Mode::parse(&flags.progress);
    let mut tempdir = None;
    let context = if let Some(c) = flags.context {
        c
    } else {
        let dir = tempfile::tempdir().context("making an empty context")?;
        let path = dir.path().to_path_buf();
        tempdir = Some(dir);
        path
    };
    if !context.is_dir() {
        bail!("context {} is not a directory", context.display());
    }
    let dockerfile = match flags.dockerfile {
        Some(p) if p.as_os_str() == "-" => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("reading the Dockerfile from stdin")?;
            DockerfileSource::Bytes(bytes)
        }
        Some(p) => DockerfileSource::Path(p),
        None if tempdir.is_some() => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("reading the Dockerfile from stdin")?;
            DockerfileSource::Bytes(bytes)
        }
        None => DockerfileSource::Path(context.join("Dockerfile")),
    };
    let store_root = match flags.root {
        Some(r) => r,
        None => Store::default_root().context("finding the store root")?,
    };
    let mut build_args: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in flags.build_args {
        build_args.insert(k, v);
    }
    // BuildKit reads SOURCE_DATE_EPOCH from the build arg; the environment is the usual spelling.
    let epoch = build_args
        .get("SOURCE_DATE_EPOCH")
        .cloned()
        .or_else(|| std::env::var("SOURCE_DATE_EPOCH").ok())
        .filter(|v| !v.is_empty());
    let source_date_epoch = epoch
        .map(|v| {
            v.parse::<i64>()
                .with_context(|| format!("invalid SOURCE_DATE_EPOCH {v:?}"))
        })
        .transpose()?;
    let inline_cache = flags.cache_to.iter().map(inline_profiles).next();
    let cache_from = flags
        .cache_from
        .iter()
        .map(|c| match c {
            CacheFrom::Registry { reference } => reference.clone(),
        })
        .collect();
    let outputs = flags
        .outputs
        .into_iter()
        .map(|o| match o {
            Output::Image {
                names,
                push,
                oci_mediatypes,
            } => BuildOutput::Image {
                names,
                push,
                oci: oci_mediatypes.unwrap_or(false),
            },
            Output::Oci { dest, names } => BuildOutput::Oci { dest, names },
            Output::Docker { dest, names } => BuildOutput::Docker { dest, names },
            Output::Local { dest } => BuildOutput::Local { dest },
        })
        .collect();
    let mut secrets = HashMap::new();
    for secret in flags.secrets {
        let value = match &secret.source {
            SecretSource::File(path) => std::fs::read(path)
                .with_context(|| format!("reading secret {} from {}", secret.id, path.display()))?,
            SecretSource::Env(var) => std::env::var(var)
                .with_context(|| format!("secret {}: ${var} is not set", secret.id))?
                .into_bytes(),
        };
        secrets.insert(secret.id, value);
    }
    let network = match flags.network.as_str() {
        "" | "default" => NetMode::Unset,
        "host" => NetMode::Host,
        "none" => NetMode::None,
        other => bail!("unknown --network {other:?} (default, none, host)"),
    };
    let platform = match &flags.platform {
        None => None,
        Some(p) if p.contains(',') => {
            bail!(
                "--platform {p}: one platform per build (multi-platform builds are not supported yet)"
            )
        }
        Some(p) => Some(
            stages::Platform::parse(p)
                .with_context(|| format!("invalid --platform {p:?}: expected OS/ARCH[/VARIANT]"))?,
        ),
    };
    // `--pull` is always in effect: base images are resolved from their registry on every build.
    let _ = flags.pull;
    for (host, ip) in &flags.add_hosts {
        if ip == "host-gateway" {
            bail!(
                "--add-host {host}:{ip}: host-gateway needs a daemon's bridge; give the address itself"
            );
        }
        if ip.parse::<std::net::IpAddr>().is_err() {
            bail!("invalid --add-host {host}:{ip}: {ip:?} is not an IP address");
        }
    }
    let mut request = build::BuildRequest::new(context, store_root);
    request.dockerfile = dockerfile;
    request.build_args = build_args;
    request.target = flags.target;
    request.no_cache = flags.no_cache;
    request.cache_from = cache_from;
    request.inline_cache = inline_cache;
    request.outputs = outputs;
    request.labels = flags.labels.into_iter().collect();
    request.secrets = secrets;
    request.network = network;
    request.extra_hosts = flags.add_hosts;
    request.compression = match flags.compression.as_str() {
        "zstd" => Compression::Zstd,
        "uncompressed" => Compression::None,
        _ => Compression::Gzip,
    };
    request.oci_media_types = flags.oci_mediatypes;
    request.platform = platform;
    request.source_date_epoch = source_date_epoch;
    request.iidfile = flags.iidfile;
    request.metadata_file = flags.metadata_file;
    Ok((request, mode, tempdir))
}
