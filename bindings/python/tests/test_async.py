"""The asyncio API (netchan.aio) over TCP and Unix sockets."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import threading
from typing import List

import pytest

import netchan
from netchan import aio

from conftest import PY, WATCHDOG, python_env, wait_until_async


def run(coro: "asyncio.Future[None] | object") -> None:
    asyncio.run(asyncio.wait_for(coro, 2 * WATCHDOG))  # type: ignore[arg-type]


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


def test_an_asyncio_endpoint_over_an_existing_sync_one(listen_addr: str) -> None:
    # As pyzmq's Socket.from_socket: the sync endpoint a program already has,
    # used from asyncio too, with no second connection.
    with netchan.Endpoint("server") as server, netchan.Endpoint("client") as client:
        server.serve("echo", lambda req: req.payload)
        client.connect(server.listen(listen_addr))

        async def main() -> None:
            ac = aio.Endpoint.from_sync(client)
            assert ac.sync is client and ac.name == "client"
            assert [p.name for p in ac.peers()] == ["server"]
            assert await ac.request("echo", b"hi") == b"hi"
            sub = ac.subscribe("t")
            assert server.wait_for_subscribers("t", WATCHDOG)
            server.publish("t", b"x")
            got = await sub.recv_async(timeout=WATCHDOG)
            assert got is not None and got.payload == b"x"
            # One endpoint: closing the asyncio one closes the sync one.
            await ac.close()
            assert client.closed
            with pytest.raises(netchan.ClosedError):
                await ac.request("echo", b"again")
        run(main())
    with pytest.raises(TypeError, match="takes a netchan.Endpoint"):
        aio.Endpoint.from_sync(object())  # type: ignore[arg-type]


def test_async_publisher_and_a_request_that_waits_for_its_responder(listen_addr: str) -> None:
    async def main() -> None:
        async with aio.Endpoint("server") as server, aio.Endpoint("client") as client:
            sub = server.subscribe("p/**")
            await client.connect(await server.listen(listen_addr))
            assert await client.wait_for_subscribers("p/a")
            async with client.declare_publisher("p/*") as decl:
                assert decl.pattern == "p/*"
                await wait_until_async(lambda: server.publishers("p/**") == ["client"], "the declaration")
                await decl.publish("p/a", b"one")
                decl.try_publish("p/b", b"two")
                with pytest.raises(netchan.InvalidPathError):
                    await decl.publish("q/a", b"x")
            await wait_until_async(lambda: server.publishers("p/**") == [], "the withdrawal")
            got = [await sub.recv_async(timeout=WATCHDOG) for _ in range(2)]
            assert [m.payload for m in got if m is not None] == [b"one", b"two"]
            with pytest.raises(netchan.NoRespondersError):
                await client.request("late/x", b"now")
            reply = asyncio.ensure_future(client.request("late/x", b"hi", WATCHDOG, wait_for_responder=True))
            await asyncio.sleep(0.05)
            assert not reply.done()
            server.serve("late/*", lambda req: b"late:" + req.payload)
            assert await reply == b"late:hi"
    run(main())


def test_async_handler_errors_and_codes(listen_addr: str, caplog: pytest.LogCaptureFixture) -> None:
    threads = set()

    async def handler(req: netchan.Request) -> bytes:
        threads.add(threading.current_thread())
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
            with socket.socket() as closed_port:  # bound, not listening: refuses
                closed_port.bind(("127.0.0.1", 0))
                with pytest.raises(ConnectionRefusedError):
                    await client.connect("tcp://127.0.0.1:%d" % closed_port.getsockname()[1])
            assert threads == {threading.current_thread()}  # handlers run on the loop

    with caplog.at_level(logging.ERROR, logger="netchan"):
        run(main())
    logged = [r for r in caplog.records if r.name == "netchan" and r.exc_info]
    assert [type(r.exc_info[1]) for r in logged] == [ZeroDivisionError]  # type: ignore[index]


def test_serve_bounds_concurrency_and_refuses_past_its_queue(listen_addr: str) -> None:
    """``max_concurrent`` handlers at once, ``queue`` waiting, the rest refused
    at once with BUFFER_FULL and counted."""
    running = 0
    peak = 0
    gates: List[asyncio.Event] = []  # made in the loop (Python 3.9 binds it at creation)

    async def handler(req: netchan.Request) -> bytes:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await gates[0].wait()
        running -= 1
        return req.payload

    async def main() -> None:
        gates.append(asyncio.Event())
        gate = gates[0]
        async with aio.Endpoint("server") as server, aio.Endpoint("client") as client:
            with pytest.raises(netchan.InvalidArgumentError):
                server.serve("x", handler, max_concurrent=0)
            server.serve("work", handler, max_concurrent=2, queue=3)
            await client.connect(await server.listen(listen_addr))
            assert await client.wait_for_servers("work")
            first = [asyncio.ensure_future(client.request("work", b"%d" % i)) for i in range(2)]
            await wait_until_async(lambda: running == 2, "two requests in the handler")
            rest = [asyncio.ensure_future(client.request("work", b"%d" % i)) for i in range(2, 10)]
            # Three wait, five are refused at once (which five depends on the
            # order the calls reach the wire).
            await wait_until_async(
                lambda: server.stats()["total"]["requests_refused"] == 5, "five refusals"
            )
            assert running == 2
            gate.set()
            assert await asyncio.gather(*first) == [b"0", b"1"]
            done = await asyncio.gather(*rest, return_exceptions=True)
            refused = [r for r in done if isinstance(r, netchan.BufferFullError)]
            answered = [r for r in done if isinstance(r, bytes)]
            assert len(refused) == 5 and len(answered) == 3, done
            assert peak == 2
            assert server.stats()["total"]["requests_refused"] == 5
    run(main())


def test_cancelling_a_request_cancels_it_at_the_server(listen_addr: str) -> None:
    async def main() -> None:
        async with aio.Endpoint("server") as server, aio.Endpoint("client") as client:
            svc = server.serve("slow")
            await client.connect(await server.listen(listen_addr))
            assert await client.wait_for_servers("slow")

            async def served() -> netchan.Request:
                req = await svc.recv_async(timeout=WATCHDOG)
                assert req is not None
                return req

            # Cancelling the awaiting task.
            task = asyncio.ensure_future(client.request("slow", b"task", timeout=WATCHDOG))
            req = await served()
            assert not req.cancelled
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await wait_until_async(lambda: req.cancelled, "the server to see the task's cancel")
            # An asyncio timeout on top cancels it the same way (the server may
            # take the request only after that).
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(client.request("slow", b"wait_for", timeout=WATCHDOG), 0.05)
            req = await served()
            assert req.payload == b"wait_for"
            await wait_until_async(lambda: req.cancelled, "the server to see the wait_for's cancel")
            # So does the request's own timeout.
            with pytest.raises(netchan.TimeoutError):
                await client.request("slow", b"own timeout", timeout=0.05)
            req = await served()
            assert req.payload == b"own timeout"
            await wait_until_async(lambda: req.cancelled, "the server to see the timed-out request cancelled")
    run(main())


def test_callbacks_on_the_loop_and_cancelled_waits_lose_nothing(
    listen_addr: str, caplog: pytest.LogCaptureFixture
) -> None:
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
            m = await pull.recv_async(timeout=WATCHDOG)
            assert m is not None and m.payload == b"kept"
            for i in range(10):
                await client.publish("cb", b"%d" % i)
            await client.publish("cb", b"boom")
            for i in range(10, 20):
                await client.publish("cb", b"%d" % i)
            await asyncio.wait_for(done.wait(), WATCHDOG)
            assert got == [b"%d" % i for i in range(20)]
            assert threads == {loop_thread}

    with caplog.at_level(logging.ERROR, logger="netchan"):
        run(main())
    logged = [r for r in caplog.records if r.name == "netchan" and r.exc_info]
    assert [str(r.exc_info[1]) for r in logged] == ["async callback failed on purpose"]  # type: ignore[index]


def test_events_and_service_iteration(listen_addr: str) -> None:
    async def main() -> None:
        async with aio.Endpoint("watcher") as w:
            events = w.events()
            svc = w.serve("it")
            bound = await w.listen(listen_addr)
            other = aio.Endpoint("visitor")
            await other.connect(bound)
            ev = await events.recv_async(timeout=WATCHDOG)
            assert ev is not None and ev.kind == "peer_up" and ev.peer == "visitor"
            assert await other.wait_for_servers("it")
            call = asyncio.ensure_future(other.request("it", b"q"))
            async for req in svc:
                req.reply(req.payload * 2)
                break
            assert await call == b"qq"
            await other.close()
            ev = await events.recv_async(timeout=WATCHDOG)
            assert ev is not None and ev.kind == "peer_down"
        assert [e async for e in events] == []
    run(main())


def test_close_from_inside_an_async_callback_or_handler(listen_addr: str) -> None:
    async def main() -> None:
        for where in ("callback", "handler"):
            server, client = aio.Endpoint("server"), aio.Endpoint("client")
            after: List[str] = []

            async def on_msg(msg: netchan.Message) -> None:
                await server.close()
                after.append("callback went on")

            async def handler(req: netchan.Request) -> bytes:
                await server.close()
                after.append("handler went on")
                return b"late"

            if where == "callback":
                server.subscribe("c", on_msg)
            else:
                server.serve("c", handler)
            # A path of its own each time (see test_every_documented_option_is_accepted).
            addr = listen_addr if listen_addr.startswith("tcp") else f"{listen_addr}.{where}"
            await client.connect(await server.listen(addr))
            if where == "callback":
                assert await client.wait_for_subscribers("c")
                await client.publish("c", b"x")
                await wait_until_async(lambda: after, "the callback to return from close")
            else:
                assert await client.wait_for_servers("c")
                with pytest.raises(netchan.PeerLostError):  # the server closed before answering
                    await client.request("c", b"x", timeout=WATCHDOG)
                await wait_until_async(lambda: after, "the handler to return from close")
            assert server.closed and after == [f"{where} went on"]
            await client.close()
    run(main())


NO_SECOND_RUNTIME = r"""
import asyncio, os, threading

def os_thread_names():
    return {open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task")}

main_name = os_thread_names()  # the interpreter's own thread only, so far
import netchan
from netchan import aio
async def main():
    got = asyncio.Event()
    async with aio.Endpoint("s") as s, aio.Endpoint("c") as c:
        s.serve("e", lambda req: req.payload)
        s.subscribe("p", lambda msg: got.set())
        await c.connect(await s.listen("tcp://127.0.0.1:0"))
        assert await c.wait_for_servers("e") and await c.wait_for_subscribers("p")
        assert await asyncio.gather(*(c.request("e", b"x") for _ in range(50))) == [b"x"] * 50
        await c.publish("p", b"y")
        await got.wait()
        print(sorted(t.name for t in threading.enumerate()))
        print(sorted(os_thread_names() - main_name))
asyncio.run(main())
"""


def test_asyncio_api_adds_no_event_loop_or_runtime() -> None:
    # In a fresh process, after requests, a callback and a handler through
    # netchan.aio: the Python threads are the main one (running the only
    # event loop) and netchan's dispatcher; every other OS thread is one of
    # the core runtime's, all named "netchan".
    p = subprocess.run([PY, "-c", NO_SECOND_RUNTIME], capture_output=True, text=True, timeout=WATCHDOG, env=python_env())
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["['MainThread', 'netchan-dispatch']", "['netchan']"], p.stdout


def test_suspend_resume_and_network_changed_from_asyncio(listen_addr: str) -> None:
    # The asyncio surface forwards to the same core calls: messages published
    # while suspended are held for the dialled peer and arrive, in order,
    # after resume; network_changed redials at once.
    async def main() -> None:
        async with aio.Endpoint("home") as home, aio.Endpoint("phone") as phone:
            inbox = home.subscribe("in")
            bound = await home.listen(listen_addr)
            events = phone.sync.events()
            await phone.connect(bound)
            assert await phone.wait_for_subscribers("in")
            await phone.suspend()
            for i in range(3):
                await phone.publish("in", b"%d" % i)
            assert inbox.try_recv() is None
            await phone.resume()
            got = [(await asyncio.wait_for(inbox.recv_async(), WATCHDOG)).payload for _ in range(3)]
            assert got == [b"0", b"1", b"2"]
            kinds: List[str] = []
            while "resumed" not in kinds:
                ev = await asyncio.wait_for(events.recv_async(), WATCHDOG)
                assert ev is not None
                kinds.append(ev.kind)
            assert "suspended" in kinds and "other" not in kinds
            after = phone.sync.events()
            await phone.network_changed()
            kinds = []
            while "peer_up" not in kinds:
                ev = await asyncio.wait_for(after.recv_async(), WATCHDOG)
                assert ev is not None
                kinds.append(ev.kind)
            assert kinds[0] == "peer_down", kinds
            assert await phone.wait_for_subscribers("in")

    asyncio.run(main())


def test_a_try_recv_elsewhere_leaves_an_asyncio_receiver_waiting(listen_addr: str) -> None:
    # The core's readiness hook holds one waker. A non-blocking receive made
    # meanwhile (another thread's try_recv, recv_many, a sync recv) must not
    # replace the asyncio receiver's waker with one that wakes nobody: the
    # message published next still reaches the awaiting task.
    async def main() -> None:
        async with aio.Endpoint("srv") as srv, aio.Endpoint("cli") as cli:
            sub = srv.subscribe("hook")
            svc = srv.serve("hook/svc")
            await cli.connect(await srv.listen(listen_addr))
            assert await cli.wait_for_subscribers("hook") and await cli.wait_for_servers("hook/svc")
            msg_task = asyncio.ensure_future(sub.recv_async())
            req_task = asyncio.ensure_future(svc.recv_async())
            await asyncio.sleep(0)  # both are registered with the hook now
            assert sub.try_recv() is None and sub.recv_many(8, timeout=0) == [] and sub.recv(timeout=0) is None
            assert svc.try_recv() is None and svc.recv(timeout=0) is None
            await cli.publish("hook", b"to asyncio")
            call = asyncio.ensure_future(cli.request("hook/svc", b"q", timeout=WATCHDOG))
            msg = await asyncio.wait_for(msg_task, WATCHDOG)
            assert msg is not None and msg.payload == b"to asyncio"
            req = await asyncio.wait_for(req_task, WATCHDOG)
            assert req is not None
            req.reply(b"a")
            assert await call == b"a"

    asyncio.run(main())
