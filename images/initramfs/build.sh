#!/usr/bin/env bash
# images/initramfs/build.sh [OUT]: builds the tabula netboot initramfs (gzip'd newc cpio).
#
# For TABULA_LAB_ARCH (amd64 by default, or arm64: that architecture's kernel modules and
# busybox-static, fetched with apt-get download). Contents: busybox-static with its applet links, /init and the udhcpc hook from this
# directory, and the kernel modules the Debian kernel needs for the NIC (virtio-net,
# e1000) and the root image (loop, squashfs, overlay), with their dependencies resolved
# from modules.dep into /lib/modules/load-order, decompressed if packed. Nothing else.
# Reproducible: every file gets the same mode, owner and mtime (SOURCE_DATE_EPOCH, 0 by
# default), the archive lists files in sorted order, and gzip stores no name or time.
# OUT defaults to $TABULA_LAB_OUT/initramfs.cpio.gz (TABULA_LAB_OUT: lab-out/).
set -euo pipefail
LAB_RECIPE=initramfs
. "$(dirname "$0")/../env.sh"
lab_need cpio gzip

# The drivers the initramfs carries; their dependencies are added from modules.dep.
WANT_MODULES=(virtio_pci virtio_net e1000 loop squashfs overlay)

out=${1:-$LAB_OUT/initramfs.cpio.gz}
eval "$("$LAB_IMAGES_DIR/kernel.sh")"
bb=$(lab_busybox)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/root
mkdir -p "$root"/{dev,proc,sys,run,tmp,etc,newroot,lib/modules}

lab_install_busybox "$root" "$bb"
install -m 0755 "$LAB_IMAGES_DIR/initramfs/init" "$root/init"
install -m 0755 "$LAB_IMAGES_DIR/initramfs/udhcpc.script" "$root/etc/udhcpc.script"
# The kernel opens /dev/console for /init before anything is mounted.
mknod -m 0600 "$root/dev/console" c 5 1
mknod -m 0666 "$root/dev/null" c 1 3

# modules.dep: "path/name.ko[.xz|.zst|.gz]: dep-path ..." (all dependencies, transitive).
declare -A path_of deps_of builtin
while IFS= read -r line; do
  file=${line%%:*}
  name=${file##*/}; name=${name%%.ko*}; name=${name//-/_}
  path_of[$name]=$file
  deps=
  for d in ${line#*:}; do d=${d##*/}; d=${d%%.ko*}; deps+=" ${d//-/_}"; done
  deps_of[$name]=$deps
done <"$MODULES_DIR/modules.dep"
if [ -f "$MODULES_DIR/modules.builtin" ]; then
  while IFS= read -r file; do
    name=${file##*/}; name=${name%%.ko*}; builtin[${name//-/_}]=1
  done <"$MODULES_DIR/modules.builtin"
fi

# Depth-first, dependencies first, siblings in sorted order: one order, whichever depmod
# wrote modules.dep.
order=()
declare -A placed
place() {
  local m=$1 d
  [ -n "${placed[$m]:-}" ] && return 0
  placed[$m]=1
  if [ -z "${path_of[$m]:-}" ]; then
    [ -n "${builtin[$m]:-}" ] && return 0
    lab_die "module $m is neither in modules.dep nor built into $KERNEL_RELEASE"
  fi
  for d in $(printf '%s\n' ${deps_of[$m]} | sort); do place "$d"; done
  order+=("$m")
}
for m in "${WANT_MODULES[@]}"; do place "$m"; done

for m in "${order[@]}"; do
  src=$MODULES_DIR/${path_of[$m]}
  dst=$root/lib/modules/$m.ko
  case "$src" in
    *.ko)     install -m 0644 "$src" "$dst" ;;
    *.ko.xz)  lab_need xz; xz -dc "$src" >"$dst" ;;
    *.ko.zst) lab_need zstd; zstd -qdc "$src" >"$dst" ;;
    *.ko.gz)  gzip -dc "$src" >"$dst" ;;
    *) lab_die "unknown module file type: $src" ;;
  esac
  chmod 0644 "$dst"
done
printf '%s\n' "${order[@]}" >"$root/lib/modules/load-order"
{
  echo "KERNEL_RELEASE=$KERNEL_RELEASE"
  echo "KERNEL_PACKAGE=$KERNEL_PACKAGE $KERNEL_PACKAGE_VERSION"
  echo "BUSYBOX=$(lab_busybox_version)"
  # Only for arm64: the amd64 initramfs keeps the bytes (and digests) it always had.
  [ "$LAB_ARCH" = amd64 ] || echo "ARCH=$LAB_ARCH"
} >"$root/etc/tabula-initramfs"
chmod 0644 "$root/etc/tabula-initramfs" "$root/lib/modules/load-order"

lab_normalise_tree "$root"
mkdir -p "$(dirname "$out")"
(cd "$root" && find . -mindepth 1 -print0 | sort -z |
  cpio --null --create --format=newc --reproducible --owner=0:0 --quiet) |
  gzip -n -9 >"$out.tmp"
mv "$out.tmp" "$out"
lab_log "$out: $(wc -c <"$out") bytes, modules: ${order[*]}"
lab_log "sha256 $(sha256sum "$out" | cut -d' ' -f1)"
