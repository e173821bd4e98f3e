"""The sync API over TCP and Unix sockets."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import List, Optional, Tuple

import pytest

import netchan

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
        got = [sub.recv(timeout=5) for _ in range(3)]
        assert [(m.path, m.payload, m.sender) for m in got if m] == [
            ("sensors/kitchen/temp", b"21.5", "pub"),
            ("sensors/hall/temp", b"19.0", "pub"),
            ("sensors/attic/temp", b"17.0", "pub"),
        ]
        assert sub.recv(timeout=0.05) is None
        assert sub.try_recv() is None


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
        msgs += sub.recv_many(max=10, timeout=5)
    assert msgs[0].payload == big and len(msgs[0]) == len(big)
    assert [m.payload for m in msgs[1:]] == [b"a", b"b", b"c"]


def test_bad_payload_type_is_a_type_error(pair: Pair) -> None:
    _, client, _ = pair
    with pytest.raises(TypeError):
        client.publish("x", "text is not bytes")  # type: ignore[arg-type]


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
        assert done.wait(10)
    assert got == [b"%d" % i for i in range(50)]
    assert threads == {"netchan-sub cb/*"}
    rec = [r for r in caplog.records if r.name == "netchan" and r.exc_info]
    assert rec and "callback failed on purpose" in str(rec[0].exc_info[1])
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
    assert closed.wait(10)
    assert server.closed


def test_request_reply_with_handler(pair: Pair) -> None:
    server, client, _ = pair
    seen: List[Tuple[str, str, bool]] = []

    def handler(req: netchan.Request) -> bytes:
        seen.append((req.path, req.sender, 0 < req.remaining <= 5))
        return req.payload.upper()

    server.serve("echo/*", handler, threads=2)
    assert client.wait_for_servers("echo/a")
    assert client.request("echo/a", b"hi") == b"HI"
    assert client.request("echo/b", timeout=2.0) == b""
    assert seen[0] == ("echo/a", "client", True)


def test_handler_return_types_and_errors(pair: Pair, caplog: pytest.LogCaptureFixture) -> None:
    server, client, _ = pair

    def handler(req: netchan.Request) -> object:
        kind = req.payload
        if kind == b"str":
            return "text"
        if kind == b"none":
            return None
        if kind == b"code":
            raise netchan.InvalidArgumentError("bad input")
        if kind == b"int":
            return 42
        raise KeyError("oops")

    server.serve("h", handler)
    assert client.wait_for_servers("h")
    assert client.request("h", b"str") == b"text"
    assert client.request("h", b"none") == b""
    with pytest.raises(netchan.InvalidArgumentError) as e1:
        client.request("h", b"code")
    assert e1.value.code == "INVALID_ARGUMENT" and e1.value.detail == "bad input"
    with caplog.at_level(logging.ERROR, logger="netchan"):
        with pytest.raises(netchan.HandlerError) as e2:
            client.request("h", b"raise")
        with pytest.raises(RuntimeError) as e3:  # HandlerError is a RuntimeError
            client.request("h", b"int")
    assert e2.value.code == "HANDLER_ERROR" and "KeyError" in e2.value.detail
    assert "TypeError" in str(e3.value)
    assert any(r.exc_info for r in caplog.records if r.name == "netchan")


def test_pull_service_reply_fail_and_timeout(pair: Pair) -> None:
    server, client, _ = pair
    svc = server.serve("pull/*")
    assert client.wait_for_servers("pull/x")
    results: List[object] = []

    def call(payload: bytes, timeout: float) -> None:
        try:
            results.append(client.request("pull/x", payload, timeout=timeout))
        except netchan.Error as e:
            results.append(e)

    t = threading.Thread(target=call, args=(b"one", 5.0))
    t.start()
    req = svc.recv(timeout=5)
    assert req is not None and req.payload == b"one" and not req.answered
    req.reply(b"ok")
    assert req.answered
    with pytest.raises(RuntimeError):
        req.reply(b"twice")
    t.join()
    t = threading.Thread(target=call, args=(b"two", 5.0))
    t.start()
    req = svc.recv(timeout=5)
    assert req is not None
    req.fail("no such user", "UNKNOWN_PEER")
    t.join()
    with pytest.raises(ValueError):
        req.fail("x", "NOT_A_CODE")
    assert results[0] == b"ok"
    err = results[1]
    assert isinstance(err, netchan.UnknownPeerError) and isinstance(err, LookupError)
    # Nobody answers: the caller times out, the server sees the cancel.
    with pytest.raises(TimeoutError) as e:
        client.request("pull/x", b"slow", timeout=0.2)
    assert e.value.code == "TIMEOUT"  # type: ignore[attr-defined]
    req = svc.recv(timeout=5)
    assert req is not None and req.payload == b"slow"
    for _ in range(100):
        if req.cancelled:
            break
        threading.Event().wait(0.02)
    assert req.cancelled
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
    with netchan.Endpoint() as other:
        with pytest.raises(ConnectionRefusedError) as cr:
            other.connect("tcp://127.0.0.1:1")
        assert cr.value.code == "CONNECT_REFUSED"  # type: ignore[attr-defined]
    with pytest.raises(netchan.AddressInUseError):
        if bound.startswith("tcp"):
            server.listen(bound)
        else:
            raise netchan.AddressInUseError("unix")
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
        assert str(e) == f"{name}: detail"
        import pickle

        back = pickle.loads(pickle.dumps(e))
        assert type(back) is cls and back.detail == "detail"
    assert issubclass(netchan.TimeoutError, TimeoutError)
    assert issubclass(netchan.PeerLostError, ConnectionError)


def test_ping_peers_stats_and_discovery(pair: Pair) -> None:
    server, client, _ = pair
    assert client.ping("server") > 0
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
    for _ in range(200):
        if server.publishers("d/**"):
            break
        threading.Event().wait(0.01)
    assert server.publishers("d/**") == ["client"]
    decl.close()
    client.publish("d/x", b"12345")
    assert sub.recv(timeout=5) is not None
    st = client.stats()
    assert st["name"] == "client" and st["total"]["msgs_out"] >= 1
    assert st["peers"][0]["name"] == "server" and st["peers"][0]["rtt"] is not None
    sst = server.stats()
    assert sst["subscriptions"][0]["pattern"] == "d/**" and sst["subscriptions"][0]["delivered"] == 1
    assert not client.wait_for_servers("nobody", timeout=0.05)
    svc.close()


def test_events_report_peers_coming_and_going(listen_addr: str) -> None:
    with netchan.Endpoint("watcher") as w:
        events = w.events()
        bound = w.listen(listen_addr)
        other = netchan.Endpoint("visitor")
        other.connect(bound)
        up = events.recv(timeout=5)
        assert up is not None and up.kind == "peer_up" and up.peer == "visitor"
        other.close()
        down = events.recv(timeout=5)
        assert down is not None and down.kind == "peer_down" and down.code == "CLOSED"
    assert list(events) == []  # ends with the endpoint


def test_msgpack_helpers_are_plain_msgpack(pair: Pair) -> None:
    server, client, _ = pair
    value = {"temp": 21.5, "ok": True, "tags": ["a", "b"], "raw": b"\x00\x01", "n": -3, "none": None}
    assert netchan.pack({"a": 1}) == b"\x81\xa1a\x01"
    assert netchan.pack([1, "x", None]) == b"\x93\x01\xa1x\xc0"
    assert netchan.unpack(netchan.pack(value)) == value
    assert netchan.unpack(netchan.pack((1, 2))) == [1, 2]
    assert netchan.unpack(netchan.pack(2**64 - 1)) == 2**64 - 1
    with pytest.raises(OverflowError):
        netchan.pack(2**64)
    with pytest.raises(TypeError):
        netchan.pack(object())
    for bad in (b"\x92\x01", b"\xc1", b"\xdd\xff\xff\xff\xff", b"\x01\x02", b"\xd4\x01\x02", b"\x91" * 1000):
        with pytest.raises(ValueError):
            netchan.unpack(bad)
    sub = server.subscribe("obj")
    server.serve("obj/double", lambda req: req.reply_obj({"x": req.obj()["x"] * 2}))
    assert client.wait_for_subscribers("obj") and client.wait_for_servers("obj/double")
    client.publish_obj("obj", value)
    msg = sub.recv(timeout=5)
    assert msg is not None and msg.obj() == value
    assert netchan.unpack(client.request("obj/double", netchan.pack({"x": 21}))) == {"x": 42}


def test_try_publish_and_overflow_policy(pair: Pair) -> None:
    server, client, _ = pair
    sub = server.subscribe("q", capacity=2, overflow="drop_oldest")
    assert client.wait_for_subscribers("q")
    client.try_publish("q", b"x")
    local = server.subscribe("local", capacity=1, overflow="drop_newest")
    for i in range(5):
        server.publish("local", b"%d" % i)
    assert local.recv(timeout=5) is not None and local.dropped == 4
    assert sub.recv(timeout=5) is not None
    with pytest.raises(netchan.InvalidArgumentError):
        server.subscribe("z", overflow="sometimes")


def test_blocking_calls_release_the_gil(pair: Pair) -> None:
    server, client, _ = pair
    sub = server.subscribe("gil")
    counted = []

    def spin() -> None:
        n = 0
        while n < 200_000:
            n += 1
        counted.append(n)
        client.publish("gil", b"done")

    assert client.wait_for_subscribers("gil")
    t = threading.Thread(target=spin)
    t.start()
    msg = sub.recv(timeout=30)  # blocks; the spinning thread must progress
    t.join()
    assert msg is not None and counted == [200_000]


def test_logs_reach_python_logging(listen_addr: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="netchan"):
        netchan.refresh_log_level()
        with netchan.Endpoint("logger") as ep:
            ep.listen(listen_addr)
            for _ in range(300):
                if any("listening" in r.getMessage() for r in caplog.records):
                    break
                threading.Event().wait(0.01)
    assert any(r.name == "netchan" and "listening" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("busy_poll_us", [0, 100])
def test_blocked_receivers_share_a_feed_without_loss(pair: Pair, busy_poll_us: int) -> None:
    # One blocked thread polls the subscription itself, the others wait for
    # what it deposits; a poller that times out hands over. Every message
    # reaches exactly one receiver, with or without busy polling.
    server, client, _ = pair
    previous = netchan.set_busy_poll(busy_poll_us)
    try:
        sub = server.subscribe("share")
        assert client.wait_for_subscribers("share")
        got: List[bytes] = []
        lock = threading.Lock()

        def receive() -> None:
            while True:
                msg = sub.recv(timeout=0.05)
                if msg is None:
                    continue
                if msg.payload == b"end":
                    return
                with lock:
                    got.append(msg.payload)

        threads = [threading.Thread(target=receive) for _ in range(4)]
        for t in threads:
            t.start()
        for i in range(2000):
            client.publish("share", b"%d" % i)
            if i % 500 == 0:
                threading.Event().wait(0.12)  # let pollers time out and hand over
        for _ in threads:
            client.publish("share", b"end")
        for t in threads:
            t.join(30)
            assert not t.is_alive()
        assert sorted(got, key=int) == [b"%d" % i for i in range(2000)]
    finally:
        netchan.set_busy_poll(previous)


def test_busy_poll_setting_and_parked_requests(pair: Pair) -> None:
    server, client, _ = pair
    assert netchan.set_busy_poll(0) == 100  # the documented default
    for bad in (-1, 1_000_001):
        with pytest.raises(netchan.InvalidArgumentError) as e:
            netchan.set_busy_poll(bad)
        assert e.value.code == "INVALID_ARGUMENT"
    try:
        server.serve("slow", lambda req: (threading.Event().wait(0.05), req.payload)[1])
        assert client.wait_for_servers("slow")
        assert client.request("slow", b"parked", timeout=5) == b"parked"
        with pytest.raises(netchan.TimeoutError):
            client.request("slow", b"late", timeout=0.01)
    finally:
        assert netchan.set_busy_poll(100) == 0


def test_a_sync_poller_hands_the_feed_to_asyncio(pair: Pair) -> None:
    # A thread blocked in recv polls the subscription; an asyncio receiver
    # arriving meanwhile is served by the poller's deposit, or by a runtime
    # task once the poller gives up.
    server, client, _ = pair
    sub = server.subscribe("mixed")
    assert client.wait_for_subscribers("mixed")
    waited: List[Optional[netchan.Message]] = []
    t = threading.Thread(target=lambda: waited.append(sub.recv(timeout=0.3)))
    t.start()
    threading.Event().wait(0.05)  # the thread is polling now

    async def main() -> bytes:
        async def later() -> None:
            await asyncio.sleep(0.6)  # after the blocked thread has given up
            client.publish("mixed", b"for asyncio")

        task = asyncio.ensure_future(later())
        msg = await asyncio.wait_for(sub.__anext__(), 10)
        await task
        return msg.payload

    assert asyncio.run(main()) == b"for asyncio"
    t.join()
    assert waited == [None]
