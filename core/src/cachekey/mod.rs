//! BuildKit's cache keys for the build graph, per BuildKit version (spec sections 4.6 and 5).
//!
//! * [`KeyProfile`] names a key scheme: docker 20.10's BuildKit v0.8, or the current BuildKit.
//! * [`cache_map`] turns one vertex into BuildKit's CacheMap: the op digest(s) (Go-JSON
//!   pre-images of sections 5.5 to 5.7), and per input the link selector (5.3) and whether a
//!   content ("slow") key applies, with the paths it covers (5.4).
//! * [`KeySolver`] forms the keys of a whole build step by step, as BuildKit's solver does
//!   (4.6 step 2): every vertex output gets a key whose inputs list, per input, the parent's
//!   definition keys tagged with this op's selector plus the content key without one.
//!   [`solve_keys`] does it in one call when every fact is known up front.
//!
//! The content key of an input is the caller's: it needs the input's files (the content-hash
//! module computes it from the paths of [`ContentSelector`]s). This module only names which
//! inputs take one and folds the given digest into a record (`@-1`).
//!
//! ```
//! use inlay_core::cachekey::{KeyProfile, cache_map, VertexFacts};
//! use inlay_core::op::{ExecMeta, ExecOp, Graph, Input, Mount, Op, SourceOp};
//! use inlay_core::Platform;
//!
//! let mut graph = Graph::default();
//! let base = graph.add(Op::Source(SourceOp::image("docker.io/library/busybox:latest")), vec![]);
//! let mut meta = ExecMeta::shell("echo hello > /hello.txt", "/");
//! meta.env = vec!["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()];
//! let run = graph.add(
//!     Op::Exec(ExecOp { meta, mounts: vec![Mount::rootfs(0)], ..ExecOp::default() }),
//!     vec![Input::new(base, 0)],
//! );
//! let map = cache_map(&graph, run, KeyProfile::BuildkitV08, &Platform::linux_amd64(),
//!     &VertexFacts::default()).unwrap();
//! // Spec section 8.3: the first RUN of the v0.8 sample.
//! assert_eq!(
//!     map.record_digests(0)[0].to_string(),
//!     "sha256:1684127940f02bad5357d1571ebc6d3aff3b1b590a53fe80c2eac2f833ad6676"
//! );
//! assert_eq!(map.inputs[0].selector, None);
//! ```

mod error;
mod exec;
mod file;
mod lowered;
mod solve;
mod source;

pub use error::KeyError;
pub use solve::{KeyGraph, KeyId, KeyKind, KeyLink, KeyNode, KeySolver, solve_keys};
pub use source::{ImageKeyFacts, image_manifest_key};

use std::fmt;
use std::str::FromStr;

use crate::cache::key::record_digest;
use crate::gojson::ControlEscapes;
use crate::op::{Graph, Op, VertexId};
use crate::{Digest, Platform};

/// A BuildKit key scheme: which bytes each op's CacheMap pre-image has and which selectors its
/// links carry (spec section 5.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum KeyProfile {
    /// BuildKit v0.8 as vendored by docker 20.10: gogo-protobuf JSON (`Mount.input`/`output`
    /// always written, `byName.input` always written, `byID`), no RUN selector, no
    /// `OSVersion`/`OSFeatures`, no cache-mount id clearing, Go < 1.22 escapes.
    BuildkitV08,
    /// The newest BuildKit (the v0.24 sample's rules): v0.13 RUN selectors and cache-mount id
    /// clearing, v0.17 mount `omitempty`, v0.18 owner encoding (`byName`/`byId`), `OSVersion`
    /// and `OSFeatures` in exec and image keys, Go 1.22 escapes.
    BuildkitCurrent,
}

impl KeyProfile {
    /// Every profile, oldest first.
    pub const ALL: [KeyProfile; 2] = [KeyProfile::BuildkitV08, KeyProfile::BuildkitCurrent];

    /// The profile's name as the CLI spells it (`buildkit-v0.8`, `buildkit-current`).
    pub fn name(self) -> &'static str {
        match self {
            KeyProfile::BuildkitV08 => "buildkit-v0.8",
            KeyProfile::BuildkitCurrent => "buildkit-current",
        }
    }

    /// The content-hash rules of the same BuildKit (spec section 5.8): docker 20.10's v0.8 rules,
    /// or for the current profile the v0.13–v0.24 rules verified on the v0.24 sample.
    pub fn content_profile(self) -> crate::contenthash::Profile {
        match self {
            KeyProfile::BuildkitV08 => crate::contenthash::Profile::BuildkitV08,
            KeyProfile::BuildkitCurrent => crate::contenthash::Profile::BuildkitV13,
        }
    }

    /// How Go escapes backspace and form feed in this BuildKit's pre-images.
    pub fn escapes(self) -> ControlEscapes {
        match self {
            KeyProfile::BuildkitV08 => ControlEscapes::Unicode,
            KeyProfile::BuildkitCurrent => ControlEscapes::Short,
        }
    }

    /// v0.13+: exec selectors for every mount (`sha256("/")` for a rootfs), cache-mount id and
    /// sharing clearing, `OSVersion`/`OSFeatures` (spec sections 5.3, 5.5).
    pub(crate) fn v0_13(self) -> bool {
        matches!(self, KeyProfile::BuildkitCurrent)
    }

    /// v0.10+: `pb.Mount` has a `TmpfsOpt` field (written as `"TmpfsOpt":{}` for a tmpfs
    /// mount with no size); v0.8's message has none.
    pub(crate) fn has_tmpfs_opt(self) -> bool {
        matches!(self, KeyProfile::BuildkitCurrent)
    }

    /// v0.17+: protobuf-go JSON, so `Mount.input`/`output`, `NamedUserOpt.input` and
    /// `MergeInput.input` are `omitempty` (spec section 5.5).
    pub(crate) fn protobuf_go(self) -> bool {
        matches!(self, KeyProfile::BuildkitCurrent)
    }
}

impl fmt::Display for KeyProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyProfile {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<KeyProfile, KeyError> {
        KeyProfile::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| KeyError::UnknownProfile { name: s.to_owned() })
    }
}

/// An op's CacheMap digest: a stable digest, or a random one that BuildKit never exports and
/// never matches across builds (local and session sources, spec section 5.7).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OpDigest {
    /// A digest that names the op in every build.
    Stable(Digest),
    /// `random:…`: unique to this build.
    Random(Digest),
}

impl OpDigest {
    /// The record key of output `output` (spec section 5.1).
    pub fn record(&self, output: i64) -> RecordKey {
        match self {
            OpDigest::Stable(d) => RecordKey::Stable(record_digest(d, output)),
            OpDigest::Random(d) => RecordKey::Random(record_digest(d, output)),
        }
    }
}

/// The digest of a cache record (`rootKey(digest, output)`), or a random one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKey {
    /// A record digest as it appears in cache configs.
    Stable(Digest),
    /// A random key: never exported, never matched.
    Random(Digest),
}

impl RecordKey {
    /// The exportable record digest, `None` for random keys.
    pub fn stable(&self) -> Option<&Digest> {
        match self {
            RecordKey::Stable(d) => Some(d),
            RecordKey::Random(_) => None,
        }
    }
}

/// One of an op's CacheMap digests with the bytes it was hashed from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpKey {
    /// The digest.
    pub digest: OpDigest,
    /// The pre-image (Go JSON for exec/file/merge/image-manifest keys, the source key text
    /// for sources); kept for `inlay explain`.
    pub pre_image: String,
}

/// BuildKit's CacheMap of one vertex (spec section 5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheMap {
    /// The op's digests: one for most ops; an image source gives its manifest key and its
    /// chainID key (spec section 5.7); none for scratch.
    pub keys: Vec<OpKey>,
    /// Per input of the vertex (the graph's input order): how its links are keyed. Inputs that
    /// BuildKit does not see (scratch) are [`InputKeying::absent`].
    pub inputs: Vec<InputKeying>,
}

impl CacheMap {
    /// The record keys of output `output`, one per op digest.
    pub fn record_keys(&self, output: i64) -> Vec<RecordKey> {
        self.keys.iter().map(|k| k.digest.record(output)).collect()
    }

    /// The stable record digests of output `output`.
    pub fn record_digests(&self, output: i64) -> Vec<Digest> {
        self.record_keys(output)
            .into_iter()
            .filter_map(|k| match k {
                RecordKey::Stable(d) => Some(d),
                RecordKey::Random(_) => None,
            })
            .collect()
    }
}

/// How one input of an op is keyed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InputKeying {
    /// The BuildKit input index, `None` when BuildKit has no such input (a scratch input).
    pub buildkit_index: Option<usize>,
    /// The selector put on definition links from this input (spec section 5.3).
    pub selector: Option<Digest>,
    /// The paths a content key of this input covers, when the input takes one (spec 5.4).
    pub content: Option<Vec<ContentSelector>>,
}

impl InputKeying {
    /// An input BuildKit does not see.
    pub fn absent() -> InputKeying {
        InputKeying::default()
    }
}

/// One path a content key covers, in the order the checksums are joined (spec section 5.4).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentSelector {
    /// Absolute path inside the input (`/` for all of it).
    pub path: String,
    /// Checksum as a wildcard pattern.
    pub wildcard: bool,
    /// Follow a symlink at the path.
    pub follow_links: bool,
    /// Include patterns (newer BuildKit's `COPY --parents`/`--exclude`).
    pub include_patterns: Vec<String>,
    /// Exclude patterns.
    pub exclude_patterns: Vec<String>,
}

/// Facts about a vertex that are not in the op: what the caller resolved.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VertexFacts {
    /// For an image source: the resolved image.
    pub image: Option<ImageKeyFacts>,
    /// For other sources (git, http, ...): the source keys their implementation returns, in
    /// query order. Ignored for image, local and scratch sources.
    pub source_keys: Vec<String>,
}

/// The CacheMap of vertex `vertex` of `graph` under `profile`; `default_platform` stands for
/// the daemon's platform when the vertex has none.
pub fn cache_map(
    graph: &Graph,
    vertex: VertexId,
    profile: KeyProfile,
    default_platform: &Platform,
    facts: &VertexFacts,
) -> Result<CacheMap, KeyError> {
    let lowered = lowered::Lowered::new(graph, vertex)?;
    let platform = graph
        .vertex(vertex)
        .platform
        .as_ref()
        .unwrap_or(default_platform);
    let (keys, deps) = match &lowered.op {
        Op::Source(source) => (
            source::source_keys(vertex, source, platform, facts, profile)?,
            Vec::new(),
        ),
        Op::Exec(exec) => {
            exec::exec_cache_map(vertex, exec, lowered.input_count(), platform, profile)?
        }
        Op::File(file) => file::file_cache_map(vertex, file, lowered.input_count(), profile)?,
        Op::Merge(merge) => source::merge_cache_map(merge, lowered.input_count(), profile),
    };
    let inputs = lowered
        .input_map
        .iter()
        .map(|bk| match bk {
            None => InputKeying::absent(),
            Some(i) => {
                let (selector, content) = deps.get(*i).cloned().unwrap_or_default();
                InputKeying {
                    buildkit_index: Some(*i),
                    selector,
                    content,
                }
            }
        })
        .collect();
    Ok(CacheMap { keys, inputs })
}

/// Per BuildKit input: selector and content selectors.
pub(crate) type DepKeying = (Option<Digest>, Option<Vec<ContentSelector>>);

/// Go's `path.Join("/", p)`: an absolute, cleaned path.
pub(crate) fn join_root(p: &str) -> String {
    crate::gopath::join_root(p)
}

/// Go's `path.Base`.
pub(crate) fn base_name(p: &str) -> String {
    crate::gopath::base(p).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_paths() {
        assert_eq!(join_root(""), "/");
        assert_eq!(join_root("a/../b/"), "/b");
        assert_eq!(join_root("/x//y/."), "/x/y");
        assert_eq!(join_root("../.."), "/");
        assert_eq!(base_name("/out/"), "out");
        assert_eq!(base_name("/"), "/");
        assert_eq!(base_name("data.txt"), "data.txt");
        assert_eq!(base_name(""), ".");
    }

    #[test]
    fn content_profiles_pair_with_key_profiles() {
        use crate::contenthash::Profile;
        assert_eq!(
            KeyProfile::BuildkitV08.content_profile(),
            Profile::BuildkitV08
        );
        assert_eq!(
            KeyProfile::BuildkitCurrent.content_profile(),
            Profile::BuildkitV13
        );
    }

    #[test]
    fn profile_names_round_trip() {
        for p in KeyProfile::ALL {
            assert_eq!(p.name().parse::<KeyProfile>().unwrap(), p);
        }
        assert!("buildkit-v9".parse::<KeyProfile>().is_err());
    }
}
