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

step "cargo test (core, CLI, C library crate)"
cargo test --workspace --exclude netchan-python

step "generated header is committed"
git diff --exit-code include/netchan.h

step "every test a document names exists"
python3 scripts/check_doc_tests.py

# The suites below build every language, so the interop matrix must find
# them all: a language it skips fails the run instead of passing quietly.
export NETCHAN_INTEROP_REQUIRE_ALL=1
for suite in tests/c/run.sh bindings/python/run-tests.sh bindings/node/run-tests.sh bindings/uniffi/run-tests.sh tests/interop/run.sh; do
    if [ -f "$suite" ]; then
        step "$suite"
        bash "$suite"
    fi
done

# The wheel is abi3 for CPython 3.9+: run its suite on the oldest too when
# this machine has it (the exit-crash loop shorter; the main run does 300).
# (pyenv installs it without putting it on PATH: its shim refuses versions
# that are not selected, so look in pyenv's versions too.)
py39=""
for c in python3.9 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.9*/bin/python3.9; do
    if "$c" -c pass 2>/dev/null; then
        py39="$("$c" -c 'import sys; print(sys.executable)')"
        break
    fi
done
if [ -n "$py39" ]; then
    step "bindings/python/run-tests.sh on $("$py39" --version)"
    PYTHON="$py39" NETCHAN_EXIT_RUNS=60 bash bindings/python/run-tests.sh
else
    step "python3.9 not found: the Python suite ran on one interpreter only"
fi

step "all tests passed"
