#!/usr/bin/env bash
# Builds the uniffi library and the netchan CLI, regenerates the Kotlin and Swift
# bindings (failing if the committed ones drifted), runs the Kotlin tests with
# Maven (JUnit: every API over TCP and Unix sockets, lifecycle, CLI interop,
# examples), and syntax-checks the Swift package with tree-sitter's Swift grammar.
# Needs: Rust, JDK 17, Maven (Maven Central reachable), Python 3 (PyPI reachable).
# Usage: bash bindings/uniffi/run-tests.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

step() { printf '\n==> uniffi: %s\n' "$*"; }

step "native library and CLI (debug)"
cargo build --quiet -p netchan-uniffi -p netchan-cli

step "uniffi-bindgen (its own workspace, debug: TOOLCHAINS U6)"
(cd "$here/bindgen" && CARGO_TARGET_DIR="$repo/target/uniffi-bindgen" cargo build --quiet)
bindgen="$repo/target/uniffi-bindgen/debug/uniffi-bindgen"

step "generate Kotlin and Swift"
gen="$repo/target/uniffi-gen"
rm -rf "$gen"
"$bindgen" generate --no-format --metadata-no-deps -l kotlin -l swift -o "$gen" "$repo/target/debug/libnetchan_uniffi.so"
cp "$gen/dev/netchan/netchan.kt" "$here/kotlin/src/main/kotlin/dev/netchan/netchan.kt"
cp "$gen/Netchan.swift" "$here/swift/Sources/Netchan/Netchan.swift"
cp "$gen/netchanFFI.h" "$here/swift/Sources/netchanFFI/include/netchanFFI.h"
# SwiftPM and xcodebuild look for a module map by this name.
cp "$gen/netchanFFI.modulemap" "$here/swift/Sources/netchanFFI/include/module.modulemap"
if [ -n "${CI:-}" ] || [ "${NETCHAN_CHECK_DRIFT:-0}" = 1 ]; then
    # Generated sources are committed; a change to the Rust interface must
    # come with the regenerated files.
    git diff --exit-code -- "$here/kotlin/src/main/kotlin/dev/netchan/netchan.kt" "$here/swift/Sources" \
        || { echo "generated bindings drifted: commit the files above" >&2; exit 1; }
fi

step "Kotlin: mvn test"
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
    "$repo"/examples/swift/*.swift
# The header must at least be valid C.
# gcc does not know clang's nullability qualifiers; define them away.
printf '#include "%s"\n' "$here/swift/Sources/netchanFFI/include/netchanFFI.h" |
    cc -fsyntax-only -D_Nonnull= -D_Nullable= -D_Null_unspecified= -x c -
echo "netchanFFI.h: valid C"

step "uniffi bindings passed"
