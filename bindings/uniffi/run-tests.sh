#!/usr/bin/env bash
# Builds the uniffi library and the netchan CLI, runs clippy on the crate
# (warnings and undocumented unsafe blocks are errors), generates the Kotlin and Swift
# bindings into a temporary directory and fails if they differ from the
# committed ones (which it never writes: the tests below run on what is
# committed), runs the Kotlin tests with Maven (JUnit: every API over TCP and
# Unix sockets, lifecycle, CLI interop, examples), and syntax-checks the Swift
# package with tree-sitter's Swift grammar.
# Needs: Rust, JDK 17, Maven (Maven Central reachable), Python 3 (PyPI reachable).
# Usage: bash bindings/uniffi/run-tests.sh
#        bash bindings/uniffi/run-tests.sh --regenerate   (after changing the Rust
#        interface: writes the generated files over the committed ones, then stops)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"
regenerate=0
case "${1:-}" in
    "") ;;
    --regenerate) regenerate=1 ;;
    *) echo "usage: $0 [--regenerate]" >&2; exit 2 ;;
esac

step() { printf '\n==> uniffi: %s\n' "$*"; }

step "native library and CLI (debug)"
cargo build --quiet -p netchan-uniffi -p netchan-cli

step "clippy: warnings are errors, and so is an unsafe block without a SAFETY comment"
# lib.rs denies clippy::undocumented_unsafe_blocks; this is where it bites.
cargo clippy --quiet -p netchan-uniffi --all-targets -- -D warnings

step "uniffi-bindgen (its own workspace, debug: TOOLCHAINS U6)"
(cd "$here/bindgen" && CARGO_TARGET_DIR="$repo/target/uniffi-bindgen" cargo build --quiet)
bindgen="$repo/target/uniffi-bindgen/debug/uniffi-bindgen"

step "generated bindings: compare with the committed ones"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
gen="$tmp/generated"
"$bindgen" generate --no-format --metadata-no-deps -l kotlin -l swift -o "$gen" "$repo/target/debug/libnetchan_uniffi.so"
# Kotlin exception messages start with their code (TIMEOUT: ...).
python3 "$here/tools/kotlin_error_messages.py" "$gen/dev/netchan/netchan.kt"
# What the bindgen writes (relative to its output directory) = where it is
# committed (relative to this directory). SwiftPM and xcodebuild look for the
# module map as module.modulemap.
generated=(
    "dev/netchan/netchan.kt=kotlin/src/main/kotlin/dev/netchan/netchan.kt"
    "Netchan.swift=swift/Sources/Netchan/Netchan.swift"
    "netchanFFI.h=swift/Sources/netchanFFI/include/netchanFFI.h"
    "netchanFFI.modulemap=swift/Sources/netchanFFI/include/module.modulemap"
)
# drift FRESH_DIR COMMITTED_ROOT: prints every committed file that differs
# from (or lacks) its freshly generated twin, with the start of the diff;
# returns 1 if any does. Reads both sides, writes neither.
drift() {
    local rc=0 pair fresh committed
    for pair in "${generated[@]}"; do
        fresh="$1/${pair%%=*}" committed="$2/${pair#*=}"
        if [ ! -f "$fresh" ]; then
            echo "the bindgen no longer writes ${pair%%=*}" >&2; rc=1
        elif ! cmp -s "$fresh" "$committed"; then
            echo "drifted: bindings/uniffi/${pair#*=}" >&2
            diff -u "$committed" "$fresh" 2>&1 | head -n 40 >&2 || true
            rc=1
        fi
    done
    return "$rc"
}
if [ "$regenerate" = 1 ]; then
    for pair in "${generated[@]}"; do
        cp "$gen/${pair%%=*}" "$here/${pair#*=}"
    done
    echo "wrote the generated bindings over the committed ones; review and commit them"
    exit 0
fi
# The check itself must be able to fail: a committed tree with one changed
# line, and one with a file missing, are both reported as drift.
mkdir -p "$tmp/tampered"
for pair in "${generated[@]}"; do
    mkdir -p "$(dirname "$tmp/tampered/${pair#*=}")"
    cp "$gen/${pair%%=*}" "$tmp/tampered/${pair#*=}"
done
drift "$gen" "$tmp/tampered" 2>/dev/null || { echo "drift check: an identical tree was reported as drifted" >&2; exit 1; }
echo "// hand edit" >>"$tmp/tampered/kotlin/src/main/kotlin/dev/netchan/netchan.kt"
if drift "$gen" "$tmp/tampered" 2>/dev/null; then echo "drift check: a changed file went unnoticed" >&2; exit 1; fi
cp "$gen/dev/netchan/netchan.kt" "$tmp/tampered/kotlin/src/main/kotlin/dev/netchan/netchan.kt"
rm "$tmp/tampered/swift/Sources/netchanFFI/include/netchanFFI.h"
if drift "$gen" "$tmp/tampered" 2>/dev/null; then echo "drift check: a missing file went unnoticed" >&2; exit 1; fi
# Now the real comparison. Generated sources are committed; a change to the
# Rust interface must come with the regenerated files.
if ! drift "$gen" "$here"; then
    echo "the committed Kotlin/Swift bindings differ from what the Rust interface generates:" >&2
    echo "run 'bash bindings/uniffi/run-tests.sh --regenerate' and commit the files it writes" >&2
    exit 1
fi
echo "generated bindings match the committed ones (${#generated[@]} files)"

step "the README's snippets, as source files (Kotlin: compiled and run by ReadmeTest)"
snippets="$repo/target/uniffi-readme-snippets"
python3 "$here/tools/readme_snippets.py" "$here/README.md" "$snippets"

step "Kotlin: mvn test"
# The summary below reads Surefire's reports: a report left by an earlier
# run (of a test class since renamed or deleted) must not count as a pass.
rm -rf "$here/kotlin/target/surefire-reports"
mvn -q -B -Dstyle.color=never -f "$here/kotlin/pom.xml" test || mvn_rc=$?
echo
# -q hides Surefire's own summary; print it from the reports.
python3 - "$here/kotlin/target/surefire-reports" <<'PY'
import glob, sys, xml.etree.ElementTree as ET
t = f = e = s = 0
for p in glob.glob(sys.argv[1] + "/TEST-*.xml"):
    r = ET.parse(p).getroot()
    t += int(r.get("tests", 0)); f += int(r.get("failures", 0))
    e += int(r.get("errors", 0)); s += int(r.get("skipped", 0))
print(f"Tests run: {t}, Failures: {f}, Errors: {e}, Skipped: {s}")
print(f"kotlin: {t - f - e - s} passed, {f + e} failed, {s} skipped")
# A skip is not a pass (none is expected), and a run with no test is no run.
sys.exit(1 if t == 0 or s else 0)
PY
[ "${mvn_rc:-0}" = 0 ] || { echo "mvn test failed ($mvn_rc)" >&2; exit "$mvn_rc"; }

step "Kotlin: the jar carries the native library where JNA looks"
mvn -q -B -Dstyle.color=never -f "$here/kotlin/pom.xml" jar:jar
jar="$here/kotlin/target/netchan-0.1.0.jar"
python3 - "$jar" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
assert "linux-x86-64/libnetchan_uniffi.so" in names, "native library missing from the jar"
assert "dev/netchan/Endpoint.class" in names, "Kotlin classes missing from the jar"
print(f"{sys.argv[1]}: linux-x86-64/libnetchan_uniffi.so and dev/netchan classes present")
PY

step "Swift: syntax check with tree-sitter"
venv="$repo/target/uniffi-swiftcheck"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import tree_sitter, tree_sitter_swift" 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "tree-sitter==0.26.1" "tree-sitter-swift==0.7.4"
fi
"$venv/bin/python" "$here/tools/check_swift_syntax.py" \
    "$here/swift/Sources/Netchan/Netchan.swift" \
    "$here/swift/Sources/Netchan/Netchan+Swift.swift" \
    "$here/swift/Package.swift" \
    "$repo"/examples/swift/*.swift \
    "$snippets"/*.swift
# The header must at least be valid C.
# gcc does not know clang's nullability qualifiers; define them away.
printf '#include "%s"\n' "$here/swift/Sources/netchanFFI/include/netchanFFI.h" |
    cc -fsyntax-only -D_Nonnull= -D_Nullable= -D_Null_unspecified= -x c -
echo "netchanFFI.h: valid C"

step "uniffi bindings passed"
