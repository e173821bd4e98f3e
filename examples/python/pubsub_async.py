# Shows: publish/subscribe with the asyncio API (`async for` over a subscription).
# Run: python examples/python/pubsub_async.py [tcp://127.0.0.1:0 | unix:///tmp/pubsub.sock]
# Prints: the bound address, then each received message as PATH<TAB>PAYLOAD; exits 0.
import asyncio
import sys

from netchan import aio


async def main(addr: str) -> int:
    async with aio.Endpoint("py-subscriber") as subscriber, aio.Endpoint("py-publisher") as publisher:
        sub = subscriber.subscribe("sensors/*/temp")
        bound = await subscriber.listen(addr)
        print(f"subscriber listening on {bound}")
        await publisher.connect(bound)
        for room, t in [("kitchen", b"21.5"), ("hall", b"19.0")]:
            await publisher.publish(f"sensors/{room}/temp", t)
        n = 0
        async for msg in sub:
            print(f"{msg.path}\t{msg.payload.decode()}")
            n += 1
            if n == 2:
                break
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:0")))
