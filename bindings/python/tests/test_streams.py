"""Bidirectional streams, sync and asyncio, over TCP and Unix sockets.

Each test bounds every wait: a timeout on the call, or the WATCHDOG; handler
threads and tasks end with their endpoints (closed by the fixtures or by
``with``/``async with``)."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator, List, Optional, Tuple

import pytest

import netchan
from netchan import aio

from conftest import WATCHDOG, start_in_blocking_call, wait_until, wait_until_async

Pair = Tuple[netchan.Endpoint, netchan.Endpoint, str]

KIB = 1024
MIB = 1024 * KIB

#: Every byte value, and sizes around the credit rules (empty costs 1).
CHUNKS = [b"", bytes(range(256)), b"\x00" * 3, b"\xff\xfe" * 40000, b"last"]


def echo(req: netchan.StreamRequest, stream: netchan.Stream) -> None:
    """The first payload back, then every message back, then the end."""
    stream.send(req.payload)
    for chunk in stream:
        stream.send(chunk)


def run(coro: "asyncio.Future[None] | object") -> None:
    asyncio.run(asyncio.wait_for(coro, 2 * WATCHDOG))  # type: ignore[arg-type]


def open_pulled(
    client: netchan.Endpoint, svc: netchan.StreamService, path: str, first: bytes = b"", **options: object
) -> Tuple[netchan.Stream, netchan.StreamRequest, netchan.Stream]:
    """(opener's side, request, server's side) of a stream to a pulled
    service: the opener waits in open_stream until the server takes the
    stream, so it opens on a thread of its own."""
    with ThreadPoolExecutor(1) as pool:
        opening = pool.submit(
            client.open_stream, path, first, wait_for_responder=True, open_timeout=WATCHDOG, **options  # type: ignore[arg-type]
        )
        got = svc.recv(timeout=WATCHDOG)
        assert got is not None, "no stream arrived"
        return opening.result(WATCHDOG), got[0], got[1]


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    """An event that handler threads wait on; set at the end, whatever happened."""
    ev = threading.Event()
    try:
        yield ev
    finally:
        ev.set()


# --------------------------------------------------------------- sync


def test_a_stream_echoes_both_ways_byte_exact_and_half_closes(pair: Pair) -> None:
    server, client, _ = pair
    svc = server.serve_stream("echo/*", echo, max_concurrent=2)
    assert svc.pattern == "echo/*"
    s = client.open_stream("echo/1", b"\x00first\xff", wait_for_responder=True, open_timeout=WATCHDOG)
    assert (s.path, s.peer, s.remaining, s.closed) == ("echo/1", "server", None, False)
    for c in CHUNKS:
        s.send(c, timeout=WATCHDOG)
    s.finish()  # half-close: receiving goes on
    s.finish()  # idempotent
    with pytest.raises(netchan.InvalidArgumentError):
        s.send(b"after finish")
    assert s.recv(timeout=WATCHDOG) == b"\x00first\xff"
    assert list(s) == CHUNKS  # iteration ends at the server's end
    assert s.recv(timeout=WATCHDOG) is None  # and the end stays the end
    # Bytes-like payloads, and the server's own list of streams.
    with client.open_stream("echo/2", bytearray(b"ba")) as s2:
        s2.send(memoryview(b"xmv")[1:])
        s2.send(bytearray(b"arr"))
        s2.finish()
        assert list(s2) == [b"ba", b"mv", b"arr"]
    assert s2.closed
    with pytest.raises(netchan.ClosedError):
        s2.recv()
    with pytest.raises(TypeError):
        s.send(42)  # type: ignore[arg-type]
    assert client.stream_servers("echo/**") == ["server"]


def test_sixteen_mib_cross_a_64k_window_while_the_link_serves_others(pair: Pair, gate: threading.Event) -> None:
    """The server reads only after the gate opens: the sender stops at the
    64 KiB window (its send times out, nothing else does), and meanwhile a
    request and another stream on the same link are answered."""
    server, client, _ = pair
    server.serve("ping", lambda req: b"pong")
    server.serve_stream("echo", echo)

    def digest(req: netchan.StreamRequest, stream: netchan.Stream) -> None:
        assert gate.wait(WATCHDOG)
        h, n = hashlib.sha256(), 0
        for chunk in stream:
            h.update(chunk)
            n += len(chunk)
        stream.send(b"%d %s" % (n, h.hexdigest().encode()))

    server.serve_stream("sink", digest, window=64 * KIB)
    assert client.wait_for_servers("ping")
    s = client.open_stream("sink", wait_for_responder=True, open_timeout=WATCHDOG)
    data = (bytes(range(251)) * (16 * MIB // 251 + 1))[: 16 * MIB]
    step = 16 * KIB
    sent = 0
    while True:  # fill the window: the send that would pass it times out
        try:
            s.send(data[sent : sent + step], timeout=0.2)
        except netchan.TimeoutError:
            break
        sent += step
    assert 0 < sent <= 64 * KIB
    # The link is not blocked: a request and another stream get through.
    assert client.request("ping", timeout=WATCHDOG) == b"pong"
    with client.open_stream("echo", b"other", open_timeout=WATCHDOG) as other:
        other.finish()
        assert list(other) == [b"other"]
    gate.set()
    while sent < len(data):
        s.send(data[sent : sent + step], timeout=WATCHDOG)
        sent += step
    s.finish()
    assert s.recv(timeout=WATCHDOG) == b"%d %s" % (len(data), hashlib.sha256(data).hexdigest().encode())
    assert s.recv(timeout=WATCHDOG) is None


def test_a_handler_that_never_reads_blocks_only_its_sender(listen_addr: str, gate: threading.Event) -> None:
    """With the endpoint's stream_window at 64 KiB, a sender to a handler that
    does not read stops there; the rest of the link goes on. When the handler
    returns, its side is finished and the opener's still-open direction is
    cancelled (nobody will read it)."""
    with netchan.Endpoint("server", stream_window=64 * KIB) as server, netchan.Endpoint("client") as client:
        server.serve("ping", lambda req: b"pong")
        server.serve_stream("echo", echo)

        def deaf_handler(req: netchan.StreamRequest, stream: netchan.Stream) -> None:
            assert gate.wait(WATCHDOG)  # and returns without reading

        server.serve_stream("deaf", deaf_handler)
        sub = server.subscribe("news")
        client.connect(server.listen(listen_addr))
        assert client.wait_for_servers("ping") and client.wait_for_subscribers("news")
        deaf = client.open_stream("deaf", wait_for_responder=True, open_timeout=WATCHDOG)
        sent = 0
        while True:
            try:
                deaf.send(bytes(16 * KIB), timeout=0.2)
            except netchan.TimeoutError:
                break
            sent += 16 * KIB
        assert 0 < sent <= 64 * KIB
        assert client.request("ping", timeout=WATCHDOG) == b"pong"
        client.publish("news", b"still flowing")
        m = sub.recv(timeout=WATCHDOG)
        assert m is not None and m.payload == b"still flowing"
        with client.open_stream("echo", b"e", open_timeout=WATCHDOG) as e:
            e.send(b"x")
            e.finish()
            assert list(e) == [b"e", b"x"]
        gate.set()  # the handler returns without reading
        assert deaf.recv(timeout=WATCHDOG) is None  # its side finished...
        with pytest.raises(netchan.CancelledError) as err:  # ...and ours was cancelled
            deaf.send(b"more", timeout=WATCHDOG)
        assert err.value.code == "CANCELLED"
    # Closing the endpoint ends the handler threads.
    wait_until(
        lambda: not [t for t in threading.enumerate() if t.name.startswith("netchan-serve-stream")],
        "the stream handler threads to end",
    )


def test_cancel_and_fail_from_each_side_are_seen_by_the_other(pair: Pair) -> None:
    server, client, _ = pair
    svc = server.serve_stream("pull/*")
    for who in ("client", "server"):
        c, req, s = open_pulled(client, svc, f"pull/{who}")
        assert (req.path, req.payload, req.sender, req.remaining) == (f"pull/{who}", b"", "client", None)
        c.send(b"before")
        assert s.recv(timeout=WATCHDOG) == b"before"
        canceller, other = (c, s) if who == "client" else (s, c)
        canceller.cancel()
        with pytest.raises(netchan.CancelledError) as e:
            other.recv(timeout=WATCHDOG)
        assert e.value.code == "CANCELLED"
        with pytest.raises(netchan.CancelledError):
            other.send(b"x")
        with pytest.raises(netchan.CancelledError):  # and at the side that cancelled
            canceller.recv(timeout=WATCHDOG)
    # fail() ends it with a code and message of the caller's choosing.
    c, _, s = open_pulled(client, svc, "pull/fail")
    s.send(b"partial")
    s.fail("not today", "UNKNOWN_PEER")
    assert c.recv(timeout=WATCHDOG) == b"partial"  # what was sent first, then the error
    with pytest.raises(netchan.UnknownPeerError, match="not today"):
        c.recv(timeout=WATCHDOG)
    with pytest.raises(ValueError):
        s.fail("x", "NO_SUCH_CODE")


def test_handler_errors_end_the_stream_with_their_code(pair: Pair, caplog: pytest.LogCaptureFixture) -> None:
    server, client, _ = pair

    def handler(req: netchan.StreamRequest, stream: netchan.Stream) -> None:
        stream.send(b"hi")
        if req.payload == b"code":
            raise netchan.InvalidArgumentError("bad input")
        raise KeyError("oops")

    server.serve_stream("h", handler)
    with caplog.at_level(logging.ERROR, logger="netchan"):
        for payload, exc, detail in [
            (b"code", netchan.InvalidArgumentError, "bad input"),
            (b"raise", netchan.HandlerError, "KeyError: 'oops'"),
        ]:
            s = client.open_stream("h", payload, wait_for_responder=True, open_timeout=WATCHDOG)
            assert s.recv(timeout=WATCHDOG) == b"hi"
            with pytest.raises(exc) as e:
                s.recv(timeout=WATCHDOG)
            assert detail in e.value.detail
    logged = [r for r in caplog.records if r.name == "netchan" and r.exc_info]
    assert [type(r.exc_info[1]) for r in logged] == [KeyError]  # type: ignore[index]

    async def async_handler(req: netchan.StreamRequest, stream: netchan.Stream) -> None:
        pass

    with pytest.raises(TypeError, match="netchan.aio"):
        server.serve_stream("a", async_handler)


def test_a_deadline_ends_the_stream_with_timeout_at_both_sides(pair: Pair) -> None:
    server, client, _ = pair
    svc = server.serve_stream("slow")
    c, req, s = open_pulled(client, svc, "slow", timeout=0.3)
    assert req.remaining is not None and 0 <= req.remaining <= 0.3
    assert c.remaining is not None and s.remaining is not None
    for side in (c, s):  # no timeout on the call: the stream's deadline ends it
        with pytest.raises(netchan.TimeoutError) as e:
            side.recv()
        assert e.value.code == "TIMEOUT" and "deadline" in e.value.detail


def test_opening_without_a_server(pair: Pair) -> None:
    _, client, _ = pair
    with pytest.raises(netchan.NoRespondersError) as e:
        client.open_stream("nobody")
    assert e.value.code == "NO_RESPONDERS"
    with pytest.raises(netchan.NoRespondersError, match="appeared within"):  # waiting for one, up to open_timeout
        client.open_stream("nobody", wait_for_responder=True, open_timeout=0.1)
    with pytest.raises(netchan.InvalidPathError):
        client.open_stream("bad//path")
    with pytest.raises(netchan.InvalidArgumentError):
        client.open_stream("x", open_timeout=-1.0)


def test_recv_timeout_raises_and_the_stream_goes_on(pair: Pair) -> None:
    server, client, _ = pair
    svc = server.serve_stream("quiet")
    c, _, s = open_pulled(client, svc, "quiet")
    assert svc.recv(timeout=0.01) is None  # a service's recv times out with None
    assert svc.try_recv() is None
    with pytest.raises(netchan.TimeoutError) as e:  # a stream's None is its end
        c.recv(timeout=0.05)
    assert e.value.code == "TIMEOUT"
    s.send(b"late")
    assert c.recv(timeout=WATCHDOG) == b"late"
    with pytest.raises(netchan.InvalidArgumentError):
        c.recv(timeout=-1.0)


def test_letting_go_of_an_unfinished_stream_cancels_it_at_the_other_side(pair: Pair) -> None:
    server, client, _ = pair
    svc = server.serve_stream("pull")

    def open_pair() -> Tuple[netchan.Stream, netchan.Stream]:
        c, _, s = open_pulled(client, svc, "pull")
        return c, s

    # Garbage: the last reference goes (the opener's side, then the server's).
    c, s = open_pair()
    del c
    gc.collect()
    with pytest.raises(netchan.CancelledError):
        s.recv(timeout=WATCHDOG)
    c, s = open_pair()
    del s
    gc.collect()
    with pytest.raises(netchan.CancelledError):
        c.recv(timeout=WATCHDOG)
    # close(), even while another thread waits on the stream.
    c, s = open_pair()
    waiting: List[BaseException] = []

    def wait_on_it() -> None:
        try:
            c.recv(timeout=WATCHDOG)
        except BaseException as e:
            waiting.append(e)

    t = start_in_blocking_call(wait_on_it)
    c.close()
    t.join(WATCHDOG)
    assert not t.is_alive() and isinstance(waiting[0], netchan.CancelledError), waiting
    with pytest.raises(netchan.CancelledError):
        s.recv(timeout=WATCHDOG)
    # A `with` block left by an exception cancels; left normally, it finishes.
    c, s = open_pair()
    with pytest.raises(ZeroDivisionError):
        with c:
            c.send(b"half")
            1 / 0
    assert s.recv(timeout=WATCHDOG) == b"half"
    with pytest.raises(netchan.CancelledError):
        s.recv(timeout=WATCHDOG)
    c, s = open_pair()
    with c:
        c.send(b"whole")
    assert list(s) == [b"whole"]  # the end, not an error
    with pytest.raises(netchan.CancelledError):  # nobody reads the other way any more
        while True:  # (sends that beat the cancel across the link go nowhere)
            s.send(b"reply", timeout=WATCHDOG)
    # A stream both sides finished ends quietly when let go of.
    c, s = open_pair()
    c.finish()
    s.finish()
    assert c.recv(timeout=WATCHDOG) is None and s.recv(timeout=WATCHDOG) is None
    c.close()
    s.close()
    # Closing the service refuses what is still queued.
    svc.close()
    with pytest.raises(netchan.ClosedError):
        svc.recv(timeout=WATCHDOG)
    assert list(svc) == []


def test_a_pulled_service_queues_until_taken_and_threads_bound_handlers(pair: Pair, gate: threading.Event) -> None:
    server, client, _ = pair
    running = []

    def handler(req: netchan.StreamRequest, stream: netchan.Stream) -> None:
        running.append(req.payload)
        assert gate.wait(WATCHDOG)
        stream.send(req.payload)

    svc = server.serve_stream("bounded", handler, max_concurrent=2, queue=1)
    with pytest.raises(netchan.InvalidArgumentError):
        server.serve_stream("x", handler, max_concurrent=0)
    results: List[object] = [None] * 4

    def open_one(i: int) -> None:
        try:
            with client.open_stream("bounded", b"%d" % i, wait_for_responder=True, open_timeout=WATCHDOG) as s:
                s.finish()
                results[i] = list(s)
        except netchan.Error as e:
            results[i] = e

    # One at a time: a stream that arrives while the one before it still
    # waits to be taken would find the queue full.
    threads = []
    for i, (n_running, n_queued) in enumerate([(1, 0), (2, 0), (2, 1)]):
        threads.append(threading.Thread(target=open_one, args=(i,)))
        threads[-1].start()
        wait_until(
            lambda: (len(running), svc.queued) == (n_running, n_queued),
            f"{n_running} streams in handlers, {n_queued} queued",
        )
    # The fourth finds the queue full.
    open_one(3)
    assert isinstance(results[3], netchan.BufferFullError), results[3]
    gate.set()
    for t in threads:
        t.join(WATCHDOG)
    assert sorted(map(str, results[:3])) == ["[b'0']", "[b'1']", "[b'2']"]


# --------------------------------------------------------------- asyncio


def test_aio_stream_echoes_while_sending_and_half_closes(listen_addr: str) -> None:
    threads = set()

    async def handler(req: netchan.StreamRequest, stream: aio.Stream) -> None:
        threads.add(threading.current_thread())
        await stream.send(req.payload)
        async for chunk in stream:
            await stream.send(chunk)

    async def main() -> None:
        async with aio.Endpoint("server") as server, aio.Endpoint("client") as client:
            server.serve_stream("echo", handler)
            await client.connect(await server.listen(listen_addr))
            big = bytes(range(256)) * 4096  # 1 MiB, past the default window with the echo
            async with await client.open_stream("echo", b"first", wait_for_responder=True, window=64 * KIB) as s:
                assert (s.path, s.peer, s.remaining) == ("echo", "server", None)

                async def send_all() -> None:
                    for c in CHUNKS + [big]:
                        await s.send(c)
                    s.finish()

                sending = asyncio.ensure_future(send_all())
                got = [c async for c in s]
                await sending
            assert got == [b"first"] + CHUNKS + [big]
            assert s.closed and s.sync.closed
            assert threads == {threading.current_thread()}  # handlers run on the loop
            assert client.stream_servers("echo") == ["server"]

    run(main())


def test_aio_cancelled_recv_loses_nothing_and_timeouts_raise(listen_addr: str) -> None:
    async def main() -> None:
        async with aio.Endpoint("server") as server, aio.Endpoint("client") as client:
            svc = server.serve_stream("pull")
            await client.connect(await server.listen(listen_addr))
            opening = asyncio.ensure_future(client.open_stream("pull", b"hello", wait_for_responder=True))
            got = await svc.recv(timeout=WATCHDOG)
            assert got is not None
            req, s = got
            c = await opening
            assert req.payload == b"hello" and req.sender == "client"
            for _ in range(3):  # cancelled waits, each with a task left to take the next
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(c.recv(), 0.02)
            with pytest.raises(netchan.TimeoutError):
                await c.recv(timeout=0.02)
            for i in range(5):
                await s.send(b"%d" % i)
            s.finish()
            assert [x async for x in c] == [b"%d" % i for i in range(5)]
            # A send that cannot pass the window times out; nothing else waits.
            assert await svc.recv(timeout=0.01) is None
            with pytest.raises(netchan.TimeoutError):
                while True:
                    await c.send(bytes(256 * KIB), timeout=0.2)
            c.cancel()
            with pytest.raises(netchan.CancelledError):
                while True:  # what arrived before the cancel, then the error
                    assert await s.recv() is not None

    run(main())


def test_aio_errors_cancel_deadline_and_no_responders(listen_addr: str, caplog: pytest.LogCaptureFixture) -> None:
    seen: List[BaseException] = []

    async def handler(req: netchan.StreamRequest, stream: aio.Stream) -> None:
        await stream.send(b"hi")
        if req.payload == b"crash":
            raise ZeroDivisionError("bad math")
        if req.payload == b"code":
            raise netchan.UnknownPeerError("who?")
        try:
            await stream.recv()
        except netchan.CancelledError as e:
            seen.append(e)
            raise

    async def main() -> None:
        async with aio.Endpoint("server") as server, aio.Endpoint("client") as client:
            with pytest.raises(netchan.InvalidArgumentError):
                server.serve_stream("x", handler, max_concurrent=0)
            server.serve_stream("h", handler)
            slow = server.serve_stream("slow")
            await client.connect(await server.listen(listen_addr))
            for payload, exc in [(b"crash", netchan.HandlerError), (b"code", netchan.UnknownPeerError)]:
                s = await client.open_stream("h", payload, wait_for_responder=True)
                assert await s.recv() == b"hi"
                with pytest.raises(exc):
                    await s.recv()
            s = await client.open_stream("h", b"wait")
            assert await s.recv() == b"hi"
            s.cancel()
            await wait_until_async(lambda: seen, "the handler to see the cancel")
            assert isinstance(seen[0], netchan.CancelledError)
            with pytest.raises(netchan.NoRespondersError):
                await client.open_stream("nobody")
            opening = asyncio.ensure_future(client.open_stream("slow", timeout=0.3))
            got = await slow.recv(timeout=WATCHDOG)
            assert got is not None
            c = await opening
            for side in (c, got[1]):
                with pytest.raises(netchan.TimeoutError, match="deadline"):
                    await side.recv()

    with caplog.at_level(logging.ERROR, logger="netchan"):
        run(main())
    logged = [r for r in caplog.records if r.name == "netchan" and r.exc_info]
    assert [type(r.exc_info[1]) for r in logged] == [ZeroDivisionError]  # type: ignore[index]


def test_aio_max_concurrent_bounds_stream_handlers(listen_addr: str) -> None:
    running: List[bytes] = []
    gates: List[asyncio.Event] = []  # made in the loop (Python 3.9 binds it at creation)

    async def handler(req: netchan.StreamRequest, stream: aio.Stream) -> None:
        running.append(req.payload)
        await gates[0].wait()
        await stream.send(req.payload)

    async def main() -> None:
        gates.append(asyncio.Event())
        async with aio.Endpoint("server") as server, aio.Endpoint("client") as client:
            svc = server.serve_stream("b", handler, max_concurrent=2)
            await client.connect(await server.listen(listen_addr))

            async def one(i: int) -> Optional[bytes]:
                async with await client.open_stream("b", b"%d" % i, wait_for_responder=True) as s:
                    s.finish()
                    return await s.recv()

            calls = [asyncio.ensure_future(one(i)) for i in range(3)]
            await wait_until_async(lambda: len(running) == 2 and svc.queued == 1, "two running, one queued")
            gates[0].set()
            assert sorted(await asyncio.gather(*calls)) == [b"0", b"1", b"2"]  # type: ignore[type-var]

    run(main())


def test_aio_dropping_an_unfinished_stream_cancels_it(listen_addr: str) -> None:
    async def main() -> None:
        async with aio.Endpoint("server") as server, aio.Endpoint("client") as client:
            async with server.serve_stream("pull") as svc:
                await client.connect(await server.listen(listen_addr))
                opening = asyncio.ensure_future(client.open_stream("pull", wait_for_responder=True))
                got = await svc.recv(timeout=WATCHDOG)
                assert got is not None
                await opening
                del opening  # the task held the opener's stream: now nothing does
                gc.collect()
                with pytest.raises(netchan.CancelledError):
                    await got[1].recv()
                # An opening whose task is cancelled leaves nothing behind.
                opening = asyncio.ensure_future(client.open_stream("pull"))
                got = await svc.recv(timeout=WATCHDOG)
                assert got is not None
                if not opening.cancel():  # it had finished already: let go of its stream
                    (await opening).close()
                del opening
                gc.collect()
                with pytest.raises(netchan.CancelledError):
                    await got[1].recv(timeout=WATCHDOG)
            with pytest.raises(netchan.ClosedError):
                await svc.recv()
            assert [x async for x in svc] == []

    run(main())
