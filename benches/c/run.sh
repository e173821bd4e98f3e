#!/usr/bin/env bash
# C pub/sub throughput beside the Rust core's, measured in the same run:
# `netchan bench` (Rust publisher and subscriber processes) and the C
# publisher/subscriber processes of pubsub_bench.c over TCP on 127.0.0.1.
#
#   benches/c/run.sh [RUNS]   (default 3; prints a Markdown table)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-3}
cargo build --release -p netchan-c -p netchan-cli >/dev/null 2>&1 || cargo build --release -p netchan-c -p netchan-cli
out=target/c-bench
mkdir -p "$out"
cc -std=c11 -O2 -D_GNU_SOURCE -Iinclude benches/c/pubsub_bench.c -o "$out/pubsub_bench" \
    -Ltarget/release -Wl,-rpath,"$PWD/target/release" -lnetchan -lpthread

count_for() { if [ "$1" -le 64 ]; then echo 2000000; else echo 1000000; fi; }

# One C measurement: messages per second at the subscriber.
c_run() { # SIZE MODE
    local size=$1 mode=$2 count fifo line addr pubpid rate
    count=$(count_for "$size")
    fifo=$(mktemp -u "$out/fifo.XXXXXX")
    mkfifo "$fifo"
    "$out/pubsub_bench" sub tcp://127.0.0.1:0 "$count" "$mode" >"$fifo" &
    exec 3<"$fifo"
    read -r line <&3
    addr=${line#READY }
    "$out/pubsub_bench" pub "$addr" "$size" "$count" &
    pubpid=$!
    read -r line <&3
    wait "$pubpid"
    wait
    exec 3<&-
    rm -f "$fifo"
    # DONE n nanos
    set -- $line
    awk -v n="$2" -v ns="$3" 'BEGIN { printf "%.0f\n", (n - 1) / (ns / 1e9) }'
}

median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# The Rust figure from `netchan bench` (same message counts, same timing).
rust_run() { # SIZE
    target/release/netchan bench --transport tcp --sizes "$1" --latency-sizes 8 --samples 1 2>/dev/null |
        awk -F'|' '/^\| Tcp \|/ && NR < 8 { gsub(/ /, "", $4); print $4; exit }' |
        awk '{ v = $1; if (v ~ /M$/) { sub(/M/, "", v); v *= 1e6 } else if (v ~ /k$/) { sub(/k/, "", v); v *= 1e3 }; printf "%.0f\n", v }'
}

echo "| payload | Rust msg/s | C pull msg/s | C pull / Rust | C callback msg/s | C callback / Rust |"
echo "|---|---|---|---|---|---|"
for size in ${NETCHAN_BENCH_SIZES:-8 1024}; do
    r=() p=() c=()
    for _ in $(seq "$runs"); do
        r+=("$(rust_run "$size")")
        p+=("$(c_run "$size" pull)")
        c+=("$(c_run "$size" callback)")
    done
    rm=$(printf '%s\n' "${r[@]}" | median)
    pm=$(printf '%s\n' "${p[@]}" | median)
    cm=$(printf '%s\n' "${c[@]}" | median)
    awk -v s="$size" -v r="$rm" -v p="$pm" -v c="$cm" 'BEGIN {
        printf "| %s B | %.2f M | %.2f M | %.2f | %.2f M | %.2f |\n", s, r / 1e6, p / 1e6, p / r, c / 1e6, c / r }'
done
echo
echo "(median of $runs runs each, interleaved; Rust figures from \`netchan bench --transport tcp\`)"
