#!/usr/bin/env bash
# Bounded coverage-guided fuzzing of the DHCP parse → decide → build path
# (fuzz_targets/dhcp_decide.rs → tabula::dhcp::fuzzing::decode_and_decide), seeded with
# every real firmware packet in tests/fixtures/dhcp/. Run by tests/run.sh (CI) for
# FUZZ_SECONDS; by hand: `bash fuzz/run.sh 600`.
#
# Exit status is libFuzzer's: non-zero on a panic (debug assertions are on in cargo-fuzz
# builds, so dhcproto's debug-build panics count) or a broken invariant; the crashing
# input is left in fuzz/artifacts/dhcp_decide/ and can be replayed with
# `cargo fuzz run dhcp_decide --sanitizer none fuzz/artifacts/dhcp_decide/<file>`.
#
# Toolchain: this machine has one stable toolchain and no way to fetch nightly.
# cargo-fuzz asks for nightly-only compiler flags; RUSTC_BOOTSTRAP=1 lets the stable
# compiler accept them (the documented escape hatch; nothing else changes). The
# sanitizer is off: the target is safe Rust, what we look for is panics and broken
# invariants, and an un-instrumented build runs ~3x more inputs per second.
set -euo pipefail
cd "$(dirname "$0")"
SECS=${1:-${FUZZ_SECONDS:-60}}
CARGO_FUZZ_VERSION=0.13.2

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "==> cargo install cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install --locked --quiet cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

# A fresh corpus per run, seeded from the captures (libFuzzer writes new inputs into
# the first corpus directory; the fixtures stay untouched).
CORPUS=$(mktemp -d /tmp/tabula-fuzz-corpus.XXXXXX)
trap 'rm -rf "$CORPUS"' EXIT
cp ../tests/fixtures/dhcp/*.bin "$CORPUS"/
echo "==> fuzzing dhcp_decide for ${SECS}s from $(ls "$CORPUS" | wc -l) firmware packets"
LOG="$CORPUS.log"
trap 'rm -rf "$CORPUS" "$LOG"' EXIT
rc=0
RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none dhcp_decide "$CORPUS" -- \
  -max_total_time="$SECS" -max_len=1500 -print_final_stats=1 >"$LOG" 2>&1 || rc=$?
grep -E "^(#[0-9]+ +(INITED|DONE)|Done |stat::number_of_executed_units)|panicked|SUMMARY|Test unit written" "$LOG" || true
if [ "$rc" -ne 0 ]; then
  tail -n 40 "$LOG" >&2
  echo "fuzz/run.sh: dhcp_decide failed (exit $rc); the input is in fuzz/artifacts/dhcp_decide/" >&2
fi
exit "$rc"
