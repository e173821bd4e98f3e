"""Whole-process behaviour: Ctrl-C, interpreter exit, the CLI, the examples."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List, Tuple

import pytest

import netchan

from conftest import PY, REPO, python_env

EXAMPLES = REPO / "examples" / "python"

# --------------------------------------------------------------- Ctrl-C

BLOCKER = r"""
import sys, time, netchan
ep = netchan.Endpoint()
what = sys.argv[1]
if what == "recv":
    sub = ep.subscribe("never")
    call = lambda: sub.recv()
else:
    svc = ep.serve("slow")          # never answered
    call = lambda: ep.request("slow", b"", timeout=60)
print("ready", flush=True)
try:
    call()
except KeyboardInterrupt:
    print("interrupted", time.monotonic(), flush=True)
    sys.exit(0)
sys.exit(3)
"""


@pytest.mark.parametrize("what", ["recv", "request"])
def test_ctrl_c_interrupts_a_blocking_call(what: str) -> None:
    p = subprocess.Popen(
        [PY, "-c", BLOCKER, what], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=python_env()
    )
    assert p.stdout is not None
    assert p.stdout.readline().strip() == "ready"
    time.sleep(0.2)  # let it enter the blocking wait
    sent = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=10)
    assert p.returncode == 0, err
    word, at = out.split()
    assert word == "interrupted"
    latency = float(at) - sent
    print(f"Ctrl-C latency ({what}): {latency * 1000:.1f} ms")
    # The wait checks signals every 20 ms; allow for a loaded machine.
    assert latency < 0.5


# --------------------------------------------------------------- exit safety

EXITER = r"""
import asyncio, sys, threading, netchan
from netchan import aio
kind = int(sys.argv[1]) % 3

async def work():
    server = aio.Endpoint()
    server.serve("e", lambda r: r.payload)
    sub = server.subscribe("p/**", lambda m: None)
    client = aio.Endpoint()
    await client.connect(await server.listen("tcp://127.0.0.1:0"))
    await client.wait_for_servers("e")
    await asyncio.gather(*(client.request("e", b"x") for _ in range(20)))
    for i in range(20):
        await client.publish("p/q", b"y")
    return server, client, sub

if kind == 0:
    # exit right after awaiting, endpoints left open
    keep = asyncio.run(work())
elif kind == 1:
    # live sync endpoints with callback and handler threads
    s = netchan.Endpoint(); s.serve("e", lambda r: r.payload); s.subscribe("x", print)
    c = netchan.Endpoint(); c.connect(s.listen("tcp://127.0.0.1:0"))
    for _ in range(20): c.request("e", b"x")
else:
    # a daemon thread blocked in a receive while the main thread exits
    keep = asyncio.run(work())
    s = netchan.Endpoint(); sub = s.subscribe("never")
    def waiter():
        try:
            sub.recv()
        except netchan.ClosedError:
            pass  # what a blocked receive gets at exit
    threading.Thread(target=waiter, daemon=True).start()
print("ok")
"""


def _run_exiter(i: int) -> Tuple[int, int, str]:
    p = subprocess.run([PY, "-c", EXITER, str(i)], capture_output=True, text=True, timeout=60, env=python_env())
    return i, p.returncode, p.stdout + p.stderr


def test_exit_after_async_work_never_crashes() -> None:
    runs = int(os.environ.get("NETCHAN_EXIT_RUNS", "300"))
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(_run_exiter, range(runs)))
    bad: List[Tuple[int, int, str]] = [r for r in results if r[1] != 0 or r[2].strip() != "ok"]
    print(f"exit loop: {runs} runs, {len(bad)} bad")
    for i, code, out in bad[:3]:
        print(f"--- run {i} (kind {i % 3}) exited {code}:\n{out}")
    assert not bad, f"{len(bad)} of {runs} runs failed; see the captured output"


# --------------------------------------------------------------- CLI interop


def cli() -> Path:
    exe = Path(os.environ.get("NETCHAN_CLI", REPO / "target" / "debug" / "netchan"))
    if not exe.exists():
        pytest.skip(f"netchan CLI not built at {exe} (cargo build -p netchan-cli)")
    return exe


def test_python_subscriber_receives_from_the_cli() -> None:
    exe = cli()
    with netchan.Endpoint("py-sub") as ep:
        sub = ep.subscribe("cli/**")
        bound = ep.listen("tcp://127.0.0.1:0")
        out = subprocess.run(
            [str(exe), "pub", "cli/news", "hello from the cli", "--connect", bound, "--count", "3"],
            capture_output=True, text=True, timeout=30,
        )
        assert out.returncode == 0, out.stderr
        msgs = [sub.recv(timeout=5) for _ in range(3)]
        assert [(m.path, m.payload) for m in msgs if m] == [("cli/news", b"hello from the cli")] * 3


def test_python_server_answers_the_cli(listen_addr: str) -> None:
    exe = cli()
    with netchan.Endpoint("py-server") as ep:
        ep.serve("greet/*", lambda req: b"hello, " + req.payload)
        bound = ep.listen(listen_addr)
        out = subprocess.run([str(exe), "req", "greet/x", "ana", "--connect", bound], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert out.stdout == "hello, ana\n"


def test_python_client_calls_the_cli_server() -> None:
    exe = cli()
    p = subprocess.Popen(
        [str(exe), "serve", "echo", "--listen", "tcp://127.0.0.1:0", "--echo"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert p.stderr is not None
        line = p.stderr.readline()
        assert line.startswith("listening on "), line
        addr = line.split()[-1]
        with netchan.Endpoint("py-client") as ep:
            ep.connect(addr)
            assert ep.request("echo", b"\x00binary\xff") == b"\x00binary\xff"
            assert netchan.unpack(ep.request("echo", netchan.pack({"a": [1, 2.5]}))) == {"a": [1, 2.5]}
    finally:
        p.terminate()
        p.communicate(timeout=10)


# --------------------------------------------------------------- examples and types


@pytest.mark.parametrize("name", ["pubsub", "reqrep", "ping", "pubsub_async", "reqrep_async", "ping_async"])
def test_example_runs(name: str, listen_addr: str) -> None:
    script = EXAMPLES / f"{name}.py"
    lines = script.read_text().splitlines()
    assert [ln.split(":")[0] for ln in lines[:3]] == ["# Shows", "# Run", "# Prints"]
    p = subprocess.run([PY, str(script), listen_addr], capture_output=True, text=True, timeout=60, env=python_env())
    assert p.returncode == 0, p.stderr
    assert "listening on" in p.stdout


def test_examples_type_check_against_the_stubs(tmp_path: Path) -> None:
    mypy = pytest.importorskip("mypy.api")
    files = sorted(str(p) for p in EXAMPLES.glob("*.py"))
    bad = tmp_path / "bad.py"
    bad.write_text("import netchan\nnetchan.Endpoint().publish(1, 'x')\n")
    out, err, status = mypy.run(["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "c"), *files])
    assert status == 0, out + err
    out, err, status = mypy.run(["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "c"), str(bad)])
    assert status != 0 and "publish" in out, out


def test_stubs_match_the_compiled_module() -> None:
    import ast

    import netchan._native as native

    stub = Path(native.__file__).with_name("_native.pyi")
    tree = ast.parse(stub.read_text())
    skip = {"Counters", "PeerStats", "SubscriptionStats", "Stats", "_Payload"}
    declared = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name not in skip:
            declared[node.name] = {
                n.name for n in node.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
            }
        elif isinstance(node, ast.FunctionDef):
            declared[node.name] = set()
    public = {n for n in dir(native) if not n.startswith("__")}
    assert public == set(declared), public ^ set(declared)
    for cls, methods in declared.items():
        obj = getattr(native, cls)
        real = {m for m in dir(obj) if not m.startswith("__")} if isinstance(obj, type) else set()
        wanted = {m for m in methods if not m.startswith("__")}
        assert real == wanted, (cls, real ^ wanted)
