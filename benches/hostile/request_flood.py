#!/usr/bin/env python3
"""Request flood against the release CLI, as docs/RELIABILITY.md's "One
hostile peer" describes: `netchan serve 'svc/**' --echo` gets REQUEST frames
at full speed from one raw peer (pipelined, ids never reused), which either
reads the RESULTs (`--reads`) or never reads them, while a legitimate
`netchan req` runs R times. Prints how many legitimate requests succeeded,
their wall times (a process start included), and what the flood got.

Usage: python3 benches/hostile/request_flood.py [--rounds 50] [--reads]
       [--bin target/release/netchan]
"""
import argparse
import os
import socket
import statistics
import struct
import subprocess
import threading
import time


def s(text):
    b = text.encode()
    assert len(b) < 32
    return bytes([0xA0 | len(b)]) + b


def frame(kind, header, payload=b""):
    return struct.pack(">IBI", 5 + len(header) + len(payload), kind, len(header)) + header + payload


def hello(name):
    items = [(s("magic"), s("NTCH")), (s("min_version"), b"\x02"), (s("max_version"), b"\x02"),
             (s("name"), s(name)), (s("max_frame"), b"\xce\x01\x00\x00\x00"), (s("heartbeat_ms"), b"\x00")]
    return frame(0x01, bytes([0x80 | len(items)]) + b"".join(k + v for k, v in items))


def request(rid):
    return frame(0x21, b"\x93\xcf" + struct.pack(">Q", rid) + s("svc/flood") + b"\xcd\xea\x60", b"x")


def flood(host, port, reads, stop, sent):
    sock = socket.create_connection((host, port))
    sock.sendall(hello("flooder") + frame(0x11, b"\x90"))
    if reads:
        def drain():
            try:
                while sock.recv(1 << 16):
                    pass
            except OSError:
                pass
        threading.Thread(target=drain, daemon=True).start()
    else:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    rid = 1
    try:
        while not stop.is_set():
            batch = b"".join(request(rid + i) for i in range(2000))
            rid += 2000
            sock.sendall(batch)
            sent[0] += 2000
    except OSError as e:
        sent[1] = str(e)
    finally:
        sock.close()


def rounds(binary, addr, n):
    ok, times, errors = 0, [], []
    for _ in range(n):
        t0 = time.perf_counter()
        r = subprocess.run([binary, "req", "svc/x", "hello", "--connect", addr],
                           capture_output=True, text=True, timeout=60)
        dt = time.perf_counter() - t0
        if r.returncode == 0 and r.stdout.strip() == "hello":
            ok += 1
            times.append(dt)
        else:
            errors.append(r.stderr.strip())
    return ok, n, times, errors


def show(label, ok, n, times, errors):
    times.sort()
    q = lambda p: times[min(len(times) - 1, int(round((len(times) - 1) * p)))] * 1e3 if times else float("nan")
    print(f"{label}: {ok}/{n} ok; wall time p50 {q(0.5):.1f} ms, p99 {q(0.99):.1f} ms, max {q(1):.1f} ms")
    for e in errors[:3]:
        print(f"  error: {e}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=50)
    ap.add_argument("--reads", action="store_true")
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "../../target/release/netchan"))
    a = ap.parse_args()
    server = subprocess.Popen([a.bin, "serve", "svc/**", "--echo", "--listen", "tcp://127.0.0.1:0"],
                              stderr=subprocess.PIPE, text=True)
    try:
        addr = server.stderr.readline().strip().removeprefix("listening on ")
        log = []
        threading.Thread(target=lambda: log.extend(server.stderr), daemon=True).start()
        host, port = addr.removeprefix("tcp://").rsplit(":", 1)
        show("quiet", *rounds(a.bin, addr, a.rounds))
        stop, sent = threading.Event(), [0, None]
        t = threading.Thread(target=flood, args=(host, int(port), a.reads, stop, sent))
        t.start()
        time.sleep(1.0)
        res = rounds(a.bin, addr, a.rounds)
        stop.set()
        t.join(timeout=10)
        mode = "reading its replies" if a.reads else "never reading its replies"
        show(f"beside a flood {mode} ({sent[0]} requests sent"
             f"{', then cut: ' + sent[1] if sent[1] else ''})", *res)
        for line in log[:2]:
            print(f"  server: {line.strip()}")
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
