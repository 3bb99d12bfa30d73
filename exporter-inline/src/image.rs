//! Image writing: the final config (with the inline cache) and the manifest, as exact bytes.
//!
//! The config goes through [`ConfigPatch`], which rewrites the top level the way BuildKit's image
//! writer does (spec section 3.5: a map of raw values marshalled again, so top-level keys come out
//! sorted and nested values keep the frontend's order). Everything here is a pure function of its
//! input, so the same build gives the same config and manifest digests.

use std::collections::BTreeMap;

use bytes::Bytes;
use inlay_core::cache::RecordGraph;
use inlay_core::image::{
    ConfigPatch, Document, History, INLINE_CACHE_KEY, ImageConfig, ImageManifest, RootFs,
};
use inlay_core::{Descriptor, Digest, media_types};

use crate::error::ExportError;

/// The cap BuildKit puts on the manifests and cache config blobs it imports (`readBlob` in
/// `cache/remotecache/import.go`, spec section 2.6). The image config of an inline cache is
/// read without a cap, but a value this large makes every `--cache-from` pull a megabyte of
/// JSON and will not fit any cache config blob, so it is worth a warning.
pub const BUILDKIT_IMPORT_CAP: usize = 1 << 20;

/// Which manifest and media type family to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ManifestFormat {
    /// Docker schema 2 (`application/vnd.docker.distribution.manifest.v2+json`), what docker
    /// 20.10 writes and reads best.
    #[default]
    Docker,
    /// OCI image manifest (`oci-mediatypes=true`).
    Oci,
}

impl ManifestFormat {
    /// The manifest media type.
    pub fn manifest_type(self) -> &'static str {
        match self {
            ManifestFormat::Docker => media_types::DOCKER_MANIFEST,
            ManifestFormat::Oci => media_types::OCI_MANIFEST,
        }
    }

    /// The config media type.
    pub fn config_type(self) -> &'static str {
        match self {
            ManifestFormat::Docker => media_types::DOCKER_CONFIG,
            ManifestFormat::Oci => media_types::OCI_CONFIG,
        }
    }
}

/// One layer of the image: its blob and its uncompressed digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// The blob (media type, digest, size). Annotations are not written to the manifest.
    pub descriptor: Descriptor,
    /// The uncompressed digest, which the config's `rootfs.diff_ids` lists.
    pub diff_id: Digest,
}

/// Where the config comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigInput {
    /// Config bytes that are final except for the cache key; their `rootfs.diff_ids` must match
    /// the layers.
    Final(Vec<u8>),
    /// A config template whose `rootfs` is set from the layers and whose `history` is replaced
    /// when one is given (BuildKit's writer replaces both, spec section 3.5).
    Template {
        /// The template bytes (a JSON object).
        template: Vec<u8>,
        /// The history to write, when the template's should be replaced.
        history: Option<Vec<History>>,
    },
}

/// Everything an image is made of.
#[derive(Debug, Clone)]
pub struct ImageInput {
    /// The config.
    pub config: ConfigInput,
    /// The layers, base first.
    pub layers: Vec<Layer>,
    /// The inline cache records, as `inlay_core::cache::export_chain` made them; `None` writes
    /// no cache key (and removes a stale one the config carried).
    pub inline_cache: Option<RecordGraph>,
    /// The manifest family.
    pub format: ManifestFormat,
    /// Manifest annotations (written for OCI manifests only; Docker schema 2 has none).
    pub annotations: BTreeMap<String, String>,
}

/// A written image: config and manifest bytes with their descriptors, and the layers as the
/// manifest lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltImage {
    config: Bytes,
    config_descriptor: Descriptor,
    manifest: Bytes,
    manifest_descriptor: Descriptor,
    layers: Vec<Layer>,
    inline_cache_len: Option<usize>,
}

impl BuiltImage {
    /// The config bytes.
    pub fn config(&self) -> &Bytes {
        &self.config
    }

    /// The config's descriptor.
    pub fn config_descriptor(&self) -> &Descriptor {
        &self.config_descriptor
    }

    /// The manifest bytes (push them exactly).
    pub fn manifest(&self) -> &Bytes {
        &self.manifest
    }

    /// The manifest's descriptor (media type, digest, size).
    pub fn manifest_descriptor(&self) -> &Descriptor {
        &self.manifest_descriptor
    }

    /// The manifest's digest: the image's identity.
    pub fn digest(&self) -> &Digest {
        &self.manifest_descriptor.digest
    }

    /// The layers, with the media types the manifest uses.
    pub fn layers(&self) -> &[Layer] {
        &self.layers
    }

    /// The length of the `moby.buildkit.cache.v0` value, when one was written.
    pub fn inline_cache_len(&self) -> Option<usize> {
        self.inline_cache_len
    }
}

/// Writes the config and the manifest of `input`.
pub fn write_image(input: &ImageInput) -> Result<BuiltImage, ExportError> {
    let config_error = |source| ExportError::Config { source };
    let mut layers = Vec::with_capacity(input.layers.len());
    for layer in &input.layers {
        layers.push(manifest_layer(layer, input.format)?);
    }
    let diff_ids: Vec<&Digest> = layers.iter().map(|l| &l.diff_id).collect();

    let mut patch = match &input.config {
        ConfigInput::Final(bytes) => ConfigPatch::parse(bytes).map_err(config_error)?,
        ConfigInput::Template { template, history } => {
            let mut patch = ConfigPatch::parse(template).map_err(config_error)?;
            // Field order of the OCI `RootFS` Go struct, which BuildKit marshals.
            patch
                .set(
                    "rootfs",
                    &RootFs {
                        diff_ids: diff_ids.iter().map(|&d| d.clone()).collect(),
                        ..RootFs::default()
                    },
                )
                .map_err(config_error)?;
            if let Some(history) = history {
                patch.set("history", history).map_err(config_error)?;
            }
            patch
        }
    };
    // A value inherited from a base image's config describes another build.
    patch.remove(INLINE_CACHE_KEY);
    let mut inline_cache_len = None;
    if let Some(graph) = &input.inline_cache {
        let value = graph.to_inline();
        if value.len() > BUILDKIT_IMPORT_CAP {
            tracing::warn!(
                bytes = value.len(),
                cap = BUILDKIT_IMPORT_CAP,
                records = graph.len(),
                "inline cache value exceeds BuildKit's 1 MiB import cap"
            );
        }
        inline_cache_len = Some(value.len());
        patch.set_string(INLINE_CACHE_KEY, &value);
    }
    let config = patch.to_bytes();
    let view = Document::<ImageConfig>::parse(config).map_err(config_error)?;
    check_diff_ids(&view.view().rootfs.diff_ids, &diff_ids)?;
    let config = view.into_bytes();

    let config_descriptor = Descriptor::of_bytes(input.format.config_type(), &config);
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(input.format.manifest_type().to_owned()),
        artifact_type: None,
        config: config_descriptor.clone(),
        layers: layers.iter().map(|l| l.descriptor.clone()).collect(),
        subject: None,
        annotations: match input.format {
            ManifestFormat::Oci => input.annotations.clone(),
            ManifestFormat::Docker => BTreeMap::new(),
        },
        extra: BTreeMap::new(),
    };
    let manifest = serde_json::to_vec(&manifest)
        .expect("a manifest of strings, digests and integers always serialises");
    let manifest_descriptor = Descriptor::of_bytes(input.format.manifest_type(), &manifest);
    Ok(BuiltImage {
        config: Bytes::from(config),
        config_descriptor,
        manifest: Bytes::from(manifest),
        manifest_descriptor,
        layers,
        inline_cache_len,
    })
}

/// The layer as the manifest lists it: the family's media type, no annotations (BuildKit strips
/// its internal `containerd.io/uncompressed` and `buildkit/*` annotations from image manifests).
fn manifest_layer(layer: &Layer, format: ManifestFormat) -> Result<Layer, ExportError> {
    let d = &layer.descriptor;
    let compression =
        media_types::layer_compression(&d.media_type).ok_or_else(|| ExportError::NotALayer {
            digest: d.digest.clone(),
            media_type: d.media_type.clone(),
        })?;
    if d.size < 0 {
        return Err(ExportError::UnknownSize {
            digest: d.digest.clone(),
            size: d.size,
        });
    }
    // Foreign (non-distributable) layers keep their type: it is what tells a registry client
    // not to push them.
    let media_type = if d.media_type == media_types::DOCKER_LAYER_FOREIGN
        || d.media_type == media_types::OCI_LAYER_NONDIST_GZIP
    {
        d.media_type.clone()
    } else {
        media_types::layer_type(compression, format == ManifestFormat::Oci).to_owned()
    };
    let mut descriptor = Descriptor::new(media_type, d.digest.clone(), d.size);
    descriptor.urls.clone_from(&d.urls);
    Ok(Layer {
        descriptor,
        diff_id: layer.diff_id.clone(),
    })
}

fn check_diff_ids(config: &[Digest], layers: &[&Digest]) -> Result<(), ExportError> {
    for position in 0..config.len().max(layers.len()) {
        let (c, l) = (config.get(position), layers.get(position).copied());
        if c != l {
            return Err(ExportError::DiffIdMismatch {
                position,
                config: c.cloned(),
                layer: l.cloned(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(n: u8) -> Layer {
        Layer {
            descriptor: Descriptor::of_bytes(media_types::OCI_LAYER_GZIP, &[n, 1]),
            diff_id: Digest::sha256_of(&[n]),
        }
    }

    fn input(format: ManifestFormat) -> ImageInput {
        ImageInput {
            config: ConfigInput::Template {
                template: br#"{"os":"linux","architecture":"amd64","config":{"Env":["A=<b>"],"Cmd":["sh"]},"moby.buildkit.cache.v0":"stale"}"#.to_vec(),
                history: Some(vec![History {
                    created_by: "RUN x".to_owned(),
                    ..History::default()
                }]),
            },
            layers: vec![layer(1), layer(2)],
            inline_cache: Some(RecordGraph::default()),
            format,
            annotations: BTreeMap::from([("a".to_owned(), "b".to_owned())]),
        }
    }

    #[test]
    fn template_gets_rootfs_history_and_sorted_keys() {
        let built = write_image(&input(ManifestFormat::Docker)).unwrap();
        let config = std::str::from_utf8(built.config()).unwrap();
        assert_eq!(
            config,
            format!(
                r#"{{"architecture":"amd64","config":{{"Env":["A=\u003cb\u003e"],"Cmd":["sh"]}},"history":[{{"created_by":"RUN x"}}],"moby.buildkit.cache.v0":"W10=","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}","{}"]}}}}"#,
                Digest::sha256_of(&[1]),
                Digest::sha256_of(&[2])
            )
        );
        assert_eq!(built.inline_cache_len(), Some(4));
        let manifest: serde_json::Value = serde_json::from_slice(built.manifest()).unwrap();
        assert_eq!(manifest["mediaType"], media_types::DOCKER_MANIFEST);
        assert_eq!(manifest["config"]["mediaType"], media_types::DOCKER_CONFIG);
        assert_eq!(
            manifest["layers"][0]["mediaType"],
            media_types::DOCKER_LAYER_GZIP
        );
        assert!(manifest.get("annotations").is_none());
        assert_eq!(built.digest(), &Digest::sha256_of(built.manifest()));
        assert_eq!(write_image(&input(ManifestFormat::Docker)).unwrap(), built);
    }

    #[test]
    fn oci_manifest_and_stale_cache_removed() {
        let mut i = input(ManifestFormat::Oci);
        i.inline_cache = None;
        let built = write_image(&i).unwrap();
        let config: serde_json::Value = serde_json::from_slice(built.config()).unwrap();
        assert!(config.get(INLINE_CACHE_KEY).is_none());
        let manifest: serde_json::Value = serde_json::from_slice(built.manifest()).unwrap();
        assert_eq!(manifest["mediaType"], media_types::OCI_MANIFEST);
        assert_eq!(manifest["config"]["mediaType"], media_types::OCI_CONFIG);
        assert_eq!(manifest["annotations"]["a"], "b");
    }

    #[test]
    fn final_config_must_match_layers() {
        let ok = write_image(&input(ManifestFormat::Docker)).unwrap();
        let mut i = input(ManifestFormat::Docker);
        i.config = ConfigInput::Final(ok.config().to_vec());
        assert_eq!(write_image(&i).unwrap().config(), ok.config());
        i.layers.pop();
        assert!(matches!(
            write_image(&i),
            Err(ExportError::DiffIdMismatch {
                position: 1,
                layer: None,
                ..
            })
        ));
        let mut i = input(ManifestFormat::Docker);
        i.layers[0].descriptor.size = -1;
        assert!(matches!(
            write_image(&i),
            Err(ExportError::UnknownSize { .. })
        ));
        i.layers[0].descriptor.media_type = media_types::OCI_CONFIG.to_owned();
        assert!(matches!(
            write_image(&i),
            Err(ExportError::NotALayer { .. })
        ));
        i.config = ConfigInput::Final(b"[]".to_vec());
        assert!(write_image(&i).is_err());
    }

    #[test]
    fn oversized_inline_cache_is_still_written_and_measured() {
        use inlay_core::cache::CacheRecord;
        let records = (0u32..12_000)
            .map(|n| CacheRecord::root(Digest::sha256_of(&n.to_le_bytes())))
            .collect();
        let mut i = input(ManifestFormat::Docker);
        i.inline_cache = Some(RecordGraph::new(records).unwrap());
        let built = write_image(&i).unwrap();
        assert!(built.inline_cache_len().unwrap() > BUILDKIT_IMPORT_CAP);
    }
}
