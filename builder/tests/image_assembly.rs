//! Image assembly: config and manifest from a layer chain, deterministic under
//! `SOURCE_DATE_EPOCH`.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use inlay_builder::image::{ImageError, ImageRequest, assemble};
use inlay_builder::layer::{LayerOptions, LayerSource, write_layer};
use inlay_builder::solver::LayerRef;
use inlay_builder::store::Store;
use inlay_core::image::{History, ImageConfig, ImageManifest};
use inlay_core::media_types;

fn layer(store: &Store, content: &str) -> LayerRef {
    let tree = tempfile::tempdir().unwrap();
    std::fs::write(tree.path().join("f"), content).unwrap();
    let options = LayerOptions {
        source_date_epoch: Some(0),
        ..LayerOptions::default()
    };
    let (info, blob) = write_layer(LayerSource::Tree(tree.path()), Vec::new(), &options).unwrap();
    store.put_blob(&blob, Some(&info.digest)).unwrap();
    LayerRef {
        media_type: info.media_type(false).to_owned(),
        diff_id: info.diff_id,
        digest: info.digest,
        size: info.size,
        origin: None,
    }
}

const TEMPLATE: &[u8] =
    br#"{"os":"linux","architecture":"amd64","config":{"Env":["PATH=/bin"],"Cmd":["sh"],"WorkingDir":"/work"}}"#;

fn history() -> Vec<History> {
    vec![
        History {
            created_by: "base".into(),
            created: Some("2020-01-01T00:00:00Z".parse().unwrap()),
            ..History::default()
        },
        History {
            created_by: "ENV A=b".into(),
            comment: "buildkit.dockerfile.v0".into(),
            empty_layer: true,
            ..History::default()
        },
        History {
            created_by: "RUN make".into(),
            comment: "buildkit.dockerfile.v0".into(),
            ..History::default()
        },
    ]
}

fn request(layers: &[LayerRef], epoch: Option<i64>, now: i64, oci: bool) -> ImageRequest<'_> {
    ImageRequest {
        layers,
        config_template: TEMPLATE,
        history: history(),
        source_date_epoch: epoch,
        build_time: now,
        oci,
    }
}

#[test]
fn source_date_epoch_makes_the_digest_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let layers = vec![layer(&store, "base"), layer(&store, "run")];
    let a = assemble(&store, &request(&layers, Some(1_700_000_000), 1, true)).unwrap();
    let b = assemble(
        &store,
        &request(&layers, Some(1_700_000_000), 999_999, true),
    )
    .unwrap();
    assert_eq!(a.digest(), b.digest());
    assert_eq!(a.config, b.config);
    assert!(store.has_blob(a.digest()) && store.has_blob(&a.config_descriptor.digest));

    // Without SOURCE_DATE_EPOCH the build time shows.
    let c = assemble(&store, &request(&layers, None, 1, true)).unwrap();
    let d = assemble(&store, &request(&layers, None, 2, true)).unwrap();
    assert_ne!(c.digest(), d.digest());

    // Docker media types give another, equally stable, digest.
    let docker = assemble(&store, &request(&layers, Some(1_700_000_000), 5, false)).unwrap();
    assert_ne!(docker.digest(), a.digest());
    let manifest: ImageManifest = serde_json::from_slice(&docker.manifest).unwrap();
    assert_eq!(
        manifest.media_type.as_deref(),
        Some(media_types::DOCKER_MANIFEST)
    );
    assert!(
        manifest
            .layers
            .iter()
            .all(|l| l.media_type == media_types::DOCKER_LAYER_GZIP)
    );
}

#[test]
fn the_config_lists_layers_history_and_dates() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let layers = vec![layer(&store, "base"), layer(&store, "run")];
    let image = assemble(&store, &request(&layers, Some(1_700_000_000), 5, true)).unwrap();
    let config: ImageConfig = serde_json::from_slice(&image.config).unwrap();
    assert_eq!(
        config.rootfs.diff_ids,
        layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()
    );
    assert_eq!(config.history.len(), 3);
    assert!(config.history[1].empty_layer);
    let epoch = "2023-11-14T22:13:20Z";
    assert_eq!(config.created.unwrap().to_string(), epoch);
    // Base history older than the epoch keeps its date; new steps get the epoch.
    assert_eq!(
        config.history[0].created.unwrap().to_string(),
        "2020-01-01T00:00:00Z"
    );
    assert_eq!(config.history[2].created.unwrap().to_string(), epoch);
    // Top-level keys sorted, nested values as given.
    let text = String::from_utf8(image.config.clone()).unwrap();
    let keys = [
        "\"architecture\"",
        "\"config\"",
        "\"created\"",
        "\"history\"",
        "\"os\"",
        "\"rootfs\"",
    ];
    let positions: Vec<usize> = keys.iter().map(|k| text.find(k).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{text}");
    assert!(text.contains(r#"{"Env":["PATH=/bin"],"Cmd":["sh"],"WorkingDir":"/work"}"#));
    let manifest: ImageManifest = serde_json::from_slice(&image.manifest).unwrap();
    assert_eq!(manifest.config.digest, image.config_descriptor.digest);
    assert_eq!(manifest.layers.len(), 2);
    assert_eq!(manifest.layers[1].digest, layers[1].digest);
}

#[test]
fn history_must_describe_the_layers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let layers = vec![layer(&store, "only")];
    let err = assemble(&store, &request(&layers, Some(0), 0, true)).unwrap_err();
    assert!(matches!(
        err,
        ImageError::HistoryMismatch {
            entries: 2,
            layers: 1
        }
    ));
}

#[test]
fn layers_that_change_nothing_are_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let empty_tree = tempfile::tempdir().unwrap();
    let (info, blob) = write_layer(
        LayerSource::Tree(empty_tree.path()),
        Vec::new(),
        &LayerOptions::default(),
    )
    .unwrap();
    assert_eq!(
        info.diff_id.as_str(),
        inlay_builder::image::EMPTY_TAR_DIFF_ID,
        "an empty tree gives the empty tar"
    );
    store.put_blob(&blob, Some(&info.digest)).unwrap();
    let empty = LayerRef {
        media_type: info.media_type(true).to_owned(),
        diff_id: info.diff_id,
        digest: info.digest,
        size: info.size,
        origin: None,
    };
    let layers = vec![layer(&store, "base"), empty];
    let image = assemble(&store, &request(&layers, Some(0), 0, true)).unwrap();
    let config: ImageConfig = serde_json::from_slice(&image.config).unwrap();
    assert_eq!(config.rootfs.diff_ids, vec![layers[0].diff_id.clone()]);
    assert!(config.history[2].empty_layer);
    let manifest: ImageManifest = serde_json::from_slice(&image.manifest).unwrap();
    assert_eq!(manifest.layers.len(), 1);
}
