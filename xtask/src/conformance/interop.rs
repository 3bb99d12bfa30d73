//! Docker interop: images inlay builds work in a real docker 20.10 engine.
//!
//! For each [`EXAMPLES`] entry (`examples/hello`, two stages with `ARG BASE`, and
//! `examples/every-instruction`, every Dockerfile instruction), the real `inlay build`
//!
//! 1. writes a docker archive (`-o type=docker,dest=X.tar`) that `docker load` takes, and
//! 2. pushes the image (`--push -t REG/x`), which `docker pull` takes once no local image is left;
//!
//! each time docker then runs the image (its default command's stdout), runs a script in it
//! that reports the modes, owners and contents of the files the build made, and
//! `docker inspect`s its config (`Env`, `Cmd`, `Entrypoint`, `WorkingDir`, `User`, `Labels`,
//! `ExposedPorts`, `Volumes`, `StopSignal`, `Healthcheck`, `OnBuild`, `Shell`, `Author`). Every
//! difference is reported as what was expected and what came out.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::conformance::engine::{self, Engine};

/// A file the build made, as seen inside the running image.
struct FileCheck {
    path: &'static str,
    /// `stat -c '%a %u:%g'`.
    mode_owner: &'static str,
    /// The whole content (one line, without its newline), when checked.
    content: Option<&'static str>,
}

/// How a config field is compared.
enum Expect {
    /// Equal to this JSON value (`null`: absent).
    Exactly(Value),
    /// An array holding at least these strings.
    Contains(&'static [&'static str]),
}

/// One example and what docker must see of it.
struct Example {
    /// The folder under `examples/`.
    name: &'static str,
    /// What `docker run IMG` prints.
    stdout: &'static str,
    /// `$(id -u):$(id -g) $PWD` as the image's user in its working directory.
    identity: &'static str,
    files: &'static [FileCheck],
    /// Fields of `docker inspect`'s `Config` (and `Author` at the top).
    config: fn() -> Vec<(&'static str, Expect)>,
}

/// The examples checked, in order.
const EXAMPLES: &[Example] = &[
    Example {
        name: "hello",
        stdout: "hello from inlay\n",
        identity: "65534:65534 /app",
        files: &[
            FileCheck {
                path: "/app/greeting.txt",
                mode_owner: "644 0:0",
                content: Some("hello from inlay"),
            },
            FileCheck {
                path: "/app/size.txt",
                mode_owner: "644 0:0",
                content: Some("17"),
            },
        ],
        config: || {
            vec![
                (
                    "Env",
                    Expect::Contains(&["GREETING_FILE=/app/greeting.txt"]),
                ),
                (
                    "Cmd",
                    Expect::Exactly(json!(["sh", "-c", "cat $GREETING_FILE"])),
                ),
                ("Entrypoint", Expect::Exactly(Value::Null)),
                ("WorkingDir", Expect::Exactly(json!("/app"))),
                ("User", Expect::Exactly(json!("65534:65534"))),
                ("Labels", Expect::Exactly(Value::Null)),
                ("ExposedPorts", Expect::Exactly(Value::Null)),
                ("Volumes", Expect::Exactly(Value::Null)),
                ("OnBuild", Expect::Exactly(Value::Null)),
            ]
        },
    },
    Example {
        name: "every-instruction",
        stdout: "hello from every instruction, world (tools 1.0, payload from a tar)\n",
        identity: "1000:1000 /srv/app",
        files: &[
            FileCheck {
                path: "/srv/app",
                mode_owner: "755 0:0",
                content: None,
            },
            FileCheck {
                path: "/srv/app/config.txt",
                mode_owner: "640 1000:1000",
                content: Some("setting=on"),
            },
            FileCheck {
                path: "/usr/local/bin/run.sh",
                mode_owner: "755 0:0",
                content: None,
            },
            FileCheck {
                path: "/srv/app/tool.txt",
                mode_owner: "644 0:0",
                content: Some("tools 1.0"),
            },
            FileCheck {
                path: "/srv/payload/data.txt",
                mode_owner: "644 0:0",
                content: Some("payload from a tar"),
            },
            FileCheck {
                path: "/srv/payload/bin/tool",
                mode_owner: "750 0:0",
                content: None,
            },
            FileCheck {
                path: "/srv/payload.tar",
                mode_owner: "missing",
                content: None,
            },
            FileCheck {
                path: "/srv/app/heredoc.txt",
                mode_owner: "644 1000:1000",
                content: Some("written by a heredoc"),
            },
            FileCheck {
                path: "/srv/app/shell.txt",
                mode_owner: "644 0:0",
                content: Some("errexit"),
            },
            FileCheck {
                path: "/data",
                mode_owner: "755 0:0",
                content: None,
            },
        ],
        config: || {
            vec![
                (
                    "Env",
                    Expect::Contains(&[
                        "APP_HOME=/srv/app",
                        "GREETING=hello from every instruction",
                    ]),
                ),
                ("Cmd", Expect::Exactly(json!(["world"]))),
                (
                    "Entrypoint",
                    Expect::Exactly(json!(["/usr/local/bin/run.sh"])),
                ),
                ("WorkingDir", Expect::Exactly(json!("/srv/app"))),
                ("User", Expect::Exactly(json!("app:app"))),
                (
                    "Labels",
                    Expect::Exactly(json!({
                        "org.example.title": "every-instruction",
                        "org.example.version": "1.0",
                    })),
                ),
                (
                    "ExposedPorts",
                    Expect::Exactly(json!({"53/udp": {}, "8080/tcp": {}})),
                ),
                ("Volumes", Expect::Exactly(json!({"/data": {}}))),
                ("StopSignal", Expect::Exactly(json!("SIGINT"))),
                (
                    "Healthcheck",
                    Expect::Exactly(json!({
                        "Test": ["CMD-SHELL", "test -f /srv/app/config.txt"],
                        "Interval": 30_000_000_000_u64,
                        "Timeout": 3_000_000_000_u64,
                        "Retries": 2,
                    })),
                ),
                (
                    "OnBuild",
                    Expect::Exactly(json!(["RUN echo built on every-instruction"])),
                ),
                ("Shell", Expect::Exactly(json!(["/bin/sh", "-ec"]))),
                (
                    "Author",
                    Expect::Exactly(json!("inlay maintainers <inlay@example.invalid>")),
                ),
            ]
        },
    },
];

/// How the image reached docker.
#[derive(Clone, Copy)]
enum Route {
    /// `-o type=docker,dest=X.tar`, `docker load`.
    Load,
    /// `--push -t REG/x`, `docker pull`.
    Pull,
}

impl Route {
    fn describe(self) -> &'static str {
        match self {
            Route::Load => "docker load",
            Route::Pull => "docker pull",
        }
    }
}

/// The outcome of every example and route: `(what, Ok(summary) | Err(problems))`.
pub type Results = Vec<(String, Result<String, String>)>;

/// Runs every example both ways on a running engine whose registry holds the busybox base as
/// `base`. Outputs and logs go to `out`.
pub fn run_all(inlay: &Path, engine: &Engine, base: &str, root: &Path, out: &Path) -> Results {
    let started = Instant::now();
    let mut results = Vec::new();
    for example in EXAMPLES {
        for route in [Route::Load, Route::Pull] {
            crate::conformance::processes::park_if_interrupted();
            let what = format!("{} ({})", example.name, route.describe());
            let started = Instant::now();
            let result = check(inlay, engine, base, root, out, example, route)
                .map(|()| format!("ok in {:.1}s", started.elapsed().as_secs_f64()))
                .map_err(|e| format!("{e:#}"));
            eprintln!(
                "xtask: interop {what}: {}",
                result.as_ref().unwrap_or_else(|e| e)
            );
            results.push((what, result));
        }
    }
    eprintln!(
        "xtask: interop: {} checks in {:.1}s",
        results.len(),
        started.elapsed().as_secs_f64()
    );
    results
}

/// Prints the summary of [`run_all`]; an error names the failures.
pub fn report(results: &Results) -> Result<()> {
    let failed: Vec<&str> = results
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(what, _)| what.as_str())
        .collect();
    println!(
        "  interop (inlay's images in docker 20.10: load, pull, run, inspect): {} of {} passed{}",
        results.len() - failed.len(),
        results.len(),
        if failed.is_empty() {
            String::new()
        } else {
            format!("; FAILED: {}", failed.join(", "))
        }
    );
    if !failed.is_empty() {
        bail!(
            "{} interop checks failed (lines above): {}",
            failed.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

/// `cargo xtask conformance interop`: its own engine, base image and inlay build.
pub fn standalone(root: &Path, keep: bool) -> Result<()> {
    let started = Instant::now();
    crate::conformance::processes::install_interrupt_handler()?;
    crate::packages::ensure(&crate::packages::DOCKER_PACKAGES)?;
    let target = crate::conformance::target_dir(root);
    let inlay = crate::conformance::both_ways::build_inlay(root, &target)?;
    let out = target.join("conformance/interop");
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("clearing {}", out.display()))?;
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut engine = Engine::start()?;
    if keep {
        engine.keep_scratch();
    }
    let (base, _) = engine.make_base()?;
    let results = run_all(&inlay, &engine, &base, root, &out);
    crate::conformance::processes::park_if_interrupted();
    drop(engine);
    println!(
        "conformance interop: {:.1}s, outputs in {}",
        started.elapsed().as_secs_f64(),
        out.display()
    );
    report(&results)
}

/// One example, one route: build, hand to docker, run, inspect, clean up.
fn check(
    inlay: &Path,
    engine: &Engine,
    base: &str,
    root: &Path,
    out: &Path,
    example: &Example,
    route: Route,
) -> Result<()> {
    let dir = root.join("examples").join(example.name);
    let route_name = match route {
        Route::Load => "load",
        Route::Pull => "pull",
    };
    let out = out.join(format!("{}-{route_name}", example.name));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let store = out.join("inlay-store");
    let image = format!(
        "{}/interop-{}:{route_name}",
        engine.registry(),
        example.name
    );
    let mut command = Command::new(inlay);
    command
        .args(["build", "--progress", "plain", "--root"])
        .arg(&store)
        .arg("--build-arg")
        .arg(format!("BASE={base}"))
        .args(["-t", &image]);
    match route {
        Route::Load => {
            command.arg("--output").arg(format!(
                "type=docker,dest={}",
                out.join("image.tar").display()
            ));
        }
        Route::Pull => {
            command.arg("--push");
        }
    }
    command.arg(&dir);
    let built = logged("inlay build", &mut command, &out.join("inlay-build.log"));
    let _ = std::fs::remove_dir_all(&store);
    built?;

    match route {
        Route::Load => {
            let loaded = engine::run(
                "docker load",
                engine
                    .docker()
                    .arg("load")
                    .arg("--input")
                    .arg(out.join("image.tar")),
            )?;
            // `-t` names the archive (`RepoTags`), as buildx does: docker loads it by name.
            let said = String::from_utf8_lossy(&loaded.stdout);
            if !said.contains(&format!("Loaded image: {image}")) {
                bail!("docker load did not name the image {image} (from -t); it said:\n{said}");
            }
        }
        Route::Pull => {
            // Nothing of the image may be local: not the image, and not its base.
            for reference in [image.as_str(), base] {
                let _ = engine.docker().args(["rmi", reference]).output();
            }
            engine::run("docker pull", engine.docker().args(["pull", &image]))?;
        }
    }
    let checked = check_image(engine, &image, example);
    let _ = engine.docker().args(["rmi", &image]).output();
    if matches!(route, Route::Pull) {
        // Put the base back for whatever runs next on this engine.
        let _ = engine.docker().args(["pull", base]).output();
    }
    checked
}

/// Runs `command`, keeps its output in `log`; the failure carries its tail.
fn logged(what: &str, command: &mut Command, log: &Path) -> Result<()> {
    let output = command
        .output()
        .with_context(|| format!("running {what}"))?;
    let text = [output.stdout.as_slice(), output.stderr.as_slice()].concat();
    let text = String::from_utf8_lossy(&text);
    let _ = std::fs::write(log, text.as_bytes());
    if !output.status.success() {
        bail!(
            "{what} failed ({}); {} ends:\n{}",
            output.status,
            log.display(),
            engine::tail(&text, 25)
        );
    }
    Ok(())
}

/// Runs and inspects `image`; every problem found, or `Ok`.
fn check_image(engine: &Engine, image: &str, example: &Example) -> Result<()> {
    let mut problems = Vec::new();

    let run = engine::run(
        "docker run",
        engine
            .docker()
            .args(["run", "--rm", "--network=none", image]),
    )?;
    let stdout = String::from_utf8_lossy(&run.stdout);
    if stdout != example.stdout {
        problems.push(format!(
            "`docker run {image}` printed {stdout:?}, expected {:?}",
            example.stdout
        ));
    }

    let script = probe_script(example.files);
    let probed = engine::run(
        "docker run (file checks)",
        engine
            .docker()
            .args(["run", "--rm", "--network=none", "--entrypoint", "/bin/sh"])
            .args([image, "-c", &script]),
    )?;
    let seen = String::from_utf8_lossy(&probed.stdout);
    problems.extend(compare_probe(example, &seen));

    let inspected = engine::run(
        "docker inspect",
        engine.docker().args(["image", "inspect", image]),
    )?;
    let parsed: Value =
        serde_json::from_slice(&inspected.stdout).context("parsing docker inspect's output")?;
    let top = parsed.get(0).unwrap_or(&Value::Null);
    problems.extend(compare_config(top, &(example.config)()));

    if problems.is_empty() {
        Ok(())
    } else {
        bail!(
            "{} problems:\n  - {}",
            problems.len(),
            problems.join("\n  - ")
        )
    }
}

/// A shell script printing `id:PWD` then one line per file: `mode uid:gid content`, or
/// `missing`.
fn probe_script(files: &[FileCheck]) -> String {
    let mut script = String::from("echo \"$(id -u):$(id -g) $PWD\"\n");
    for file in files {
        let path = file.path;
        let content = if file.content.is_some() {
            format!(" $(cat '{path}' 2>&1)")
        } else {
            String::new()
        };
        let _ = writeln!(
            script,
            "if [ -e '{path}' ]; then echo \"$(stat -c '%a %u:%g' '{path}'){content}\"; else echo missing; fi"
        );
    }
    script
}

/// What the probe script should print for `example`.
fn expected_probe(example: &Example) -> Vec<String> {
    let mut lines = vec![example.identity.to_owned()];
    for file in example.files {
        lines.push(match file.content {
            Some(content) => format!("{} {content}", file.mode_owner),
            None => file.mode_owner.to_owned(),
        });
    }
    lines
}

/// Each line of the probe's output against what was expected.
fn compare_probe(example: &Example, seen: &str) -> Vec<String> {
    let seen: Vec<&str> = seen.lines().collect();
    let names = std::iter::once("user and working directory ($(id -u):$(id -g) $PWD)")
        .chain(example.files.iter().map(|f| f.path));
    names
        .zip(expected_probe(example))
        .enumerate()
        .filter_map(|(i, (name, want))| {
            let got = seen.get(i).copied().unwrap_or("(no output)");
            (got != want).then(|| format!("{name}: expected `{want}`, got `{got}`"))
        })
        .collect()
}

/// `Config.FIELD`, or `Author` (a top-level field of the image).
fn label(field: &str) -> String {
    if field == "Author" {
        field.to_owned()
    } else {
        format!("Config.{field}")
    }
}

/// Each expected config field against `docker image inspect`'s object.
fn compare_config(inspected: &Value, expected: &[(&str, Expect)]) -> Vec<String> {
    let config = inspected.get("Config").unwrap_or(&Value::Null);
    let mut problems = Vec::new();
    for (field, expect) in expected {
        let got = if *field == "Author" {
            inspected.get(field)
        } else {
            config.get(field)
        };
        let got = got.unwrap_or(&Value::Null);
        // docker prints an empty string/object/array for some unset fields.
        let absent = match got {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Object(o) => o.is_empty(),
            Value::Array(a) => a.is_empty(),
            _ => false,
        };
        match expect {
            Expect::Exactly(Value::Null) if absent => {}
            Expect::Exactly(want) if got == want => {}
            Expect::Exactly(want) => {
                problems.push(format!("{}: expected {want}, got {got}", label(field)));
            }
            Expect::Contains(items) => {
                let have: Vec<&str> = got
                    .as_array()
                    .map(|a| a.iter().filter_map(Value::as_str).collect())
                    .unwrap_or_default();
                let missing: Vec<&&str> = items.iter().filter(|i| !have.contains(i)).collect();
                if !missing.is_empty() {
                    problems.push(format!(
                        "{}: expected to contain {missing:?}, got {got}",
                        label(field)
                    ));
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_exists() {
        let root = crate::workspace_root();
        for example in EXAMPLES {
            assert!(
                root.join("examples")
                    .join(example.name)
                    .join("Dockerfile")
                    .is_file(),
                "{}",
                example.name
            );
        }
    }

    #[test]
    fn probe_output_is_compared_line_by_line() {
        let example = &EXAMPLES[0];
        let good = "65534:65534 /app\n644 0:0 hello from inlay\n644 0:0 17\n";
        assert!(compare_probe(example, good).is_empty());
        let bad = "65534:65534 /app\n600 0:0 hello from inlay\n";
        let problems = compare_probe(example, bad);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("/app/greeting.txt: expected `644 0:0 hello from inlay`"));
        assert!(problems[1].contains("(no output)"));
    }

    #[test]
    fn config_fields_are_compared() {
        let inspected = json!({
            "Author": "",
            "Config": {"Env": ["PATH=/bin", "A=1"], "Cmd": ["x"], "Labels": {}, "User": "u"}
        });
        let expected = vec![
            ("Env", Expect::Contains(&["A=1"])),
            ("Cmd", Expect::Exactly(json!(["x"]))),
            ("Labels", Expect::Exactly(Value::Null)),
            ("Author", Expect::Exactly(Value::Null)),
            ("User", Expect::Exactly(json!("v"))),
            ("Shell", Expect::Exactly(json!(["/bin/sh"]))),
        ];
        let problems = compare_config(&inspected, &expected);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0], "Config.User: expected \"v\", got \"u\"");
    }
}
