#!/usr/bin/env bash
# Side-by-side boot benchmark (issue 18): the same QEMU VM (TCG) booted through tabula and
# through a stand-in made of dnsmasq (DHCP + TFTP + IPv6 RA) and a small static Python
# HTTP server, in one run, per firmware path, with seconds per stage from the VM's
# timestamped serial console:
#   bios        SeaBIOS + QEMU's iPXE ROM (virtio) → script → kernel + initrd → root → marker
#   bios-chain  SeaBIOS + iPXE ROM → TFTP undionly.kpxe → second iPXE → script → … → marker
#   uefi        OVMF PXE (no NIC ROM) → TFTP snponly.efi → iPXE → script → … → marker
#   uefi-http   OVMF HTTP boot (PXE off by fw_cfg) → HTTP snponly.efi → iPXE → script → …
#   ipxe-efi    OVMF PXE → TFTP ipxe.efi (iPXE's own drivers) → script → … → marker
#   secureboot  OVMF Secure Boot + Microsoft keys → TFTP shim → grubnetx64 → grub.cfg →
#               Debian-signed kernel + initrd over TFTP → root → marker
# Both servers get the same loaders (/usr/lib/ipxe, shim-signed, grub-efi-amd64-signed),
# kernel, initramfs and root image (images/publish.sh), with 175.176 = 1 and an IPv6 RA,
# as the lab notes recommend for any server. Where iPXE runs from the ROM, both send it
# to the script directly (tabula with dhcp.chainload = "script", dnsmasq by its "iPXE"
# user-class tag), except on bios-chain: tabula with its shipped "loader-first", dnsmasq
# with the user-class chain plus the per-MAC "chained" tag of shared/netboot-lab.md §6
# (a watcher writes it into dhcp-hostsdir once dnsmasq logs undionly.kpxe sent), since
# the ROM and undionly send byte-identical options. UEFI HTTP: dnsmasq answers client
# arch 16 with option 60 HTTPClient and the loader's URL on the Python server (whose HEAD
# carries the real Content-Length, which EDK2 sizes the download by). Secure Boot: tabula
# as `tabula lab --firmware secureboot` configures it (src/lab/grub.rs); dnsmasq serves
# copies of the same signed files and one static grub/grub.cfg over TFTP.
#
# Usage (root): bash bench/boot.sh
# Knobs: PATHS="bios bios-chain uefi uefi-http ipxe-efi secureboot" SERVERS="tabula standin"
#   RUNS=1 LIMIT_S=240 CAPTURE=1 (tcpdump of the bridge per boot, 128-byte snaplen)
#   TABULA_BIN=… (default target/release/tabula, else target/debug/tabula)
# Runs alternate the servers (tabula, stand-in, tabula, …) so drift in the host's load hits both.
# Output: a table on stdout; consoles, server logs and the table in bench/results/boot-<UTC>/.
# Only the namespace and processes this script creates are touched; all removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "boot.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (network namespace, port 67)"
for b in ip dnsmasq python3 qemu-system-x86_64 bc; do command -v "$b" >/dev/null || die "missing $b"; done

PATHS=${PATHS:-"bios bios-chain uefi uefi-http ipxe-efi secureboot"}
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
SHIM=/usr/lib/shim/shimx64.efi.signed
GRUBNET=/usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed
OVMF_SB_CODE=/usr/share/OVMF/OVMF_CODE_4M.secboot.fd OVMF_SB_VARS=/usr/share/OVMF/OVMF_VARS_4M.ms.fd
case " $PATHS " in *" secureboot "*)
  for f in "$SHIM" "$GRUBNET" "$OVMF_SB_CODE" "$OVMF_SB_VARS"; do [ -e "$f" ] || die "missing $f (shim-signed, grub-efi-amd64-signed, ovmf)"; done ;;
esac
LAB=config/lab.toml
grep -q '^chainload = "loader-first"' $LAB || die "$LAB has no chainload line to change"
grep -q '^efi_x64 = "snponly.efi"' $LAB || die "$LAB has no efi_x64 loader line to change"
grep -q '^root = "/usr/lib/ipxe"' $LAB || die "$LAB has no TFTP root line to change"
# tabula's config per path: config/lab.toml, iPXE straight to the script except on
# bios-chain; ipxe.efi as the UEFI loader on ipxe-efi; shim → GRUB (as src/lab/grub.rs
# sets it up: a TFTP root of links to the packages' files) on secureboot.
sed 's/^chainload = "loader-first"/chainload = "script"/' $LAB >"$W/tabula-script.toml"
cp $LAB "$W/tabula-bios-chain.toml"
sed 's/^efi_x64 = "snponly.efi"/efi_x64 = "ipxe.efi"/' "$W/tabula-script.toml" >"$W/tabula-ipxe-efi.toml"
mkdir -p "$W/tftp-grub"
ln -s /usr/lib/ipxe/undionly.kpxe /usr/lib/ipxe/snponly.efi "$W/tftp-grub/"
ln -s "$SHIM" "$W/tftp-grub/shimx64.efi"
ln -s "$GRUBNET" "$W/tftp-grub/grubx64.efi"
sed -e "s|^root = \"/usr/lib/ipxe\"|root = \"$W/tftp-grub\"|" \
    -e 's|^\[dhcp.loaders\]$|[dhcp.programs]\nefi_x64 = "grub"\n\n[dhcp.loaders]\nshim_x64 = "shimx64.efi"\ngrub_x64 = "grubx64.efi"|' \
    "$W/tabula-script.toml" >"$W/tabula-secureboot.toml"
tabula_config() { case "$1" in bios-chain|ipxe-efi|secureboot) echo "$W/tabula-$1.toml" ;; *) echo "$W/tabula-script.toml" ;; esac; }

WWW=$W/www
mkdir -p "$WWW"
cp "$W/images/vmlinuz" "$W/images/initramfs.cpio.gz" "$W/images/demo-1.squashfs" /usr/lib/ipxe/snponly.efi "$WWW/"
CMDLINE="panic=5 console=ttyS0,115200 tabula.root=http://10.77.0.1:8080/demo-1.squashfs tabula.root_sha256=$ROOT_SHA tabula.callback=http://10.77.0.1:8080/report tabula.image=demo@1"
cat >"$WWW/boot.ipxe" <<IPXE
#!ipxe
kernel http://10.77.0.1:8080/vmlinuz initrd=initramfs.cpio.gz $CMDLINE
initrd http://10.77.0.1:8080/initramfs.cpio.gz
boot
IPXE
# The stand-in's Secure Boot TFTP root: copies of the signed files, kernel and initrd,
# and one static GRUB config (GRUB reads kernel and initrd over TFTP, as from tabula).
SBT=$W/tftp-standin-sb
mkdir -p "$SBT/grub"
cp "$SHIM" "$SBT/shimx64.efi"; cp "$GRUBNET" "$SBT/grubx64.efi"
cp "$W/images/vmlinuz" "$W/images/initramfs.cpio.gz" "$SBT/"
cat >"$SBT/grub/grub.cfg" <<GRUB
echo "standin: GRUB reads its config"
linux (tftp)/vmlinuz $CMDLINE
initrd (tftp)/initramfs.cpio.gz
boot
GRUB
cat >"$W/standin_http.py" <<'PY'
# A static HTTP/1.1 server for the stand-in: GET/HEAD of files in the current directory
# (Content-Length from the file's size on both, keep-alive), and 200 to any POST (the
# initramfs's reports).
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
MAC=52:54:00:77:09:01
HOSTS=$W/dnsmasq-hosts
dnsmasq_conf() { # PATH: the stand-in's config for one firmware path
  cat <<CONF
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
user=root
dhcp-userclass=set:ipxe,iPXE
dhcp-match=set:ipxe,175
dhcp-match=set:efi64,option:client-arch,7
dhcp-match=set:efi64,option:client-arch,9
dhcp-match=set:efihttp,option:client-arch,16
dhcp-option=tag:ipxe,encap:175,176,1
CONF
  case "$1" in
    secureboot) echo "tftp-root=$SBT" ;;
    *) echo "tftp-root=/usr/lib/ipxe" ;;
  esac
  case "$1" in
    bios-chain)
      echo "dhcp-hostsdir=$HOSTS"
      echo "dhcp-boot=tag:ipxe,tag:chained,http://10.77.0.1:8080/boot.ipxe"
      echo "dhcp-boot=tag:!chained,undionly.kpxe" ;;
    uefi-http)
      echo "dhcp-option-force=tag:efihttp,tag:!ipxe,60,HTTPClient"
      echo "dhcp-boot=tag:ipxe,http://10.77.0.1:8080/boot.ipxe"
      echo "dhcp-boot=tag:!ipxe,tag:efihttp,http://10.77.0.1:8080/snponly.efi" ;;
    secureboot)
      echo "dhcp-boot=tag:efi64,shimx64.efi" ;;
    *)
      local efi=snponly.efi; [ "$1" = ipxe-efi ] && efi=ipxe.efi
      echo "dhcp-boot=tag:ipxe,http://10.77.0.1:8080/boot.ipxe"
      echo "dhcp-boot=tag:!ipxe,tag:efi64,$efi"
      echo "dhcp-boot=tag:!ipxe,tag:!efi64,undionly.kpxe" ;;
  esac
}

SERVER_PID=
start_server() { # tabula | standin, PATH
  case "$1" in
    tabula)
      ip netns exec "$NS" "$TABULA_BIN" --config "$(tabula_config "$2")" --data-dir "$W/data" --log warn serve \
        >"$OUT/tabula-$2.log" 2>&1 &
      SERVER_PID=$!
      for _ in $(seq 1 100); do grep -q "listening: dhcp" "$OUT/tabula-$2.log" && break; sleep 0.2; done
      ;;
    standin)
      dnsmasq_conf "$2" >"$W/dnsmasq.conf"
      rm -rf "$HOSTS"; mkdir -p "$HOSTS"
      (cd "$WWW" && exec ip netns exec "$NS" python3 "$W/standin_http.py") >"$OUT/http.log" 2>&1 &
      SERVER_PID=$!
      : >"$OUT/dnsmasq-$2.log"
      ip netns exec "$NS" dnsmasq --conf-file="$W/dnsmasq.conf" --keep-in-foreground \
        --log-facility="$OUT/dnsmasq-$2.log" --pid-file="$W/dnsmasq.pid" >"$OUT/dnsmasq.out" 2>&1 &
      SERVER_PID="$SERVER_PID $!"
      if [ "$2" = bios-chain ]; then
        # The per-MAC state dnsmasq lacks: once undionly.kpxe went out, that MAC is
        # "chained" and its next iPXE request gets the script (bounded by LIMIT_S).
        ( for _ in $(seq 1 $((LIMIT_S * 10))); do
            if grep -q 'sent .*undionly\.kpxe to' "$OUT/dnsmasq-$2.log"; then
              echo "$MAC,set:chained" >"$HOSTS/chained"; exit 0
            fi
            sleep 0.1
          done ) &
        SERVER_PID="$SERVER_PID $!"
      fi
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
  local ovmf=(-machine q35 -device virtio-net-pci,netdev=n0,mac=$MAC,bootindex=1,romfile=
              -drive if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd
              -drive "if=pflash,format=raw,unit=1,file=$W/vars.fd")
  case "$path" in
    bios|bios-chain)
      args+=(-machine pc -device virtio-net-pci,netdev=n0,mac=$MAC,bootindex=1
             -fw_cfg "name=etc/sercon-port,file=$W/sercon-port.bin") ;;
    uefi|ipxe-efi)
      cp /usr/share/OVMF/OVMF_VARS_4M.fd "$W/vars.fd"; args+=("${ovmf[@]}") ;;
    uefi-http)
      cp /usr/share/OVMF/OVMF_VARS_4M.fd "$W/vars.fd"
      args+=("${ovmf[@]}" -fw_cfg name=opt/org.tianocore/IPv4PXESupport,string=n
             -fw_cfg name=opt/org.tianocore/IPv6PXESupport,string=n) ;;
    secureboot)
      cp "$OVMF_SB_VARS" "$W/vars.fd"
      args+=(-machine q35,smm=on -global driver=cfi.pflash01,property=secure,value=on
             -device virtio-net-pci,netdev=n0,mac=$MAC,bootindex=1,romfile=
             -drive "if=pflash,format=raw,unit=0,readonly=on,file=$OVMF_SB_CODE"
             -drive "if=pflash,format=raw,unit=1,file=$W/vars.fd") ;;
    *) die "unknown path $path" ;;
  esac
  local start; start=$(date +%s.%N)
  timeout "$LIMIT_S" nice -n 19 ip netns exec "$NS" qemu-system-x86_64 "${args[@]}" </dev/null 2>/dev/null |
    while IFS= read -r l; do
      printf '%.1f %s\n' "$(echo "$(date +%s.%N) - $start" | bc)" "$(printf '%s' "$l" | tr -d '\r' | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g')"
    done >"$log" || true
}

# Seconds of the first console line matching each stage's pattern (- when never seen).
# loader: the console names the first-stage loader (firmware PXE's NBP, HTTP boot's URI,
# the ROM's undionly.kpxe); script: iPXE runs boot.ipxe, or GRUB its config.
STAGES="loader script kernel init root marker"
pattern() {
  case "$1" in
    loader) echo 'NBP filename is|URI: http|undionly\.kpxe' ;;
    script) echo 'boot\.ipxe\.\.\.|GRUB on .* asks for its config|standin: GRUB reads its config' ;;
    kernel) echo 'Linux version|EFI stub' ;;
    init)   echo 'tabula-init: .* started' ;;
    root)   echo 'tabula-init: .* fetch: [0-9]+ bytes' ;;
    marker) echo 'TABULA-DEMO-BOOTED' ;;
  esac
}
at() { grep -aE "$(pattern "$1")" "$2" | head -n1 | cut -d' ' -f1; }

TABLE=$OUT/table.txt
printf '%-10s %-8s %4s  %8s %8s %8s %8s %8s %8s\n' path server run loader script kernel init root marker | tee "$TABLE"
for path in $PATHS; do
  for run in $(seq 1 "$RUNS"); do
    for server in $SERVERS; do
      start_server "$server" "$path"
      log=$OUT/console-$path-$server-$run.txt
      CAP_PID=
      if [ -n "${CAPTURE:-}" ]; then
        ip netns exec "$NS" tcpdump -q -i tabr0 -s 128 -w "$OUT/capture-$path-$server-$run.pcap" 2>/dev/null &
        CAP_PID=$!; PIDS+=($CAP_PID); sleep 0.5
      fi
      boot_vm "$path" "$log"
      [ -z "$CAP_PID" ] || { kill "$CAP_PID"; wait "$CAP_PID" 2>/dev/null || true; }
      stop_server
      row=$(printf '%-10s %-8s %4s ' "$path" "$server" "$run")
      for s in $STAGES; do v=$(at "$s" "$log" || true); row="$row $(printf '%8s' "${v:--}")"; done
      echo "$row" | sed 's/  *$//' | tee -a "$TABLE"
    done
  done
done
echo "(seconds from QEMU start to the first console line of each stage; - = not reached in ${LIMIT_S}s; load $(cut -d' ' -f1-3 /proc/loadavg))" | tee -a "$TABLE"
echo "results in $OUT"
