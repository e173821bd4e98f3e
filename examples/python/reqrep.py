# Shows: request/reply with a handler, a handler error, and "no responders" (sync API).
# Run: python examples/python/reqrep.py [tcp://127.0.0.1:0 | unix:///tmp/reqrep.sock]
# Prints: the bound address, the reply, then the two errors with their codes; exits 0.
import sys

import netchan


def greet(req: netchan.Request) -> bytes:
    name = req.payload.decode()
    if not name:
        raise ValueError("empty name")
    return f"hello, {name}".encode()


def main() -> int:
    addr = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:0"
    with netchan.Endpoint("py-server") as server, netchan.Endpoint("py-client") as client:
        server.serve("greet", greet)
        bound = server.listen(addr)
        print(f"server listening on {bound}")
        client.connect(bound)
        print(client.request("greet", b"ana", timeout=5.0).decode())
        try:
            client.request("greet", b"", timeout=5.0)
            return 1
        except netchan.HandlerError as e:
            print(f"{e.code}: {e.detail}")
        try:
            client.request("nobody/home", b"", timeout=5.0)
            return 1
        except netchan.NoRespondersError as e:
            print(e.code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
