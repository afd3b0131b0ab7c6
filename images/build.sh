#!/usr/bin/env bash
# images/build.sh: builds every lab artifact into $TABULA_LAB_OUT (default lab-out/):
#   vmlinuz               the Debian kernel, byte-for-byte from its package
#   initramfs.cpio.gz     the tabula netboot initramfs
#   demo-1.squashfs, demo-2.squashfs   the demo root image, two versions
#   SHA256SUMS            their digests
# With TABULA_LAB_ARCH=arm64: the same from Debian's arm64 packages, into
# $TABULA_LAB_OUT/arm64, the root images named demo-arm64-1.squashfs, ….
# Always rebuilds the small artifacts (seconds); the kernel comes from the cache.
set -euo pipefail
LAB_RECIPE=build
. "$(dirname "$0")/env.sh"

DEMO_VERSIONS=(${TABULA_LAB_DEMO_VERSIONS:-1 2})

mkdir -p "$LAB_OUT"
eval "$("$LAB_IMAGES_DIR/kernel.sh")"
install -m 0644 "$VMLINUZ" "$LAB_OUT/vmlinuz.tmp"
touch -d "@$LAB_EPOCH" "$LAB_OUT/vmlinuz.tmp"
mv "$LAB_OUT/vmlinuz.tmp" "$LAB_OUT/vmlinuz"
"$LAB_IMAGES_DIR/initramfs/build.sh" "$LAB_OUT/initramfs.cpio.gz"
for v in "${DEMO_VERSIONS[@]}"; do
  "$LAB_IMAGES_DIR/demo/build.sh" "$v" "$LAB_OUT/$LAB_DEMO_NAME-$v.squashfs"
done
files=(vmlinuz initramfs.cpio.gz)
for v in "${DEMO_VERSIONS[@]}"; do files+=("$LAB_DEMO_NAME-$v.squashfs"); done
(cd "$LAB_OUT" && sha256sum "${files[@]}" >SHA256SUMS)
lab_log "$LAB_ARCH kernel $KERNEL_PACKAGE $KERNEL_PACKAGE_VERSION; digests in $LAB_OUT/SHA256SUMS:"
sed 's/^/  /' "$LAB_OUT/SHA256SUMS" >&2
