//! Fuzz target: untrusted bytes through the data plane's head scanning (in two pieces
//! and at once) → httparse → framing rules (Content-Length, Transfer-Encoding, Host) →
//! route table. Seeds: `fuzz/seeds/http_head/`. Run with `bash fuzz/run.sh`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    tabula::http::fuzzing::scan_parse_and_classify(data);
});
