//! The digest formulas that name cache records (spec sections 5.1, 5.3, 5.4 and 5.7).
//!
//! These are the small, version-independent pieces: how an op's CacheMap digest and output index
//! become a record digest, how a source key becomes a CacheMap digest, and how selector paths and
//! content checksums are folded into one digest. The op pre-images themselves are built with
//! [`crate::gojson`].

use crate::Digest;

/// The output index BuildKit gives content-based ("slow") keys: their record digest is
/// `sha256("<key digest>@-1")` (spec section 5.4).
pub const CONTENT_KEY_OUTPUT: i64 = -1;

/// The prefix of a source op's CacheMap pre-image (spec section 5.7).
pub const SOURCE_KEY_PREFIX: &str = "buildkit.source.v0:";

/// The record digest of output `output` of an op whose CacheMap digest is `cachemap`:
/// sha256 of the text `"<cachemap>@<output>"` (BuildKit's `rootKey`, spec section 5.1).
///
/// ```
/// use inlay_core::cache::key::record_digest;
/// use inlay_core::Digest;
///
/// let source: Digest = "sha256:00d37c272237d075c12a5e8088bd0da3b89390179618351ef62a2ddcfca7fc7a"
///     .parse()
///     .unwrap();
/// assert_eq!(
///     record_digest(&source, 0).to_string(),
///     "sha256:b139ea8bf07ace643415354a46ce11c0649b87a4c7c495c9ba2fc6029493ae74"
/// );
/// ```
pub fn record_digest(cachemap: &Digest, output: i64) -> Digest {
    Digest::sha256_of(format!("{cachemap}@{output}").as_bytes())
}

/// The record digest of a content key: [`record_digest`] at output [`CONTENT_KEY_OUTPUT`].
pub fn content_record_digest(content_key: &Digest) -> Digest {
    record_digest(content_key, CONTENT_KEY_OUTPUT)
}

/// The CacheMap digest of a source op whose source key is `key`:
/// sha256(`"buildkit.source.v0:" + key`) (spec section 5.7).
pub fn source_cachemap_digest(key: &str) -> Digest {
    Digest::sha256_of(format!("{SOURCE_KEY_PREFIX}{key}").as_bytes())
}

/// sha256 of `parts` joined by a 0x00 byte: the shape of selector digests (spec section 5.3) and
/// of content-key digests over several checksums (spec section 5.4). The caller chooses the
/// order, which differs between the two uses.
pub fn nul_joined_digest<S: AsRef<str>>(parts: &[S]) -> Digest {
    let mut hasher = crate::Hasher::new(crate::Algorithm::Sha256);
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update(&[0]);
        }
        hasher.update(part.as_ref().as_bytes());
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_vectors() {
        // Spec section 8b.3, record 1: the content key of /data.txt.
        let key = nul_joined_digest(&[
            "sha256:9a3b10e4117e3b78de36a2aa160b9e2598b434e956bdefb940b603ad70cb70d9",
        ]);
        assert_eq!(
            key.as_str(),
            "sha256:edf9a02a27697d920699d4515e83795c9a02dfc7c9e016abe82ca93c43606355"
        );
        assert_eq!(
            content_record_digest(&key).as_str(),
            "sha256:49a13ab823a708f0b77162d2e5484869f0902b17bc1fcca6956e273931644ad7"
        );
        // Spec section 5.3: the v0.13+ RUN selector is sha256("/").
        assert_eq!(
            nul_joined_digest(&["/"]).as_str(),
            "sha256:8a5edab282632443219e051e4ade2d1d5bbc671c781051bf1437897cbdfea0f1"
        );
        assert_eq!(
            source_cachemap_digest(
                "sha256:3074da2ce01eeb63fd7d7a7f19841992f1c92fa0f7d8bcb3edd5fbed402545bb"
            )
            .as_str(),
            "sha256:00d37c272237d075c12a5e8088bd0da3b89390179618351ef62a2ddcfca7fc7a"
        );
    }
}
