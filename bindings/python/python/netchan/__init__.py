"""netchan: network channels for every language.

One :class:`Endpoint` connects processes on one host (Unix sockets) and
machines on a LAN (TCP): publish/subscribe on ``/``-separated paths with
``*``/``**`` patterns, request/reply with deadlines, bidirectional streams
with flow control, ping, stats and events.
The same endpoint speaks to the Rust, C, Node, Kotlin and Swift bindings and
the ``netchan`` CLI.

This module is the sync API (every call releases the GIL while it waits,
and Ctrl-C interrupts it); :mod:`netchan.aio` is the asyncio API over the
same objects.
"""

from __future__ import annotations

import atexit
import inspect
import time
import weakref
from typing import TYPE_CHECKING, Callable, Optional, Union

from . import _native, _threads
from ._errors import (
    AddressInUseError,
    BufferFullError,
    CancelledError as CancelledError,  # `as`: exported for type checkers, not in __all__
    ClosedError,
    ConnectRefusedError,
    Error,
    HandlerError,
    HandshakeRejectedError,
    InternalError,
    InvalidAddressError,
    InvalidArgumentError,
    InvalidPathError,
    IoError,
    MessageTooLargeError,
    NameInUseError,
    OverloadedError,
    NoRespondersError,
    PeerLostError,
    ProtocolError,
    TimeoutError as TimeoutError,
    UnknownPeerError,
    UnsupportedVersionError,
    WouldDeadlockError,
    PlaintextRefusedError,
    TlsFailedError,
    CertUntrustedError,
    CertNameMismatchError,
    CertExpiredError,
    ClientCertRequiredError,
    PermissionDeniedError,
    SharedKeyRefusedError,
    RateLimitedError,
    error_class,
)
from ._native import (
    Event,
    Events,
    Message,
    PeerInfo,
    Publisher,
    Request,
    Service,
    Stream,
    StreamRequest,
    StreamService,
    Subscription,
    __version__,
    error_codes,
    pack,
    refresh_log_level,
    unpack,
)

#: Endpoints not yet garbage-collected; the exit hook closes those still open.
_endpoints: "weakref.WeakSet[_native.Endpoint]" = weakref.WeakSet()

#: Seconds the exit hook gives open endpoints, in all, to send what is queued.
EXIT_FLUSH = 2.0


def _at_exit() -> None:
    # Close what the program left open, so what it queued is sent (the
    # core's close flushes each link, bounded), then stop the runtime and
    # every wait of ours before the interpreter finalizes (a runtime thread
    # holding the GIL during finalization crashes the process).
    deadline = time.monotonic() + EXIT_FLUSH
    for ep in list(_endpoints):
        try:
            ep._close_at_exit(max(0.0, deadline - time.monotonic()))
        except KeyboardInterrupt:  # Ctrl-C during exit: skip the flush
            break
        except Exception:  # e.g. an endpoint inherited across fork(): CLOSED
            continue
    _native.shutdown()


atexit.register(_at_exit)

#: Anything accepted as a payload (``str`` goes as UTF-8).
Payload = Union[bytes, bytearray, memoryview, str]


class Endpoint(_native.Endpoint):
    """A netchan endpoint (sync API); also a context manager that closes it.

    ``Endpoint(name=None, **options)``: ``name`` must be unique among the
    endpoints it talks to (default: random). Options (seconds for times):
    ``max_frame_size``, ``heartbeat_interval``, ``connect_timeout``,
    ``handshake_timeout``, ``send_buffer``, ``send_timeout``,
    ``ping_timeout``, ``service_queue``, ``max_connections``,
    ``max_pending_handshakes``, ``max_declarations_per_peer``,
    ``subscribe_capacity``, ``subscribe_max_bytes``, ``subscribe_overflow``, ``busy_poll``
    (how long a blocking call keeps polling before it parks its thread;
    default 0: park at once; at most 1 s), ``stream_window`` (bytes the
    other side of a stream may send before this side reads; default 1 MiB).
    TLS (docs/SECURITY.md): ``tls_cert``, ``tls_key``, ``tls_ca``,
    ``tls_pinned`` (a path or PEM bytes), ``tls_client_auth``
    (``"none"``, ``"optional"``, ``"required"``), ``tls_server_name``;
    ``insecure=True`` allows plaintext ``tcp://`` beyond this host;
    ``settings`` sets any core setting by name (``{"tls.ca": "ca.pem"}``).

    Open endpoints are closed at interpreter exit, after sending what is
    queued (at most :data:`EXIT_FLUSH` seconds in all).
    """

    if not TYPE_CHECKING:  # type checkers keep the stub's signature, options and all

        def __new__(cls, name=None, **options):
            # The first endpoint starts netchan's runtime threads: they inherit
            # this thread's signal mask, so block the program's signals
            # meanwhile (see netchan._threads).
            with _threads.signals_blocked():
                ep = super().__new__(cls, name, **options)
            _endpoints.add(ep)
            return ep

    def subscribe(
        self,
        pattern: str,
        callback: Optional[Callable[[Message], object]] = None,
        *,
        capacity: Optional[int] = None,
        max_bytes: Optional[int] = None,
        overflow: Optional[str] = None,
    ) -> Subscription:
        """Subscribes to ``pattern``.

        Without ``callback``, receive from the returned subscription
        (``for msg in sub``, ``sub.recv(timeout)``). With it, ``callback(msg)``
        runs for every message, in order, on a thread of its own (never a
        network thread); an exception it raises is logged on the ``netchan``
        logger and delivery goes on. ``sub.close()`` stops it.

        ``capacity``/``max_bytes`` bound the queue; ``overflow`` is
        ``"block"`` (default: wait, pushing back on the publisher),
        ``"drop_oldest"``, ``"drop_newest"`` or ``"disconnect"``.
        """
        if callback is not None and _threads.is_async_callable(callback):
            # It would only make coroutines that never run.
            raise TypeError("an async callback needs netchan.aio.Endpoint.subscribe (this is the sync API)")
        sub = self._subscribe(pattern, capacity, max_bytes, overflow)
        if callback is not None:
            _threads.start(f"netchan-sub {pattern}", _threads.deliver, sub, callback)
        return sub

    def serve(
        self,
        pattern: str,
        handler: Optional[Callable[[Request], object]] = None,
        *,
        max_concurrent: int = 1,
        queue: Optional[int] = None,
        queue_bytes: Optional[int] = None,
    ) -> Service:
        """Serves requests on paths matching ``pattern``.

        With ``handler``, ``handler(req)`` answers each request on
        ``max_concurrent`` threads of its own (so at most that many at once;
        the same name as in ``netchan.aio``, Node and Kotlin): its return value
        (bytes-like, str or None) is the reply; if it raises, the caller gets
        the error (a netchan :class:`Error` keeps its code; anything else is
        logged and becomes ``HANDLER_ERROR``). Without it, take requests from
        the returned service and call ``req.reply(data)`` or
        ``req.fail(message)``. At most ``queue`` requests (default 1024)
        and ``queue_bytes`` bytes of them (default 64 MiB) wait; past that a
        request is refused with ``BUFFER_FULL``, counted in
        ``stats()["total"]["requests_refused"]``.
        """
        if max_concurrent < 1:
            raise InvalidArgumentError("max_concurrent must be at least 1")
        if handler is not None and _threads.is_async_callable(handler):
            raise TypeError("an async handler needs netchan.aio.Endpoint.serve (this is the sync API)")
        svc = self._serve(pattern, queue, queue_bytes)
        if handler is not None:
            for i in range(max_concurrent):
                _threads.start(f"netchan-serve {pattern} #{i}", _threads.serve, svc, handler)
        return svc

    def serve_stream(
        self,
        pattern: str,
        handler: Optional[Callable[[StreamRequest, Stream], object]] = None,
        *,
        max_concurrent: int = 1,
        queue: Optional[int] = None,
        queue_bytes: Optional[int] = None,
        window: Optional[int] = None,
    ) -> StreamService:
        """Serves bidirectional streams on paths matching ``pattern``.

        With ``handler``, ``handler(req, stream)`` runs for each opened
        stream on ``max_concurrent`` threads of its own (so at most that many
        streams at once; more wait in the queue, their openers waiting in
        ``open_stream``). When it returns, this side is finished (the other
        side reads what was sent, then the end) and, once nothing refers to
        the stream any more, a stream whose other direction is still open is
        cancelled; if it raises, the stream ends with the error (a netchan
        :class:`Error` keeps its code; anything else is logged and becomes
        ``HANDLER_ERROR``). Without it, take ``(req, stream)`` pairs from the
        returned service (``for req, stream in svc``, ``svc.recv(timeout)``).
        At most ``queue`` streams (default 1024) and ``queue_bytes`` bytes of
        their first payloads wait; past that an opening is refused with
        ``BUFFER_FULL``. ``window``: bytes each opener may
        send before the handler reads (default the endpoint's
        ``stream_window``).
        """
        if max_concurrent < 1:
            raise InvalidArgumentError("max_concurrent must be at least 1")
        if inspect.iscoroutinefunction(handler):
            raise TypeError("an async handler needs netchan.aio.Endpoint.serve_stream (this is the sync API)")
        svc = self._serve_stream(pattern, queue, queue_bytes, window)
        if handler is not None:
            for i in range(max_concurrent):
                _threads.start(f"netchan-serve-stream {pattern} #{i}", _threads.serve_streams, svc, handler)
        return svc


__all__ = [
    "Endpoint",
    "Subscription",
    "Service",
    "Request",
    "Stream",
    "StreamRequest",
    "StreamService",
    "Message",
    "Event",
    "Events",
    "PeerInfo",
    "Publisher",
    "Payload",
    "pack",
    "unpack",
    "error_codes",
    "error_class",
    "refresh_log_level",
    "__version__",
    "Error",
    "InvalidArgumentError",
    "InvalidAddressError",
    "InvalidPathError",
    "MessageTooLargeError",
    "ConnectRefusedError",
    "AddressInUseError",
    "PeerLostError",
    "UnsupportedVersionError",
    "ProtocolError",
    "HandshakeRejectedError",
    "UnknownPeerError",
    "IoError",
    "NameInUseError",
    "OverloadedError",
    "NoRespondersError",
    "HandlerError",
    "BufferFullError",
    "ClosedError",
    "WouldDeadlockError",
    "PlaintextRefusedError",
    "TlsFailedError",
    "CertUntrustedError",
    "CertNameMismatchError",
    "CertExpiredError",
    "ClientCertRequiredError",
    "PermissionDeniedError",
    "SharedKeyRefusedError",
    "RateLimitedError",
    "InternalError",
    # TimeoutError and CancelledError are left out of ``*`` imports so they
    # do not shadow the built-in / asyncio names; use netchan.TimeoutError.
]
