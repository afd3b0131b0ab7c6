//! Fuzz target: untrusted datagrams through the TFTP packet decoder, then a re-encode
//! round trip, option negotiation and the `<mac>/` prefix split of the file name.
//! Seeds: `fuzz/seeds/tftp_request/`. Run with `bash fuzz/run.sh`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tabula::tftp::fuzzing::decode_request(data);
});
