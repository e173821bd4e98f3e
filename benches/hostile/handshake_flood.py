#!/usr/bin/env python3
"""Handshake flood against the release CLI, as docs/RELIABILITY.md's "One
hostile peer" describes: `netchan serve 'svc/**' --echo` is attacked by N
threads that each open a TCP connection, send one byte and reconnect as soon
as the server cuts them, while a legitimate `netchan req` runs R times. It
prints how many legitimate requests succeeded and their wall times (a
process start included), with and without the flood, in one run.

Usage: python3 benches/hostile/handshake_flood.py [--attackers 100]
       [--rounds 20] [--sources 1] [--bin target/release/netchan]
(--sources K spreads the attackers over 127.0.0.2..127.0.0.K+1; 1 puts them
on 127.0.0.1, the legitimate client's own address.)
"""
import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time


def attacker(host, port, src, stop, counts, i):
    while not stop.is_set():
        s = socket.socket()
        try:
            s.bind((src, 0))
            s.settimeout(1.0)
            s.connect((host, port))
            counts[i] += 1
            s.sendall(b"\x00")
            while not stop.is_set():
                try:
                    if not s.recv(4096):
                        break
                except socket.timeout:
                    continue
        except OSError:
            time.sleep(0.001)
        finally:
            s.close()


def rounds(binary, addr, n):
    ok, times, errors = 0, [], []
    global retries
    retries = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = subprocess.run([binary, "--log", "debug", "req", "svc/x", "hello", "--connect", addr],
                           capture_output=True, text=True, timeout=60)
        dt = time.perf_counter() - t0
        if r.returncode == 0 and r.stdout.strip() == "hello":
            ok += 1
            times.append(dt)
            retries.append(r.stderr.count("peer overloaded, trying again"))
        else:
            errors.append(r.stderr.strip())
    return ok, times, errors


def show(label, ok, n, times, errors):
    if times:
        times.sort()
        print(f"{label}: {ok}/{n} ok; wall time p50 {statistics.median(times)*1e3:.1f} ms, "
              f"max {times[-1]*1e3:.1f} ms; {sum(retries)} connect retries after OVERLOADED")
    else:
        print(f"{label}: {ok}/{n} ok")
    for e in errors[:3]:
        print(f"  error: {e}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--attackers", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--sources", type=int, default=1)
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "../../target/release/netchan"))
    a = ap.parse_args()
    server = subprocess.Popen([a.bin, "serve", "svc/**", "--echo", "--listen", "tcp://127.0.0.1:0"],
                              stderr=subprocess.PIPE, text=True)
    try:
        line = server.stderr.readline().strip()
        addr = line.removeprefix("listening on ")
        threading.Thread(target=lambda: server.stderr.read(), daemon=True).start()
        host, port = addr.removeprefix("tcp://").rsplit(":", 1)
        q = _r(a.bin, addr, a.rounds)
        show("quiet", *q)
        stop = threading.Event()
        counts = [0] * a.attackers
        sources = ["127.0.0.1"] if a.sources == 1 else [f"127.0.0.{2 + k}" for k in range(a.sources)]
        ts = [threading.Thread(target=attacker, args=(host, int(port), sources[i % len(sources)], stop, counts, i))
              for i in range(a.attackers)]
        for t in ts:
            t.start()
        time.sleep(1.0)
        t0 = time.perf_counter()
        res = _r(a.bin, addr, a.rounds)
        elapsed = time.perf_counter() - t0
        stop.set()
        for t in ts:
            t.join()
        show(f"flood of {a.attackers} attackers from {len(sources)} address(es), "
             f"{sum(counts)} attacker connections in {elapsed + 1.0:.1f} s", *res)
    finally:
        server.kill()
        server.wait()


def _r(binary, addr, n):
    ok, times, errors = rounds(binary, addr, n)
    return ok, n, times, errors


if __name__ == "__main__":
    sys.exit(main())
