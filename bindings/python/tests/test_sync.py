"""The sync API over TCP and Unix sockets."""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Callable, Dict, List, Optional, Tuple, Type

import pytest

import netchan

from conftest import (
    PY,
    WATCHDOG,
    no_time_slicing,
    python_env,
    start_in_blocking_call,
    wait_until,
    wait_until_async,
)

Pair = Tuple[netchan.Endpoint, netchan.Endpoint, str]


def test_publish_reaches_a_remote_subscriber(listen_addr: str) -> None:
    with netchan.Endpoint("sub") as s, netchan.Endpoint("pub") as p:
        sub = s.subscribe("sensors/*/temp")
        bound = s.listen(listen_addr)
        assert bound.startswith(listen_addr.split(":")[0])
        p.connect(bound)
        assert p.wait_for_subscribers("sensors/kitchen/temp", timeout=5)
        p.publish("sensors/kitchen/temp", b"21.5")
        p.publish("sensors/hall/temp", bytearray(b"19.0"))
        p.publish("sensors/attic/temp", memoryview(b"xx17.0")[2:])
        p.publish("sensors/kitchen/humidity", b"not for us")
        p.publish("sensors/end/temp", b"")  # after the one that must not arrive
        got = [sub.recv(timeout=WATCHDOG) for _ in range(4)]
        assert [(m.path, m.payload, m.sender) if m is not None else None for m in got] == [
            ("sensors/kitchen/temp", b"21.5", "pub"),
            ("sensors/hall/temp", b"19.0", "pub"),
            ("sensors/attic/temp", b"17.0", "pub"),
            ("sensors/end/temp", b"", "pub"),
        ]
        assert all(m is not None and type(m.payload) is bytes for m in got)
        assert sub.try_recv() is None


def test_star_matches_one_segment_and_double_star_any_number(pair: Pair) -> None:
    server, client, _ = pair
    one = server.subscribe("a/*/c")
    many = server.subscribe("a/**")
    # Only `many` matches a/b: once the client knows of it, it knows of both
    # (declarations arrive in order).
    assert client.wait_for_subscribers("a/b")
    paths = ["a/b/c", "a/b/x/c", "a/c", "a/b", "a/b/c/d", "a/end/c"]
    for path in paths:
        client.publish(path, path.encode())

    def until_end(sub: netchan.Subscription) -> List[str]:
        got: List[str] = []
        while not got or got[-1] != "a/end/c":
            m = sub.recv(timeout=WATCHDOG)
            assert m is not None, got
            got.append(m.path)
        return got

    assert until_end(one) == ["a/b/c", "a/end/c"]
    assert until_end(many) == paths


def test_iteration_ends_when_the_subscription_closes(pair: Pair) -> None:
    server, client, _ = pair
    sub = server.subscribe("n/**")
    assert client.wait_for_subscribers("n/x")
    for i in range(100):
        client.publish("n/x", b"%d" % i)
    got: List[bytes] = []
    for msg in sub:
        got.append(msg.payload)
        if len(got) == 100:
            sub.close()
    assert got == [b"%d" % i for i in range(100)]
    with pytest.raises(netchan.ClosedError):
        sub.recv()


def test_recv_many_and_large_payloads(pair: Pair) -> None:
    server, client, _ = pair
    sub = server.subscribe("big")
    assert client.wait_for_subscribers("big")
    big = bytes(range(256)) * 1024  # 256 KiB: shared with Python, not copied
    client.publish("big", big)
    n = client.publish_many("big", [b"a", bytearray(b"b"), memoryview(b"c")])
    assert n == 3
    msgs: List[netchan.Message] = []
    while len(msgs) < 4:
        msgs += sub.recv_many(max=10, timeout=WATCHDOG)
    assert msgs[0].payload == big and len(msgs[0]) == len(big)
    assert [m.payload for m in msgs[1:]] == [b"a", b"b", b"c"]


def test_an_async_callback_given_to_the_sync_api_is_a_type_error(pair: Pair, caplog: pytest.LogCaptureFixture) -> None:
    server, client, _ = pair

    async def on_message(msg: netchan.Message) -> None:
        pass

    async def handler(req: netchan.Request) -> bytes:
        return b""

    with pytest.raises(TypeError, match="netchan.aio"):
        server.subscribe("a/*", on_message)
    with pytest.raises(TypeError, match="netchan.aio"):
        server.serve("a/*", handler)
    assert server.subscribers("a/**") == [] and server.servers("a/**") == []  # nothing was declared
    # A plain function that returns a coroutine is caught at its first message.
    got = threading.Event()

    def sneaky(msg: netchan.Message) -> object:
        got.set()
        return on_message(msg)

    server.subscribe("b/*", sneaky)
    assert client.wait_for_subscribers("b/x")
    with caplog.at_level(logging.ERROR, logger="netchan"):
        client.publish("b/x", b"1")
        assert got.wait(WATCHDOG)
        wait_until(lambda: any("netchan.aio" in r.getMessage() or "netchan.aio" in str(r.exc_info) for r in caplog.records), "the error to be logged")


def test_bad_payload_type_is_a_type_error(pair: Pair) -> None:
    _, client, _ = pair
    for bad in (42, None, ["a"], 1.5):
        with pytest.raises(TypeError, match="bytes, bytearray, memoryview or str"):
            client.publish("x", bad)  # type: ignore[arg-type]
    with pytest.raises(UnicodeEncodeError):
        client.publish("x", "lone \ud800 surrogate")


def test_wait_for_subscribers_and_servers_before_the_first_message(pair: Pair) -> None:
    # The README's answer to "my first message after connect() was lost":
    # wait until the peer's subscription (or service) is known here.
    server, client, _ = pair
    assert client.wait_for_subscribers("first/x", timeout=0.05) is False
    assert client.wait_for_servers("first/q", timeout=0.05) is False
    sub = server.subscribe("first/*")
    server.serve("first/*", lambda req: b"ok")
    assert client.wait_for_subscribers("first/x", timeout=WATCHDOG) is True
    assert client.wait_for_servers("first/q", timeout=WATCHDOG) is True
    client.publish("first/x", b"1")
    m = sub.recv(timeout=WATCHDOG)
    assert m is not None and m.payload == b"1"
    assert client.request("first/q", b"", timeout=WATCHDOG) == b"ok"


def test_str_payloads_go_as_utf8_everywhere(pair: Pair) -> None:
    # A str is a payload wherever bytes are (publish, request, reply, stream
    # send), as a handler's str reply already was: sent as UTF-8.
    server, client, _ = pair
    sub = server.subscribe("s/**")
    server.serve("echo", lambda req: req.payload)

    def echo(req: netchan.StreamRequest, st: netchan.Stream) -> None:
        st.send(req.payload)
        for c in st:
            st.send(c)

    server.serve_stream("st", echo)
    assert client.wait_for_subscribers("s/x") and client.wait_for_servers("echo")
    client.publish("s/x", "héllo")
    client.try_publish("s/x", "")
    assert client.publish_many("s/x", ["a", b"b"]) == 2
    got = [sub.recv(timeout=WATCHDOG) for _ in range(4)]
    assert [m.payload if m is not None else None for m in got] == ["héllo".encode(), b"", b"a", b"b"]
    assert client.request("echo", "ünïcode") == "ünïcode".encode()
    with client.open_stream("st", "first", wait_for_responder=True, open_timeout=WATCHDOG) as st:
        st.send("second", timeout=WATCHDOG)
        st.finish()
        assert list(st) == [b"first", b"second"]


def test_every_documented_option_is_accepted(listen_addr: str) -> None:
    # The options the README lists, each set to a valid value other than its
    # default; max_frame_size is also checked to take effect.
    options = dict(
        max_frame_size=65536, heartbeat_interval=2.5, connect_timeout=4.0, handshake_timeout=4.0,
        send_buffer=1 << 20, send_timeout=4.0, ping_timeout=4.0, service_queue=32, max_connections=16,
        max_pending_handshakes=8, max_declarations_per_peer=1000, subscribe_capacity=64, subscribe_max_bytes=1 << 20,
        busy_poll=0.00005, stream_window=65536,
    )
    for overflow in ("block", "drop_oldest", "drop_newest", "disconnect"):
        # A path of its own each time: close() returns before the listener is
        # gone (the core drops it from its accept task), so the same Unix path
        # may still be taken right after.
        addr = listen_addr if listen_addr.startswith("tcp") else f"{listen_addr}.{overflow}"
        with netchan.Endpoint("opts", **options, subscribe_overflow=overflow) as s, netchan.Endpoint("other") as c:  # type: ignore[arg-type]
            s.serve("e", lambda req: req.payload)
            c.connect(s.listen(addr))
            assert c.wait_for_servers("e")
            assert c.request("e", b"x", timeout=WATCHDOG) == b"x"
            with pytest.raises(netchan.MessageTooLargeError) as e:
                c.request("e", bytes(70000), timeout=WATCHDOG)
            assert e.value.code == "MESSAGE_TOO_LARGE" and isinstance(e.value, ValueError)


@pytest.mark.parametrize(
    "options",
    [
        dict(settings={"max_frame_size": "65536"}),
        # A keyword wins over the same setting by name (as in Node and Kotlin).
        dict(max_frame_size=65536, settings={"max_frame_size": "1MiB", "name": "not-kw"}),
    ],
)
def test_settings_by_name_apply_and_keywords_win_over_them(listen_addr: str, options: Dict[str, Any]) -> None:
    with netchan.Endpoint("kw", **options) as s, netchan.Endpoint("other") as c:
        assert s.name == "kw"
        s.serve("e", lambda req: req.payload)
        c.connect(s.listen(listen_addr))
        assert c.wait_for_servers("e")
        assert c.request("e", bytes(60000), timeout=WATCHDOG) == bytes(60000)
        with pytest.raises(netchan.MessageTooLargeError):
            c.request("e", bytes(70000), timeout=WATCHDOG)


def test_serve_queue_bytes_bounds_the_bytes_waiting(pair: Pair) -> None:
    server, client, _ = pair
    # Nothing takes from this service: the first request waits, the second
    # would take the queue past 1000 bytes and is refused at once.
    svc = server.serve("q", queue_bytes=1000)
    assert client.wait_for_servers("q")
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(client.request, "q", bytes(600), WATCHDOG)
        wait_until(lambda: server.stats()["total"]["requests_in"] == 1, "the first request to arrive")
        with pytest.raises(netchan.BufferFullError):
            client.request("q", bytes(600), timeout=WATCHDOG)
        assert server.stats()["total"]["requests_refused"] == 1
        req = svc.recv(timeout=WATCHDOG)
        assert req is not None and len(req.payload) == 600
        req.reply(b"ok")
        assert first.result(WATCHDOG) == b"ok"


def test_callback_runs_in_order_and_survives_exceptions(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    server, client, _ = pair
    got: List[bytes] = []
    done = threading.Event()
    threads = set()

    def on_msg(msg: netchan.Message) -> None:
        threads.add(threading.current_thread().name)
        if msg.payload == b"boom":
            raise RuntimeError("callback failed on purpose")
        got.append(msg.payload)
        if len(got) == 50:
            done.set()

    sub = server.subscribe("cb/*", on_msg)
    assert client.wait_for_subscribers("cb/x")
    with caplog.at_level(logging.ERROR, logger="netchan"):
        for i in range(25):
            client.publish("cb/x", b"%d" % i)
        client.publish("cb/x", b"boom")
        for i in range(25, 50):
            client.publish("cb/x", b"%d" % i)
        assert done.wait(WATCHDOG)
    assert got == [b"%d" % i for i in range(50)]
    assert threads == {"netchan-sub cb/*"}
    rec = [r for r in caplog.records if r.name == "netchan" and r.exc_info]
    assert rec and "callback failed on purpose" in str(rec[0].exc_info[1])  # type: ignore[index]
    sub.close()


def test_close_from_inside_a_callback_does_not_deadlock(pair: Pair) -> None:
    server, client, _ = pair
    closed = threading.Event()

    def on_msg(msg: netchan.Message) -> None:
        server.close()
        closed.set()

    server.subscribe("c", on_msg)
    assert client.wait_for_subscribers("c")
    client.publish("c", b"x")
    assert closed.wait(WATCHDOG)
    assert server.closed


def test_close_from_inside_a_handler_does_not_deadlock(pair: Pair) -> None:
    server, client, _ = pair
    closed = threading.Event()

    def handler(req: netchan.Request) -> bytes:
        server.close()
        closed.set()
        return b"late"

    server.serve("c", handler)
    assert client.wait_for_servers("c")
    with pytest.raises(netchan.PeerLostError):  # the server went away before answering
        client.request("c", b"x", timeout=WATCHDOG)
    assert closed.wait(WATCHDOG)
    assert server.closed


def test_request_reply_with_handler(pair: Pair) -> None:
    server, client, _ = pair
    seen: List[Tuple[str, bytes, str, bool, bool]] = []

    def handler(req: netchan.Request) -> bytes:
        seen.append((req.path, req.payload, req.sender, 0 < req.remaining <= 5, req.cancelled))
        return req.payload.upper()

    server.serve("echo/*", handler, max_concurrent=2)
    assert client.wait_for_servers("echo/a")
    assert client.request("echo/a", b"hi") == b"HI"
    assert client.request("echo/b", timeout=2.0) == b""
    assert seen[0] == ("echo/a", b"hi", "client", True, False)


def test_a_handler_runs_on_threads_of_its_own(pair: Pair) -> None:
    server, client, _ = pair
    n = 3
    # Each handler call waits until n calls are inside the handler at once:
    # the requests succeed only if n threads run it concurrently.
    together = threading.Barrier(n, timeout=WATCHDOG)
    names = set()

    def handler(req: netchan.Request) -> bytes:
        names.add(threading.current_thread().name)
        together.wait()
        return req.payload

    server.serve("par", handler, max_concurrent=n)
    assert client.wait_for_servers("par")
    with ThreadPoolExecutor(n) as pool:
        replies = list(pool.map(lambda i: client.request("par", b"%d" % i, timeout=WATCHDOG), range(n)))
    assert replies == [b"%d" % i for i in range(n)]
    assert names == {f"netchan-serve par #{i}" for i in range(n)}
    with pytest.raises(netchan.InvalidArgumentError):
        server.serve("none", lambda req: b"", max_concurrent=0)


def test_handler_return_types_and_errors(pair: Pair, caplog: pytest.LogCaptureFixture) -> None:
    server, client, _ = pair

    def handler(req: netchan.Request) -> object:
        kind = req.payload
        if kind == b"str":
            return "text"
        if kind == b"none":
            return None
        if kind == b"bytearray":
            return bytearray(b"ba")
        if kind == b"memoryview":
            return memoryview(b"xmv")[1:]
        if kind == b"code":
            raise netchan.InvalidArgumentError("bad input")
        if kind == b"int":
            return 42
        raise KeyError("oops")

    server.serve("h", handler)
    assert client.wait_for_servers("h")
    assert client.request("h", b"str") == b"text"
    assert client.request("h", b"none") == b""
    assert client.request("h", b"bytearray") == b"ba"
    assert client.request("h", b"memoryview") == b"mv"
    with pytest.raises(netchan.InvalidArgumentError) as e1:
        client.request("h", b"code")
    assert e1.value.code == "INVALID_ARGUMENT" and e1.value.detail == "bad input"
    with caplog.at_level(logging.ERROR, logger="netchan"):
        with pytest.raises(netchan.HandlerError) as e2:
            client.request("h", b"raise")
        with pytest.raises(RuntimeError) as e3:  # HandlerError is a RuntimeError
            client.request("h", b"int")
    assert e2.value.code == "HANDLER_ERROR" and e2.value.detail == "KeyError: 'oops'"
    assert "TypeError" in str(e3.value)
    logged = [r for r in caplog.records if r.name == "netchan" and r.exc_info]
    assert [type(r.exc_info[1]) for r in logged] == [KeyError, TypeError]  # type: ignore[index]


def test_pull_service_reply_fail_and_timeout(pair: Pair) -> None:
    server, client, _ = pair
    svc = server.serve("pull/*")
    assert client.wait_for_servers("pull/x")
    results: List[object] = []

    def call(payload: bytes) -> None:
        try:
            results.append(client.request("pull/x", payload, timeout=WATCHDOG))
        except netchan.Error as e:
            results.append(e)

    def answered_by(answer: Callable[[netchan.Request], None], payload: bytes) -> object:
        t = threading.Thread(target=call, args=(payload,))
        t.start()
        req = svc.recv(timeout=WATCHDOG)
        assert req is not None and req.payload == payload and not req.answered
        answer(req)
        assert req.answered
        t.join(WATCHDOG)
        return results.pop()

    def reply_twice(req: netchan.Request) -> None:
        req.reply(b"ok")
        with pytest.raises(netchan.ClosedError):  # as in C and Node
            req.reply(b"twice")

    assert answered_by(reply_twice, b"one") == b"ok"
    err = answered_by(lambda req: req.fail("no such user", "UNKNOWN_PEER"), b"two")
    assert isinstance(err, netchan.UnknownPeerError) and isinstance(err, LookupError)
    assert err.detail == "no such user"
    err = answered_by(lambda req: req.fail("it broke"), b"three")  # the default code
    assert isinstance(err, netchan.HandlerError) and err.code == "HANDLER_ERROR" and err.detail == "it broke"

    def bad_code(r: netchan.Request) -> None:
        with pytest.raises(ValueError):
            r.fail("x", "NOT_A_CODE")
        r.reply(b"after a bad code")

    assert answered_by(bad_code, b"four") == b"after a bad code"
    # Nobody answers: the caller times out, the server sees the cancel.
    with pytest.raises(TimeoutError) as e:
        client.request("pull/x", b"slow", timeout=0.2)
    assert e.value.code == "TIMEOUT"  # type: ignore[attr-defined]
    req = svc.recv(timeout=WATCHDOG)
    assert req is not None and req.payload == b"slow"
    wait_until(lambda: req.cancelled, "the server to see the request cancelled")
    svc.close()
    with pytest.raises(netchan.ClosedError):
        svc.recv()


def test_errors_carry_codes_and_builtin_bases(pair: Pair) -> None:
    server, client, bound = pair
    with pytest.raises(netchan.NoRespondersError) as nr:
        client.request("nobody", b"")
    assert nr.value.code == "NO_RESPONDERS" and isinstance(nr.value, LookupError)
    with pytest.raises(ValueError) as ip:
        client.publish("bad//path", b"")
    assert isinstance(ip.value, netchan.InvalidPathError) and ip.value.code == "INVALID_PATH"
    with pytest.raises(netchan.InvalidAddressError):
        client.connect("http://nope")
    with pytest.raises(netchan.UnknownPeerError):
        client.ping("no-such-peer")
    with pytest.raises(netchan.InvalidArgumentError):
        client.request("x", b"", timeout=-1)
    with pytest.raises(netchan.InvalidArgumentError):
        netchan.Endpoint(send_timeout=0)
    with pytest.raises(TypeError):
        netchan.Endpoint(no_such_option=1)  # type: ignore[call-arg]
    # A bound socket that does not listen refuses connections.
    with socket.socket() as closed_port, netchan.Endpoint() as other:
        closed_port.bind(("127.0.0.1", 0))
        with pytest.raises(ConnectionRefusedError) as cr:
            other.connect("tcp://127.0.0.1:%d" % closed_port.getsockname()[1])
        assert cr.value.code == "CONNECT_REFUSED"  # type: ignore[attr-defined]
    with netchan.Endpoint() as other:
        with pytest.raises(netchan.AddressInUseError) as ai:
            other.listen(bound)  # the server listens there
        assert ai.value.code == "ADDRESS_IN_USE" and isinstance(ai.value, OSError)
    client.close()
    with pytest.raises(netchan.ClosedError):
        client.publish("x", b"")


def test_error_classes_cover_every_core_code() -> None:
    codes = netchan.error_codes()
    assert ("TIMEOUT", 300, "timed out") in codes
    for name, _, _ in codes:
        cls = netchan.error_class(name)
        assert cls is not netchan.Error and cls.code == name
        e = cls("detail")
        assert str(e) == f"{name}: detail" and e.code == name and e.detail == "detail"
        assert isinstance(e, netchan.Error)
        import pickle

        back = pickle.loads(pickle.dumps(e))
        assert type(back) is cls and back.detail == "detail"


# The README's table: code -> (class, built-in it also is).
DOCUMENTED_ERRORS: Dict[str, Tuple[str, Type[BaseException]]] = {
    "INVALID_ARGUMENT": ("InvalidArgumentError", ValueError),
    "INVALID_ADDRESS": ("InvalidAddressError", ValueError),
    "INVALID_PATH": ("InvalidPathError", ValueError),
    "MESSAGE_TOO_LARGE": ("MessageTooLargeError", ValueError),
    "CONNECT_REFUSED": ("ConnectRefusedError", ConnectionRefusedError),
    "PEER_LOST": ("PeerLostError", ConnectionError),
    "UNSUPPORTED_VERSION": ("UnsupportedVersionError", ConnectionError),
    "PROTOCOL_ERROR": ("ProtocolError", ConnectionError),
    "HANDSHAKE_REJECTED": ("HandshakeRejectedError", ConnectionError),
    "NAME_IN_USE": ("NameInUseError", ConnectionError),
    "OVERLOADED": ("OverloadedError", ConnectionError),
    "ADDRESS_IN_USE": ("AddressInUseError", OSError),
    "IO": ("IoError", OSError),
    "UNKNOWN_PEER": ("UnknownPeerError", LookupError),
    "NO_RESPONDERS": ("NoRespondersError", LookupError),
    "TIMEOUT": ("TimeoutError", TimeoutError),
    "BUFFER_FULL": ("BufferFullError", BlockingIOError),
    "HANDLER_ERROR": ("HandlerError", RuntimeError),
    "CLOSED": ("ClosedError", RuntimeError),
    "WOULD_DEADLOCK": ("WouldDeadlockError", RuntimeError),
    "PLAINTEXT_REFUSED": ("PlaintextRefusedError", ConnectionError),
    "TLS_FAILED": ("TlsFailedError", ConnectionError),
    "CERT_UNTRUSTED": ("CertUntrustedError", ConnectionError),
    "CERT_NAME_MISMATCH": ("CertNameMismatchError", ConnectionError),
    "CERT_EXPIRED": ("CertExpiredError", ConnectionError),
    "CLIENT_CERT_REQUIRED": ("ClientCertRequiredError", ConnectionError),
    "PERMISSION_DENIED": ("PermissionDeniedError", PermissionError),
    "SHARED_KEY_REFUSED": ("SharedKeyRefusedError", ConnectionError),
    "RATE_LIMITED": ("RateLimitedError", ConnectionError),
    "INTERNAL": ("InternalError", RuntimeError),
    "CANCELLED": ("CancelledError", Exception),
}


def test_python_error_classes_are_exactly_the_native_code_list() -> None:
    # The core's ErrorCode list (through the native module) and the classes
    # in netchan/_errors.py: a code added, removed or renamed on either side
    # fails here.
    from netchan import _errors

    native = [name for name, _, _ in netchan.error_codes()]
    assert len(native) == len(set(native))
    assert sorted(_errors._BY_CODE) == sorted(native)
    assert sorted(c for c in _errors.__all__ if c != "Error") == sorted(
        _errors._BY_CODE[code].__name__ for code in native
    )


def test_error_classes_subclass_the_documented_builtins() -> None:
    assert {name for name, _, _ in netchan.error_codes()} == set(DOCUMENTED_ERRORS)
    for code, (name, builtin) in DOCUMENTED_ERRORS.items():
        cls = netchan.error_class(code)
        assert cls is getattr(netchan, name) and issubclass(cls, netchan.Error) and issubclass(cls, builtin), code
    assert not issubclass(netchan.CancelledError, asyncio.CancelledError)
    with pytest.raises(TimeoutError):  # `except TimeoutError` catches netchan's
        raise netchan.TimeoutError("late")


def test_ping_peers_stats_and_discovery(pair: Pair) -> None:
    server, client, _ = pair
    rtt = client.ping("server")
    assert isinstance(rtt, float) and 0 < rtt < WATCHDOG  # seconds
    assert [p.name for p in client.peers()] == ["server"]
    assert [(p.name, p.inbound) for p in server.peers()] == [("client", True)]
    sub = server.subscribe("d/**")
    svc = server.serve("s/*")
    decl = client.declare_publisher("d/x")
    assert client.wait_for_subscribers("d/x/y")
    assert client.wait_for_servers("s/1")
    assert client.has_subscribers("d/z") and client.has_servers("s/2")
    assert not client.has_servers("t")
    assert "server" in client.subscribers("d/**")
    assert client.servers("s/*") == ["server"]
    wait_until(lambda: server.publishers("d/**"), "the publisher declaration to arrive")
    assert server.publishers("d/**") == ["client"]
    decl.close()
    wait_until(lambda: not server.publishers("d/**"), "the publisher declaration to be withdrawn")
    client.publish("d/x", b"12345")
    assert sub.recv(timeout=WATCHDOG) is not None
    st = client.stats()
    assert st["name"] == "client" and st["total"]["msgs_out"] >= 1
    assert st["peers"][0]["name"] == "server" and st["peers"][0]["rtt"] is not None
    sst = server.stats()
    assert sst["subscriptions"][0]["pattern"] == "d/**" and sst["subscriptions"][0]["delivered"] == 1
    assert not client.wait_for_servers("nobody", timeout=0.05)
    svc.close()


def test_a_declared_publisher_publishes_on_its_pattern(pair: Pair) -> None:
    server, client, _ = pair
    sub = server.subscribe("p/**")
    assert client.wait_for_subscribers("p/a")
    decl = client.declare_publisher("p/*")
    decl.publish("p/a", b"one")
    decl.try_publish("p/b", b"two")
    with pytest.raises(netchan.InvalidPathError):
        decl.publish("q/a", b"x")  # outside the declared pattern
    got = [sub.recv(timeout=WATCHDOG) for _ in range(2)]
    assert [(m.path, m.payload) for m in got if m is not None] == [("p/a", b"one"), ("p/b", b"two")]
    decl.close()
    with pytest.raises(netchan.ClosedError):
        decl.publish("p/a", b"after close")
    with pytest.raises(netchan.ClosedError):
        decl.try_publish("p/a", b"after close")
    assert sub.recv(timeout=0.05) is None


def test_a_request_can_wait_for_a_responder(pair: Pair) -> None:
    server, client, _ = pair
    with pytest.raises(netchan.NoRespondersError):
        client.request("late/x", b"now", timeout=WATCHDOG)
    with ThreadPoolExecutor(1) as pool:
        reply = pool.submit(client.request, "late/x", b"hi", WATCHDOG, wait_for_responder=True)
        # Still waiting: nobody serves yet.
        with pytest.raises(FutureTimeout):
            reply.result(timeout=0.1)
        server.serve("late/*", lambda req: b"late:" + req.payload)
        assert reply.result(timeout=WATCHDOG) == b"late:hi"


def test_reconnect_now_skips_the_backoff(listen_addr: str) -> None:
    slow = {"reconnect.min_delay": "60s", "reconnect.max_delay": "60s"}
    server = netchan.Endpoint("gone")
    bound = server.listen(listen_addr)
    with netchan.Endpoint("dialler", settings=slow) as client:
        events = client.events()
        client.connect(bound)
        server.close()
        # The first redial is announced 60 s away.
        while True:
            ev = events.recv(timeout=WATCHDOG)
            assert ev is not None, "no reconnecting event"
            if ev.kind == "reconnecting":
                break
        with netchan.Endpoint("gone") as again:
            again.listen(bound)
            assert client.peers() == []
            client.reconnect_now()
            wait_until(lambda: [p.name for p in client.peers()] == ["gone"], "the redial reconnect_now asked for")


def test_events_report_peers_coming_and_going(listen_addr: str) -> None:
    with netchan.Endpoint("watcher") as w:
        events = w.events()
        bound = w.listen(listen_addr)
        other = netchan.Endpoint("visitor")
        other.connect(bound)
        up = events.recv(timeout=WATCHDOG)
        assert up is not None and up.kind == "peer_up" and up.peer == "visitor"
        other.close()
        down = events.recv(timeout=WATCHDOG)
        assert down is not None and down.kind == "peer_down" and down.code == "CLOSED"
    assert list(events) == []  # ends with the endpoint


def test_a_disconnect_subscription_left_unread_has_its_publisher_cut_the_link() -> None:
    with netchan.Endpoint("cut-sub") as s, netchan.Endpoint("cut-pub", send_timeout=0.2) as p:
        slow = s.subscribe("slow", capacity=2, overflow="disconnect")
        events = p.events()
        p.connect(s.listen("tcp://127.0.0.1:0"))
        assert p.wait_for_subscribers("slow", timeout=WATCHDOG)
        # The queue (2) and the link's park (a window, 2) fill; the next
        # publish waits 0.2 s for credit, raises, and the link is cut.
        ok = 0
        with pytest.raises(netchan.BufferFullError):
            while ok <= 4:
                p.publish("slow", str(ok).encode())
                ok += 1
        assert ok == 4
        while True:
            ev = events.recv(timeout=WATCHDOG)
            assert ev is not None
            if ev.kind == "peer_down":
                break
        assert ev.code == "BUFFER_FULL" and "slow consumer" in ev.reason
        # What arrived before the cut is kept, in order.
        assert [slow.recv(timeout=WATCHDOG).payload for _ in range(ok)] == [b"0", b"1", b"2", b"3"]


def _upper_snake(camel: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", camel).upper()


def test_every_core_event_reaches_python_with_all_its_fields() -> None:
    # Built from the core's Event::examples() (one event of every kind, every
    # field set) and the core's Debug text of each: a kind or a field the
    # binding does not map fails here, by name.
    examples = netchan._native._event_examples()
    python_fields = ("peer", "addr", "reason", "code", "detail", "site", "count", "attempt", "delay_ms", "identity", "action", "path", "attempts")
    kinds = []
    for ev, debug in examples:
        variant = re.match(r"\w+", debug).group(0)  # type: ignore[union-attr]
        assert ev.kind == _upper_snake(variant).lower() and ev.kind != "other", (ev, debug)
        kinds.append(ev.kind)
        core = dict(re.findall(r'(\w+): ("(?:[^"\\]|\\.)*"|[^,}]+)', debug))
        seen = set()
        for field, raw in core.items():
            raw = raw.strip()
            if field == "delay":
                assert raw.endswith("ms"), debug
                field, value = "delay_ms", int(raw[:-2])
            elif raw.startswith('"'):
                value = raw[1:-1]
            elif raw.isdigit():
                value = int(raw)
            else:
                value = _upper_snake(raw)  # an ErrorCode variant
            assert field in python_fields, f"core field {field!r} of {variant} has no Python attribute"
            assert getattr(ev, field) == value, (ev, debug, field)
            seen.add(field)
        for field in set(python_fields) - seen:
            assert getattr(ev, field) is None, (ev, field)
    assert len(kinds) == len(set(kinds))
    assert {"reconnecting", "reconnect_abandoned", "suspended", "resumed"} <= set(kinds)
    rec = next(ev for ev, _ in examples if ev.kind == "reconnecting")
    assert (rec.attempt, rec.delay_ms) == (2, 250) and "delay_ms=250" in repr(rec)


def test_msgpack_helpers_are_plain_msgpack(pair: Pair) -> None:
    server, client, _ = pair
    value = {"temp": 21.5, "ok": True, "tags": ["a", "b"], "raw": b"\x00\x01", "n": -3, "none": None}
    assert netchan.pack({"a": 1}) == b"\x81\xa1a\x01"
    assert netchan.pack([1, "x", None]) == b"\x93\x01\xa1x\xc0"
    assert netchan.pack(1.5) == b"\xcb\x3f\xf8\x00\x00\x00\x00\x00\x00"  # float64
    assert netchan.pack(b"\x00") == b"\xc4\x01\x00"  # bin
    assert netchan.unpack(netchan.pack(value)) == value
    assert netchan.unpack(netchan.pack((1, 2))) == [1, 2]
    for edge in (2**64 - 1, -(2**63)):
        assert netchan.unpack(netchan.pack(edge)) == edge
    # Every msgpack error is a netchan error with a code (as in Node), and
    # still the built-in it always was.
    errors: List[netchan.Error] = []
    for too_big in (2**64, -(2**63) - 1):
        with pytest.raises(OverflowError) as oe:
            netchan.pack(too_big)
        errors.append(oe.value)  # type: ignore[arg-type]
    with pytest.raises(TypeError) as te:
        netchan.pack(object())
    errors.append(te.value)  # type: ignore[arg-type]
    deep: List[object] = []
    for _ in range(300):
        deep = [deep]
    with pytest.raises(ValueError) as ve:
        netchan.pack(deep)
    errors.append(ve.value)  # type: ignore[arg-type]
    for bad in (b"\x92\x01", b"\xc1", b"\xdd\xff\xff\xff\xff", b"\x01\x02", b"\xd4\x01\x02", b"\x91" * 1000):
        with pytest.raises(ValueError) as de:
            netchan.unpack(bad)
        errors.append(de.value)  # type: ignore[arg-type]
    with pytest.raises(ValueError) as me:
        netchan.unpack(b"\xa3ab")  # truncated str
    errors.append(me.value)  # type: ignore[arg-type]
    for e in errors:
        assert isinstance(e, netchan.InvalidArgumentError) and e.code == "INVALID_ARGUMENT", repr(e)
        assert "msgpack" in e.detail
    sub = server.subscribe("obj")
    server.serve("obj/double", lambda req: req.reply_obj({"x": req.obj()["x"] * 2}))
    assert client.wait_for_subscribers("obj") and client.wait_for_servers("obj/double")
    client.publish_obj("obj", value)
    msg = sub.recv(timeout=WATCHDOG)
    assert msg is not None and msg.obj() == value and msg.payload == netchan.pack(value)
    assert netchan.unpack(client.request("obj/double", netchan.pack({"x": 21}))) == {"x": 42}


def test_try_publish_and_overflow_policy(pair: Pair) -> None:
    server, client, _ = pair
    sub = server.subscribe("q", capacity=2, overflow="drop_oldest")
    assert client.wait_for_subscribers("q")
    client.try_publish("q", b"x")
    local = server.subscribe("local", capacity=1, overflow="drop_newest")
    for i in range(5):
        server.publish("local", b"%d" % i)
    m = local.recv(timeout=WATCHDOG)
    assert m is not None and m.payload == b"0" and local.dropped == 4
    oldest = server.subscribe("local2", capacity=1, overflow="drop_oldest")
    for i in range(5):
        server.publish("local2", b"%d" % i)
    m = oldest.recv(timeout=WATCHDOG)
    assert m is not None and m.payload == b"4" and oldest.dropped == 4
    assert sub.recv(timeout=WATCHDOG) is not None
    with pytest.raises(netchan.InvalidArgumentError):
        server.subscribe("z", overflow="sometimes")


def test_blocking_calls_release_the_gil(pair: Pair) -> None:
    # With time slicing off, the other thread can run only while this one
    # releases the GIL: if recv kept it, nothing would publish and recv
    # would time out.
    server, client, _ = pair
    sub = server.subscribe("gil")
    assert client.wait_for_subscribers("gil")
    go = threading.Event()

    def publish() -> None:
        assert go.wait(WATCHDOG)
        client.publish("gil", b"from the other thread")

    t = threading.Thread(target=publish)
    with no_time_slicing():
        t.start()
        go.set()
        msg = sub.recv(timeout=WATCHDOG)
    t.join(WATCHDOG)
    assert msg is not None and msg.payload == b"from the other thread"


# The peer stays up until the test closes its stdin: a message published
# right before a process exits with its endpoint open may never be sent.
GIL_PEER = r"""
import sys, netchan
ep = netchan.Endpoint("peer")
ep.connect(sys.argv[1])
assert ep.wait_for_subscribers("held", timeout=30)
ep.ping("holder")
ep.publish("held", b"after a ping")
sys.stdin.read()
"""


def test_network_threads_never_wait_for_the_gil() -> None:
    # This thread keeps the GIL (time slicing off, and a loop that never
    # releases it) until the message is here: everything a peer in another
    # process needs from this one (accept, handshake, declarations, the
    # ping's answer, delivery) has to happen without the GIL.
    with netchan.Endpoint("holder") as ep:
        sub = ep.subscribe("held")
        addr = ep.listen("tcp://127.0.0.1:0")
        p = subprocess.Popen(
            [PY, "-c", GIL_PEER, addr], env=python_env(), stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            msg: Optional[netchan.Message] = None
            deadline = time.monotonic() + WATCHDOG
            with no_time_slicing():
                while msg is None and time.monotonic() < deadline:
                    msg = sub.try_recv()
            assert msg is not None and msg.payload == b"after a ping"
        finally:
            if p.poll() is None and msg is None:
                p.kill()
            _, err = p.communicate(timeout=WATCHDOG)  # closes stdin: the peer ends
        assert p.returncode == 0, err


def test_one_endpoint_is_used_from_many_threads_at_once(pair: Pair) -> None:
    server, client, _ = pair
    server.serve("echo", lambda req: req.payload, max_concurrent=2)
    sub = server.subscribe("t/*")
    assert client.wait_for_servers("echo") and client.wait_for_subscribers("t/x")
    n, each = 8, 50

    def work(i: int) -> None:
        for j in range(each):
            assert client.request("echo", b"%d-%d" % (i, j), timeout=WATCHDOG) == b"%d-%d" % (i, j)
            client.publish("t/%d" % i, b"%d" % j)

    with ThreadPoolExecutor(n) as pool:
        list(pool.map(work, range(n)))
    got: Dict[str, List[bytes]] = {}
    for _ in range(n * each):
        m = sub.recv(timeout=WATCHDOG)
        assert m is not None
        got.setdefault(m.path, []).append(m.payload)
    # Every message arrived, and each thread's in the order it sent them.
    assert got == {"t/%d" % i: [b"%d" % j for j in range(each)] for i in range(n)}


def _listening(caplog: pytest.LogCaptureFixture) -> bool:
    return any(r.name == "netchan" and "listening" in r.getMessage() for r in caplog.records)


def test_logs_reach_python_logging(listen_addr: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="netchan"):
        netchan.refresh_log_level()
        with netchan.Endpoint("logger") as ep:
            ep.listen(listen_addr)
            wait_until(lambda: _listening(caplog), "the core's 'listening' record")


def test_log_level_is_read_at_endpoint_creation_and_on_refresh(
    listen_addr: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The core drops a record below the level it last read, so the record
    # of `listen` appears only if the new level was read before it.
    with caplog.at_level(logging.WARNING, logger="netchan"):
        netchan.refresh_log_level()
        with caplog.at_level(logging.INFO, logger="netchan"):
            with netchan.Endpoint("created") as ep:  # reads INFO
                ep.listen(listen_addr)
                wait_until(lambda: _listening(caplog), "the record of a listen after the endpoint read INFO")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="netchan"):
        netchan.refresh_log_level()
        with netchan.Endpoint("refreshed") as ep:  # reads WARNING
            with caplog.at_level(logging.INFO, logger="netchan"):
                netchan.refresh_log_level()
                # Not the first path again: see test_every_documented_option_is_accepted.
                ep.listen(listen_addr if listen_addr.startswith("tcp") else listen_addr + ".2")
                wait_until(lambda: _listening(caplog), "the record of a listen after refresh_log_level")
    caplog.clear()
    # Without a refresh the new level is still read, later: listen again
    # until a record shows it was.
    with caplog.at_level(logging.WARNING, logger="netchan"):
        netchan.refresh_log_level()
        with netchan.Endpoint("periodic") as ep, caplog.at_level(logging.INFO, logger="netchan"):
            deadline = time.monotonic() + WATCHDOG
            while not _listening(caplog):
                assert time.monotonic() < deadline, "the new level was never read"
                ep.listen("tcp://127.0.0.1:0")
                time.sleep(0.1)


@pytest.mark.parametrize("busy_poll", [0.0, 0.0001])
def test_blocked_receivers_share_a_subscription_without_loss(listen_addr: str, busy_poll: float) -> None:
    # Several threads block on one subscription, each through the core's
    # Blocker with the endpoint's busy poll, and time out now and then. Every
    # message reaches exactly one receiver, with or without busy polling.
    server = netchan.Endpoint("server", busy_poll=busy_poll)
    client = netchan.Endpoint("client")
    client.connect(server.listen(listen_addr))
    try:
        sub = server.subscribe("share")
        assert client.wait_for_subscribers("share")
        got: List[bytes] = []
        lock = threading.Lock()
        timeouts = [0] * 4

        def receive(i: int) -> None:
            while True:
                msg = sub.recv(timeout=0.05)
                if msg is None:
                    with lock:
                        timeouts[i] += 1
                    continue
                if msg.payload == b"end":
                    return
                with lock:
                    got.append(msg.payload)

        threads = [threading.Thread(target=receive, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for batch in range(4):
            for i in range(batch * 500, (batch + 1) * 500):
                client.publish("share", b"%d" % i)
            # Between batches every receiver times out at least once, so the
            # poller gives up and the next batch finds a new one.
            with lock:
                before = list(timeouts)
            wait_until(lambda: all(a > b for a, b in zip(timeouts, before)), "every receiver to time out")
        for _ in threads:
            client.publish("share", b"end")
        for t in threads:
            t.join(WATCHDOG)
            assert not t.is_alive()
        assert sorted(got, key=int) == [b"%d" % i for i in range(2000)]
    finally:
        client.close()
        server.close()


def test_a_blocked_receiver_takes_over_when_the_poller_gives_up(pair: Pair) -> None:
    # Thread A polls the subscription with a short timeout; thread B, blocked
    # without one, waits on A. When A gives up, B must poll in its turn: a
    # message published then reaches B (before the fix B slept on until its
    # own timeout, here never).
    server, client, _ = pair
    sub = server.subscribe("turn")
    assert client.wait_for_subscribers("turn")
    poll_for = 0.5
    while True:
        got: List[Optional[netchan.Message]] = []
        a = start_in_blocking_call(lambda: got.append(sub.recv(timeout=poll_for)))
        b = start_in_blocking_call(lambda: got.append(sub.recv()))
        b_waited_on_a = a.is_alive()
        a.join(WATCHDOG)
        client.publish("turn", b"for b")
        b.join(WATCHDOG)
        assert not b.is_alive(), "the message stayed in the subscription; nobody polled it"
        assert got[0] is None and got[1] is not None and got[1].payload == b"for b"
        if b_waited_on_a:
            break
        assert poll_for < WATCHDOG  # this machine stalled for A's whole poll: again, longer
        poll_for *= 4


def test_busy_poll_is_the_endpoints_core_option(listen_addr: str) -> None:
    # One setting, in the core's Config, default 0 (no binding default).
    with netchan.Endpoint("plain") as plain:
        assert plain.busy_poll == 0.0
    for bad in (-1.0, 1.5, float("nan")):
        with pytest.raises(netchan.InvalidArgumentError) as e:
            netchan.Endpoint(busy_poll=bad)
        assert e.value.code == "INVALID_ARGUMENT"
    for busy_poll in (0.0, 0.0001, 1.0):
        server = netchan.Endpoint("server", busy_poll=busy_poll)
        client = netchan.Endpoint("client", busy_poll=busy_poll)
        try:
            assert server.busy_poll == busy_poll and client.busy_poll == busy_poll
            client.connect(server.listen(listen_addr))
            # A request that has to wait polls, then parks its thread, and
            # the reply wakes it.
            svc = server.serve("slow")
            assert client.wait_for_servers("slow")

            def answer() -> None:
                req = svc.recv(timeout=WATCHDOG)
                assert req is not None
                req.reply(req.payload)

            t = start_in_blocking_call(answer)
            assert client.request("slow", b"parked", timeout=WATCHDOG) == b"parked"
            t.join(WATCHDOG)
            with pytest.raises(netchan.TimeoutError):
                client.request("slow", b"late", timeout=0.01)
        finally:
            client.close()
            server.close()


def test_a_sync_poller_hands_the_feed_to_asyncio(pair: Pair) -> None:
    # A thread blocked in recv polls the subscription; an asyncio receiver
    # that arrives meanwhile waits on the poller. When the poller times out
    # it hands the subscription over to a runtime task, which must then
    # serve the asyncio receiver.
    server, client, _ = pair
    sub = server.subscribe("mixed")
    assert client.wait_for_subscribers("mixed")
    poll_for = 1.0
    while True:
        waited: List[Optional[netchan.Message]] = []
        t = start_in_blocking_call(lambda: waited.append(sub.recv(timeout=poll_for)))

        async def main() -> Tuple[bool, bytes]:
            task = asyncio.ensure_future(sub.__anext__())
            await asyncio.sleep(0)  # the receiver is registered now
            registered_while_polling = t.is_alive()
            await wait_until_async(lambda: not t.is_alive(), "the poller to time out")
            client.publish("mixed", b"for asyncio")
            msg = await asyncio.wait_for(task, WATCHDOG)
            return registered_while_polling, msg.payload

        registered_while_polling, payload = asyncio.run(main())
        assert payload == b"for asyncio" and waited == [None]
        if registered_while_polling:
            break
        # This machine stalled for the whole poll: try again with a longer one.
        assert poll_for < WATCHDOG
        poll_for *= 4


def test_suspend_holds_messages_for_the_dialled_peer_and_resume_delivers_them(pair: Pair) -> None:
    # The core's promise (core/tests/virtual_time.rs,
    # suspend_keeps_state_and_resume_restores_it): suspend closes the links
    # and keeps subscriptions, declarations, the messages published for a
    # dialled peer (held, in order) and the counters; resume dials again and
    # the held messages go first.
    server, client, bound = pair
    to_server = server.subscribe("to-server")
    local = client.subscribe("local")
    svc = server.serve("svc", lambda req: req.payload)
    assert client.wait_for_subscribers("to-server") and client.wait_for_servers("svc")
    events = client.events()
    client.publish("to-server", b"before")
    assert to_server.recv(timeout=WATCHDOG).payload == b"before"  # type: ignore[union-attr]

    client.suspend()
    client.suspend()  # idempotent
    ev = events.recv(timeout=WATCHDOG)
    while ev is not None and ev.kind != "suspended":
        ev = events.recv(timeout=WATCHDOG)
    assert ev is not None and ev.kind == "suspended"
    assert client.peers() == []
    wait_until(lambda: server.peers() == [], "the server to see the link closed")
    msgs_out = client.stats()["total"]["msgs_out"]
    assert msgs_out >= 1  # counters survive
    for i in range(5):
        client.publish("to-server", b"held %d" % i)  # held, not an error
    client.publish("local", b"here")  # local delivery works
    assert local.recv(timeout=WATCHDOG).payload == b"here"  # type: ignore[union-attr]
    with pytest.raises(netchan.NoRespondersError):
        client.request("svc", b"x", timeout=1)
    assert to_server.recv(timeout=0.05) is None  # nothing got through

    client.resume()
    ev = events.recv(timeout=WATCHDOG)
    while ev is not None and ev.kind != "resumed":
        ev = events.recv(timeout=WATCHDOG)
    assert ev is not None and ev.kind == "resumed"
    client.publish("to-server", b"after")
    got = [to_server.recv(timeout=WATCHDOG).payload for _ in range(6)]  # type: ignore[union-attr]
    assert got == [b"held %d" % i for i in range(5)] + [b"after"]
    assert client.wait_for_servers("svc") and client.request("svc", b"y", timeout=WATCHDOG) == b"y"
    assert client.stats()["total"]["msgs_out"] >= msgs_out

    # network_changed drops the link and redials now.
    client.network_changed()
    kinds = []
    while "peer_up" not in kinds:
        ev = events.recv(timeout=WATCHDOG)
        assert ev is not None, kinds
        kinds.append(ev.kind)
    assert "peer_down" in kinds
    assert client.wait_for_servers("svc") and client.request("svc", b"z", timeout=WATCHDOG) == b"z"
    svc.close()
    client.close()
    for call in (client.suspend, client.resume, client.network_changed):
        with pytest.raises(netchan.ClosedError):
            call()
