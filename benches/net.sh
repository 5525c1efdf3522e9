#!/usr/bin/env bash
# Loopback throughput, in one run against one `iperf3 -s`: the stock
# `iperf3 -c` versus `speediso bench net`, 1 and 4 streams, forward and
# reverse. Each pair runs ROUNDS times, alternating which goes first, and the
# median of each is compared. Figures are the receiver's (as iperf3 prints
# for "receiver"). Needs iperf3 and python3 (JSON parsing only).
#
#   benches/net.sh                 # 10 s per run, 3 rounds
#   DURATION=5 ROUNDS=5 benches/net.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${SPEEDISO_BIN:-target/release/speediso}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
[ -x "$BIN" ] || cargo build --release
command -v iperf3 >/dev/null || { echo "iperf3 is not installed" >&2; exit 1; }

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
iperf3 -s -B 127.0.0.1 -p "$PORT" >/dev/null 2>&1 &
SERVER=$!
trap 'kill "$SERVER" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
    grep -qi ":$(printf '%04X' "$PORT") 00000000:0000 0A" /proc/net/tcp && break
    sleep 0.05
done

# Receiver-side Mbit/s of one run of each tool.
iperf3_mbps() { # streams, extra flag
    iperf3 -c 127.0.0.1 -p "$PORT" -t "$DURATION" -P "$1" ${2:+"$2"} --json |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6)'
}
speediso_mbps() {
    SPEEDISO_RUN_DIR=$(mktemp -d) "$BIN" --cmdline "" bench net --server "127.0.0.1:$PORT" \
        --duration "$DURATION" --streams "$1" ${2:+"$2"} --json 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["received_mbps"])'
}
median() { python3 -c 'import sys,statistics; print(statistics.median(float(x) for x in sys.argv[1:]))' "$@"; }

echo "machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p'), $(iperf3 --version | head -1)"
echo "duration ${DURATION}s, ${ROUNDS} rounds, median receiver Mbit/s"
printf '%-22s %12s %12s %8s\n' case iperf3 speediso ratio
for mode in "" --reverse; do
    for streams in 1 4; do
        a=() b=()
        for r in $(seq "$ROUNDS"); do
            if (( r % 2 )); then
                a+=("$(iperf3_mbps "$streams" "$mode")"); sleep 1
                b+=("$(speediso_mbps "$streams" "$mode")"); sleep 1
            else
                b+=("$(speediso_mbps "$streams" "$mode")"); sleep 1
                a+=("$(iperf3_mbps "$streams" "$mode")"); sleep 1
            fi
        done
        ma=$(median "${a[@]}") mb=$(median "${b[@]}")
        printf '%-22s %12.0f %12.0f %8.3f\n' "P$streams ${mode:-forward}" "$ma" "$mb" \
            "$(python3 -c "print($mb/$ma)")"
        echo "  runs iperf3: ${a[*]}"
        echo "  runs speediso: ${b[*]}"
    done
done
