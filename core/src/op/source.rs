//! `SourceOp`: where a filesystem comes from.

use std::collections::BTreeMap;

/// A source (LLB `SourceOp`): an identifier such as `docker-image://docker.io/library/busybox:latest`
/// or `local://context`, and string attributes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceOp {
    /// Scheme and location.
    pub identifier: String,
    /// Source attributes (`local.includepattern`, `image.recordtype`, ...).
    pub attrs: BTreeMap<String, String>,
}

impl SourceOp {
    /// An image source for a (normalised) reference string.
    pub fn image(reference: &str) -> SourceOp {
        SourceOp {
            identifier: format!("docker-image://{reference}"),
            attrs: BTreeMap::new(),
        }
    }

    /// A local directory shared by the client (the build context is `context`).
    pub fn local(name: &str) -> SourceOp {
        SourceOp {
            identifier: format!("local://{name}"),
            attrs: BTreeMap::new(),
        }
    }

    /// The empty filesystem (`FROM scratch`); BuildKit models it as no input at all, inlay as a
    /// source with an empty identifier so that every stage has a root.
    pub fn scratch() -> SourceOp {
        SourceOp::default()
    }

    /// Whether this is the empty filesystem.
    pub fn is_scratch(&self) -> bool {
        self.identifier.is_empty()
    }

    /// The image reference, when this is an image source.
    pub fn image_reference(&self) -> Option<&str> {
        self.identifier.strip_prefix("docker-image://")
    }

    /// The local name, when this is a local source.
    pub fn local_name(&self) -> Option<&str> {
        self.identifier.strip_prefix("local://")
    }
}
