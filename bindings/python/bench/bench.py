"""Python benchmark: netchan beside pyzmq and eclipse-zenoh (not run in CI).

Separate processes on loopback TCP:
- pub/sub throughput: a publisher sends N messages of 8 B and 1 KiB as fast
  as it can; the subscriber times first to last message (msgs/s).
- request/reply latency: sequential 8 B requests to an echo server; p50,
  p99 and p99.9, and the client process's CPU time (user + system) per
  round trip, so a latency bought with spinning shows.
- the same from asyncio (`netchan-asyncio`: `netchan.aio` awaiting each
  request; `pyzmq-asyncio`: `zmq.asyncio`), latency only.

Run through run.sh (which builds the wheel and a venv with pyzmq and
eclipse-zenoh): bash bindings/python/bench/run.sh
BENCH_BUSY_POLL=0.0001 runs netchan's endpoints with a 100 us busy poll.
"""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from typing import Callable, List, Optional

N = {8: 300_000, 1024: 150_000}
REQS = 10_000


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def ready(line: str = "ready") -> None:
    print(line, flush=True)


# ------------------------------------------------------------------ netchan

def _netchan_options() -> dict:
    # BENCH_BUSY_POLL=seconds sets the endpoints' busy_poll option (the
    # core's Config::busy_poll; default 0).
    v = os.environ.get("BENCH_BUSY_POLL")
    return {} if v is None else {"busy_poll": float(v)}


def netchan_sub(port: int, n: int, size: int) -> None:
    import netchan
    ep = netchan.Endpoint("bench-sub", **_netchan_options())
    sub = ep.subscribe("bench/data")
    ep.listen(f"tcp://127.0.0.1:{port}")
    ready()
    got = 0
    t0 = 0.0
    for msg in sub:
        if got == 0:
            t0 = time.perf_counter()
        got += 1
        if got == n:
            break
    dt = time.perf_counter() - t0
    print(f"result {n / dt:.0f}", flush=True)


def netchan_pub(port: int, n: int, size: int, batch: bool) -> None:
    import netchan
    ep = netchan.Endpoint("bench-pub", **_netchan_options())
    ep.connect(f"tcp://127.0.0.1:{port}")
    assert ep.wait_for_subscribers("bench/data", 10)
    payload = b"x" * size
    if batch:
        chunk = [payload] * 1000
        for _ in range(n // 1000):
            ep.publish_many("bench/data", chunk)
    else:
        publish = ep.publish
        for _ in range(n):
            publish("bench/data", payload)
    ep.close()


def netchan_server(port: int) -> None:
    import netchan
    ep = netchan.Endpoint("bench-server", **_netchan_options())
    ep.serve("bench/echo", lambda req: req.payload)
    ep.listen(f"tcp://127.0.0.1:{port}")
    ready()
    sys.stdin.read()


def netchan_client(port: int) -> List[float]:
    import netchan
    ep = netchan.Endpoint("bench-client", **_netchan_options())
    ep.connect(f"tcp://127.0.0.1:{port}")
    req = ep.request
    payload = b"x" * 8
    lat = []
    for i in range(REQS + 500):
        t = time.perf_counter()
        req("bench/echo", payload, 5.0)
        if i >= 500:
            lat.append(time.perf_counter() - t)
    return lat


def netchan_aio_client(port: int) -> List[float]:
    from netchan import aio

    async def run() -> List[float]:
        ep = aio.Endpoint("bench-aio-client", **_netchan_options())
        await ep.connect(f"tcp://127.0.0.1:{port}")
        payload = b"x" * 8
        lat = []
        for i in range(REQS + 500):
            t = time.perf_counter()
            await ep.request("bench/echo", payload, 5.0)
            if i >= 500:
                lat.append(time.perf_counter() - t)
        await ep.close()
        return lat

    return asyncio.run(run())


# ------------------------------------------------------------------ pyzmq

def zmq_sub(port: int, n: int, size: int) -> None:
    import zmq
    ctx = zmq.Context()
    s = ctx.socket(zmq.PULL)
    s.bind(f"tcp://127.0.0.1:{port}")
    ready()
    recv = s.recv
    recv()
    t0 = time.perf_counter()
    for _ in range(n - 1):
        recv()
    dt = time.perf_counter() - t0
    print(f"result {(n - 1) / dt:.0f}", flush=True)


def zmq_pub(port: int, n: int, size: int, batch: bool) -> None:
    import zmq
    ctx = zmq.Context()
    s = ctx.socket(zmq.PUSH)
    s.connect(f"tcp://127.0.0.1:{port}")
    payload = b"x" * size
    send = s.send
    for _ in range(n):
        send(payload)
    s.close(linger=-1)
    ctx.term()


def zmq_server(port: int) -> None:
    import zmq
    ctx = zmq.Context()
    s = ctx.socket(zmq.REP)
    s.bind(f"tcp://127.0.0.1:{port}")
    ready()
    while True:
        s.send(s.recv())


def zmq_client(port: int) -> List[float]:
    import zmq
    ctx = zmq.Context()
    s = ctx.socket(zmq.REQ)
    s.connect(f"tcp://127.0.0.1:{port}")
    payload = b"x" * 8
    lat = []
    for i in range(REQS + 500):
        t = time.perf_counter()
        s.send(payload)
        s.recv()
        if i >= 500:
            lat.append(time.perf_counter() - t)
    return lat


def zmq_aio_client(port: int) -> List[float]:
    import zmq
    import zmq.asyncio

    async def run() -> List[float]:
        ctx = zmq.asyncio.Context()
        s = ctx.socket(zmq.REQ)
        s.connect(f"tcp://127.0.0.1:{port}")
        payload = b"x" * 8
        lat = []
        for i in range(REQS + 500):
            t = time.perf_counter()
            await s.send(payload)
            await s.recv()
            if i >= 500:
                lat.append(time.perf_counter() - t)
        s.close(linger=0)
        ctx.term()
        return lat

    return asyncio.run(run())


# ------------------------------------------------------------------ zenoh

def zenoh_session(listen: Optional[int] = None, connect: Optional[int] = None):  # type: ignore[no-untyped-def]
    import zenoh
    c = zenoh.Config()
    c.insert_json5("scouting/multicast/enabled", "false")
    if listen is not None:
        c.insert_json5("listen/endpoints", f'["tcp/127.0.0.1:{listen}"]')
    if connect is not None:
        c.insert_json5("connect/endpoints", f'["tcp/127.0.0.1:{connect}"]')
    return zenoh.open(c)


def zenoh_sub(port: int, n: int, size: int) -> None:
    s = zenoh_session(listen=port)
    sub = s.declare_subscriber("bench/data")
    ready()
    recv = sub.recv
    recv()
    t0 = time.perf_counter()
    for _ in range(n - 1):
        recv()
    dt = time.perf_counter() - t0
    print(f"result {(n - 1) / dt:.0f}", flush=True)
    os._exit(0)


def zenoh_pub(port: int, n: int, size: int, batch: bool) -> None:
    import zenoh
    s = zenoh_session(connect=port)
    time.sleep(1.0)  # let the subscriber's declaration arrive
    pub = s.declare_publisher("bench/data", congestion_control=zenoh.CongestionControl.BLOCK)
    payload = b"x" * size
    put = pub.put
    for _ in range(n):
        put(payload)
    time.sleep(1.0)
    os._exit(0)


def zenoh_server(port: int) -> None:
    s = zenoh_session(listen=port)
    q = s.declare_queryable("bench/echo")
    ready()
    for query in q:
        query.reply("bench/echo", query.payload.to_bytes())
        query.drop()  # finalizes the query: the caller stops waiting for more replies


def zenoh_client(port: int) -> List[float]:
    s = zenoh_session(connect=port)
    time.sleep(1.0)
    payload = b"x" * 8
    lat = []
    for i in range(REQS + 500):
        t = time.perf_counter()
        replies = [r.ok.payload.to_bytes() for r in s.get("bench/echo", payload=payload)]
        assert replies == [payload], replies
        if i >= 500:
            lat.append(time.perf_counter() - t)
    return lat


# ------------------------------------------------------------------ driver

ROLES = {
    "netchan": (netchan_sub, netchan_pub, netchan_server, netchan_client),
    "pyzmq": (zmq_sub, zmq_pub, zmq_server, zmq_client),
    "zenoh": (zenoh_sub, zenoh_pub, zenoh_server, zenoh_client),
    # Latency only (the publisher and subscriber are the sync ones).
    "netchan-asyncio": (netchan_sub, netchan_pub, netchan_server, netchan_aio_client),
    "pyzmq-asyncio": (zmq_sub, zmq_pub, zmq_server, zmq_aio_client),
}
LATENCY_ONLY = {"netchan-asyncio", "pyzmq-asyncio"}


def child(args: List[str]) -> None:
    system, role, port = args[0], args[1], int(args[2])
    sub, pub, server, client = ROLES[system]
    if role == "sub":
        sub(port, int(args[3]), int(args[4]))
    elif role == "pub":
        pub(port, int(args[3]), int(args[4]), args[5] == "1")
    elif role == "server":
        server(port)
    else:
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        lat = sorted(client(port))
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime) / (REQS + 500) * 1e6
        p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1e6  # noqa: E731
        print(f"result {p(0.5):.1f} {p(0.99):.1f} {p(0.999):.1f} {cpu:.1f}", flush=True)
        sys.stdout.flush()
        os._exit(0)


def spawn(*args: object) -> subprocess.Popen:  # type: ignore[type-arg]
    return subprocess.Popen([sys.executable, __file__, "child", *map(str, args)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def throughput(system: str, size: int, batch: bool = False) -> float:
    port = free_port()
    n = N[size]
    s = spawn(system, "sub", port, n, size)
    assert s.stdout and s.stdout.readline().strip() == "ready"
    p = spawn(system, "pub", port, n, size, int(batch))
    out = s.stdout.readline().split()
    s.wait(120)
    p.wait(120)
    return float(out[1])


def latency(system: str) -> "tuple[float, float, float, float]":
    port = free_port()
    srv = spawn(system, "server", port)
    assert srv.stdout and srv.stdout.readline().strip() == "ready"
    c = spawn(system, "client", port)
    assert c.stdout
    out = c.stdout.readline().split()
    c.wait(120)
    srv.kill()
    srv.wait()
    return float(out[1]), float(out[2]), float(out[3]), float(out[4])


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2:])
        return
    args = sys.argv[1:]
    rounds = 3
    if args and args[0].startswith("--rounds="):
        rounds = int(args.pop(0).split("=", 1)[1])
    systems = args or ["netchan", "pyzmq", "zenoh", "netchan-asyncio", "pyzmq-asyncio"]
    cases: "dict[str, List[List[float]]]" = {}
    # Rounds interleave the systems so that load from elsewhere on the
    # machine falls on all of them alike; the table shows medians.
    for r in range(rounds):
        for system in systems:
            if system in LATENCY_ONLY:
                row = [NAN, NAN, *latency(system)]
            else:
                row = [throughput(system, 8), throughput(system, 1024), *latency(system)]
            cases.setdefault(system, []).append(row)
            print(f"round {r + 1} {system}: 8 B {row[0]:,.0f} msg/s, 1 KiB {row[1]:,.0f} msg/s, "
                  f"req/rep p50 {row[2]:.1f} us p99 {row[3]:.1f} us p99.9 {row[4]:.1f} us, "
                  f"client CPU {row[5]:.1f} us per round trip", flush=True)
            if system == "netchan":
                row = [throughput(system, 8, batch=True), throughput(system, 1024, batch=True), NAN, NAN, NAN, NAN]
                cases.setdefault("netchan publish_many", []).append(row)
                print(f"round {r + 1} netchan publish_many: 8 B {row[0]:,.0f} msg/s, 1 KiB {row[1]:,.0f} msg/s",
                      flush=True)
    print()
    print(f"median of {rounds} rounds")
    print("| system | 8 B msgs/s | 1 KiB msgs/s | req/rep p50 (us) | p99 (us) | p99.9 (us) | client CPU per round trip (us) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    fmt = lambda v: "-" if v != v else f"{v:.1f}"  # noqa: E731
    rate = lambda v: "-" if v != v else f"{v:,.0f}"  # noqa: E731
    for name, rows in cases.items():
        # Medians, with the spread (min-max over the rounds) beside each.
        cols = list(zip(*rows))
        med = [statistics.median(c) for c in cols]
        spread = lambda i, f: "" if med[i] != med[i] or len(rows) < 2 else f" ({f(min(cols[i]))}-{f(max(cols[i]))})"  # noqa: E731
        print(f"| {name} | {rate(med[0])}{spread(0, rate)} | {rate(med[1])}{spread(1, rate)} | "
              f"{fmt(med[2])}{spread(2, fmt)} | {fmt(med[3])}{spread(3, fmt)} | {fmt(med[4])}{spread(4, fmt)} | "
              f"{fmt(med[5])}{spread(5, fmt)} |")


NAN = float("nan")


if __name__ == "__main__":
    main()
