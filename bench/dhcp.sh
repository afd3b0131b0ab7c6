#!/usr/bin/env bash
# DHCP benchmark: tabula (full mode, durable leases) vs Kea kea-dhcp4 (memfile,
# single-threaded) vs dnsmasq (--no-ping), in ONE run over the same namespace pair.
#
#   (a) highest DORA/s sustained for PERIOD s at zero drops (rate stepped up per server;
#       each step on a fresh server with an empty lease database), measured with
#       `perfdhcp -4 -l <veth> -r RATE -R 60000 -p PERIOD` (broadcast, like PXE ROMs);
#   (b) boot storm: N clients at once (`perfdhcp --scenario avalanche -R N`), seconds
#       until all N are leased, N in STORMS.
#
# Variants (SERVERS): `tabula` (SQLite store, plain clients: no boot events), `tabula-pxe`
# (clients look like PXE firmware: option 60 `PXEClient:Arch:00000:UNDI:002001` and
# option 93, and the default pin boots an image, so every OFFER and ACK also writes a
# boot event, through the same store as the leases), `tabula-pg` and `tabula-pg-pxe`
# (the same on PostgreSQL: a throw-away cluster started here, on a Unix socket only),
# `kea` and `kea-pxe` (Kea with the same two kinds of client), `kea-pg` (Kea with its
# PostgreSQL lease backend, `lease-database type = postgresql`, schema by `kea-admin
# db-init` in the same throw-away cluster), `tabula-pg2` (two tabula servers on one
# PostgreSQL database, on the same link: the DHCP authority allocates, the standby sees
# every broadcast and stays silent, as in an HA deployment), `dnsmasq`.
#
# Usage (root; packages kea-admin kea-dhcp4-server dnsmasq-base postgresql; a release build):
#   cargo build --release && sudo bash bench/dhcp.sh
# Environment: PERIOD (30), TABULA_RATES, KEA_RATES, DNSMASQ_RATES, STORMS ("1000 5000"),
# SERVERS ("tabula kea dnsmasq"). Server pinned to CPU0, perfdhcp to CPU1.
# Everything runs in namespaces tbb-srv/tbb-cli (10.77.0.0/16, nothing on the host's
# interfaces); every process is killed by its PID; namespaces are removed on exit.
#
# The load generator's receive buffer: perfdhcp (one process standing in for thousands
# of machines) reads its replies through ONE socket with the kernel's default buffer
# (net.core.rmem_default, 208 KiB here, ~150 replies). A server that answers a storm
# faster than perfdhcp drains that socket has its replies dropped IN PERFDHCP (seen as
# UdpRcvbufErrors in the client namespace, zero on the server side), and perfdhcp then
# waits 0-2 s to retransmit: the figure measures the client. Real machines each have
# their own NIC. So for the run, rmem_default is raised to RMEM (4 MiB, = rmem_max
# here; a global sysctl that cannot be set per namespace) and restored on exit; every
# server gets the same. RMEM=0 keeps the machine's default. The client-side drop counter
# is printed with every figure so the effect is visible.
set -euo pipefail
cd "$(dirname "$0")/.."

PERIOD=${PERIOD:-30}
TABULA_RATES=${TABULA_RATES:-"4000 6000 8000 10000 12000 14000"}
KEA_RATES=${KEA_RATES:-"3000 4000 5000 6000"}
DNSMASQ_RATES=${DNSMASQ_RATES:-"100 200 400"}
STORMS=${STORMS:-"1000 5000"}
SERVERS=${SERVERS:-"tabula tabula-pxe tabula-pg tabula-pg2 tabula-pg-pxe kea kea-pg kea-pxe dnsmasq"}
TABULA=${TABULA:-${CARGO_TARGET_DIR:-target}/release/tabula}
SRV=tbb-srv CLI=tbb-cli SIF=tbs0 CIF=tbc0

[ "$(id -u)" -eq 0 ] || { echo "bench/dhcp.sh: needs root (network namespaces)" >&2; exit 1; }
for t in perfdhcp kea-dhcp4 dnsmasq; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install kea-admin kea-dhcp4-server dnsmasq-base)" >&2; exit 1; }
done
[ -x "$TABULA" ] || { echo "no release build at $TABULA (cargo build --release)" >&2; exit 1; }
TABULA=$(realpath "$TABULA")

WORK=$(mktemp -d /tmp/tabula-bench.XXXXXX)
SPID=""
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
PGDIR=""
stop_pg() {
  [ -n "$PGDIR" ] || return 0
  if [ -f "$PGDIR/data/postmaster.pid" ]; then
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$PGDIR"
}
# A throw-away PostgreSQL cluster on a Unix socket in $PGDIR (no TCP), started once.
start_pg() {
  [ -n "$PGDIR" ] && [ -S "$PGDIR/.s.PGSQL.5432" ] && return 0
  [ -n "$PGBIN" ] || { echo "missing PostgreSQL (apt-get install postgresql)" >&2; exit 1; }
  # Its own directory: the postgres user cannot enter $WORK (0700, root's).
  PGDIR=$(mktemp -d /tmp/tabula-bench-pg.XXXXXX)
  chown postgres "$PGDIR" && chmod 700 "$PGDIR"
  runuser -u postgres -- "$PGBIN/initdb" -D "$PGDIR/data" -A trust -U postgres >/dev/null
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/log" -w \
    -o "-c listen_addresses='' -c unix_socket_directories='$PGDIR' -c fsync=on -c synchronous_commit=on" start >/dev/null
}
SPID2=""
stop_server() {
  if [ -n "$SPID" ]; then kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; SPID=""; fi
  if [ -n "$SPID2" ]; then kill "$SPID2" 2>/dev/null || true; wait "$SPID2" 2>/dev/null || true; SPID2=""; fi
}
RMEM=${RMEM:-4194304}
RMEM_OLD=$(sysctl -n net.core.rmem_default)
cleanup() {
  stop_server
  stop_pg
  sysctl -qw net.core.rmem_default="$RMEM_OLD" || true
  ip netns del "$SRV" 2>/dev/null || true
  ip netns del "$CLI" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

ip netns del "$SRV" 2>/dev/null || true
ip netns del "$CLI" 2>/dev/null || true
if [ "$RMEM" != 0 ]; then sysctl -qw net.core.rmem_default="$RMEM"; fi
ip netns add "$SRV"; ip netns add "$CLI"
ip link add "$SIF" netns "$SRV" type veth peer name "$CIF" netns "$CLI"
ip -n "$SRV" addr add 10.77.0.1/16 dev "$SIF"
ip -n "$CLI" addr add 10.77.0.2/16 dev "$CIF"
for ns in "$SRV" "$CLI"; do ip -n "$ns" link set lo up; done
ip -n "$SRV" link set "$SIF" up; ip -n "$CLI" link set "$CIF" up

# start_tabula [pg] [pxe] [DB ID ADDR]: SQLite or a fresh PostgreSQL database (or DB,
# for a second server ID advertising ADDR); `default local`, or (pxe) a published image
# so PXE clients get a loader and boot events are written.
start_tabula() {
  local d="$WORK/tabula.$RANDOM" store="" db="${3:-}" id="${4:-bench-a}" addr="${5:-10.77.0.1}"
  mkdir -p "$d"
  if [ "${1:-}" = pg ]; then
    start_pg
    if [ -z "$db" ]; then
      db="t$RANDOM"
      runuser -u postgres -- "$PGBIN/createdb" -h "$PGDIR" "$db"
    fi
    CUR_DB=$db
    store="[store]
url = \"postgres://postgres@localhost/$db?host=$PGDIR\""
  fi
  CUR_CONF=$d/t.toml
  cat >"$d/t.toml" <<EOF
[server]
data_dir = "$d/data"
id = "$id"
advertise = "$addr"
$store
[dhcp]
mode = "full"
interfaces = ["$SIF"]
[[dhcp.subnets]]
network = "10.77.0.0/16"
pools = ["10.77.1.0-10.77.254.254"]
lease_time = "2h"
[tftp]
enabled = false
[http]
listen = "$addr:8080"
[api]
enabled = false
EOF
  if [ -n "${3:-}" ]; then
    : # a second server on an existing database: its pins and images are there already
  elif [ "${2:-}" = pxe ]; then
    head -c 65536 /dev/urandom >"$d/vmlinuz"
    TABULA_LOG=error "$TABULA" --config "$d/t.toml" image add demo --version 1 --kernel "$d/vmlinuz" >/dev/null
    TABULA_LOG=error "$TABULA" --config "$d/t.toml" pin set default demo@1 >/dev/null
  else
    TABULA_LOG=error "$TABULA" --config "$d/t.toml" pin set default local >/dev/null
  fi
  TABULA_LOG=error ip netns exec "$SRV" taskset -c 0 "$TABULA" --config "$d/t.toml" serve >"$d/out" 2>"$d/err" &
  SPID=$!
  for _ in $(seq 1 100); do grep -q "listening: dhcp" "$d/out" 2>/dev/null && break; sleep 0.1; done
}

# Boot events in the last tabula's store (its newest event id; "-" for other servers).
CUR_CONF=""
events_stored() {
  if [ -z "$CUR_CONF" ]; then echo -; return; fi
  TABULA_LOG=error "$TABULA" --config "$CUR_CONF" events --last 1 --json 2>/dev/null |
    sed -n 's/.*"id":\([0-9]*\).*/\1/p' | grep . || echo 0
}

CUR_DB=""
# Two servers on one database, both on the server's link (the second advertises
# 10.77.0.3): the first holds the DHCP authority, the second is its standby.
start_tabula-pg2() {
  start_tabula pg
  local first=$SPID conf=$CUR_CONF
  ip -n "$SRV" addr add 10.77.0.3/16 dev "$SIF" 2>/dev/null || true
  sleep 1
  SPID=""
  start_tabula pg plain "$CUR_DB" bench-b 10.77.0.3
  SPID2=$SPID SPID=$first CUR_CONF=$conf
  sleep 1
}
start_tabula-pxe() { start_tabula sqlite pxe; }
start_tabula-pg() { start_tabula pg; }
start_tabula-pg-pxe() { start_tabula pg pxe; }
start_kea-pxe() { start_kea; }

# Options perfdhcp adds to every DISCOVER and REQUEST for the -pxe variants: option 60
# "PXEClient:Arch:00000:UNDI:002001" (what a BIOS PXE ROM sends) and option 93 = 0 (BIOS).
PXE_OPTS=(-o "60,$(printf 'PXEClient:Arch:00000:UNDI:002001' | od -An -tx1 | tr -d ' \n')" -o 93,0000)
client_opts() { case $1 in *-pxe) echo "${PXE_OPTS[@]}";; esac; }

start_kea() {
  local d="$WORK/kea.$RANDOM"; mkdir -p "$d"
  CUR_CONF=""
  cat >"$d/kea.json" <<EOF
{ "Dhcp4": {
  "interfaces-config": { "interfaces": ["$SIF"], "dhcp-socket-type": "raw" },
  "lease-database": { "type": "memfile", "persist": true, "name": "$d/leases.csv", "lfc-interval": 3600 },
  "multi-threading": { "enable-multi-threading": false },
  "valid-lifetime": 7200,
  "subnet4": [ { "subnet": "10.77.0.0/16", "pools": [ { "pool": "10.77.1.0 - 10.77.254.254" } ],
                 "next-server": "10.77.0.1", "boot-file-name": "ipxe.efi" } ],
  "loggers": [ { "name": "kea-dhcp4", "severity": "ERROR", "output_options": [ { "output": "$d/kea.log" } ] } ]
} }
EOF
  KEA_LOCKFILE_DIR=$d KEA_PIDFILE_DIR=$d ip netns exec "$SRV" taskset -c 0 kea-dhcp4 -c "$d/kea.json" >"$d/out" 2>&1 &
  SPID=$!
  sleep 1.5
}

# Kea with its PostgreSQL lease backend, in a fresh database of the same cluster
# (schema made by kea-admin db-init).
start_kea-pg() {
  local d="$WORK/kea.$RANDOM" db="k$RANDOM"; mkdir -p "$d"
  CUR_CONF=""
  start_pg
  runuser -u postgres -- "$PGBIN/createdb" -h "$PGDIR" "$db"
  kea-admin db-init pgsql -u postgres -n "$db" -h "$PGDIR" >"$d/db-init.log" 2>&1 ||
    { echo "kea-admin db-init failed: $(cat "$d/db-init.log")" >&2; exit 1; }
  cat >"$d/kea.json" <<EOF
{ "Dhcp4": {
  "interfaces-config": { "interfaces": ["$SIF"], "dhcp-socket-type": "raw" },
  "lease-database": { "type": "postgresql", "name": "$db", "user": "postgres", "host": "$PGDIR" },
  "multi-threading": { "enable-multi-threading": false },
  "valid-lifetime": 7200,
  "subnet4": [ { "subnet": "10.77.0.0/16", "pools": [ { "pool": "10.77.1.0 - 10.77.254.254" } ],
                 "next-server": "10.77.0.1", "boot-file-name": "ipxe.efi" } ],
  "loggers": [ { "name": "kea-dhcp4", "severity": "ERROR", "output_options": [ { "output": "$d/kea.log" } ] } ]
} }
EOF
  KEA_LOCKFILE_DIR=$d KEA_PIDFILE_DIR=$d ip netns exec "$SRV" taskset -c 0 kea-dhcp4 -c "$d/kea.json" >"$d/out" 2>&1 &
  SPID=$!
  sleep 1.5
}

start_dnsmasq() {
  local d="$WORK/dnsmasq.$RANDOM"; mkdir -p "$d"
  CUR_CONF=""
  ip netns exec "$SRV" taskset -c 0 dnsmasq --no-daemon --conf-file=/dev/null --port=0 --user=root \
    --interface="$SIF" --bind-interfaces --dhcp-range=10.77.1.0,10.77.254.254,255.255.0.0,2h \
    --dhcp-lease-max=70000 --dhcp-authoritative --dhcp-boot=ipxe.efi --no-ping \
    --dhcp-leasefile="$d/leases" --log-facility="$d/log" >"$d/out" 2>&1 &
  SPID=$!
  sleep 1
}

# UDP receive-buffer drops so far in namespace $1 (/proc/net/snmp Udp RcvbufErrors).
rcvbuf() { ip netns exec "$1" awk '/^Udp:/ { if (++n == 2) print $6 }' /proc/net/snmp; }
bufdrops_mark() { B0S=$(rcvbuf "$SRV"); B0C=$(rcvbuf "$CLI"); }
bufdrops() { echo "socket-buffer drops: server $(($(rcvbuf "$SRV") - B0S)), perfdhcp $(($(rcvbuf "$CLI") - B0C))"; }

# perfdhcp output → "completed_dora_per_s discover_drops request_drops"
rate_step() {
  local out
  # shellcheck disable=SC2046 # client_opts is a word list on purpose
  out=$(timeout $((PERIOD + 30)) ip netns exec "$CLI" taskset -c 1 \
        perfdhcp -4 -l "$CIF" -r "$1" -R 60000 -p "$PERIOD" -W 1000000 $(client_opts "$2") 2>&1 || true)
  echo "$out" >"$WORK/last-perfdhcp.txt"
  echo "$out" | awk -v p="$PERIOD" '
    /Statistics for: DISCOVER-OFFER/ {s="do"} /Statistics for: REQUEST-ACK/ {s="ra"}
    /^drops:/ { d[s]=$2 } /^received packets:/ { r[s]=$3 }
    END { printf "%d %s %s\n", r["ra"]/p, (d["do"]==""?"?":d["do"]), (d["ra"]==""?"?":d["ra"]) }'
}

declare -A BEST STORM
cpu_cal=$(command -v sysbench >/dev/null && sysbench cpu --time=3 run 2>/dev/null | awk '/events per second/ {print $4}' || echo n/a)
echo "# DHCP benchmark $(date -u +%FT%TZ), period ${PERIOD}s, load $(cut -d' ' -f1-3 /proc/loadavg), sysbench cpu ${cpu_cal}, net.core.rmem_default $(sysctl -n net.core.rmem_default) (machine default ${RMEM_OLD})"
for srv in $SERVERS; do
  case $srv in tabula*) rates=$TABULA_RATES;; kea*) rates=$KEA_RATES;; dnsmasq) rates=$DNSMASQ_RATES;; esac
  BEST[$srv]=0
  for r in $rates; do
    "start_$srv"
    bufdrops_mark
    read -r done dd rd < <(rate_step "$r" "$srv")
    stop_server
    echo "$srv rate $r/s: completed ${done} DORA/s, drops DISCOVER=${dd} REQUEST=${rd}; $(bufdrops); boot events stored: $(events_stored)"
    if [ "$dd" = "0" ] && [ "$rd" = "0" ]; then BEST[$srv]=$done; else break; fi
  done
  for n in $STORMS; do
    "start_$srv"
    bufdrops_mark
    t0=$(date +%s.%N)
    # shellcheck disable=SC2046
    out=$(timeout 300 ip netns exec "$CLI" taskset -c 1 perfdhcp -4 -l "$CIF" --scenario avalanche -R "$n" $(client_opts "$srv") 2>&1 || true)
    t1=$(date +%s.%N)
    stop_server
    acks=$(echo "$out" | awk '/Statistics for: REQUEST-ACK/ {s=1} s && /^received packets:/ {print $3; exit}')
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    STORM[$srv,$n]="${secs} s (${acks:-?} of $n ACKed)"
    took=$(echo "$out" | awk '/^It took/ {print $3}')
    echo "$srv storm $n: ${STORM[$srv,$n]}; perfdhcp's own clock ${took:-?}; $(bufdrops)"
  done
done
echo
echo "| server | highest DORA/s, ${PERIOD} s, 0 drops | $(for n in $STORMS; do printf 'storm %s | ' "$n"; done)"
echo "|---|---|$(for n in $STORMS; do printf -- '---|'; done)"
for srv in $SERVERS; do
  echo "| $srv | ${BEST[$srv]} | $(for n in $STORMS; do printf '%s | ' "${STORM[$srv,$n]}"; done)"
done
