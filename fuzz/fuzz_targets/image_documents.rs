//! Any bytes as an image config, manifest, index, or manifest-or-index (the first byte picks
//! which, and the content type the registry claimed): parsing and the views built on it never
//! panic.
#![no_main]

use inlay_core::cache::RecordGraph;
use inlay_core::cache::artifact::CacheArtifact;
use inlay_core::image::{
    ConfigPatch, Document, ImageConfig, ImageIndex, ImageManifest, ManifestOrIndex, chain_id,
};
use inlay_core::{Platform, media_types};
use libfuzzer_sys::fuzz_target;

fn config(bytes: &[u8]) {
    if let Ok(doc) = Document::<ImageConfig>::parse(bytes.to_vec()) {
        let view = doc.view();
        let _ = chain_id(&view.rootfs.diff_ids);
        let _ = view.layer_history().count();
        if let Some(value) = view.inline_cache() {
            let _ = RecordGraph::from_inline(value);
        }
        let _ = doc.descriptor(media_types::OCI_CONFIG);
    }
    if let Ok(mut patch) = ConfigPatch::parse(bytes) {
        patch.set_string("moby.buildkit.cache.v0", "W10=");
        let out = patch.to_bytes();
        ConfigPatch::parse(&out).expect("a patched config parses again");
    }
}

fn manifest(doc: &Document<ImageManifest>) {
    let view = doc.view();
    if CacheArtifact::is_cache_artifact(view) {
        if let Ok(artifact) = CacheArtifact::from_manifest(view) {
            let _ = artifact.to_bytes();
        }
    }
}

fn index(doc: &Document<ImageIndex>) {
    let wanted = Platform::linux_amd64();
    let _ = doc.view().manifests_for(&wanted).count();
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else {
        return;
    };
    match selector % 4 {
        0 => config(bytes),
        1 => {
            if let Ok(doc) = Document::<ImageManifest>::parse(bytes.to_vec()) {
                manifest(&doc);
            }
        }
        2 => {
            if let Ok(doc) = Document::<ImageIndex>::parse(bytes.to_vec()) {
                index(&doc);
            }
        }
        _ => {
            let content_type = match selector / 4 % 3 {
                0 => None,
                1 => Some(media_types::OCI_INDEX),
                _ => Some(media_types::OCI_MANIFEST),
            };
            match ManifestOrIndex::parse(bytes.to_vec(), content_type) {
                Ok(ManifestOrIndex::Manifest(doc)) => manifest(&doc),
                Ok(ManifestOrIndex::Index(doc)) => index(&doc),
                Ok(_) | Err(_) => {}
            }
        }
    }
});
