//! Content digests (`algorithm:hex`), as OCI descriptors and BuildKit cache records carry them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256, Sha512};

/// A digest algorithm inlay understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Algorithm {
    /// SHA-256, the algorithm of every digest in practice.
    Sha256,
    /// SHA-512, allowed by the OCI image spec.
    Sha512,
}

impl Algorithm {
    /// The name as written before the colon.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex-encoded value.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// Why a string is not a valid digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    /// There is no `:` between algorithm and value.
    #[error("digest {input:?} has no `algorithm:` prefix")]
    MissingAlgorithm {
        /// The rejected text.
        input: String,
    },
    /// The algorithm is not one inlay supports.
    #[error("digest {input:?} uses unsupported algorithm {algorithm:?}")]
    UnsupportedAlgorithm {
        /// The rejected text.
        input: String,
        /// The algorithm part.
        algorithm: String,
    },
    /// The value is not lower-case hex of the right length.
    #[error("digest {input:?} must have {expected} lower-case hex characters after the colon")]
    BadHex {
        /// The rejected text.
        input: String,
        /// The number of hex characters the algorithm needs.
        expected: usize,
    },
}

/// A validated content digest such as `sha256:2cf2...9824`.
///
/// The text form is kept as parsed (it is always canonical: lower-case hex, known algorithm), so
/// displaying and comparing are cheap.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    text: String,
}

impl Digest {
    /// The SHA-256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Digest::from_sha256_bytes(&Sha256::digest(bytes).into())
    }

    /// The SHA-512 digest of `bytes`.
    pub fn sha512_of(bytes: &[u8]) -> Digest {
        let hash = Sha512::digest(bytes);
        Digest {
            algorithm: Algorithm::Sha512,
            text: format!("sha512:{}", hex::encode(hash)),
        }
    }

    /// Wraps a finished SHA-256 hash.
    pub fn from_sha256_bytes(hash: &[u8; 32]) -> Digest {
        Digest {
            algorithm: Algorithm::Sha256,
            text: format!("sha256:{}", hex::encode(hash)),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The hex value after the colon.
    pub fn hex(&self) -> &str {
        &self.text[self.algorithm.name().len() + 1..]
    }

    /// The whole `algorithm:hex` text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `bytes` hash to this digest.
    pub fn verifies(&self, bytes: &[u8]) -> bool {
        let actual = match self.algorithm {
            Algorithm::Sha256 => Digest::sha256_of(bytes),
            Algorithm::Sha512 => Digest::sha512_of(bytes),
        };
        actual == *self
    }

    /// A streaming hasher of the same algorithm, for verifying large content piece by piece.
    pub fn hasher(&self) -> Hasher {
        Hasher::new(self.algorithm)
    }
}

/// Incremental hashing that yields a [`Digest`].
#[derive(Clone)]
pub struct Hasher(HasherInner);

#[derive(Clone)]
enum HasherInner {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    /// A fresh hasher for `algorithm`.
    pub fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Sha256 => Hasher(HasherInner::Sha256(Sha256::new())),
            Algorithm::Sha512 => Hasher(HasherInner::Sha512(Sha512::new())),
        }
    }

    /// Feeds more bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.0 {
            HasherInner::Sha256(h) => h.update(bytes),
            HasherInner::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        match self.0 {
            HasherInner::Sha256(h) => Digest::from_sha256_bytes(&h.finalize().into()),
            HasherInner::Sha512(h) => Digest {
                algorithm: Algorithm::Sha512,
                text: format!("sha512:{}", hex::encode(h.finalize())),
            },
        }
    }
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hasher")
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(input: &str) -> Result<Digest, DigestError> {
        let Some((algorithm, hex)) = input.split_once(':') else {
            return Err(DigestError::MissingAlgorithm {
                input: input.to_owned(),
            });
        };
        let algorithm = match algorithm {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => {
                return Err(DigestError::UnsupportedAlgorithm {
                    input: input.to_owned(),
                    algorithm: other.to_owned(),
                });
            }
        };
        let hex_ok = hex.len() == algorithm.hex_len()
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex_ok {
            return Err(DigestError::BadHex {
                input: input.to_owned(),
                expected: algorithm.hex_len(),
            });
        }
        Ok(Digest {
            algorithm,
            text: input.to_owned(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.text)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Digest, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        let text = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let d: Digest = text.parse().unwrap();
        assert_eq!(d.to_string(), text);
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.hex().len(), 64);
        assert!(d.verifies(b"hello"));
        assert!(!d.verifies(b"hello!"));
    }

    #[test]
    fn rejects_bad_input_with_reason() {
        assert!(matches!(
            "abc".parse::<Digest>(),
            Err(DigestError::MissingAlgorithm { .. })
        ));
        assert!(matches!(
            "md5:abcd".parse::<Digest>(),
            Err(DigestError::UnsupportedAlgorithm { .. })
        ));
        assert!(matches!(
            "sha256:ABCD".parse::<Digest>(),
            Err(DigestError::BadHex { .. })
        ));
        let upper = format!("sha256:{}", "A".repeat(64));
        assert!(upper.parse::<Digest>().is_err());
    }

    #[test]
    fn streaming_equals_one_shot() {
        let mut h = Hasher::new(Algorithm::Sha256);
        h.update(b"hel");
        h.update(b"lo");
        assert_eq!(h.finish(), Digest::sha256_of(b"hello"));
        let mut h = Hasher::new(Algorithm::Sha512);
        h.update(b"hello");
        assert_eq!(h.finish(), Digest::sha512_of(b"hello"));
    }

    #[test]
    fn serde_round_trip() {
        let d = Digest::sha256_of(b"x");
        let json = serde_json::to_string(&d).unwrap();
        let back: Digest = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
        assert!(serde_json::from_str::<Digest>("\"sha256:zz\"").is_err());
    }
}
