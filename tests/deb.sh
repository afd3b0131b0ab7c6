#!/usr/bin/env bash
# tests/deb.sh: the operator path, end to end (tests/run.sh runs it after `cargo test`).
#
#  1. builds the .deb (`cargo deb`, after the man pages and completions are generated
#     from the clap definition) and checks it with lintian: no errors;
#  2. installs it with `dpkg -i`: the tabula user, /var/lib/tabula 0700 owned by it, the
#     conffile with DHCP off, the unit not enabled; `systemd-analyze verify` on the unit;
#     `man tabula` and `man tabula-pin` render; the bash completion loads;
#  3. runs the unit's ExecStart as the unit's User= with the unit's capabilities and
#     LimitNOFILE= (setpriv, prlimit) in a private network namespace, checks the process's
#     uid and CapEff, fetches a loader over TFTP port 69, runs `tabula doctor` beside it,
#     and boots the direct-kernel lab VM (QEMU, user networking inside the namespace)
#     against it: the demo@1 console marker and a `booted` event;
#  4. upgrades the package over itself (state and conffile kept), `apt-get remove`
#     (/var/lib/tabula kept), `apt-get purge` (nothing left).
#
# Root only, and it FAILS (never skips) when a tool is missing. It replaces an installed
# tabula package: do not run it on a machine whose /var/lib/tabula matters.
# Every stage prints its elapsed seconds; the whole stage is a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
target=${CARGO_TARGET_DIR:-$repo/target}
CARGO_DEB_VERSION=3.8.0
MAC=52:54:00:7a:b1:19
t0=$(date +%s)
stage() { echo "==> deb: $* (+$(($(date +%s) - t0)) s)"; }
die() { echo "tests/deb.sh: FAILED: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (dpkg -i, a system user, network namespaces)"
if ! command -v cargo-deb >/dev/null; then
  stage "installing cargo-deb $CARGO_DEB_VERSION"
  env -u CARGO_TARGET_DIR cargo install --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi
for tool in cargo-deb lintian systemd-analyze setpriv prlimit dpkg-deb man jq curl ip \
  qemu-system-x86_64; do
  command -v "$tool" >/dev/null || die "$tool is missing (tests/run.sh installs it)"
done

work=$(mktemp -d /tmp/tabula-deb.XXXXXX)
chmod 0755 "$work"
ns=tabula-deb-$$
serve_pid=
vm_pid=
# The package creates the system user `tabula` and, as Debian packages do, leaves it after
# a purge. Made here, it goes again at the end: a later `cargo test` run as root would
# otherwise find it and every test server would drop to it (see src/privilege/).
user_was_there=0
getent passwd tabula >/dev/null && user_was_there=1
cleanup() {
  [ -n "$vm_pid" ] && kill "$vm_pid" 2>/dev/null || true
  if [ -n "$serve_pid" ]; then kill "$serve_pid" 2>/dev/null || true; wait "$serve_pid" 2>/dev/null || true; fi
  ip netns del "$ns" 2>/dev/null || true
  rm -rf "$work"
  if [ "$user_was_there" = 0 ] && getent passwd tabula >/dev/null; then
    dpkg -s tabula >/dev/null 2>&1 || userdel tabula 2>/dev/null || true
  fi
}
trap cleanup EXIT

# --- 1. build and lint --------------------------------------------------------------
stage "man pages and completions from the clap definition"
cargo run --locked --quiet --example dist -- target/dist
stage "cargo deb"
deb=$(cargo deb --locked --strip | tail -n 1)
[ -f "$deb" ] || die "cargo deb printed no package path ($deb)"
dpkg-deb --info "$deb" | sed -n '/Package:/,$p'
stage "lintian $(basename "$deb")"
lintian --fail-on error --info "$deb" || die "lintian reports errors"

# --- 2. install ---------------------------------------------------------------------
stage "dpkg -i (from a clean slate)"
dpkg -s tabula >/dev/null 2>&1 && apt-get purge -y -qq tabula >/dev/null
dpkg -i "$deb"
id tabula
[ "$(stat -c '%a %U %G' /var/lib/tabula)" = "700 tabula tabula" ] ||
  die "/var/lib/tabula is $(stat -c '%a %U %G' /var/lib/tabula), want 700 tabula tabula"
dpkg-query -W -f='${Conffiles}\n' tabula | grep -q '/etc/tabula/tabula.toml' ||
  die "/etc/tabula/tabula.toml is not a conffile"
grep -qx 'mode = "off"' /etc/tabula/tabula.toml || die "the shipped config does not turn DHCP off"
[ ! -e /etc/systemd/system/multi-user.target.wants/tabula.service ] ||
  die "the package enabled tabula.service"
tabula --version | grep -q "(commit [0-9a-f]\{7,\})" || die "tabula --version has no commit: $(tabula --version)"
unit=/lib/systemd/system/tabula.service
stage "systemd-analyze verify $unit"
systemd-analyze verify "$unit"
stage "man pages and completions"
for page in tabula tabula-pin tabula-doctor; do
  MANWIDTH=80 man -P cat "$page" 2>"$work/man.err" | grep -q "^NAME" || die "man $page does not render: $(cat "$work/man.err")"
  [ ! -s "$work/man.err" ] || die "man $page: $(cat "$work/man.err")"
done
bash -c 'set -e; source /usr/share/bash-completion/completions/tabula; complete -p tabula' ||
  die "the bash completion does not load"
[ -s /usr/share/zsh/vendor-completions/_tabula ] || die "no zsh completion"

# --- 3. the unit's ExecStart, as the unit runs it ------------------------------------
unit_key() { sed -n "s/^$1=//p" "$unit" | tail -n 1; }
exec_start=$(unit_key ExecStart)
user=$(unit_key User)
group=$(unit_key Group)
nofile=$(unit_key LimitNOFILE)
ambient=$(unit_key AmbientCapabilities)
bounding=$(unit_key CapabilityBoundingSet)
[ "$ambient" = "$bounding" ] || die "AmbientCapabilities= ($ambient) and CapabilityBoundingSet= ($bounding) differ"
[ "$(unit_key NoNewPrivileges)" = yes ] || die "NoNewPrivileges= is not yes"
caps=$(echo "$ambient" | tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ \+/,/g')
env_line=$(unit_key Environment)
echo "ExecStart=$exec_start User=$user caps=$caps LimitNOFILE=$nofile $env_line"
# systemd (PID 1) may raise the limit past any hard limit; root here may not without
# CAP_SYS_RESOURCE (containers): then the run gets this machine's hard limit, said so.
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$nofile" ] && ! prlimit --nofile="$nofile:$nofile" true 2>/dev/null; then
  echo "note: LimitNOFILE=$nofile is above this machine's hard limit $hard (no CAP_SYS_RESOURCE): running with $hard"
  nofile=$hard
fi

stage "lab images (images/build.sh)"
TABULA_LAB_OUT="$work/lab" TABULA_LOG=warn bash images/build.sh 2>"$work/build.log" ||
  { cat "$work/build.log" >&2; die "images/build.sh failed"; }
chmod -R a+rX "$work/lab"
as_tabula() { setpriv --reuid "$user" --regid "$group" --init-groups --inh-caps=-all -- "$@"; }
as_tabula tabula image add demo --version 1 --kernel "$work/lab/vmlinuz" \
  --initrd "$work/lab/initramfs.cpio.gz" --rootfs "$work/lab/demo-1.squashfs" --cmdline "panic=5"
as_tabula tabula pin set "$MAC" demo@1

# A private namespace with only loopback: QEMU's user network shows its 127.0.0.1 to
# the guest as 10.0.2.2. TFTP on port 69 needs CAP_NET_BIND_SERVICE as the tabula user.
ip netns add "$ns"
ip -n "$ns" link set lo up
cat >"$work/tabula.toml" <<EOF
[boot]
console = "ttyS0,115200"
[dhcp]
mode = "off"
[tftp]
listen = "127.0.0.1:69"
[http]
listen = "127.0.0.1:8080"
public_url = "http://10.0.2.2:8080"
[api]
listen = "127.0.0.1:9090"
EOF
chmod 0644 "$work/tabula.toml"
stage "ExecStart as $user with $caps, in netns $ns"
# shellcheck disable=SC2086 # ExecStart and Environment= are word lists, as systemd splits them
ip netns exec "$ns" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin $env_line TABULA_CONFIG="$work/tabula.toml" \
  prlimit --nofile="$nofile:$nofile" -- \
  setpriv --reuid "$user" --regid "$group" --init-groups --no-new-privs \
  --inh-caps="-all,$caps" --ambient-caps="-all,$caps" --bounding-set="-all,$caps" -- \
  $exec_start >"$work/serve.log" 2>&1 &
serve_pid=$!
for _ in $(seq 100); do grep -q "^listening: http" "$work/serve.log" && break; sleep 0.1; done
grep -q "^listening: http" "$work/serve.log" || { cat "$work/serve.log" >&2; die "tabula serve did not start"; }
cat "$work/serve.log"
status=/proc/$serve_pid/status
[ "$(awk '/^Uid:/ {print $3}' "$status")" = "$(id -u "$user")" ] || die "serve does not run as $user"
cap_eff=$(awk '/^CapEff:/ {print $2}' "$status")
[ "$cap_eff" = 0000000000003400 ] || die "serve has CapEff $cap_eff, want 0000000000003400 (bind, admin, raw)"
[ "$(awk '/^NoNewPrivs:/ {print $2}' "$status")" = 1 ] || die "serve runs without no_new_privs"
grep -q "^Max open files *$nofile" "/proc/$serve_pid/limits" || die "serve's open-file limit is not $nofile"
ip netns exec "$ns" curl -fsS -o "$work/undionly.kpxe" tftp://127.0.0.1/undionly.kpxe
cmp -s "$work/undionly.kpxe" /usr/lib/ipxe/undionly.kpxe || die "TFTP port 69 served other bytes"

stage "tabula doctor beside it (as $user)"
ip netns exec "$ns" env TABULA_CONFIG="$work/tabula.toml" \
  setpriv --reuid "$user" --regid "$group" --init-groups \
  --inh-caps="-all,$caps" --ambient-caps="-all,$caps" -- tabula doctor | tee "$work/doctor.txt"
grep -q "^ok    ports: udp 127.0.0.1:69 (tftp.listen) held by tabula" "$work/doctor.txt" ||
  die "doctor does not see tabula holding TFTP"
grep -q "^ok    store: opens, schema" "$work/doctor.txt" || die "doctor: store not current"

stage "direct-kernel lab VM boots demo@1 against it"
plan=$(as_tabula env TABULA_CONFIG="$work/tabula.toml" tabula explain "$MAC" --json)
manifest=$(jq -r .decision.plan.manifest <<<"$plan")
blob() { echo "/var/lib/tabula/blobs/sha256/$(jq -r "$1" <<<"$plan" | sed 's/^sha256://')"; }
kernel=$(blob .decision.plan.kernel.digest)
initrd=$(blob '.decision.plan.initrds[0].digest')
cmdline=$(jq -r .decision.plan.cmdline <<<"$plan")
# The plan explain shows has no report token (it serves nothing); the served script's
# kernel line carries this boot's callback with its token: boot with that one.
script=$(ip netns exec "$ns" curl -fsS "http://127.0.0.1:8080/boot.ipxe?mac=${MAC//:/-}&arch=bios")
callback=$(grep -o 'tabula\.callback=[^ ]*' <<<"$script" | tail -n 1)
[ -n "$callback" ] || die "the served script names no tabula.callback: $script"
cmdline="$(sed 's/tabula\.callback=[^ ]*//g' <<<"$cmdline") $callback"
marker="TABULA-DEMO-BOOTED name=demo version=1 manifest=$manifest"
ip netns exec "$ns" timeout 300 qemu-system-x86_64 -name tabula-deb -nodefaults -no-user-config \
  -display none -monitor none -no-reboot -accel tcg -machine pc -m 512 -smp 1 \
  -chardev "file,id=ser0,path=$work/console.log" -serial chardev:ser0 \
  -netdev user,id=n0 -device "virtio-net-pci,netdev=n0,mac=$MAC,romfile=" \
  -kernel "$kernel" -initrd "$initrd" -append "$cmdline" >"$work/qemu.log" 2>&1 &
vm_pid=$!
booted=
for _ in $(seq 300); do
  if grep -qF "$marker" "$work/console.log" 2>/dev/null; then booted=1; break; fi
  kill -0 "$vm_pid" 2>/dev/null || break
  sleep 1
done
kill "$vm_pid" 2>/dev/null || true
wait "$vm_pid" 2>/dev/null || true
vm_pid=
[ -n "$booted" ] || { tail -n 40 "$work/console.log" "$work/qemu.log" >&2; die "no '$marker' on the console"; }
for _ in $(seq 50); do
  as_tabula tabula events "$MAC" --json --last 100 >"$work/events.json"
  jq -e --arg m "$manifest" 'select(.stage == "booted" and .manifest == $m)' "$work/events.json" >/dev/null && break
  sleep 0.2
done
jq -e --arg m "$manifest" 'select(.stage == "booted" and .manifest == $m)' "$work/events.json" >/dev/null ||
  die "no booted event for $manifest: $(cat "$work/events.json")"
kill -TERM "$serve_pid"
wait "$serve_pid" || die "tabula serve did not stop cleanly on SIGTERM: $(tail -n 5 "$work/serve.log")"
serve_pid=
grep -q "^stopped" "$work/serve.log" || die "tabula serve did not say stopped"

# --- 4. upgrade, remove, purge ------------------------------------------------------
stage "upgrade over itself"
echo "# an operator's edit" >>/etc/tabula/tabula.toml
dpkg -i "$deb"
grep -q "^# an operator's edit" /etc/tabula/tabula.toml || die "the upgrade replaced the edited conffile"
as_tabula tabula image list | grep -q "^demo " || die "the upgrade lost the published image"
[ "$(stat -c '%a %U' /var/lib/tabula)" = "700 tabula" ] || die "the upgrade changed /var/lib/tabula"
stage "apt-get remove"
apt-get remove -y -qq tabula >/dev/null
[ ! -e /usr/bin/tabula ] || die "remove left /usr/bin/tabula"
[ -f /var/lib/tabula/tabula.db ] || die "remove deleted the state in /var/lib/tabula"
stage "apt-get purge"
apt-get purge -y -qq tabula >/dev/null
[ ! -e /var/lib/tabula ] || die "purge left /var/lib/tabula"
[ ! -e /etc/tabula ] || die "purge left /etc/tabula"
dpkg -s tabula >/dev/null 2>&1 && die "tabula is still installed after purge"
stage "done: 0 failed"
