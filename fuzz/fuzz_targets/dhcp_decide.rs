//! Fuzz target: untrusted DHCP bytes through decode → policy decide → reply build.
//! Run (nightly + cargo-fuzz): `cargo +nightly fuzz run dhcp_decide -- -max_total_time=120`
//! seeded from `tests/fixtures/dhcp/` (see README "DHCP" → "Bad input").
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tabula::dhcp::fuzzing::decode_and_decide(data);
});
