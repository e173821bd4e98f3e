# Shows: ping (round-trip time) to a connected peer, and the peer list (sync API).
# Run: python examples/python/ping.py [tcp://127.0.0.1:0 | unix:///tmp/ping.sock]
# Prints: the bound address, three round-trip times in microseconds, the peers; exits 0.
import sys

import netchan


def main() -> int:
    addr = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:0"
    with netchan.Endpoint("py-pong") as server, netchan.Endpoint("py-ping") as client:
        bound = server.listen(addr)
        print(f"listening on {bound}")
        peer = client.connect(bound)
        for i in range(3):
            rtt = client.ping(peer.name)
            print(f"pong from {peer.name} seq={i} rtt={rtt * 1e6:.1f} us")
        print("peers:", ", ".join(p.name for p in client.peers()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
