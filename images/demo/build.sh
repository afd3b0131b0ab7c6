#!/usr/bin/env bash
# images/demo/build.sh VERSION [OUT]: builds the demo root image (squashfs) for VERSION.
#
# Contents: busybox-static with its applet links, /sbin/init from this directory, and
# /etc/tabula-release stamped with NAME and VERSION, which the marker line prints. NAME is
# demo, or demo-arm64 with TABULA_LAB_ARCH=arm64 (arm64's busybox-static).
# Reproducible: fixed modes and mtimes (SOURCE_DATE_EPOCH, 0 by default), all files owned
# by root, no xattrs, and a squashfs creation time of that same epoch.
# OUT defaults to $TABULA_LAB_OUT/NAME-VERSION.squashfs (TABULA_LAB_OUT: lab-out/, and
# its arm64/ folder for arm64).
set -euo pipefail
LAB_RECIPE=demo
. "$(dirname "$0")/../env.sh"
lab_need mksquashfs

version=${1:?usage: images/demo/build.sh VERSION [OUT]}
name=$LAB_DEMO_NAME
out=${2:-$LAB_OUT/$name-$version.squashfs}
bb=$(lab_busybox)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
mkdir -p "$root"/{dev,proc,sys,run,tmp,etc,root}
lab_install_busybox "$root" "$bb"
rm -f "$root/sbin/init"
install -m 0755 "$LAB_IMAGES_DIR/demo/init" "$root/sbin/init"
printf 'NAME=%s\nVERSION=%s\n' "$name" "$version" >"$root/etc/tabula-release"
printf 'tabula demo image %s@%s: read-only root, throw-away overlay.\n' "$name" "$version" >"$root/etc/motd"
chmod 0644 "$root/etc/tabula-release" "$root/etc/motd"
chmod 1777 "$root/tmp"
lab_normalise_tree "$root"
chmod 1777 "$root/tmp"

mkdir -p "$(dirname "$out")"
rm -f "$out.tmp"
mksquashfs "$root" "$out.tmp" -quiet -no-progress -comp xz -all-root -no-xattrs \
  -mkfs-time "$LAB_EPOCH" -all-time "$LAB_EPOCH" >/dev/null
mv "$out.tmp" "$out"
lab_log "$out: $(wc -c <"$out") bytes ($name@$version)"
lab_log "sha256 $(sha256sum "$out" | cut -d' ' -f1)"
