//! The TFTP request decoder as one function over untrusted bytes, for the `cargo fuzz`
//! target `fuzz/fuzz_targets/tftp_request.rs` and the bounded unit test below. Pure.
//!
//! Checks, beyond "never panics": a decoded request's file name is no longer than the
//! datagram and holds no NUL; encoding it again and decoding that gives the same request;
//! the options it negotiates stay within the server's limits; the `<mac>/` prefix split
//! leaves a suffix of the name.

use std::time::Duration;

use super::packet::{Opcode, Packet, encode_request};
use super::root::client_prefix;
use super::transfer::{Limits, negotiate};

/// Decodes `bytes` as a TFTP packet and checks what a request turns into.
pub fn decode_request(bytes: &[u8]) {
    let (opcode, req) = match Packet::parse(bytes) {
        Ok(Packet::Rrq(r)) => (Opcode::Rrq, r),
        Ok(Packet::Wrq(r)) => (Opcode::Wrq, r),
        _ => return,
    };
    assert!(
        req.filename.len() <= bytes.len(),
        "name longer than its datagram"
    );
    assert!(!req.filename.contains('\0'));
    let o = req.options;
    let opts: Vec<(&str, u64)> = [
        ("blksize", o.blksize),
        ("tsize", o.tsize),
        ("timeout", o.timeout),
        ("windowsize", o.windowsize),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k, v)))
    .collect();
    let mut again = Vec::with_capacity(bytes.len() + 64);
    encode_request(&mut again, opcode, &req.filename, &opts);
    match Packet::parse(&again) {
        Ok(Packet::Rrq(r) | Packet::Wrq(r)) => {
            assert_eq!(
                (r.filename.as_str(), r.options),
                (req.filename.as_str(), req.options)
            );
        }
        other => panic!("a re-encoded request decodes as {other:?}"),
    }
    let limits = Limits {
        max_blksize: 1468,
        max_windowsize: 16,
        timeout: Duration::from_secs(1),
        retries: 5,
    };
    let n = negotiate(&o, 1 << 20, &limits);
    assert!((8..=1468).contains(&n.blksize), "blksize {}", n.blksize);
    assert!(
        (1..=16).contains(&n.windowsize),
        "windowsize {}",
        n.windowsize
    );
    let (_, served) = client_prefix(&req.filename);
    assert!(req.filename.ends_with(served));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cargo_fuzz_seeds_keep_the_invariants() {
        crate::mutate::each_seed_file("tftp_request", decode_request);
    }

    #[test]
    fn seeds_and_a_bounded_random_walk_keep_the_invariants() {
        let seeds: [&[u8]; 4] = [
            b"\x00\x01undionly.kpxe\x00octet\x00blksize\x001468\x00tsize\x000\x00",
            b"\x00\x0152:54:00:00:00:01/snponly.efi\x00octet\x00windowsize\x0064\x00",
            b"\x00\x01a\x00netascii\x00blksize\x0099999999999999999999\x00",
            b"\x00\x02x\x00octet\x00",
        ];
        crate::mutate::walk(&seeds, 0x9E37_79B9_7F4A_7C15, decode_request);
    }
}
