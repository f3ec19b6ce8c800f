#!/usr/bin/env python3
"""Medians over runs of bench/results/*.json and ratios to Janus and to the floor.

Usage: bench/summarize.py RESULTS_DIR  (prints Markdown)"""
import glob
import json
import os
import re
import statistics
import sys
from collections import defaultdict

d = sys.argv[1] if len(sys.argv) > 1 else "bench/results"
groups = defaultdict(list)
for path in sorted(glob.glob(os.path.join(d, "*-run*.json"))):
    # <scenario>-<target>-<N>-run<k>.json; a target may hold a hyphen (floor-batch).
    m = re.match(r"(\w+)-([\w-]+?)-(\d+)-run\d+\.json", os.path.basename(path))
    if not m:
        continue
    with open(path) as f:
        for r in json.load(f)["runs"]:
            groups[(m.group(1), m.group(2), int(m.group(3)))].append(r)


def med(rs, key):
    v = [r[key] for r in rs if r.get(key) is not None]
    return statistics.median(v) if v else None


def fmt(v, p=2):
    return "-" if v is None else f"{v:.{p}f}"


cols = [
    ("server CPU %", "server_cpu_pct", 1),
    ("fwd pkt/s", "forwarded_pps", 0),
    ("fwd Mbit/s", "forwarded_mbps", 1),
    ("µs CPU/pkt", "cpu_us_per_packet", 2),
    ("loss %", "loss_pct", 3),
    ("lat p50 ms", "latency_p50_ms", 2),
    ("lat p99 ms", "latency_p99_ms", 2),
    ("join p50 ms", "join_p50_ms", 0),
    ("join p99 ms", "join_p99_ms", 0),
    ("loss % while joining", "ramp_loss_pct", 3),
    ("RSS KB/participant", "rss_per_participant_kb", 0),
    ("loadgen CPU %", "loadgen_cpu_pct", 0),
]
print("| scenario | target | N | runs | " + " | ".join(c[0] for c in cols) + " | failures |")
print("|" + "---|" * (len(cols) + 5))
for key in sorted(groups, key=lambda k: (k[0], k[2], k[1])):
    rs = groups[key]
    fails = sum(len(r["failures"]) for r in rs)
    row = [key[0], key[1], str(key[2]), str(len(rs))]
    row += [fmt(med(rs, c[1]), c[2]) for c in cols]
    row.append(str(fails))
    print("| " + " | ".join(row) + " |")

print()
print("Ratios of median CPU per forwarded packet (broadcast, same host, interleaved runs):")
print()
print("| N | OpenHearing µs | Janus µs | floor µs | batched floor µs | OpenHearing / Janus | OpenHearing / floor | OpenHearing / batched floor |")
print("|---|---|---|---|---|---|---|---|")
ns = sorted({k[2] for k in groups if k[0] == "broadcast"})
for n in ns:
    o = med(groups.get(("broadcast", "openhearing", n), []), "cpu_us_per_packet")
    j = med(groups.get(("broadcast", "janus", n), []), "cpu_us_per_packet")
    fl = med(groups.get(("broadcast", "floor", n), []), "cpu_us_per_packet")
    fb = med(groups.get(("broadcast", "floor-batch", n), []), "cpu_us_per_packet")
    r1 = o / j if o and j else None
    r2 = o / fl if o and fl else None
    r3 = o / fb if o and fb else None
    print(f"| {n} | {fmt(o)} | {fmt(j)} | {fmt(fl)} | {fmt(fb)} | {fmt(r1)} | {fmt(r2)} | {fmt(r3)} |")
