//! Platforms (`os/arch/variant`), normalised and matched as containerd and BuildKit do.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A target platform, as written in image indexes and configs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture in Go's spelling (`amd64`, `arm64`, `arm`, `386`, ...).
    pub architecture: String,
    /// Operating system in Go's spelling (`linux`, `windows`, ...).
    pub os: String,
    /// OS version (Windows images).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub os_version: String,
    /// Required OS features (Windows images).
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    /// CPU variant (`v7` for `arm`, `v8` for `arm64`, ...).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

/// Why a platform string does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlatformError {
    /// The text is not `os[/arch[/variant]]` with non-empty parts.
    #[error("platform {input:?} is not of the form os/arch[/variant]")]
    Malformed {
        /// The rejected text.
        input: String,
    },
}

impl Platform {
    /// A normalised platform from its parts.
    pub fn new(os: &str, architecture: &str, variant: &str) -> Platform {
        let (architecture, variant) = normalize_arch(architecture, variant);
        Platform {
            architecture,
            os: os.to_ascii_lowercase(),
            os_version: String::new(),
            os_features: Vec::new(),
            variant,
        }
    }

    /// `linux/amd64`, the platform of the sample caches and of most CI runners.
    pub fn linux_amd64() -> Platform {
        Platform::new("linux", "amd64", "")
    }

    /// This platform with architecture and variant normalised.
    #[must_use]
    pub fn normalized(&self) -> Platform {
        let (architecture, variant) = normalize_arch(&self.architecture, &self.variant);
        Platform {
            architecture,
            os: self.os.to_ascii_lowercase(),
            os_version: self.os_version.clone(),
            os_features: self.os_features.clone(),
            variant,
        }
    }

    /// Whether an image for `self` can run where `wanted` is asked for.
    ///
    /// OS and architecture must agree after normalisation. An `arm` image of a lower variant runs
    /// on a higher one (v5 on v6 on v7 on v8), as containerd's default matcher allows; otherwise
    /// variants must be equal, and an empty wanted variant accepts any.
    pub fn satisfies(&self, wanted: &Platform) -> bool {
        let have = self.normalized();
        let want = wanted.normalized();
        if have.os != want.os || have.architecture != want.architecture {
            return false;
        }
        if want.variant.is_empty() || have.variant == want.variant {
            return true;
        }
        if have.architecture == "arm" {
            let rank = |v: &str| v.strip_prefix('v').and_then(|n| n.parse::<u8>().ok());
            return matches!((rank(&have.variant), rank(&want.variant)), (Some(h), Some(w)) if h <= w);
        }
        false
    }
}

/// containerd's normalisation of architecture aliases and default variants.
fn normalize_arch(architecture: &str, variant: &str) -> (String, String) {
    let arch = architecture.to_ascii_lowercase();
    let variant = variant.to_ascii_lowercase();
    match arch.as_str() {
        "i386" => ("386".to_owned(), String::new()),
        "x86_64" | "x86-64" | "amd64" => {
            let variant = if variant == "v1" {
                String::new()
            } else {
                variant
            };
            ("amd64".to_owned(), variant)
        }
        "aarch64" | "arm64" => {
            let variant = match variant.as_str() {
                "8" | "v8" | "v8.0" => String::new(),
                _ => variant,
            };
            ("arm64".to_owned(), variant)
        }
        "armhf" => ("arm".to_owned(), "v7".to_owned()),
        "armel" => ("arm".to_owned(), "v6".to_owned()),
        "arm" => {
            let variant = match variant.as_str() {
                "" | "7" => "v7".to_owned(),
                "5" | "6" | "8" => format!("v{variant}"),
                _ => variant,
            };
            ("arm".to_owned(), variant)
        }
        _ => (arch, variant),
    }
}

impl FromStr for Platform {
    type Err = PlatformError;

    /// Parses `os/arch[/variant]`, as `--platform` takes it.
    fn from_str(input: &str) -> Result<Platform, PlatformError> {
        let parts: Vec<&str> = input.split('/').collect();
        let malformed = || PlatformError::Malformed {
            input: input.to_owned(),
        };
        if parts.iter().any(|p| p.is_empty()) {
            return Err(malformed());
        }
        match parts.as_slice() {
            [os, arch] => Ok(Platform::new(os, arch, "")),
            [os, arch, variant] => Ok(Platform::new(os, arch, variant)),
            _ => Err(malformed()),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalises() {
        assert_eq!(
            "linux/x86_64".parse::<Platform>().unwrap(),
            Platform::linux_amd64()
        );
        assert_eq!(
            "linux/arm".parse::<Platform>().unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            "linux/aarch64/v8".parse::<Platform>().unwrap().to_string(),
            "linux/arm64"
        );
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux//v7".parse::<Platform>().is_err());
        assert!("a/b/c/d".parse::<Platform>().is_err());
    }

    #[test]
    fn matching() {
        let amd64 = Platform::linux_amd64();
        assert!(amd64.satisfies(&"linux/amd64".parse().unwrap()));
        assert!(!amd64.satisfies(&"linux/arm64".parse().unwrap()));
        let v6: Platform = "linux/arm/v6".parse().unwrap();
        assert!(v6.satisfies(&"linux/arm/v7".parse().unwrap()));
        assert!(!"linux/arm/v7".parse::<Platform>().unwrap().satisfies(&v6));
    }

    #[test]
    fn serde_names() {
        let p: Platform =
            serde_json::from_str(r#"{"architecture":"arm","os":"linux","variant":"v7"}"#).unwrap();
        assert_eq!(p.to_string(), "linux/arm/v7");
        let json = serde_json::to_string(&Platform::linux_amd64()).unwrap();
        assert_eq!(json, r#"{"architecture":"amd64","os":"linux"}"#);
    }
}
