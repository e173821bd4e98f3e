#!/usr/bin/env python3
"""Merges `netchan bench` tables and zmq_bench lines (several runs) into one
markdown report with medians, spread, and ratios to ZeroMQ and the raw floor."""
import os
import platform
import statistics
import subprocess
import sys
from datetime import datetime, timezone


def parse_netchan(path):
    tp, lat = {}, {}
    for line in open(path):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 8 and cells[0] in ("Tcp", "Unix"):
            t, size = cells[0].lower(), cells[1]
            tp[(t, size)] = (rate(cells[2]), rate(cells[4]))
        if len(cells) == 10 and cells[0] in ("Tcp", "Unix"):
            t, size = cells[0].lower(), cells[1]
            us = [float(c.split()[0]) for c in cells[2:8]]
            lat[(t, size)] = us
    return tp, lat


def rate(s):
    v, _, unit = s.partition(" ")
    return float(v) * {"M": 1e6, "k": 1e3, "": 1}[unit.strip()]


def size_name(n):
    n = int(n)
    if n >= 1 << 20:
        return f"{n >> 20} MiB"
    if n >= 1 << 10:
        return f"{n >> 10} KiB"
    return f"{n} B"


def parse_peer(path, name):
    tp, lat = {}, {}
    if not os.path.exists(path):
        return tp, lat
    for line in open(path):
        f = line.split()
        if f[:2] == [name, "tp"]:
            tp[(f[2], size_name(f[3]))] = float(f[4])
        if f[:2] == [name, "lat"]:
            lat[(f[2], size_name(f[3]))] = [float(x) for x in f[4:7]]
    return tp, lat


def parse_zmq(path):
    return parse_peer(path, "zmq")


def fmt(r):
    return f"{r / 1e6:.2f} M" if r >= 1e6 else f"{r / 1e3:.1f} k"


def main():
    d, runs, quick = sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else ""
    nc = [parse_netchan(os.path.join(d, f"netchan-{i}.md")) for i in range(1, runs + 1)]
    zq = [parse_zmq(os.path.join(d, f"zmq-{i}.txt")) for i in range(1, runs + 1)]
    ze = [parse_peer(os.path.join(d, f"zenoh-{i}.txt"), "zenoh") for i in range(1, runs + 1)]
    ze = [z for z in ze if z[0]]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    zmqv = subprocess.run(["sh", "-c", "dpkg-query -W -f='${Version}' libzmq3-dev 2>/dev/null"], capture_output=True, text=True).stdout.strip()
    print(f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores ({cpu}), "
          f"{platform.system()} {platform.release()}, {rustc}, libzmq {zmqv or '?'}; "
          f"{runs} run(s){' (--quick: 1/20 of the message counts)' if quick else ''}, medians with min-max spread.\n")
    print("Command: `bash benches/peers/run.sh" + (f" {quick}" if quick else "") + f" --runs {runs}" + (" --zenoh" if ze else "") + "`\n")
    print("### Pub/sub throughput (messages/s; publisher and subscriber in separate processes)\n")
    zcol = " Zenoh | netchan/Zenoh |" if ze else ""
    print("| transport | payload | netchan | spread | ZeroMQ PUSH/PULL | raw socket | netchan/ZeroMQ | netchan/raw | netchan MB/s |" + zcol)
    print("|---|---|---|---|---|---|---|---|---|" + ("---|---|" if ze else ""))
    for key in nc[0][0]:
        n = [r[0][key][0] for r in nc]
        raw = [r[0][key][1] for r in nc]
        z = [r[0].get(key) for r in zq if key in r[0]]
        mn, mr = statistics.median(n), statistics.median(raw)
        mz = statistics.median(z) if z else float("nan")
        size = key[1].split()[0]
        unit = {"B": 1, "KiB": 1024, "MiB": 1 << 20}[key[1].split()[1]]
        extra = ""
        if ze:
            zz = [r[0][key] for r in ze if key in r[0]]
            mzz = statistics.median(zz) if zz else float("nan")
            extra = f" {fmt(mzz)} | {mn / mzz:.2f} |"
        print(f"| {key[0]} | {key[1]} | {fmt(mn)} | {fmt(min(n))}-{fmt(max(n))} | {fmt(mz)} | {fmt(mr)} | "
              f"{mn / mz:.2f} | {mn / mr:.2f} | {mn * int(size) * unit / 1e6:.0f} |" + extra)
    print("\n### Request/reply round trip (one at a time; microseconds; netchan's client and service in runtime tasks)\n")
    zl = " Zenoh ping/pong p50 | p99 |" if ze else ""
    print("| transport | payload | netchan p50 | p99 | p99.9 | ZeroMQ REQ/REP p50 | p99 | raw p50 | p99 | p50 vs raw | p99 vs raw |" + zl)
    print("|---|---|---|---|---|---|---|---|---|---|---|" + ("---|---|" if ze else ""))
    for key in nc[0][1]:
        n = [statistics.median(r[1][key][i] for r in nc) for i in range(6)]
        z = [statistics.median(r[1][key][i] for r in zq if key in r[1]) for i in range(3)] if all(key in r[1] for r in zq) else [float("nan")] * 3
        extra = ""
        if ze:
            zl = [statistics.median(r[1][key][i] for r in ze if key in r[1]) for i in range(2)]
            extra = f" {zl[0]:.1f} | {zl[1]:.1f} |"
        print(f"| {key[0]} | {key[1]} | {n[0]:.1f} | {n[1]:.1f} | {n[2]:.1f} | {z[0]:.1f} | {z[1]:.1f} | "
              f"{n[3]:.1f} | {n[4]:.1f} | {n[0] / n[3]:.2f} | {n[1] / n[4]:.2f} |" + extra)
    for tag, title, note in [
        ("thread", "on the threads that called `block_on`",
         "Each reply also wakes that thread, which sleeps outside the runtime's workers."),
        ("busy", "on the threads that called `block_on`, with `Config::busy_poll` = 100 us",
         "The waiting thread keeps polling (yielding its core to runnable threads) for up to 100 us before it sleeps."),
    ]:
        th = [parse_netchan(p)[1] for p in (os.path.join(d, f"netchan-{tag}-{i}.md") for i in range(1, runs + 1)) if os.path.exists(p)]
        if not th:
            continue
        print(f"\n### Request/reply with netchan's client and service {title} (microseconds)\n")
        print(f"{note} The raw socket is measured again beside it.\n")
        print("| transport | payload | netchan p50 | p99 | p99.9 | raw p50 | p99 | p50 vs raw | p99 vs raw |")
        print("|---|---|---|---|---|---|---|---|---|")
        for key in th[0]:
            n = [statistics.median(r[key][i] for r in th) for i in range(6)]
            print(f"| {key[0]} | {key[1]} | {n[0]:.1f} | {n[1]:.1f} | {n[2]:.1f} | {n[3]:.1f} | {n[4]:.1f} | "
                  f"{n[0] / n[3]:.2f} | {n[1] / n[4]:.2f} |")


if __name__ == "__main__":
    main()
