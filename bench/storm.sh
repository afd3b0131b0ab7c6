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
#   tabula-pg                       (tabula with its store on PostgreSQL: a throw-away
#                                    cluster on a Unix socket, started here once)
#   tabula-2                        (two `tabula serve` on that PostgreSQL, one database:
#                                    A publishes the image, B replicates it before the
#                                    storm; each on its own link of rate LINK)
# in the same run, with the same client and files. Each server lives in its own network
# namespace with its own veth pair into a bridge in the client namespace (server A
# 10.77.0.1, server B 10.77.0.3; single-server variants use A only, B's link idles); each
# server side's egress is shaped with tbf at LINK, so the physical limit is known: all
# bytes / (servers x link rate).
#
# How tabula-2 spreads the machines: as a registered fleet does. Every machine has a
# reserved address (`[[dhcp.reservations]]`, the same list on both servers), and every
# server answers reserved clients (the DHCP authority's role is about dynamic pools only;
# docs/ha.md). A machine takes the first OFFER, as PXE firmware does, and that server's
# next-server and script URL, so it boots from whichever server answered first: the
# split is a race that a busier server loses, not a fixed half. The split is printed
# (scripts per server, from each machine's callback). The tabula-pg and tabula-2 runs
# use the same reservations; the SQLite variants hand out dynamic addresses.
#
# Usage (root): bash bench/storm.sh
# Knobs (environment): LINK=10gbit SCENARIOS="100 500 1000" SERVERS="tabula standin"
#   (SERVERS also: tabula-fair tabula-pg tabula-2; the last two need PostgreSQL installed)
#   ROOT_MIB=8 KERNEL_MIB=4 INITRD_MIB=2 SPREAD_MS=1000 DEADLINE_S=600
#   MAX_STREAMS=32 (tabula's http.admission.max_streams)
#   BALANCE=true (tabula-pg/tabula-2: ha.load_balance; false: every server answers every
#   reserved client at once, the first OFFER wins)
#   SERVER_LOG=warn (TABULA_LOG of the PostgreSQL variants' servers, e.g. tabula::dhcp=debug)
#   STORM_BIN=… TABULA_BIN=… (prebuilt binaries; else cargo build --release)
# Output: a table on stdout; raw JSON lines, logs and the table in bench/results/storm-<UTC>/.
# Only the namespaces and processes this script creates are touched; all are removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "storm.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, port 67)"
for b in ip tc curl python3; do command -v "$b" >/dev/null || die "missing $b"; done

LINK=${LINK:-10gbit}
SCENARIOS=${SCENARIOS:-"100 500 1000"}
SERVERS=${SERVERS:-"tabula tabula-fair standin"}
ROOT_MIB=${ROOT_MIB:-8}
KERNEL_MIB=${KERNEL_MIB:-4}
INITRD_MIB=${INITRD_MIB:-2}
SPREAD_MS=${SPREAD_MS:-1000}
DEADLINE_S=${DEADLINE_S:-600}
SERVER_LOG=${SERVER_LOG:-warn}
case "$LINK" in
  *gbit) BPS=$(( ${LINK%gbit} * 1000000000 )) ;;
  *mbit) BPS=$(( ${LINK%mbit} * 1000000 )) ;;
  *) die "LINK must be <n>gbit or <n>mbit" ;;
esac
case " $SERVERS " in *" standin "*)
  for b in dnsmasq nginx; do command -v "$b" >/dev/null || die "missing $b (the stand-in)"; done ;;
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
NS_S2=tabula-storm-$TAG-srv2
VS=ts${TAG}s
VC=ts${TAG}c
VS2=ts${TAG}t
VC2=ts${TAG}d
BR=ts${TAG}b
PIDS=()
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
PGDIR=""

stop() { # PID: TERM, wait up to 10 s, then KILL
  local p=$1
  kill "$p" 2>/dev/null || return 0
  for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
cleanup() {
  for p in "${PIDS[@]}"; do stop "$p"; done
  if [ -n "$PGDIR" ]; then
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$PGDIR"
  fi
  ip netns del "$NS_S2" 2>/dev/null || true
  ip netns del "$NS_S" 2>/dev/null || true
  ip netns del "$NS_C" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

# --- network: servers 10.77.0.1/16 (A) and 10.77.0.3/16 (B), each on its own veth into
# the client namespace's bridge; every pool address on the bridge ---------------------------
ip netns add "$NS_S"
ip netns add "$NS_S2"
ip netns add "$NS_C"
ip link add "$VS" netns "$NS_S" type veth peer name "$VC" netns "$NS_C"
ip link add "$VS2" netns "$NS_S2" type veth peer name "$VC2" netns "$NS_C"
for ns in "$NS_S" "$NS_S2" "$NS_C"; do ip -n "$ns" link set lo up; done
ip -n "$NS_C" link add "$BR" address 02:77:00:00:00:01 type bridge forward_delay 0
ip -n "$NS_C" link set "$VC" master "$BR"
ip -n "$NS_C" link set "$VC2" master "$BR"
ip -n "$NS_S" addr add 10.77.0.1/16 dev "$VS"
ip -n "$NS_S2" addr add 10.77.0.3/16 dev "$VS2"
ip -n "$NS_S" link set "$VS" up
ip -n "$NS_S2" link set "$VS2" up
for l in "$VC" "$VC2" "$BR"; do ip -n "$NS_C" link set "$l" up; done
POOL_FIRST=10.77.1.1 POOL_LAST=10.77.8.254
# Every address from POOL_FIRST to POOL_LAST (10.77.1.1-10.77.8.254, .0 and .255 included
# in between: inside a /16 they are host addresses, and dnsmasq hands them out).
pool() { for i in $(seq $((256 + 1)) $((8 * 256 + 254))); do echo "10.77.$((i / 256)).$((i % 256))"; done; }
pool | sed "s|.*|addr add &/16 dev $BR|" > "$W/addrs"
ip -n "$NS_C" -batch "$W/addrs"
# The servers' neighbours, permanent: the neighbour table (shared by every namespace,
# gc_thresh3 = 1024 by default) does not count those, so 1000 machines cannot overflow it.
CMAC=$(ip netns exec "$NS_C" cat "/sys/class/net/$BR/address")
pool | sed "s|.*|neigh replace & lladdr $CMAC dev $VS nud permanent|" > "$W/neigh"
ip -n "$NS_S" -batch "$W/neigh"
pool | sed "s|.*|neigh replace & lladdr $CMAC dev $VS2 nud permanent|" > "$W/neigh2"
ip -n "$NS_S2" -batch "$W/neigh2"
ip netns exec "$NS_S" tc qdisc add dev "$VS" root tbf rate "$LINK" burst 8mb latency 20ms
ip netns exec "$NS_S2" tc qdisc add dev "$VS2" root tbf rate "$LINK" burst 8mb latency 20ms

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

# A throw-away PostgreSQL cluster on a Unix socket in $PGDIR (no TCP), started once;
# the servers' namespaces reach it through the file system.
start_pg() {
  [ -n "$PGDIR" ] && return 0
  [ -n "$PGBIN" ] || die "missing PostgreSQL (apt-get install postgresql)"
  PGDIR=$(mktemp -d /tmp/tabula-storm-pg.XXXXXX)
  chown postgres "$PGDIR" && chmod 700 "$PGDIR"
  runuser -u postgres -- "$PGBIN/initdb" -D "$PGDIR/data" -A trust -U postgres >/dev/null
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w \
    -o "-c listen_addresses='' -c unix_socket_directories='$PGDIR'" start >/dev/null
}

# The reservations of machines 0..N-1 of storm salt SALT: the client's MACs
# (02:5a:<salt>:<i>, src/storm/mod.rs) on the pool's addresses in order.
reservations() { # n salt
  pool | head -n "$1" | awk -v salt="$2" '{ i = NR - 1
    printf "[[dhcp.reservations]]\nmac = \"02:5a:%02x:%02x:%02x:%02x\"\naddress = \"%s\"\n", salt, int(i / 65536) % 256, int(i / 256) % 256, i % 256, $0 }'
}

pg_conf() { # dir id address interface database n salt
  local d=$1
  mkdir -p "$d"
  cat > "$d/tabula.toml" <<TOML
[server]
data_dir = "$d/data"
id = "$2"
advertise = "$3"
[store]
url = "postgres://postgres@localhost/$5?host=$PGDIR"
[dhcp]
mode = "full"
interfaces = ["$4"]
[[dhcp.subnets]]
network = "10.77.0.0/16"
pools = ["$POOL_FIRST-$POOL_LAST"]
lease_time = "1h"
$(reservations "$6" "$7")
[tftp]
listen = "$3:69"
root = "$W/tftp"
[http]
listen = "$3:8080"
public_url = "http://$3:8080"
[http.admission]
max_streams = ${MAX_STREAMS:-32}
[api]
enabled = false
[ha]
load_balance = ${BALANCE:-true}
TOML
}

start_tabula_pg() { # run-dir servers(1|2) n salt
  local d=$1 count=$2 db=storm$RANDOM
  start_pg
  runuser -u postgres -- "$PGBIN/createdb" -h "$PGDIR" "$db"
  pg_conf "$d/a" storm-a 10.77.0.1 "$VS" "$db" "$3" "$4"
  "$TABULA_BIN" --config "$d/a/tabula.toml" image add storm --version 1 \
    --kernel "$W/www/vmlinuz" --initrd "$W/www/initrd.img" --rootfs "$W/www/root.img" > "$d/image.txt"
  "$TABULA_BIN" --config "$d/a/tabula.toml" pin set default storm@1 >/dev/null
  TABULA_LOG=$SERVER_LOG ip netns exec "$NS_S" "$TABULA_BIN" --config "$d/a/tabula.toml" serve \
    > "$d/a.out" 2> "$d/a.log" &
  SERVER_PIDS=($!)
  PIDS+=($!)
  wait_http "http://10.77.0.1:8080/healthz"
  [ "$count" = 2 ] || return 0
  # B starts after A holds the DHCP authority (A started first), with an empty data dir.
  pg_conf "$d/b" storm-b 10.77.0.3 "$VS2" "$db" "$3" "$4"
  TABULA_LOG=$SERVER_LOG ip netns exec "$NS_S2" "$TABULA_BIN" --config "$d/b/tabula.toml" serve \
    > "$d/b.out" 2> "$d/b.log" &
  SERVER_PIDS+=($!)
  PIDS+=($!)
  wait_http "http://10.77.0.3:8080/healthz" "$NS_S2"
  # The image replicated to B: both servers report every blob present.
  local t0=$SECONDS
  until "$TABULA_BIN" --config "$d/a/tabula.toml" image list > "$d/image-list.txt" 2>&1 &&
      grep -q "storm-a=present" "$d/image-list.txt" && grep -q "storm-b=present" "$d/image-list.txt"; do
    [ $((SECONDS - t0)) -lt 120 ] || die "storm@1 not present on both servers after 120 s: $(cat "$d/image-list.txt")"
    sleep 1
  done
  echo "  replicated to B in $((SECONDS - t0)) s: $(grep storm "$d/image-list.txt" | tr -s ' ')"
  "$TABULA_BIN" --config "$d/a/tabula.toml" server list > "$d/server-list.txt" 2>&1 || true
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

wait_http() { # url [namespace]
  for _ in $(seq 1 100); do
    ip netns exec "${2:-$NS_S}" curl -sf -o /dev/null --max-time 1 "$1" && { sleep 0.5; return 0; }
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
  command -v dnsmasq >/dev/null && echo "dnsmasq: $(dnsmasq --version | head -1)"
  command -v nginx >/dev/null && echo "nginx: $(nginx -v 2>&1)"
  [ -n "$PGBIN" ] && echo "postgresql: $("$PGBIN/postgres" --version)"
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
      tabula-pg) start_tabula_pg "$d" 1 "$n" "$salt" ;;
      tabula-2) start_tabula_pg "$d" 2 "$n" "$salt" ;;
      *) die "unknown server $s" ;;
    esac
    before=$(ticks "${SERVER_PIDS[@]}")
    t0=$(date +%s.%N)
    links=1; [ "$s" = tabula-2 ] && links=2
    timeout $((DEADLINE_S + 120)) ip netns exec "$NS_C" "$STORM_BIN" --iface "$BR" \
      --machines "$n" --salt "$salt" --spread-ms "$SPREAD_MS" --deadline-s "$DEADLINE_S" \
      --link-bps "$((BPS * links))" > "$OUT/$s-$n.jsonl" 2> "$OUT/$s-$n.err" || echo "storm client failed: see $OUT/$s-$n.err"
    t1=$(date +%s.%N)
    after=$(ticks "${SERVER_PIDS[@]}")
    cpu=$(awk -v a="$before" -v b="$after" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')
    echo "{\"server\":\"$s\",\"n\":$n,\"server_cpu_s\":$cpu,\"wall_s\":$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')}" >> "$OUT/runs.jsonl"
    for p in "${SERVER_PIDS[@]}"; do stop "$p"; done
    for f in "$d"/*.log "$d"/*.err "$d"/*.out "$d"/*-list.txt; do [ -s "$f" ] && cp "$f" "$OUT/$s-$n.$(basename "$f")"; done
    # Which server each machine's script came from (its callback's host).
    split=$(grep -o '"callback":"http://[0-9.]*' "$OUT/$s-$n.jsonl" | sed 's|.*http://||' | sort | uniq -c | awk '{printf "%s%s: %s", sep, $2, $1; sep=", "}')
    # Which server acknowledged each machine's DHCP exchanges (ROM, iPXE, initramfs).
    dsplit=$(grep -o '"dhcp_servers":\[[^]]*\]' "$OUT/$s-$n.jsonl" | grep -o '[0-9.]\{7,\}' | sort | uniq -c | awk '{printf "%s%s: %s", sep, $2, $1; sep=", "}')
    echo "{\"server\":\"$s\",\"n\":$n,\"scripts_from\":\"$split\",\"acks_from\":\"$dsplit\"}" >> "$OUT/split.jsonl"
    echo "  $s N=$n done: server CPU ${cpu}s; scripts from $split; DHCP ACKs from $dsplit"
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/setup.txt"
python3 bench/storm_report.py "$OUT" | tee "$OUT/report.md"
