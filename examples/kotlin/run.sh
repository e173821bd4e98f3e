#!/usr/bin/env bash
# Runs one Kotlin example against a debug build of the library.
# Usage: bash examples/kotlin/run.sh pubsub|reqrep|ping [ADDR]
# (The tests in bindings/uniffi/kotlin run every example too.)
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
proj="$repo/bindings/uniffi/kotlin"
name="${1:?usage: run.sh pubsub|reqrep|ping [ADDR]}"
shift
(cd "$repo" && cargo build --quiet -p netchan-uniffi)
mvn -q -B -Dstyle.color=never -f "$proj/pom.xml" test-compile dependency:build-classpath \
    -Dmdep.outputFile="$proj/target/classpath.txt" -Dmdep.includeScope=runtime
cp="$proj/target/classes:$proj/target/test-classes:$(cat "$proj/target/classpath.txt")"
exec java -cp "$cp" "examples.$name.${name^}Kt" "$@"
