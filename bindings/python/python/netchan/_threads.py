"""The Python threads of the sync API.

- The dispatcher thread completes asyncio futures and forwards the core's log
  records to ``logging``; it is started with the first endpoint.
- Each callback subscription gets its own thread that takes messages in
  batches and calls the callback in order; each handler service gets one (or
  ``threads``) that take requests and answer them, and each handler stream
  service ``threads`` that take streams and run the handler on them. Network threads never run
  Python code: they only fill the queues these threads read.
- netchan's runtime threads and the dispatcher block the signals a program
  handles (:data:`SIGNALS`), so the kernel hands those to a thread of the
  program. Python runs signal handlers on the main thread only, and an idle
  asyncio loop there learns of Ctrl-C only if the signal interrupts its own
  wait: delivered to one of our threads instead, it went unnoticed until
  the loop woke for some other reason. Callback and handler threads run the
  program's code and keep its signal mask (a process they start inherits it).

An exception raised by a callback or handler is logged on the ``netchan``
logger with its traceback; delivery goes on.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import signal
import threading
from typing import Any, Callable, Iterator

from . import _native
from ._errors import ClosedError, Error

log = logging.getLogger("netchan")

_lock = threading.Lock()
_dispatcher: "threading.Thread | None" = None


#: Signals netchan's own threads block (see the module's docstring).
SIGNALS = {
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGCHLD", "SIGWINCH")
    if hasattr(signal, name)
}


@contextlib.contextmanager
def signals_blocked() -> Iterator[None]:
    """Blocks :data:`SIGNALS` on this thread for the block; a thread started
    meanwhile inherits the mask and keeps it (the runtime's threads start with
    the first endpoint)."""
    if not hasattr(signal, "pthread_sigmask"):  # not on Windows
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def ensure_dispatcher() -> None:
    global _dispatcher
    with _lock:
        if _dispatcher is None:
            _dispatcher = threading.Thread(
                target=_native.dispatch_forever, name="netchan-dispatch", daemon=True
            )
            with signals_blocked():
                _dispatcher.start()


def start(name: str, target: Callable[..., None], *args: Any) -> threading.Thread:
    t = threading.Thread(target=target, args=args, name=name, daemon=True)
    t.start()
    return t


def is_async_callable(f: object) -> bool:
    """An ``async def`` function (or a partial of one, or an object whose
    ``__call__`` is one): the sync API would only make coroutines that never
    run."""
    return inspect.iscoroutinefunction(f) or inspect.iscoroutinefunction(getattr(f, "__call__", None))


def deliver(sub: Any, callback: Callable[[Any], object]) -> None:
    while True:
        try:
            batch = sub.recv_many(256)
        except ClosedError:
            return
        for msg in batch:
            try:
                result = callback(msg)
                if inspect.isawaitable(result):
                    if inspect.iscoroutine(result):
                        result.close()  # never awaited: no RuntimeWarning
                    raise TypeError(
                        "an async callback needs netchan.aio.Endpoint.subscribe (this is the sync API)"
                    )
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


def fail_stream(stream: Any, exc: BaseException, pattern: str) -> None:
    """Ends the stream of a stream handler that raised: a netchan Error keeps
    its code (one raised by the stream itself, e.g. CANCELLED, changes
    nothing: the stream has ended); anything else is logged and becomes
    HANDLER_ERROR."""
    if isinstance(exc, Error):
        stream.fail(exc.detail, exc.code)
        return
    log.error("stream handler for %r raised", pattern, exc_info=exc)
    stream.fail(f"{type(exc).__name__}: {exc}")


def handle_stream(req: Any, stream: Any, handler: Callable[[Any, Any], object], pattern: str) -> None:
    """Runs a sync stream handler; as the core's handler runner, it finishes
    the stream when the handler returns and fails it when the handler raises."""
    try:
        result = handler(req, stream)
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()  # never awaited: no RuntimeWarning
            raise TypeError(
                "an async handler needs netchan.aio.Endpoint.serve_stream (this is the sync API)"
            )
        stream.finish()
    except Exception as e:
        fail_stream(stream, e, pattern)


def serve_streams(svc: Any, handler: Callable[[Any, Any], object]) -> None:
    pattern = svc.pattern
    while _next_stream(svc, handler, pattern):
        pass


def _next_stream(svc: Any, handler: Callable[[Any, Any], object], pattern: str) -> bool:
    # A function of its own: the stream is let go of when it returns, not
    # kept while this thread waits for the next one (an unfinished stream
    # is cancelled once nothing refers to it).
    try:
        got = svc.recv()
    except ClosedError:
        return False
    if got is not None:
        handle_stream(got[0], got[1], handler, pattern)
    return True
