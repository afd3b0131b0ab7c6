#!/usr/bin/env bash
# images/setup-packages.sh: installs the Debian packages the netboot lab needs (Debian 12, root).
#
# busybox-static, squashfs-tools and cpio build the images; qemu-system-x86, seabios,
# ipxe-qemu, ipxe and ovmf boot them; curl drives tabula in tests. shim-signed and
# grub-efi-amd64-signed are the Secure Boot chain `tabula lab --firmware secureboot` serves
# (Microsoft-signed shim, Debian-signed grubnetx64.efi; ovmf has the Secure Boot firmware),
# sbsigntool's sbverify shows what signed the kernel; mtools and grub-efi-amd64-bin build
# the lab's local disk (a FAT ESP with a standalone GRUB, src/lab/local_disk.rs). The ARM64 kind (`--firmware
# arm64`) needs qemu-system-arm, qemu-efi-aarch64 (AAVMF) and grub-efi-arm64-bin:arm64
# (grubnetaa64.efi): dpkg gets the arm64 architecture added for it, which also lets the
# image recipes `apt-get download` arm64's kernel and busybox-static (never installed).
# qemu-system-x86, qemu-system-arm and seabios come from bookworm-backports: the machine image ships qemu-utils from backports,
# which Breaks bookworm's qemu-system-common 7.2, so installing the stock qemu would make
# apt remove qemu-utils. The backports source has pin priority 100, so nothing else is
# upgraded from it.
#
# Idempotent: when everything is installed it returns without touching apt.
# --check: install nothing; exit 1 naming what is missing (tests use this).
set -euo pipefail
check_only=0
[ "${1:-}" = --check ] && check_only=1

PACKAGES=(busybox-static squashfs-tools cpio ipxe ipxe-qemu ovmf curl xz-utils
  shim-signed grub-efi-amd64-signed sbsigntool qemu-efi-aarch64 mtools grub-efi-amd64-bin)
# Installed after the arm64 architecture is added (its Multi-Arch: foreign grub-common
# dependency is the amd64 one).
ARM64_PACKAGES=(grub-efi-arm64-bin:arm64)
BACKPORTS_PACKAGES=(qemu-system-x86 qemu-system-arm seabios)
BACKPORTS_SOURCE=/etc/apt/sources.list.d/bookworm-backports.sources

log() { echo "setup-packages: $*" >&2; }

installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

# A qemu-system-* counts only if it is the backports build (7.2 breaks qemu-utils).
qemu_ok() {
  installed "$1" || return 1
  local v
  v=$(dpkg-query -W -f='${Version}' "$1")
  dpkg --compare-versions "$v" ge "1:8.0"
}

arm64_enabled() { dpkg --print-foreign-architectures | grep -qx arm64; }

missing=()
for p in "${PACKAGES[@]}" "${ARM64_PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
bpo_missing=()
for q in qemu-system-x86 qemu-system-arm; do qemu_ok "$q" || bpo_missing+=("$q"); done
installed seabios || bpo_missing+=(seabios)
arch_missing=()
arm64_enabled || arch_missing+=("dpkg architecture arm64")

if ((${#missing[@]} == 0 && ${#bpo_missing[@]} == 0 && ${#arch_missing[@]} == 0)); then
  log "all lab packages are installed"
  exit 0
fi

if [ "$check_only" = 1 ]; then
  log "missing: ${arch_missing[*]} ${missing[*]} ${bpo_missing[*]}(qemu-system-x86, qemu-system-arm and seabios from bookworm-backports); run images/setup-packages.sh as root"
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  log "missing: ${arch_missing[*]} ${missing[*]} ${bpo_missing[*]}; run this script as root" >&2
  exit 1
fi

. /etc/os-release
if [ "${VERSION_CODENAME:-}" != bookworm ]; then
  log "warning: written for Debian 12 (bookworm), this is ${PRETTY_NAME:-unknown}"
fi

if [ ! -e "$BACKPORTS_SOURCE" ]; then
  log "adding bookworm-backports ($BACKPORTS_SOURCE)"
  cat >"$BACKPORTS_SOURCE" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

if ! arm64_enabled; then
  log "adding the arm64 architecture to dpkg (arm64 GRUB, kernel and busybox for the ARM64 lab)"
  dpkg --add-architecture arm64
fi

export DEBIAN_FRONTEND=noninteractive
apt_get() { apt-get -o DPkg::Lock::Timeout=600 -y -q "$@"; }

log "apt-get update"
apt_get update -qq
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt_get install --no-install-recommends "${missing[@]}"
fi
log "installing ${BACKPORTS_PACKAGES[*]} from bookworm-backports"
apt_get install --no-install-recommends -t bookworm-backports "${BACKPORTS_PACKAGES[@]}"

# Never leave the machine without qemu-utils if it had it.
for p in "${PACKAGES[@]}" "${ARM64_PACKAGES[@]}"; do
  installed "$p" || { log "error: $p did not install"; exit 1; }
done
for q in qemu-system-x86 qemu-system-arm; do
  qemu_ok "$q" || { log "error: $q from bookworm-backports did not install"; exit 1; }
done
log "done: $(dpkg-query -W -f='${Package} ${Version}\n' qemu-system-x86 qemu-system-arm seabios | tr '\n' ' ')"
