//! The image config (OCI image spec `config.json`, Docker's image JSON): a typed view for
//! reading. Changing a config goes through [`crate::image::ConfigPatch`] so that unknown keys
//! and nested values survive exactly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Digest;
use crate::cache::Timestamp;

/// An image config. Keys this model does not know are kept in `extra`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ImageConfig {
    /// CPU architecture (`amd64`, `arm64`, ...).
    #[serde(default)]
    pub architecture: String,
    /// Operating system (`linux`, ...).
    #[serde(default)]
    pub os: String,
    /// CPU variant (`v7`, `v8`), when relevant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// OS version (Windows images).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// When the image was created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    /// Who made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// The runtime defaults (`Env`, `Cmd`, `WorkingDir`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    /// The layers' uncompressed digests, base first.
    #[serde(default)]
    pub rootfs: RootFs,
    /// One entry per Dockerfile step, including steps without a layer (`empty_layer`).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub history: Vec<History>,
    /// Keys this model does not know (`moby.buildkit.cache.v0`, `container_config`, ...).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl ImageConfig {
    /// The inline cache value (`moby.buildkit.cache.v0`), if the config carries one as a string.
    pub fn inline_cache(&self) -> Option<&str> {
        self.extra
            .get(crate::image::INLINE_CACHE_KEY)
            .and_then(serde_json::Value::as_str)
    }

    /// The history entries that produced a layer (`empty_layer` false), in layer order. Used to
    /// map times and descriptions to layers (spec section 9.3).
    pub fn layer_history(&self) -> impl Iterator<Item = &History> {
        self.history.iter().filter(|h| !h.empty_layer)
    }
}

/// `rootfs`: the layer list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Uncompressed layer digests, base first.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> RootFs {
        RootFs {
            kind: "layers".to_owned(),
            diff_ids: Vec::new(),
        }
    }
}

/// One history entry. Field order follows the OCI image spec's Go struct, which is the order
/// BuildKit writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct History {
    /// When the step ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
    /// The step, e.g. `RUN /bin/sh -c make # buildkit`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_by: String,
    /// Who made it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    /// A comment (`buildkit.dockerfile.v0`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    /// Whether the step made no layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// The `config` object: runtime defaults, with Docker's capitalised keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ContainerConfig {
    /// `User`.
    #[serde(rename = "User", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `Env`, `KEY=value` entries in order.
    #[serde(rename = "Env", default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// `Entrypoint`.
    #[serde(
        rename = "Entrypoint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub entrypoint: Option<Vec<String>>,
    /// `Cmd`.
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `WorkingDir`.
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub working_dir: Option<String>,
    /// `Labels`.
    #[serde(rename = "Labels", default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// `Shell`, the default for shell-form commands.
    #[serde(rename = "Shell", default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// Every other key (`ExposedPorts`, `Volumes`, `Healthcheck`, `OnBuild`, ...).
    #[serde(flatten)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// Go writes nil slices as `null`; read them as empty.
fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}
