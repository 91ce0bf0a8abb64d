//! `algorithm:hex` digests, validated before any of them becomes part of a path.

use std::fmt;

use crate::error::{Result, StoreError};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
    Blake3,
}

impl Algorithm {
    pub const ALL: [Algorithm; 3] = [Algorithm::Sha256, Algorithm::Sha512, Algorithm::Blake3];

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
            Algorithm::Blake3 => "blake3",
        }
    }

    /// Bytes of output.
    pub fn size(self) -> usize {
        match self {
            Algorithm::Sha256 | Algorithm::Blake3 => 32,
            Algorithm::Sha512 => 64,
        }
    }

    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|alg| alg.name() == name)
    }

    pub fn parse(name: &str) -> Result<Algorithm> {
        Algorithm::from_name(name).ok_or_else(|| StoreError::DigestUnsupported {
            input: name.to_owned(),
            algorithm: name.to_owned(),
        })
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

/// The grammar of the OCI image spec for an algorithm component; anything matching it that we do
/// not implement is "unsupported" rather than "malformed".
fn is_algorithm_grammar(s: &str) -> bool {
    !s.is_empty()
        && s.split(['+', '.', '_', '-']).all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

impl Digest {
    pub fn parse(input: &str) -> Result<Digest> {
        let bad = |reason: &str| StoreError::DigestInvalidFormat {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        let (alg, hex) = input
            .split_once(':')
            .ok_or_else(|| bad("expected algorithm:hex"))?;
        if !is_algorithm_grammar(alg) {
            return Err(bad("malformed algorithm"));
        }
        let algorithm = Algorithm::from_name(alg).ok_or_else(|| StoreError::DigestUnsupported {
            input: input.to_owned(),
            algorithm: alg.to_owned(),
        })?;
        if !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad("the encoded part must be lowercase hex"));
        }
        let expected = algorithm.size() * 2;
        if hex.len() != expected {
            return Err(StoreError::DigestInvalidLength {
                input: input.to_owned(),
                algorithm: alg.to_owned(),
                expected,
                actual: hex.len(),
            });
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }

    pub fn from_raw(algorithm: Algorithm, raw: &[u8]) -> Result<Digest> {
        if raw.len() != algorithm.size() {
            return Err(StoreError::Value(format!(
                "{algorithm} digests are {} bytes, got {}",
                algorithm.size(),
                raw.len()
            )));
        }
        Ok(Digest {
            algorithm,
            hex: to_hex(raw),
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm, self.hex)
    }
}

pub fn to_hex(raw: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(raw.len() * 2);
    for b in raw {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str =
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_valid_digests() {
        let d = Digest::parse(EMPTY_SHA256).unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.to_string(), EMPTY_SHA256);
        let d512 = format!("sha512:{}", "ab".repeat(64));
        assert_eq!(Digest::parse(&d512).unwrap().algorithm(), Algorithm::Sha512);
        let b3 = format!("blake3:{}", "0f".repeat(32));
        assert_eq!(Digest::parse(&b3).unwrap().algorithm(), Algorithm::Blake3);
    }

    #[test]
    fn rejects_bad_digests() {
        let upper = EMPTY_SHA256.to_uppercase().replacen("SHA256", "sha256", 1);
        assert!(matches!(
            Digest::parse(&upper),
            Err(StoreError::DigestInvalidFormat { .. })
        ));
        assert!(matches!(
            Digest::parse("sha256:../.."),
            Err(StoreError::DigestInvalidFormat { .. })
        ));
        assert!(matches!(
            Digest::parse("sha256:abcd"),
            Err(StoreError::DigestInvalidLength { .. })
        ));
        assert!(matches!(
            Digest::parse("md5:d41d8cd98f00b204e9800998ecf8427e"),
            Err(StoreError::DigestUnsupported { .. })
        ));
        for bad in [
            "",
            "sha256",
            ":abc",
            "SHA256:ab",
            "sha256:",
            "sha256:/etc/passwd",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn hex_round_trip() {
        let raw: Vec<u8> = (0..32).collect();
        let d = Digest::from_raw(Algorithm::Sha256, &raw).unwrap();
        assert_eq!(Digest::parse(&d.to_string()).unwrap(), d);
    }
}
