#!/usr/bin/env bash
# images/publish.sh: builds the lab images (images/build.sh) and publishes demo@1 and
# demo@2 with `tabula image add`, so a machine can be upgraded to 2 and rolled back to 1.
#
# tabula is $TABULA, else target/release/tabula (built with cargo if missing). The data
# directory and config are tabula's own: TABULA_DATA_DIR / TABULA_CONFIG, or the
# defaults. Publishing the same bytes again is a no-op; if the images changed (another
# kernel from Debian, edited recipes), tabula refuses to replace a published version:
# pin the kernel with TABULA_LAB_KERNEL, or publish into a fresh data directory.
# TABULA_LAB_CMDLINE is the kernel command line template (default "panic=5"); tabula
# appends console= from its config and the tabula.* arguments the initramfs reads.
# TABULA_LAB_ARCH=arm64 publishes demo-arm64@1 and @2 instead, built from Debian's arm64
# packages and recorded as arm64 (`--arch arm64`), so only arm64 machines are given them;
# their default command line adds console=ttyAMA0 (the PL011 UART of QEMU's virt machine).
set -euo pipefail
LAB_RECIPE=publish
. "$(dirname "$0")/env.sh"

default_cmdline=panic=5
[ "$LAB_ARCH" = arm64 ] && default_cmdline="panic=5 console=ttyAMA0"
cmdline=${TABULA_LAB_CMDLINE:-$default_cmdline}
arch=x86_64
[ "$LAB_ARCH" = arm64 ] && arch=arm64

if [ -n "${TABULA:-}" ]; then
  tabula=$TABULA
else
  tabula=${CARGO_TARGET_DIR:-$LAB_REPO_DIR/target}/release/tabula
  if [ ! -x "$tabula" ]; then
    lab_need cargo
    lab_log "building tabula (cargo build --release)"
    (cd "$LAB_REPO_DIR" && cargo build --release --locked --bin tabula)
  fi
fi
[ -x "$tabula" ] || lab_die "tabula binary $tabula is not executable (set TABULA)"

"$LAB_IMAGES_DIR/build.sh"
for v in ${TABULA_LAB_DEMO_VERSIONS:-1 2}; do
  lab_log "tabula image add $LAB_DEMO_NAME --version $v --arch $arch"
  "$tabula" image add "$LAB_DEMO_NAME" --version "$v" --arch "$arch" \
    --kernel "$LAB_OUT/vmlinuz" \
    --initrd "$LAB_OUT/initramfs.cpio.gz" \
    --rootfs "$LAB_OUT/$LAB_DEMO_NAME-$v.squashfs" \
    --cmdline "$cmdline"
done
lab_log "published; pin a machine with: tabula pin set MAC $LAB_DEMO_NAME@1 (or @2)"
