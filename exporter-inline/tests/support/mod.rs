//! The test harness: the real registry and a counting proxy (from `inlay-testkit`), and small
//! images built in the test.
// Each test binary includes this module and uses a different part of it.
#![allow(unused_imports, dead_code, clippy::unwrap_used)]

pub use inlay_testkit::{http, proxy, reference};

/// The registry the exporter's tests push to: open, started by `TestRegistry::start()`.
pub mod registry {
    pub use inlay_testkit::registry::OpenRegistry as TestRegistry;
}

use std::io::Write as _;
use std::time::Duration;

use bytes::Bytes;
use inlay_core::cache::{CacheInput, CacheRecord, CacheResult, RecordGraph, Timestamp};
use inlay_core::descriptor::ANNOTATION_UNCOMPRESSED;
use inlay_core::{Descriptor, Digest, media_types};
use inlay_exporter_inline::{
    BlobLocation, BlobMap, ConfigInput, ImageInput, Layer, ManifestFormat,
};
use inlay_registry::{Client, ClientConfig, CredentialStore, RetryPolicy};

/// A client with quick backoff so that retries cost milliseconds.
pub fn client() -> Client {
    let config = ClientConfig {
        retry: RetryPolicy {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            max_retry_after: Duration::from_secs(1),
        },
        ..ClientConfig::default()
    };
    Client::new(config, CredentialStore::empty()).unwrap()
}

/// A gzip-compressed tar holding one file: (layer, blob bytes). Deterministic for a given input.
pub fn gzip_layer(name: &str, content: &[u8]) -> (Layer, Bytes) {
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, content).unwrap();
    let tar = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let blob = gz.finish().unwrap();
    let layer = Layer {
        descriptor: Descriptor::of_bytes(media_types::DOCKER_LAYER_GZIP, &blob),
        diff_id: Digest::sha256_of(&tar),
    };
    (layer, Bytes::from(blob))
}

/// A layer descriptor carrying its diffID annotation (as cache artifacts want it).
pub fn annotated(layer: &Layer) -> Descriptor {
    let mut d = layer.descriptor.clone();
    d.annotations.insert(
        ANNOTATION_UNCOMPRESSED.to_owned(),
        layer.diff_id.to_string(),
    );
    d
}

/// A small inline cache: a source root and a step on it whose result is image layers 0..=top.
pub fn inline_graph(top: usize) -> RecordGraph {
    let root = CacheRecord::root(Digest::sha256_of(b"buildkit.source.v0:test"));
    let mut step = CacheRecord::root(Digest::sha256_of(b"step"));
    step.inputs = vec![vec![CacheInput {
        link: 0,
        selector: None,
    }]];
    step.results = vec![CacheResult {
        layer: top,
        created_at: "2026-11-28T01:02:03.5Z".parse::<Timestamp>().unwrap(),
    }];
    RecordGraph::new(vec![root, step]).unwrap()
}

/// An image of `layers` (named, with content) plus a map locating their bytes in memory.
pub fn image_input(layers: &[(&str, &[u8])], format: ManifestFormat) -> (ImageInput, BlobMap) {
    let mut map = BlobMap::new();
    let mut built = Vec::new();
    for (name, content) in layers {
        let (layer, bytes) = gzip_layer(name, content);
        map.insert(layer.descriptor.digest.clone(), BlobLocation::Bytes(bytes));
        built.push(layer);
    }
    let input = ImageInput {
        config: ConfigInput::Template {
            template: br#"{"os":"linux","architecture":"amd64","config":{"Cmd":["sh"]}}"#.to_vec(),
            history: None,
        },
        inline_cache: Some(inline_graph(built.len().saturating_sub(1))),
        layers: built,
        format,
        annotations: std::collections::BTreeMap::default(),
    };
    (input, map)
}
