//! Hardware (MAC) addresses: the primary key of a machine on the wire.
//!
//! Accepts the spellings operators paste (`52:54:00:12:34:56`, `52-54-00-12-34-56`,
//! `5254.0012.3456`, `525400123456`, any case) and always prints lowercase colons,
//! so a MAC compares and stores the same however it was typed.

use std::fmt;
use std::str::FromStr;

/// A 48-bit Ethernet address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

/// Why a string is not a MAC address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed MAC address {input:?}: expected six hex octets like 52:54:00:12:34:56")]
pub struct MacError {
    /// What was given.
    pub input: String,
}

impl Mac {
    /// The octets.
    pub fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// `52-54-00-12-34-56`, the form iPXE's `${mac:hexhyp}` prints and that is safe in URLs.
    pub fn hyphenated(&self) -> String {
        self.to_string().replace(':', "-")
    }
}

impl FromStr for Mac {
    type Err = MacError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacError {
            input: s.to_string(),
        };
        let t = s.trim();
        let hex: String = if t.contains([':', '-']) {
            let parts: Vec<&str> = t.split([':', '-']).collect();
            if parts.len() != 6 || parts.iter().any(|p| p.is_empty() || p.len() > 2) {
                return Err(err());
            }
            parts.iter().map(|p| format!("{p:0>2}")).collect()
        } else if t.contains('.') {
            let parts: Vec<&str> = t.split('.').collect();
            if parts.len() != 3 || parts.iter().any(|p| p.len() != 4) {
                return Err(err());
            }
            parts.concat()
        } else {
            t.to_string()
        };
        if hex.len() != 12 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(err());
        }
        let mut out = [0u8; 6];
        hex::decode_to_slice(&hex, &mut out).map_err(|_| err())?;
        Ok(Mac(out))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            o[0], o[1], o[2], o[3], o[4], o[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mac({self})")
    }
}

impl serde::Serialize for Mac {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Mac {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_common_spellings_and_prints_one() {
        for s in [
            "52:54:00:AB:cd:01",
            "52-54-00-ab-cd-01",
            "5254.00ab.cd01",
            "525400abcd01",
            " 52:54:0:ab:cd:1 ",
        ] {
            assert_eq!(
                s.parse::<Mac>().unwrap().to_string(),
                "52:54:00:ab:cd:01",
                "{s}"
            );
        }
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "",
            "52:54:00:ab:cd",
            "52:54:00:ab:cd:01:02",
            "52:54:00:ab:cd:zz",
            "52:54:00:ab:cd:0001",
            "52::00:ab:cd:01",
            "5254.00ab.cd0",
            "52540",
            "52:54-00:ab:cd:01:",
        ] {
            assert!(s.parse::<Mac>().is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn hyphenated_for_urls() {
        let m: Mac = "52:54:00:ab:cd:01".parse().unwrap();
        assert_eq!(m.hyphenated(), "52-54-00-ab-cd-01");
    }
}
