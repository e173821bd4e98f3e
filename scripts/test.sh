#!/usr/bin/env bash
# Runs every test of netchan: formatting, lints, the Rust tests, the C ABI
# tests and each binding's tests. Installs what it needs on a fresh machine.
# Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "toolchain"
if ! command -v cargo >/dev/null 2>&1; then
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
if command -v rustup >/dev/null 2>&1; then
    rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
    rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
fi
cargo --version

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

# A test that cannot run here fails instead of passing quietly, unless it
# is listed here with its reason (none is, today).
export NETCHAN_ALLOWED_SKIPS=""

step "cargo test (core, CLI, C library crate)"
cargo test --workspace --exclude netchan-python

step "short soak: churn, then descriptors, threads and memory back to baseline (20 s)"
NETCHAN_SOAK_SECS=20 cargo test -p netchan --test soak -- --ignored --nocapture

step "the fuzz targets compile (fuzz/, its own workspace)"
(cd fuzz && cargo check --quiet --locked)

step "generated header is committed"
git diff --exit-code include/netchan.h

step "every test a document names exists"
python3 scripts/check_doc_tests.py
python3 scripts/check_capabilities.py

step "every package carries the workspace's version"
python3 scripts/check_versions.py

# The suites below build every language, so the interop matrix must find
# them all: a language it skips fails the run instead of passing quietly.
export NETCHAN_INTEROP_REQUIRE_ALL=1
# The platforms suite runs last: it reuses the Python and Node suites'
# build tools (maturin, cargo-zigbuild) for the ARM wheel and addon.
for suite in tests/c/run.sh bindings/python/run-tests.sh bindings/node/run-tests.sh bindings/uniffi/run-tests.sh tests/interop/run.sh tests/platforms/run.sh; do
    if [ -f "$suite" ]; then
        step "$suite"
        bash "$suite"
    fi
done

# The wheel is abi3 for CPython 3.9+: its suite runs on the oldest too (the
# exit-crash loop shorter; the main run does 300). pyenv installs it without
# putting it on PATH (its shim refuses versions that are not selected), so
# look in pyenv's versions too; a machine without it gets Debian 11's
# python3.9 (Debian's archive is one of the registries this machine reaches).
find_py39() {
    for c in python3.9 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.9*/bin/python3.9 /usr/bin/python3.9; do
        if "$c" -c 'import distutils.cmd' 2>/dev/null; then
            "$c" -c 'import sys; print(sys.executable)'
            return
        fi
    done
}
py39="$(find_py39)"
if [ -z "$py39" ]; then
    # Debian 11's python3.9, pinned below the system's own packages. Its
    # distutils and lib2to3 come in packages that would replace Debian 12's
    # for Python 3.11, so only their Python 3.9 files are unpacked; the
    # suite's virtualenv then comes from the `virtualenv` package (Debian's
    # python3.9 has no ensurepip).
    step "installing python3.9 from Debian 11 (bullseye)"
    echo "deb http://deb.debian.org/debian bullseye main" > /etc/apt/sources.list.d/netchan-bullseye.list
    printf 'Package: *\nPin: release n=bullseye\nPin-Priority: 100\n' > /etc/apt/preferences.d/netchan-bullseye
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bullseye python3.9 >/dev/null
    debs="$(mktemp -d)"
    (cd "$debs" && apt-get download -qq -t bullseye python3-distutils=3.9.2-1 python3-lib2to3=3.9.2-1 2>/dev/null)
    for d in "$debs"/*.deb; do dpkg-deb -x "$d" "$debs/root"; done
    cp -rn "$debs/root/usr/lib/python3.9/." /usr/lib/python3.9/
    rm -rf "$debs"
    py39="$(find_py39)"
fi
[ -n "$py39" ] || { echo "python3.9 is needed for the oldest-Python run and could not be installed" >&2; exit 1; }
step "bindings/python/run-tests.sh on $("$py39" --version)"
PYTHON="$py39" NETCHAN_EXIT_RUNS=60 bash bindings/python/run-tests.sh

step "all tests passed"
