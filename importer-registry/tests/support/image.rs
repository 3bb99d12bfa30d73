//! Images with inline caches, registry caches and stages artifacts, pushed to the test registry.

use bytes::Bytes;
use inlay_core::cache::artifact::CacheArtifact;
use inlay_core::descriptor::ANNOTATION_UNCOMPRESSED;
use inlay_core::{Descriptor, Digest, Platform, Reference, media_types};
use inlay_registry::{BlobSource, Client};
use inlay_testkit::image::{manifest_descriptor, oci_index, oci_manifest, random_bytes};
use serde_json::{Value, json};

/// A fake layer: random "compressed" bytes and a made-up diffID (never checked: the importer
/// downloads no layer).
#[derive(Clone)]
pub struct Layer {
    pub descriptor: Descriptor,
    pub bytes: Bytes,
    pub diff_id: Digest,
}

pub fn layer(seed: u64, len: usize) -> Layer {
    let bytes = Bytes::from(random_bytes(seed, len));
    Layer {
        descriptor: Descriptor::of_bytes(media_types::OCI_LAYER_GZIP, &bytes),
        diff_id: Digest::sha256_of(format!("diff-{seed}").as_bytes()),
        bytes,
    }
}

/// An image: config JSON (free-form) and layers.
pub struct TestImage {
    pub layers: Vec<Layer>,
    pub config: Bytes,
    pub manifest: Bytes,
    pub platform: Platform,
}

impl TestImage {
    /// An image of `layers` whose config is `config` with `rootfs.diff_ids` set to the layers'.
    pub fn new(layers: Vec<Layer>, mut config: Value, platform: Platform) -> TestImage {
        config["rootfs"] = json!({
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>(),
        });
        config["os"] = json!(platform.os);
        config["architecture"] = json!(platform.architecture);
        TestImage::raw(layers, Bytes::from(config.to_string()), platform)
    }

    /// An image whose config bytes are taken as they are.
    pub fn raw(layers: Vec<Layer>, config: Bytes, platform: Platform) -> TestImage {
        let config_desc = Descriptor::of_bytes(media_types::OCI_CONFIG, &config);
        let manifest = oci_manifest(&config_desc, layers.iter().map(|l| &l.descriptor));
        TestImage {
            layers,
            config,
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

    pub async fn push(&self, client: &Client, reference: &Reference) {
        let config = Descriptor::of_bytes(media_types::OCI_CONFIG, &self.config);
        let mut blobs = vec![(config, BlobSource::Bytes(self.config.clone()))];
        blobs.extend(
            self.layers
                .iter()
                .map(|l| (l.descriptor.clone(), BlobSource::Bytes(l.bytes.clone()))),
        );
        client.push_blobs(reference, blobs).await.unwrap();
        let digest = client
            .put_manifest(reference, media_types::OCI_MANIFEST, self.manifest.clone())
            .await
            .unwrap();
        assert_eq!(digest, self.digest());
    }
}

/// Pushes an OCI index over `manifests` under `reference`.
pub async fn push_index(
    client: &Client,
    reference: &Reference,
    manifests: &[Descriptor],
) -> Digest {
    client
        .put_manifest(reference, media_types::OCI_INDEX, oci_index(manifests))
        .await
        .unwrap()
}

/// The layer descriptor as a cache container lists it: with its diffID.
pub fn annotated(layer: &Layer) -> Descriptor {
    let mut d = layer.descriptor.clone();
    d.annotations
        .insert(ANNOTATION_UNCOMPRESSED.into(), layer.diff_id.to_string());
    d
}

/// A cache config blob and its descriptor.
pub fn cache_config(json: &str) -> (Descriptor, Bytes) {
    let bytes = Bytes::copy_from_slice(json.as_bytes());
    (
        Descriptor::of_bytes(media_types::BUILDKIT_CACHE_CONFIG, &bytes),
        bytes,
    )
}

async fn push_blobs(
    client: &Client,
    reference: &Reference,
    layers: &[Layer],
    config: &(Descriptor, Bytes),
) {
    let mut blobs = vec![(config.0.clone(), BlobSource::Bytes(config.1.clone()))];
    blobs.extend(
        layers
            .iter()
            .map(|l| (l.descriptor.clone(), BlobSource::Bytes(l.bytes.clone()))),
    );
    client.push_blobs(reference, blobs).await.unwrap();
}

/// A BuildKit registry cache in the index form: layer blobs, then the cache config last.
pub async fn push_registry_cache_index(
    client: &Client,
    reference: &Reference,
    layers: &[Layer],
    config: &(Descriptor, Bytes),
) -> Digest {
    push_blobs(client, reference, layers, config).await;
    let mut manifests: Vec<Descriptor> = layers.iter().map(annotated).collect();
    manifests.push(config.0.clone());
    push_index(client, reference, &manifests).await
}

/// A BuildKit v0.12+ registry cache in the image-manifest form.
pub async fn push_registry_cache_manifest(
    client: &Client,
    reference: &Reference,
    layers: &[Layer],
    config: &(Descriptor, Bytes),
) -> Digest {
    push_blobs(client, reference, layers, config).await;
    let bytes = oci_manifest(&config.0, layers.iter().map(annotated));
    client
        .put_manifest(reference, media_types::OCI_MANIFEST, bytes)
        .await
        .unwrap()
}

/// Pushes a stages artifact for `subject` (by digest) and lists it under the referrers tag
/// (the test registry has no referrers API).
pub async fn push_stages_artifact(
    client: &Client,
    reference: &Reference,
    subject: Descriptor,
    layers: &[Layer],
    config: &(Descriptor, Bytes),
) -> Digest {
    push_blobs(client, reference, layers, config).await;
    let artifact = CacheArtifact::new(
        subject.clone(),
        config.0.clone(),
        layers.iter().map(annotated).collect(),
    );
    let bytes = artifact.to_bytes();
    let digest = client
        .put_manifest(
            &reference.with_digest(Digest::sha256_of(&bytes)),
            media_types::OCI_MANIFEST,
            bytes.clone().into(),
        )
        .await
        .unwrap();
    let mut entry = Descriptor::of_bytes(media_types::OCI_MANIFEST, &bytes);
    entry.artifact_type = artifact.to_manifest().artifact_type;
    let tag = inlay_registry::referrers_tag(&subject.digest);
    push_index(client, &reference.with_tag(&tag), &[entry]).await;
    digest
}
