//! `inlay cache inspect REF`: what cache an image (or a BuildKit registry cache) carries.
//!
//! The reference is imported exactly as `--cache-from` would import it (every platform, stages
//! artifacts too, no layer downloaded), then shown per origin: a table of the records with the
//! layer each result ends at and that layer's history `created_by`, and the links as a tree
//! from the last steps down to the sources. `--format json` prints the same as one JSON
//! document.
//!
//! In the table, RESULT lists every result of a record (`;`-separated); ENDS AT and CREATED BY
//! describe the first.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use inlay_core::descriptor::{ANNOTATION_BUILDKIT_CREATED_AT, ANNOTATION_BUILDKIT_DESCRIPTION};
use inlay_core::{Descriptor, Digest};
use inlay_importer_registry::{
    ImportError, ImportWarning, ImportedCache, ImportedOrigin, Importer, OriginKind, OriginRecords,
};
use inlay_registry::Client;
use serde::Serialize;

use crate::EXIT_USAGE;

/// The exit code when the reference cannot be read or carries no cache.
const EXIT_FAILED: u8 = 1;

/// `inlay cache inspect [--format table|json] REF`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The image or cache reference (`docker.io/library/` and `:latest` are filled in).
    pub reference: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// How `inlay cache inspect` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Tables and a tree, for people.
    Table,
    /// One JSON document, for machines.
    Json,
}

/// Runs the command: 0 with a cache shown, 1 when the reference cannot be read or carries no
/// cache, 2 for a reference that does not parse.
pub fn run(args: &InspectArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("inlay: error: starting the runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let client = match Client::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("inlay: error: registry client: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let imported = runtime.block_on(Importer::new(client).import(&args.reference));
    match imported {
        Ok(cache) => {
            for w in &cache.warnings {
                eprintln!("inlay: warning: {w}");
            }
            let report = Report::of(&cache);
            match args.format {
                Format::Table => print!("{}", report.to_table()),
                Format::Json => println!("{}", report.to_json()),
            }
            ExitCode::SUCCESS
        }
        Err(w) => {
            eprintln!("inlay: error: {}", describe(&w));
            if matches!(w.error, ImportError::Reference { .. }) {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::from(EXIT_FAILED)
            }
        }
    }
}

fn describe(w: &ImportWarning) -> String {
    match &w.error {
        ImportError::NoCache => format!(
            "{} carries no cache: no manifest has an inline cache (moby.buildkit.cache.v0) and it is no BuildKit registry cache",
            w.reference
        ),
        _ => w.to_string(),
    }
}

/// Everything shown, in the JSON shape `--format json` prints.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The normalised reference.
    pub reference: String,
    /// Digest of the top-level manifest or index.
    pub digest: String,
    /// `inline`, `registry` or `registry-manifest`.
    pub kind: &'static str,
    /// One entry per origin (platform manifest, registry cache, stages artifact).
    pub origins: Vec<OriginReport>,
    /// Parts that could not be read.
    pub warnings: Vec<String>,
}

/// One origin.
#[derive(Debug, Serialize)]
pub struct OriginReport {
    /// The cache store label.
    pub label: String,
    /// `inline`, `registry-cache` or `stages-cache`.
    pub kind: &'static str,
    /// The platform, for inline caches.
    pub platform: Option<String>,
    /// The manifest or container the records came from.
    pub manifest: String,
    /// The layer table: image layers (inline) or the cache config's `layers`.
    pub layers: Vec<LayerReport>,
    /// The records, in cache order.
    pub records: Vec<RecordReport>,
}

/// A layer of the table.
#[derive(Debug, Serialize)]
pub struct LayerReport {
    /// Its position.
    pub index: usize,
    /// The blob digest.
    pub digest: String,
    /// The parent position (`null` for a base layer).
    pub parent: Option<usize>,
    /// The diffID, when known.
    pub diff_id: Option<String>,
    /// The blob size, when known.
    pub size: Option<i64>,
    /// The history `created_by` of the step that made it.
    pub created_by: Option<String>,
    /// When the layer was created.
    pub created: Option<String>,
}

/// A record.
#[derive(Debug, Serialize)]
pub struct RecordReport {
    /// Its position.
    pub index: usize,
    /// The record digest.
    pub digest: String,
    /// Per input, the alternative parents.
    pub inputs: Vec<Vec<LinkReport>>,
    /// Its results.
    pub results: Vec<ResultReport>,
}

/// A link to a parent record.
#[derive(Debug, Serialize)]
pub struct LinkReport {
    /// The parent record's position.
    pub record: usize,
    /// The selector, if any.
    pub selector: Option<String>,
}

/// A result: layer positions, base first.
#[derive(Debug, Serialize)]
pub struct ResultReport {
    /// The layer positions.
    pub layers: Vec<usize>,
    /// The layer the result ends at.
    pub ends_at: Option<usize>,
    /// That layer's history `created_by`.
    pub created_by: Option<String>,
    /// When the exporter stored it.
    pub created_at: String,
    /// Whether every layer has a descriptor (results that do not are never loaded).
    pub loadable: bool,
}

fn layer_report(
    index: usize,
    parent: Option<usize>,
    d: Option<&Descriptor>,
    blob: &Digest,
) -> LayerReport {
    LayerReport {
        index,
        digest: blob.to_string(),
        parent,
        diff_id: d
            .and_then(Descriptor::uncompressed_digest)
            .map(|d| d.to_string()),
        size: d.map(|d| d.size),
        created_by: d.and_then(|d| d.annotations.get(ANNOTATION_BUILDKIT_DESCRIPTION).cloned()),
        created: d.and_then(|d| d.annotations.get(ANNOTATION_BUILDKIT_CREATED_AT).cloned()),
    }
}

impl OriginReport {
    fn of(origin: &ImportedOrigin) -> OriginReport {
        let layers: Vec<LayerReport> = match &origin.records {
            OriginRecords::Inline { layers, .. } => layers
                .iter()
                .enumerate()
                .map(|(i, d)| layer_report(i, i.checked_sub(1), Some(d), &d.digest))
                .collect(),
            OriginRecords::Config { config, blobs } => config
                .layers()
                .iter()
                .enumerate()
                .map(|(i, l)| layer_report(i, l.parent, blobs.get(&l.blob), &l.blob))
                .collect(),
            _ => Vec::new(),
        };
        let records = origin
            .graph()
            .records()
            .iter()
            .enumerate()
            .map(|(index, r)| {
                let lists: Vec<(Vec<usize>, inlay_core::Timestamp)> = match &origin.records {
                    OriginRecords::Config { config, .. } => r
                        .results
                        .iter()
                        .map(|res| (config.chain(res.layer), res.created_at))
                        .chain(r.chains.iter().map(|c| (c.layers.clone(), c.created_at)))
                        .collect(),
                    _ => r.image_layer_lists_within(layers.len()),
                };
                let results = lists
                    .into_iter()
                    .map(|(positions, created)| {
                        let ends_at = positions.last().copied();
                        let top = ends_at.and_then(|l| layers.get(l));
                        ResultReport {
                            loadable: positions
                                .iter()
                                .all(|p| layers.get(*p).is_some_and(|l| l.size.is_some())),
                            created_by: top.and_then(|l| l.created_by.clone()),
                            ends_at,
                            layers: positions,
                            created_at: created.to_string(),
                        }
                    })
                    .collect();
                RecordReport {
                    index,
                    digest: r.digest.to_string(),
                    inputs: r
                        .inputs
                        .iter()
                        .map(|alternatives| {
                            alternatives
                                .iter()
                                .map(|a| LinkReport {
                                    record: a.link,
                                    selector: a.selector.as_ref().map(ToString::to_string),
                                })
                                .collect()
                        })
                        .collect(),
                    results,
                }
            })
            .collect();
        OriginReport {
            label: origin.label.clone(),
            kind: match origin.kind {
                OriginKind::Inline => "inline",
                OriginKind::RegistryCache => "registry-cache",
                _ => "stages-cache",
            },
            platform: origin.platform.as_ref().map(ToString::to_string),
            manifest: origin.manifest.to_string(),
            layers,
            records,
        }
    }

    fn title(&self) -> String {
        let what = match (&self.platform, self.kind) {
            (Some(p), _) => p.clone(),
            (None, "registry-cache") => "registry cache".to_owned(),
            (None, _) => "stages cache".to_owned(),
        };
        format!(
            "== {what} (manifest {}, {} layers, {} records)",
            short(&self.manifest),
            self.layers.len(),
            self.records.len()
        )
    }

    fn table(&self, out: &mut String) {
        let mut rows = vec![[
            "#".to_owned(),
            "RECORD".to_owned(),
            "RESULT".to_owned(),
            "ENDS AT".to_owned(),
            "CREATED BY".to_owned(),
        ]];
        for r in &self.records {
            let result = r.results.first();
            let range = match result {
                None if r.inputs.is_empty() => "(root)".to_owned(),
                None => "-".to_owned(),
                Some(_) => r
                    .results
                    .iter()
                    .map(|res| {
                        describe_positions(&res.layers)
                            + if res.loadable { "" } else { " (unloadable)" }
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
            };
            rows.push([
                r.index.to_string(),
                short(&r.digest),
                range,
                result
                    .and_then(|res| res.ends_at)
                    .map_or_else(|| "-".to_owned(), |l| format!("layer {l}")),
                result
                    .and_then(|res| res.created_by.clone())
                    .unwrap_or_default(),
            ]);
        }
        let widths: Vec<usize> = (0..5)
            .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
            .collect();
        for row in rows {
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                if c == 4 {
                    line.push_str(cell);
                } else {
                    let _ = write!(line, "{cell:<w$}  ", w = widths[c]);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }

    fn record_line(&self, r: usize) -> String {
        let Some(record) = self.records.get(r) else {
            return format!("#{r} (missing)");
        };
        let mut line = format!("#{r} {}", short(&record.digest));
        match record.results.first() {
            Some(res) => {
                if let Some(l) = res.ends_at {
                    let _ = write!(line, " -> layer {l}");
                }
                if let Some(by) = &res.created_by {
                    let _ = write!(line, ": {by}");
                }
            }
            None if record.inputs.is_empty() => line.push_str(" (root)"),
            None => {}
        }
        line
    }

    /// The links as a tree from the records nothing links to, down to the roots. A record
    /// reached again is printed once more without its subtree.
    fn tree(&self, out: &mut String) {
        let linked: BTreeSet<usize> = self
            .records
            .iter()
            .flat_map(|r| r.inputs.iter().flatten().map(|l| l.record))
            .collect();
        let mut shown = BTreeSet::new();
        for r in self
            .records
            .iter()
            .map(|r| r.index)
            .filter(|i| !linked.contains(i))
        {
            out.push_str(&self.record_line(r));
            out.push('\n');
            shown.insert(r);
            self.subtree(r, "", &mut shown, out);
        }
    }

    fn subtree(&self, r: usize, prefix: &str, shown: &mut BTreeSet<usize>, out: &mut String) {
        let Some(record) = self.records.get(r) else {
            return;
        };
        let edges: Vec<(usize, &LinkReport)> = record
            .inputs
            .iter()
            .enumerate()
            .flat_map(|(i, alts)| alts.iter().map(move |l| (i, l)))
            .collect();
        for (n, (input, link)) in edges.iter().enumerate() {
            let last = n + 1 == edges.len();
            let (branch, next) = if last {
                ("└── ", "    ")
            } else {
                ("├── ", "│   ")
            };
            let selector = link
                .selector
                .as_ref()
                .map(|s| format!(" [selector {}]", short(s)))
                .unwrap_or_default();
            let again = !shown.insert(link.record);
            let _ = writeln!(
                out,
                "{prefix}{branch}input {input}{selector}: {}{}",
                self.record_line(link.record),
                if again { " (see above)" } else { "" }
            );
            if !again {
                self.subtree(link.record, &format!("{prefix}{next}"), shown, out);
            }
        }
    }
}

/// `layers 0-3`, `layer 2`, `layers 1,4`.
fn describe_positions(positions: &[usize]) -> String {
    match positions {
        [] => "no layers".to_owned(),
        [one] => format!("layer {one}"),
        _ if positions.windows(2).all(|w| w[1] == w[0] + 1) => {
            format!("layers {}-{}", positions[0], positions[positions.len() - 1])
        }
        _ => format!(
            "layers {}",
            positions
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
    }
}

/// `sha256:` and the first 12 hex digits.
fn short(digest: &str) -> String {
    match digest.split_once(':') {
        Some((alg, hex)) => format!("{alg}:{}", &hex[..hex.len().min(12)]),
        None => digest.to_owned(),
    }
}

impl Report {
    /// The report of an imported cache.
    pub fn of(cache: &ImportedCache) -> Report {
        Report {
            reference: cache.reference.to_string(),
            digest: cache.digest.to_string(),
            kind: cache.kind.name(),
            origins: cache.origins.iter().map(OriginReport::of).collect(),
            warnings: cache.warnings.iter().map(ToString::to_string).collect(),
        }
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report is plain data")
    }

    /// Tables and trees.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "reference  {}", self.reference);
        let _ = writeln!(out, "digest     {}", self.digest);
        let _ = writeln!(out, "kind       {}", self.kind);
        for origin in &self.origins {
            out.push('\n');
            out.push_str(&origin.title());
            out.push('\n');
            origin.table(&mut out);
            out.push_str("\nlinks:\n");
            origin.tree(&mut out);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_digests_are_shortened() {
        assert_eq!(describe_positions(&[0, 1, 2]), "layers 0-2");
        assert_eq!(describe_positions(&[3]), "layer 3");
        assert_eq!(describe_positions(&[0, 3]), "layers 0,3");
        assert_eq!(describe_positions(&[]), "no layers");
        assert_eq!(short("sha256:0123456789abcdef"), "sha256:0123456789ab");
        assert_eq!(short("odd"), "odd");
    }
}
