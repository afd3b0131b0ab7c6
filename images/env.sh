# images/env.sh: the lab build environment, sourced by every recipe (not run on its own).
#
# Sets the cache directory (downloads and the unpacked kernel, kept between builds), the
# output directory (what the recipes make), the fixed timestamp every built file gets,
# and small shared shell functions. Defines nothing that depends on the recipe using it.

LAB_IMAGES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_REPO_DIR=$(cd "$LAB_IMAGES_DIR/.." && pwd)
LAB_CACHE=${TABULA_LAB_CACHE:-/var/cache/tabula-lab}
LAB_OUT=${TABULA_LAB_OUT:-$LAB_REPO_DIR/lab-out}
# Every file in every image gets this mtime, so the same inputs give the same bytes.
# 0 unless the caller sets SOURCE_DATE_EPOCH (the reproducible-builds convention).
LAB_EPOCH=${SOURCE_DATE_EPOCH:-0}
export LC_ALL=C TZ=UTC

lab_log() { echo "${LAB_RECIPE:-images}: $*" >&2; }
lab_die() { lab_log "error: $*"; exit 1; }

# Refuses to go on without a tool, naming the script that installs it.
lab_need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 ||
      lab_die "$tool is missing: run images/setup-packages.sh (as root) first"
  done
}

# The busybox-static binary (the busybox package's dynamic one would need a libc).
lab_busybox() {
  dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed" ||
    lab_die "busybox-static is not installed: run images/setup-packages.sh (as root) first"
  echo /bin/busybox
}

# Fixes modes, owners and times of a staged tree so its archive is byte-for-byte stable.
lab_normalise_tree() {
  local root=$1
  find "$root" -type d -exec chmod 0755 {} +
  find "$root" -exec touch -h -d "@$LAB_EPOCH" {} +
}

# Links every applet of busybox in a staged tree at the path busybox itself lists.
lab_install_busybox() {
  local root=$1 bb=$2 applet
  install -D -m 0755 "$bb" "$root/bin/busybox"
  for applet in $("$bb" --list-full | sort); do
    [ "$applet" = bin/busybox ] && continue
    mkdir -p "$root/$(dirname "$applet")"
    [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
  done
}
