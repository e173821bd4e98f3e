#!/usr/bin/env bash
# Builds the netchan npm package (napi-rs addon) and runs the Node binding's
# tests: the addon's Rust unit tests, a `tsc --strict` check of an example,
# then the node:test suite
# (test/package.test.js packs the package and this platform's addon package
# and installs both offline into an empty project, with a require() and an
# ESM import smoke test there, checks the errors without an addon, and that
# the generated index.d.ts is the committed one).
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

step "the addon's Rust unit tests"
(cd "$repo" && cargo test --quiet -p netchan-node)

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
        PATH="$tools/bin:$tools/venv/bin:$PATH" npx --no-install napi build --platform --release --no-js \
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

step "tsc --strict on an example"
npm run --silent typecheck

step "node:test"
# NETCHAN_NODE_PORTABLE tells test/package.test.js which addon was built.
NETCHAN_NODE_PORTABLE="$portable" NETCHAN_CLI="$repo/target/debug/netchan" node --test --test-concurrency=1 --test-timeout=60000 "$@" test/*.test.js

echo "node binding: all tests passed"
