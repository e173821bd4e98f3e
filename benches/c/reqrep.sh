#!/usr/bin/env bash
# C request/reply round trips from a plain thread (the client's main
# thread, netchan_endpoint_request_blocking) to an echo service in another
# process over TCP on 127.0.0.1, without and with busy polling, with the
# CPU time of both processes per 10,000 round trips (warm-up included).
# Runs interleaved, one row per run.
#
#   benches/c/reqrep.sh [RUNS] [SAMPLES]   (default 3 and 20000)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
samples=${2:-20000}
cargo build --release -p netchan-c >/dev/null 2>&1 || cargo build --release -p netchan-c
out=target/c-bench
mkdir -p "$out"
cc -std=c11 -O2 -D_GNU_SOURCE -Iinclude benches/c/reqrep_bench.c -o "$out/reqrep_bench" \
    -Ltarget/release -Wl,-rpath,"$PWD/target/release" -lnetchan -lpthread

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

one() { # BUSY_US -> "p50 p99 cpu_per_10k_client+server"
    local busy=$1 dir srv line addr client server
    dir=$(mktemp -d "$out/rr.XXXXXX")
    mkfifo "$dir/in" "$dir/out"
    "$out/reqrep_bench" serve tcp://127.0.0.1:0 <"$dir/in" >"$dir/out" &
    pids+=($!)
    srv=$!
    exec 4>"$dir/in" 5<"$dir/out"
    read -r line <&5
    addr=${line#READY }
    client=$("$out/reqrep_bench" req "$addr" "$samples" "$busy")
    exec 4>&-
    read -r line <&5
    exec 5<&-
    wait "$srv"
    rm -rf "$dir"
    server=${line#CPU }
    set -- $client # RTT p50 p99 CPU us
    awk -v p50="$2" -v p99="$3" -v c="$5" -v s="$server" -v n="$((samples + 1000))" \
        'BEGIN { printf "%s us | %s us | %.0f+%.0f ms\n", p50, p99, c / n * 10000 / 1000, s / n * 10000 / 1000 }'
}

echo "| run | busy poll | p50 | p99 | CPU client+server per 10k |"
echo "|---|---|---|---|---|"
for r in $(seq "$runs"); do
    for busy in 0 100; do
        echo "| $r | $busy us | $(one "$busy") |"
    done
done
