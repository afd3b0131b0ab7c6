#!/usr/bin/env bash
# HTTP benchmark: tabula vs nginx (sendfile), side by side, in one run, on the same
# files, on loopback. Prints a table. Usage: bash bench/http.sh [--quick]
# Needs root only to install packages (nginx-light, wrk, curl) if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=${1:-}
for p in nginx-light wrk curl; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || MISSING+=" $p"
done
if [ -n "${MISSING:-}" ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $MISSING >/dev/null
fi
cargo build --release --locked -q
TABULA=${CARGO_TARGET_DIR:-$PWD/target}/release/tabula

W=$(mktemp -d /tmp/tabula-bench-http.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT

# Files: 1 GiB, 256 MiB, 1 MiB, and a ~1 KiB iPXE script.
mkdir -p "$W/www"
head -c 1G /dev/urandom > "$W/www/f1g.bin"
head -c 256M "$W/www/f1g.bin" > "$W/www/f256m.bin"
head -c 1M "$W/www/f1g.bin" > "$W/www/f1m.bin"
export TABULA_DATA_DIR=$W/data
"$TABULA" image add big --version 1 --kernel "$W/www/f1m.bin" --rootfs "$W/www/f1g.bin" >/dev/null
"$TABULA" image add mid --version 1 --kernel "$W/www/f256m.bin" --cmdline "$(printf 'x%.0s' $(seq 1 700))" >/dev/null
"$TABULA" pin set default mid@1 >/dev/null
hex() { sha256sum "$1" | cut -c1-64; }
H1G=$(hex "$W/www/f1g.bin"); H256=$(hex "$W/www/f256m.bin"); H1M=$(hex "$W/www/f1m.bin")
MAC=52-54-00-00-00-01
curl -s "http://127.0.0.1:1/" >/dev/null 2>&1 || true

# tabula on :18081
cat > "$W/tabula.toml" <<TOML
[dhcp]
mode = "off"
[tftp]
enabled = false
[http]
listen = "127.0.0.1:18081"
public_url = "http://127.0.0.1:18081"
# Every client here is one address (127.0.0.1) standing in for many machines: the
# per-client cap (default 32, right for real machines, which need 1-2) would refuse
# wrk's 50 keep-alive connections and make it reconnect in a loop, measuring
# accept/close instead of answers. nginx has no such cap.
max_connections_per_client = 4096
[api]
enabled = false
TOML
# Both servers on CPU 0, every client on CPU 1, as the baselines were measured.
TABULA_LOG=error taskset -c 0 "$TABULA" --config "$W/tabula.toml" serve >/dev/null &
PIDS+=($!)
# nginx on :18082, as in the baselines: 1 worker, sendfile, 2m chunks, no access log.
curl -s "http://127.0.0.1:18081/boot.ipxe?mac=$MAC" > "$W/www/boot.ipxe" || true
cat > "$W/nginx.conf" <<NGX
worker_processes 1;
pid $W/nginx.pid;
error_log $W/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on; tcp_nopush on; sendfile_max_chunk 2m;
  client_body_temp_path $W; proxy_temp_path $W; fastcgi_temp_path $W; uwsgi_temp_path $W; scgi_temp_path $W;
  server { listen 127.0.0.1:18082; root $W/www; }
}
NGX
taskset -c 0 nginx -c "$W/nginx.conf" -g 'daemon off;' &
PIDS+=($!)
sleep 1
cat "$W/www/f1g.bin" "$W/data/blobs/sha256/$H1G" > /dev/null   # page cache
sync   # the files were just written: no writeback competing with the first row

url() { # server path-kind
  case "$1:$2" in
    tabula:1g) echo "http://127.0.0.1:18081/blobs/sha256/$H1G";;
    nginx:1g) echo "http://127.0.0.1:18082/f1g.bin";;
    tabula:256m) echo "http://127.0.0.1:18081/blobs/sha256/$H256";;
    nginx:256m) echo "http://127.0.0.1:18082/f256m.bin";;
    tabula:1m) echo "http://127.0.0.1:18081/blobs/sha256/$H1M";;
    nginx:1m) echo "http://127.0.0.1:18082/f1m.bin";;
    tabula:script) echo "http://127.0.0.1:18081/boot.ipxe?mac=$MAC";;
    nginx:script) echo "http://127.0.0.1:18082/boot.ipxe";;
  esac
}
RUNS=5; [ "$QUICK" = --quick ] && RUNS=1
N=50; [ "$QUICK" = --quick ] && N=10
echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD) load: $(cut -d' ' -f1-3 /proc/loadavg); servers on CPU 0, clients on CPU 1"
printf '%-46s %14s %14s %7s\n' "test" "tabula" "nginx" "ratio"
row() { printf '%-46s %14s %14s %7s\n' "$1" "$2" "$3" "$(awk -v a="$4" -v b="$5" 'BEGIN{ if (b>0) printf "%.2f", a/b; else print "-" }')"; }

single() { local v; v=$(taskset -c 1 curl -s -o /dev/null -w '%{speed_download}' "$(url "$1" 1g)"); echo $((${v%.*} / 1048576)); }
best() { printf '%s\n' "$@" | sort -n | tail -1; }
STS=(); SNS=()
for _ in $(seq $RUNS); do STS+=("$(single tabula)"); SNS+=("$(single nginx)"); done
t=$(best "${STS[@]}"); n=$(best "${SNS[@]}")
row "1 GiB single stream (MiB/s, best of $RUNS)" "$t" "$n" "$t" "$n"

# A single sample wobbles by +-20 % on these shared machines, on both servers
# alike; so each row alternates tabula and nginx RUNS times and reports the medians.
# Every sample is printed under the table.
median() { printf '%s\n' "$@" | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
parallel() { local s e; s=$(date +%s.%N)
  for _ in $(seq $N); do taskset -c 1 curl -s -o /dev/null "$(url "$1" 256m)" & done; wait
  e=$(date +%s.%N); awk -v s="$s" -v e="$e" -v n=$N 'BEGIN{printf "%d", n*256/(e-s)}'; }
PTS=(); PNS=()
for _ in $(seq $RUNS); do PTS+=("$(parallel tabula)"); PNS+=("$(parallel nginx)"); done
t=$(median "${PTS[@]}"); n=$(median "${PNS[@]}")
row "$N x 256 MiB at once (MiB/s total, median)" "$t" "$n" "$t" "$n"

reqs() { taskset -c 1 wrk -t1 -c50 -d10s "$@" 2>/dev/null | awk '/Requests\/sec/ {printf "%d", $2}'; }
SAMPLES="#   1 GiB single stream: tabula ${STS[*]} / nginx ${SNS[*]}"$'\n'
SAMPLES+="#   $N x 256 MiB at once: tabula ${PTS[*]} / nginx ${PNS[*]}"$'\n'
req_row() { # label, wrk args after the URL kind...
  local label=$1 kind=$2; shift 2; local ts=() ns=() t n
  for _ in $(seq $RUNS); do
    ts+=("$(reqs "$@" "$(url tabula "$kind")")"); ns+=("$(reqs "$@" "$(url nginx "$kind")")")
  done
  t=$(median "${ts[@]}"); n=$(median "${ns[@]}")
  row "$label" "$t" "$n" "$t" "$n"
  SAMPLES+="#   $label: tabula ${ts[*]} / nginx ${ns[*]}"$'\n'
}
req_row "iPXE script, wrk -c50 10 s (req/s, median)" script
req_row "1 MiB file, wrk -c50 10 s (req/s, median)" 1m
req_row "random 1 MiB ranges of 1 GiB (req/s, median)" 1g -s bench/range.lua
printf '# samples, in run order alternating tabula/nginx:\n%s' "$SAMPLES"
