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
# The Debian architecture the images are built for: amd64 (this machine's), or arm64,
# whose packages (kernel, busybox-static) are fetched with apt-get download and never
# installed (images/setup-packages.sh enables the arm64 architecture in dpkg).
LAB_ARCH=${TABULA_LAB_ARCH:-amd64}
# arm64 artifacts go into their own folder, so both architectures' builds can coexist.
[ "$LAB_ARCH" = arm64 ] && LAB_OUT=$LAB_OUT/arm64
# The demo image's name: demo on amd64, demo-arm64 on arm64 (the manifest records the
# architecture, so tabula gives each machine only an image built for it).
LAB_DEMO_NAME=demo
[ "$LAB_ARCH" = arm64 ] && LAB_DEMO_NAME=demo-arm64
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

case "$LAB_ARCH" in
  amd64 | arm64) ;;
  *) lab_die "TABULA_LAB_ARCH=$LAB_ARCH: expected amd64 or arm64" ;;
esac

# The installed busybox-static (amd64): the builds use it to list the applets, since an
# arm64 binary cannot run here.
lab_host_busybox() {
  dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed" ||
    lab_die "busybox-static is not installed: run images/setup-packages.sh (as root) first"
  echo /bin/busybox
}

# Fetches PKG:$LAB_ARCH with `apt-get download` into the cache (once), unpacks it with
# `dpkg-deb -x` into $LAB_CACHE/$LAB_ARCH/PKG_VERSION and prints that directory.
lab_foreign_unpack() {
  local pkg=$1 dir=$LAB_CACHE/$LAB_ARCH deb tmp tree
  mkdir -p "$dir"
  (
    flock 8
    deb=$(ls "$dir/${pkg}"_*_"$LAB_ARCH".deb 2>/dev/null | head -n1 || true)
    if [ -z "$deb" ]; then
      lab_need apt-get dpkg-deb
      lab_log "downloading $pkg:$LAB_ARCH with apt-get download"
      tmp=$(mktemp -d "$dir/.download.XXXXXX")
      chmod 0755 "$tmp"
      (cd "$tmp" && apt-get download -q "$pkg:$LAB_ARCH" 2>&1 | grep -v 'unsandboxed as root' >&2) ||
        { rm -rf "$tmp"; lab_die "apt-get download $pkg:$LAB_ARCH failed (run images/setup-packages.sh, which enables $LAB_ARCH)"; }
      mv "$tmp"/*.deb "$dir/"
      rmdir "$tmp"
    fi
  ) 8>"$dir/.lock" || exit 1
  deb=$(ls "$dir/${pkg}"_*_"$LAB_ARCH".deb | head -n1)
  tree=${deb%.deb}
  if [ ! -d "$tree" ]; then
    tmp=$(mktemp -d "$dir/.unpack.XXXXXX")
    dpkg-deb -x "$deb" "$tmp" || { rm -rf "$tmp"; lab_die "dpkg-deb -x $deb failed"; }
    mv "$tmp" "$tree"
  fi
  echo "$tree"
}

# The busybox-static binary for $LAB_ARCH (the busybox package's dynamic one would need
# a libc): the installed one on amd64, the arm64 package's, unpacked, on arm64.
lab_busybox() {
  local tree
  if [ "$LAB_ARCH" = amd64 ]; then
    lab_host_busybox
    return
  fi
  tree=$(lab_foreign_unpack busybox-static) || exit 1
  [ -x "$tree/bin/busybox" ] || lab_die "$tree/bin/busybox is missing"
  echo "$tree/bin/busybox"
}

# "busybox-static VERSION" of the busybox lab_busybox gives.
lab_busybox_version() {
  if [ "$LAB_ARCH" = amd64 ]; then
    dpkg-query -W -f='${Package} ${Version}' busybox-static
  else
    local deb
    deb=$(ls "$LAB_CACHE/$LAB_ARCH"/busybox-static_*_"$LAB_ARCH".deb | head -n1)
    echo "busybox-static $(dpkg-deb -f "$deb" Version) $LAB_ARCH"
  fi
}

# Fixes modes, owners and times of a staged tree so its archive is byte-for-byte stable.
lab_normalise_tree() {
  local root=$1
  find "$root" -type d -exec chmod 0755 {} +
  find "$root" -exec touch -h -d "@$LAB_EPOCH" {} +
}

# Links every applet of busybox in a staged tree at the path busybox lists. The list
# comes from the installed busybox-static (same Debian source and configuration for
# every architecture), since a foreign one cannot run here.
lab_install_busybox() {
  local root=$1 bb=$2 applet
  install -D -m 0755 "$bb" "$root/bin/busybox"
  for applet in $("$(lab_host_busybox)" --list-full | sort); do
    [ "$applet" = bin/busybox ] && continue
    mkdir -p "$root/$(dirname "$applet")"
    [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
  done
}
