//! Image documents for tests, built from `inlay-core` types alone: seeded random bytes, OCI
//! manifests and indexes. Pushing them needs a registry client and stays in each crate's tests.

use std::borrow::Borrow;

use bytes::Bytes;
use inlay_core::{Descriptor, Platform, media_types};
use serde_json::json;

/// `len` bytes from a generator seeded with `seed`: the same seed gives the same bytes.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut bytes = vec![0u8; len];
    rng.fill(&mut bytes);
    bytes
}

/// An OCI image manifest over `config` and `layers`, serialised.
pub fn oci_manifest<D: Borrow<Descriptor>>(
    config: &Descriptor,
    layers: impl IntoIterator<Item = D>,
) -> Bytes {
    let layers: Vec<Descriptor> = layers.into_iter().map(|d| d.borrow().clone()).collect();
    document(&json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_MANIFEST,
        "config": config,
        "layers": layers,
    }))
}

/// An OCI index over `manifests`, serialised.
pub fn oci_index(manifests: &[Descriptor]) -> Bytes {
    document(&json!({
        "schemaVersion": 2,
        "mediaType": media_types::OCI_INDEX,
        "manifests": manifests,
    }))
}

/// The descriptor an index lists for the OCI manifest `manifest` of `platform`.
pub fn manifest_descriptor(manifest: &[u8], platform: &Platform) -> Descriptor {
    let mut descriptor = Descriptor::of_bytes(media_types::OCI_MANIFEST, manifest);
    descriptor.platform = Some(platform.clone());
    descriptor
}

fn document(value: &serde_json::Value) -> Bytes {
    Bytes::from(value.to_string())
}
