# Shows: a bidirectional stream (sync API): the client sends lines and finishes its side; the server's handler answers each in upper case, then ends.
# Run: python examples/python/stream.py [tcp://127.0.0.1:0 | unix:///tmp/stream.sock]
# Prints: the bound address, each answer, then `end`; exits 0.
import sys

import netchan


def upper(req: netchan.StreamRequest, stream: netchan.Stream) -> None:
    # Runs on a thread of its own; returning finishes the server's side.
    for line in stream:
        stream.send(line.upper())


def main() -> int:
    addr = sys.argv[1] if len(sys.argv) > 1 else "tcp://127.0.0.1:0"
    with netchan.Endpoint("py-stream-server") as server, netchan.Endpoint("py-stream-client") as client:
        server.serve_stream("upper/*", upper)
        bound = server.listen(addr)
        print(f"server listening on {bound}")
        client.connect(bound)
        with client.open_stream("upper/demo", wait_for_responder=True) as s:
            for line in [b"hello", b"stream", b"world"]:
                s.send(line)
            s.finish()
            answers = [answer.decode() for answer in s]
        print("\n".join(answers))
        print("end")
    return 0 if answers == ["HELLO", "STREAM", "WORLD"] else 1


if __name__ == "__main__":
    sys.exit(main())
