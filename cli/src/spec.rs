//! The comma-separated `key=value` specs that buildx flags take (`--output`, `--cache-from`,
//! `--cache-to`, `--secret`), parsed into typed values.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

/// Why a flag value does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    flag: &'static str,
    value: String,
    reason: String,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {} {:?}: {}", self.flag, self.value, self.reason)
    }
}

impl std::error::Error for SpecError {}

fn error(flag: &'static str, value: &str, reason: impl Into<String>) -> SpecError {
    SpecError {
        flag,
        value: value.to_owned(),
        reason: reason.into(),
    }
}

/// Splits `a=b,c=d` into an ordered map; a field without `=` is stored under `""` when it is the
/// first one (buildx's shorthand for a bare value such as `--cache-from REF`).
fn fields(flag: &'static str, value: &str) -> Result<BTreeMap<String, String>, SpecError> {
    let mut map = BTreeMap::new();
    for (i, field) in value.split(',').enumerate() {
        let field = field.trim();
        if field.is_empty() {
            return Err(error(flag, value, "empty field"));
        }
        match field.split_once('=') {
            Some((k, v)) => {
                let k = k.trim().to_ascii_lowercase();
                if map.insert(k.clone(), v.trim().to_owned()).is_some() {
                    return Err(error(flag, value, format!("{k} given twice")));
                }
            }
            None if i == 0 => {
                map.insert(String::new(), field.to_owned());
            }
            None => {
                return Err(error(
                    flag,
                    value,
                    format!("field {field:?} is not key=value"),
                ));
            }
        }
    }
    Ok(map)
}

fn truthy(flag: &'static str, value: &str, text: &str) -> Result<bool, SpecError> {
    match text.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(error(flag, value, format!("{text:?} is not a boolean"))),
    }
}

/// `--cache-from`: where to import cache from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheFrom {
    /// `type=registry,ref=REF` or a bare `REF`.
    Registry {
        /// The image or cache reference.
        reference: String,
    },
}

impl CacheFrom {
    /// Parses a `--cache-from` value.
    pub fn parse(value: &str) -> Result<CacheFrom, SpecError> {
        const FLAG: &str = "--cache-from";
        let map = fields(FLAG, value)?;
        if let Some(bare) = map.get("") {
            if map.len() > 1 {
                return Err(error(FLAG, value, "a bare reference takes no other fields"));
            }
            return Ok(CacheFrom::Registry {
                reference: bare.clone(),
            });
        }
        match map.get("type").map(String::as_str) {
            Some("registry") | None => match map.get("ref") {
                Some(r) if !r.is_empty() => Ok(CacheFrom::Registry {
                    reference: r.clone(),
                }),
                _ => Err(error(FLAG, value, "type=registry needs ref=REFERENCE")),
            },
            Some(other) => Err(error(
                FLAG,
                value,
                format!("cache type {other:?} is not supported (supported: registry)"),
            )),
        }
    }
}

/// Which BuildKit key profiles an inline cache is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheProfiles {
    /// Records for docker 20.10's BuildKit v0.8 and for current BuildKit, in one cache.
    Both,
    /// Only `buildkit-v0.8`.
    V08,
    /// Only `buildkit-current`.
    Current,
}

/// `--cache-to`: where to export cache to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheTo {
    /// `type=inline[,profile=buildkit-v0.8|buildkit-current|both]`.
    Inline {
        /// The key profiles to write.
        profiles: CacheProfiles,
    },
}

impl CacheTo {
    /// Parses a `--cache-to` value.
    pub fn parse(value: &str) -> Result<CacheTo, SpecError> {
        const FLAG: &str = "--cache-to";
        let map = fields(FLAG, value)?;
        let kind = map.get("type").or_else(|| map.get("")).map(String::as_str);
        match kind {
            Some("inline") => {
                let profiles = match map.get("profile").map(String::as_str) {
                    None | Some("both" | "all") => CacheProfiles::Both,
                    Some("buildkit-v0.8") => CacheProfiles::V08,
                    Some("buildkit-current") => CacheProfiles::Current,
                    Some(other) => {
                        return Err(error(
                            FLAG,
                            value,
                            format!(
                                "unknown profile {other:?} (buildkit-v0.8, buildkit-current, both)"
                            ),
                        ));
                    }
                };
                // `mode=` is accepted and ignored, as BuildKit ignores it for inline caches.
                Ok(CacheTo::Inline { profiles })
            }
            Some(other) => Err(error(
                FLAG,
                value,
                format!("cache type {other:?} is not supported (supported: inline)"),
            )),
            None => Err(error(FLAG, value, "missing type=inline")),
        }
    }
}

/// `-o/--output`: what to do with the built image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// `type=image,name=REF[,push=true]` (also `type=registry`, which implies push).
    Image {
        /// Names to tag the image with.
        names: Vec<String>,
        /// Push to the registry.
        push: bool,
        /// Use OCI media types.
        oci_mediatypes: Option<bool>,
    },
    /// `type=oci,dest=DIR|FILE.tar[,name=REF]`.
    Oci {
        /// Destination directory (OCI layout) or tarball.
        dest: PathBuf,
        /// Names for `index.json` (`-t` when none is given).
        names: Vec<String>,
    },
    /// `type=docker,dest=FILE.tar[,name=REF]` for `docker load`.
    Docker {
        /// Destination tarball.
        dest: PathBuf,
        /// Names `docker load` tags the image with (`-t` when none is given).
        names: Vec<String>,
    },
    /// `type=local,dest=DIR`: the final filesystem.
    Local {
        /// Destination directory.
        dest: PathBuf,
    },
}

impl Output {
    /// Parses an `--output` value. A bare path means `type=local,dest=PATH`, as in buildx.
    pub fn parse(value: &str) -> Result<Output, SpecError> {
        const FLAG: &str = "--output";
        let map = fields(FLAG, value)?;
        if let Some(bare) = map.get("") {
            return Ok(Output::Local {
                dest: PathBuf::from(bare),
            });
        }
        let dest = || -> Result<PathBuf, SpecError> {
            map.get("dest")
                .filter(|d| !d.is_empty())
                .map(PathBuf::from)
                .ok_or_else(|| error(FLAG, value, "this output type needs dest=PATH"))
        };
        // `name=` of an image, oci or docker output. Several names are separated by `+` or `;`
        // (buildx takes commas inside a quoted CSV field; a bare comma separates fields here).
        let names: Vec<String> = map
            .get("name")
            .map(|n| {
                n.split(['+', ';'])
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        match map.get("type").map(String::as_str) {
            Some(kind @ ("image" | "registry")) => {
                let push = match map.get("push") {
                    Some(p) => truthy(FLAG, value, p)?,
                    None => kind == "registry",
                };
                let oci_mediatypes = map
                    .get("oci-mediatypes")
                    .map(|v| truthy(FLAG, value, v))
                    .transpose()?;
                Ok(Output::Image {
                    names,
                    push,
                    oci_mediatypes,
                })
            }
            Some("oci") => Ok(Output::Oci {
                dest: dest()?,
                names,
            }),
            Some("docker") => Ok(Output::Docker {
                dest: dest()?,
                names,
            }),
            Some("local") => Ok(Output::Local { dest: dest()? }),
            Some(other) => Err(error(
                FLAG,
                value,
                format!(
                    "output type {other:?} is not supported (image, registry, oci, docker, local)"
                ),
            )),
            None => Err(error(FLAG, value, "missing type=")),
        }
    }
}

/// `--secret id=ID[,src=PATH|env=VAR]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Secret {
    /// The id `RUN --mount=type=secret,id=ID` refers to.
    pub id: String,
    /// Where its value comes from.
    pub source: SecretSource,
}

/// Where a secret's value is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file.
    File(PathBuf),
    /// An environment variable.
    Env(String),
}

impl Secret {
    /// Parses a `--secret` value. Without `src`/`env`, buildx reads the variable named like the id.
    pub fn parse(value: &str) -> Result<Secret, SpecError> {
        const FLAG: &str = "--secret";
        let map = fields(FLAG, value)?;
        if map.contains_key("") {
            return Err(error(FLAG, value, "expected id=ID[,src=PATH|env=VAR]"));
        }
        if let Some(kind) = map.get("type") {
            if kind != "file" && kind != "env" {
                return Err(error(
                    FLAG,
                    value,
                    format!("secret type {kind:?} is not file or env"),
                ));
            }
        }
        let id = map
            .get("id")
            .filter(|s| !s.is_empty())
            .cloned()
            .ok_or_else(|| error(FLAG, value, "missing id=ID"))?;
        let src = map.get("src").or_else(|| map.get("source"));
        let source = match (src, map.get("env")) {
            (Some(_), Some(_)) => return Err(error(FLAG, value, "give src= or env=, not both")),
            (Some(path), None) => SecretSource::File(PathBuf::from(path)),
            (None, Some(var)) => SecretSource::Env(var.clone()),
            (None, None) if map.get("type").map(String::as_str) == Some("file") => {
                SecretSource::File(PathBuf::from(&id))
            }
            (None, None) => SecretSource::Env(id.clone()),
        };
        Ok(Secret { id, source })
    }
}

/// `--build-arg KEY[=VALUE]`: without a value, the variable is taken from the environment when
/// set (Docker's behaviour), else the argument is dropped.
pub fn parse_build_arg(value: &str) -> Result<(String, Option<String>), SpecError> {
    let (key, val) = match value.split_once('=') {
        Some((k, v)) => (k, Some(v.to_owned())),
        None => (value, None),
    };
    if key.is_empty() {
        return Err(error("--build-arg", value, "empty name"));
    }
    Ok((key.to_owned(), val))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_from() {
        let reg = |r: &str| CacheFrom::Registry {
            reference: r.to_owned(),
        };
        assert_eq!(
            CacheFrom::parse("localhost:5000/app").unwrap(),
            reg("localhost:5000/app")
        );
        assert_eq!(
            CacheFrom::parse("type=registry,ref=localhost:5000/app:cache").unwrap(),
            reg("localhost:5000/app:cache")
        );
        for bad in ["type=local,src=x", "type=registry", "ref=", "a,b", "x,,y"] {
            assert!(CacheFrom::parse(bad).is_err(), "{bad}");
        }
        let message = CacheFrom::parse("type=gha").unwrap_err().to_string();
        assert!(
            message.contains("--cache-from") && message.contains("gha"),
            "{message}"
        );
    }

    #[test]
    fn cache_to() {
        assert_eq!(
            CacheTo::parse("type=inline").unwrap(),
            CacheTo::Inline {
                profiles: CacheProfiles::Both
            }
        );
        assert_eq!(
            CacheTo::parse("type=inline,profile=buildkit-v0.8,mode=max").unwrap(),
            CacheTo::Inline {
                profiles: CacheProfiles::V08
            }
        );
        assert_eq!(
            CacheTo::parse("inline").unwrap(),
            CacheTo::Inline {
                profiles: CacheProfiles::Both
            }
        );
        assert!(CacheTo::parse("type=registry,ref=x").is_err());
        assert!(CacheTo::parse("type=inline,profile=v9").is_err());
    }

    #[test]
    fn outputs() {
        assert_eq!(
            Output::parse("type=image,name=a/b:1+a/b:2,push=true").unwrap(),
            Output::Image {
                names: vec!["a/b:1".into(), "a/b:2".into()],
                push: true,
                oci_mediatypes: None
            }
        );
        assert!(matches!(
            Output::parse("type=registry,name=x,oci-mediatypes=true").unwrap(),
            Output::Image {
                push: true,
                oci_mediatypes: Some(true),
                ..
            }
        ));
        assert_eq!(
            Output::parse("type=docker,dest=out.tar").unwrap(),
            Output::Docker {
                dest: "out.tar".into(),
                names: vec![],
            }
        );
        assert_eq!(
            Output::parse("type=docker,dest=out.tar,name=a/b:c").unwrap(),
            Output::Docker {
                dest: "out.tar".into(),
                names: vec!["a/b:c".into()],
            }
        );
        assert_eq!(
            Output::parse("type=oci,dest=out.tar,name=a/b:1+a/b:2").unwrap(),
            Output::Oci {
                dest: "out.tar".into(),
                names: vec!["a/b:1".into(), "a/b:2".into()],
            }
        );
        assert_eq!(
            Output::parse("./out").unwrap(),
            Output::Local {
                dest: "./out".into()
            }
        );
        assert!(Output::parse("type=oci").is_err());
        assert!(Output::parse("type=tar,dest=x").is_err());
        assert!(Output::parse("type=image,push=maybe").is_err());
    }

    #[test]
    fn secrets_and_args() {
        assert_eq!(
            Secret::parse("id=tok,src=/run/tok").unwrap(),
            Secret {
                id: "tok".into(),
                source: SecretSource::File("/run/tok".into())
            }
        );
        assert_eq!(
            Secret::parse("id=TOKEN").unwrap().source,
            SecretSource::Env("TOKEN".into())
        );
        assert!(Secret::parse("src=x").is_err());
        assert!(Secret::parse("id=a,src=x,env=y").is_err());
        assert_eq!(
            parse_build_arg("A=b=c").unwrap(),
            ("A".into(), Some("b=c".into()))
        );
        assert_eq!(parse_build_arg("A").unwrap(), ("A".into(), None));
        assert!(parse_build_arg("=x").is_err());
    }
}
