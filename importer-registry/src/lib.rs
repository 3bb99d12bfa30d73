//! Reads BuildKit caches from an OCI registry into inlay's cache store: the importer behind
//! `--cache-from type=registry,ref=REF`.
//!
//! For each reference (normalised: `docker.io/library/` and `:latest` filled in) it fetches the
//! top-level document and decides, as BuildKit v0.12+ does (spec section 4.2):
//!
//! * an **index** (or manifest list) with an `application/vnd.buildkit.cacheconfig.v0` entry is
//!   a **registry cache**: the other entries are its layer blobs ([`CacheKind::RegistryIndex`]);
//! * an **image manifest** whose config has that media type is an image-manifest-style registry
//!   cache ([`CacheKind::RegistryManifest`]);
//! * anything else is an image with an **inline cache** ([`CacheKind::Inline`]): every image
//!   manifest reachable is read (all platforms, nested indexes; attestation manifests and
//!   unknown entries are skipped), each config's `moby.buildkit.cache.v0` decoded, and image
//!   layer `i` becomes layer `i` of the cache with parent `i-1`, annotated with its diffID
//!   (`rootfs.diff_ids[i]`), creation time and `created_by` (from the history entries that made a
//!   layer). A manifest whose diffID count differs from its layer count is skipped with a
//!   warning (spec section 4.4).
//!
//! Each platform manifest, registry cache config and stages artifact becomes one origin of the
//! [`inlay_core::cache::CacheStore`] (labelled `REF linux/amd64`, `REF registry cache`,
//! `REF stages cache`); keys are matched by `inlay_core`'s matcher.
//!
//! **Lazy.** Only manifests, indexes and configs are fetched, never a layer blob: a result is a
//! list of layer descriptors carrying their diffIDs (`containerd.io/uncompressed`) and the
//! repository they can be fetched or cross-mounted from
//! (`containerd.io/distribution.source.<registry>`, see
//! [`inlay_core::cache::artifact::distribution_sources`]).
//!
//! **Never fatal.** A missing, unauthorised, corrupt or oversized reference becomes an
//! [`ImportWarning`] naming the reference and why (with the HTTP status and the registry's error
//! body for HTTP errors); the other references still import and the build goes on without that
//! cache, as BuildKit's lazy cache manager does (spec section 2.6). The top-level document and
//! cache configs are read with BuildKit's 1 `MiB` cap ([`ImportLimits`]).
//!
//! # inlay's stages cache artifact
//!
//! An inline cache only holds the final image's chain, so a multi-stage build would lose the
//! stages it copies from. inlay's exporter therefore also pushes, next to the image, an OCI
//! artifact for the non-final stages, and this importer finds it through the referrers API
//! (falling back to the referrers tag schema `sha256-<hex>` on registries without it). Its exact
//! format ([`inlay_core::cache::artifact`] has the constants and a typed model):
//!
//! * an OCI image manifest (`mediaType` `application/vnd.oci.image.manifest.v1+json`) with
//!   `artifactType` `application/vnd.inlay.cache.v1+json`;
//! * `config`: a blob of media type `application/vnd.buildkit.cacheconfig.v0` holding a
//!   BuildKit registry cache config `{"layers":[…],"records":[…]}` (spec section 2.2, canonical
//!   as [`inlay_core::cache::CacheConfig::to_json`] writes it, at most 1 `MiB`) with the records
//!   of the non-final stages; `layers[].blob` names blobs of the artifact's `layers`;
//! * `layers`: the layer blobs the config names, each once, each annotated with
//!   `containerd.io/uncompressed` (its diffID);
//! * `subject`: the descriptor the image reference resolves to (the image manifest, or the
//!   index of a multi-platform image). Artifacts whose subject is one platform manifest of the
//!   index are found too.
//!
//! Because its config is a cache config, the artifact is also a valid BuildKit v0.12+
//! image-manifest registry cache, and `--cache-from REPO@<artifact digest>` imports it alone.
//!
//! It deliberately does not match keys (that is `inlay_core`'s pure matcher), nor pull layers
//! (the builder does that when a later miss needs a filesystem), nor read docker's local image
//! store (inlay has none).
//!
//! ```
//! use inlay_importer_registry::{Importer, Imports};
//! use inlay_registry::{Client, ClientConfig, CredentialStore};
//!
//! let client = Client::new(ClientConfig::default(), CredentialStore::empty()).unwrap();
//! let importer = Importer::new(client);
//! // let imports = importer.import_all(&["registry.example/app:cache"]).await;
//! let imports = Imports::default();
//! assert!(imports.to_store().origins().is_empty());
//! assert_eq!(imports.warnings().count(), 0);
//! # let _ = importer;
//! ```
#![forbid(unsafe_code)]

mod error;
mod imported;
mod importer;
mod layers;

pub use error::{ImportError, ImportWarning};
pub use imported::{CacheKind, ImportedCache, ImportedOrigin, Imports, OriginKind, OriginRecords};
pub use importer::{ImportLimits, Importer};
