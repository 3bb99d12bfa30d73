//! Image configs, manifests and indexes: typed views that keep unknown JSON keys, the exact
//! bytes they were read from, config patching at the JSON level, and chain IDs.
//!
//! Pulled manifests and configs stay bytes ([`Document`]): a manifest is pushed and digested
//! exactly as it was read, and a config is changed only through [`ConfigPatch`], which rewrites
//! top-level keys the way BuildKit's image writer does (spec section 3.5).
//!
//! ```
//! use inlay_core::image::{ConfigPatch, ImageConfig, chain_id};
//! use inlay_core::Digest;
//!
//! let bytes = br#"{"os":"linux","architecture":"amd64","rootfs":{"type":"layers","diff_ids":["sha256:3074da2ce01eeb63fd7d7a7f19841992f1c92fa0f7d8bcb3edd5fbed402545bb"]}}"#;
//! let config: ImageConfig = serde_json::from_slice(bytes).unwrap();
//! assert_eq!(chain_id(&config.rootfs.diff_ids), config.rootfs.diff_ids.first().cloned());
//!
//! let mut patch = ConfigPatch::parse(bytes).unwrap();
//! patch.set_string("moby.buildkit.cache.v0", "W10=");
//! assert_eq!(
//!     String::from_utf8(patch.to_bytes()).unwrap(),
//!     r#"{"architecture":"amd64","moby.buildkit.cache.v0":"W10=","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:3074da2ce01eeb63fd7d7a7f19841992f1c92fa0f7d8bcb3edd5fbed402545bb"]}}"#
//! );
//! ```

mod config;
mod document;
mod error;
mod index;
mod manifest;
mod patch;

pub use config::{ContainerConfig, History, ImageConfig, RootFs};
pub use document::{Document, ManifestOrIndex};
pub use error::ImageError;
pub use index::ImageIndex;
pub use manifest::ImageManifest;
pub use patch::{ConfigPatch, INLINE_CACHE_KEY, go_compact};

use crate::Digest;

/// The OCI chain ID of a list of layer diff IDs, base first: `ChainID(d0) = d0` and
/// `ChainID(d0..dn) = sha256(ChainID(d0..dn-1) + " " + dn)` over the `sha256:` strings.
/// `None` for an empty list. BuildKit keys image sources by it (spec section 5.7).
pub fn chain_id(diff_ids: &[Digest]) -> Option<Digest> {
    let (first, rest) = diff_ids.split_first()?;
    Some(rest.iter().fold(first.clone(), |chain, diff_id| {
        Digest::sha256_of(format!("{chain} {diff_id}").as_bytes())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_id_folds() {
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        assert_eq!(chain_id(&[]), None);
        assert_eq!(chain_id(std::slice::from_ref(&a)), Some(a.clone()));
        assert_eq!(
            chain_id(&[a.clone(), b.clone()]),
            Some(Digest::sha256_of(format!("{a} {b}").as_bytes()))
        );
    }
}
