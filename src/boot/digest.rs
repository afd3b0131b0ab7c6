//! SHA-256 content digests, the only way a boot plan names bytes.
//!
//! SHA-256 (not BLAKE3) because operators check these digests with `sha256sum` and OCI
//! tooling speaks the same algorithm; one algorithm everywhere keeps URLs and manifests
//! comparable.

use std::fmt;
use std::str::FromStr;

/// A SHA-256 digest. Displays as `sha256:<64 hex>`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest(pub [u8; 32]);

/// Why a string is not a digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed digest {input:?}: expected sha256:<64 lowercase hex digits>")]
pub struct DigestError {
    /// What was given.
    pub input: String,
}

impl Digest {
    /// Hashes a byte slice.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        Digest(sha2::Sha256::digest(bytes).into())
    }

    /// The 64 lowercase hex digits, without the algorithm prefix.
    pub fn hex(&self) -> String {
        self.hex_buf().as_str().to_string()
    }

    /// The hex digits in a stack buffer: no allocation (digests are formatted on every
    /// boot-script request).
    fn hex_buf(&self) -> HexBuf {
        let mut b = [0u8; 64];
        // 32 bytes always fit 64 hex digits.
        let _ = hex::encode_to_slice(self.0, &mut b);
        HexBuf(b)
    }

    /// The first 12 hex digits, for humans.
    pub fn short(&self) -> String {
        self.hex()[..12].to_string()
    }

    /// Parses bare hex (64 lowercase digits), as used in blob paths.
    pub fn from_hex(hex_str: &str) -> Result<Self, DigestError> {
        let err = || DigestError {
            input: hex_str.to_string(),
        };
        if hex_str.len() != 64
            || !hex_str
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(err());
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(hex_str, &mut out).map_err(|_| err())?;
        Ok(Digest(out))
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    /// Accepts `sha256:<hex>` only: a bare hex string is ambiguous in a CLI argument.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.strip_prefix("sha256:") {
            Some(h) => Digest::from_hex(h).map_err(|_| DigestError {
                input: s.to_string(),
            }),
            None => Err(DigestError {
                input: s.to_string(),
            }),
        }
    }
}

struct HexBuf([u8; 64]);

impl HexBuf {
    fn as_str(&self) -> &str {
        // Hex digits are ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        f.write_str(self.hex_buf().as_str())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.short())
    }
}

serde_as_text!(Digest);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        assert_eq!(
            Digest::of(b"abc").to_string(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn roundtrip_and_rejects() {
        let d = Digest::of(b"x");
        assert_eq!(d.to_string().parse::<Digest>().unwrap(), d);
        assert!(
            d.hex().parse::<Digest>().is_err(),
            "bare hex needs the prefix"
        );
        assert!("sha256:ABCD".parse::<Digest>().is_err());
        assert!(Digest::from_hex(&d.hex().to_uppercase()).is_err());
        assert!(Digest::from_hex("../../etc/passwd").is_err());
    }
}
