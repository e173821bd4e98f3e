#!/usr/bin/env bash
# netchan beside ZeroMQ (libzmq, C) and the raw-socket floor, in one run.
# Not part of CI. Usage: bash benches/peers/run.sh [--quick] [--runs N]
# Prints a markdown report (docs/BENCHMARKS.md is made from it).
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
quick=""; runs=3; zenoh=0
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) quick="--quick" ;;
        --runs) runs="$2"; shift ;;
        --zenoh) zenoh=1 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
if [ ! -f /usr/include/zmq.h ]; then
    apt-get install -y -q libzmq3-dev >/dev/null
fi
cargo build -q --release -p netchan-cli
mkdir -p target/bench
cc -O2 benches/peers/zmq_bench.c -lzmq -o target/bench/zmq_bench
out=target/bench/report-$(date +%Y%m%d-%H%M%S)
mkdir -p "$out"
if [ "$zenoh" = 1 ]; then
    # A large build (minutes), kept out of CI: its own workspace.
    (cd benches/peers/zenoh && cargo build -q --release)
fi
for i in $(seq "$runs"); do
    ./target/release/netchan bench $quick > "$out/netchan-$i.md"
    # Request/reply again with netchan's side on plain threads (block_on),
    # without and with busy polling.
    ./target/release/netchan bench $quick --latency-only --caller thread > "$out/netchan-thread-$i.md"
    ./target/release/netchan bench $quick --latency-only --caller thread --busy-poll 100 > "$out/netchan-busy-$i.md"
    ./target/bench/zmq_bench $quick > "$out/zmq-$i.txt"
    if [ "$zenoh" = 1 ]; then
        python3 benches/peers/zenoh_run.py $quick > "$out/zenoh-$i.txt"
    fi
done
python3 benches/peers/report.py "$out" "$runs" "$quick"
echo
# One stream, 64 KiB messages, beside the raw socket (rounds interleaved
# inside the command).
./target/release/netchan bench $quick --streams --runs "$runs"
echo
bash benches/peers/fanout.sh --runs "$runs"
