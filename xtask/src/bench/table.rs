//! The bench's figures and the Markdown table they are reported in.

use std::fmt::Write as _;
use std::time::Duration;

use crate::bench::contexts::{BenchContext, mib};

/// One tool's figures for one build.
#[derive(Clone, Debug, Default)]
pub struct Figures {
    /// Wall time of the job.
    pub wall: Duration,
    /// Peak summed RSS in bytes (docker: minus the daemons' idle RSS).
    pub peak: u64,
    /// Bytes fetched from the registry.
    pub fetched: u64,
    /// GET requests that fetched them.
    pub requests: usize,
    /// Cached steps, `X/Y`, as the tool reported them.
    pub hits: String,
}

/// One line of the table: a context and scenario, inlay's and docker's medians.
pub struct Row {
    context: String,
    description: String,
    scenario: &'static str,
    inlay: Figures,
    docker: Figures,
}

impl Row {
    /// The medians (each figure on its own) of `runs`, each `(inlay, docker)`.
    pub fn median(
        context: &BenchContext,
        scenario: &'static str,
        runs: &[(Figures, Figures)],
    ) -> Row {
        let side = |pick: fn(&(Figures, Figures)) -> &Figures| {
            let all: Vec<&Figures> = runs.iter().map(pick).collect();
            Figures {
                wall: median(all.iter().map(|f| f.wall).collect()),
                peak: median(all.iter().map(|f| f.peak).collect()),
                fetched: median(all.iter().map(|f| f.fetched).collect()),
                requests: median(all.iter().map(|f| f.requests).collect()),
                hits: all.last().map(|f| f.hits.clone()).unwrap_or_default(),
            }
        };
        Row {
            context: context.name.to_owned(),
            description: context.description.clone(),
            scenario,
            inlay: side(|r| &r.0),
            docker: side(|r| &r.1),
        }
    }
}

/// The middle value (the lower middle of an even count).
fn median<T: Ord + Copy + Default>(mut values: Vec<T>) -> T {
    values.sort_unstable();
    values
        .get(values.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or_default()
}

/// What the figures were measured on.
pub struct Setup {
    /// `--runs`.
    pub runs: usize,
    /// `--quick`.
    pub quick: bool,
    /// CPUs available.
    pub cores: usize,
    /// The workspace's commit.
    pub inlay_commit: String,
    /// `docker --version`.
    pub docker: String,
}

fn ratio(inlay: f64, docker: f64) -> String {
    if docker > 0.0 {
        format!("{:.2}", inlay / docker)
    } else if inlay > 0.0 {
        "∞".to_owned()
    } else {
        "–".to_owned()
    }
}

#[expect(clippy::cast_precision_loss, reason = "display only")]
fn as_f64(value: u64) -> f64 {
    value as f64
}

/// The report: setup, method, and the table.
pub fn render(rows: &[Row], setup: &Setup) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# inlay vs docker build\n\n\
         inlay {} (release build) against {} (dockerd with its embedded BuildKit v0.8, vfs \
         storage), {} cores shared with other work, median of {} run{}{}.\n",
        setup.inlay_commit,
        setup.docker,
        setup.cores,
        setup.runs,
        if setup.runs == 1 { "" } else { "s" },
        if setup.quick {
            ", --quick contexts"
        } else {
            ""
        },
    );
    out.push_str(
        "- cold: empty local state (inlay: fresh store; docker: every image removed and \
         `docker builder prune -af`); both pull the busybox base from the local registry.\n\
         - cached: the image was built and pushed with its inline cache, local state wiped, then \
         the measured job rebuilds with `--cache-from` the pushed image and pushes again.\n\
         - peak memory: summed RSS of the process tree, sampled every 20 ms; inlay: `inlay` and \
         its children (runc, the RUN processes); docker: the `docker` client, dockerd, containerd \
         and runc, minus dockerd's and containerd's idle RSS just before the build.\n\
         - fetched: body bytes of the registry's successful GET responses during the job (its \
         access log). Ratios are inlay/docker (below 1: inlay is smaller or faster).\n\n",
    );
    out.push_str(
        "| context | build | wall inlay | wall docker | ratio | peak MiB inlay | peak MiB docker | ratio | fetched MiB inlay | fetched MiB docker | ratio | steps cached inlay / docker |\n\
         | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
    );
    for row in rows {
        let (i, d) = (&row.inlay, &row.docker);
        let _ = writeln!(
            out,
            "| {} | {} | {:.2}s | {:.2}s | {} | {:.1} | {:.1} | {} | {:.2} | {:.2} | {} | {} / {} |",
            row.context,
            row.scenario,
            i.wall.as_secs_f64(),
            d.wall.as_secs_f64(),
            ratio(i.wall.as_secs_f64(), d.wall.as_secs_f64()),
            mib(i.peak),
            mib(d.peak),
            ratio(as_f64(i.peak), as_f64(d.peak)),
            mib(i.fetched),
            mib(d.fetched),
            ratio(as_f64(i.fetched), as_f64(d.fetched)),
            i.hits,
            d.hits,
        );
    }
    out.push_str("\nContexts:\n");
    let mut seen = Vec::new();
    for row in rows {
        if !seen.contains(&&row.context) {
            seen.push(&row.context);
            let _ = writeln!(out, "- {}: {}", row.context, row.description);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_ratios() {
        assert_eq!(median(vec![3, 1, 2]), 2);
        assert_eq!(median(vec![4, 1, 3, 2]), 2);
        assert_eq!(median::<u64>(vec![]), 0);
        assert_eq!(ratio(1.0, 4.0), "0.25");
        assert_eq!(ratio(0.0, 0.0), "–");
        assert_eq!(ratio(1.0, 0.0), "∞");
    }

    #[test]
    fn table_renders() {
        let context = BenchContext {
            name: "run-chain",
            description: "40 RUN".to_owned(),
            dir: std::path::PathBuf::new(),
        };
        let figures = |secs| Figures {
            wall: Duration::from_secs(secs),
            peak: 10 << 20,
            fetched: 0,
            requests: 0,
            hits: "0/40".to_owned(),
        };
        let row = Row::median(&context, "cold", &[(figures(2), figures(4))]);
        let text = render(
            &[row],
            &Setup {
                runs: 1,
                quick: false,
                cores: 2,
                inlay_commit: "abc".to_owned(),
                docker: "Docker version 20.10".to_owned(),
            },
        );
        assert!(
            text.contains("| run-chain | cold | 2.00s | 4.00s | 0.50 | 10.0 | 10.0 | 1.00 |"),
            "{text}"
        );
        assert!(text.contains("- run-chain: 40 RUN"));
    }
}
