#!/usr/bin/env python3
"""Tables for bench/storm.sh: reads <dir>/runs.jsonl and <dir>/<server>-<n>.jsonl (the
storm client's per-machine lines and its summary line) and prints Markdown."""
import json
import sys
from pathlib import Path

out = Path(sys.argv[1])
runs = [json.loads(l) for l in (out / "runs.jsonl").read_text().splitlines() if l.strip()]
NAMES = {"tabula": "tabula", "tabula-fair": "tabula, no admission", "standin": "dnsmasq+nginx",
         "tabula-pg": "tabula, PostgreSQL", "tabula-2": "two tabula, one PostgreSQL"}


def summary(server, n):
    p = out / f"{server}-{n}.jsonl"
    for line in reversed(p.read_text().splitlines() if p.exists() else []):
        v = json.loads(line)
        if "summary" in v:
            return v["summary"]
    return None


def mean_booted(server, n):
    """Mean time-to-booted (power-on to `booted`) of the machines that booted."""
    p = out / f"{server}-{n}.jsonl"
    ts = []
    for line in p.read_text().splitlines() if p.exists() else []:
        v = json.loads(line)
        if v.get("ok") and v.get("booted_s") is not None:
            ts.append(v["booted_s"])
    return sum(ts) / len(ts) if ts else 0.0


print("| N | server | booted | mean | p50 | p95 | p99 | max | makespan | link limit | ×limit "
      "| DHCP rtx | TFTP rtx | HTTP retries | server CPU |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in runs:
    s = summary(r["server"], r["n"])
    if s is None:
        print(f"| {r['n']} | {NAMES.get(r['server'], r['server'])} | client failed | | | | | | | | | | | | |")
        continue
    t = s["time_to_booted"]
    print(f"| {r['n']} | {NAMES.get(r['server'], r['server'])} | {s['booted']}/{s['machines']} "
          f"| {mean_booted(r['server'], r['n']):.2f} s | {t['p50']:.2f} s | {t['p95']:.2f} s | {t['p99']:.2f} s | {t['max']:.2f} s "
          f"| {s['makespan_s']:.2f} s | {s.get('link_limit_s', 0):.2f} s "
          f"| {s.get('makespan_over_limit', 0):.2f} | {s['dhcp_retransmits']} "
          f"| {s['tftp_retransmits']} | {s['http_retries']} | {r['server_cpu_s']:.1f} s |")

print()
print("Per phase, p50 / p99 seconds:")
print()
phases = ["dhcp_pxe", "tftp", "dhcp_ipxe", "script", "kernel", "initrd", "dhcp_initramfs",
          "rootfs", "booted"]
print("| N | server | " + " | ".join(phases) + " |")
print("|---|---|" + "---|" * len(phases))
for r in runs:
    s = summary(r["server"], r["n"])
    if s is None:
        continue
    cells = []
    for p in phases:
        v = s["phases"].get(p)
        cells.append(f"{v['p50']:.2f} / {v['p99']:.2f}" if v else "-")
    print(f"| {r['n']} | {NAMES.get(r['server'], r['server'])} | " + " | ".join(cells) + " |")

fails = [(r, summary(r["server"], r["n"])) for r in runs]
fails = [(r, s) for r, s in fails if s and s["failed"]]
if fails:
    print()
    for r, s in fails:
        print(f"- {NAMES.get(r['server'], r['server'])} N={r['n']}: failed by phase {s['failed']}")
