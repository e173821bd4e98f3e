# Shows: request/reply with the asyncio API: an async handler and concurrent requests.
# Run: python examples/python/reqrep_async.py [tcp://127.0.0.1:0 | unix:///tmp/reqrep.sock]
# Prints: the bound address, three replies, then the "no responders" code; exits 0.
import asyncio
import sys

import netchan
from netchan import aio


async def greet(req: netchan.Request) -> bytes:
    await asyncio.sleep(0)  # an async handler may await anything
    return b"hello, " + req.payload


async def main(addr: str) -> int:
    async with aio.Endpoint("py-server") as server, aio.Endpoint("py-client") as client:
        server.serve("greet", greet)
        bound = await server.listen(addr)
        print(f"server listening on {bound}")
        await client.connect(bound)
        replies = await asyncio.gather(*(client.request("greet", n, timeout=5.0) for n in (b"ana", b"bo", b"cy")))
        for r in replies:
            print(r.decode())
        try:
            await client.request("nobody/home", timeout=5.0)
            return 1
        except netchan.NoRespondersError as e:
            print(e.code)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:0")))
