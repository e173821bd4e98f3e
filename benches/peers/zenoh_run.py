#!/usr/bin/env python3
"""Runs benches/peers/zenoh (release build) the way zmq_bench runs, printing
"zenoh tp <transport> <size> <msgs/s>" and "zenoh lat <transport> <size> <p50> <p99> <p999>"."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXE = os.path.join(ROOT, "benches", "peers", "zenoh", "target", "release", "zenoh-bench")
QUICK = "--quick" in sys.argv
SIZES = [8, 1024, 65536, 1048576]


def count_for(size):
    n = 2_000_000 if size <= 64 else 1_000_000 if size <= 4096 else max(2_500_000_000 // size, 200)
    return max(n // 20, 50) if QUICK else n


def endpoint(t, tag):
    if t == "tcp":
        return f"tcp/127.0.0.1:{47000 + (os.getpid() + tag) % 2000}"
    return f"unixsock-stream//tmp/zenoh-bench-{os.getpid()}-{tag}.sock"


def start(args):
    p = subprocess.Popen([EXE] + args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert p.stdout.readline().strip() == "READY", "zenoh-bench did not start"
    return p


tag = 0
for t in ("tcp", "unix"):
    for size in SIZES:
        tag += 1
        ep = endpoint(t, tag)
        sub = start(["sub", ep])
        subprocess.run([EXE, "pub", ep, str(size), str(count_for(size))], check=True, stderr=subprocess.DEVNULL)
        done = sub.stdout.readline().split()
        sub.wait()
        n, nanos = int(done[1]), int(done[2])
        print(f"zenoh tp {t} {size} {(n - 1) / (nanos / 1e9):.0f}", flush=True)
    for size in (8, 1024):
        tag += 1
        ep = endpoint(t, tag)
        pong = start(["pong", ep])
        out = subprocess.run([EXE, "ping", ep, str(size), "20000"], check=True, capture_output=True, text=True).stdout
        pong.kill()
        pong.wait()
        f = out.split()
        print(f"zenoh lat {t} {size} {f[1]} {f[2]} {f[3]}", flush=True)
