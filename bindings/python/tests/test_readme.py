"""Every ```python snippet of the README runs, as a program of its own.

Each snippet is tagged with ``<!-- snippet: ID -->`` on the line before its
fence; :data:`RUNS` says, per ID, what is set up before it (a prelude such
as ``server`` and ``client`` connected, certificates made by ``netchan
cert``), which literal addresses are replaced by live ones, and what it must
print (each printed line is also written in the snippet, as a comment). A
snippet without a tag, or a tag without a run, fails the test: a new snippet
cannot go unrun.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import pytest

from conftest import PY, WATCHDOG, python_env

README = Path(__file__).resolve().parents[1] / "README.md"

# `server` and `client`, connected over loopback.
PAIR = """\
import netchan
server = netchan.Endpoint("server")
client = netchan.Endpoint("client")
client.connect(server.listen("tcp://127.0.0.1:0"))
"""
CLOSE_PAIR = "\nclient.close()\nserver.close()\n"


def make_certs(cwd: Path) -> Dict[str, str]:
    """A CA with `db` and `app` certificates in ./certs (for localhost and
    127.0.0.1); the server listens on a port of the system's choice on
    loopback, and the client dials the address it got."""
    cli = os.environ.get("NETCHAN_CLI", "netchan")
    for name in ("db", "app"):
        subprocess.run([cli, "cert", name, "--dir", str(cwd / "certs")], check=True, capture_output=True, timeout=30)
    return {
        'server.listen("tls://0.0.0.0:7443")': 'addr = server.listen("tls://127.0.0.1:0")',
        '"tls://db.example.com:7443"': "addr",
    }


@dataclass
class Run:
    prelude: str = ""
    postlude: str = ""
    #: Run in the snippet's directory before it; returns {literal: replacement}.
    setup: Callable[[Path], Dict[str, str]] = lambda _: {}
    prints: List[str] = field(default_factory=list)


RUNS: Dict[str, Run] = {
    "quickstart-sync": Run(prints=["b'hello, ana'", "sensors/kitchen/temp b'21.5' client"]),
    "quickstart-asyncio": Run(prints=["[b'hello, a', b'hello, b', b'hello, c']", "sensors/kitchen/temp b'21.5'"]),
    "tls": Run(
        prelude="import netchan\n",
        setup=make_certs,
        postlude="\nclient.close()\nserver.close()\n",
        prints=["db"],
    ),
    "streams": Run(prelude=PAIR, postlude=CLOSE_PAIR, prints=["b'HELLO'"]),
    # Nobody serves users/42: the first `except` takes it.
    "errors": Run(prelude=PAIR, postlude=CLOSE_PAIR),
    "logging": Run(
        prelude="import logging\nimport netchan\n",
        postlude='\nassert logging.getLogger("netchan").getEffectiveLevel() == logging.DEBUG\nnetchan.refresh_log_level()\n',
    ),
}


def snippets() -> List[Tuple[int, str, str]]:
    """(line, ID or '', code) of every Python block (```python, or an alias
    such as ```py, which must be tagged too)."""
    lines = README.read_text().splitlines()
    out = []
    i = 0
    while i < len(lines):
        if lines[i].strip() in ("```python", "```py", "```python3", "```pycon"):
            m = re.fullmatch(r"<!-- snippet: (\S+) -->", lines[i - 1].strip()) if i else None
            j = lines.index("```", i + 1)
            out.append((i + 1, m.group(1) if m else "", "\n".join(lines[i + 1 : j]) + "\n"))
            i = j
        i += 1
    return out


def test_every_readme_snippet_is_tagged_and_has_a_run() -> None:
    found = snippets()
    untagged = [line for line, ident, _ in found if not ident]
    assert not untagged, f"README.md: Python blocks at lines {untagged} have no <!-- snippet: ID --> tag"
    ids = [ident for _, ident, _ in found]
    assert sorted(ids) == sorted(RUNS), f"README snippets {ids} vs runs {sorted(RUNS)}"


@pytest.mark.parametrize("ident", sorted(RUNS))
def test_every_readme_snippet_runs(ident: str, tmp_path: Path) -> None:
    code = {i: c for _, i, c in snippets()}[ident]
    run = RUNS[ident]
    for line in run.prints:
        assert line in code, f"the snippet does not show what it prints: {line}"
    for literal, live in run.setup(tmp_path).items():
        assert literal in code, f"the snippet no longer has {literal}"
        code = code.replace(literal, live)
    program = run.prelude + code + run.postlude
    p = subprocess.run([PY, "-c", program], cwd=tmp_path, capture_output=True, text=True, timeout=WATCHDOG, env=python_env())
    assert p.returncode == 0, f"{ident}:\n{program}\n{p.stderr}"
    assert p.stdout.splitlines() == run.prints, p.stdout
