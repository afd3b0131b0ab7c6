#!/usr/bin/env bash
# images/debian/build.sh [DIR]: a real, minimal Debian 12 root tree for `tabula image build`.
#
# `debootstrap --variant=minbase` of bookworm with its own kernel (linux-image-amd64),
# systemd as init and busybox (a toolbox; the boot report itself uses bash and coreutils), from the Debian
# mirror apt already uses (TABULA_DEBIAN_MIRROR to override). The debootstrap itself runs
# once per machine and is kept in the cache (${TABULA_DEBIAN_CACHE:-/var/cache/tabula-tests}
# /debian-bookworm, ~600 MB); every run then (re)installs this directory's boot-report unit
# into the tree, which is cheap. Prints the tree's path on stdout.
#
# The unit (tabula-booted.service) runs when systemd reaches multi-user.target: it checks
# the manifest digest the kernel command line names against tabula's copy, reports
# "booted" to tabula and prints TABULA-DEBIAN-BOOTED on the console (see tabula-booted).
set -euo pipefail
LAB_RECIPE=debian
. "$(dirname "$0")/../env.sh"

cache=${TABULA_DEBIAN_CACHE:-/var/cache/tabula-tests}
tree=${1:-$cache/debian-bookworm}
here=$LAB_IMAGES_DIR/debian
PACKAGES=linux-image-amd64,systemd-sysv,busybox

mirror=${TABULA_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  # The first plain Debian URI apt is configured with (deb822 or one-line sources).
  mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
    sed -n 's#^URIs: *\(http[^ ]*/debian\)/\{0,1\}$#\1#p' | head -n1)
  [ -n "$mirror" ] || mirror=$(sed -n 's#^deb \(http[^ ]*/debian\)/\{0,1\} .*#\1#p' /etc/apt/sources.list 2>/dev/null | head -n1)
  [ -n "$mirror" ] || lab_die "no Debian mirror found in apt's sources: set TABULA_DEBIAN_MIRROR"
fi

mkdir -p "$(dirname "$tree")"
exec 9>"$tree.lock"
flock 9
if [ ! -e "$tree.done" ]; then
  lab_need debootstrap
  rm -rf "$tree.tmp"
  lab_log "debootstrap --variant=minbase --include=$PACKAGES bookworm from $mirror (once per machine)"
  t0=$(date +%s)
  debootstrap --variant=minbase --include="$PACKAGES" bookworm "$tree.tmp" "$mirror" >"$tree.log" 2>&1 ||
    { tail -n 20 "$tree.log" >&2; lab_die "debootstrap failed (log: $tree.log)"; }
  # apt's package lists and downloaded .debs are not part of the image.
  rm -rf "$tree.tmp"/var/cache/apt/archives/*.deb "$tree.tmp"/var/lib/apt/lists/*_Packages
  # The image's identity comes from tabula; a fixed machine-id would be shared by every boot.
  : >"$tree.tmp/etc/machine-id"
  echo tabula-debian >"$tree.tmp/etc/hostname"
  rm -rf "$tree"
  mv "$tree.tmp" "$tree"
  touch "$tree.done"
  lab_log "debootstrap took $(($(date +%s) - t0)) s"
fi

# An unchanged file is left alone, so the tree (and its newest mtime, the default build
# time) stays the same and two image builds from it give the same digests.
put() { cmp -s "$1" "$3" || install -p -m "$2" "$1" "$3"; }
put "$here/tabula-booted" 0755 "$tree/usr/local/sbin/tabula-booted"
put "$here/tabula-booted.service" 0644 "$tree/etc/systemd/system/tabula-booted.service"
wants=$tree/etc/systemd/system/multi-user.target.wants
mkdir -p "$wants"
[ -L "$wants/tabula-booted.service" ] || ln -s ../tabula-booted.service "$wants/tabula-booted.service"
echo "$tree"
