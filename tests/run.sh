#!/usr/bin/env bash
# The test command (README "Run the tests"; CI runs it through .ci/run).
# Installs what the tests need on a fresh Debian machine, then runs the same gates CI
# does: formatting, clippy with warnings denied, every test, and the Debian package
# stage (tests/deb.sh, which installs cargo-deb from crates.io when it is missing).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests drive as real peers. Kept in one list so CI and a fresh
# developer machine install the same things.
APT_PACKAGES=(
  coreutils   # sha256sum: digests checked independently of tabula
  curl        # HTTP and TFTP client (tests/it/serve.rs, tests/tftp/)
  atftp       # TFTP client with RFC 7440 windowsize (tests/tftp/)
  tftp-hpa    # the classic TFTP client (tests/tftp/)
  vagrant vagrant-libvirt  # `vagrant validate` of vagrant/Vagrantfile
  iproute2    # ip netns / veth for the DHCP namespace tests
  busybox-static  # udhcpc and udhcpd for the DHCP tests and lab_proxy.rs (conflicts with `busybox`; the lab needs the static one)
  isc-dhcp-client  # dhclient
  debootstrap  # a real Debian root for `tabula image build` (images/debian/, tests/it/build_debian.rs)
  squashfs-tools cpio zstd  # unsquashfs, cpio, zstd read back built images (tests/it/build.rs)
  postgresql  # initdb + pg_ctl: the throw-away cluster of the PostgreSQL store tests (src/store/testing.rs)
  kea-admin tcpdump  # perfdhcp as the DHCP clients and the capture of their ACKs in tests/it/ha.rs
  # The operator path (tests/deb.sh): lint, install and run the .deb as its unit would.
  lintian     # checks the .deb (no errors allowed)
  systemd     # systemd-analyze verify of config/tabula.service
  util-linux  # setpriv, prlimit: ExecStart as the unit's user with its capabilities
  man-db      # `man tabula`, `man tabula-pin` must render
  jq          # reads `tabula explain --json` for the VM boot
  tcpdump     # `tabula lab --capture`: the lab bridge on the wire (tests/it/lab_matrix.rs)
  adduser ipxe  # the package's Depends
  dpkg-dev    # dpkg-shlibdeps, for the package's $auto Depends
  chromium chromium-driver  # the dashboard's browser test (tests/it/ui.rs, WebDriver)
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "tests/run.sh: missing Debian packages: ${missing[*]} (run as root or install them)" >&2
    exit 1
  fi
  echo "==> installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# promtool (`promtool check metrics` on /metrics scrapes: src/metrics/tests.rs,
# tests/it/metrics.rs, tests/it/lab_metrics.rs) comes with the Prometheus server package.
# Its maintainer scripts would start a prometheus service: a policy-rc.d that forbids
# every service start keeps it stopped, and is removed again whatever the install did.
if ! command -v promtool >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "tests/run.sh: promtool missing (Debian package prometheus; run as root or install it)" >&2
    exit 1
  fi
  echo "==> installing prometheus (for promtool; its service is not started)"
  had_policy=0
  [ -e /usr/sbin/policy-rc.d ] && had_policy=1
  if [ "$had_policy" -eq 0 ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
  fi
  rc=0
  DEBIAN_FRONTEND=noninteractive apt-get update -qq || rc=$?
  [ "$rc" -eq 0 ] && { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus || rc=$?; }
  [ "$had_policy" -eq 0 ] && rm -f /usr/sbin/policy-rc.d
  [ "$rc" -eq 0 ] || exit "$rc"
fi

# The netboot lab (tests/it/lab_direct.rs boots QEMU): its own script, because qemu and
# seabios must come from bookworm-backports (see images/README.md).
bash images/setup-packages.sh

rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "==> cargo fmt --check"
cargo fmt --all --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets -- -D warnings
echo "==> vagrant validate"
(cd vagrant && vagrant validate)
echo "==> cargo test"
cargo test --locked --all-targets
echo "==> tests/deb.sh (the .deb: build, lintian, install, unit, VM boot, upgrade, remove, purge)"
bash tests/deb.sh
echo "==> cargo fuzz dhcp_decide, http_head, tftp_request (bounded: ${FUZZ_SECONDS:-60} s in all)"
bash fuzz/run.sh "${FUZZ_SECONDS:-60}"
