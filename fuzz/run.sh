#!/usr/bin/env bash
# Bounded coverage-guided fuzzing of the three paths that read untrusted bytes first:
#   dhcp_decide   DHCP parse → decide → build (tabula::dhcp::fuzzing), seeded with every
#                 real firmware packet in tests/fixtures/dhcp/;
#   http_head     the data plane's head scanning → httparse → framing rules → route
#                 table (tabula::http::fuzzing), seeded from fuzz/seeds/http_head/;
#   tftp_request  the TFTP packet decoder → re-encode → negotiation
#                 (tabula::tftp::fuzzing), seeded from fuzz/seeds/tftp_request/.
# The total budget (FUZZ_SECONDS or $1, default 60) is split evenly between the three,
# so CI time does not grow with the targets. Run by tests/run.sh (CI); by hand:
# `bash fuzz/run.sh 600`, or one target: `bash fuzz/run.sh 120 http_head`.
#
# Exit status is libFuzzer's: non-zero on a panic (debug assertions are on in cargo-fuzz
# builds, so dhcproto's debug-build panics count) or a broken invariant; the crashing
# input is left in fuzz/artifacts/<target>/ and can be replayed with
# `cargo fuzz run <target> --sanitizer none fuzz/artifacts/<target>/<file>`.
#
# Toolchain: this machine has one stable toolchain and no way to fetch nightly.
# cargo-fuzz asks for nightly-only compiler flags; RUSTC_BOOTSTRAP=1 lets the stable
# compiler accept them (the documented escape hatch; nothing else changes). The
# sanitizer is off: the targets are safe Rust, what we look for is panics and broken
# invariants, and an un-instrumented build runs ~3x more inputs per second.
set -euo pipefail
cd "$(dirname "$0")"
TOTAL=${1:-${FUZZ_SECONDS:-60}}
TARGETS=${2:-"dhcp_decide http_head tftp_request"}
CARGO_FUZZ_VERSION=0.13.2

if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "==> cargo install cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install --locked --quiet cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

n=$(wc -w <<<"$TARGETS")
SECS=$(( TOTAL / n ))
[ "$SECS" -ge 5 ] || SECS=5

WORK=$(mktemp -d /tmp/tabula-fuzz.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
status=0
for target in $TARGETS; do
  # A fresh corpus per run (libFuzzer writes new inputs into the first corpus
  # directory; the seeds stay untouched).
  corpus="$WORK/$target"
  mkdir -p "$corpus"
  case "$target" in
    dhcp_decide)  cp ../tests/fixtures/dhcp/*.bin "$corpus"/; max_len=1500 ;;
    http_head)    cp seeds/http_head/* "$corpus"/; max_len=20000 ;;
    tftp_request) cp seeds/tftp_request/* "$corpus"/; max_len=1500 ;;
    *) echo "fuzz/run.sh: unknown target $target" >&2; exit 2 ;;
  esac
  echo "==> fuzzing $target for ${SECS}s from $(ls "$corpus" | wc -l) seeds"
  log="$WORK/$target.log"
  rc=0
  RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer none "$target" "$corpus" -- \
    -max_total_time="$SECS" -max_len="$max_len" -print_final_stats=1 >"$log" 2>&1 || rc=$?
  grep -E "^(#[0-9]+ +(INITED|DONE)|Done |stat::number_of_executed_units)|panicked|SUMMARY|Test unit written" "$log" || true
  if [ "$rc" -ne 0 ]; then
    tail -n 40 "$log" >&2
    echo "fuzz/run.sh: $target failed (exit $rc); the input is in fuzz/artifacts/$target/" >&2
    status=$rc
  fi
done
exit "$status"
