"""TLS from Python (docs/SECURITY.md): certificates made by ``netchan cert``
($NETCHAN_CLI), given as paths, ``os.PathLike`` or PEM bytes; mutual TLS
over tls://127.0.0.1 from the sync and the asyncio API; each refusal with
its exception; plaintext beyond this host refused unless ``insecure``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import types
from pathlib import Path
from typing import Iterator

import pytest

import netchan
import netchan.aio

WATCHDOG = 10.0


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A CA with `server` and `client` certificates, made by the CLI."""
    d = tmp_path_factory.mktemp("certs")
    cli = os.environ.get("NETCHAN_CLI", "netchan")
    for name in ("server", "client"):
        subprocess.run([cli, "cert", name, "--dir", str(d)], check=True, capture_output=True, timeout=30)
    yield d


def server(certs: Path, **extra: object) -> netchan.Endpoint:
    # No name: the endpoint takes its certificate's (`server`), the only
    # one its peers accept.
    ep = netchan.Endpoint(
        tls_cert=certs / "server.pem",  # os.PathLike
        tls_key=str(certs / "server-key.pem"),  # str
        tls_ca=(certs / "ca.pem").read_bytes(),  # PEM bytes
        tls_client_auth="required",
        **extra,  # type: ignore[arg-type]
    )
    ep.serve("echo", lambda r: r.payload)
    return ep


def test_mutual_tls_carries_requests_and_refuses_strangers(certs: Path) -> None:
    with server(certs) as srv:
        addr = srv.listen("tls://127.0.0.1:0")
        assert addr.startswith("tls://127.0.0.1:")
        with netchan.Endpoint(
            "client", tls_ca=certs / "ca.pem", tls_cert=certs / "client.pem", tls_key=certs / "client-key.pem"
        ) as c:
            peer = c.connect(addr)
            assert peer.addr.startswith("tls://")
            assert (peer.name, peer.identity) == ("server", "cert:server")
            assert [p.identity for p in srv.peers()] == ["cert:client"]
            assert srv.stats()["peers"][0]["identity"] == "cert:client"
            assert c.request("echo", b"over tls", timeout=WATCHDOG) == b"over tls"
        with netchan.Endpoint("anonymous", tls_ca=certs / "ca.pem") as anon:
            with pytest.raises(netchan.ClientCertRequiredError) as e:
                anon.connect(addr)
            assert e.value.code == "CLIENT_CERT_REQUIRED" and isinstance(e.value, ConnectionError)
        # The same settings by name, as the CLI's -o takes them.
        with netchan.Endpoint("by-name", tls_ca=certs / "ca.pem", settings={"tls.server_name": "localhost"}) as named:
            with pytest.raises(netchan.ClientCertRequiredError):
                named.connect(addr)


def test_asyncio_endpoint_over_mutual_tls(certs: Path) -> None:
    async def main() -> None:
        with server(certs) as srv:
            addr = srv.listen("tls://127.0.0.1:0")
            async with netchan.aio.Endpoint(
                "client",
                tls_ca=certs / "ca.pem",
                tls_cert=certs / "client.pem",
                tls_key=certs / "client-key.pem",
            ) as c:
                await c.connect(addr)
                assert await c.request("echo", b"aio", timeout=WATCHDOG) == b"aio"

    asyncio.run(asyncio.wait_for(main(), WATCHDOG * 2))


def test_a_server_from_another_ca_is_untrusted(certs: Path, tmp_path: Path) -> None:
    cli = os.environ.get("NETCHAN_CLI", "netchan")
    subprocess.run([cli, "cert", "other", "--dir", str(tmp_path)], check=True, capture_output=True, timeout=30)
    with netchan.Endpoint(
        "other-server", tls_cert=tmp_path / "other.pem", tls_key=tmp_path / "other-key.pem"
    ) as srv:
        addr = srv.listen("tls://127.0.0.1:0")
        with netchan.Endpoint("client", tls_ca=certs / "ca.pem") as c:
            with pytest.raises(netchan.CertUntrustedError):
                c.connect(addr)


def test_bad_tls_options_are_errors_that_name_them(certs: Path) -> None:
    with pytest.raises(netchan.InvalidArgumentError) as e:
        netchan.Endpoint("x", tls_cert="/nonexistent/cert.pem", tls_key="/nonexistent/key.pem")
    assert "/nonexistent/cert.pem" in str(e.value)
    with pytest.raises(netchan.InvalidArgumentError) as e:
        netchan.Endpoint("x", tls_client_auth="sometimes")
    assert "tls.client_auth" in str(e.value)
    with pytest.raises(netchan.InvalidArgumentError):
        netchan.Endpoint("x", settings={"no.such.setting": 1})
    with pytest.raises(TypeError):
        netchan.Endpoint("x", tls_ca=42)  # type: ignore[arg-type]
    with netchan.Endpoint("plain") as ep:
        with pytest.raises(netchan.InvalidArgumentError) as e:
            ep.listen("tls://127.0.0.1:0")
        assert "tls.cert" in str(e.value)


def test_plaintext_beyond_this_host_needs_insecure() -> None:
    with netchan.Endpoint("plain") as ep:
        with pytest.raises(netchan.PlaintextRefusedError) as e:
            ep.listen("tcp://0.0.0.0:0")
        assert "insecure" in str(e.value) and isinstance(e.value, ConnectionError)
    with netchan.Endpoint("open", insecure=True) as ep:
        assert ep.listen("tcp://0.0.0.0:0").startswith("tcp://0.0.0.0:")
    with netchan.Endpoint("open2", settings={"insecure": True}) as ep:
        ep.listen("tcp://0.0.0.0:0")
    # Any mapping, as the stubs type it; anything else is named.
    with netchan.Endpoint("open3", settings=types.MappingProxyType({"insecure": True})) as ep:
        ep.listen("tcp://0.0.0.0:0")
    with pytest.raises(netchan.InvalidArgumentError) as e:
        netchan.Endpoint("bad", settings=[("insecure", True)])  # type: ignore[arg-type]
    assert "mapping" in str(e.value)


def test_access_rules_change_at_run_time(tmp_path: Path) -> None:
    # Over loopback TCP without keys a peer is "anonymous" (docs/SECURITY.md).
    with netchan.Endpoint("acl-server") as srv, netchan.Endpoint("acl-client") as c:
        srv.serve("echo/*", lambda r: r.payload)
        events = srv.events()
        c.connect(srv.listen("tcp://127.0.0.1:0"))
        srv.set_acl("allow anonymous request echo/public\n")
        assert c.request("echo/public", b"hi", timeout=WATCHDOG) == b"hi"
        with pytest.raises(PermissionError) as e:
            c.request("echo/secret", b"hi", timeout=WATCHDOG)
        assert isinstance(e.value, netchan.PermissionDeniedError)
        denied = next(ev for ev in iter(lambda: events.recv(timeout=WATCHDOG), None) if ev.kind == "denied")
        assert (denied.peer, denied.identity, denied.action, denied.path) == (
            "acl-client",
            "anonymous",
            "request",
            "echo/secret",
        )
        assert srv.stats()["total"]["denied"] == 1
        # A rules file, read again by reload_keys(); a bad one is an error
        # naming the line, and the rules in use stay.
        rules = tmp_path / "rules"
        rules.write_text("allow anonymous request echo/*\n")
        srv.set_acl(rules)
        assert c.request("echo/secret", b"ok", timeout=WATCHDOG) == b"ok"
        rules.write_text("allow anonymous shout **\n")
        with pytest.raises(netchan.InvalidArgumentError) as bad:
            srv.reload_keys()
        assert "line 1" in str(bad.value)
        assert c.request("echo/secret", b"still", timeout=WATCHDOG) == b"still"
        srv.set_acl(None)
        with pytest.raises(TypeError):
            srv.set_acl(42)  # type: ignore[arg-type]
        assert srv.failed_attempts() == []


def test_tls_and_shared_keys_are_replaced_at_run_time(certs: Path, tmp_path: Path) -> None:
    # Named as its certificate was issued: peers accept only that name.
    with netchan.Endpoint("server") as srv:
        with pytest.raises(netchan.Error):
            srv.listen("tls://127.0.0.1:0")  # no TLS settings yet
        srv.set_tls(cert=certs / "server.pem", key=(certs / "server-key.pem").read_bytes())
        addr = srv.listen("tls://127.0.0.1:0")
        with netchan.Endpoint("c1", tls_ca=certs / "ca.pem") as c:
            assert c.connect(addr).identity == "cert:server"
        # A certificate that is not there: refused, named; the settings stay.
        with pytest.raises(netchan.InvalidArgumentError, match="nope.pem"):
            srv.set_tls(cert=tmp_path / "nope.pem", key=certs / "server-key.pem")
        with netchan.Endpoint("c2", tls_ca=certs / "ca.pem") as c:
            c.connect(addr)
        srv.set_tls()  # removed: a new tls:// listener is refused
        with pytest.raises(netchan.Error):
            srv.listen("tls://127.0.0.1:0")
    keys = tmp_path / "app.keys"
    cli = os.environ.get("NETCHAN_CLI", "netchan")
    subprocess.run([cli, "keygen", "rt1", "--out", str(keys)], check=True, capture_output=True, timeout=30)
    with netchan.Endpoint("psk-server") as srv:
        srv.set_shared_keys(keys)
        addr = srv.listen("tcp://127.0.0.1:0")
        with netchan.Endpoint("plain") as plain:
            with pytest.raises(netchan.Error):
                plain.connect(addr)
        with netchan.Endpoint("keyed", settings={"psk": str(keys)}) as keyed:
            assert keyed.connect(addr).identity == "key:rt1"
        with pytest.raises(netchan.InvalidArgumentError):
            srv.set_shared_keys(tmp_path / "missing.keys")
        srv.set_shared_keys(None)
        with netchan.Endpoint("plain2") as plain:
            plain.connect(addr)
