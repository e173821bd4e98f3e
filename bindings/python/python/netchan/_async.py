"""asyncio receive helpers behind ``await sub.recv_async()`` and ``async for``.

``src._poll_async(loop)`` takes an item from the core's queue, or else
registers a future with the core's readiness hook and returns it; the
dispatcher thread completes it (with ``loop.call_soon_threadsafe``) when an
item may be there, and the receiver looks again. Cancelling a wait loses
nothing: items stay queued for the next receive.
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional

from ._errors import ClosedError


async def _recv(src: Any) -> Any:
    loop = asyncio.get_running_loop()
    while True:
        item, fut = src._poll_async(loop)
        if fut is None:
            return item
        await fut


async def recv(src: Any, timeout: Optional[float] = None) -> Any:
    if timeout is None:
        return await _recv(src)
    try:
        return await asyncio.wait_for(_recv(src), timeout)
    except asyncio.TimeoutError:
        return None


async def anext(src: Any) -> Any:
    try:
        return await _recv(src)
    except ClosedError:
        raise StopAsyncIteration from None
