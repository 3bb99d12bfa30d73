//! The filesystems a case's `COPY --from` reads, as docker built them, unpacked into
//! directories: what inlay needs to compute the content keys of `COPY --from=<stage>` and
//! `COPY --from=<image>` (spec section 8c: "the content key is computed on the stage's result as
//! a snapshot").
//!
//! A stage is built again with `--target` (a cache hit: same inputs, same daemon), saved with
//! `docker save`, and its layers are applied in order, whiteouts included, onto an empty
//! directory as root, so owners and modes are the snapshot's.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::conformance::engine::{self, Engine};

/// Unpacked root filesystems of a case's stages and images.
pub trait Filesystems {
    /// The filesystem of the stage named `name` (`FROM … AS name`), unpacked.
    fn stage(&self, name: &str) -> Result<PathBuf>;

    /// The filesystem of the image `reference`, unpacked.
    fn image(&self, reference: &str) -> Result<PathBuf>;
}

/// [`Filesystems`] served by the case's docker engine; each one is made once, on first use.
pub struct DockerFilesystems<'a> {
    engine: &'a Engine,
    /// `docker build` for the case, without `--target`, `-t` and the context (see
    /// `docker_build::build_command`).
    build: Box<dyn Fn() -> Command + 'a>,
    context: PathBuf,
    dir: PathBuf,
    made: RefCell<BTreeMap<String, PathBuf>>,
}

impl<'a> DockerFilesystems<'a> {
    /// Filesystems of one case, unpacked under `dir`.
    pub fn new(
        engine: &'a Engine,
        build: Box<dyn Fn() -> Command + 'a>,
        context: &Path,
        dir: &Path,
    ) -> DockerFilesystems<'a> {
        DockerFilesystems {
            engine,
            build,
            context: context.to_path_buf(),
            dir: dir.to_path_buf(),
            made: RefCell::new(BTreeMap::new()),
        }
    }

    fn unpack(&self, key: &str, reference: &str) -> Result<PathBuf> {
        if let Some(dir) = self.made.borrow().get(key) {
            return Ok(dir.clone());
        }
        let slot = self.dir.join(sanitize(key));
        let archive = slot.with_extension("save");
        let rootfs = slot.with_extension("rootfs");
        for dir in [&archive, &rootfs] {
            if dir.exists() {
                std::fs::remove_dir_all(dir)
                    .with_context(|| format!("clearing {}", dir.display()))?;
            }
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let saved = archive.join("image.tar");
        engine::run(
            "docker save",
            self.engine
                .docker()
                .args(["save", "-o"])
                .arg(&saved)
                .arg(reference),
        )?;
        tar(&["-xf"], &saved, &archive)?;
        let manifest = std::fs::read(archive.join("manifest.json"))
            .with_context(|| format!("reading the manifest of docker save {reference}"))?;
        for layer in saved_layers(&manifest)? {
            apply_layer(&archive.join(layer), &rootfs)?;
        }
        std::fs::remove_dir_all(&archive).ok();
        self.made
            .borrow_mut()
            .insert(key.to_owned(), rootfs.clone());
        Ok(rootfs)
    }
}

impl Filesystems for DockerFilesystems<'_> {
    fn stage(&self, name: &str) -> Result<PathBuf> {
        let key = format!("stage-{name}");
        if let Some(dir) = self.made.borrow().get(&key) {
            return Ok(dir.clone());
        }
        let tag = format!(
            "{}/conformance-stage-{}:v1",
            self.engine.registry(),
            sanitize(name)
        );
        engine::run(
            "docker build --target",
            (self.build)()
                .args(["--target", name, "-t", &tag])
                .arg(&self.context),
        )?;
        self.unpack(&key, &tag)
    }

    fn image(&self, reference: &str) -> Result<PathBuf> {
        self.unpack(&format!("image-{reference}"), reference)
    }
}

/// A file name made of `key`'s letters, digits, `-` and `.`, the rest as `_`.
fn sanitize(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The layer tar paths of a `docker save` archive, base first.
fn saved_layers(manifest: &[u8]) -> Result<Vec<String>> {
    let value: serde_json::Value =
        serde_json::from_slice(manifest).context("parsing docker save's manifest.json")?;
    let Some(layers) = value
        .get(0)
        .and_then(|image| image.get("Layers"))
        .and_then(serde_json::Value::as_array)
    else {
        bail!("docker save's manifest.json has no Layers");
    };
    layers
        .iter()
        .map(|l| {
            l.as_str()
                .map(str::to_owned)
                .context("a layer path is not a string")
        })
        .collect()
}

/// What a layer's whiteout entries remove from the layers below it (OCI image spec, "Whiteouts").
#[derive(Debug, PartialEq, Eq)]
enum Whiteout {
    /// `dir/.wh.name`: remove `dir/name`.
    Entry(String),
    /// `dir/.wh..wh..opq`: remove everything under `dir`, keep `dir`.
    Opaque(String),
}

/// The whiteouts among a layer's entry names.
fn whiteouts<'n>(names: impl IntoIterator<Item = &'n str>) -> Vec<Whiteout> {
    let mut found = Vec::new();
    for name in names {
        let name = name.trim_start_matches("./").trim_end_matches('/');
        let (dir, base) = name.rsplit_once('/').unwrap_or(("", name));
        if base == ".wh..wh..opq" {
            found.push(Whiteout::Opaque(dir.to_owned()));
        } else if let Some(hidden) = base.strip_prefix(".wh.") {
            let path = if dir.is_empty() {
                hidden.to_owned()
            } else {
                format!("{dir}/{hidden}")
            };
            found.push(Whiteout::Entry(path));
        }
    }
    found
}

/// Applies one layer tar onto `rootfs`: its whiteouts first, then its other entries.
fn apply_layer(layer: &Path, rootfs: &Path) -> Result<()> {
    let listing = Command::new("tar")
        .arg("-tf")
        .arg(layer)
        .output()
        .with_context(|| format!("listing {}", layer.display()))?;
    if !listing.status.success() {
        bail!("tar -tf {} failed ({})", layer.display(), listing.status);
    }
    let names = String::from_utf8_lossy(&listing.stdout);
    for whiteout in whiteouts(names.lines()) {
        match whiteout {
            Whiteout::Entry(path) => {
                let target = rootfs.join(path);
                if target.is_dir() && !target.is_symlink() {
                    std::fs::remove_dir_all(&target).ok();
                } else {
                    std::fs::remove_file(&target).ok();
                }
            }
            Whiteout::Opaque(dir) => {
                if let Ok(entries) = std::fs::read_dir(rootfs.join(dir)) {
                    for entry in entries.flatten() {
                        let path = entry.path();
                        if path.is_dir() && !path.is_symlink() {
                            std::fs::remove_dir_all(&path).ok();
                        } else {
                            std::fs::remove_file(&path).ok();
                        }
                    }
                }
            }
        }
    }
    tar(
        &[
            "--same-owner",
            "--same-permissions",
            "--numeric-owner",
            "--exclude=.wh.*",
            "-xf",
        ],
        layer,
        rootfs,
    )
}

fn tar(flags: &[&str], archive: &Path, dir: &Path) -> Result<()> {
    let status = Command::new("tar")
        .args(flags)
        .arg(archive)
        .arg("-C")
        .arg(dir)
        .status()
        .with_context(|| format!("running tar on {}", archive.display()))?;
    if !status.success() {
        bail!(
            "tar {} {} -C {} failed ({status})",
            flags.join(" "),
            archive.display(),
            dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whiteouts_are_found() {
        let names = [
            "./",
            "etc/",
            "etc/.wh.passwd",
            ".wh.top",
            "var/cache/.wh..wh..opq",
            "usr/bin/tool",
            "./opt/.wh.dir/",
        ];
        assert_eq!(
            whiteouts(names),
            [
                Whiteout::Entry("etc/passwd".into()),
                Whiteout::Entry("top".into()),
                Whiteout::Opaque("var/cache".into()),
                Whiteout::Entry("opt/dir".into()),
            ]
        );
    }

    #[test]
    fn saved_layers_are_read_in_order() {
        let manifest =
            br#"[{"Config":"c.json","RepoTags":["x:v1"],"Layers":["a/layer.tar","b/layer.tar"]}]"#;
        assert_eq!(
            saved_layers(manifest).unwrap(),
            ["a/layer.tar", "b/layer.tar"]
        );
        assert!(saved_layers(b"[]").is_err());
    }

    #[test]
    fn layers_apply_with_whiteouts() {
        let work = std::env::temp_dir().join(format!("xtask-layers-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        let (lower, upper, rootfs) = (work.join("l"), work.join("u"), work.join("r"));
        for dir in [&lower, &upper, &rootfs] {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::create_dir_all(lower.join("d/sub")).unwrap();
        std::fs::write(lower.join("d/sub/x"), "x").unwrap();
        std::fs::write(lower.join("gone"), "g").unwrap();
        std::fs::write(lower.join("kept"), "k").unwrap();
        std::fs::create_dir_all(upper.join("d")).unwrap();
        std::fs::write(upper.join("d/.wh..wh..opq"), "").unwrap();
        std::fs::write(upper.join("d/new"), "n").unwrap();
        std::fs::write(upper.join(".wh.gone"), "").unwrap();
        for (dir, name) in [(&lower, "l.tar"), (&upper, "u.tar")] {
            let status = Command::new("tar")
                .arg("-C")
                .arg(dir)
                .arg("-cf")
                .arg(work.join(name))
                .arg(".")
                .status()
                .unwrap();
            assert!(status.success());
        }
        apply_layer(&work.join("l.tar"), &rootfs).unwrap();
        apply_layer(&work.join("u.tar"), &rootfs).unwrap();
        let mut found: Vec<String> = walk(&rootfs, &rootfs);
        found.sort();
        assert_eq!(found, ["d", "d/new", "kept"]);
        std::fs::remove_dir_all(&work).unwrap();
    }

    fn walk(root: &Path, dir: &Path) -> Vec<String> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            out.push(
                path.strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
            if path.is_dir() {
                out.extend(walk(root, &path));
            }
        }
        out
    }
}
