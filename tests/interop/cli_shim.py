#!/usr/bin/env python3
"""Drives the `netchan` CLI as an interop agent: turns its "listening on
ADDR" stderr line into "READY ADDR" and its `sub` output (PATH<TAB>PAYLOAD,
text or hex) into the contract's MSG lines."""
import os
import subprocess
import sys


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def main() -> int:
    cli, role, addr = sys.argv[1:4]
    # The agents' NETCHAN_SETTINGS (KEY=VALUE lines) as the CLI's -o options.
    # A name of the agents' form, which their certificate is issued for.
    opts = ["--name", f"cli-agent-{os.getpid()}"]
    for line in os.environ.get("NETCHAN_SETTINGS", "").splitlines():
        if "=" in line:
            opts += ["-o", line]
    if role == "sub":
        count = sys.argv[4]
        argv = [cli, *opts, "sub", "interop/**", "--listen", addr, "--count", count]
    elif role == "serve-stream":
        argv = [cli, *opts, "serve-stream", "secho", "--listen", addr, "--echo"]
    else:
        argv = [cli, *opts, "serve", "echo", "--listen", addr, "--echo"]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stderr.readline().strip()
    if not line.startswith("listening on "):
        print(f"ERR {line}", flush=True)
        return 1
    print("READY " + line[len("listening on "):], flush=True)
    if role == "sub":
        for out in p.stdout:
            path, _, shown = out.rstrip("\n").partition("\t")
            data = shown.encode()
            print(f"MSG {path} {len(data)} {fnv1a64(data):016x}", flush=True)
    return p.wait()


if __name__ == "__main__":
    sys.exit(main())
