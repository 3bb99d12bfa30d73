//! Reading every BuildKit variant of the cache config JSON and writing it canonically.
//!
//! Decoding follows Go's lenient rules (missing or `null` fields take their zero value, unknown
//! keys are ignored, an absent `parent` is 0) and then refuses what BuildKit's parser refuses:
//! links out of range, loops, empty input sets (spec section 2.6). Encoding writes BuildKit's
//! canonical form (spec sections 2.3 and 2.4): records sorted, indexes rewritten, compact JSON,
//! `layer`/`link`/`createdAt` always present, Go string escaping.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt::Write as _;

use base64::Engine as _;
use serde::Deserialize;

use crate::Digest;
use crate::cache::record::{
    CacheConfig, CacheInput, CacheLayer, CacheRecord, CacheResult, ChainedResult, LayerAnnotations,
    RecordGraph,
};
use crate::cache::{CacheRecordError, Timestamp};
use crate::gojson::{self, ControlEscapes};

#[derive(Deserialize)]
struct WireConfig {
    #[serde(default)]
    layers: Option<Vec<WireLayer>>,
    #[serde(default)]
    records: Option<Vec<WireRecord>>,
}

#[derive(Deserialize)]
struct WireLayer {
    #[serde(default)]
    blob: Option<String>,
    #[serde(default)]
    parent: Option<i64>,
    #[serde(default)]
    annotations: Option<WireAnnotations>,
}

#[derive(Deserialize)]
struct WireAnnotations {
    #[serde(default, rename = "mediaType")]
    media_type: Option<String>,
    #[serde(default, rename = "diffID")]
    diff_id: Option<String>,
    #[serde(default)]
    size: Option<i64>,
    #[serde(default, rename = "createdAt")]
    created_at: Option<String>,
}

#[derive(Deserialize)]
struct WireRecord {
    #[serde(default)]
    layers: Option<Vec<WireResult>>,
    #[serde(default)]
    chains: Option<Vec<WireChain>>,
    #[serde(default)]
    digest: Option<String>,
    #[serde(default)]
    inputs: Option<Vec<Option<Vec<WireInput>>>>,
}

#[derive(Deserialize)]
struct WireResult {
    #[serde(default)]
    layer: Option<i64>,
    #[serde(default, rename = "createdAt")]
    created_at: Option<String>,
}

#[derive(Deserialize)]
struct WireChain {
    #[serde(default)]
    layers: Option<Vec<i64>>,
    #[serde(default, rename = "createdAt")]
    created_at: Option<String>,
}

#[derive(Deserialize)]
struct WireInput {
    #[serde(default)]
    selector: Option<String>,
    #[serde(default)]
    link: Option<i64>,
}

/// How many layers result indexes may address while decoding.
#[derive(Clone, Copy)]
enum LayerSpace {
    /// Inline cache: image layer positions, only known to the importer.
    Image,
    /// Registry cache config: the `layers` table of this many entries.
    Table(usize),
}

fn parse_time(text: Option<&str>, record: usize) -> Result<Timestamp, CacheRecordError> {
    match text {
        None => Ok(Timestamp::ZERO),
        Some(text) => text
            .parse()
            .map_err(|source| CacheRecordError::BadResultTime { record, source }),
    }
}

fn layer_index(layer: i64, record: usize, space: LayerSpace) -> Result<usize, CacheRecordError> {
    let index =
        usize::try_from(layer).map_err(|_| CacheRecordError::NegativeLayer { record, layer })?;
    match space {
        LayerSpace::Table(layers) if index >= layers => Err(CacheRecordError::LayerOutOfRange {
            record,
            layer,
            layers,
        }),
        _ => Ok(index),
    }
}

fn decode_records(
    wire: Vec<WireRecord>,
    space: LayerSpace,
) -> Result<RecordGraph, CacheRecordError> {
    let count = wire.len();
    let mut records = Vec::with_capacity(count);
    for (r, w) in wire.into_iter().enumerate() {
        let digest = match w.digest.as_deref() {
            None | Some("") => return Err(CacheRecordError::MissingDigest { record: r }),
            Some(text) => text
                .parse::<Digest>()
                .map_err(|source| CacheRecordError::BadDigest { record: r, source })?,
        };
        let mut inputs = Vec::new();
        for (i, alternatives) in w.inputs.unwrap_or_default().into_iter().enumerate() {
            let alternatives = alternatives.unwrap_or_default();
            if alternatives.is_empty() {
                return Err(CacheRecordError::EmptyInput {
                    record: r,
                    input: i,
                });
            }
            let mut links = Vec::with_capacity(alternatives.len());
            for (a, input) in alternatives.into_iter().enumerate() {
                let raw = input.link.unwrap_or(0);
                let link = usize::try_from(raw).ok().filter(|&l| l < count).ok_or(
                    CacheRecordError::LinkOutOfRange {
                        record: r,
                        input: i,
                        link: raw,
                        records: count,
                    },
                )?;
                let selector = match input.selector.as_deref() {
                    None | Some("") => None,
                    Some(text) => Some(text.parse::<Digest>().map_err(|source| {
                        CacheRecordError::BadSelector {
                            record: r,
                            input: i,
                            alternative: a,
                            source,
                        }
                    })?),
                };
                links.push(CacheInput { link, selector });
            }
            inputs.push(links);
        }
        let mut results = Vec::new();
        for result in w.layers.unwrap_or_default() {
            results.push(CacheResult {
                layer: layer_index(result.layer.unwrap_or(0), r, space)?,
                created_at: parse_time(result.created_at.as_deref(), r)?,
            });
        }
        let mut chains = Vec::new();
        for chain in w.chains.unwrap_or_default() {
            let layers = chain
                .layers
                .unwrap_or_default()
                .into_iter()
                .map(|l| layer_index(l, r, space))
                .collect::<Result<_, _>>()?;
            chains.push(ChainedResult {
                layers,
                created_at: parse_time(chain.created_at.as_deref(), r)?,
            });
        }
        records.push(CacheRecord {
            digest,
            inputs,
            results,
            chains,
        });
    }
    RecordGraph::new(records)
}

fn decode_layers(wire: Vec<WireLayer>) -> Result<Vec<CacheLayer>, CacheRecordError> {
    let count = wire.len();
    let mut layers = Vec::with_capacity(count);
    for (l, w) in wire.into_iter().enumerate() {
        let blob = match w.blob.as_deref() {
            None | Some("") => return Err(CacheRecordError::MissingBlob { layer: l }),
            Some(text) => {
                text.parse::<Digest>()
                    .map_err(|source| CacheRecordError::BadLayerDigest {
                        layer: l,
                        field: "blob",
                        source,
                    })?
            }
        };
        // Go omits `parent` when it is 0, so absence means 0, and -1 means "no parent".
        let raw = w.parent.unwrap_or(0);
        let parent = if raw == -1 {
            None
        } else {
            Some(usize::try_from(raw).ok().filter(|&p| p < count).ok_or(
                CacheRecordError::ParentOutOfRange {
                    layer: l,
                    parent: raw,
                    layers: count,
                },
            )?)
        };
        let annotations = match w.annotations {
            None => None,
            Some(a) => Some(LayerAnnotations {
                media_type: a.media_type.unwrap_or_default(),
                diff_id: match a.diff_id.as_deref() {
                    None | Some("") => None,
                    Some(text) => Some(text.parse::<Digest>().map_err(|source| {
                        CacheRecordError::BadLayerDigest {
                            layer: l,
                            field: "diffID",
                            source,
                        }
                    })?),
                },
                size: a.size.unwrap_or(0),
                created_at: match a.created_at.as_deref() {
                    None => Timestamp::ZERO,
                    Some(text) => text
                        .parse()
                        .map_err(|source| CacheRecordError::BadLayerTime { layer: l, source })?,
                },
            }),
        };
        layers.push(CacheLayer {
            blob,
            parent,
            annotations,
        });
    }
    Ok(layers)
}

impl RecordGraph {
    /// Decodes the value of the image config key `moby.buildkit.cache.v0`: standard padded
    /// base64 of a JSON array of records (spec section 3.5). Result layer indexes are image
    /// layer positions.
    pub fn from_inline(value: &str) -> Result<RecordGraph, CacheRecordError> {
        let json = base64::engine::general_purpose::STANDARD
            .decode(value)
            .map_err(|source| CacheRecordError::Base64 { source })?;
        RecordGraph::from_json(&json)
    }

    /// Decodes a JSON array of records (the decoded inline value).
    pub fn from_json(json: &[u8]) -> Result<RecordGraph, CacheRecordError> {
        let wire: Option<Vec<WireRecord>> =
            serde_json::from_slice(json).map_err(|source| CacheRecordError::Json { source })?;
        decode_records(wire.unwrap_or_default(), LayerSpace::Image)
    }

    /// The canonical inline value: standard padded base64 of [`RecordGraph::to_json`].
    pub fn to_inline(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.to_json())
    }

    /// The canonical compact JSON array of the records, as BuildKit writes it
    /// (see [`RecordGraph::canonical`]).
    pub fn to_json(&self) -> String {
        let canonical = self.canonical();
        let mut out = String::new();
        write_records(&mut out, canonical.records());
        out
    }

    /// The same graph in BuildKit's canonical order (spec section 2.4): records sorted by
    /// digest, ties broken by fewer inputs, then per input fewer alternatives, then by each
    /// alternative's selector and linked record digest; links rewritten to the new positions and
    /// each input's alternatives sorted by link.
    ///
    /// BuildKit's own tie-break is not a strict order (it compares a record's input count with
    /// itself, and looks only at the first alternative), so where its order is undefined this
    /// one goes on comparing the whole structure below each record. Records identical in
    /// digest, links (structurally) and results are merged, as BuildKit's exporter merges them
    /// (spec section 2.5), and an input lists each (link, selector) once, since BuildKit keeps
    /// them in a set. The result does not depend on the order of the input.
    #[must_use]
    pub fn canonical(&self) -> RecordGraph {
        let records = self.records();
        let fingerprints = fingerprints(self);
        // Merge structurally identical records.
        let mut representative: HashMap<&Digest, usize> = HashMap::new();
        let mut merged_into = Vec::with_capacity(records.len());
        let mut unique = Vec::new();
        for (r, fingerprint) in fingerprints.iter().enumerate() {
            let rep = *representative.entry(fingerprint).or_insert_with(|| {
                unique.push(r);
                r
            });
            merged_into.push(rep);
        }
        // Point every link at its representative; BuildKit keeps an input's links in a set,
        // so a link that became a duplicate through merging is kept once.
        let merged: HashMap<usize, CacheRecord> = unique
            .iter()
            .map(|&r| {
                let mut record = records[r].clone();
                for alternatives in &mut record.inputs {
                    for a in alternatives.iter_mut() {
                        a.link = merged_into[a.link];
                    }
                    alternatives.sort();
                    alternatives.dedup();
                }
                (r, record)
            })
            .collect();
        let sort_key = |r: usize| {
            let record = &merged[&r];
            let inputs: Vec<(usize, Vec<(&str, &str)>)> = record
                .inputs
                .iter()
                .map(|alternatives| {
                    let mut alts: Vec<(&str, &str)> = alternatives
                        .iter()
                        .map(|a| {
                            (
                                a.selector.as_ref().map_or("", Digest::as_str),
                                records[a.link].digest.as_str(),
                            )
                        })
                        .collect();
                    alts.sort_unstable();
                    (alternatives.len(), alts)
                })
                .collect();
            (record.digest.as_str(), record.inputs.len(), inputs)
        };
        unique.sort_by(|&a, &b| {
            sort_key(a)
                .cmp(&sort_key(b))
                .then_with(|| fingerprints[a].cmp(&fingerprints[b]))
        });
        let mut new_index = vec![0usize; records.len()];
        for (position, &r) in unique.iter().enumerate() {
            new_index[r] = position;
        }
        let out = unique
            .iter()
            .map(|&r| {
                let mut record = merged[&r].clone();
                for alternatives in &mut record.inputs {
                    for a in alternatives.iter_mut() {
                        a.link = new_index[a.link];
                    }
                    alternatives.sort();
                }
                record
            })
            .collect();
        RecordGraph::new(out).expect("reordering a valid graph keeps it valid")
    }
}

/// A digest of each record's whole structure: its digest, results, and for each input the set
/// of (selector, fingerprint of the linked record). Equal fingerprints mean
/// interchangeable records.
fn fingerprints(graph: &RecordGraph) -> Vec<Digest> {
    let records = graph.records();
    let mut fingerprints: Vec<Option<Digest>> = vec![None; records.len()];
    for r in graph.topological_order() {
        let record = &records[r];
        let mut text = String::new();
        text.push_str(record.digest.as_str());
        for alternatives in &record.inputs {
            let mut alts: Vec<String> = alternatives
                .iter()
                .map(|a| {
                    let linked = fingerprints[a.link]
                        .as_ref()
                        .expect("topological order visits links first");
                    format!(
                        "{}>{}",
                        a.selector.as_ref().map_or("", Digest::as_str),
                        linked
                    )
                })
                .collect();
            alts.sort();
            alts.dedup();
            text.push_str("|i");
            for alt in alts {
                text.push(',');
                text.push_str(&alt);
            }
        }
        for result in &record.results {
            write!(text, "|r{}@{}", result.layer, result.created_at)
                .expect("writing to a String cannot fail");
        }
        for chain in &record.chains {
            write!(text, "|c{:?}@{}", chain.layers, chain.created_at)
                .expect("writing to a String cannot fail");
        }
        fingerprints[r] = Some(Digest::sha256_of(text.as_bytes()));
    }
    fingerprints
        .into_iter()
        .map(|f| f.expect("topological order visits every record"))
        .collect()
}

fn write_records(out: &mut String, records: &[CacheRecord]) {
    let esc = ControlEscapes::default();
    out.push('[');
    for (r, record) in records.iter().enumerate() {
        if r > 0 {
            out.push(',');
        }
        out.push('{');
        // Field order and omitempty follow BuildKit's CacheRecord struct (spec section 2.2).
        let mut first = true;
        let mut key = |out: &mut String, name: &str| {
            if !first {
                out.push(',');
            }
            first = false;
            gojson::write_string(out, name, esc);
            out.push(':');
        };
        if !record.results.is_empty() {
            key(out, "layers");
            out.push('[');
            for (i, result) in record.results.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write!(
                    out,
                    "{{\"layer\":{},\"createdAt\":\"{}\"}}",
                    result.layer, result.created_at
                )
                .expect("writing to a String cannot fail");
            }
            out.push(']');
        }
        if !record.chains.is_empty() {
            key(out, "chains");
            out.push('[');
            for (i, chain) in record.chains.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"layers\":[");
                let indexes: Vec<String> = chain.layers.iter().map(ToString::to_string).collect();
                out.push_str(&indexes.join(","));
                write!(out, "],\"createdAt\":\"{}\"}}", chain.created_at)
                    .expect("writing to a String cannot fail");
            }
            out.push(']');
        }
        key(out, "digest");
        gojson::write_string(out, record.digest.as_str(), esc);
        if !record.inputs.is_empty() {
            key(out, "inputs");
            out.push('[');
            for (i, alternatives) in record.inputs.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push('[');
                for (a, input) in alternatives.iter().enumerate() {
                    if a > 0 {
                        out.push(',');
                    }
                    out.push('{');
                    if let Some(selector) = &input.selector {
                        out.push_str("\"selector\":");
                        gojson::write_string(out, selector.as_str(), esc);
                        out.push(',');
                    }
                    write!(out, "\"link\":{}}}", input.link)
                        .expect("writing to a String cannot fail");
                }
                out.push(']');
            }
            out.push(']');
        }
        out.push('}');
    }
    out.push(']');
}

impl CacheConfig {
    /// Decodes a registry cache config blob (`{"layers":[...],"records":[...]}`), any BuildKit
    /// version: results in the `layers` form, the `chains` form, or both.
    pub fn from_json(json: &[u8]) -> Result<CacheConfig, CacheRecordError> {
        let wire: Option<WireConfig> =
            serde_json::from_slice(json).map_err(|source| CacheRecordError::Json { source })?;
        let (layers, records) = match wire {
            Some(w) => (w.layers.unwrap_or_default(), w.records.unwrap_or_default()),
            None => (Vec::new(), Vec::new()),
        };
        let layers = decode_layers(layers)?;
        let graph = decode_records(records, LayerSpace::Table(layers.len()))?;
        CacheConfig::new(layers, graph)
    }

    /// The canonical compact JSON, as BuildKit writes a cache config blob.
    pub fn to_json(&self) -> String {
        let canonical = self.canonical();
        let esc = ControlEscapes::default();
        let mut out = String::from("{");
        if !canonical.layers().is_empty() {
            out.push_str("\"layers\":[");
            for (l, layer) in canonical.layers().iter().enumerate() {
                if l > 0 {
                    out.push(',');
                }
                out.push_str("{\"blob\":");
                gojson::write_string(&mut out, layer.blob.as_str(), esc);
                match layer.parent {
                    // Go's omitempty drops a parent of 0.
                    Some(0) => {}
                    Some(p) => {
                        write!(out, ",\"parent\":{p}").expect("writing to a String cannot fail");
                    }
                    None => out.push_str(",\"parent\":-1"),
                }
                if let Some(a) = &layer.annotations {
                    out.push_str(",\"annotations\":{");
                    let mut fields = Vec::new();
                    if !a.media_type.is_empty() {
                        fields.push(format!("\"mediaType\":{}", gojson::quote(&a.media_type)));
                    }
                    if let Some(diff_id) = &a.diff_id {
                        fields.push(format!("\"diffID\":{}", gojson::quote(diff_id.as_str())));
                    }
                    if a.size != 0 {
                        fields.push(format!("\"size\":{}", a.size));
                    }
                    fields.push(format!("\"createdAt\":\"{}\"", a.created_at));
                    out.push_str(&fields.join(","));
                    out.push('}');
                }
                out.push('}');
            }
            out.push(']');
        }
        if !canonical.graph().is_empty() {
            if !canonical.layers().is_empty() {
                out.push(',');
            }
            out.push_str("\"records\":");
            write_records(&mut out, canonical.graph().records());
        }
        out.push('}');
        out
    }

    /// The same config in canonical order: layers sorted by blob then by their parent chain
    /// (identical layers merged), result indexes and parents rewritten, then the records as
    /// [`RecordGraph::canonical`] orders them (spec section 2.4).
    #[must_use]
    pub fn canonical(&self) -> CacheConfig {
        let layers = self.layers();
        // A layer's identity is its blob and annotations, then its parent's, down to the base.
        // Interning that chain as an id (parents first) makes equal layers cheap to spot and
        // keeps memory linear even for one long chain.
        let ids = layer_identities(layers);
        let compare = |mut a: usize, mut b: usize| loop {
            if ids[a] == ids[b] {
                return Ordering::Equal;
            }
            let here = layers[a]
                .blob
                .as_str()
                .cmp(layers[b].blob.as_str())
                .then_with(|| {
                    compare_annotations(
                        layers[a].annotations.as_ref(),
                        layers[b].annotations.as_ref(),
                    )
                });
            if here != Ordering::Equal {
                return here;
            }
            match (layers[a].parent, layers[b].parent) {
                (Some(pa), Some(pb)) => (a, b) = (pa, pb),
                (parent_a, parent_b) => return parent_a.is_some().cmp(&parent_b.is_some()),
            }
        };
        let mut order: Vec<usize> = (0..layers.len()).collect();
        order.sort_by(|&a, &b| compare(a, b));
        order.dedup_by(|a, b| ids[*a] == ids[*b]);
        let mut position_of_id = HashMap::new();
        for (position, &l) in order.iter().enumerate() {
            position_of_id.insert(ids[l], position);
        }
        let new_index: Vec<usize> = ids.iter().map(|id| position_of_id[id]).collect();
        let new_layers = order
            .iter()
            .map(|&l| CacheLayer {
                parent: layers[l].parent.map(|p| new_index[p]),
                ..layers[l].clone()
            })
            .collect();
        let records = self
            .graph()
            .records()
            .iter()
            .map(|record| {
                let mut record = record.clone();
                for result in &mut record.results {
                    result.layer = new_index[result.layer];
                }
                for chain in &mut record.chains {
                    for l in &mut chain.layers {
                        *l = new_index[*l];
                    }
                }
                record
            })
            .collect();
        let graph = RecordGraph::new(records)
            .expect("renumbering layers keeps the graph valid")
            .canonical();
        CacheConfig::new(new_layers, graph).expect("renumbering layers keeps the config valid")
    }
}

/// A small integer per layer, equal for two layers exactly when their blobs, annotations and
/// whole parent chains are equal. Parents must not loop ([`CacheConfig::new`] checks).
fn layer_identities(layers: &[CacheLayer]) -> Vec<usize> {
    let mut ids: Vec<Option<usize>> = vec![None; layers.len()];
    let mut interned: HashMap<(&Digest, Option<&LayerAnnotations>, Option<usize>), usize> =
        HashMap::new();
    for start in 0..layers.len() {
        // Walk up to the first layer with a known id (or the base), then assign ids downwards.
        let mut pending = Vec::new();
        let mut next = Some(start);
        while let Some(l) = next.filter(|&l| ids[l].is_none()) {
            pending.push(l);
            next = layers[l].parent;
        }
        for &l in pending.iter().rev() {
            let parent_id = layers[l]
                .parent
                .map(|p| ids[p].expect("parents are assigned before children"));
            let key = (&layers[l].blob, layers[l].annotations.as_ref(), parent_id);
            let fresh = interned.len();
            ids[l] = Some(*interned.entry(key).or_insert(fresh));
        }
    }
    ids.into_iter()
        .map(|id| id.expect("every layer gets an id"))
        .collect()
}

fn compare_annotations(a: Option<&LayerAnnotations>, b: Option<&LayerAnnotations>) -> Ordering {
    let key = |x: Option<&LayerAnnotations>| {
        x.map(|x| {
            (
                x.media_type.clone(),
                x.diff_id.as_ref().map(ToString::to_string),
                x.size,
                x.created_at.unix_nanos(),
                x.created_at.offset_minutes(),
            )
        })
    };
    key(a).cmp(&key(b))
}
