#!/usr/bin/env bash
# Builds the netchan npm package (napi-rs addon) and runs the Node binding's
# tests: the node:test suite, a `tsc --strict` check of an example, then
# `npm pack` and an offline install of the tarball into an empty project with
# a require() and an ESM import smoke test there.
# Needs: Rust (cargo), Node >= 18 with npm; npm registry access on the first run.
# Usage: bash bindings/node/run-tests.sh [extra node --test args]
# Env: NETCHAN_NODE_NATIVE=1 (skip the zig build; build for this machine's
# glibc only), NETCHAN_PYTHON (a Python with netchan, for the interop test).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$here"
work="$repo/target/node"
mkdir -p "$work"

step() { printf '\n==> node: %s\n' "$*"; }

step "npm install ($(node --version), npm $(npm --version))"
npm install --no-audit --no-fund --loglevel=error

step "netchan CLI (for the interop tests)"
(cd "$repo" && cargo build --quiet -p netchan-cli)

step "addon"
# The portable build (glibc 2.17, TOOLCHAINS N7) needs cargo-zigbuild and zig;
# both are installed under target/node/tools on first use. Without them (or
# if that build fails) the addon is built for this machine's glibc.
portable=0
if [ "${NETCHAN_NODE_NATIVE:-0}" != 1 ]; then
    tools="$work/tools"
    if [ ! -x "$tools/bin/cargo-zigbuild" ]; then
        cargo install --quiet --locked cargo-zigbuild --root "$tools" || true
    fi
    if [ ! -x "$tools/venv/bin/python-zig" ] && command -v python3 >/dev/null; then
        (python3 -m venv "$tools/venv" && "$tools/venv/bin/pip" install --quiet "ziglang>=0.13,<0.16") || true
    fi
    if [ -x "$tools/bin/cargo-zigbuild" ] && [ -x "$tools/venv/bin/python-zig" ] &&
        PATH="$tools/bin:$tools/venv/bin:$PATH" npx --no-install napi build --platform --release \
            -x --target x86_64-unknown-linux-gnu.2.17; then
        portable=1
    fi
fi
if [ "$portable" = 1 ]; then
    echo "built a portable addon (glibc >= 2.17) with cargo-zigbuild"
else
    echo "zig build unavailable or failed: building the addon for this machine's glibc"
    npm run build
fi
ls -l ./*.node
if command -v objdump >/dev/null; then
    echo "highest glibc symbol version needed: $(objdump -T ./*.node | grep -o 'GLIBC_[0-9.]*' | sort -Vu | tail -1)"
fi

step "generated index.js / index.d.ts are committed"
if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git -C "$repo" diff --exit-code -- bindings/node/index.js bindings/node/index.d.ts
fi

step "tsc --strict on an example"
npm run --silent typecheck

step "node:test"
NETCHAN_CLI="$repo/target/debug/netchan" node --test --test-concurrency=1 --test-timeout=60000 "$@" test/*.test.js

step "npm pack and an offline install into an empty project"
rm -rf "$work/pack" "$work/consumer"
mkdir -p "$work/pack" "$work/consumer"
npm pack --silent --pack-destination "$work/pack" >/dev/null
tarball="$(ls "$work"/pack/netchan-*.tgz)"
echo "tarball: $(basename "$tarball") ($(du -h "$tarball" | cut -f1))"
cd "$work/consumer"
echo '{"name": "consumer", "version": "1.0.0", "private": true}' >package.json
# --offline: nothing may come from the network. The package has no runtime
# dependencies; its per-platform optional packages are not published yet,
# and the addon for this platform is inside the tarball.
npm install --offline --no-audit --no-fund --loglevel=error "$tarball"
cat >smoke.cjs <<'EOF'
const { Endpoint, codes } = require('netchan')
;(async () => {
  const a = new Endpoint({ name: 'smoke-a' })
  const addr = await a.listen('tcp://127.0.0.1:0')
  a.serve('echo', (r) => r.payload)
  const b = new Endpoint({ name: 'smoke-b' })
  await b.connect(addr)
  await b.waitForServers('echo', 5000)
  const r = (await b.request('echo', 'ok')).toString()
  const e = await b.request('none').catch((x) => x.code)
  await b.close(); await a.close()
  if (r !== 'ok' || e !== codes.NO_RESPONDERS) throw new Error(`smoke failed: ${r} ${e}`)
  console.log('require() smoke test: ok')
})()
EOF
cat >smoke.mjs <<'EOF'
import { Endpoint } from 'netchan'
import netchan from 'netchan'
const a = new Endpoint({ name: 'esm-a' })
const addr = await a.listen('tcp://127.0.0.1:0')
const sub = a.subscribe('t')
const b = new netchan.Endpoint({ name: 'esm-b' })
await b.connect(addr)
await b.waitForSubscribers('t', 5000)
await b.publishObj('t', { esm: true })
for await (const m of sub) { if (!m.obj().esm) throw new Error('bad message'); break }
await b.close(); await a.close()
console.log('ESM import smoke test: ok')
EOF
node smoke.cjs
node smoke.mjs
echo "node binding: all tests passed"
