"""Shared fixtures: endpoints over TCP and Unix sockets on free addresses."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator, Tuple

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


def python_env() -> dict:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return env


PY = sys.executable
