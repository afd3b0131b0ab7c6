#!/usr/bin/env bash
# Provisions the tabula server VM: toolchain, build, demo images, config, service.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends build-essential curl ca-certificates pkg-config ipxe
if ! command -v cargo >/dev/null; then
  curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
fi
. "$HOME/.cargo/env"
cd /opt/tabula-src
cargo build --release --locked
install -m 0755 target/release/tabula /usr/local/bin/tabula
IFACE=$(ip -o -4 addr show | awk -v ip="$SERVER_IP" '$4 ~ "^"ip"/" {print $2}')
mkdir -p /etc/tabula /var/lib/tabula
sed -e "s/10.77.0.1/$SERVER_IP/g" -e "s/10.77.0/10.88.0/g" -e "s/\"tabr0\"/\"$IFACE\"/" \
  config/lab.toml > /etc/tabula/tabula.toml
tabula config check /etc/tabula/tabula.toml
# Demo images (two versions) when the recipes are present.
if [ -x images/publish.sh ]; then TABULA=/usr/local/bin/tabula TABULA_DATA_DIR=/var/lib/tabula bash images/publish.sh; fi
for mac in $CLIENT_MACS; do tabula --data-dir /var/lib/tabula pin set "$mac" demo@1 || true; done
cat > /etc/systemd/system/tabula.service <<UNIT
[Unit]
Description=tabula netboot server
After=network-online.target
[Service]
ExecStart=/usr/local/bin/tabula --config /etc/tabula/tabula.toml --data-dir /var/lib/tabula serve
Restart=on-failure
AmbientCapabilities=CAP_NET_BIND_SERVICE CAP_NET_RAW CAP_NET_ADMIN
[Install]
WantedBy=multi-user.target
UNIT
systemctl daemon-reload
systemctl enable --now tabula
