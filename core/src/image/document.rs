//! Bytes, digest and parsed view travelling together (house style point 4).

use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::image::{ImageConfig, ImageError, ImageIndex, ImageManifest};
use crate::{Descriptor, Digest, media_types};

/// A JSON kind a [`Document`] can hold.
pub trait DocumentKind: DeserializeOwned {
    /// What it is called in error messages.
    const WHAT: &'static str;
}

impl DocumentKind for ImageConfig {
    const WHAT: &'static str = "image config";
}

impl DocumentKind for ImageManifest {
    const WHAT: &'static str = "image manifest";
}

impl DocumentKind for ImageIndex {
    const WHAT: &'static str = "image index";
}

/// The exact bytes of a pulled (or produced) JSON document, their digest, and a parsed view.
///
/// The bytes are never re-serialised: pushing or hashing a document uses them as they are, so a
/// pulled manifest keeps its digest (architecture: "pulled manifests and configs stay bytes").
#[derive(Debug, Clone, PartialEq)]
pub struct Document<T> {
    bytes: Vec<u8>,
    digest: Digest,
    view: T,
}

impl<T: DocumentKind> Document<T> {
    /// Parses `bytes` and names them by their sha256 digest.
    pub fn parse(bytes: Vec<u8>) -> Result<Document<T>, ImageError> {
        let digest = Digest::sha256_of(&bytes);
        Document::with_digest(bytes, digest)
    }

    /// Parses `bytes` that were fetched by `expected`, refusing them if they hash to anything
    /// else.
    pub fn verified(bytes: Vec<u8>, expected: &Digest) -> Result<Document<T>, ImageError> {
        if !expected.verifies(&bytes) {
            let mut hasher = expected.hasher();
            hasher.update(&bytes);
            return Err(ImageError::DigestMismatch {
                expected: expected.clone(),
                actual: hasher.finish(),
            });
        }
        Document::with_digest(bytes, expected.clone())
    }

    fn with_digest(bytes: Vec<u8>, digest: Digest) -> Result<Document<T>, ImageError> {
        let view = serde_json::from_slice(&bytes).map_err(|source| ImageError::Json {
            what: T::WHAT,
            source,
        })?;
        Ok(Document {
            bytes,
            digest,
            view,
        })
    }
}

impl<T> Document<T> {
    /// The exact bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The digest of the bytes.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The parsed view.
    pub fn view(&self) -> &T {
        &self.view
    }

    /// A descriptor of these bytes with the given media type.
    pub fn descriptor(&self, media_type: impl Into<String>) -> Descriptor {
        Descriptor::new(
            media_type,
            self.digest.clone(),
            i64::try_from(self.bytes.len()).expect("documents are far smaller than 2^63 bytes"),
        )
    }

    /// Gives the bytes back.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// What a manifest endpoint returned: a single-platform manifest or an index.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ManifestOrIndex {
    /// A Docker schema 2 or OCI image manifest.
    Manifest(Box<Document<ImageManifest>>),
    /// An OCI index or Docker manifest list.
    Index(Box<Document<ImageIndex>>),
}

#[derive(Deserialize)]
struct Shape {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<IgnoredAny>,
}

impl ManifestOrIndex {
    /// Reads `bytes`, deciding the kind by the document's own `mediaType`, else by
    /// `content_type` (the registry's `Content-Type`), else by whether it has `manifests`.
    pub fn parse(
        bytes: Vec<u8>,
        content_type: Option<&str>,
    ) -> Result<ManifestOrIndex, ImageError> {
        let shape: Shape = serde_json::from_slice(&bytes).map_err(|source| ImageError::Json {
            what: "manifest or index",
            source,
        })?;
        let declared = shape
            .media_type
            .as_deref()
            .filter(|m| media_types::is_index(m) || media_types::is_manifest(m))
            .or(content_type.filter(|m| media_types::is_index(m) || media_types::is_manifest(m)));
        let is_index = match declared {
            Some(m) => media_types::is_index(m),
            None => shape.manifests.is_some(),
        };
        Ok(if is_index {
            ManifestOrIndex::Index(Box::new(Document::parse(bytes)?))
        } else {
            ManifestOrIndex::Manifest(Box::new(Document::parse(bytes)?))
        })
    }

    /// The digest of the bytes.
    pub fn digest(&self) -> &Digest {
        match self {
            ManifestOrIndex::Manifest(d) => d.digest(),
            ManifestOrIndex::Index(d) => d.digest(),
        }
    }

    /// The exact bytes.
    pub fn bytes(&self) -> &[u8] {
        match self {
            ManifestOrIndex::Manifest(d) => d.bytes(),
            ManifestOrIndex::Index(d) => d.bytes(),
        }
    }
}
