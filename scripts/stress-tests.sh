#!/usr/bin/env bash
# Runs every Rust test binary of the workspace ROUNDS times (default 20),
# THREE copies at once (default 3), and stops at the first failure: a green
# run here means the suite holds on a busy machine, not only on an idle one.
# Not part of CI (about 40 minutes on the 2-core VM); run it before calling
# a change to the tests done.
# Usage: bash scripts/stress-tests.sh [ROUNDS] [COPIES]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-20}"
copies="${2:-3}"
export NETCHAN_ALLOWED_SKIPS=""

echo "==> building the test binaries"
# Each line: a test binary and the crate directory cargo runs it from.
mapfile -t bins < <(cargo test --workspace --exclude netchan-python --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, os, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("profile", {}).get("test") and m.get("executable"):
        print(m["executable"] + "\t" + os.path.dirname(m["manifest_path"]))
')
echo "    ${#bins[@]} test binaries"

logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT
run_copy() { # COPY ROUND
    local entry exe dir log
    for entry in "${bins[@]}"; do
        exe="${entry%%$'\t'*}"
        dir="${entry#*$'\t'}"
        log="$logs/$1-$(basename "$exe").log"
        if ! (cd "$dir" && "$exe" -q >"$log" 2>&1); then
            echo "FAILED: round $2, copy $1: $(basename "$exe")"
            tail -40 "$log"
            return 1
        fi
    done
}

start=$(date +%s)
for r in $(seq 1 "$rounds"); do
    pids=()
    for c in $(seq 1 "$copies"); do
        run_copy "$c" "$r" & pids+=($!)
    done
    failed=0
    for p in "${pids[@]}"; do wait "$p" || failed=1; done
    if [ "$failed" = 1 ]; then
        echo "stress: failed in round $r of $rounds ($copies copies at once)"
        exit 1
    fi
    echo "round $r/$rounds passed ($copies copies at once, $(( $(date +%s) - start )) s so far)"
done
echo "stress: all $rounds rounds passed with $copies copies at once in $(( $(date +%s) - start )) s"
