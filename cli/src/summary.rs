//! The end-of-build summary on stderr, after the progress: steps cached per cache, bytes
//! moved, where the time went, and one line per step that `--cache-from` did not serve, with
//! why.

use std::fmt::Write as _;
use std::time::Duration;

use inlay_builder::build::BuildReport;
use inlay_builder::build::check::{MissCause, Verdict};

/// Prints the summary of `report` to stderr.
pub fn print(report: &BuildReport, cache_from: &[String]) {
    eprint!("{}", render(report, cache_from));
}

fn seconds(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

/// The summary's text.
pub fn render(report: &BuildReport, cache_from: &[String]) -> String {
    let mut out = String::new();
    for warning in &report.warnings {
        let _ = writeln!(out, "WARNING: {warning}");
    }
    let _ = writeln!(
        out,
        "inlay: {} of {} steps cached, {} run, {} bytes pulled, {} bytes pushed",
        report.cached(),
        report.steps_total,
        report.steps_total.saturating_sub(report.cached()),
        report.bytes_pulled,
        report.bytes_pushed
    );
    for (origin, n) in &report.steps_cached {
        let _ = writeln!(out, "inlay:   {n} cached from {origin}");
    }
    if !cache_from.is_empty() && report.steps_cached.keys().all(|k| k == "local") {
        let _ = writeln!(out, "inlay:   no step came from --cache-from");
    }
    // A first build (the cache reference does not exist yet) says so once, not per step.
    let nothing_imported = !report.missed.is_empty()
        && report.missed.iter().all(|s| {
            matches!(&s.verdict, Verdict::Miss(causes) if matches!(causes.as_slice(), [MissCause::NoCacheRef]))
        });
    if nothing_imported {
        let _ = writeln!(
            out,
            "inlay:   missed every step: no cache reference could be imported (see the warnings)"
        );
    }
    for step in report.missed.iter().filter(|_| !nothing_imported) {
        if let Verdict::Miss(causes) = &step.verdict {
            let why: Vec<String> = causes.iter().map(ToString::to_string).collect();
            let _ = writeln!(
                out,
                "inlay:   missed {}: {}",
                step.description,
                why.join("; ")
            );
        }
    }
    let t = &report.timings;
    let _ = writeln!(
        out,
        "inlay: time {} = resolve {}, pull {}, snapshot {}, run {}, compress {}, cache export {}, push {}",
        seconds(t.total),
        seconds(t.resolve),
        seconds(t.pull),
        seconds(t.snapshot),
        seconds(t.run),
        seconds(t.compress),
        seconds(t.cache_export),
        seconds(t.push),
    );
    if let Some(records) = report.inline_records {
        let _ = writeln!(out, "inlay: inline cache: {records} records");
    }
    if let Some(digest) = &report.digest {
        let _ = writeln!(out, "inlay: image {digest}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_keeps_the_counts_line_and_adds_the_time_split() {
        let mut report = BuildReport {
            steps_total: 3,
            ..BuildReport::default()
        };
        report
            .steps_cached
            .insert("reg/app:latest linux/amd64".into(), 2);
        report.timings.total = Duration::from_millis(2500);
        report.timings.run = Duration::from_millis(1200);
        let text = render(&report, &["reg/app:latest".to_owned()]);
        assert!(text.contains("inlay: 2 of 3 steps cached, 1 run, 0 bytes pulled"));
        assert!(text.contains("inlay:   2 cached from reg/app:latest linux/amd64"));
        assert!(text.contains("inlay: time 2.5s = resolve 0.0s"));
        assert!(text.contains("run 1.2s"));
    }

    #[test]
    fn a_first_build_says_once_that_nothing_was_imported() {
        let missed =
            |number: usize, causes: Vec<MissCause>| inlay_builder::build::check::StepCheck {
                number,
                vertex: inlay_core::op::VertexId(number),
                description: format!("[{number}/2] RUN true"),
                line: number,
                record: None,
                content_pending: false,
                verdict: Verdict::Miss(causes),
            };
        let mut report = BuildReport {
            steps_total: 2,
            ..BuildReport::default()
        };
        report.missed = vec![
            missed(1, vec![MissCause::NoCacheRef]),
            missed(2, vec![MissCause::NoCacheRef]),
        ];
        let text = render(&report, &["reg/app:latest".to_owned()]);
        assert_eq!(text.matches("missed").count(), 1, "{text}");
        assert!(text.contains("missed every step: no cache reference could be imported"));
    }
}
