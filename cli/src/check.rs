//! `inlay build --check`, `inlay cache check` and `inlay explain`: the dry run of
//! [`inlay_builder::build::check`] rendered as text or JSON.
//!
//! Exit codes: 0 when every step hits, 1 when some step misses, 2 on an error (bad flags, an
//! unreadable Dockerfile, a base image that does not resolve).

use std::fmt::Write as _;
use std::process::ExitCode;

use inlay_builder::build::check::{self, CheckReport, ImageVerdict, MissCause, StepCheck, Verdict};
use inlay_frontend_dockerfile::stages;
use serde_json::{Value, json};

use crate::build_flags::BuildRequest as Flags;

/// What to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Every step, hit or miss, and the image verdict.
    Check,
    /// The misses only (or one step), each with every cause.
    Explain {
        /// Only this step number.
        step: Option<usize>,
    },
}

const EXIT_MISS: u8 = 1;
const EXIT_ERROR: u8 = 2;

/// Runs the dry run; returns the exit code.
pub fn run(mut flags: Flags, view: View) -> ExitCode {
    let platform = match flags
        .platform
        .take()
        .map(|p| parse_platform(&p))
        .transpose()
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("inlay: error: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let json = flags.format == "json";
    let (request, _mode, tempdir) = match crate::build::to_request(flags) {
        Ok(r) => r,
        Err(err) => {
            eprintln!("inlay: error: {err:#}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let result = check::check(&request, platform.as_ref());
    drop(tempdir);
    let report = match result {
        Ok(r) => r,
        Err(err) => {
            eprintln!("ERROR: {}", inlay_builder::progress::error_chain(&err));
            return ExitCode::from(EXIT_ERROR);
        }
    };
    for warning in &report.warnings {
        eprintln!("WARNING: {warning}");
    }
    if let View::Explain { step: Some(n) } = view {
        if !report.steps.iter().any(|s| s.number == n) {
            eprintln!(
                "inlay: error: no step {n} (the build has {} steps)",
                report.steps.len()
            );
            return ExitCode::from(EXIT_ERROR);
        }
    }
    if json {
        println!("{}", render_json(&report, view));
    } else {
        print!("{}", render_text(&report, view));
    }
    let relevant_hit = match view {
        View::Explain { step: Some(n) } => report
            .steps
            .iter()
            .filter(|s| s.number == n)
            .all(StepCheck::is_hit),
        _ => report.all_hit(),
    };
    if relevant_hit {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_MISS)
    }
}

/// `os/arch[/variant]`.
fn parse_platform(value: &str) -> Result<stages::Platform, String> {
    let mut parts = value.split('/');
    let (Some(os), Some(architecture)) = (parts.next(), parts.next()) else {
        return Err(format!(
            "invalid --platform {value:?}: expected os/arch[/variant]"
        ));
    };
    let variant = parts.next().unwrap_or_default();
    if os.is_empty() || architecture.is_empty() || parts.next().is_some() {
        return Err(format!(
            "invalid --platform {value:?}: expected os/arch[/variant]"
        ));
    }
    Ok(stages::Platform {
        os: os.to_owned(),
        architecture: architecture.to_owned(),
        variant: variant.to_owned(),
    })
}

fn short(digest: &impl std::fmt::Display) -> String {
    let text = digest.to_string();
    match text.strip_prefix("sha256:") {
        Some(hex) if hex.len() > 12 => format!("sha256:{}", &hex[..12]),
        _ => text,
    }
}

/// The text view.
pub fn render_text(report: &CheckReport, view: View) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "inlay check: keys {}, platform {}",
        report.profile.name(),
        report.platform
    );
    for r in &report.cache_refs {
        let _ = writeln!(out, "cache from {} ({})", r.reference, short(&r.digest));
    }
    if report.cache_refs.is_empty() {
        let _ = writeln!(out, "cache from: none resolved");
    }
    for step in &report.steps {
        let wanted = match view {
            View::Check => true,
            View::Explain { step: Some(n) } => step.number == n,
            View::Explain { step: None } => !step.is_hit(),
        };
        if !wanted {
            continue;
        }
        match &step.verdict {
            Verdict::Hit { origin, record } => {
                let _ = write!(
                    out,
                    "#{} HIT  {} (line {}) from {origin}, record {}",
                    step.number,
                    step.description,
                    step.line,
                    short(record)
                );
                if step.content_pending {
                    let _ = write!(out, " (COPY --from content not verified)");
                }
                out.push('\n');
            }
            Verdict::Miss(causes) => {
                let _ = writeln!(
                    out,
                    "#{} MISS {} (line {})",
                    step.number, step.description, step.line
                );
                if matches!(view, View::Explain { .. }) {
                    if let Some(record) = &step.record {
                        let _ = writeln!(out, "     key record {record}");
                    }
                }
                for cause in causes {
                    let _ = writeln!(out, "     {}: {cause}", cause.kind());
                    if let (View::Explain { .. }, MissCause::Definition { nearest: Some(n) }) =
                        (view, cause)
                    {
                        let _ = writeln!(out, "     nearest record {n}");
                    }
                }
            }
            _ => {}
        }
    }
    if view == View::Check {
        let hits = report.steps.iter().filter(|s| s.is_hit()).count();
        let _ = writeln!(out, "{hits} of {} steps hit", report.steps.len());
        let _ = match &report.image {
            ImageVerdict::Unchanged { reference, digest } => {
                writeln!(out, "image: unchanged, {digest} as {reference}")
            }
            ImageVerdict::Changed { reference, reasons } => {
                writeln!(
                    out,
                    "image: would differ from {reference}: {}",
                    reasons.join("; ")
                )
            }
            _ => writeln!(out, "image: no cache reference to compare with"),
        };
    }
    out
}

fn cause_json(cause: &MissCause) -> Value {
    let mut value = json!({"kind": cause.kind(), "message": cause.to_string()});
    let extra = match cause {
        MissCause::Command { old, new } => json!({"old": old, "new": new}),
        MissCause::Arg {
            name,
            old,
            new,
            line,
        }
        | MissCause::Env {
            name,
            old,
            new,
            line,
        } => json!({"name": name, "old": old, "new": new, "line": line}),
        MissCause::BaseImage {
            reference,
            digest,
            old,
            detail,
        } => json!({
            "reference": reference,
            "digest": digest.as_ref().map(ToString::to_string),
            "old": old.as_ref().map(ToString::to_string),
            "detail": detail
        }),
        MissCause::CopySources { paths, changed } => json!({"paths": paths, "changed": changed}),
        MissCause::Platform { cache, build } => json!({"cache": cache, "build": build}),
        MissCause::KeyProfile { cache, build } => {
            json!({"cache": cache.name(), "build": build.name()})
        }
        MissCause::ParentMissed { step } => json!({"step": step}),
        MissCause::Definition { nearest } => {
            json!({"nearest": nearest.as_ref().map(ToString::to_string)})
        }
        _ => json!({}),
    };
    if let (Some(v), Value::Object(extra)) = (value.as_object_mut(), extra) {
        v.extend(extra);
    }
    value
}

/// The JSON view (one document).
pub fn render_json(report: &CheckReport, view: View) -> Value {
    let steps: Vec<Value> = report
        .steps
        .iter()
        .filter(|s| match view {
            View::Check => true,
            View::Explain { step: Some(n) } => s.number == n,
            View::Explain { step: None } => !s.is_hit(),
        })
        .map(|s| {
            let mut v = json!({
                "number": s.number,
                "description": s.description,
                "line": s.line,
                "record": s.record.as_ref().map(ToString::to_string),
                "content_pending": s.content_pending,
                "hit": s.is_hit(),
            });
            match &s.verdict {
                Verdict::Hit { origin, record } => {
                    v["origin"] = json!(origin);
                    v["cache_record"] = json!(record.to_string());
                }
                Verdict::Miss(causes) => {
                    v["causes"] = causes.iter().map(cause_json).collect();
                }
                _ => {}
            }
            v
        })
        .collect();
    let image = match &report.image {
        ImageVerdict::Unchanged { reference, digest } => {
            json!({"verdict": "unchanged", "reference": reference, "digest": digest.to_string()})
        }
        ImageVerdict::Changed { reference, reasons } => {
            json!({"verdict": "changed", "reference": reference, "reasons": reasons})
        }
        _ => json!({"verdict": "unknown"}),
    };
    json!({
        "profile": report.profile.name(),
        "platform": report.platform,
        "cache_refs": report.cache_refs.iter().map(|r| json!({
            "reference": r.reference, "digest": r.digest.to_string()
        })).collect::<Vec<_>>(),
        "all_hit": report.all_hit(),
        "steps": steps,
        "image": image,
        "warnings": report.warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_with_and_without_variant() {
        assert_eq!(
            parse_platform("linux/arm64").unwrap().to_string(),
            "linux/arm64"
        );
        assert_eq!(
            parse_platform("linux/arm/v7").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert!(parse_platform("linux").is_err());
        assert!(parse_platform("linux/arm/v7/x").is_err());
    }
}

/// Decode-only snapshots over BuildKit's own images (the conformance samples): the records
/// come from the sample's config, the old side of the explanations from its history.
#[cfg(test)]
mod samples {
    use std::path::PathBuf;

    use inlay_builder::build::BuildRequest;
    use inlay_builder::build::check::{CacheRefImage, check_decoded};
    use inlay_builder::plan::PlanInput;
    use inlay_core::cache::{CacheStore, RecordGraph};
    use inlay_core::cachekey::KeyProfile;
    use inlay_core::descriptor::ANNOTATION_UNCOMPRESSED;
    use inlay_core::image::{ImageConfig, ImageManifest};
    use inlay_core::op::NetMode;
    use inlay_core::{Digest, Reference};
    use inlay_frontend_dockerfile::lower::ResolvedImage;

    use super::*;

    fn sample_dir(name: &str) -> PathBuf {
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/conformance"
        ))
        .join(name)
        .canonicalize()
        .unwrap()
    }

    /// Checks `dockerfile` (the sample's own when `None`) against the sample image.
    fn check_sample(name: &str, dockerfile: Option<&str>, network: NetMode) -> CheckReport {
        let dir = sample_dir(name);
        let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
        let manifest_bytes = read("manifest.json");
        let config_bytes = read("config.json");
        let manifest: ImageManifest = serde_json::from_slice(&manifest_bytes).unwrap();
        let config: ImageConfig = serde_json::from_slice(&config_bytes).unwrap();
        let graph = RecordGraph::from_inline(config.inline_cache().unwrap()).unwrap();
        let layers: Vec<_> = manifest
            .layers
            .iter()
            .zip(&config.rootfs.diff_ids)
            .map(|(l, d)| {
                let mut l = l.clone();
                l.annotations
                    .insert(ANNOTATION_UNCOMPRESSED.to_owned(), d.to_string());
                l
            })
            .collect();
        let reference = "localhost:5000/sample:v1";
        let mut store = CacheStore::new();
        store.import_inline(format!("{reference} linux/amd64"), &graph, &layers);

        let text = dockerfile.map_or_else(|| read("Dockerfile"), |d| d.as_bytes().to_vec());
        // The context as BuildKit saw it: data.txt 0644 (the shared copy is read-only, and
        // the mode enters the content key).
        let context = tempfile::tempdir().unwrap();
        let data = context.path().join("data.txt");
        std::fs::write(&data, read("data.txt")).unwrap();
        std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .unwrap();
        let mut input = PlanInput::new(context.path(), text, KeyProfile::BuildkitCurrent);
        input.platform = Some(stages::Platform::linux_amd64());
        input.network = network;
        input.bases.push(ResolvedImage::new(
            Reference::parse("localhost:5000/busybox:latest").unwrap(),
            Some(Digest::sha256_of(&read("base-manifest.json"))),
            serde_json::from_slice(&read("base-config.json")).unwrap(),
        ));
        let mut request = BuildRequest::new(context.path(), "/nonexistent");
        request.cache_from = vec![reference.to_owned()];
        let refs = vec![CacheRefImage {
            reference: reference.to_owned(),
            digest: Digest::sha256_of(&manifest_bytes),
            config: serde_json::from_slice(&config_bytes).unwrap(),
            facts: None,
        }];
        check_decoded(input, store, refs, &request).unwrap()
    }

    const V024: &str = "buildkit-v0.24-inline-sample";

    #[test]
    fn the_v024_sample_hits_every_step() {
        let report = check_sample(V024, None, NetMode::None);
        assert!(report.all_hit(), "{report:#?}");
        insta::assert_snapshot!("v024_check", render_text(&report, View::Check));
    }

    #[test]
    fn the_v08_sample_misses_under_current_keys_and_says_why() {
        let report = check_sample("buildkit-v0.8-inline-sample", None, NetMode::Unset);
        insta::assert_snapshot!(
            "v08_explain",
            render_text(&report, View::Explain { step: None })
        );
    }

    #[test]
    fn an_edited_v024_dockerfile_is_explained_from_buildkit_history() {
        let dockerfile = "FROM localhost:5000/busybox:latest AS base\n\
            RUN echo bonjour > /hello.txt\n\
            COPY data.txt /data.txt\n\
            ENV FOO=baz\n\
            WORKDIR /app\n\
            RUN cat /data.txt > /app/out.txt\n\
            FROM base\n\
            LABEL x=y\n";
        let report = check_sample(V024, Some(dockerfile), NetMode::None);
        insta::assert_snapshot!("v024_edited_check", render_text(&report, View::Check));
        insta::assert_snapshot!(
            "v024_edited_json",
            serde_json::to_string_pretty(&render_json(&report, View::Explain { step: None }))
                .unwrap()
        );
    }

    #[test]
    fn an_env_change_in_the_v024_sample_is_named() {
        let dockerfile = std::fs::read_to_string(sample_dir(V024).join("Dockerfile"))
            .unwrap()
            .replace("ENV FOO=bar", "ENV FOO=baz");
        let report = check_sample(V024, Some(&dockerfile), NetMode::None);
        insta::assert_snapshot!(
            "v024_env_explain",
            render_text(&report, View::Explain { step: None })
        );
    }
}
