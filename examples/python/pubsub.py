# Shows: publish/subscribe between two endpoints with a wildcard pattern (sync API).
# Run: python examples/python/pubsub.py [tcp://127.0.0.1:0 | unix:///tmp/pubsub.sock]
# Prints: the bound address, then each received message as PATH<TAB>PAYLOAD; exits 0.
import sys

import netchan


def main() -> int:
    addr = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:0"
    with netchan.Endpoint("py-subscriber") as subscriber, netchan.Endpoint("py-publisher") as publisher:
        sub = subscriber.subscribe("sensors/*/temp")
        bound = subscriber.listen(addr)
        print(f"subscriber listening on {bound}")
        publisher.connect(bound)
        for room, t in [("kitchen", b"21.5"), ("hall", b"19.0")]:
            publisher.publish(f"sensors/{room}/temp", t)
        for _ in range(2):
            msg = sub.recv(timeout=5.0)
            if msg is None:
                print("no message within 5 s", file=sys.stderr)
                return 1
            print(f"{msg.path}\t{msg.payload.decode()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
