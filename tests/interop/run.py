#!/usr/bin/env python3
"""Cross-language interop matrix: every ordered pair of languages, over TCP,
Unix sockets and mutual TLS, for pub/sub, request/reply and streams, and a
client without a certificate refused with the same code in every language
(see README.md here).

Usage: python3 tests/interop/run.py [--only rust,c,...]
Prints the matrix and ends with "N passed, N failed, N skipped"; exits 1 on
any failure. A language whose toolchain or build is missing is reported as
skipped with the reason, never passed; with NETCHAN_INTEROP_REQUIRE_ALL=1
(set by scripts/test.sh, which builds every language first) a skipped
language fails the run too.
"""
import argparse
import os
import signal
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.join(ROOT, "tests", "interop")
TIMEOUT = 60

# Payloads checked byte for byte (length + FNV-1a 64): empty, text, bytes
# that are not UTF-8, and 1 MiB.
PAYLOADS = ["hex:", "hex:68656c6c6f", "hex:ff00fe80c0", "gen:1048576"]

TRANSPORTS = ("tcp", "unix", "tls", "psk")

# Settings by transport (KEY=VALUE lines in NETCHAN_SETTINGS, which every
# agent applies by name): mutual TLS over `tls`, a shared key over `psk`
# (tcp:// with keys); and for the refusal cells, no certificate or another
# key. Set by make_keys().
SETTINGS = {}


def address(transport, tmp, tag):
    if transport == "unix":
        return f"unix://{tmp}/{tag}-{os.getpid()}.sock"
    return f"{'tls' if transport == 'tls' else 'tcp'}://127.0.0.1:0"


def env_for(transport, who="good"):
    """The environment of an agent: its settings for the transport."""
    env = dict(os.environ)
    env["NETCHAN_SETTINGS"] = SETTINGS.get((transport, who), "")
    return env


def cli_opts(env):
    """The CLI takes the same settings as `-o KEY=VALUE`, and a name of the
    agents' form (`*-agent-*`, the name their certificate is for)."""
    out = ["--name", f"cli-agent-{os.urandom(4).hex()}"]
    for line in env.get("NETCHAN_SETTINGS", "").splitlines():
        if "=" in line:
            out += ["-o", line]
    return out


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def expect(spec: str) -> str:
    if spec.startswith("hex:"):
        b = bytes.fromhex(spec[4:])
    else:
        n = int(spec[4:])
        b = bytes(i % 251 for i in range(n))
    return f"{len(b)} {fnv1a64(b):016x}"


EXPECTED = {p: expect(p) for p in PAYLOADS}


def find_agents(only):
    """Returns {lang: argv prefix} and {lang: reason skipped}."""
    agents, skipped = {}, {}
    exe = os.path.join(ROOT, "target", "debug", "examples", "interop_agent")
    if os.path.exists(exe):
        agents["rust"] = [exe]
    else:
        skipped["rust"] = "target/debug/examples/interop_agent not built (cargo build -p netchan --examples)"
    lib = os.path.join(ROOT, "target", "debug", "libnetchan.so")
    cc = shutil.which("cc")
    if os.path.exists(lib) and cc:
        out = os.path.join(ROOT, "target", "interop-agent-c")
        r = subprocess.run(
            [cc, "-std=c11", "-O1", "-I", os.path.join(ROOT, "include"), os.path.join(HERE, "agent.c"),
             "-L", os.path.dirname(lib), "-lnetchan", f"-Wl,-rpath,{os.path.dirname(lib)}", "-o", out],
            capture_output=True, text=True)
        if r.returncode == 0:
            agents["c"] = [out]
        else:
            skipped["c"] = "agent.c did not compile: " + r.stderr.strip()[:200]
    else:
        skipped["c"] = "target/debug/libnetchan.so or cc missing (cargo build -p netchan-c)"
    py = os.environ.get("NETCHAN_PYTHON")
    if py and subprocess.run([py, "-c", "import netchan"], capture_output=True).returncode == 0:
        agents["python"] = [py, os.path.join(HERE, "agent.py")]
    else:
        skipped["python"] = "no Python with the netchan package (set NETCHAN_PYTHON; bindings/python/run-tests.sh builds one)"
    node = shutil.which("node")
    node_pkg = os.path.join(ROOT, "bindings", "node")
    if node and os.path.exists(os.path.join(HERE, "agent.mjs")) and any(
            f.endswith(".node") for f in os.listdir(node_pkg)) if os.path.isdir(node_pkg) else False:
        agents["node"] = [node, os.path.join(HERE, "agent.mjs")]
    else:
        skipped["node"] = "the Node addon is not built (bindings/node/run-tests.sh builds it)"
    kt = kotlin_agent()
    if isinstance(kt, list):
        agents["kotlin"] = kt
    else:
        skipped["kotlin"] = kt
    cli = os.path.join(ROOT, "target", "debug", "netchan")
    if os.path.exists(cli):
        agents["cli"] = ["CLI", cli]
    else:
        skipped["cli"] = "target/debug/netchan not built"
    if only:
        agents = {k: v for k, v in agents.items() if k in only}
        skipped = {k: v for k, v in skipped.items() if k in only}
    return agents, skipped


def kotlin_agent():
    """The Kotlin agent's command line, or why there is none. The class is
    compiled with the Kotlin tests by bindings/uniffi/run-tests.sh."""
    proj = os.path.join(ROOT, "bindings", "uniffi", "kotlin")
    classes = os.path.join(proj, "target", "test-classes", "examples", "interop")
    java, mvn = shutil.which("java"), shutil.which("mvn")
    if not (java and mvn and os.path.isdir(classes)):
        return "the Kotlin agent is not compiled (bindings/uniffi/run-tests.sh compiles it; needs java and mvn)"
    cpfile = os.path.join(proj, "target", "interop-classpath.txt")
    # Not offline: on a fresh machine the dependency plugin is not in the
    # local repository yet (the Kotlin tests never needed it).
    r = subprocess.run([mvn, "-q", "-B", "-f", os.path.join(proj, "pom.xml"),
                        "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:build-classpath",
                        f"-Dmdep.outputFile={cpfile}", "-Dmdep.includeScope=runtime"], capture_output=True, text=True)
    if r.returncode != 0:
        return "could not resolve the Kotlin classpath: " + (r.stdout + r.stderr).strip()[-200:]
    cp = ":".join([os.path.join(proj, "target", "classes"), os.path.join(proj, "target", "test-classes"),
                   open(cpfile).read().strip()])
    return [java, "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", cp, "examples.interop.Interop_agentKt"]


class Listening:
    """A long-running agent (sub or serve) that printed READY <addr>."""

    def __init__(self, argv, env=None):
        # Its own process group, so stop() also ends what the agent started
        # (the CLI shim's `netchan` child).
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  start_new_session=True, env=env)
        line = self.p.stdout.readline().strip()
        if not line.startswith("READY "):
            err = self.p.stderr.read() if self.p.poll() is not None else ""
            self.stop()
            raise RuntimeError(f"agent did not start: {line!r} {err[:300]}")
        self.addr = line[len("READY "):]

    def lines(self, n):
        out = []
        for _ in range(n):
            out.append(self.p.stdout.readline().strip())
        return out

    def stop(self):
        kill_group(self.p)
        self.p.wait()


def cli_listen_cmd(cli, role, addr, count=None):
    # The CLI prints "listening on ADDR" on stderr; a tiny shim turns that
    # into the contract's READY line and its output lines into MSG lines.
    shim = os.path.join(HERE, "cli_shim.py")
    args = [sys.executable, shim, cli, role, addr]
    if count is not None:
        args.append(str(count))
    return args


def kill_group(p):
    """Ends the process group `p` leads (started with start_new_session),
    children included, even after `p` itself exited."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run(argv, timeout=TIMEOUT, env=None):
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True, env=env)
    try:
        out, err = p.communicate(timeout=timeout)
    finally:
        kill_group(p)
        p.wait()
    return p.returncode, out.strip().splitlines(), err.strip()


def pubsub(pub, sub, transport, tmp):
    addr = address(transport, tmp, f"ps-{id(pub)}-{id(sub)}")
    env = env_for(transport)
    payloads = PAYLOADS
    if pub[0] == "CLI" or sub[0] == "CLI":
        # The CLI publishes text from its command line and prints text: text
        # payloads only (its hex output for binary payloads is ambiguous).
        payloads = ["hex:", "hex:68656c6c6f"]
    if sub[0] == "CLI":
        s = Listening(cli_listen_cmd(sub[1], "sub", addr, len(payloads)), env)
    else:
        s = Listening(sub + ["sub", addr, "interop/**", str(len(payloads))], env)
    try:
        if pub[0] == "CLI":
            code, out, err = 0, [], ""
            for p in payloads:
                text = bytes.fromhex(p[4:]).decode()
                code, out, err = run([pub[1]] + cli_opts(env)
                                     + ["pub", "interop/data", text, "--connect", s.addr, "--wait-ms", "10000"])
                if code != 0:
                    break
        else:
            code, out, err = run(pub + ["pub", s.addr, "interop/data"] + payloads, env=env)
        if code != 0:
            return f"publisher exited {code}: {out} {err[:300]}"
        got = s.lines(len(payloads))
        want = [f"MSG interop/data {EXPECTED[p]}" for p in payloads]
        if got != want:
            return f"got {got}, want {want}"
        return None
    finally:
        s.stop()


def reqrep(srv, cli, transport, tmp):
    addr = address(transport, tmp, f"rr-{id(srv)}-{id(cli)}")
    env = env_for(transport)
    s = Listening(cli_listen_cmd(srv[1], "serve", addr) if srv[0] == "CLI" else srv + ["serve", addr], env)
    try:
        cases = [("echo", p, f"OK {EXPECTED[p]}") for p in PAYLOADS]
        cases += [("fail", "hex:", "ERR HANDLER_ERROR"), ("missing", "hex:", "ERR NO_RESPONDERS")]
        if srv[0] == "CLI":
            # One CLI process serves one pattern in one mode: echo only.
            cases = [c for c in cases if c[0] != "fail"]
        if cli[0] == "CLI":
            cases = [("echo", "hex:68656c6c6f", "OK hello"), ("missing", "hex:", "ERR NO_RESPONDERS")]
            if srv[0] != "CLI":
                cases.append(("fail", "hex:", "ERR HANDLER_ERROR"))
        for path, spec, want in cases:
            if cli[0] == "CLI":
                data = bytes.fromhex(spec[4:]).decode()
                code, out, err = run([cli[1]] + cli_opts(env)
                                     + ["req", path, data, "--connect", s.addr, "--timeout-ms", "10000"])
                line = f"OK {out[0]}" if code == 0 and out else "ERR " + err.replace("netchan: ", "").replace(":", "", 1)
            else:
                code, out, err = run(cli + ["req", s.addr, path, spec], env=env)
                line = out[-1] if out else f"(no output, exit {code}: {err[:300]})"
            if not line.startswith(want):
                return f"{path} {spec[:20]}: got {line[:200]!r}, want {want!r}"
            if path == "fail" and "boom" not in line:
                return f"fail: the handler's text did not cross: {line[:200]!r}"
        return None
    finally:
        s.stop()


def streams(srv, cli, transport, tmp):
    """Streams: echo with half-close (every payload back, byte for byte, then
    the server's end), a server that cancels (the opener gets what came
    first, then CANCELLED), and an opener that cancels (the server sees
    CANCELLED after the message that came first)."""
    addr = address(transport, tmp, f"st-{id(srv)}-{id(cli)}")
    env = env_for(transport)
    if srv[0] == "CLI":
        s = Listening(cli_listen_cmd(srv[1], "serve-stream", addr), env)
    else:
        s = Listening(srv + ["sserve", addr], env)
    try:
        if cli[0] == "CLI":
            # A byte pipe: what goes in comes back (chunking is the CLI's).
            data = b"hello stream\n" * 1000
            p = subprocess.run([cli[1]] + cli_opts(env) + ["stream", "secho", "--connect", s.addr], input=data,
                               capture_output=True, timeout=TIMEOUT, env=env)
            if p.returncode != 0 or p.stdout != data:
                return f"CLI stream: exit {p.returncode}, {len(p.stdout)} of {len(data)} bytes back: {p.stderr[:300]!r}"
            return None
        cases = [(["secho"] + PAYLOADS, [f"SMSG {EXPECTED[p]}" for p in PAYLOADS] + ["SEND"])]
        if srv[0] != "CLI":
            cases.append((["scancel"], [f"SMSG {EXPECTED['hex:68656c6c6f']}", "ERR CANCELLED"]))
            cases.append((["swatch", "--cancel", "hex:68656c6c6f"], ["CANCELLED"]))
        for args, want in cases:
            code, out, err = run(cli + ["sopen", s.addr] + args, env=env)
            got = [line if not line.startswith("ERR ") else " ".join(line.split()[:2]) for line in out]
            if got != want:
                return f"{args[0]}: got {out[-4:]} (exit {code}: {err[:300]}), want {want[-4:]}"
            if args[0] == "swatch":
                saw = s.lines(1)[0]
                if saw != "SAW CANCELLED 1":
                    return f"swatch: the server saw {saw!r}, want 'SAW CANCELLED 1'"
        return None
    finally:
        s.stop()


def transports_of(scenario):
    return ("tls", "psk") if scenario == "refused" else TRANSPORTS


# Languages whose agents implement sserve/sopen (streams): all of them.
STREAMS = {"rust", "cli", "kotlin", "node", "python", "c"}

# Languages whose agents implement pubobj/subobj with their msgpack helpers.
MSGPACK = {"python", "node"}
OBJ_CANON = ('{"big":1099511627776,"bytes":{"$bytes":"00ff"},"int":-3,"list":[1,2.5,true,null],'
             '"map":{"a":1},"str":"h\u00e9llo"}')


def msgpack(pub, sub, transport, tmp):
    addr = address(transport, tmp, f"mp-{id(pub)}-{id(sub)}")
    env = env_for(transport)
    s = Listening(sub + ["subobj", addr, "obj/**"], env)
    try:
        code, out, err = run(pub + ["pubobj", s.addr, "obj/value"], env=env)
        if code != 0 or not out or out[-1] != "DONE " + OBJ_CANON:
            return f"publisher: exit {code} {out} {err[:300]}"
        got = s.lines(1)[0]
        if got != "OBJ " + OBJ_CANON:
            return f"decoded {got!r}, want {OBJ_CANON!r}"
        return None
    finally:
        s.stop()


REFUSED = {"tls": "CLIENT_CERT_REQUIRED", "psk": "SHARED_KEY_REFUSED"}


def refused(srv, cli, transport, tmp):
    """A client the server refuses reports the same code in every language:
    over `tls`, a server that requires client certificates and a client
    without one (CLIENT_CERT_REQUIRED); over `psk`, a client whose key has
    the server's key id but other bytes (SHARED_KEY_REFUSED)."""
    want = REFUSED[transport]
    env = env_for(transport)
    s = Listening(cli_listen_cmd(srv[1], "serve", address(transport, tmp, "rf")) if srv[0] == "CLI"
                  else srv + ["serve", address(transport, tmp, "rf")], env)
    try:
        anon = env_for(transport, "refused")
        if cli[0] == "CLI":
            code, out, err = run([cli[1]] + cli_opts(anon) + ["req", "echo", "x", "--connect", s.addr], env=anon)
            if code != 1 or f"netchan: {want}" not in err:
                return f"CLI req: exit {code}, stderr {err[-300:]!r}"
            return None
        code, out, err = run(cli + ["req", s.addr, "echo", "hex:"], env=anon)
        line = out[-1] if out else f"(no output, exit {code}: {err[:300]})"
        if not line.startswith(f"ERR {want}"):
            return f"got {line[:200]!r}, want 'ERR {want}'"
        return None
    finally:
        s.stop()


def make_keys(agents, tmp):
    """One certificate for every agent (it serves and dials), issued for
    endpoint names `*-agent-*` (each agent is `LANG-agent-PID`), and one
    shared key, made by the CLI; and another key with the same id."""
    cli = agents.get("cli", [None, os.path.join(ROOT, "target", "debug", "netchan")])[1]
    d = os.path.join(tmp, "certs")
    subprocess.run([cli, "cert", "agent", "--endpoint", "*-agent-*", "--dir", d], check=True, capture_output=True, timeout=TIMEOUT)
    for f in ("keys", "other-keys"):
        subprocess.run([cli, "keygen", "interop", "--out", f"{d}/{f}"], check=True, capture_output=True,
                       timeout=TIMEOUT)
    SETTINGS[("tls", "good")] = "\n".join([f"tls.cert={d}/agent.pem", f"tls.key={d}/agent-key.pem",
                                           f"tls.ca={d}/ca.pem", "tls.client_auth=required"])
    SETTINGS[("tls", "refused")] = f"tls.ca={d}/ca.pem"
    SETTINGS[("psk", "good")] = f"psk={d}/keys"
    SETTINGS[("psk", "refused")] = f"psk={d}/other-keys"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    only = set(filter(None, args.only.split(",")))
    agents, skipped = find_agents(only)
    langs = sorted(agents)
    tmp = tempfile.mkdtemp(prefix="netchan-interop-")
    make_keys(agents, tmp)
    jobs = []
    for scenario, fn in SCENARIOS:
        for a in langs:
            for b in langs:
                if scenario == "msgpack" and not (a in MSGPACK and b in MSGPACK):
                    continue
                if scenario == "streams" and not (a in STREAMS and b in STREAMS):
                    continue
                for t in transports_of(scenario):
                    jobs.append((scenario, a, b, t, fn))

    def one(job):
        scenario, a, b, t, fn = job
        try:
            return job, fn(agents[a], agents[b], t, tmp)
        except Exception as e:  # a crash or timeout is a failure, reported
            return job, f"{type(e).__name__}: {e}"

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(one, jobs))
    failed = [(j, r) for j, r in results if r is not None]
    for scenario, _ in SCENARIOS:
        role = ("server", "client") if scenario in ("reqrep", "streams", "refused") else ("publisher", "subscriber")
        cols = [b for b in langs if (scenario != "msgpack" or b in MSGPACK)
                and (scenario != "streams" or b in STREAMS)]
        if not cols:
            continue
        print(f"\n{scenario}: rows = {role[0]}, columns = {role[1]}; cell = {'/'.join(transports_of(scenario))}")
        print(f"{'':>8} " + " ".join(f"{b:>11}" for b in cols))
        for a in cols:
            cells = []
            for b in cols:
                marks = []
                for t in transports_of(scenario):
                    r = next(r for (j, r) in results if j[:4] == (scenario, a, b, t))
                    marks.append("pass" if r is None else "FAIL")
                cells.append("/".join(marks))
            print(f"{a:>8} " + " ".join(f"{c:>11}" for c in cells))
    for lang, why in sorted(skipped.items()):
        print(f"skipped {lang}: {why}")
    for (scenario, a, b, t, _), why in failed:
        print(f"FAIL {scenario} {a} -> {b} over {t}: {why}")
    # Every pair involving a skipped language counts as skipped.
    total_langs = len(langs) + len(skipped)
    n_skipped = 2 * len(TRANSPORTS) * (total_langs * total_langs - len(langs) * len(langs))
    print(f"streams: checked between {', '.join(sorted(STREAMS))}")
    print("tls: mutual TLS with one certificate from `netchan cert` for every agent; psk: tcp:// with a shared "
          "key from `netchan keygen`; refused: a client without a certificate gets CLIENT_CERT_REQUIRED, "
          "one with another key SHARED_KEY_REFUSED")
    print("msgpack-typed payloads: checked between languages with msgpack helpers "
          f"({', '.join(sorted(MSGPACK))}); the others carry raw bytes only")
    passed = len(results) - len(failed)
    print(f"\n{passed} passed, {len(failed)} failed, {n_skipped} skipped")
    shutil.rmtree(tmp, ignore_errors=True)
    if skipped and os.environ.get("NETCHAN_INTEROP_REQUIRE_ALL") == "1":
        print(f"FAIL: NETCHAN_INTEROP_REQUIRE_ALL=1 but {', '.join(sorted(skipped))} skipped")
        return 1
    return 1 if failed else 0


SCENARIOS = (("pubsub", pubsub), ("reqrep", reqrep), ("streams", streams), ("msgpack", msgpack),
             ("refused", refused))

if __name__ == "__main__":
    sys.exit(main())
