//! Loading fixtures and small packet surgery helpers.

use std::path::PathBuf;

pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dhcp")
}

/// One fixture's bytes, by file stem.
pub fn load(stem: &str) -> Vec<u8> {
    let p = dir().join(format!("{stem}.bin"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every fixture as (stem, bytes), sorted by name.
pub fn all() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir())
        .expect("fixture dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "bin"))
        .map(|p| {
            let stem = p.file_stem().expect("stem").to_string_lossy().into_owned();
            (stem, std::fs::read(&p).expect("read fixture"))
        })
        .collect();
    out.sort();
    out
}

/// Client packets (DISCOVER/REQUEST).
pub fn clients() -> Vec<(String, Vec<u8>)> {
    all()
        .into_iter()
        .filter(|(n, _)| n.ends_with("-discover") || n.ends_with("-request"))
        .collect()
}

/// Offset of the End option in the options field of a well-formed fixture.
pub fn end_offset(p: &[u8]) -> usize {
    let mut i = 240;
    while p[i] != 255 {
        i += if p[i] == 0 {
            1
        } else {
            2 + usize::from(p[i + 1])
        };
    }
    i
}

/// The packet with `opt` (full TLV bytes) inserted just before End.
pub fn with_option(p: &[u8], opt: &[u8]) -> Vec<u8> {
    let end = end_offset(p);
    let mut out = p[..end].to_vec();
    out.extend_from_slice(opt);
    out.extend_from_slice(&p[end..]);
    out
}

/// The packet with its first occurrence of option `code` replaced by `opt` bytes.
pub fn replace_option(p: &[u8], code: u8, opt: &[u8]) -> Vec<u8> {
    let mut i = 240;
    while p[i] != 255 {
        if p[i] == 0 {
            i += 1;
            continue;
        }
        let len = 2 + usize::from(p[i + 1]);
        if p[i] == code {
            let mut out = p[..i].to_vec();
            out.extend_from_slice(opt);
            out.extend_from_slice(&p[i + len..]);
            return out;
        }
        i += len;
    }
    panic!("option {code} not in packet");
}

/// xorshift64*: a deterministic, dependency-free generator for the bounded fuzz loops.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).expect("fits")).expect("fits")
    }
}
