"""asyncio receive helpers behind ``await sub.recv_async()`` and ``async for``.

Items are taken without waiting when some are queued; otherwise the native
side hands back a future that the dispatcher thread completes (with
``loop.call_soon_threadsafe``) when items arrive. Cancelling a wait loses
nothing: items stay queued for the next receive.
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional

from ._errors import ClosedError


async def _recv(src: Any) -> Any:
    loop = asyncio.get_running_loop()
    while True:
        item = src.try_recv()
        if item is not None:
            return item
        fut = src._wait_async(loop)
        if fut is not None:
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
