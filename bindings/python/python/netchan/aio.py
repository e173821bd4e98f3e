"""netchan's asyncio API.

:class:`Endpoint` here has the sync endpoint's methods, with the waiting ones
as coroutines (``await ep.request(...)``). Subscriptions, services and event
streams are the same objects as in the sync API and support ``async for``
and ``await x.recv_async()``.

Work runs on netchan's own runtime (there is no second runtime); results come
back to your loop through ``loop.call_soon_threadsafe``. Cancelling an
awaiting task cancels the operation (a cancelled request is cancelled at the
server too). Many operations may run at once, e.g. with ``asyncio.gather``.

Streams are the exception to "same objects": :meth:`Endpoint.open_stream`
returns a :class:`Stream` whose ``send``/``recv`` are coroutines, wrapping
the sync :class:`netchan.Stream` (``.sync``), and :meth:`Endpoint.serve_stream`
a :class:`StreamService` that hands out such streams.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import logging
from types import TracebackType
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Coroutine, Iterable, List, Optional, Set, Tuple, Type, Union

from . import Endpoint as _SyncEndpoint
from . import Payload, _async, _native, _threads
from ._errors import ClosedError, InvalidArgumentError
from ._errors import TimeoutError as _NetchanTimeout
from ._native import Events, Message, PeerInfo, Request, Service, StreamRequest, Subscription, pack

if TYPE_CHECKING:
    from ._native import Stats

__all__ = [
    "Endpoint",
    "Subscription",
    "Service",
    "Request",
    "Message",
    "Events",
    "PeerInfo",
    "Publisher",
    "Stream",
    "StreamRequest",
    "StreamService",
]

log = logging.getLogger("netchan")

MessageCallback = Callable[[Message], Union[None, Awaitable[None]]]
Handler = Callable[[Request], Union[object, Awaitable[object]]]
StreamHandler = Callable[[StreamRequest, "Stream"], Union[object, Awaitable[object]]]


class Publisher:
    """A publisher declaration for asyncio code (see
    :class:`netchan.Publisher`): peers find it with ``publishers()``, and
    ``await publish(path, data)`` publishes on paths its pattern matches
    through a cached route. ``close()`` (or leaving ``with`` / ``async
    with``) withdraws it. ``.sync`` is the wrapped declaration.
    """

    __slots__ = ("_p",)

    def __init__(self, publisher: _native.Publisher) -> None:
        self._p = publisher

    @property
    def sync(self) -> _native.Publisher:
        """The wrapped sync publisher."""
        return self._p

    @property
    def pattern(self) -> str:
        """The declared pattern."""
        return self._p.pattern

    async def publish(self, path: str, data: Payload) -> None:
        """Publishes ``data`` on ``path`` (which the pattern must match);
        waits only while a buffer is full."""
        fut = self._p._publish_async(asyncio.get_running_loop(), path, data)
        if fut is not None:
            await fut

    def try_publish(self, path: str, data: Payload) -> None:
        """Publishes without ever waiting (``BufferFullError`` if a target had no room)."""
        self._p.try_publish(path, data)

    def close(self) -> None:
        """Withdraws the declaration."""
        self._p.close()

    def __enter__(self) -> "Publisher":
        return self

    def __exit__(self, t: Optional[Type[BaseException]], v: Optional[BaseException], tb: Optional[TracebackType]) -> bool:
        self.close()
        return False

    async def __aenter__(self) -> "Publisher":
        return self

    async def __aexit__(self, t: Optional[Type[BaseException]], v: Optional[BaseException], tb: Optional[TracebackType]) -> bool:
        self.close()
        return False


class Stream:
    """One side of a bidirectional stream, for asyncio code (see
    :class:`netchan.Stream` for the semantics, which are the same).

    ``await send(data)``, ``await recv()`` (``None`` at the end),
    ``async for chunk in stream`` (ends at the other side's end),
    ``finish()``, ``cancel()``, ``fail(message, code)``, ``close()``;
    ``async with`` (or ``with``) finishes this side on a normal exit and
    cancels the stream on an exception. ``Stream(sync_stream)`` wraps a
    stream of the sync API; ``.sync`` is the wrapped one.
    """

    __slots__ = ("_s", "__weakref__")

    def __init__(self, stream: _native.Stream) -> None:
        self._s = stream

    @property
    def sync(self) -> _native.Stream:
        """The same stream with the sync API."""
        return self._s

    @property
    def path(self) -> str:
        """The path the stream was opened on."""
        return self._s.path

    @property
    def peer(self) -> str:
        """The endpoint at the other side."""
        return self._s.peer

    @property
    def remaining(self) -> Optional[float]:
        """Seconds left before the stream's deadline; ``None`` without one."""
        return self._s.remaining

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called (or the ``with`` block exited)."""
        return self._s.closed

    async def send(self, data: Payload, timeout: Optional[float] = None) -> None:
        """Sends one message, waiting while the receiver's window is full (at
        most ``timeout`` s: then :class:`netchan.TimeoutError`). A cancelled
        send sent the message whole or not at all."""
        if timeout is None:
            return await self._send(data)
        try:
            await asyncio.wait_for(self._send(data), timeout)
        except asyncio.TimeoutError:
            raise _NetchanTimeout(f"send: no room in the receiver's window on {self.path} within {timeout} s") from None

    async def _send(self, data: Payload) -> None:
        fut = self._s._send_async(asyncio.get_running_loop(), data)
        if fut is not None:
            await fut

    async def recv(self, timeout: Optional[float] = None) -> Optional[bytes]:
        """The next message; ``None`` once the other side finished and all it
        sent was received. Waits at most ``timeout`` s (then
        :class:`netchan.TimeoutError`; the stream goes on). A cancelled
        receive loses nothing."""
        r: Optional[bytes]
        if timeout is None:
            r = await _async._recv(self._s)
            return r
        try:
            r = await asyncio.wait_for(_async._recv(self._s), timeout)
            return r
        except asyncio.TimeoutError:
            raise _NetchanTimeout(f"recv: nothing arrived on the stream on {self.path} within {timeout} s") from None

    def finish(self) -> None:
        """Ends this side's direction (half-close); receiving goes on."""
        self._s.finish()

    def cancel(self) -> None:
        """Ends the whole stream with ``CANCELLED``, at both sides."""
        self._s.cancel()

    def fail(self, message: str, code: str = "HANDLER_ERROR") -> None:
        """Ends the whole stream with an error of ``code`` that the other side raises."""
        self._s.fail(message, code)

    def close(self) -> None:
        """Lets go of the stream (one that has not ended both ways is cancelled)."""
        self._s.close()

    def __aiter__(self) -> "Stream":
        return self

    async def __anext__(self) -> bytes:
        b = await self.recv()
        if b is None:
            raise StopAsyncIteration
        return b

    def __enter__(self) -> "Stream":
        return self

    def __exit__(
        self, t: Optional[Type[BaseException]], v: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self._s.__exit__(t, v, tb)

    async def __aenter__(self) -> "Stream":
        return self

    async def __aexit__(
        self, t: Optional[Type[BaseException]], v: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self._s.__exit__(t, v, tb)

    def __repr__(self) -> str:
        return f"aio.Stream(path={self.path!r}, peer={self.peer!r})"


class StreamService:
    """A pattern served with streams, for asyncio code: ``async for req,
    stream in svc`` or ``await svc.recv(timeout)``; ``close()`` (or leaving
    ``with``/``async with``) stops serving. ``.sync`` is the wrapped
    :class:`netchan.StreamService`."""

    __slots__ = ("_svc", "__weakref__")

    def __init__(self, svc: _native.StreamService) -> None:
        self._svc = svc

    @property
    def sync(self) -> _native.StreamService:
        """The same service with the sync API."""
        return self._svc

    @property
    def pattern(self) -> str:
        """The served pattern."""
        return self._svc.pattern

    @property
    def queued(self) -> int:
        """Streams waiting to be taken."""
        return self._svc.queued

    async def recv(self, timeout: Optional[float] = None) -> Optional[Tuple[StreamRequest, Stream]]:
        """The next opened stream (taking it accepts it), waiting at most
        ``timeout`` s; ``None`` on timeout. Raises ``ClosedError`` once
        closed. A cancelled wait loses nothing."""
        got: Optional[Tuple[StreamRequest, _native.Stream]] = await _async.recv(self._svc, timeout)
        return None if got is None else (got[0], Stream(got[1]))

    def close(self) -> None:
        """Stops serving; streams still queued are refused (``NO_RESPONDERS``)."""
        self._svc.close()

    def __aiter__(self) -> "StreamService":
        return self

    async def __anext__(self) -> Tuple[StreamRequest, Stream]:
        got: Tuple[StreamRequest, _native.Stream] = await _async.anext(self._svc)
        return got[0], Stream(got[1])

    def __enter__(self) -> "StreamService":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> "StreamService":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"aio.StreamService(pattern={self.pattern!r})"


class Endpoint:
    """A netchan endpoint for asyncio code; ``async with`` closes it.

    Takes the same arguments as :class:`netchan.Endpoint`. Create it
    anywhere; call its coroutines from a running event loop.
    """

    def __init__(self, name: Optional[str] = None, **options: Any) -> None:
        self._ep = _SyncEndpoint(name, **options)
        self._tasks: Set["asyncio.Task[None]"] = set()

    @classmethod
    def from_sync(cls, ep: _SyncEndpoint) -> "Endpoint":
        """The asyncio API over an existing :class:`netchan.Endpoint` (like
        pyzmq's ``Socket.from_socket``): the same endpoint, so its links,
        listeners, subscriptions and services are shared, no second
        connection is made, and closing either closes both. The reverse is
        :attr:`sync`."""
        if not isinstance(ep, _SyncEndpoint):
            raise TypeError(f"from_sync() takes a netchan.Endpoint, not {type(ep).__name__}")
        self = cls.__new__(cls)
        self._ep = ep
        self._tasks = set()
        return self

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

    async def request(
        self, path: str, data: Optional[Payload] = None, timeout: float = 5.0, *, wait_for_responder: bool = False
    ) -> bytes:
        """Sends a request; returns the reply payload. With
        ``wait_for_responder``, first waits (within ``timeout``) for a
        server to appear instead of raising ``NoRespondersError`` at once."""
        return await self._ep._request_async(asyncio.get_running_loop(), path, data, timeout, wait_for_responder)

    async def open_stream(
        self,
        path: str,
        first: Optional[Payload] = None,
        *,
        timeout: Optional[float] = None,
        open_timeout: Optional[float] = None,
        window: Optional[int] = None,
        wait_for_responder: bool = False,
    ) -> Stream:
        """Opens a bidirectional stream on ``path`` (see
        :meth:`netchan.Endpoint.open_stream`). Cancelling the awaiting task
        cancels the opening (a stream opened meanwhile is cancelled)."""
        s = await self._ep._open_stream_async(
            asyncio.get_running_loop(), path, first, timeout, open_timeout, window, wait_for_responder
        )
        return Stream(s)

    def serve_stream(
        self,
        pattern: str,
        handler: Optional[StreamHandler] = None,
        *,
        max_concurrent: int = 256,
        queue: Optional[int] = None,
        queue_bytes: Optional[int] = None,
        window: Optional[int] = None,
    ) -> StreamService:
        """Serves streams on ``pattern``. With ``handler`` (``async def`` or
        plain), each opened stream runs ``handler(req, stream)`` in its own
        task on the current loop, at most ``max_concurrent`` at once (more
        wait in the queue, their openers waiting). When it returns, this
        side is finished and, once nothing refers to the stream, a stream
        whose other direction is still open is cancelled; if it raises, the
        stream ends with the error (a netchan :class:`~netchan.Error` keeps
        its code; anything else is logged and becomes ``HANDLER_ERROR``). As
        with request handlers, the task is not cancelled when the other side
        cancels: its next ``send``/``recv`` raises ``CancelledError``
        (netchan's). Without it, iterate the service. ``queue``,
        ``queue_bytes``, ``window``: as :meth:`netchan.Endpoint.serve_stream`."""
        if max_concurrent < 1:
            raise InvalidArgumentError("max_concurrent must be at least 1")
        svc = StreamService(self._ep._serve_stream(pattern, queue, queue_bytes, window))
        if handler is not None:
            self._spawn(_serve_streams(svc, handler, self._spawn, max_concurrent))
        return svc

    def stream_servers(self, pattern: str) -> List[str]:
        """Names of the endpoints serving streams on something overlapping ``pattern``."""
        return self._ep.stream_servers(pattern)

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
        queue_bytes: Optional[int] = None,
    ) -> Service:
        """Serves ``pattern``. With ``handler`` (plain or ``async def``), each
        request runs ``handler(req)`` in its own task, at most
        ``max_concurrent`` at once (more wait in the queue); the return value
        (bytes-like, str or None) is the reply, an exception fails the
        request. Without it, iterate the service (``async for req in svc``).
        At most ``queue`` requests (default 1024) and ``queue_bytes`` bytes of
        them (default 64 MiB) wait; past that a request is refused with
        ``BUFFER_FULL``, counted in ``stats()["total"]["requests_refused"]``."""
        if max_concurrent < 1:
            raise InvalidArgumentError("max_concurrent must be at least 1")
        svc = self._ep._serve(pattern, queue, queue_bytes)
        if handler is not None:
            self._spawn(_serve(svc, handler, self._spawn, max_concurrent))
        return svc

    def events(self) -> Events:
        """Connection and drop events from now on (``async for ev in ep.events()``)."""
        return self._ep.events()

    def peers(self) -> List[PeerInfo]:
        """The connected peers."""
        return self._ep.peers()

    def set_acl(self, rules: Union[str, "os.PathLike[str]", None]) -> None:
        """Replaces the access rules, as :meth:`netchan.Endpoint.set_acl` (never blocks)."""
        self._ep.set_acl(rules)

    def reload_keys(self) -> None:
        """Reads key, certificate and rules files again, as :meth:`netchan.Endpoint.reload_keys`."""
        self._ep.reload_keys()

    def set_tls(
        self,
        *,
        cert: Union[str, bytes, "os.PathLike[str]", None] = None,
        key: Union[str, bytes, "os.PathLike[str]", None] = None,
        ca: Union[str, bytes, "os.PathLike[str]", None] = None,
        pinned: Union[str, bytes, "os.PathLike[str]", None] = None,
        client_auth: Optional[str] = None,
        server_name: Optional[str] = None,
    ) -> None:
        """Replaces the TLS settings, as :meth:`netchan.Endpoint.set_tls` (never blocks)."""
        self._ep.set_tls(cert=cert, key=key, ca=ca, pinned=pinned, client_auth=client_auth, server_name=server_name)

    def set_shared_keys(self, keys: Union[str, "os.PathLike[str]", None]) -> None:
        """Replaces the shared keys, as :meth:`netchan.Endpoint.set_shared_keys` (never blocks)."""
        self._ep.set_shared_keys(keys)

    def failed_attempts(self) -> List[Tuple[str, int]]:
        """Failed connection attempts per remote address, most first."""
        return self._ep.failed_attempts()

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
        """Declares that this endpoint publishes on ``pattern`` (discovery);
        the publisher also publishes there."""
        return Publisher(self._ep.declare_publisher(pattern))

    def reconnect_now(self) -> None:
        """Redials every lost peer now, skipping the rest of its backoff delay."""
        self._ep.reconnect_now()

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



async def _serve_streams(
    svc: StreamService,
    handler: StreamHandler,
    spawn: Callable[[Coroutine[Any, Any, None]], None],
    max_concurrent: int,
) -> None:
    # A stream is taken (accepted) only when a handler slot is free.
    slots = asyncio.Semaphore(max_concurrent)
    while True:
        await slots.acquire()
        try:
            req, stream = await svc.__anext__()
        except StopAsyncIteration:
            return
        spawn(_handle_stream(req, stream, handler, svc.pattern, slots.release))
        # Not kept while waiting for the next: an unfinished stream is
        # cancelled once nothing refers to it.
        del req, stream


async def _handle_stream(
    req: StreamRequest, stream: Stream, handler: StreamHandler, pattern: str, done: Callable[[], None]
) -> None:
    try:
        r = handler(req, stream)
        if inspect.isawaitable(r):
            await r
        stream.finish()
    except Exception as e:
        _threads.fail_stream(stream, e, pattern)
    finally:
        done()
