#!/usr/bin/env bash
# Builds the Rust-side agents and runs the interop matrix (README.md here).
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
cargo build -q -p netchan --examples
cargo build -q -p netchan-c -p netchan-cli
if [ -z "${NETCHAN_PYTHON:-}" ] && [ -x target/python/test-venv/bin/python ]; then
    export NETCHAN_PYTHON="$repo/target/python/test-venv/bin/python"
fi
exec python3 tests/interop/run.py "$@"
