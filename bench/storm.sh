#!/usr/bin/env bash
# Boot-storm benchmark: N simulated machines (examples/storm.rs, tabula::storm) power on
# together and boot PXE ROM -> TFTP loader -> iPXE -> script -> kernel, initrd ->
# initramfs DHCP -> root image (sha256 checked) -> POST booted, against
#   tabula                          (DHCP full mode, TFTP, HTTP; one process)
#   tabula-fair                     (the same with http.admission.max_streams = 0: every
#                                    root image at once, TCP's fair sharing)
#   the stand-in: dnsmasq + nginx   (DHCP + TFTP with a dhcp-userclass tag so iPXE gets a
#                                    static script URL; nginx serves the same files and
#                                    answers the callback with `return 200`; dnsmasq with
#                                    --no-ping, since every pool address answers pings in
#                                    the client namespace, and --tftp-max=512 as tabula)
# in the same run, with the same client and files. Server and client live in two network
# namespaces joined by a veth pair; the server side's egress is shaped with tbf at LINK,
# so the physical limit is known: all bytes / link rate.
#
# Usage (root): bash bench/storm.sh
# Knobs (environment): LINK=10gbit SCENARIOS="100 500 1000" SERVERS="tabula standin"
#   ROOT_MIB=8 KERNEL_MIB=4 INITRD_MIB=2 SPREAD_MS=1000 DEADLINE_S=600
#   MAX_STREAMS=32 (tabula's http.admission.max_streams)
#   STORM_BIN=… TABULA_BIN=… (prebuilt binaries; else cargo build --release)
# Output: a table on stdout; raw JSON lines, logs and the table in bench/results/storm-<UTC>/.
# Only the namespaces and processes this script creates are touched; all are removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "storm.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, port 67)"
for b in ip tc dnsmasq nginx curl python3; do command -v "$b" >/dev/null || die "missing $b"; done

LINK=${LINK:-10gbit}
SCENARIOS=${SCENARIOS:-"100 500 1000"}
SERVERS=${SERVERS:-"tabula tabula-fair standin"}
ROOT_MIB=${ROOT_MIB:-8}
KERNEL_MIB=${KERNEL_MIB:-4}
INITRD_MIB=${INITRD_MIB:-2}
SPREAD_MS=${SPREAD_MS:-1000}
DEADLINE_S=${DEADLINE_S:-600}
case "$LINK" in
  *gbit) BPS=$(( ${LINK%gbit} * 1000000000 )) ;;
  *mbit) BPS=$(( ${LINK%mbit} * 1000000 )) ;;
  *) die "LINK must be <n>gbit or <n>mbit" ;;
esac
for n in $SCENARIOS; do [ "$n" -ge 1 ] && [ "$n" -le 2000 ] || die "N must be 1..2000 (the pool)"; done

T=${CARGO_TARGET_DIR:-$PWD/target}/release
if [ -z "${STORM_BIN:-}" ] || [ -z "${TABULA_BIN:-}" ]; then
  cargo build --release --locked -q --bin tabula --example storm
fi
STORM_BIN=${STORM_BIN:-$T/examples/storm}
TABULA_BIN=${TABULA_BIN:-$T/tabula}

STAMP=$(date -u +%Y-%m-%dT%H%MZ)
OUT=bench/results/storm-$STAMP
mkdir -p "$OUT"
W=$(mktemp -d /tmp/tabula-storm.XXXXXX)
TAG=$$
NS_S=tabula-storm-$TAG-srv
NS_C=tabula-storm-$TAG-cli
VS=ts${TAG}s
VC=ts${TAG}c
PIDS=()

stop() { # PID: TERM, wait up to 10 s, then KILL
  local p=$1
  kill "$p" 2>/dev/null || return 0
  for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
cleanup() {
  for p in "${PIDS[@]}"; do stop "$p"; done
  ip netns del "$NS_S" 2>/dev/null || true
  ip netns del "$NS_C" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

# --- network: server 10.77.0.1/16, every pool address on the client side ---------------
ip netns add "$NS_S"
ip netns add "$NS_C"
ip link add "$VS" netns "$NS_S" type veth peer name "$VC" netns "$NS_C"
for ns in "$NS_S" "$NS_C"; do ip -n "$ns" link set lo up; done
ip -n "$NS_S" addr add 10.77.0.1/16 dev "$VS"
ip -n "$NS_S" link set "$VS" up
ip -n "$NS_C" link set "$VC" up
POOL_FIRST=10.77.1.1 POOL_LAST=10.77.8.254
# Every address from POOL_FIRST to POOL_LAST (10.77.1.1-10.77.8.254, .0 and .255 included
# in between: inside a /16 they are host addresses, and dnsmasq hands them out).
pool() { for i in $(seq $((256 + 1)) $((8 * 256 + 254))); do echo "10.77.$((i / 256)).$((i % 256))"; done; }
pool | sed "s|.*|addr add &/16 dev $VC|" > "$W/addrs"
ip -n "$NS_C" -batch "$W/addrs"
# The server's neighbours, permanent: the neighbour table (shared by every namespace,
# gc_thresh3 = 1024 by default) does not count those, so 1000 machines cannot overflow it.
CMAC=$(ip netns exec "$NS_C" cat "/sys/class/net/$VC/address")
pool | sed "s|.*|neigh replace & lladdr $CMAC dev $VS nud permanent|" > "$W/neigh"
ip -n "$NS_S" -batch "$W/neigh"
ip netns exec "$NS_S" tc qdisc add dev "$VS" root tbf rate "$LINK" burst 8mb latency 20ms

# --- the same files for both servers ------------------------------------------------------
mkdir -p "$W/tftp" "$W/www"
head -c "${KERNEL_MIB}M" /dev/urandom > "$W/www/vmlinuz"
head -c "${INITRD_MIB}M" /dev/urandom > "$W/www/initrd.img"
head -c "${ROOT_MIB}M" /dev/urandom > "$W/www/root.img"
if [ -f /usr/lib/ipxe/undionly.kpxe ]; then cp /usr/lib/ipxe/undionly.kpxe "$W/tftp/"; else head -c 70000 /dev/urandom > "$W/tftp/undionly.kpxe"; fi
ROOT_HEX=$(sha256sum "$W/www/root.img" | cut -c1-64)
# The stand-in's static script; iPXE (here, the client) expands ${mac:hexhyp}.
cat > "$W/www/boot.ipxe" <<IPXE
#!ipxe
kernel http://10.77.0.1:8081/vmlinuz tabula.root=http://10.77.0.1:8081/root.img tabula.root_sha256=$ROOT_HEX tabula.callback=http://10.77.0.1:8081/cb/\${mac:hexhyp}
initrd http://10.77.0.1:8081/initrd.img
boot
IPXE

start_tabula() { # run-dir max_streams
  local d=$1 streams=$2
  mkdir -p "$d"
  cat > "$d/tabula.toml" <<TOML
[server]
data_dir = "$d/data"
advertise = "10.77.0.1"
[dhcp]
mode = "full"
interfaces = ["$VS"]
[[dhcp.subnets]]
network = "10.77.0.0/16"
pools = ["$POOL_FIRST-$POOL_LAST"]
lease_time = "1h"
[tftp]
listen = "10.77.0.1:69"
root = "$W/tftp"
[http]
listen = "10.77.0.1:8080"
[http.admission]
max_streams = $streams
[api]
enabled = false
TOML
  TABULA_DATA_DIR=$d/data "$TABULA_BIN" --config "$d/tabula.toml" image add storm --version 1 \
    --kernel "$W/www/vmlinuz" --initrd "$W/www/initrd.img" --rootfs "$W/www/root.img" > "$d/image.txt"
  TABULA_DATA_DIR=$d/data "$TABULA_BIN" --config "$d/tabula.toml" pin set default storm@1 >/dev/null
  TABULA_LOG=warn ip netns exec "$NS_S" "$TABULA_BIN" --config "$d/tabula.toml" serve \
    > "$d/tabula.out" 2> "$d/tabula.log" &
  SERVER_PIDS=($!)
  PIDS+=($!)
  wait_http "http://10.77.0.1:8080/healthz"
}

start_standin() { # run-dir
  local d=$1
  mkdir -p "$d"
  ip netns exec "$NS_S" dnsmasq -k --conf-file=/dev/null --user=root --port=0 \
    --interface="$VS" --bind-interfaces --dhcp-authoritative \
    --dhcp-range="$POOL_FIRST,$POOL_LAST,255.255.0.0,1h" --dhcp-lease-max=4096 \
    --dhcp-leasefile="$d/dnsmasq.leases" --dhcp-userclass=set:ipxe,iPXE --no-ping \
    --dhcp-boot="tag:!ipxe,undionly.kpxe,,10.77.0.1" \
    --dhcp-boot="tag:ipxe,http://10.77.0.1:8081/boot.ipxe" \
    --enable-tftp --tftp-root="$W/tftp" --tftp-max=512 \
    --log-facility="$d/dnsmasq.log" 2> "$d/dnsmasq.err" &
  SERVER_PIDS=($!)
  PIDS+=($!)
  cat > "$d/nginx.conf" <<NGX
user root;
worker_processes auto;
pid $d/nginx.pid;
error_log $d/nginx.err;
events { worker_connections 8192; }
http {
  access_log off;
  sendfile on; tcp_nopush on;
  server {
    listen 10.77.0.1:8081 backlog=4096;
    root $W/www;
    location /cb/ { return 200 "ok\n"; }
  }
}
NGX
  ip netns exec "$NS_S" nginx -c "$d/nginx.conf" -g 'daemon off;' 2> "$d/nginx.stderr" &
  SERVER_PIDS+=($!)
  PIDS+=($!)
  wait_http "http://10.77.0.1:8081/boot.ipxe"
}

wait_http() {
  for _ in $(seq 1 100); do
    ip netns exec "$NS_S" curl -sf -o /dev/null --max-time 1 "$1" && { sleep 0.5; return 0; }
    sleep 0.1
  done
  die "server did not answer $1 (logs in $W)"
}

# CPU ticks of a process and its children (nginx workers), from /proc.
ticks() {
  local total=0 p
  for p in "$@"; do
    for q in $p $(cat /proc/"$p"/task/*/children 2>/dev/null); do
      [ -r /proc/"$q"/stat ] || continue
      total=$(( total + $(awk '{print $14 + $15}' /proc/"$q"/stat) ))
    done
  done
  echo "$total"
}

HZ=$(getconf CLK_TCK)
echo "storm: link $LINK (tbf on the server's egress), root ${ROOT_MIB} MiB, kernel ${KERNEL_MIB} MiB, initrd ${INITRD_MIB} MiB, spread ${SPREAD_MS} ms"
echo "host: $(nproc) cores, load before $(cut -d' ' -f1-3 /proc/loadavg), $(uname -r)"
{
  echo "link=$LINK root_mib=$ROOT_MIB kernel_mib=$KERNEL_MIB initrd_mib=$INITRD_MIB spread_ms=$SPREAD_MS"
  echo "load_before=$(cut -d' ' -f1-3 /proc/loadavg) cores=$(nproc) kernel=$(uname -r)"
  echo "dnsmasq: $(dnsmasq --version | head -1)"
  echo "nginx: $(nginx -v 2>&1)"
} > "$OUT/setup.txt"
salt=0
for n in $SCENARIOS; do
  for s in $SERVERS; do
    salt=$((salt + 1))
    d=$W/run-$s-$n
    case "$s" in
      tabula) start_tabula "$d" "${MAX_STREAMS:-32}" ;;
      tabula-fair) start_tabula "$d" 0 ;;
      standin) start_standin "$d" ;;
      *) die "unknown server $s" ;;
    esac
    before=$(ticks "${SERVER_PIDS[@]}")
    t0=$(date +%s.%N)
    timeout $((DEADLINE_S + 120)) ip netns exec "$NS_C" "$STORM_BIN" --iface "$VC" \
      --machines "$n" --salt "$salt" --spread-ms "$SPREAD_MS" --deadline-s "$DEADLINE_S" \
      --link-bps "$BPS" > "$OUT/$s-$n.jsonl" 2> "$OUT/$s-$n.err" || echo "storm client failed: see $OUT/$s-$n.err"
    t1=$(date +%s.%N)
    after=$(ticks "${SERVER_PIDS[@]}")
    cpu=$(awk -v a="$before" -v b="$after" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')
    echo "{\"server\":\"$s\",\"n\":$n,\"server_cpu_s\":$cpu,\"wall_s\":$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')}" >> "$OUT/runs.jsonl"
    for p in "${SERVER_PIDS[@]}"; do stop "$p"; done
    for f in "$d"/*.log "$d"/*.err "$d"/*.out; do [ -s "$f" ] && cp "$f" "$OUT/$s-$n.$(basename "$f")"; done
    echo "  $s N=$n done: server CPU ${cpu}s"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/setup.txt"
python3 bench/storm_report.py "$OUT" | tee "$OUT/report.md"
