//! Bounded deterministic fuzzing of the parse-and-decide path (the same function the
//! `cargo fuzz` target runs): every fixture, then 40,000 mutations of them (byte flips,
//! truncations, option-length corruption, splices), through decode → decide → build.
//! Panics, addresses outside the pool, or proxy replies with an address fail the test.

use tabula::dhcp::fuzzing::decode_and_decide;

use crate::fixtures::{self, Rng};

#[test]
fn decode_and_decide_survives_mutations() {
    let seeds: Vec<Vec<u8>> = fixtures::clients().into_iter().map(|(_, b)| b).collect();
    for s in &seeds {
        decode_and_decide(s);
    }
    let mut rng = Rng(0x7ab1_11a5_0000_0003);
    for _ in 0..40_000 {
        let mut b = seeds[rng.below(seeds.len())].clone();
        for _ in 0..=rng.below(4) {
            match rng.below(5) {
                0 if !b.is_empty() => {
                    let i = rng.below(b.len());
                    b[i] ^= u8::try_from(rng.below(255) + 1).expect("byte");
                }
                1 => b.truncate(rng.below(b.len() + 1)),
                2 if b.len() > 241 => {
                    // Corrupt something in the options area, often a length byte.
                    let i = 240 + rng.below(b.len() - 240);
                    b[i] = u8::try_from(rng.below(256)).expect("byte");
                }
                3 => {
                    let other = &seeds[rng.below(seeds.len())];
                    let at = rng.below(b.len().min(other.len()));
                    b.truncate(at);
                    b.extend_from_slice(&other[at..]);
                }
                _ => {
                    let i = rng.below(b.len() + 1);
                    let junk: Vec<u8> = (0..rng.below(40))
                        .map(|_| u8::try_from(rng.below(256)).expect("byte"))
                        .collect();
                    b.splice(i..i, junk);
                }
            }
        }
        decode_and_decide(&b);
    }
}

/// Inputs on which `bash fuzz/run.sh` (libFuzzer) once found a panic: each must now pass.
#[test]
fn former_fuzz_crashes_pass() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz-crashes");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("tests/fixtures/fuzz-crashes") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
        decode_and_decide(&bytes);
        n += 1;
    }
    assert!(n > 0, "no former crashes in {}", dir.display());
}
