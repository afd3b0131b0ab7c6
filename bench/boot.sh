#!/usr/bin/env bash
# Side-by-side boot benchmark (issue 18): the same QEMU VM (TCG) booted through tabula and
# through a stand-in made of dnsmasq (DHCP + TFTP + IPv6 RA) and a small static Python
# HTTP server, in one run, per firmware path, with seconds per stage from the VM's
# timestamped serial console:
#   bios  SeaBIOS + QEMU's iPXE ROM (virtio) → script → kernel + initrd → root → marker
#   uefi  OVMF PXE (no NIC ROM) → TFTP snponly.efi → iPXE → script → … → marker
# Both servers get the same loaders (/usr/lib/ipxe), kernel, initramfs and root image
# (images/publish.sh), and both send iPXE to the script directly (tabula with
# dhcp.chainload = "script", dnsmasq by its "iPXE" user-class tag), with 175.176 = 1 and an
# IPv6 RA, as the lab notes recommend for any server.
#
# Usage (root): bash bench/boot.sh
# Knobs: PATHS="bios uefi" SERVERS="tabula standin" RUNS=1 LIMIT_S=240
#   TABULA_BIN=… (default target/release/tabula, else target/debug/tabula)
# Output: a table on stdout; consoles, server logs and the table in bench/results/boot-<UTC>/.
# Only the namespace and processes this script creates are touched; all removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "boot.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (network namespace, port 67)"
for b in ip dnsmasq python3 qemu-system-x86_64 bc; do command -v "$b" >/dev/null || die "missing $b"; done

PATHS=${PATHS:-"bios uefi"}
SERVERS=${SERVERS:-"tabula standin"}
RUNS=${RUNS:-1}
LIMIT_S=${LIMIT_S:-240}
T=${CARGO_TARGET_DIR:-$PWD/target}
TABULA_BIN=${TABULA_BIN:-$( [ -x "$T/release/tabula" ] && echo "$T/release/tabula" || echo "$T/debug/tabula")}
[ -x "$TABULA_BIN" ] || die "no tabula binary (cargo build --release, or set TABULA_BIN)"

STAMP=$(date -u +%Y-%m-%dT%H%MZ)
OUT=$PWD/bench/results/boot-$STAMP
mkdir -p "$OUT"
W=$(mktemp -d /tmp/tabula-bootbench.XXXXXX)
NS=tabula-bootbench-$$
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if ip netns list | grep -q "^$NS"; then
    for p in $(ip netns pids "$NS"); do kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$NS"
  fi
  rm -rf "$W"
}
trap cleanup EXIT

# --- images, published into a data dir of this run ---------------------------------
export TABULA_DATA_DIR=$W/data TABULA_LAB_OUT=$W/images TABULA="$TABULA_BIN"
bash images/publish.sh >"$OUT/publish.log" 2>&1 || die "images/publish.sh failed (see $OUT/publish.log)"
"$TABULA_BIN" --data-dir "$W/data" pin set default demo@1 >/dev/null
ROOT_SHA=$(sha256sum "$W/images/demo-1.squashfs" | cut -d' ' -f1)

# --- the network: one namespace, a bridge at 10.77.0.1, one tap -----------------------
ip netns add "$NS"
for s in all default; do
  ip netns exec "$NS" sysctl -q -w "net.ipv6.conf.$s.accept_ra=0" "net.ipv6.conf.$s.router_solicitations=0"
done
ip -n "$NS" link set lo up
ip -n "$NS" link add tabr0 type bridge
ip -n "$NS" link set tabr0 type bridge mcast_snooping 0
ip -n "$NS" addr add 10.77.0.1/24 dev tabr0
ip -n "$NS" addr add fd77::1/64 dev tabr0 nodad
ip -n "$NS" link set tabr0 up
ip -n "$NS" tuntap add dev tap0 mode tap
ip -n "$NS" link set tap0 master tabr0
ip -n "$NS" link set tap0 up

# --- the two servers --------------------------------------------------------------------
sed 's/^chainload = "loader-first"/chainload = "script"/' config/lab.toml >"$W/tabula.toml"
grep -q '^chainload = "script"' "$W/tabula.toml" || die "config/lab.toml has no chainload line to change"

WWW=$W/www
mkdir -p "$WWW"
cp "$W/images/vmlinuz" "$W/images/initramfs.cpio.gz" "$W/images/demo-1.squashfs" "$WWW/"
cat >"$WWW/boot.ipxe" <<IPXE
#!ipxe
kernel http://10.77.0.1:8080/vmlinuz initrd=initramfs.cpio.gz panic=5 console=ttyS0,115200 tabula.root=http://10.77.0.1:8080/demo-1.squashfs tabula.root_sha256=$ROOT_SHA tabula.callback=http://10.77.0.1:8080/report tabula.image=demo@1
initrd http://10.77.0.1:8080/initramfs.cpio.gz
boot
IPXE
cat >"$W/standin_http.py" <<'PY'
# A static HTTP/1.1 server for the stand-in: GET/HEAD of files in the current directory
# (Content-Length, keep-alive), and 200 to any POST (the initramfs's reports).
import http.server, socketserver
class H(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(n)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
S(("10.77.0.1", 8080), H).serve_forever()
PY
cat >"$W/dnsmasq.conf" <<CONF
port=0
interface=tabr0
bind-interfaces
no-ping
log-dhcp
dhcp-range=10.77.0.100,10.77.0.199,255.255.255.0,10m
dhcp-range=::,constructor:tabr0,ra-only
enable-ra
ra-param=tabr0,0,0
enable-tftp
tftp-root=/usr/lib/ipxe
dhcp-userclass=set:ipxe,iPXE
dhcp-match=set:ipxe,175
dhcp-match=set:efi64,option:client-arch,7
dhcp-match=set:efi64,option:client-arch,9
dhcp-option=tag:ipxe,encap:175,176,1
dhcp-boot=tag:ipxe,http://10.77.0.1:8080/boot.ipxe
dhcp-boot=tag:!ipxe,tag:efi64,snponly.efi
dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe
user=root
CONF

SERVER_PID=
start_server() { # tabula | standin
  case "$1" in
    tabula)
      ip netns exec "$NS" "$TABULA_BIN" --config "$W/tabula.toml" --data-dir "$W/data" --log warn serve \
        >"$OUT/tabula.log" 2>&1 &
      SERVER_PID=$!
      for _ in $(seq 1 100); do grep -q "listening: dhcp" "$OUT/tabula.log" && break; sleep 0.2; done
      ;;
    standin)
      (cd "$WWW" && exec ip netns exec "$NS" python3 "$W/standin_http.py") >"$OUT/http.log" 2>&1 &
      SERVER_PID=$!
      ip netns exec "$NS" dnsmasq --conf-file="$W/dnsmasq.conf" --keep-in-foreground \
        --log-facility="$OUT/dnsmasq.log" --pid-file="$W/dnsmasq.pid" >"$OUT/dnsmasq.out" 2>&1 &
      SERVER_PID="$SERVER_PID $!"
      sleep 1
      ;;
  esac
  PIDS+=($SERVER_PID)
}
stop_server() {
  for p in $SERVER_PID; do kill "$p" 2>/dev/null || true; done
  for p in $SERVER_PID; do while kill -0 "$p" 2>/dev/null; do sleep 0.1; done; done
  SERVER_PID=
}

printf '\xf8\x03' >"$W/sercon-port.bin"
boot_vm() { # PATH LOG: boots, writes "<seconds> <line>" per console line
  local path=$1 log=$2 args
  args=(-nodefaults -no-user-config -display none -monitor none -no-reboot -m 512 -smp 1 -accel tcg
        -uuid 00000000-7777-4000-8000-525400770901 -chardev stdio,id=ser0,signal=off -serial chardev:ser0
        -netdev tap,id=n0,ifname=tap0,script=no,downscript=no -boot n)
  case "$path" in
    bios) args+=(-machine pc -device virtio-net-pci,netdev=n0,mac=52:54:00:77:09:01,bootindex=1
                 -fw_cfg "name=etc/sercon-port,file=$W/sercon-port.bin") ;;
    uefi) cp /usr/share/OVMF/OVMF_VARS_4M.fd "$W/vars.fd"
          args+=(-machine q35 -device virtio-net-pci,netdev=n0,mac=52:54:00:77:09:01,bootindex=1,romfile=
                 -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd
                 -drive "if=pflash,format=raw,unit=1,file=$W/vars.fd") ;;
  esac
  local start; start=$(date +%s.%N)
  timeout "$LIMIT_S" nice -n 19 ip netns exec "$NS" qemu-system-x86_64 "${args[@]}" </dev/null 2>/dev/null |
    while IFS= read -r l; do
      printf '%.1f %s\n' "$(echo "$(date +%s.%N) - $start" | bc)" "$(printf '%s' "$l" | tr -d '\r' | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g')"
    done >"$log" || true
}

# Seconds of the first console line matching each stage's pattern (- when never seen).
STAGES="script kernel init root marker"
pattern() {
  case "$1" in
    script) echo 'boot\.ipxe\.\.\.' ;;
    kernel) echo 'Linux version|EFI stub' ;;
    init)   echo 'tabula-init: .* started' ;;
    root)   echo 'tabula-init: .* fetch: [0-9]+ bytes' ;;
    marker) echo 'TABULA-DEMO-BOOTED' ;;
  esac
}
at() { grep -aE "$(pattern "$1")" "$2" | head -n1 | cut -d' ' -f1; }

TABLE=$OUT/table.txt
printf '%-5s %-8s %4s  %8s %8s %8s %8s %8s\n' path server run script kernel init root marker | tee "$TABLE"
for path in $PATHS; do
  for server in $SERVERS; do
    for run in $(seq 1 "$RUNS"); do
      start_server "$server"
      log=$OUT/console-$path-$server-$run.txt
      boot_vm "$path" "$log"
      stop_server
      row=$(printf '%-5s %-8s %4s ' "$path" "$server" "$run")
      for s in $STAGES; do v=$(at "$s" "$log" || true); row="$row $(printf '%8s' "${v:--}")"; done
      echo "$row" | sed 's/  *$//' | tee -a "$TABLE"
    done
  done
done
echo "(seconds from QEMU start to the first console line of each stage; - = not reached in ${LIMIT_S}s; load $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$TABLE"
echo "results in $OUT"
