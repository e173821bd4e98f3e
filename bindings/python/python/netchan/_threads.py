"""The Python threads of the sync API.

- The dispatcher thread completes asyncio futures and forwards the core's log
  records to ``logging``; it is started with the first endpoint.
- Each callback subscription gets its own thread that takes messages in
  batches and calls the callback in order; each handler service gets one (or
  ``threads``) that take requests and answer them. Network threads never run
  Python code: they only fill the queues these threads read.

An exception raised by a callback or handler is logged on the ``netchan``
logger with its traceback; delivery goes on.
"""

from __future__ import annotations

import inspect
import logging
import threading
from typing import Any, Callable

from . import _native
from ._errors import ClosedError, Error

log = logging.getLogger("netchan")

_lock = threading.Lock()
_dispatcher: "threading.Thread | None" = None


def ensure_dispatcher() -> None:
    global _dispatcher
    with _lock:
        if _dispatcher is None:
            _dispatcher = threading.Thread(
                target=_native.dispatch_forever, name="netchan-dispatch", daemon=True
            )
            _dispatcher.start()


def start(name: str, target: Callable[..., None], *args: Any) -> threading.Thread:
    t = threading.Thread(target=target, args=args, name=name, daemon=True)
    t.start()
    return t


def deliver(sub: Any, callback: Callable[[Any], object]) -> None:
    while True:
        try:
            batch = sub.recv_many(256)
        except ClosedError:
            return
        for msg in batch:
            try:
                callback(msg)
            except Exception:
                log.exception("subscription callback for %r raised", sub.pattern)


def answer_with(req: Any, result: object) -> None:
    """Sends a handler's return value: bytes-like, str (UTF-8) or None (empty)."""
    if req.answered:
        return
    if result is None:
        req.reply()
    elif isinstance(result, (bytes, bytearray, memoryview)):
        req.reply(result)
    elif isinstance(result, str):
        req.reply(result.encode())
    else:
        raise TypeError(
            f"a handler must return bytes, bytearray, memoryview, str or None, "
            f"not {type(result).__name__}"
        )


def answer_failure(req: Any, exc: BaseException, pattern: str) -> None:
    """Fails a request whose handler raised: a netchan Error keeps its code;
    anything else is logged and becomes HANDLER_ERROR."""
    if isinstance(exc, Error):
        if not req.answered:
            req.fail(exc.detail, exc.code)
        return
    log.error("handler for %r raised", pattern, exc_info=exc)
    if not req.answered:
        req.fail(f"{type(exc).__name__}: {exc}")


def serve(svc: Any, handler: Callable[[Any], object]) -> None:
    pattern = svc.pattern
    while True:
        try:
            req = svc.recv()
        except ClosedError:
            return
        if req is None:
            continue
        try:
            result = handler(req)
            if inspect.isawaitable(result):
                raise TypeError(
                    "an async handler needs netchan.aio.Endpoint.serve (this is the sync API)"
                )
            answer_with(req, result)
        except Exception as e:
            answer_failure(req, e, pattern)
