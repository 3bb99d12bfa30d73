//! `inlay build` flags, as `docker buildx build` spells them, and their validation into a
//! [`BuildRequest`].

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::spec::{self, CacheFrom, CacheProfiles, CacheTo, Output, Secret};

/// `inlay build [OPTIONS] PATH|-`.
#[derive(Debug, Args)]
#[allow(clippy::struct_excessive_bools)] // one bool per boolean CLI flag
pub struct BuildFlags {
    /// Build context directory, or `-` to read a Dockerfile from standard input.
    pub context: String,
    /// Name of the Dockerfile (default: `PATH/Dockerfile`).
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Name and optionally a tag (`name:tag`); repeatable.
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Set a build-time variable (`KEY=VALUE`, or `KEY` to take it from the environment).
    #[arg(long = "build-arg", visible_alias = "arg")]
    pub build_args: Vec<String>,
    /// Set the target build stage.
    #[arg(long)]
    pub target: Option<String>,
    /// Target platform (`linux/amd64`); RUN steps run on the host's.
    #[arg(long)]
    pub platform: Option<String>,
    /// Do not use any cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Always resolve base images from their registry.
    #[arg(long)]
    pub pull: bool,
    /// Progress output: auto, plain, tty, quiet, rawjson.
    #[arg(long, default_value = "auto", value_parser = ["auto", "plain", "tty", "quiet", "rawjson"])]
    pub progress: String,
    /// Output destination (`type=image,name=REF,push=true`, `type=oci,dest=...`,
    /// `type=docker,dest=...`, `type=local,dest=...`).
    #[arg(short = 'o', long = "output")]
    pub outputs: Vec<String>,
    /// Shorthand for `--output=type=registry`.
    #[arg(long)]
    pub push: bool,
    /// Compression of the layers this build makes: gzip (default), zstd (implies OCI media
    /// types) or uncompressed.
    #[arg(long, default_value = "gzip", value_parser = ["gzip", "zstd", "uncompressed"])]
    pub compression: String,
    /// Write OCI media types (manifest, config, layers) instead of Docker schema 2.
    #[arg(long)]
    pub oci_mediatypes: bool,
    /// Shorthand for `--output=type=docker`.
    #[arg(long)]
    pub load: bool,
    /// External cache sources (`type=registry,ref=REF` or `REF`); repeatable.
    #[arg(long = "cache-from")]
    pub cache_from: Vec<String>,
    /// Cache export destinations (`type=inline[,profile=...]`).
    #[arg(long = "cache-to")]
    pub cache_to: Vec<String>,
    /// Write the image ID to a file.
    #[arg(long)]
    pub iidfile: Option<PathBuf>,
    /// Write build result metadata (JSON, as buildx writes it) to a file.
    #[arg(long = "metadata-file")]
    pub metadata_file: Option<PathBuf>,
    /// Set metadata for an image (`KEY=VALUE`); repeatable.
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Secret to expose to the build (`id=ID[,src=PATH|env=VAR]`); repeatable.
    #[arg(long = "secret")]
    pub secrets: Vec<String>,
    /// Networking mode for RUN steps: default, none, host.
    #[arg(long, default_value = "default", value_parser = ["default", "none", "host"])]
    pub network: String,
    /// Add a custom host-to-IP mapping (`host:ip`); repeatable.
    #[arg(long = "add-host")]
    pub add_hosts: Vec<String>,
    /// Local store directory (default `/var/lib/inlay` as root, else `$XDG_DATA_HOME/inlay`).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Resolve and compute every key, run nothing, download no layer; report hits and misses.
    #[arg(long)]
    pub check: bool,
    /// Output format of `--check`, `inlay cache check` and `inlay explain`: text or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub format: String,
}

/// A validated build request: what the builder is asked to do.
#[derive(Debug)]
#[allow(clippy::struct_excessive_bools)] // one bool per boolean CLI flag
pub struct BuildRequest {
    /// The context directory (`None` when the Dockerfile comes from stdin with no context).
    pub context: Option<PathBuf>,
    /// The Dockerfile path.
    pub dockerfile: Option<PathBuf>,
    /// Build args, in the order given (later ones win).
    pub build_args: Vec<(String, String)>,
    /// Target stage.
    pub target: Option<String>,
    /// Target platform.
    pub platform: Option<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--pull`.
    pub pull: bool,
    /// Progress mode.
    pub progress: String,
    /// Outputs.
    pub outputs: Vec<Output>,
    /// Cache imports.
    pub cache_from: Vec<CacheFrom>,
    /// Cache exports.
    pub cache_to: Vec<CacheTo>,
    /// `--iidfile`.
    pub iidfile: Option<PathBuf>,
    /// `--metadata-file`.
    pub metadata_file: Option<PathBuf>,
    /// Image labels.
    pub labels: Vec<(String, String)>,
    /// Secrets.
    pub secrets: Vec<Secret>,
    /// Network mode.
    pub network: String,
    /// Extra hosts.
    pub add_hosts: Vec<(String, String)>,
    /// Layer compression (`gzip`, `zstd`, `uncompressed`).
    pub compression: String,
    /// `--oci-mediatypes`.
    pub oci_mediatypes: bool,
    /// Store root.
    pub root: Option<PathBuf>,
    /// Dry run.
    pub check: bool,
    /// Output format of the dry run (`text`, `json`).
    pub format: String,
}

impl BuildFlags {
    /// `--output`, `--push` and `-t` combined into the outputs, as buildx combines them.
    fn outputs(&self) -> Result<Vec<Output>> {
        let mut outputs = self
            .outputs
            .iter()
            .map(|v| Output::parse(v))
            .collect::<Result<Vec<_>, _>>()?;
        if self.push {
            outputs.push(Output::Image {
                names: Vec::new(),
                push: true,
                oci_mediatypes: None,
            });
        }
        if self.load {
            bail!(
                "--load needs a Docker daemon; use --output type=docker,dest=FILE.tar and `docker load`"
            );
        }
        // `-t` names every image, oci and docker output that has no name of its own, as buildx
        // does (so `docker load` of the archive tags the image).
        for output in &mut outputs {
            if let Output::Image { names, .. }
            | Output::Oci { names, .. }
            | Output::Docker { names, .. } = output
            {
                if names.is_empty() {
                    names.clone_from(&self.tags);
                }
            }
        }
        for output in &outputs {
            if let Output::Image {
                names, push: true, ..
            } = output
            {
                if names.is_empty() {
                    bail!("--push needs a name: give -t NAME or --output type=image,name=NAME");
                }
            }
        }
        Ok(outputs)
    }

    /// Validates the flags into a request; errors are usage errors (exit code 2).
    pub fn into_request(self) -> Result<BuildRequest> {
        let mut build_args = Vec::new();
        for raw in &self.build_args {
            let (key, value) = spec::parse_build_arg(raw)?;
            // Docker: `--build-arg KEY` takes KEY from the environment, or drops it.
            if let Some(value) = value.or_else(|| std::env::var(&key).ok()) {
                build_args.push((key, value));
            }
        }
        let mut cache_to = self
            .cache_to
            .iter()
            .map(|v| CacheTo::parse(v))
            .collect::<Result<Vec<_>, _>>()?;
        // `--build-arg BUILDKIT_INLINE_CACHE=1` means `--cache-to type=inline`, as in docker/buildx.
        let inline_from_arg = build_args
            .iter()
            .rev()
            .find(|(k, _)| k == "BUILDKIT_INLINE_CACHE")
            .is_some_and(|(_, v)| matches!(v.to_ascii_lowercase().as_str(), "1" | "true"));
        if inline_from_arg && cache_to.is_empty() {
            cache_to.push(CacheTo::Inline {
                profiles: CacheProfiles::Both,
            });
        }
        let cache_from = self
            .cache_from
            .iter()
            .map(|v| CacheFrom::parse(v))
            .collect::<Result<Vec<_>, _>>()?;
        let outputs = self.outputs()?;
        let labels = self
            .labels
            .iter()
            .map(|l| {
                l.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .with_context(|| format!("invalid --label {l:?}: expected KEY=VALUE"))
            })
            .collect::<Result<Vec<_>>>()?;
        let add_hosts = self
            .add_hosts
            .iter()
            .map(|h| {
                h.split_once(['=', ':'])
                    .filter(|(host, ip)| !host.is_empty() && !ip.is_empty())
                    .map(|(host, ip)| (host.to_owned(), ip.to_owned()))
                    .with_context(|| format!("invalid --add-host {h:?}: expected HOST:IP"))
            })
            .collect::<Result<Vec<_>>>()?;
        let secrets = self
            .secrets
            .iter()
            .map(|s| Secret::parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        let context = (self.context != "-").then(|| PathBuf::from(&self.context));
        Ok(BuildRequest {
            context,
            dockerfile: self.file,
            build_args,
            target: self.target,
            platform: self.platform,
            no_cache: self.no_cache,
            pull: self.pull,
            progress: self.progress,
            outputs,
            cache_from,
            cache_to,
            iidfile: self.iidfile,
            metadata_file: self.metadata_file,
            labels,
            secrets,
            network: self.network,
            add_hosts,
            compression: self.compression,
            oci_mediatypes: self.oci_mediatypes,
            root: self.root,
            check: self.check,
            format: self.format,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: BuildFlags,
    }

    fn request(argv: &[&str]) -> Result<BuildRequest> {
        let mut full = vec!["inlay"];
        full.extend_from_slice(argv);
        Wrapper::try_parse_from(full)?.args.into_request()
    }

    #[test]
    fn the_ci_command_line() {
        let r = request(&[
            ".",
            "--push",
            "-t",
            "localhost:5000/app",
            "--cache-to",
            "type=inline",
            "--cache-from",
            "type=registry,ref=localhost:5000/app",
        ])
        .unwrap();
        assert_eq!(
            r.outputs,
            vec![Output::Image {
                names: vec!["localhost:5000/app".into()],
                push: true,
                oci_mediatypes: None
            }]
        );
        assert_eq!(
            r.cache_to,
            vec![CacheTo::Inline {
                profiles: CacheProfiles::Both
            }]
        );
        assert_eq!(r.cache_from.len(), 1);
    }

    #[test]
    fn inline_cache_build_arg_and_arg_alias() {
        let r = request(&[
            ".",
            "--arg",
            "BUILDKIT_INLINE_CACHE=1",
            "--build-arg",
            "A=b",
        ])
        .unwrap();
        assert_eq!(
            r.cache_to,
            vec![CacheTo::Inline {
                profiles: CacheProfiles::Both
            }]
        );
        assert_eq!(r.build_args[1], ("A".into(), "b".into()));
        let r = request(&[".", "--build-arg", "BUILDKIT_INLINE_CACHE=0"]).unwrap();
        assert!(r.cache_to.is_empty());
    }

    #[test]
    fn usage_errors() {
        assert!(request(&[".", "--push"]).is_err());
        assert!(request(&[".", "--label", "novalue"]).is_err());
        assert!(request(&[".", "--add-host", "nohost"]).is_err());
        assert!(request(&[".", "--progress", "fancy"]).is_err());
        assert!(request(&[".", "--load"]).is_err());
        assert!(request(&[".", "--cache-to", "type=registry"]).is_err());
    }

    #[test]
    fn stdin_dockerfile() {
        let r = request(&["-"]).unwrap();
        assert!(r.context.is_none());
    }
}
