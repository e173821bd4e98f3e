"""Whole-process behaviour: Ctrl-C, interpreter exit, the CLI, the examples."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import List, Tuple

import pytest

import netchan

from conftest import PY, REPO, WATCHDOG, python_env, wait_until

EXAMPLES = REPO / "examples" / "python"

# --------------------------------------------------------------- Ctrl-C

#: The timeout of the call the child is blocked in. A signal that the wait
#: ignored would end the call only then, so the tests wait for the child's
#: reaction for half of it: no machine is that slow, and no bound on time is
#: tighter than the configured one.
CALL_TIMEOUT = 60.0


class Child:
    """A Python child process whose stdout lines the test reads with a
    watchdog; killed on exit from the ``with`` block if still running."""

    def __init__(self, script: str, *args: str) -> None:
        # faulthandler: a child that hangs is ended with SIGABRT, which makes
        # it print every thread's stack first (see `expect`).
        self.p = subprocess.Popen(
            [PY, "-X", "faulthandler", "-c", script, *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=python_env(),
        )
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.stderr: List[str] = []
        assert self.p.stdout is not None and self.p.stderr is not None
        out, err = self.p.stdout, self.p.stderr

        def read_lines() -> None:
            for ln in out:
                self.lines.put(ln.strip())

        self.readers = [
            threading.Thread(target=read_lines, daemon=True),
            threading.Thread(target=lambda: self.stderr.append(err.read()), daemon=True),
        ]
        for t in self.readers:
            t.start()

    def expect(self, line: str, timeout: float = WATCHDOG) -> None:
        """Waits for the child's next stdout line, which must be ``line``."""
        try:
            got = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no {line!r} from the child within {timeout} s; {self._post_mortem()}") from None
        assert got == line, f"got {got!r}, not {line!r}; {self._post_mortem()}"

    def _post_mortem(self) -> str:
        """How the child ended, and its stderr (with every thread's stack if
        it was still running)."""
        running = self.p.poll() is None
        if running:
            self.p.send_signal(signal.SIGABRT)
        code = self.p.wait(WATCHDOG)
        self.readers[1].join(WATCHDOG)
        state = "was still running" if running else f"had exited with {code}"
        return f"the child {state}; its stderr:\n{''.join(self.stderr)}"

    def ctrl_c(self) -> None:
        self.p.send_signal(signal.SIGINT)

    def assert_exits_by_ctrl_c(self) -> None:
        """Lets the child go on (closes its stdin) and checks that it ends the
        way an uncaught KeyboardInterrupt ends Python: killed by SIGINT, the
        traceback on stderr, and nothing worse (no crash at exit)."""
        assert self.p.stdin is not None
        self.p.stdin.close()
        assert self.p.wait(WATCHDOG) == -signal.SIGINT
        self.readers[1].join(WATCHDOG)
        err = self.stderr[0]
        assert err.rstrip().endswith("KeyboardInterrupt"), err
        assert "Fatal Python error" not in err and "panicked" not in err, err

    def __enter__(self) -> "Child":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(WATCHDOG)
        for t in self.readers:
            t.join(WATCHDOG)
        for f in (self.p.stdin, self.p.stdout, self.p.stderr):
            if f is not None and not f.closed:
                f.close()


# The child blocks in `recv` (on a subscription nobody publishes to) or in
# `request` (to the test's server, which never answers), prints
# "interrupted" when KeyboardInterrupt reaches it, waits until the test
# closes its stdin (staying connected meanwhile), and re-raises.
# Both start with Python's own Ctrl-C handling, whatever the test runner
# left them: a shell starts a background job with SIGINT ignored, and a
# Python started with SIGINT ignored keeps ignoring it.
PYTHON_CTRL_C = r"""
import signal
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
"""

BLOCKER = PYTHON_CTRL_C + r"""
import sys, threading, netchan
what = sys.argv[1]
ep = netchan.Endpoint("child")
if what == "recv":
    sub = ep.subscribe("never")
    # "waiting" must mean that the main thread is inside recv's wait. With
    # time slicing off, the announcer gets the GIL only when the main thread
    # releases it, and after the gate opens that happens first in recv's wait.
    sys.setswitchinterval(1000.0)
    gate = threading.Lock()
    gate.acquire()
    def announce():
        with gate:
            print("waiting", flush=True)
    threading.Thread(target=announce, daemon=True).start()
else:
    ep.connect(sys.argv[2])
    assert ep.wait_for_servers("slow", timeout=30)
try:
    if what == "recv":
        gate.release()
        sub.recv(timeout=%(t)s)
    else:
        ep.request("slow", b"", timeout=%(t)s)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.stdin.readline()
    raise
print("returned", flush=True)
""" % {"t": CALL_TIMEOUT}

# The same with asyncio: Ctrl-C during `asyncio.run` cancels the task that
# awaits the request. The endpoint is kept alive after the loop ends, so
# the server sees the cancel and not a lost link.
AIO_BLOCKER = PYTHON_CTRL_C + r"""
import asyncio, sys, netchan
from netchan import aio
keep = []
async def main():
    ep = aio.Endpoint("child")
    keep.append(ep)
    await ep.connect(sys.argv[1])
    assert await ep.wait_for_servers("slow", timeout=30)
    await ep.request("slow", b"", timeout=%(t)s)
try:
    asyncio.run(main())
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.stdin.readline()
    raise
print("returned", flush=True)
""" % {"t": CALL_TIMEOUT}


def test_ctrl_c_interrupts_a_blocking_recv() -> None:
    with Child(BLOCKER, "recv") as child:
        child.expect("waiting")  # the main thread is inside recv's wait
        child.ctrl_c()
        child.expect("interrupted", timeout=CALL_TIMEOUT / 2)
        child.assert_exits_by_ctrl_c()


def _interrupt_a_request(script: str, *args: str) -> None:
    """Runs ``script`` against a server of ``slow`` that never answers, sends
    Ctrl-C once the request reached the server (the child is then waiting
    for the reply), and checks that the child is interrupted, that the
    server sees the request cancelled while the child is still connected,
    and that the child then ends as Ctrl-C ends Python."""
    with netchan.Endpoint("test-server") as server:
        svc = server.serve("slow")
        addr = server.listen("tcp://127.0.0.1:0")
        with Child(script, *args, addr) as child:
            req = svc.recv(timeout=WATCHDOG)
            assert req is not None and not req.cancelled
            child.ctrl_c()
            child.expect("interrupted", timeout=CALL_TIMEOUT / 2)
            wait_until(lambda: req.cancelled, "the server to see the request cancelled")
            # Cancelled by the interrupt, not by the child's link going down.
            assert [p.name for p in server.peers()] == ["child"]
            child.assert_exits_by_ctrl_c()


def test_ctrl_c_interrupts_a_blocking_request_and_cancels_it() -> None:
    _interrupt_a_request(BLOCKER, "request")


@pytest.mark.skipif(
    sys.version_info < (3, 11),
    reason="before 3.11, asyncio.run turns Ctrl-C into a KeyboardInterrupt wherever the loop is, "
    "even between starting a request and awaiting it, which leaves the request running",
)
def test_ctrl_c_in_asyncio_run_cancels_the_awaited_request() -> None:
    # Since 3.11 asyncio.run cancels its main task on Ctrl-C instead.
    _interrupt_a_request(AIO_BLOCKER)


SIGNAL_MASKS = r"""
import os, signal, sys, netchan
with netchan.Endpoint("masks") as ep:  # starts the runtime and the dispatcher
    ep.listen("tcp://127.0.0.1:0")
    for t in sorted(os.listdir("/proc/self/task"), key=int):
        with open(f"/proc/self/task/{t}/status") as f:
            blocked = int(f.read().split("SigBlk:")[1].split()[0], 16)
        print(t == str(os.getpid()), all(blocked >> (getattr(signal, s) - 1) & 1 for s in sys.argv[1:]))
"""

#: The README's list.
PROGRAM_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGCHLD", "SIGWINCH"]


def test_netchan_threads_leave_signals_to_the_program() -> None:
    # The kernel may hand a process's SIGINT to any thread that does not block
    # it; one of netchan's would leave an idle asyncio loop asleep through
    # Ctrl-C. netchan's threads block it, the program's main thread does not.
    p = subprocess.run([PY, "-c", SIGNAL_MASKS, *PROGRAM_SIGNALS], capture_output=True, text=True, timeout=WATCHDOG, env=python_env())
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "True False", lines  # the main thread, as the program left it
    assert len(lines) >= 3 and set(lines[1:]) == {"False True"}, lines  # runtime threads and the dispatcher


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


AFTER_EXIT = r"""
import atexit

def late():
    # Registered before netchan's own exit handler, so it runs after it
    # (atexit runs the last registered first).
    for name, call in [
        ("publish", lambda: ep.publish("x", b"")),
        ("request", lambda: ep.request("x", b"", timeout=1)),
        ("recv", lambda: sub.recv(timeout=1)),
        ("listen", lambda: ep.listen("tcp://127.0.0.1:0")),
        ("Endpoint", lambda: netchan.Endpoint()),
    ]:
        try:
            call()
            print(name, "returned", flush=True)
        except netchan.ClosedError as e:
            print(name, e.code, flush=True)
    ep.close()
    print("close returned", flush=True)

atexit.register(late)
import netchan
ep = netchan.Endpoint()
sub = ep.subscribe("x")
"""


def test_calls_after_interpreter_exit_raise_closed_error() -> None:
    p = subprocess.run([PY, "-c", AFTER_EXIT], capture_output=True, text=True, timeout=WATCHDOG, env=python_env())
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        "publish CLOSED", "request CLOSED", "recv CLOSED", "listen CLOSED", "Endpoint CLOSED", "close returned",
    ], p.stdout + p.stderr


LEAVER = r"""
import sys
import netchan

ep = netchan.Endpoint("leaver")
ep.connect(sys.argv[1])
assert ep.wait_for_subscribers("bye", 30)
chunk = b"x" * (256 * 1024)
for i in range(int(sys.argv[2])):
    ep.publish("bye", chunk)
ep.publish("bye", b"last")
print("published", flush=True)
# No close(): netchan's exit hook closes the endpoint, sending what is queued.
"""


def test_exit_without_close_still_sends_what_was_published(listen_addr: str) -> None:
    # 64 x 256 KiB leave the publisher's queue well behind its publish calls;
    # without the exit hook the runtime stops with most of it unsent.
    n = 64
    with netchan.Endpoint("stayer", subscribe_capacity=n + 1, subscribe_max_bytes=64 << 20) as ep:
        sub = ep.subscribe("bye")
        bound = ep.listen(listen_addr)
        p = subprocess.run(
            [PY, "-c", LEAVER, bound, str(n)], capture_output=True, text=True, timeout=WATCHDOG, env=python_env()
        )
        assert p.returncode == 0 and p.stdout.strip() == "published", p.stdout + p.stderr
        got = 0
        while True:
            msg = sub.recv(timeout=WATCHDOG)
            assert msg is not None, f"only {got} of {n} messages and no 'last' arrived"
            if msg.payload == b"last":
                break
            got += 1
        assert got == n


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
        msgs = [sub.recv(timeout=WATCHDOG) for _ in range(3)]
        assert [(m.path, m.payload) if m is not None else None for m in msgs] == [("cli/news", b"hello from the cli")] * 3


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


# --------------------------------------------------------------- the package

# The README's snippets: test_readme.py.


def test_the_wheel_is_abi3_for_cpython_3_9_with_no_dependencies() -> None:
    from importlib import metadata

    dist = metadata.distribution("netchan")
    assert Path(netchan.__file__).resolve().parent == Path(str(dist.locate_file("netchan"))).resolve()
    wheel = dist.read_text("WHEEL") or ""
    tags = [ln.split(": ", 1)[1] for ln in wheel.splitlines() if ln.startswith("Tag: ")]
    assert tags and all(t.startswith("cp39-abi3-") for t in tags), tags
    assert dist.metadata["Requires-Python"] == ">=3.9"
    assert not dist.requires
    assert dist.metadata["License-Expression"] == "MIT OR Apache-2.0"


# --------------------------------------------------------------- examples and types


@pytest.mark.parametrize(
    "name", ["pubsub", "reqrep", "ping", "stream", "pubsub_async", "reqrep_async", "ping_async", "stream_async"]
)
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
    # The names the README tells users to catch, and a misspelled option.
    good = tmp_path / "good.py"
    good.write_text(
        "import netchan\n"
        "try:\n    pass\n"
        "except (netchan.TimeoutError, netchan.CancelledError) as e:\n    print(e.code)\n"
        # recv() without a timeout never gives None (it raises ClosedError).
        "def first(sub: netchan.Subscription, svc: netchan.Service) -> str:\n"
        "    m: netchan.Message = sub.recv()\n"
        "    r: netchan.Request = svc.recv()\n"
        "    maybe: 'netchan.Message | None' = sub.recv(1.0)\n"
        "    return m.path + r.path + str(maybe)\n"
    )
    option = tmp_path / "option.py"
    option.write_text("import netchan\nnetchan.Endpoint(heartbeat_intervall=1.0)\n")
    out, err, status = mypy.run(["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "c"), *files, str(good)])
    assert status == 0, out + err
    out, err, status = mypy.run(["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "c"), str(bad)])
    assert status != 0 and "publish" in out, out
    out, err, status = mypy.run(["--strict", "--no-incremental", "--cache-dir", str(tmp_path / "c"), str(option)])
    assert status != 0 and "heartbeat_intervall" in out, out


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
