//! docker's inline records against inlay's: per record digest, then the inline bytes.
//!
//! Records are compared by digest with their links named by the linked record's digest (not
//! its index), so two graphs that order records differently still compare. A record only one
//! side has is paired, when it can be, with the other side's record for the same Dockerfile step
//! (same result layer, or the same parents), so a mismatch reads "this step: docker's digest
//! vs inlay's, and the pre-image inlay hashed".

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use inlay_core::Digest;
use inlay_core::cache::RecordGraph;

use crate::conformance::seam::InlayRecords;

/// One record with its links named by digest.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RecordView {
    /// Per input, the alternatives as (linked digest, selector).
    inputs: Vec<BTreeSet<(Digest, Option<Digest>)>>,
    /// `layers` results as (layer index, createdAt).
    results: Vec<(usize, String)>,
    /// `chains` results as (layer indexes, createdAt).
    chains: Vec<(Vec<usize>, String)>,
}

impl RecordView {
    fn layer(&self) -> Option<usize> {
        self.results.first().map(|(layer, _)| *layer)
    }

    fn parents(&self) -> BTreeSet<&Digest> {
        self.inputs
            .iter()
            .flatten()
            .map(|(digest, _)| digest)
            .collect()
    }
}

/// The records of a graph by digest, in graph order.
fn views(graph: &RecordGraph) -> Vec<(Digest, RecordView)> {
    let records = graph.records();
    records
        .iter()
        .map(|record| {
            let inputs = record
                .inputs
                .iter()
                .map(|alternatives| {
                    alternatives
                        .iter()
                        .map(|alt| (records[alt.link].digest.clone(), alt.selector.clone()))
                        .collect()
                })
                .collect();
            let results = record
                .results
                .iter()
                .map(|r| (r.layer, r.created_at.to_string()))
                .collect();
            let chains = record
                .chains
                .iter()
                .map(|c| (c.layers.clone(), c.created_at.to_string()))
                .collect();
            (
                record.digest.clone(),
                RecordView {
                    inputs,
                    results,
                    chains,
                },
            )
        })
        .collect()
}

/// How one step (or one record) compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Same digest, links, selectors and results.
    Same,
    /// Same digest; links, selectors or results differ (each line says how).
    Differs(Vec<String>),
    /// inlay's digest differs from docker's record for the same step.
    Replaced,
    /// Only inlay has this record (no docker record could be paired with it).
    InlayOnly,
    /// Only docker has this record.
    DockerOnly,
}

/// One line of the diff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The Dockerfile step, as inlay labelled it (or a description of docker's record).
    pub label: String,
    /// docker's record digest, if docker has one for this step.
    pub docker: Option<Digest>,
    /// inlay's record digest, if inlay has one for this step.
    pub inlay: Option<Digest>,
    /// The verdict.
    pub verdict: Verdict,
    /// The pre-image inlay hashed, shown for mismatches.
    pub pre_image: Option<String>,
}

/// The comparison of one case.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// One row per step or record.
    pub rows: Vec<Row>,
    /// Number of records in docker's value.
    pub docker_records: usize,
    /// Number of records in inlay's value.
    pub inlay_records: usize,
    /// Whether `to_inline()` of both graphs are the same bytes.
    pub bytes_equal: bool,
}

impl Comparison {
    /// Whether inlay reproduced docker exactly.
    pub fn passed(&self) -> bool {
        self.bytes_equal && self.rows.iter().all(|row| row.verdict == Verdict::Same)
    }
}

/// Compares docker's records with inlay's.
pub fn compare(docker: &RecordGraph, inlay: &InlayRecords) -> Comparison {
    let docker_views = views(docker);
    let inlay_views = views(&inlay.graph);
    let docker_by_digest: BTreeMap<&Digest, &RecordView> =
        docker_views.iter().map(|(d, v)| (d, v)).collect();
    let inlay_by_digest: BTreeMap<&Digest, &RecordView> =
        inlay_views.iter().map(|(d, v)| (d, v)).collect();
    let mut labels: BTreeMap<&Digest, &str> = BTreeMap::new();
    let mut pre_images: BTreeMap<&Digest, &str> = BTreeMap::new();
    for step in &inlay.steps {
        labels.entry(&step.record).or_insert(&step.label);
        if let Some(pre) = &step.pre_image {
            pre_images.entry(&step.record).or_insert(pre);
        }
    }
    // inlay's records in step order, then any the steps did not name.
    let mut order: Vec<&Digest> = Vec::new();
    let mut seen: BTreeSet<&Digest> = BTreeSet::new();
    for digest in inlay
        .steps
        .iter()
        .map(|s| &s.record)
        .filter(|d| inlay_by_digest.contains_key(d))
        .chain(inlay_views.iter().map(|(d, _)| d))
    {
        if seen.insert(digest) {
            order.push(digest);
        }
    }
    let mut docker_unpaired: Vec<&Digest> = docker_views
        .iter()
        .map(|(d, _)| d)
        .filter(|d| !inlay_by_digest.contains_key(d))
        .collect();
    let label_of = |digest: &Digest| -> String {
        labels
            .get(digest)
            .map_or_else(|| "(unlabelled record)".to_owned(), |l| (*l).to_owned())
    };
    let mut rows = Vec::new();
    for digest in order {
        let inlay_view = inlay_by_digest[digest];
        let pre_image = pre_images.get(digest).map(|p| (*p).to_owned());
        if let Some(docker_view) = docker_by_digest.get(digest) {
            let differences = differences(docker_view, inlay_view, &label_of);
            let verdict = if differences.is_empty() {
                Verdict::Same
            } else {
                Verdict::Differs(differences)
            };
            rows.push(Row {
                label: label_of(digest),
                docker: Some(digest.clone()),
                inlay: Some(digest.clone()),
                verdict,
                pre_image,
            });
            continue;
        }
        let partner = pair(inlay_view, &docker_unpaired, &docker_by_digest);
        let docker_digest = partner.map(|i| docker_unpaired.remove(i).clone());
        rows.push(Row {
            label: label_of(digest),
            verdict: if docker_digest.is_some() {
                Verdict::Replaced
            } else {
                Verdict::InlayOnly
            },
            docker: docker_digest,
            inlay: Some(digest.clone()),
            pre_image,
        });
    }
    for digest in docker_unpaired {
        let view = docker_by_digest[digest];
        rows.push(Row {
            label: describe_docker_record(digest, view, &docker_views, &label_of),
            docker: Some(digest.clone()),
            inlay: None,
            verdict: Verdict::DockerOnly,
            pre_image: None,
        });
    }
    Comparison {
        rows,
        docker_records: docker.len(),
        inlay_records: inlay.graph.len(),
        bytes_equal: docker.to_inline() == inlay.graph.to_inline(),
    }
}

/// The docker-only record that most likely is the same step as `inlay_view`: one with the same
/// result layer, else one with the same parents (both sides' parents by digest).
fn pair(
    inlay_view: &RecordView,
    candidates: &[&Digest],
    docker: &BTreeMap<&Digest, &RecordView>,
) -> Option<usize> {
    if let Some(layer) = inlay_view.layer() {
        if let Some(i) = candidates
            .iter()
            .position(|d| docker[*d].layer() == Some(layer))
        {
            return Some(i);
        }
    }
    let parents = inlay_view.parents();
    if parents.is_empty() {
        return None;
    }
    candidates
        .iter()
        .position(|d| docker[*d].parents() == parents)
}

fn differences(
    docker: &RecordView,
    inlay: &RecordView,
    label_of: &dyn Fn(&Digest) -> String,
) -> Vec<String> {
    let mut lines = Vec::new();
    if docker.inputs.len() != inlay.inputs.len() {
        lines.push(format!(
            "inputs: docker has {}, inlay has {}",
            docker.inputs.len(),
            inlay.inputs.len()
        ));
    }
    for (i, (d, n)) in docker.inputs.iter().zip(&inlay.inputs).enumerate() {
        if d != n {
            lines.push(format!(
                "input {i}: docker {} | inlay {}",
                links(d, label_of),
                links(n, label_of)
            ));
        }
    }
    if docker.results != inlay.results {
        lines.push(format!(
            "layers: docker {:?} | inlay {:?}",
            docker.results, inlay.results
        ));
    }
    if docker.chains != inlay.chains {
        lines.push(format!(
            "chains: docker {:?} | inlay {:?}",
            docker.chains, inlay.chains
        ));
    }
    lines
}

fn links(
    alternatives: &BTreeSet<(Digest, Option<Digest>)>,
    label_of: &dyn Fn(&Digest) -> String,
) -> String {
    let parts: Vec<String> = alternatives
        .iter()
        .map(|(digest, selector)| {
            let mut s = format!("{} ({})", short(digest), label_of(digest));
            if let Some(selector) = selector {
                let _ = write!(s, " selector {}", short(selector));
            }
            s
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

/// A docker-only record: its links, or for a root (an image key or a content key) the inputs
/// that link to it, which name the step it belongs to.
fn describe_docker_record(
    digest: &Digest,
    view: &RecordView,
    all: &[(Digest, RecordView)],
    label_of: &dyn Fn(&Digest) -> String,
) -> String {
    let mut s = if view.inputs.is_empty() {
        let users: Vec<String> = all
            .iter()
            .flat_map(|(user, v)| {
                v.inputs
                    .iter()
                    .enumerate()
                    .filter(|(_, alts)| alts.iter().any(|(d, _)| d == digest))
                    .map(move |(i, _)| format!("input {i} of {} ({})", short(user), label_of(user)))
            })
            .collect();
        if users.is_empty() {
            "docker root record".to_owned()
        } else {
            format!("docker root record, linked from {}", users.join(", "))
        }
    } else {
        let inputs: Vec<String> = view.inputs.iter().map(|a| links(a, label_of)).collect();
        format!("docker record with inputs {}", inputs.join(" "))
    };
    if let Some(layer) = view.layer() {
        let _ = write!(s, ", result layer {layer}");
    }
    s
}

/// `sha256:` and the first 12 hex digits.
pub fn short(digest: &Digest) -> String {
    let hex = digest.hex();
    format!(
        "{}:{}",
        digest.algorithm().name(),
        hex.get(..12).unwrap_or(hex)
    )
}

/// The readable per-step diff of one case.
pub fn render(case: &str, comparison: &Comparison) -> String {
    let mut out = String::new();
    let same = comparison
        .rows
        .iter()
        .filter(|r| r.verdict == Verdict::Same)
        .count();
    let _ = writeln!(
        out,
        "case {case}: docker {} records, inlay {} records, {same} same, {} not; inline bytes {}",
        comparison.docker_records,
        comparison.inlay_records,
        comparison.rows.len() - same,
        if comparison.bytes_equal {
            "equal"
        } else {
            "differ"
        }
    );
    for row in &comparison.rows {
        let digest_pair = match (&row.docker, &row.inlay) {
            (Some(d), Some(i)) if d == i => short(d),
            (d, i) => format!(
                "docker {} | inlay {}",
                d.as_ref().map_or_else(|| "-".to_owned(), short),
                i.as_ref().map_or_else(|| "-".to_owned(), short)
            ),
        };
        let tag = match &row.verdict {
            Verdict::Same => "ok         ",
            Verdict::Differs(_) => "LINKS      ",
            Verdict::Replaced => "DIGEST     ",
            Verdict::InlayOnly => "INLAY ONLY ",
            Verdict::DockerOnly => "DOCKER ONLY",
        };
        let _ = writeln!(out, "  {tag} {}  {digest_pair}", row.label);
        if let Verdict::Differs(lines) = &row.verdict {
            for line in lines {
                let _ = writeln!(out, "              {line}");
            }
        }
        if row.verdict != Verdict::Same {
            if let Some(pre) = &row.pre_image {
                let _ = writeln!(out, "              inlay pre-image: {pre}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::seam::StepKey;

    fn d(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .unwrap()
    }

    fn graph(json: &str) -> RecordGraph {
        let json = json
            .replace("D1", d('1').as_str())
            .replace("D2", d('2').as_str())
            .replace("D3", d('3').as_str())
            .replace("D4", d('4').as_str())
            .replace("D5", d('5').as_str());
        RecordGraph::from_json(json.as_bytes()).unwrap()
    }

    const T: &str = "2026-11-28T01:00:00Z";

    fn docker() -> RecordGraph {
        graph(&format!(
            r#"[{{"digest":"D1"}},{{"digest":"D2","inputs":[[{{"link":0}}]],"layers":[{{"layer":1,"createdAt":"{T}"}}]}},{{"digest":"D3","inputs":[[{{"link":1}}]],"layers":[{{"layer":2,"createdAt":"{T}"}}]}}]"#
        ))
    }

    fn steps(records: &[(char, &str)]) -> Vec<StepKey> {
        records
            .iter()
            .map(|(c, label)| StepKey {
                label: (*label).to_owned(),
                record: d(*c),
                pre_image: Some(format!("pre-{c}")),
            })
            .collect()
    }

    #[test]
    fn identical_graphs_pass() {
        let inlay = InlayRecords {
            graph: docker(),
            steps: steps(&[('1', "FROM"), ('2', "RUN a"), ('3', "RUN b")]),
        };
        let comparison = compare(&docker(), &inlay);
        assert!(comparison.passed());
        let text = render("same", &comparison);
        assert!(text.starts_with(
            "case same: docker 3 records, inlay 3 records, 3 same, 0 not; inline bytes equal\n"
        ));
        assert!(text.contains("  ok          RUN a  sha256:222222222222\n"));
        assert!(!text.contains("pre-image"));
    }

    #[test]
    fn a_different_digest_is_paired_by_layer_and_shows_the_pre_image() {
        let inlay_graph = graph(&format!(
            r#"[{{"digest":"D1"}},{{"digest":"D2","inputs":[[{{"link":0}}]],"layers":[{{"layer":1,"createdAt":"{T}"}}]}},{{"digest":"D4","inputs":[[{{"link":1}}]],"layers":[{{"layer":2,"createdAt":"{T}"}}]}}]"#
        ));
        let inlay = InlayRecords {
            graph: inlay_graph,
            steps: steps(&[('1', "FROM"), ('2', "RUN a"), ('4', "Dockerfile:3 RUN b")]),
        };
        let comparison = compare(&docker(), &inlay);
        assert!(!comparison.passed());
        let row = &comparison.rows[2];
        assert_eq!(row.verdict, Verdict::Replaced);
        assert_eq!(row.docker, Some(d('3')));
        let text = render("x", &comparison);
        assert!(
            text.contains(
                "  DIGEST      Dockerfile:3 RUN b  docker sha256:333333333333 | inlay sha256:444444444444\n              inlay pre-image: pre-4\n"
            ),
            "{text}"
        );
        assert!(text.contains("inline bytes differ"));
        assert!(!text.contains("DOCKER ONLY"));
    }

    #[test]
    fn same_digest_with_other_links_lists_the_difference() {
        let inlay_graph = graph(&format!(
            r#"[{{"digest":"D1"}},{{"digest":"D5"}},{{"digest":"D2","inputs":[[{{"link":0}}]],"layers":[{{"layer":1,"createdAt":"{T}"}}]}},{{"digest":"D3","inputs":[[{{"link":2}},{{"link":1}}]],"layers":[{{"layer":3,"createdAt":"{T}"}}]}}]"#
        ));
        let inlay = InlayRecords {
            graph: inlay_graph,
            steps: steps(&[
                ('1', "FROM"),
                ('5', "manifest root"),
                ('2', "RUN a"),
                ('3', "RUN b"),
            ]),
        };
        let comparison = compare(&docker(), &inlay);
        let text = render("links", &comparison);
        assert!(
            text.contains("  INLAY ONLY  manifest root  docker - | inlay sha256:555555555555\n"),
            "{text}"
        );
        assert!(
            text.contains("  LINKS       RUN b  sha256:333333333333\n"),
            "{text}"
        );
        assert!(text.contains("input 0: docker [sha256:222222222222 (RUN a)] | inlay [sha256:222222222222 (RUN a), sha256:555555555555 (manifest root)]"), "{text}");
        assert!(
            text.contains(&format!(
                "layers: docker [(2, \"{T}\")] | inlay [(3, \"{T}\")]"
            )),
            "{text}"
        );
    }

    #[test]
    fn records_only_docker_has_are_described() {
        let inlay_graph = graph(r#"[{"digest":"D1"}]"#);
        let inlay = InlayRecords {
            graph: inlay_graph,
            steps: steps(&[('1', "FROM")]),
        };
        let comparison = compare(&docker(), &inlay);
        let text = render("short", &comparison);
        assert!(text.contains("  DOCKER ONLY docker record with inputs [sha256:111111111111 (FROM)], result layer 1  docker sha256:222222222222 | inlay -\n"), "{text}");
        let inlay = InlayRecords {
            graph: graph(r#"[{"digest":"D5"}]"#),
            steps: steps(&[('5', "other")]),
        };
        let text = render("roots", &compare(&docker(), &inlay));
        assert!(text.contains("  DOCKER ONLY docker root record, linked from input 0 of sha256:222222222222 ((unlabelled record))  docker sha256:111111111111 | inlay -\n"), "{text}");
        assert!(text.contains("DOCKER ONLY docker record with inputs [sha256:222222222222 ((unlabelled record))], result layer 2"), "{text}");
    }
}
