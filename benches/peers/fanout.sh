#!/usr/bin/env bash
# Fan-out beside ZeroMQ: one publisher, K subscriber processes, 8-byte
# messages over TCP on loopback, K = 1, 4, 16, 32, rounds interleaved.
# Not part of CI (benches/peers/run.sh calls it). Usage:
#   bash benches/peers/fanout.sh [--runs N] [--messages N]
# Prints a markdown table: total delivered (K x the slowest subscriber's
# rate), medians of the runs with min-max spread.
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$repo"
runs=3; n=500000
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs="$2"; shift ;;
        --messages) n="$2"; shift ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
    shift
done
if [ ! -f /usr/include/zmq.h ]; then
    apt-get install -y -q libzmq3-dev >/dev/null
fi
cargo build -q --release -p netchan-cli
(cd benches/peers/fanout && cargo build -q --release)
mkdir -p target/bench
cc -O2 benches/peers/zmq_fanout.c -lzmq -o target/bench/zmq_fanout
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for r in $(seq "$runs"); do
    for k in 1 4 16 32; do
        echo "K $k" >> "$out"
        timeout 300 benches/peers/fanout/target/release/fanout-bench target/release/netchan "$k" "$n" >> "$out"
        timeout 300 target/bench/zmq_fanout "$k" "$n" xpub >> "$out"
        timeout 300 target/bench/zmq_fanout "$k" "$n" pub >> "$out"
    done
done
python3 - "$out" "$runs" "$n" <<'EOF'
import re, statistics, sys
path, runs, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cells = {}
k = None
for line in open(path):
    if line.startswith("K "):
        k = int(line.split()[1])
    elif m := re.search(r"total \(K x slowest\) ([\d.]+) M", line):
        cells.setdefault((k, "netchan"), []).append(float(m.group(1)))
    elif line.startswith("zmq fanout"):
        _, _, mode, _, total, got, sent = line.split()
        cells.setdefault((k, mode), []).append(float(total) / 1e6)
        cells.setdefault((k, mode + "-got"), []).append(int(got) / int(sent))
def cell(k, name):
    v = cells.get((k, name), [])
    return f"{statistics.median(v):.2f} M ({min(v):.2f}-{max(v):.2f})" if v else "-"
print(f"### Fan-out: one publisher, K subscriber processes (TCP, 8 B, {n} messages; total delivered msg/s = K x slowest subscriber; median of {runs} interleaved runs, min-max)\n")
print("| K | netchan (`Block`, exact) | ZeroMQ XPUB + `ZMQ_XPUB_NODROP` (exact) | ZeroMQ PUB/SUB | PUB/SUB: share delivered |")
print("|---|---|---|---|---|")
for k in (1, 4, 16, 32):
    got = cells.get((k, "pub-got"), [])
    share = f"{100 * statistics.median(got):.1f} %" if got else "-"
    print(f"| {k} | {cell(k, 'netchan')} | {cell(k, 'xpub')} | {cell(k, 'pub')} | {share} |")
EOF
