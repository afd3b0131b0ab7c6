//! Test support for the fuzz targets' unit tests: run a check over the `cargo fuzz`
//! seed corpus, and over a bounded, deterministic walk of byte mutations of seeds
//! (flip a byte, cut after it), so the invariants hold in every `cargo test`, not only
//! when someone runs the fuzzer.

use std::path::Path;

/// Runs `check` on every file of `fuzz/seeds/<target>`; fails with fewer than 5.
pub(crate) fn each_seed_file(target: &str, mut check: impl FnMut(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/seeds")
        .join(target);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        check(&std::fs::read(e.unwrap().path()).unwrap());
        n += 1;
    }
    assert!(n >= 5, "{n} seeds in {dir:?}");
}

/// Runs `check` on each seed and on 2000 mutations of it, drawn by xorshift from `state`.
pub(crate) fn walk(seeds: &[&[u8]], mut state: u64, mut check: impl FnMut(&[u8])) {
    for seed in seeds {
        check(seed);
        for _ in 0..2000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut m = seed.to_vec();
            let i = usize::try_from(state % m.len() as u64).unwrap_or(0);
            m[i] = m[i].wrapping_add(u8::try_from(state >> 56).unwrap_or(1));
            if state & 1 == 0 {
                m.truncate(i + 1);
            }
            check(&m);
        }
    }
}
