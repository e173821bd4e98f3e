# Shows: a bidirectional stream with the asyncio API: an async handler, and the client sending while it receives.
# Run: python examples/python/stream_async.py [tcp://127.0.0.1:0 | unix:///tmp/stream.sock]
# Prints: the bound address, each answer, then `end`; exits 0.
import asyncio
import sys
from typing import List

import netchan
from netchan import aio


async def upper(req: netchan.StreamRequest, stream: aio.Stream) -> None:
    # Runs in a task of its own on the loop; returning finishes the server's side.
    async for line in stream:
        await stream.send(line.upper())


async def main(addr: str) -> int:
    async with aio.Endpoint("py-stream-server") as server, aio.Endpoint("py-stream-client") as client:
        server.serve_stream("upper/*", upper)
        bound = await server.listen(addr)
        print(f"server listening on {bound}")
        await client.connect(bound)
        async with await client.open_stream("upper/demo", wait_for_responder=True) as s:

            async def send_all() -> None:
                for line in [b"hello", b"stream", b"world"]:
                    await s.send(line)
                s.finish()

            sending = asyncio.ensure_future(send_all())
            answers: List[str] = [answer.decode() async for answer in s]
            await sending
        print("\n".join(answers))
        print("end")
    return 0 if answers == ["HELLO", "STREAM", "WORLD"] else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:0")))
