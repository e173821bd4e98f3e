# Shows: the interop agent contract (tests/interop/README.md), in Python.
# Run: python tests/interop/agent.py sub tcp://127.0.0.1:0 'x/**' 1
# Prints: READY <addr>, then MSG/OK/ERR/SMSG/SAW lines as the contract says; exits 0.
import os
import signal
import sys

import netchan


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def payload(spec: str) -> bytes:
    if spec.startswith("hex:"):
        return bytes.fromhex(spec[4:])
    if spec.startswith("gen:"):
        n = int(spec[4:])
        return bytes(i % 251 for i in range(n))
    raise SystemExit(f"bad payload spec {spec!r}")


# The typed value every agent with msgpack helpers publishes.
OBJ = {"int": -3, "big": 1 << 40, "str": "h\u00e9llo", "list": [1, 2.5, True, None], "bytes": b"\x00\xff", "map": {"a": 1}}


def canon(v: object) -> str:
    """Canonical JSON of a decoded value: sorted keys, bytes as {"$bytes": hex}."""
    import json

    def fix(x: object) -> object:
        if isinstance(x, (bytes, bytearray)):
            return {"$bytes": bytes(x).hex()}
        if isinstance(x, dict):
            return {str(k): fix(w) for k, w in x.items()}
        if isinstance(x, (list, tuple)):
            return [fix(w) for w in x]
        return x

    return json.dumps(fix(v), sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def say(line: str) -> None:
    print(line, flush=True)


def main() -> int:
    cmd, addr, *rest = sys.argv[1:]
    # Settings by name from NETCHAN_SETTINGS (`KEY=VALUE` lines): the
    # matrix's TLS cells pass certificates this way to every language.
    lines = os.environ.get("NETCHAN_SETTINGS", "").splitlines()
    settings = dict(line.split("=", 1) for line in lines if "=" in line)
    with netchan.Endpoint(name=f"py-agent-{os.getpid()}", settings=settings) as ep:
        if cmd == "sub":
            pattern, count = rest[0], int(rest[1])
            sub = ep.subscribe(pattern)
            say(f"READY {ep.listen(addr)}")
            for _ in range(count):
                m = sub.recv()
                assert m is not None
                say(f"MSG {m.path} {len(m.payload)} {fnv1a64(m.payload):016x}")
        elif cmd == "pub":
            path, specs = rest[0], rest[1:]
            ep.connect(addr)
            if not ep.wait_for_subscribers(path, 10.0):
                say("ERR TIMEOUT no subscriber")
                return 1
            for s in specs:
                ep.publish(path, payload(s))
            say("DONE")
        elif cmd == "subobj":
            sub = ep.subscribe(rest[0])
            say(f"READY {ep.listen(addr)}")
            m = sub.recv()
            assert m is not None
            say("OBJ " + canon(m.obj()))
        elif cmd == "pubobj":
            ep.connect(addr)
            if not ep.wait_for_subscribers(rest[0], 10.0):
                say("ERR TIMEOUT no subscriber")
                return 1
            ep.publish_obj(rest[0], OBJ)
            say("DONE " + canon(OBJ))
        elif cmd == "serve":

            def echo(req: netchan.Request) -> bytes:
                return req.payload

            def fail(req: netchan.Request) -> bytes:
                raise RuntimeError("boom")

            ep.serve("echo", echo)
            ep.serve("fail", fail)
            say(f"READY {ep.listen(addr)}")
            signal.pause()  # until the harness ends it
        elif cmd == "req":
            path, spec = rest[0], rest[1]
            try:
                # A refused connection is an answer too (the TLS refusal cells).
                ep.connect(addr)
                r = ep.request(path, payload(spec), timeout=10.0)
                say(f"OK {len(r)} {fnv1a64(r):016x}")
            except netchan.Error as e:
                say(f"ERR {e.code} {e.detail}")
        elif cmd == "sserve":

            def secho(req: netchan.StreamRequest, s: netchan.Stream) -> None:
                if req.payload:
                    s.send(req.payload)
                for m in s:
                    s.send(m)

            def scancel(req: netchan.StreamRequest, s: netchan.Stream) -> None:
                s.send(b"hello")
                s.cancel()

            def swatch(req: netchan.StreamRequest, s: netchan.Stream) -> None:
                n, end = 0, "END"
                try:
                    while s.recv() is not None:
                        n += 1
                except netchan.Error as e:
                    end = e.code
                say(f"SAW {end} {n}")

            ep.serve_stream("secho", secho)
            ep.serve_stream("scancel", scancel)
            ep.serve_stream("swatch", swatch)
            say(f"READY {ep.listen(addr)}")
            signal.pause()  # until the harness ends it
        elif cmd == "sopen":
            path, more = rest[0], rest[1:]
            cancel = bool(more) and more[0] == "--cancel"
            specs = more[1:] if cancel else more
            ep.connect(addr)
            try:
                st = ep.open_stream(path)
                for spec in specs:
                    st.send(payload(spec))
                if cancel:
                    st.cancel()
                    say("CANCELLED")
                else:
                    st.finish()
                    for m in st:
                        say(f"SMSG {len(m)} {fnv1a64(m):016x}")
                    say("SEND")
            except netchan.Error as e:
                say(f"ERR {e.code} {e.detail}")
        else:
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
