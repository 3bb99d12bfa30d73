//! Any bytes as a registry cache config blob (`{"layers":[...],"records":[...]}`): decoding never
//! panics, and whatever decodes re-encodes to a canonical form that decodes again to the same
//! canonical form.
#![no_main]

use std::collections::HashMap;

use inlay_core::cache::{CacheConfig, CacheStore};
use inlay_core::{Descriptor, Digest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(config) = CacheConfig::from_json(data) else {
        return;
    };
    let json = config.to_json();
    let again = CacheConfig::from_json(json.as_bytes())
        .unwrap_or_else(|e| panic!("canonical JSON does not decode: {e}\n{json}"));
    assert_eq!(again.to_json(), json, "canonical JSON is not a fixed point");
    for index in 0..config.layers().len() {
        let _ = config.chain(index);
    }
    let blobs: HashMap<Digest, Descriptor> = config
        .layers()
        .iter()
        .map(|layer| {
            let descriptor = Descriptor::new(
                "application/vnd.oci.image.layer.v1.tar+gzip",
                layer.blob.clone(),
                1,
            );
            (layer.blob.clone(), descriptor)
        })
        .collect();
    let mut store = CacheStore::new();
    store.import_config("fuzz", &config, &blobs);
});
