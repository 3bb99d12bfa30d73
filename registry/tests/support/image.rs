//! Test images: random layers, a config, an OCI manifest, and indexes over them.

use bytes::Bytes;
use inlay_core::{Descriptor, Digest, Platform, Reference, media_types};
use inlay_registry::{BlobSource, Client, PushOutcome};
use inlay_testkit::image::{manifest_descriptor, oci_index, oci_manifest};
use serde_json::json;

pub use inlay_testkit::image::random_bytes;

pub struct TestImage {
    pub config: (Descriptor, Bytes),
    pub layers: Vec<(Descriptor, Bytes)>,
    pub manifest: Bytes,
    pub platform: Platform,
}

impl TestImage {
    pub fn new(seed: u64, layer_sizes: &[usize], platform: Platform) -> TestImage {
        let layers: Vec<(Descriptor, Bytes)> = layer_sizes
            .iter()
            .enumerate()
            .map(|(i, &n)| {
                let b = Bytes::from(random_bytes(seed * 1000 + i as u64, n));
                (Descriptor::of_bytes(media_types::OCI_LAYER_GZIP, &b), b)
            })
            .collect();
        let diff_ids: Vec<String> = layers.iter().map(|(d, _)| d.digest.to_string()).collect();
        let config = Bytes::from(
            json!({
                "architecture": platform.architecture, "os": platform.os,
                "config": {"Env": [format!("SEED={seed}")]},
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
            })
            .to_string(),
        );
        let config_desc = Descriptor::of_bytes(media_types::OCI_CONFIG, &config);
        let manifest = oci_manifest(&config_desc, layers.iter().map(|(d, _)| d));
        TestImage {
            config: (config_desc, config),
            layers,
            manifest,
            platform,
        }
    }

    pub fn digest(&self) -> Digest {
        Digest::sha256_of(&self.manifest)
    }

    pub fn descriptor(&self) -> Descriptor {
        manifest_descriptor(&self.manifest, &self.platform)
    }

    pub fn blobs(&self) -> Vec<(Descriptor, BlobSource)> {
        std::iter::once(&self.config)
            .chain(self.layers.iter())
            .map(|(d, b)| (d.clone(), BlobSource::Bytes(b.clone())))
            .collect()
    }

    /// Pushes blobs then the manifest under `reference`'s tag.
    pub async fn push(&self, client: &Client, reference: &Reference) -> Vec<PushOutcome> {
        let outcomes = client.push_blobs(reference, self.blobs()).await.unwrap();
        let digest = client
            .put_manifest(reference, media_types::OCI_MANIFEST, self.manifest.clone())
            .await
            .unwrap();
        assert_eq!(digest, self.digest());
        outcomes
    }

    /// Pulls `reference` for this image's platform and checks every byte.
    pub async fn pull_and_check(&self, client: &Client, reference: &Reference) {
        let m = client
            .get_manifest_for_platform(reference, &self.platform)
            .await
            .unwrap();
        assert_eq!(m.bytes, self.manifest);
        assert_eq!(m.digest, self.digest());
        assert_eq!(m.media_type, media_types::OCI_MANIFEST);
        let parsed: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
        let config: Descriptor = serde_json::from_value(parsed["config"].clone()).unwrap();
        let layers: Vec<Descriptor> = serde_json::from_value(parsed["layers"].clone()).unwrap();
        assert_eq!(
            client.get_blob(reference, &config).await.unwrap(),
            self.config.1
        );
        let got = client.pull_blobs(reference, &layers).await.unwrap();
        for (g, (_, want)) in got.iter().zip(&self.layers) {
            assert_eq!(g, want);
        }
    }
}

/// An OCI index over `images`.
pub fn index(images: &[&TestImage]) -> Bytes {
    oci_index(&images.iter().map(|i| i.descriptor()).collect::<Vec<_>>())
}
