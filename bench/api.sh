#!/usr/bin/env bash
# Control plane vs data plane: iPXE-script requests/s (wrk against http.listen) with the
# API listener idle, and with 100 API reads/s (GET /api/v1/machines and /metrics, alternating,
# with a read token)
# plus one SSE subscriber on /api/v1/events/stream, side by side in one run, on
# loopback. Prints a table. Usage: bash bench/api.sh [--quick]  (--quick: 1 run per row)
# The server under test runs on CPU 0 at normal priority; wrk, the API reader and the
# SSE subscriber run on CPU 1 under nice. Every load is bounded in count and time.
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=${1:-}
for p in wrk curl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || MISSING+=" $p"
done
if [ -n "${MISSING:-}" ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $MISSING >/dev/null
fi
# TABULA=path uses that binary instead of building the release one.
if [ -z "${TABULA:-}" ]; then
  nice -n 19 cargo build --release --locked -q --bin tabula
  TABULA=${CARGO_TARGET_DIR:-$PWD/target}/release/tabula
fi

W=$(mktemp -d /tmp/tabula-bench-api.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT

export TABULA_DATA_DIR=$W/data
head -c 1M /dev/urandom > "$W/vmlinuz"
head -c 4M /dev/urandom > "$W/root.squashfs"
"$TABULA" image add demo --version 1 --kernel "$W/vmlinuz" --rootfs "$W/root.squashfs" >/dev/null
"$TABULA" pin set default demo@1 >/dev/null
"$TABULA" machine add m1 --mac 52:54:00:00:00:01 >/dev/null
# A read token for the API reads and the event stream (printed once by `token create`).
TOKEN=$("$TABULA" token create bench --scope read 2>/dev/null)
AUTH="authorization: Bearer $TOKEN"
MAC=52-54-00-00-00-01
HTTP=127.0.0.1:18091
API=127.0.0.1:18092
cat > "$W/tabula.toml" <<TOML
[dhcp]
mode = "off"
[tftp]
enabled = false
[http]
listen = "$HTTP"
public_url = "http://$HTTP"
# wrk's 50 connections all come from 127.0.0.1 (see bench/http.sh).
max_connections_per_client = 4096
[api]
listen = "$API"
TOML
TABULA_LOG=error taskset -c 0 "$TABULA" --config "$W/tabula.toml" serve >/dev/null &
PIDS+=($!)
for _ in $(seq 50); do curl -sf "http://$API/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

RUNS=3; [ "$QUICK" = --quick ] && RUNS=1
SECS=${BENCH_SECS:-10}
SCRIPT="http://$HTTP/boot.ipxe?mac=$MAC"
reqs() { nice -n 19 taskset -c 1 wrk -t1 -c50 -d${SECS}s "$SCRIPT" 2>/dev/null | awk '/Requests\/sec/ {printf "%d", $2}'; }

# The control-plane load for one row: an SSE subscriber and a paced reader, both ended
# by --max-time; the reader makes at most 100 * SECS requests at --rate 100/s.
control_start() {
  nice -n 19 taskset -c 1 curl -sN -H "$AUTH" --max-time $((SECS + 2)) "http://$API/api/v1/events/stream" > "$W/sse.out" 2>/dev/null &
  SSE=$!
  local urls=()
  for i in $(seq $((100 * SECS / 2))); do urls+=(-o /dev/null "http://$API/api/v1/machines" -o /dev/null "http://$API/metrics"); done
  nice -n 19 taskset -c 1 curl -s -H "$AUTH" --max-time 5 --rate 100/s -w '%{http_code}\n' "${urls[@]}" > "$W/api.out" 2>/dev/null &
  READER=$!
}
control_stop() {
  wait "$READER" 2>/dev/null || true
  wait "$SSE" 2>/dev/null || true
  API_OK=$(grep -c '^200$' "$W/api.out" || true)
  API_ALL=$(wc -l < "$W/api.out")
  SSE_EVENTS=$(grep -c '^id:' "$W/sse.out" || true)
}

echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD) load: $(cut -d' ' -f1-3 /proc/loadavg); server on CPU 0, clients on CPU 1 (nice 19); $SECS s per sample"
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
ALONE=(); LOADED=(); NOTES=""
for r in $(seq $RUNS); do
  ALONE+=("$(reqs)")
  control_start
  LOADED+=("$(reqs)")
  control_stop
  NOTES+="#   run $r: API reads (GET /api/v1/machines, /metrics) answered 200: $API_OK of $API_ALL; SSE events received: $SSE_EVENTS"$'\n'
done
a=$(median "${ALONE[@]}"); l=$(median "${LOADED[@]}")
printf '%-58s %12s %12s %7s\n' "test (iPXE script, wrk -t1 -c50, req/s, median of $RUNS)" "alone" "with API" "ratio"
printf '%-58s %12s %12s %7s\n' "data plane alone | + 100 API reads/s + 1 SSE subscriber" "$a" "$l" "$(awk -v a="$l" -v b="$a" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "-" }')"
printf '# samples, in run order (alone, with API): %s / %s\n' "${ALONE[*]}" "${LOADED[*]}"
printf '%s' "$NOTES"
