#!/usr/bin/env bash
# Python benchmark: netchan beside pyzmq and eclipse-zenoh, separate processes
# over loopback TCP. Not part of CI. Builds the wheel, makes its own venv.
# Usage: bash bindings/python/bench/run.sh [--rounds=N] [netchan|pyzmq|zenoh ...]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
py="${PYTHON:-$(command -v python3.11 || command -v python3)}"
work="$repo/target/python-bench"
mkdir -p "$work"
if [ ! -x "$work/venv/bin/python" ]; then
    "$py" -m venv "$work/venv"
    "$work/venv/bin/pip" install --quiet "maturin>=1.9,<2" pyzmq eclipse-zenoh
fi
rm -rf "$work/wheels"
(cd "$here/.." && "$work/venv/bin/maturin" build --release --out "$work/wheels" -i "$work/venv/bin/python" >/dev/null)
"$work/venv/bin/pip" install --quiet --force-reinstall "$work"/wheels/netchan-*.whl
"$work/venv/bin/python" -c 'import zmq, zenoh; print("pyzmq", zmq.__version__, "/ zenoh", zenoh.__version__ if hasattr(zenoh, "__version__") else "?")'
exec "$work/venv/bin/python" "$here/bench.py" "$@"
