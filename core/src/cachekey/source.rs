//! The CacheMap of sources and merges (spec section 5.7; BuildKit `ops/source.go`,
//! `source/containerimage/pull.go`, `ops/merge.go`).

use crate::cache::key::source_cachemap_digest;
use crate::cachekey::{DepKeying, KeyError, KeyProfile, OpDigest, OpKey, VertexFacts};
use crate::gojson::{Object, Value};
use crate::image::chain_id;
use crate::op::{MergeOp, SourceOp, VertexId};
use crate::{Digest, Platform};

/// What BuildKit's image source learns when it resolves an image: enough for both of its keys.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageKeyFacts {
    /// The resolved top-level descriptor's digest (an index for multi-platform images, else
    /// the manifest). `None` reproduces docker 20.10 with the image in its local store, whose
    /// image source gives only the chainID key (spec section 5.7).
    pub manifest: Option<Digest>,
    /// The platform config's `rootfs.diff_ids`; their chainID is the second key. Empty: no
    /// chainID key (BuildKit gives none for an image without layers).
    pub diff_ids: Vec<Digest>,
}

/// The manifest-key pre-image `{"Digest":…,"OS":…,"Arch":…}` (spec section 5.7).
pub fn image_manifest_key(manifest: &Digest, platform: &Platform, profile: KeyProfile) -> Value {
    let o = Object::new()
        .field("Digest", manifest)
        .field("OS", &platform.os)
        .field("Arch", &platform.architecture)
        .omit_empty("Variant", &platform.variant);
    let o = if profile.v0_13() {
        o.omit_empty("OSVersion", &platform.os_version)
            .omit_empty("OSFeatures", Value::array(platform.os_features.iter()))
    } else {
        o
    };
    o.into_value()
}

fn source_key(key: &str) -> OpKey {
    let digest = source_cachemap_digest(key);
    // `session:` keys (local sources) are made random: never exported, never matched.
    let digest = if key.starts_with("session:") {
        OpDigest::Random(digest)
    } else {
        OpDigest::Stable(digest)
    };
    OpKey {
        digest,
        pre_image: format!("{}{key}", crate::cache::key::SOURCE_KEY_PREFIX),
    }
}

pub(crate) fn source_keys(
    vertex: VertexId,
    source: &SourceOp,
    platform: &Platform,
    facts: &VertexFacts,
    profile: KeyProfile,
) -> Result<Vec<OpKey>, KeyError> {
    if source.is_scratch() {
        return Ok(Vec::new());
    }
    if source.image_reference().is_some() || source.identifier.starts_with("oci-layout://") {
        let image = facts
            .image
            .as_ref()
            .ok_or(KeyError::MissingImageFacts { vertex })?;
        let mut keys = Vec::new();
        if let Some(manifest) = &image.manifest {
            let manifest_key =
                image_manifest_key(manifest, platform, profile).digest_with(profile.escapes());
            keys.push(source_key(manifest_key.as_str()));
        }
        if let Some(chain) = chain_id(&image.diff_ids) {
            keys.push(source_key(chain.as_str()));
        }
        if keys.is_empty() {
            return Err(KeyError::MissingImageFacts { vertex });
        }
        return Ok(keys);
    }
    if let Some(name) = source.local_name() {
        return Ok(vec![source_key(&format!("session:{name}"))]);
    }
    if facts.source_keys.is_empty() {
        return Err(KeyError::MissingSourceKeys {
            vertex,
            identifier: source.identifier.clone(),
        });
    }
    Ok(facts.source_keys.iter().map(|k| source_key(k)).collect())
}

/// `{"Type":"buildkit.merge.v0","Merge":{"inputs":[…]}}`; merges take no selectors and no
/// content keys.
pub(crate) fn merge_cache_map(
    merge: &MergeOp,
    inputs: usize,
    profile: KeyProfile,
) -> (Vec<OpKey>, Vec<DepKeying>) {
    let items: Vec<Value> = merge
        .inputs
        .iter()
        .map(|i| {
            if profile.protobuf_go() {
                Object::new().omit_empty("input", *i).into_value()
            } else {
                Object::new().field("input", *i).into_value()
            }
        })
        .collect();
    let pre_image = Object::new()
        .field("Type", "buildkit.merge.v0")
        .field(
            "Merge",
            Object::new().omit_empty("inputs", Value::Array(items)),
        )
        .into_value()
        .to_json_with(profile.escapes());
    let key = OpKey {
        digest: OpDigest::Stable(Digest::sha256_of(pre_image.as_bytes())),
        pre_image,
    };
    (vec![key], vec![(None, None); inputs])
}
