//! What a check found: per step a hit or the causes of a miss, and the image verdict.

use inlay_core::Digest;
use inlay_core::cache::artifact::ExplainFacts;
use inlay_core::cachekey::KeyProfile;
use inlay_core::op::VertexId;
use serde_json::Value;

/// What a cache reference resolved to, for the explanations (manifest and config only).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheRefImage {
    /// The reference as given.
    pub reference: String,
    /// The top-level manifest (or index) digest.
    pub digest: Digest,
    /// The image config of the build's platform (its history, rootfs and platform).
    pub config: Value,
    /// inlay's explain facts pushed beside the image (`None` for BuildKit's images).
    pub facts: Option<ExplainFacts>,
}

/// The outcome of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// An imported record matched and has a result.
    Hit {
        /// The origin label (`REF linux/amd64`, `REF stages cache`).
        origin: String,
        /// The record digest that matched.
        record: Digest,
    },
    /// Nothing usable matched; the causes found, most specific first.
    Miss(Vec<MissCause>),
}

/// One step of the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepCheck {
    /// The step number (1-based, build order).
    pub number: usize,
    /// The step's vertex in the build graph.
    pub vertex: VertexId,
    /// `[stage i/n] INSTRUCTION`.
    pub description: String,
    /// The Dockerfile line of the instruction.
    pub line: usize,
    /// The step's record digest under the solved profile (`None`: random key).
    pub record: Option<Digest>,
    /// Whether the key lacks a content key that needs a built stage or image
    /// (`COPY --from`): a hit is then decided on the definition links only.
    pub content_pending: bool,
    /// Hit or miss.
    pub verdict: Verdict,
}

impl StepCheck {
    /// Whether the step hit.
    pub fn is_hit(&self) -> bool {
        matches!(self.verdict, Verdict::Hit { .. })
    }
}

/// Why a step missed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MissCause {
    /// No cache reference was given or none imported.
    NoCacheRef,
    /// The step's key is random (it can never hit).
    Random,
    /// The records match under another key profile: the cache was written by another
    /// BuildKit generation (or with `--cache-to type=inline,profile=...`).
    KeyProfile {
        /// The profile the cache matches.
        cache: KeyProfile,
        /// The profile this build keys with.
        build: KeyProfile,
    },
    /// The instruction text changed.
    Command {
        /// The cached image's history text.
        old: String,
        /// This build's.
        new: String,
    },
    /// A build arg value changed (seen in `RUN |N K=V ...`).
    Arg {
        /// The ARG.
        name: String,
        /// The cached value (`None`: not set then).
        old: Option<String>,
        /// This build's value.
        new: Option<String>,
        /// The line of the `ARG` instruction that declared it.
        line: Option<usize>,
    },
    /// An `ENV` value in effect changed.
    Env {
        /// The variable.
        name: String,
        /// The cached value.
        old: Option<String>,
        /// This build's value.
        new: Option<String>,
        /// The line of the `ENV` instruction that sets it now.
        line: Option<usize>,
    },
    /// The base image is not the one the cache was built on.
    BaseImage {
        /// The base reference.
        reference: String,
        /// Its digest now.
        digest: Option<Digest>,
        /// The digest the cache was built on, when the cache reference says (inlay's facts).
        old: Option<Digest>,
        /// What differs (layers, or only the manifest).
        detail: String,
    },
    /// The files a `COPY`/`ADD` reads changed (content, mode or owner).
    CopySources {
        /// The source paths the content key covers.
        paths: Vec<String>,
        /// The files whose checksum differs, added or removed, when the cache reference
        /// carries inlay's facts (empty: not known).
        changed: Vec<String>,
    },
    /// The cache was built for another platform.
    Platform {
        /// The cached image's platform.
        cache: String,
        /// This build's.
        build: String,
    },
    /// The step's parent missed: the chain broke at an earlier step.
    ParentMissed {
        /// The step where the chain broke.
        step: String,
    },
    /// The parents hit but no record for this step hangs off them and no old text differs
    /// (a flag, a mount, a selector).
    Definition {
        /// A record built on the same parent before (its digest), when there is one.
        nearest: Option<Digest>,
    },
    /// The record matched but the cache holds no result for it (e.g. a stage the inline cache
    /// does not carry).
    NoResult,
}

impl MissCause {
    /// A short machine name (`command`, `arg`, `env`, `base`, `copy`, `platform`,
    /// `key-profile`, `parent`, `definition`, `no-result`, `no-cache-ref`, `random`).
    pub fn kind(&self) -> &'static str {
        match self {
            MissCause::NoCacheRef => "no-cache-ref",
            MissCause::Random => "random",
            MissCause::KeyProfile { .. } => "key-profile",
            MissCause::Command { .. } => "command",
            MissCause::Arg { .. } => "arg",
            MissCause::Env { .. } => "env",
            MissCause::BaseImage { .. } => "base",
            MissCause::CopySources { .. } => "copy",
            MissCause::Platform { .. } => "platform",
            MissCause::ParentMissed { .. } => "parent",
            MissCause::Definition { .. } => "definition",
            MissCause::NoResult => "no-result",
        }
    }
}

fn shown(value: Option<&String>) -> String {
    value.map_or_else(|| "(unset)".to_owned(), |v| format!("{v:?}"))
}

fn at_line(line: Option<usize>) -> String {
    line.map(|l| format!(" (line {l})")).unwrap_or_default()
}

impl std::fmt::Display for MissCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MissCause::NoCacheRef => write!(f, "no cache reference imported"),
            MissCause::Random => write!(f, "the step's key is random and never matches"),
            MissCause::KeyProfile { cache, build } => write!(
                f,
                "the cache was keyed with {} but this build keys with {} (a cache made by \
                 another BuildKit generation; --cache-to type=inline,profile=both writes both)",
                cache.name(),
                build.name()
            ),
            MissCause::Command { old, new } => {
                write!(f, "the command changed: was {old:?}, now {new:?}")
            }
            MissCause::Arg {
                name,
                old,
                new,
                line,
            } => write!(
                f,
                "build arg {name}{} changed: was {}, now {}",
                at_line(*line),
                shown(old.as_ref()),
                shown(new.as_ref())
            ),
            MissCause::Env {
                name,
                old,
                new,
                line,
            } => write!(
                f,
                "ENV {name}{} changed: was {}, now {}",
                at_line(*line),
                shown(old.as_ref()),
                shown(new.as_ref())
            ),
            MissCause::BaseImage {
                reference,
                digest,
                old,
                detail,
            } => {
                write!(f, "the base image {reference}")?;
                if let Some(d) = digest {
                    write!(f, " (now {d})")?;
                }
                write!(f, " is not the one the cache was built on")?;
                if let Some(o) = old {
                    write!(f, " ({o})")?;
                }
                write!(f, ": {detail}")
            }
            MissCause::CopySources { paths, changed } => {
                const SHOWN: usize = 5;
                if !changed.is_empty() {
                    let list: Vec<&str> = changed.iter().take(SHOWN).map(String::as_str).collect();
                    write!(
                        f,
                        "the COPY sources changed (content, mode or owner): {}",
                        list.join(", ")
                    )?;
                    if changed.len() > SHOWN {
                        write!(f, " and {} more", changed.len() - SHOWN)?;
                    }
                    return Ok(());
                }
                write!(f, "the COPY sources changed (content, mode or owner)")?;
                if !paths.is_empty() {
                    let list: Vec<&str> = paths.iter().take(SHOWN).map(String::as_str).collect();
                    write!(f, " under {}", list.join(", "))?;
                    if paths.len() > SHOWN {
                        write!(f, " and {} more", paths.len() - SHOWN)?;
                    }
                }
                Ok(())
            }
            MissCause::Platform { cache, build } => write!(
                f,
                "the cache was built for {cache}, this build is for {build}"
            ),
            MissCause::ParentMissed { step } => write!(
                f,
                "no cache ref has this step's parent; the chain broke at {step}"
            ),
            MissCause::Definition { nearest } => {
                write!(
                    f,
                    "the step's definition changed (a flag, mount or selector)"
                )?;
                if let Some(n) = nearest {
                    write!(f, "; the cache has {n} on the same parent")?;
                }
                Ok(())
            }
            MissCause::NoResult => {
                write!(f, "the record matched but the cache has no layers for it")
            }
        }
    }
}

/// Whether the final image would change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImageVerdict {
    /// No cache reference to compare with.
    Unknown,
    /// Every step of the final chain hits, the layers and config are the cache reference's.
    Unchanged {
        /// The cache reference.
        reference: String,
        /// Its digest, which the build reproduces.
        digest: Digest,
    },
    /// The image would differ from the cache reference.
    Changed {
        /// The cache reference compared with.
        reference: String,
        /// What differs.
        reasons: Vec<String>,
    },
}

/// The whole dry run.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    /// The profile the build keys with.
    pub profile: KeyProfile,
    /// The platform checked.
    pub platform: String,
    /// The cache references that resolved (manifest and config).
    pub cache_refs: Vec<CacheRefImage>,
    /// Every step, in build order (`FROM` lines left out).
    pub steps: Vec<StepCheck>,
    /// Whether the final image would change.
    pub image: ImageVerdict,
    /// Import problems and references that did not resolve.
    pub warnings: Vec<String>,
}

impl CheckReport {
    /// Whether every step hits.
    pub fn all_hit(&self) -> bool {
        self.steps.iter().all(StepCheck::is_hit)
    }

    /// The steps that miss.
    pub fn misses(&self) -> impl Iterator<Item = &StepCheck> {
        self.steps.iter().filter(|s| !s.is_hit())
    }
}
