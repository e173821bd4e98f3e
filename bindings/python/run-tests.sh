#!/usr/bin/env bash
# Builds the netchan wheel and runs the Python binding's tests against it,
# installed into a fresh virtualenv the way a user would install it.
# Needs: Rust (cargo) and Python >= 3.9 (python3.11 preferred); PyPI access
# for maturin, pytest, pytest-timeout, mypy and ziglang on the first run.
# Usage: bash bindings/python/run-tests.sh [extra pytest args]
# Env: PYTHON (interpreter to use), NETCHAN_WHEEL_NATIVE=1 (skip zig; build a
# wheel for this machine's glibc only), NETCHAN_EXIT_RUNS (exit-loop runs).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$here"

py="${PYTHON:-$(command -v python3.11 || command -v python3)}"
work="$repo/target/python"
tools="$work/tools-venv"
wheels="$work/wheels"
mkdir -p "$work"

step() { printf '\n==> python: %s\n' "$*"; }

# A virtualenv for "$py" in $1. Debian's own interpreters come without
# ensurepip (it is in python3-venv, and no such package exists for an
# older Python installed from another release), so `-m venv` fails there:
# then PyPI's virtualenv, which brings its own pip, makes it.
make_venv() {
    if "$py" -m venv "$1" >/dev/null 2>&1; then
        return
    fi
    rm -rf "$1"
    echo "$("$py" --version) has no ensurepip: making the virtualenv with PyPI's virtualenv"
    "$tools/bin/pip" install --quiet "virtualenv>=20"
    "$tools/bin/virtualenv" --quiet -p "$py" "$1"
}

step "build tools ($("$py" --version))"
if [ ! -x "$tools/bin/maturin" ]; then
    # The tools venv needs a Python with ensurepip: the preferred one.
    "$(command -v python3.11 || command -v python3)" -m venv "$tools"
    "$tools/bin/pip" install --quiet --upgrade pip
    "$tools/bin/pip" install --quiet "maturin>=1.9,<2" "ziglang>=0.13"
fi

step "netchan CLI (for the interop tests)"
(cd "$repo" && cargo build --quiet -p netchan-cli)

step "wheel"
rm -rf "$wheels"
build=("$tools/bin/maturin" build --release --out "$wheels" -i "$py")
if [ "${NETCHAN_WHEEL_NATIVE:-0}" != 1 ] && PATH="$tools/bin:$PATH" "${build[@]}" --zig --compatibility manylinux2014; then
    echo "built a portable manylinux2014 wheel with zig"
else
    echo "zig build unavailable or failed: building a wheel for this machine's glibc"
    "${build[@]}"
fi
wheel="$(ls "$wheels"/netchan-*.whl)"
echo "wheel: $(basename "$wheel")"

step "fresh virtualenv with the wheel"
venv="$work/test-venv"
rm -rf "$venv"
make_venv "$venv"
"$venv/bin/pip" install --quiet "$wheel"
# Nothing but the wheel is needed to import it:
"$venv/bin/python" -c "import netchan, netchan.aio; print('import ok', netchan.__version__)"
"$venv/bin/pip" install --quiet "pytest>=8" pytest-timeout mypy

step "pytest"
# Run from the tests directory so `import netchan` is the installed wheel,
# not the source tree.
cd "$here/tests"
NETCHAN_CLI="$repo/target/debug/netchan" exec "$venv/bin/python" -m pytest \
    -c "$here/pyproject.toml" --rootdir "$here" -p no:cacheprovider "$@" .
