"""Shared fixtures (endpoints over TCP and Unix sockets on free addresses) and
the two ways a test waits: for a condition, or for a thread to be inside a
blocking call. No test waits for a fixed time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, Tuple

import pytest

import netchan

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(params=["tcp", "unix"])
def listen_addr(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "tcp":
        yield "tcp://127.0.0.1:0"
        return
    # A short directory: Unix socket paths are limited to ~107 bytes.
    d = tempfile.mkdtemp(prefix="nc", dir="/tmp")
    try:
        yield f"unix://{d}/ep.sock"
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def pair(listen_addr: str) -> Iterator[Tuple[netchan.Endpoint, netchan.Endpoint, str]]:
    """(server, client, bound address): the client is connected to the server."""
    server = netchan.Endpoint("server")
    client = netchan.Endpoint("client")
    bound = server.listen(listen_addr)
    client.connect(bound)
    try:
        yield server, client, bound
    finally:
        client.close()
        server.close()


def python_env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


# The interpreter that child test processes run on: this one, unless
# NETCHAN_TEST_PYTHON names a command that starts it (the ARM suite runs under
# qemu, where this interpreter is an ARM program the machine cannot start
# directly: tests/platforms/run.sh).
PY = os.environ.get("NETCHAN_TEST_PYTHON") or sys.executable


#: How long a test waits for something that should happen at once before it
#: fails: only a hang gets near it, so a slow machine never does.
WATCHDOG = 30.0


def wait_until(cond: Callable[[], object], what: str, timeout: float = WATCHDOG) -> None:
    """Waits until ``cond()`` is true (checked every 2 ms); fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}")
        time.sleep(0.002)


async def wait_until_async(cond: Callable[[], object], what: str, timeout: float = WATCHDOG) -> None:
    """:func:`wait_until` for a coroutine (the loop keeps running)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout} s for {what}")
        await asyncio.sleep(0.002)


@contextlib.contextmanager
def no_time_slicing() -> Iterator[None]:
    """While active, a Python thread keeps the GIL until it blocks: the
    interpreter's 5 ms hand-over to waiting threads is pushed out to 1000 s.
    Another thread then runs only while this one waits in a call that
    releases the GIL, which is what lets a test know where a thread is."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    # A thread already waiting for the GIL may still ask for it after its
    # old 5 ms: let any such thread take it now rather than later.
    time.sleep(0)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def start_in_blocking_call(call: Callable[[], object]) -> threading.Thread:
    """Starts a thread running ``call()`` and returns once that thread is
    inside the call's wait: with time slicing off, this thread gets the GIL
    back only when the new one releases it, and between ``entered.set()`` and
    the wait of a netchan call nothing releases it."""
    entered = threading.Event()

    def run() -> None:
        entered.set()
        call()

    t = threading.Thread(target=run, daemon=True)
    with no_time_slicing():
        t.start()
        assert entered.wait(WATCHDOG)
    return t
