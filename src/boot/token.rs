//! Per-boot report tokens: what makes a `booted`/`failed`/`progress` report something
//! only the boot that was served can send.
//!
//! A [`ReportToken`] is a [`BootId`] (fresh for each rendered plan) and a tag,
//! HMAC-SHA256 under the server's [`ReportKey`] over a fixed-length message: a domain
//! string, the MAC's six bytes, the manifest digest's 32 bytes and the boot id's eight.
//! A token therefore names one MAC, one manifest and one boot; a token of another MAC or
//! manifest does not verify. The tag is the HMAC's first 16 bytes (128 bits), compared
//! in constant time ([`ReportKey::verify`]).
//!
//! Verification is stateless: nothing is stored per token, so a restart keeps every
//! token of the same key valid, and a token stays valid until the key is replaced.
//!
//! Pure: the key and the boot id are inputs (the key file and the random boot ids are
//! the caller's, see `http::report_key`); no I/O, no clock, no randomness here.

use std::fmt;
use std::str::FromStr;

use hmac::{KeyInit, Mac as _};

use super::{Digest, Mac};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Bytes of the tag kept in a token.
const TAG_LEN: usize = 16;

/// The domain of the MAC'd message (a key is never used to sign anything else).
const DOMAIN: &[u8] = b"tabula report token v1\0";

/// The server's secret for report tokens: 32 random bytes. Its `Debug` shows nothing of it.
#[derive(Clone)]
pub struct ReportKey([u8; 32]);

impl fmt::Debug for ReportKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReportKey(<secret>)")
    }
}

/// One rendered boot plan's id: random, not secret (it is in the token's text).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BootId(pub [u8; 8]);

/// What a callback URL carries to prove the report comes from a boot tabula served.
/// Its text is 48 lowercase hex digits: the boot id's 16, then the tag's 32.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ReportToken {
    pub boot: BootId,
    tag: [u8; TAG_LEN],
}

impl fmt::Debug for ReportToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReportToken({self})")
    }
}

impl ReportKey {
    /// A key from its bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> ReportKey {
        ReportKey(bytes)
    }

    fn hmac(&self, mac: Mac, manifest: Digest, boot: BootId) -> HmacSha256 {
        // A 32-byte key is always a valid HMAC key.
        let mut h = <HmacSha256 as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        h.update(DOMAIN);
        h.update(&mac.0);
        h.update(&manifest.0);
        h.update(&boot.0);
        h
    }

    /// The token of boot `boot` of `manifest` on `mac`.
    pub fn token(&self, mac: Mac, manifest: Digest, boot: BootId) -> ReportToken {
        let full = self.hmac(mac, manifest, boot).finalize().into_bytes();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full[..TAG_LEN]);
        ReportToken { boot, tag }
    }

    /// Whether `token` was made by this key for `mac` and `manifest` (constant time in
    /// the tag).
    pub fn verify(&self, mac: Mac, manifest: Digest, token: &ReportToken) -> bool {
        self.hmac(mac, manifest, token.boot)
            .verify_truncated_left(&token.tag)
            .is_ok()
    }
}

/// What [`crate::inventory::select_for_boot`] needs to put a token into a plan: the key
/// and this rendering's boot id.
#[derive(Clone, Copy, Debug)]
pub struct BootSeal<'a> {
    pub key: &'a ReportKey,
    pub boot: BootId,
}

impl BootSeal<'_> {
    /// The token for `mac` booting `manifest` under this seal.
    pub fn token(&self, mac: Mac, manifest: Digest) -> ReportToken {
        self.key.token(mac, manifest, self.boot)
    }
}

impl fmt::Display for ReportToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.boot.0))?;
        f.write_str(&hex::encode(self.tag))
    }
}

/// Why a token's text does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a report token is 48 lowercase hex digits")]
pub struct TokenError;

impl FromStr for ReportToken {
    type Err = TokenError;
    fn from_str(s: &str) -> Result<Self, TokenError> {
        let b = s.as_bytes();
        if b.len() != 2 * (8 + TAG_LEN) || !b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(TokenError);
        }
        let mut boot = [0u8; 8];
        let mut tag = [0u8; TAG_LEN];
        hex::decode_to_slice(&b[..16], &mut boot).map_err(|_| TokenError)?;
        hex::decode_to_slice(&b[16..], &mut tag).map_err(|_| TokenError)?;
        Ok(ReportToken {
            boot: BootId(boot),
            tag,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = Mac([0x52, 0x54, 0, 0, 0, 0x42]);

    #[test]
    fn a_token_verifies_only_for_its_mac_manifest_and_key() {
        let key = ReportKey::from_bytes([7; 32]);
        let m = Digest([1; 32]);
        let t = key.token(MAC, m, BootId([9; 8]));
        assert!(key.verify(MAC, m, &t));
        assert!(!key.verify(Mac([0x52, 0x54, 0, 0, 0, 0x43]), m, &t));
        assert!(!key.verify(MAC, Digest([2; 32]), &t));
        assert!(!ReportKey::from_bytes([8; 32]).verify(MAC, m, &t));
        // Another boot id with the same tag is another (invalid) token.
        let other: ReportToken = format!("{}{}", "00".repeat(8), &t.to_string()[16..])
            .parse()
            .unwrap();
        assert!(!key.verify(MAC, m, &other));
        // Different boots of one plan get different tokens.
        assert_ne!(t, key.token(MAC, m, BootId([10; 8])));
    }

    #[test]
    fn text_round_trips_and_is_strict() {
        let t = ReportKey::from_bytes([3; 32]).token(MAC, Digest([4; 32]), BootId([5; 8]));
        let s = t.to_string();
        assert_eq!(s.len(), 48);
        assert!(s.starts_with("0505050505050505"));
        assert_eq!(s.parse::<ReportToken>(), Ok(t));
        for bad in ["", "booted", &s[..47], &s.to_uppercase(), &format!("{s}0")] {
            assert_eq!(bad.parse::<ReportToken>(), Err(TokenError), "{bad}");
        }
        assert_eq!(
            format!("{:?}", ReportKey::from_bytes([3; 32])),
            "ReportKey(<secret>)"
        );
    }
}
