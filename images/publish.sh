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
set -euo pipefail
LAB_RECIPE=publish
. "$(dirname "$0")/env.sh"

cmdline=${TABULA_LAB_CMDLINE:-panic=5}

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
  lab_log "tabula image add demo --version $v"
  "$tabula" image add demo --version "$v" \
    --kernel "$LAB_OUT/vmlinuz" \
    --initrd "$LAB_OUT/initramfs.cpio.gz" \
    --rootfs "$LAB_OUT/demo-$v.squashfs" \
    --cmdline "$cmdline"
done
lab_log "published; pin a machine with: tabula pin set MAC demo@1 (or demo@2)"
