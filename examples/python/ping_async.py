# Shows: ping (round-trip time) with the asyncio API.
# Run: python examples/python/ping_async.py [tcp://127.0.0.1:0 | unix:///tmp/ping.sock]
# Prints: the bound address and three round-trip times in microseconds; exits 0.
import asyncio
import sys

from netchan import aio


async def main(addr: str) -> int:
    async with aio.Endpoint("py-pong") as server, aio.Endpoint("py-ping") as client:
        bound = await server.listen(addr)
        print(f"listening on {bound}")
        peer = await client.connect(bound)
        for i in range(3):
            rtt = await client.ping(peer.name)
            print(f"pong from {peer.name} seq={i} rtt={rtt * 1e6:.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:0")))
