#!/usr/bin/env bash
# Side-by-side TFTP benchmark on loopback: tabula (`tabula serve`, the product binary, DHCP
# off; the file names carry no `<mac>/` prefix, so no boot event is stored per transfer)
# against tftpd-hpa (in.tftpd) and atftpd, on the same files, with the same client
# (examples/tftp_bench.rs).
#
# Scenarios (shared/perf-baselines.md T1-T3):
#   1. one 64 MiB stream, lock-step, blksize 512 and 1468
#   2. one 64 MiB stream, blksize 1468, windowsize 16 (tftpd-hpa has no windowsize: it
#      ignores the option and runs lock-step)
#   3. 100 clients x 1 MiB released at the same instant, blksize 1468, lock-step
#      (plus the same with windowsize 16)
#
# Needs: in.tftpd (Debian tftpd-hpa) and atftpd (Debian atftpd; it conflicts with
# tftpd-hpa, so it may also be unpacked without installing:
#   apt-get download atftpd && dpkg -x atftpd_*.deb /opt/atftpd).
# Environment: REPEAT (rounds, default 3; servers alternate within each scenario of a round,
# and a last table gives each scenario's median over the rounds), BASE_PORT (default 16969),
# PIN=0 to disable pinning the servers to CPU 0 and the client to CPU 1.
# Traffic goes to 127.0.0.1 only. Servers are children of this script, killed by PID.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
REPEAT=${REPEAT:-3}
BASE_PORT=${BASE_PORT:-16969}
ADDR=127.0.0.1

die() { echo "bench/tftp.sh: $*" >&2; exit 1; }
HPA=$(command -v in.tftpd || true)
[ -n "$HPA" ] || die "in.tftpd not found: apt-get install -y tftpd-hpa"
ATFTPD=$(command -v atftpd || true)
[ -n "$ATFTPD" ] || ATFTPD=/opt/atftpd/usr/sbin/atftpd
[ -x "$ATFTPD" ] || die "atftpd not found: apt-get download atftpd && dpkg -x atftpd_*.deb /opt/atftpd"

cargo build --release --locked --quiet --bin tabula --example tftp_bench
TABULA=$CARGO_TARGET_DIR/release/tabula
BIN=$CARGO_TARGET_DIR/release/examples

PIN_SRV=() PIN_CLI=()
if [ "${PIN:-1}" = 1 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  PIN_SRV=(taskset -c 0) PIN_CLI=(taskset -c 1)
fi

WORK=$(mktemp -d /tmp/tabula-tftp-bench.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

ROOT=$WORK/root
mkdir -p "$ROOT"
head -c $((64 << 20)) /dev/urandom > "$ROOT/f64m.bin"
head -c $((1 << 20)) /dev/urandom > "$ROOT/f1m.bin"
chmod 755 "$WORK" "$ROOT"
chmod 644 "$ROOT"/*

NAMES=(tabula tftpd-hpa atftpd)
PORTS=("$BASE_PORT" "$((BASE_PORT + 1))" "$((BASE_PORT + 2))")
# Each server is started directly (taskset execs), so $! is the server's own PID.
cat > "$WORK/tabula.toml" <<TOML
[server]
data_dir = "$WORK/data"
[dhcp]
mode = "off"
[tftp]
listen = "$ADDR:${PORTS[0]}"
root = "$ROOT"
max_transfers = 512
# The bench's 100 clients share one address.
max_transfers_per_client = 512
max_blksize = 1468
max_windowsize = 16
[http]
listen = "$ADDR:$((BASE_PORT + 3))"
[api]
enabled = false
TOML
TABULA_LOG=warn "${PIN_SRV[@]}" "$TABULA" --config "$WORK/tabula.toml" serve 2> "$WORK/tabula.log" &
PIDS+=($!)
"${PIN_SRV[@]}" "$HPA" -L -u nobody -s -a "$ADDR:${PORTS[1]}" "$ROOT" 2> "$WORK/hpa.log" &
PIDS+=($!)
"${PIN_SRV[@]}" "$ATFTPD" --daemon --no-fork --user nobody.nogroup --logfile "$WORK/atftpd.log" \
  --bind-address "$ADDR" --port "${PORTS[2]}" "$ROOT" 2> "$WORK/atftpd.err" &
PIDS+=($!)

client() { # port file clients blksize windowsize
  timeout 120 "${PIN_CLI[@]}" "$BIN/tftp_bench" --server "$ADDR:$1" --file "$2" --clients "$3" \
    --blksize "$4" --windowsize "$5" --timeout-ms 1000 --retries 5 --deadline-s 90 \
    --expect-size "$(stat -c %s "$ROOT/$2")" 2>>"$WORK/client.err" || echo "failed=client-error"
}

for i in 0 1 2; do
  ready=0
  for _ in $(seq 1 50); do
    if client "${PORTS[$i]}" f1m.bin 1 512 1 | grep -q ' ok=1 '; then ready=1; break; fi
    sleep 0.1
  done
  [ "$ready" = 1 ] || die "${NAMES[$i]} did not answer on port ${PORTS[$i]} (logs in $WORK)"
done

CASES=(
  "64 MiB lock-step bs512|f64m.bin|1|512|1"
  "64 MiB lock-step bs1468|f64m.bin|1|1468|1"
  "64 MiB bs1468 ws16|f64m.bin|1|1468|16"
  "100 x 1 MiB bs1468|f1m.bin|100|1468|1"
  "100 x 1 MiB bs1468 ws16|f1m.bin|100|1468|16"
)
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<< " $2"; }

echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)   pinning: ${PIN_SRV[*]:-none} / ${PIN_CLI[*]:-none}"
printf '%-26s %-10s %9s %9s %7s %8s %9s\n' scenario server seconds MiB/s failed timeouts p50_s
declare -A SECS FAILED
for round in $(seq 1 "$REPEAT"); do
  for c in "${CASES[@]}"; do
    IFS='|' read -r label file clients bs ws <<< "$c"
    for i in 0 1 2; do
      line=$(client "${PORTS[$i]}" "$file" "$clients" "$bs" "$ws")
      name=${NAMES[$i]}
      [ "$ws" -gt 1 ] && [ "$name" = tftpd-hpa ] && name="tftpd-hpa*"
      printf '%-26s %-10s %9s %9s %7s %8s %9s\n' "$label" "$name" \
        "$(field seconds "$line")" "$(field mib_s "$line")" "$(field failed "$line")" \
        "$(field timeouts "$line")" "$(field p50 "$line")"
      SECS["$label|$name"]+=" $(field seconds "$line")"
      FAILED["$label|$name"]=$(( ${FAILED["$label|$name"]:-0} + $(field failed "$line" | grep -E '^[0-9]+$' || echo 1) ))
    done
  done
  [ "$round" -lt "$REPEAT" ] && echo "--- round $((round + 1))"
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
median() { tr ' ' '\n' <<< "$1" | grep -E '^[0-9.]+$' | sort -g | awk '{v[NR]=$1} END {if (NR) print v[int((NR+1)/2)]; else print "-"}'; }
echo "=== median over $REPEAT round(s)"
printf '%-26s %-10s %9s %9s %12s  %s\n' scenario server seconds MiB/s failed_total "all seconds"
for c in "${CASES[@]}"; do
  IFS='|' read -r label file clients bs ws <<< "$c"
  size=$(( $(stat -c %s "$ROOT/$file") * clients ))
  for i in 0 1 2; do
    name=${NAMES[$i]}
    [ "$ws" -gt 1 ] && [ "$name" = tftpd-hpa ] && name="tftpd-hpa*"
    m=$(median "${SECS["$label|$name"]}")
    printf '%-26s %-10s %9s %9s %12s %s\n' "$label" "$name" "$m" \
      "$(awk -v m="$m" -v b="$size" 'BEGIN { if (m > 0) printf "%.1f", b / 1048576 / m; else print "-" }')" \
      "${FAILED["$label|$name"]}" "${SECS["$label|$name"]}"
  done
done
echo "* tftpd-hpa has no windowsize (RFC 7440): it ignores the option and runs lock-step."
