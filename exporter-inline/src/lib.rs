//! Writes a build result as an image whose config carries BuildKit's inline cache
//! (`--cache-to type=inline`), and moves it where it was asked to go.
//!
//! * [`image`]: the final config (top-level keys sorted, `moby.buildkit.cache.v0` set from the
//!   records `inlay_core::cache::export_chain` produced) and a Docker schema 2 or OCI manifest,
//!   as exact, deterministic bytes.
//! * [`source`]: [`BlobSource`], how the builder says where each blob is (a local file, bytes,
//!   or a repository of some registry for cache hits that were never downloaded).
//! * [`push`]: `type=image,push=true`: per blob HEAD → skip, same registry → cross-repository
//!   mount, otherwise one verified copy; then the config and the manifest; nothing at all when
//!   the tag already names the image.
//! * [`archive`]: `type=oci` (OCI image layout, directory or tar) and `type=docker` (docker
//!   archive for `docker load`).
//! * [`artifact`]: inlay's stages cache artifact (in the importer's format) pushed next to the
//!   image and listed under the referrers tag.
//!
//! It deliberately does not compute cache keys, export cache chains or build layers: it gets
//! records, layer descriptors and blob locations from the builder.
//!
//! ```
//! use inlay_core::cache::RecordGraph;
//! use inlay_core::{Descriptor, Digest, media_types};
//! use inlay_exporter_inline::image::{ConfigInput, ImageInput, Layer, ManifestFormat, write_image};
//!
//! let layer = Layer {
//!     descriptor: Descriptor::of_bytes(media_types::OCI_LAYER_GZIP, b"gzip bytes"),
//!     diff_id: Digest::sha256_of(b"tar bytes"),
//! };
//! let input = ImageInput {
//!     config: ConfigInput::Template {
//!         template: br#"{"os":"linux","architecture":"amd64"}"#.to_vec(),
//!         history: None,
//!     },
//!     layers: vec![layer],
//!     inline_cache: Some(RecordGraph::default()),
//!     format: ManifestFormat::Docker,
//!     annotations: Default::default(),
//! };
//! let image = write_image(&input).unwrap();
//! let config = std::str::from_utf8(image.config()).unwrap();
//! assert!(config.starts_with(r#"{"architecture":"amd64","moby.buildkit.cache.v0":"W10=","os":"linux","rootfs""#));
//! assert_eq!(write_image(&input).unwrap().digest(), image.digest());
//! ```
#![forbid(unsafe_code)]

pub mod archive;
pub mod artifact;
mod error;
pub mod explain;
pub mod image;
pub mod push;
pub mod source;

pub use archive::{ArchiveDestination, ArchiveFormat, ArchiveReport, write_archive};
pub use artifact::{ArtifactReport, CacheArtifact, push_cache_artifact};
pub use error::ExportError;
pub use explain::push_explain_artifact;
pub use image::{BuiltImage, ConfigInput, ImageInput, Layer, ManifestFormat, write_image};
pub use push::{PushOptions, PushReport, push_image};
pub use source::{BlobLocation, BlobMap, BlobSource};
