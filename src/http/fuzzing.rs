//! The data plane's request-head path as one function over untrusted bytes, for the
//! `cargo fuzz` target `fuzz/fuzz_targets/http_head.rs` and the bounded unit test below.
//! Pure: no sockets, no clock.
//!
//! Checks, beyond "never panics": scanning the bytes in two pieces finds the same end
//! as scanning them at once; a head end is within the input and [`MAX_HEAD`] and falls
//! after a blank line; a head that parses announces a body of at most [`MAX_BODY`]; the
//! route of a blob is a blob path and a loader's name is a plain file name.

use super::conn::{MAX_BODY, MAX_HEAD, framing, head_end, parse};
use super::loaders::plain_name;
use super::route::{Route, classify};

/// Runs `bytes` through head scanning → `httparse` → framing rules → route table,
/// asserting the invariants. The first byte chooses where the input is split.
pub fn scan_parse_and_classify(bytes: &[u8]) {
    let split = bytes
        .first()
        .map_or(0, |&b| usize::from(b))
        .min(bytes.len());
    let mut once = 0;
    let whole = head_end(bytes, &mut once);
    let mut scanned = 0;
    let pieces = match head_end(&bytes[..split], &mut scanned) {
        Ok(None) => head_end(bytes, &mut scanned),
        // Found (or overflowed) in the first piece: the whole input agrees only if the
        // first piece already held it.
        early => early,
    };
    let end = match (whole, pieces) {
        (Ok(Some(a)), Ok(Some(b))) => {
            assert_eq!(a, b, "the end depends on how the bytes arrived");
            a
        }
        (Ok(None), Ok(None)) | (Err(()), Err(())) => return,
        (a, b) => panic!("one scan says {a:?}, the other {b:?}"),
    };
    assert!(end <= bytes.len() && end <= MAX_HEAD, "end {end}");
    let head = &bytes[..end];
    assert!(
        head.ends_with(b"\n\n") || head.ends_with(b"\n\r\n"),
        "no blank line"
    );
    let Ok(parsed) = parse(head) else { return };
    if let Ok(len) = framing(&parsed) {
        assert!(len <= MAX_BODY, "body {len}");
    }
    match classify(&parsed.method, &parsed.target) {
        Route::Blob { target } => assert!(target.starts_with("/blobs/sha256/"), "{target}"),
        Route::Loader { name } => assert!(plain_name(&name), "{name}"),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cargo_fuzz_seeds_keep_the_invariants() {
        crate::mutate::each_seed_file("http_head", scan_parse_and_classify);
    }

    #[test]
    fn seeds_and_a_bounded_random_walk_keep_the_invariants() {
        let seeds: [&[u8]; 6] = [
            b"\x05GET /boot.ipxe?mac=52-54-00-00-00-01 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"\x30GET /blobs/sha256/00 HTTP/1.1\nHost: x\n\n",
            b"\x00POST /boot/52:54:00:00:00:01/aa/booted HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
            b"\x09GET /loaders/%2e%2e HTTP/1.0\r\n\r\n",
            b"\xffGET / HTTP/1.1\r\n\r",
            b"\x01\n\r\n",
        ];
        crate::mutate::walk(&seeds, 0x2545_F491_4F6C_DD1D, scan_parse_and_classify);
        let big = [
            b"\x10GET / HTTP/1.1\r\n".as_slice(),
            &vec![b'a'; MAX_HEAD * 2],
        ]
        .concat();
        scan_parse_and_classify(&big);
    }
}
