#!/usr/bin/env bash
# images/kernel.sh: the Debian kernel the lab boots, fetched and unpacked once into the cache.
#
# Resolves the kernel package from linux-image-$ARCH's dependency (or TABULA_LAB_KERNEL,
# e.g. 6.1.0-56-amd64, to pin it; ARCH is TABULA_LAB_ARCH, amd64 by default, or arm64),
# fetches it with `apt-get download` (never installs it),
# unpacks it with `dpkg-deb -x`, writes modules.dep (depmod) and keeps the tree. Prints, as shell assignments on stdout:
#   KERNEL_RELEASE  KERNEL_PACKAGE  KERNEL_PACKAGE_VERSION  KERNEL_DEB  VMLINUZ  MODULES_DIR
# A second run with the tree in the cache is instant and needs no network.
set -euo pipefail
LAB_RECIPE=kernel
. "$(dirname "$0")/env.sh"

dir=$LAB_CACHE/kernel
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9

release=${TABULA_LAB_KERNEL:-}
if [ -z "$release" ]; then
  lab_need apt-cache
  # The candidate linux-image-$ARCH depends on exactly one linux-image-<release>.
  dep=$(apt-cache show --no-all-versions "linux-image-$LAB_ARCH:$LAB_ARCH" 2>/dev/null |
    sed -n "s/^Depends: .*\(linux-image-[0-9][^ ,]*-$LAB_ARCH\).*/\1/p" | head -n1)
  [ -n "$dep" ] || lab_die "cannot resolve linux-image-$LAB_ARCH:$LAB_ARCH (run images/setup-packages.sh and apt-get update, or set TABULA_LAB_KERNEL)"
  release=${dep#linux-image-}
fi
pkg=linux-image-$release
tree=$dir/$release

if [ ! -d "$tree" ]; then
  deb=$(ls "$dir"/"${pkg}"_*_"$LAB_ARCH".deb 2>/dev/null | head -n1 || true)
  if [ -z "$deb" ]; then
    lab_need apt-get dpkg-deb
    lab_log "downloading $pkg with apt-get download"
    tmp=$(mktemp -d "$dir/.download.XXXXXX")
    # _apt cannot write into a root-only cache directory: let it write into its own.
    chmod 0755 "$tmp"
    (cd "$tmp" && apt-get download -q "$pkg:$LAB_ARCH" 2>&1 | grep -v 'unsandboxed as root' >&2) ||
      { rm -rf "$tmp"; lab_die "apt-get download $pkg failed (run apt-get update?)"; }
    got=$(ls "$tmp"/*.deb)
    mv "$got" "$dir/"
    rmdir "$tmp"
    deb=$dir/$(basename "$got")
  fi
  lab_log "unpacking $(basename "$deb")"
  tmp=$(mktemp -d "$dir/.unpack.XXXXXX")
  dpkg-deb -x "$deb" "$tmp" || { rm -rf "$tmp"; lab_die "dpkg-deb -x $deb failed"; }
  # The package leaves modules.dep to its postinst; make it as that would (kmod's depmod
  # if installed, else busybox's: only the dependency sets are used, not their order).
  lab_log "writing modules.dep"
  if command -v depmod >/dev/null 2>&1; then
    depmod -b "$tmp" "$release"
  else
    lab_need busybox
    busybox depmod -b "$tmp" "$release"
  fi
  mv "$tmp" "$tree"
fi

deb=$(ls "$dir"/"${pkg}"_*_"$LAB_ARCH".deb 2>/dev/null | head -n1 || true)
vmlinuz=$tree/boot/vmlinuz-$release
modules=$tree/lib/modules/$release
[ -f "$vmlinuz" ] || lab_die "$vmlinuz is missing (remove $tree to unpack again)"
[ -f "$modules/modules.dep" ] || lab_die "$modules/modules.dep is missing (remove $tree to unpack again)"
version=
[ -n "$deb" ] && version=$(dpkg-deb -f "$deb" Version)

printf 'KERNEL_RELEASE=%q\n' "$release"
printf 'KERNEL_PACKAGE=%q\n' "$pkg"
printf 'KERNEL_PACKAGE_VERSION=%q\n' "$version"
printf 'KERNEL_DEB=%q\n' "$deb"
printf 'VMLINUZ=%q\n' "$vmlinuz"
printf 'MODULES_DIR=%q\n' "$modules"
