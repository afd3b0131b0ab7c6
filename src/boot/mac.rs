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
        String::from_utf8_lossy(&self.text(b'-')).into_owned()
    }
}

impl FromStr for Mac {
    type Err = MacError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // No allocation: every boot-script request parses one.
        let err = || MacError {
            input: s.to_string(),
        };
        let t = s.trim();
        let mut hex = [b'0'; 12];
        if t.contains([':', '-']) {
            let mut n = 0;
            for p in t.split([':', '-']) {
                if n == 6 || p.is_empty() || p.len() > 2 {
                    return Err(err());
                }
                hex[n * 2 + 2 - p.len()..n * 2 + 2].copy_from_slice(p.as_bytes());
                n += 1;
            }
            if n != 6 {
                return Err(err());
            }
        } else if t.contains('.') {
            let mut n = 0;
            for p in t.split('.') {
                if n == 3 || p.len() != 4 {
                    return Err(err());
                }
                hex[n * 4..n * 4 + 4].copy_from_slice(p.as_bytes());
                n += 1;
            }
            if n != 3 {
                return Err(err());
            }
        } else if t.len() == 12 {
            hex.copy_from_slice(t.as_bytes());
        } else {
            return Err(err());
        }
        let mut out = [0u8; 6];
        hex::decode_to_slice(hex, &mut out).map_err(|_| err())?;
        Ok(Mac(out))
    }
}

impl Mac {
    /// The text form with `sep` between octets, in a stack buffer.
    fn text(&self, sep: u8) -> [u8; 17] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut b = [sep; 17];
        for (i, o) in self.0.iter().enumerate() {
            b[i * 3] = DIGITS[usize::from(o >> 4)];
            b[i * 3 + 1] = DIGITS[usize::from(o & 15)];
        }
        b
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Only ASCII hex digits and colons.
        f.write_str(std::str::from_utf8(&self.text(b':')).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mac({self})")
    }
}

serde_as_text!(Mac);

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
            "52:54:00-ab-cd:01",
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
            "5254.00ab.cd01.",
            "52:54:00:ab:cd:0g",
            "52:54:00:ab:cd:é",
            "525400abcdé",
            "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}",
        ] {
            assert!(s.parse::<Mac>().is_err(), "{s:?} should be rejected");
        }
    }

    #[test]
    fn hyphenated_for_urls() {
        let m: Mac = "52:54:00:ab:cd:01".parse().unwrap();
        assert_eq!(m.hyphenated(), "52-54-00-ab-cd-01");
        let all = Mac([0x00, 0x0f, 0xf0, 0xff, 0x9a, 0xa9]);
        assert_eq!(all.to_string(), "00:0f:f0:ff:9a:a9");
        assert_eq!(format!("{all:?}"), "Mac(00:0f:f0:ff:9a:a9)");
    }
}
