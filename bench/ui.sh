#!/usr/bin/env bash
# Dashboard benchmark: server time of /ui pages with 5,000 machines in the store (SQLite),
# each with a boot history (~7 events a machine: most booted, some failed, some booting,
# some never seen), and two rollouts made with `tabula rollout create`: `big` over the
# ~4,000 role=web machines, part-way through its third step (members succeeded, failed,
# in flight and waiting, with admission and result times), and `small` (draft, role=db).
# Server time is the `Server-Timing: app;dur=` every /ui answer carries
# (from the request entering the dashboard's router to the response head: the store
# reads, decisions and template rendering). Prints a table (median and max of RUNS
# requests per page, after one warm-up). Loopback only; the server is killed by PID.
#
# Usage: bash bench/ui.sh   (TABULA=path/to/tabula, default target/release/tabula;
#        MACHINES=5000, RUNS=20)
# Needs python3 (its sqlite3 module fills the store in one transaction, as `tabula
# machine add` 5,000 times would, only faster) and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
TABULA=${TABULA:-${CARGO_TARGET_DIR:-$PWD/target}/release/tabula}
MACHINES=${MACHINES:-5000}
RUNS=${RUNS:-20}
[ -x "$TABULA" ] || cargo build --release --locked -q
W=$(mktemp -d /tmp/tabula-bench-ui.XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
export TABULA_DATA_DIR=$W/data TABULA_LOG=warn
head -c 400000 /dev/urandom >"$W/k1"; head -c 400000 /dev/urandom >"$W/k2"; head -c 90000 /dev/urandom >"$W/i"
"$TABULA" image add demo --version 1 --kernel "$W/k1" --initrd "$W/i" >/dev/null
"$TABULA" image add demo --version 2 --kernel "$W/k2" --initrd "$W/i" >/dev/null
"$TABULA" image tag demo@1 stable >/dev/null
"$TABULA" pin set default demo:stable >/dev/null
"$TABULA" pin set label:role=db demo@2 >/dev/null
TOKEN=$("$TABULA" token create bench --scope read)

python3 - "$TABULA_DATA_DIR/tabula.db" "$MACHINES" <<'PY'
import json, random, sqlite3, sys, time
db, n = sys.argv[1], int(sys.argv[2])
c = sqlite3.connect(db)
m1 = c.execute("SELECT manifest FROM image_versions WHERE version='1'").fetchone()[0]
m2 = c.execute("SELECT manifest FROM image_versions WHERE version='2'").fetchone()[0]
now = int(time.time() * 1000)
rnd = random.Random(15)
events = []
for i in range(n):
    name, mac = f"m{i:05d}", "52:54:01:%02x:%02x:%02x" % (i >> 16 & 255, i >> 8 & 255, i & 255)
    c.execute("INSERT INTO machines (name, created_ms) VALUES (?, ?)", (name, now))
    c.execute("INSERT INTO machine_macs (mac, machine) VALUES (?, ?)", (mac, name))
    role = "db" if i % 5 == 0 else "web"
    c.execute("INSERT INTO machine_labels VALUES (?, 'role', ?)", (name, role))
    c.execute("INSERT INTO machine_labels VALUES (?, 'rack', ?)", (name, f"r{i % 40}"))
    fate = rnd.random()
    if fate < 0.10:
        continue  # never seen
    man = m2 if role == "db" else m1
    t = now - rnd.randint(60_000, 3_600_000) if fate >= 0.15 else now - rnd.randint(1_000, 60_000)
    def ev(dt, stage, via, detail, manifest=man):
        events.append((t + dt, mac, stage, manifest, via, "10.0.0.1", json.dumps(detail)))
    ev(0, "dhcp-ack", "dhcp", {"address": "10.0.0.9", "file": "undionly.kpxe", "boot": "tftp-loader", "firmware": "bios", "ipxe": False, "proxy": False, "xid": 1}, None)
    ev(800, "loader-sent", "tftp", {"file": "undionly.kpxe", "bytes": 70000, "seconds": 0.4}, None)
    ev(3000, "script-sent", "http", {"image": "demo", "version": "1", "rule": "default", "firmware": "bios"})
    if fate < 0.15:
        continue  # booting now
    ev(5000, "kernel-sent", "http", {"digest": man, "bytes": 400000, "expected": 400000, "seconds": 0.5, "complete": True})
    ev(5600, "initrd-sent", "http", {"digest": man, "bytes": 90000, "expected": 90000, "seconds": 0.2, "complete": True})
    if fate < 0.18:
        ev(20000, "failed", "http", {"stage": "fetch", "reason": "root image download timed out", "final": True})
        continue
    ev(19000, "rootfs-sent", "http", {"digest": man, "bytes": 200000000, "expected": 200000000, "seconds": 9.0, "complete": True})
    ev(23000, "booted", "http", {"root_sha256": man[7:]})
c.executemany("INSERT INTO boot_events (at_ms, mac, stage, manifest, via, peer, detail) VALUES (?,?,?,?,?,?,?)", events)
c.execute("UPDATE revision SET value = value + 1")
c.commit()
print(f"store: {n} machines, {len(events)} boot events")
PY

"$TABULA" rollout create big --target role=web --to demo@2 --steps 1,10%,50%,100% \
  --failure-budget 5% --max-in-flight 20 >/dev/null
"$TABULA" rollout create small --target role=db --to demo@1 --steps 1,100% >/dev/null
python3 - "$TABULA_DATA_DIR/tabula.db" <<'PY'
import random, sqlite3, sys, time
c = sqlite3.connect(sys.argv[1])
now = int(time.time() * 1000)
rnd = random.Random(16)
t0 = now - 3_000_000
rows = c.execute("SELECT machine, step FROM rollout_members WHERE rollout = 'big' ORDER BY rank").fetchall()
upd, in_flight = [], 0
for i, (machine, step) in enumerate(rows):
    adm = t0 + step * 600_000 + rnd.randint(0, 500_000)
    if step < 2:
        upd.append(("failed" if rnd.random() < 0.01 else "succeeded", adm, adm + rnd.randint(30_000, 90_000), machine))
    elif step == 2:
        f = rnd.random()
        if f < 0.6:
            upd.append(("succeeded", adm, adm + rnd.randint(30_000, 90_000), machine))
        elif f < 0.62:
            upd.append(("failed", adm, adm + 60_000, machine))
        elif in_flight < 20:
            in_flight += 1
            upd.append(("admitted", now - 30_000, None, machine))
c.executemany("UPDATE rollout_members SET state = ?, admitted_ms = ?, done_ms = ? WHERE rollout = 'big' AND machine = ?", upd)
c.execute("UPDATE rollouts SET state = 'running', step = 2, created_ms = ? WHERE name = 'big'", (t0 - 60_000,))
c.execute("UPDATE revision SET value = value + 1")
c.commit()
print(f"rollout big: {len(rows)} members, {len(upd)} admitted so far")
PY

cat >"$W/serve.toml" <<CFG
[dhcp]
mode = "off"
[tftp]
enabled = false
[http]
listen = "127.0.0.1:0"
public_url = "http://127.0.0.1:1"
[api]
listen = "127.0.0.1:0"
CFG
"$TABULA" --config "$W/serve.toml" serve >"$W/out" 2>"$W/err" &
PID=$!
for _ in $(seq 100); do grep -q "listening: api" "$W/out" && break; sleep 0.1; done
API=$(sed -n 's/^listening: api //p' "$W/out")
BASE=http://$API
JAR=$W/jar
CSRF=$(curl -sS -c "$JAR" "$BASE/ui/login" | sed -n 's/.*name="csrf" value="\([0-9a-f]*\)".*/\1/p')
curl -sS -b "$JAR" -c "$JAR" -o /dev/null --data-urlencode "token=$TOKEN" --data "csrf=$CSRF" "$BASE/ui/login"

printf '%-44s %8s %8s %8s %9s\n' page "median" "max" "client" "bytes"
printf '%-44s %8s %8s %8s %9s\n' "" "ms" "ms" "ms" ""
for page in "/ui/" "/ui/?page=50" "/ui/?state=failed" "/ui/?selector=role%3Ddb,rack%3Dr5" "/ui/?q=m0424" "/ui/machines/m04242" "/ui/images" "/ui/live" \
  "/ui/rollouts" "/ui/rollouts/big" "/ui/rollouts/big?state=succeeded&page=20"; do
  curl -sS -b "$JAR" -o /dev/null "$BASE$page"
  for _ in $(seq "$RUNS"); do
    curl -sS -b "$JAR" -o /dev/null -D - -w 'client %{time_total} %{size_download}\n' "$BASE$page"
  done | awk -v page="$page" '
    tolower($1) == "server-timing:" { sub(/.*dur=/, "", $2); s[n++] = $2 + 0 }
    $1 == "client" { c += $2 * 1000; b = $3; k++ }
    END {
      for (i = 0; i < n; i++) for (j = i + 1; j < n; j++) if (s[j] < s[i]) { t = s[i]; s[i] = s[j]; s[j] = t }
      printf "%-44s %8.1f %8.1f %8.1f %9d\n", page, s[int(n / 2)], s[n - 1], c / k, b
    }'
done
