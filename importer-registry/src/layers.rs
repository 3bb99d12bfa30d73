//! Turning fetched documents into origins, without IO: the inline path's layer table (spec
//! section 4.4) and a cache config's blob map (sections 2.6 and 4.3).

use std::collections::HashMap;

use inlay_core::cache::artifact::add_distribution_source;
use inlay_core::cache::{CacheConfig, RecordGraph};
use inlay_core::descriptor::{
    ANNOTATION_BUILDKIT_CREATED_AT, ANNOTATION_BUILDKIT_DESCRIPTION, ANNOTATION_UNCOMPRESSED,
};
use inlay_core::image::{ImageConfig, ImageManifest};
use inlay_core::{Descriptor, Digest, Reference};

use crate::error::ImportError;

/// The inline cache of one image manifest: its records and its annotated layers, `None` when
/// the manifest carries no cache (no layers, or no `moby.buildkit.cache.v0`).
///
/// Image layer `i` is `manifest.layers[i]` with `containerd.io/uncompressed = diff_ids[i]`,
/// and, from the `i`-th history entry that made a layer, `buildkit/createdat` and
/// `buildkit/description`. A history shorter than the layers leaves the last layers without
/// them (BuildKit v0.8 would index past the end; spec section 9.3).
pub fn inline_cache(
    source: &Reference,
    manifest_digest: &Digest,
    manifest: &ImageManifest,
    config_digest: &Digest,
    config: &ImageConfig,
) -> Result<Option<(RecordGraph, Vec<Descriptor>)>, ImportError> {
    if manifest.layers.is_empty() {
        return Ok(None);
    }
    let diff_ids = &config.rootfs.diff_ids;
    if diff_ids.len() != manifest.layers.len() {
        return Err(ImportError::LayerCountMismatch {
            manifest: manifest_digest.clone(),
            layers: manifest.layers.len(),
            diff_ids: diff_ids.len(),
        });
    }
    let Some(value) = config.inline_cache() else {
        return Ok(None);
    };
    let graph = RecordGraph::from_inline(value).map_err(|source| ImportError::Records {
        digest: config_digest.clone(),
        source,
    })?;
    let mut history = config.layer_history();
    let layers = manifest
        .layers
        .iter()
        .zip(diff_ids)
        .map(|(layer, diff_id)| {
            let mut layer = layer.clone();
            layer
                .annotations
                .insert(ANNOTATION_UNCOMPRESSED.to_owned(), diff_id.to_string());
            if let Some(h) = history.next() {
                if let Some(created) = &h.created {
                    layer.annotations.insert(
                        ANNOTATION_BUILDKIT_CREATED_AT.to_owned(),
                        created.to_string(),
                    );
                }
                if !h.created_by.is_empty() {
                    layer.annotations.insert(
                        ANNOTATION_BUILDKIT_DESCRIPTION.to_owned(),
                        h.created_by.clone(),
                    );
                }
            }
            add_distribution_source(&mut layer, source.registry(), source.repository());
            layer
        })
        .collect();
    Ok(Some((graph, layers)))
}

/// Decodes a cache config blob and maps its blobs to the container's descriptors, each marked
/// with the repository it can be fetched from. A descriptor without a diffID takes the one the
/// config's layer annotations give (BuildKit v0.9+ writes them for some backends).
pub fn cache_config(
    source: &Reference,
    config_digest: &Digest,
    bytes: &[u8],
    container: &[Descriptor],
) -> Result<(CacheConfig, HashMap<Digest, Descriptor>), ImportError> {
    let config = CacheConfig::from_json(bytes).map_err(|source| ImportError::Records {
        digest: config_digest.clone(),
        source,
    })?;
    let mut blobs: HashMap<Digest, Descriptor> = container
        .iter()
        .map(|d| {
            let mut d = d.clone();
            add_distribution_source(&mut d, source.registry(), source.repository());
            (d.digest.clone(), d)
        })
        .collect();
    for layer in config.layers() {
        let diff_id = layer.annotations.as_ref().and_then(|a| a.diff_id.as_ref());
        if let (Some(d), Some(diff_id)) = (blobs.get_mut(&layer.blob), diff_id) {
            d.annotations
                .entry(ANNOTATION_UNCOMPRESSED.to_owned())
                .or_insert_with(|| diff_id.to_string());
        }
    }
    Ok((config, blobs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use inlay_core::image::History;
    use inlay_core::media_types;

    fn reference() -> Reference {
        "localhost:5000/app:v1".parse().unwrap()
    }

    fn image(
        layers: usize,
        diff_ids: usize,
        history: Vec<History>,
    ) -> (ImageManifest, ImageConfig) {
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(media_types::OCI_MANIFEST.into()),
            artifact_type: None,
            config: Descriptor::of_bytes(media_types::OCI_CONFIG, b"{}"),
            layers: (0..layers)
                .map(|i| Descriptor::of_bytes(media_types::OCI_LAYER_GZIP, &[i as u8]))
                .collect(),
            subject: None,
            annotations: std::collections::BTreeMap::default(),
            extra: std::collections::BTreeMap::default(),
        };
        let mut config = ImageConfig::default();
        config.rootfs.diff_ids = (0..diff_ids)
            .map(|i| Digest::sha256_of(&[i as u8, 0]))
            .collect();
        config.history = history;
        // `[{"digest":…,"inputs":[[{"link":1}]],"layers":[{"layer":1,…}]},{"digest":…}]`
        let value = RecordGraph::from_json(
            br#"[{"layers":[{"layer":1,"createdAt":"2026-01-01T00:00:00Z"}],"digest":"sha256:1684127940f02bad5357d1571ebc6d3aff3b1b590a53fe80c2eac2f833ad6676","inputs":[[{"link":1}]]},{"digest":"sha256:b139ea8bf07ace643415354a46ce11c0649b87a4c7c495c9ba2fc6029493ae74"}]"#,
        )
        .unwrap()
        .to_inline();
        config.extra.insert(
            inlay_core::image::INLINE_CACHE_KEY.into(),
            serde_json::Value::String(value),
        );
        (manifest, config)
    }

    fn history(created_by: &str, empty: bool) -> History {
        History {
            created: Some("2026-11-27T23:39:22.90629035Z".parse().unwrap()),
            created_by: created_by.into(),
            empty_layer: empty,
            ..History::default()
        }
    }

    #[test]
    fn layer_table_skips_empty_history_and_guards_short_history() {
        let (m, c) = image(
            3,
            3,
            vec![
                history("base", false),
                history("ENV", true),
                history("RUN x", false),
            ],
        );
        let d = Digest::sha256_of(b"m");
        let (graph, layers) = inline_cache(&reference(), &d, &m, &d, &c).unwrap().unwrap();
        assert_eq!(graph.len(), 2);
        assert_eq!(layers.len(), 3);
        assert_eq!(
            layers[1].annotations[ANNOTATION_BUILDKIT_DESCRIPTION],
            "RUN x"
        );
        assert_eq!(
            layers[1].annotations[ANNOTATION_BUILDKIT_CREATED_AT],
            "2026-11-27T23:39:22.90629035Z"
        );
        assert_eq!(
            layers[2].uncompressed_digest(),
            Some(Digest::sha256_of(&[2, 0]))
        );
        assert!(
            !layers[2]
                .annotations
                .contains_key(ANNOTATION_BUILDKIT_DESCRIPTION)
        );
        assert_eq!(
            layers[0].annotations["containerd.io/distribution.source.localhost:5000"],
            "app"
        );
    }

    #[test]
    fn mismatched_diff_ids_and_missing_cache() {
        let (m, c) = image(3, 2, Vec::new());
        let d = Digest::sha256_of(b"m");
        assert!(matches!(
            inline_cache(&reference(), &d, &m, &d, &c),
            Err(ImportError::LayerCountMismatch {
                layers: 3,
                diff_ids: 2,
                ..
            })
        ));
        let (m, mut c) = image(2, 2, Vec::new());
        c.extra.clear();
        assert!(
            inline_cache(&reference(), &d, &m, &d, &c)
                .unwrap()
                .is_none()
        );
        let (m, mut c) = image(2, 2, Vec::new());
        c.extra.insert(
            inlay_core::image::INLINE_CACHE_KEY.into(),
            serde_json::Value::String("not base64!".into()),
        );
        assert!(matches!(
            inline_cache(&reference(), &d, &m, &d, &c),
            Err(ImportError::Records { .. })
        ));
    }

    #[test]
    fn config_blobs_take_diff_ids_from_layer_annotations() {
        let blob = Descriptor::of_bytes(media_types::OCI_LAYER_GZIP, b"x");
        let json = format!(
            r#"{{"layers":[{{"blob":"{}","parent":-1,"annotations":{{"diffID":"{}","createdAt":"0001-01-01T00:00:00Z"}}}}],"records":[]}}"#,
            blob.digest,
            Digest::sha256_of(b"y")
        );
        let d = Digest::sha256_of(json.as_bytes());
        let (config, blobs) = cache_config(
            &reference(),
            &d,
            json.as_bytes(),
            std::slice::from_ref(&blob),
        )
        .unwrap();
        assert_eq!(config.layers().len(), 1);
        assert_eq!(
            blobs[&blob.digest].uncompressed_digest(),
            Some(Digest::sha256_of(b"y"))
        );
        assert!(cache_config(&reference(), &d, b"{", &[]).is_err());
    }

    proptest::proptest! {
        /// Any layer count, diffID count, history shape and inline value: no panic, and an
        /// imported table has one annotated descriptor per layer.
        #[test]
        fn inline_cache_never_panics(
            layer_count in 0usize..6,
            diff_id_count in 0usize..6,
            entries in proptest::collection::vec((proptest::bool::ANY, "[a-z ]{0,6}"), 0..10),
            value in proptest::option::of(".{0,40}"),
        ) {
            let h = entries
                .iter()
                .map(|(empty, by)| history(by, *empty))
                .collect();
            let (m, mut c) = image(layer_count, diff_id_count, h);
            if let Some(v) = value {
                c.extra.insert(
                    inlay_core::image::INLINE_CACHE_KEY.into(),
                    serde_json::Value::String(v),
                );
            }
            let d = Digest::sha256_of(b"m");
            if let Ok(Some((_, layers))) = inline_cache(&reference(), &d, &m, &d, &c) {
                proptest::prop_assert_eq!(layers.len(), layer_count);
                proptest::prop_assert!(layers.iter().all(|l| l.uncompressed_digest().is_some()));
                let described = layers
                    .iter()
                    .filter(|l| l.annotations.contains_key(ANNOTATION_BUILDKIT_DESCRIPTION))
                    .count();
                proptest::prop_assert!(described <= entries.iter().filter(|(e, _)| !e).count());
            }
        }
    }
}
