"""netchan's asyncio API.

:class:`Endpoint` here has the sync endpoint's methods, with the waiting ones
as coroutines (``await ep.request(...)``). Subscriptions, services and event
streams are the same objects as in the sync API and support ``async for``
and ``await x.recv_async()``.

Work runs on netchan's own runtime (there is no second runtime); results come
back to your loop through ``loop.call_soon_threadsafe``. Cancelling an
awaiting task cancels the operation (a cancelled request is cancelled at the
server too). Many operations may run at once, e.g. with ``asyncio.gather``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Coroutine, Iterable, List, Optional, Set, Union

from . import Endpoint as _SyncEndpoint
from . import Payload, _threads
from ._errors import ClosedError, InvalidArgumentError
from ._native import Events, Message, PeerInfo, Publisher, Request, Service, Subscription, pack

if TYPE_CHECKING:
    from ._native import Stats

__all__ = ["Endpoint", "Subscription", "Service", "Request", "Message", "Events", "PeerInfo"]

log = logging.getLogger("netchan")

MessageCallback = Callable[[Message], Union[None, Awaitable[None]]]
Handler = Callable[[Request], Union[object, Awaitable[object]]]


class Endpoint:
    """A netchan endpoint for asyncio code; ``async with`` closes it.

    Takes the same arguments as :class:`netchan.Endpoint`. Create it
    anywhere; call its coroutines from a running event loop.
    """

    def __init__(self, name: Optional[str] = None, **options: Any) -> None:
        self._ep = _SyncEndpoint(name, **options)
        self._tasks: Set["asyncio.Task[None]"] = set()

    @property
    def name(self) -> str:
        """The endpoint's name."""
        return self._ep.name

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._ep.closed

    @property
    def sync(self) -> _SyncEndpoint:
        """The same endpoint with the sync API (for use from other threads)."""
        return self._ep

    async def listen(self, addr: str) -> str:
        """Listens on ``addr``; returns the bound address."""
        return await self._ep._listen_async(asyncio.get_running_loop(), addr)

    async def connect(self, addr: str) -> PeerInfo:
        """Connects to the endpoint listening at ``addr``."""
        return await self._ep._connect_async(asyncio.get_running_loop(), addr)

    async def publish(self, path: str, data: Payload) -> None:
        """Publishes ``data`` on ``path``; waits only while a buffer is full."""
        fut = self._ep._publish_async(asyncio.get_running_loop(), path, data)
        if fut is not None:
            await fut

    async def publish_many(self, path: str, payloads: Iterable[Payload]) -> int:
        """Publishes every payload on ``path`` in order; returns how many."""
        return await self._ep._publish_many_async(asyncio.get_running_loop(), path, payloads)

    async def publish_obj(self, path: str, obj: Any) -> None:
        """Publishes ``obj`` encoded as plain msgpack (see :func:`netchan.pack`)."""
        await self.publish(path, pack(obj))

    def try_publish(self, path: str, data: Payload) -> None:
        """Publishes without ever waiting (``BufferFullError`` if a target had no room)."""
        self._ep.try_publish(path, data)

    async def request(self, path: str, data: Optional[Payload] = None, timeout: float = 5.0) -> bytes:
        """Sends a request; returns the reply payload."""
        return await self._ep._request_async(asyncio.get_running_loop(), path, data, timeout)

    async def ping(self, peer: str) -> float:
        """Round-trip time to the connected peer ``peer``, in seconds."""
        return await self._ep._ping_async(asyncio.get_running_loop(), peer)

    async def wait_for_subscribers(self, path: str, timeout: float = 5.0) -> bool:
        """Waits up to ``timeout`` s for a subscriber of ``path``; whether one appeared."""
        return await self._ep._wait_for_subscribers_async(asyncio.get_running_loop(), path, timeout)

    async def wait_for_servers(self, path: str, timeout: float = 5.0) -> bool:
        """Waits up to ``timeout`` s for a server of ``path``; whether one appeared."""
        return await self._ep._wait_for_servers_async(asyncio.get_running_loop(), path, timeout)

    def subscribe(
        self,
        pattern: str,
        callback: Optional[MessageCallback] = None,
        *,
        capacity: Optional[int] = None,
        max_bytes: Optional[int] = None,
        overflow: Optional[str] = None,
    ) -> Subscription:
        """Subscribes to ``pattern``: use ``async for msg in sub``, or pass
        ``callback`` (plain or ``async def``), run on the current loop for
        every message in order; an exception it raises is logged and
        delivery goes on. ``sub.close()`` stops it."""
        sub = self._ep._subscribe(pattern, capacity, max_bytes, overflow)
        if callback is not None:
            self._spawn(_deliver(sub, callback))
        return sub

    def serve(
        self,
        pattern: str,
        handler: Optional[Handler] = None,
        *,
        max_concurrent: int = 256,
        queue: Optional[int] = None,
    ) -> Service:
        """Serves ``pattern``. With ``handler`` (plain or ``async def``), each
        request runs ``handler(req)`` in its own task, at most
        ``max_concurrent`` at once (more wait in the queue); the return value
        (bytes-like, str or None) is the reply, an exception fails the
        request. Without it, iterate the service (``async for req in svc``).
        At most ``queue`` requests wait (default 1024); past that a request
        is refused with ``BUFFER_FULL``, counted in
        ``stats()["total"]["requests_refused"]``."""
        if max_concurrent < 1:
            raise InvalidArgumentError("max_concurrent must be at least 1")
        svc = self._ep._serve(pattern, queue)
        if handler is not None:
            self._spawn(_serve(svc, handler, self._spawn, max_concurrent))
        return svc

    def events(self) -> Events:
        """Connection and drop events from now on (``async for ev in ep.events()``)."""
        return self._ep.events()

    def peers(self) -> List[PeerInfo]:
        """The connected peers."""
        return self._ep.peers()

    def stats(self) -> "Stats":
        """Counters, as :meth:`netchan.Endpoint.stats`."""
        return self._ep.stats()

    def has_subscribers(self, path: str) -> bool:
        """True if a publish on ``path`` now would reach a subscriber."""
        return self._ep.has_subscribers(path)

    def has_servers(self, path: str) -> bool:
        """True if a request on ``path`` now would find a server."""
        return self._ep.has_servers(path)

    def subscribers(self, pattern: str) -> List[str]:
        """Names of the endpoints subscribed to something overlapping ``pattern``."""
        return self._ep.subscribers(pattern)

    def publishers(self, pattern: str) -> List[str]:
        """Names of the endpoints that declared a publisher overlapping ``pattern``."""
        return self._ep.publishers(pattern)

    def servers(self, pattern: str) -> List[str]:
        """Names of the endpoints serving something overlapping ``pattern``."""
        return self._ep.servers(pattern)

    def declare_publisher(self, pattern: str) -> Publisher:
        """Declares that this endpoint publishes on ``pattern`` (discovery)."""
        return self._ep.declare_publisher(pattern)

    async def suspend(self) -> None:
        """Closes every link and listener, keeping subscriptions, services,
        declarations, messages held for dialled peers and counters (see
        :meth:`netchan.Endpoint.suspend`)."""
        await self._ep._suspend_async(asyncio.get_running_loop())

    async def resume(self) -> None:
        """Listens and dials again at once; held messages go first."""
        await self._ep._resume_async(asyncio.get_running_loop())

    async def network_changed(self) -> None:
        """Drops every link and redials every dialled address now."""
        await self._ep._network_changed_async(asyncio.get_running_loop())

    async def close(self) -> None:
        """Closes the endpoint and stops its callback and handler tasks.

        Called from inside a callback or handler, it stops the others; the
        calling one goes on to its end (its subscription or service is
        closed, so no further message or request comes to it)."""
        await self._ep._close_async(asyncio.get_running_loop())
        # Cancelling and gathering the task that runs this would make the
        # task wait for itself (and the cancel recurse through the gather).
        me = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not me]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> "Endpoint":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"aio.Endpoint(name={self.name!r})"

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def _deliver(sub: Subscription, callback: MessageCallback) -> None:
    try:
        async for msg in sub:
            try:
                r = callback(msg)
                if inspect.isawaitable(r):
                    await r
            except Exception:
                log.exception("subscription callback for %r raised", sub.pattern)
    except ClosedError:
        pass


async def _serve(
    svc: Service,
    handler: Handler,
    spawn: Callable[[Coroutine[Any, Any, None]], None],
    max_concurrent: int,
) -> None:
    # The next request is taken from the (bounded, fair) queue only when a
    # handler slot is free.
    slots = asyncio.Semaphore(max_concurrent)
    requests = svc.__aiter__()
    while True:
        await slots.acquire()
        try:
            req = await requests.__anext__()
        except StopAsyncIteration:
            return
        spawn(_answer(req, handler, svc.pattern, slots.release))


async def _answer(req: Request, handler: Handler, pattern: str, done: Callable[[], None]) -> None:
    try:
        r = handler(req)
        if inspect.isawaitable(r):
            r = await r
        _threads.answer_with(req, r)
    except Exception as e:
        _threads.answer_failure(req, e, pattern)
    finally:
        done()

