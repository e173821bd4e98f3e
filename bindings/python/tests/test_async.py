"""The asyncio API (netchan.aio) over TCP and Unix sockets."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import List

import pytest

import netchan
from netchan import aio


def run(coro: "asyncio.Future[None] | object") -> None:
    asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


def test_pubsub_request_and_gather(listen_addr: str) -> None:
    async def main() -> None:
        async with aio.Endpoint("server") as server, aio.Endpoint("client") as client:
            sub = server.subscribe("t/**")
            server.serve("echo/*", lambda req: req.payload)
            bound = await server.listen(listen_addr)
            peer = await client.connect(bound)
            assert peer.name == "server"
            assert await client.wait_for_subscribers("t/x") and await client.wait_for_servers("echo/1")
            for i in range(300):
                await client.publish("t/x", b"%d" % i)
            assert await client.publish_many("t/y", [b"a", b"b"]) == 2
            await client.publish_obj("t/o", {"k": [1, 2]})
            got = []
            async for msg in sub:
                got.append(msg)
                if len(got) == 303:
                    break
            assert [m.payload for m in got[:300]] == [b"%d" % i for i in range(300)]
            assert got[-1].obj() == {"k": [1, 2]}
            replies = await asyncio.gather(*(client.request("echo/%d" % i, b"r%d" % i) for i in range(500)))
            assert replies == [b"r%d" % i for i in range(500)]
            assert await client.ping("server") > 0
            assert [p.name for p in client.peers()] == ["server"]
            assert client.stats()["total"]["requests_out"] >= 500
            assert await sub.recv_async(timeout=0.05) is None
    run(main())


def test_async_handler_errors_and_codes(listen_addr: str) -> None:
    async def handler(req: netchan.Request) -> bytes:
        await asyncio.sleep(0)
        if req.payload == b"fail":
            raise netchan.UnknownPeerError("who?")
        if req.payload == b"crash":
            raise ZeroDivisionError("bad math")
        return b"ok:" + req.payload

    async def main() -> None:
        async with aio.Endpoint("server") as server, aio.Endpoint("client") as client:
            server.serve("a", handler)
            await client.connect(await server.listen(listen_addr))
            assert await client.wait_for_servers("a")
            assert await client.request("a", b"x") == b"ok:x"
            with pytest.raises(netchan.UnknownPeerError):
                await client.request("a", b"fail")
            with pytest.raises(netchan.HandlerError, match="ZeroDivisionError"):
                await client.request("a", b"crash")
            with pytest.raises(netchan.NoRespondersError):
                await client.request("b")
            with pytest.raises(netchan.InvalidPathError):
                await client.publish("bad//path", b"")
            with pytest.raises(ConnectionRefusedError):
                await client.connect("tcp://127.0.0.1:1")
    logging.getLogger("netchan").addHandler(logging.NullHandler())
    run(main())


def test_cancelling_a_request_cancels_it_at_the_server(listen_addr: str) -> None:
    async def main() -> None:
        async with aio.Endpoint("server") as server, aio.Endpoint("client") as client:
            svc = server.serve("slow")
            await client.connect(await server.listen(listen_addr))
            assert await client.wait_for_servers("slow")
            task = asyncio.ensure_future(client.request("slow", b"", timeout=30))
            req = await svc.recv_async(timeout=5)
            assert req is not None and not req.cancelled
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            for _ in range(500):
                if req.cancelled:
                    break
                await asyncio.sleep(0.01)
            assert req.cancelled
            # An asyncio timeout on top works the same way.
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.request("slow", b"", timeout=30), 0.05)
            with pytest.raises(netchan.TimeoutError):
                await client.request("slow", b"", timeout=0.05)
    run(main())


def test_callbacks_on_the_loop_and_cancelled_waits_lose_nothing(listen_addr: str) -> None:
    async def main() -> None:
        async with aio.Endpoint("server") as server, aio.Endpoint("client") as client:
            loop_thread = threading.current_thread()
            got: List[bytes] = []
            threads = set()
            done = asyncio.Event()

            async def on_msg(msg: netchan.Message) -> None:
                threads.add(threading.current_thread())
                if msg.payload == b"boom":
                    raise RuntimeError("async callback failed on purpose")
                got.append(msg.payload)
                if len(got) == 20:
                    done.set()

            server.subscribe("cb", on_msg)
            pull = server.subscribe("pull")
            await client.connect(await server.listen(listen_addr))
            assert await client.wait_for_subscribers("cb") and await client.wait_for_subscribers("pull")
            # A receive cancelled while waiting must not eat the next message.
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(pull.recv_async(), 0.05)
            await client.publish("pull", b"kept")
            m = await pull.recv_async(timeout=5)
            assert m is not None and m.payload == b"kept"
            for i in range(10):
                await client.publish("cb", b"%d" % i)
            await client.publish("cb", b"boom")
            for i in range(10, 20):
                await client.publish("cb", b"%d" % i)
            await asyncio.wait_for(done.wait(), 10)
            assert got == [b"%d" % i for i in range(20)]
            assert threads == {loop_thread}
    run(main())


def test_events_and_service_iteration(listen_addr: str) -> None:
    async def main() -> None:
        async with aio.Endpoint("watcher") as w:
            events = w.events()
            svc = w.serve("it")
            bound = await w.listen(listen_addr)
            other = aio.Endpoint("visitor")
            await other.connect(bound)
            ev = await events.recv_async(timeout=5)
            assert ev is not None and ev.kind == "peer_up" and ev.peer == "visitor"
            assert await other.wait_for_servers("it")
            call = asyncio.ensure_future(other.request("it", b"q"))
            async for req in svc:
                req.reply(req.payload * 2)
                break
            assert await call == b"qq"
            await other.close()
            ev = await events.recv_async(timeout=5)
            assert ev is not None and ev.kind == "peer_down"
        assert [e async for e in events] == []
    run(main())
