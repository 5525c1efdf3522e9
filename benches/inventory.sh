#!/bin/bash
# Wall time of a full `speediso inventory --json` against `lshw -json` and
# `lspci -vmm` on this machine, and the ratios. Uses hyperfine when it is
# installed, else a loop timed with `date +%s%N`.
#
#   benches/inventory.sh            # builds target/release/speediso if needed
#   RUNS=50 SPEEDISO=path/to/speediso benches/inventory.sh
#
# Targets (issue #3): under 50 ms, and at least 10x faster than lshw.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${SPEEDISO:-target/release/speediso}
RUNS=${RUNS:-30}
if [ ! -x "$BIN" ]; then
    cargo build --release --quiet
fi
for t in lshw lspci; do
    command -v "$t" >/dev/null || { echo "missing $t (apt-get install lshw pciutils)" >&2; exit 1; }
done

CMDS=("$BIN inventory --json" "lshw -json" "lspci -vmm")
declare -a MEAN_MS MIN_MS

if command -v hyperfine >/dev/null; then
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$tmp/h.json" "${CMDS[@]}" >&2
    # One "mean" (seconds) per command, in order.
    mapfile -t MEAN_MS < <(grep -o '"mean": *[0-9.e+-]*' "$tmp/h.json" |
        awk -F: '{ printf "%.2f\n", $2 * 1000 }')
    mapfile -t MIN_MS < <(grep -o '"min": *[0-9.e+-]*' "$tmp/h.json" |
        awk -F: '{ printf "%.2f\n", $2 * 1000 }')
    TOOL="hyperfine $(hyperfine --version | awk '{print $2}'), $RUNS runs, 3 warm-up"
else
    for c in "${CMDS[@]}"; do
        $c >/dev/null 2>&1 || true # warm-up
        start=$(date +%s%N)
        for _ in $(seq "$RUNS"); do $c >/dev/null 2>&1; done
        end=$(date +%s%N)
        MEAN_MS+=("$(awk -v a="$start" -v b="$end" -v n="$RUNS" 'BEGIN { printf "%.2f", (b - a) / n / 1e6 }')")
        MIN_MS+=("-")
    done
    TOOL="date +%s%N loop, $RUNS runs"
fi

ours=${MEAN_MS[0]}
echo "machine: $(nproc) CPUs, $(lscpu | awk -F: '/Model name/ { gsub(/^ +/, "", $2); print $2; exit }'), load $(cut -d' ' -f1-3 /proc/loadavg); timing: $TOOL"
printf '%-28s %10s %10s\n' "command" "mean ms" "min ms"
printf '%-28s %10s %10s\n' "speediso inventory --json" "$ours" "${MIN_MS[0]}"
for i in 1 2; do
    ratio=$(awk -v a="${MEAN_MS[$i]}" -v b="$ours" 'BEGIN { printf "%.1f", a / b }')
    printf '%-28s %10s %10s   speediso is %sx faster (mean)\n' "${CMDS[$i]}" "${MEAN_MS[$i]}" "${MIN_MS[$i]}" "$ratio"
done
awk -v o="$ours" -v l="${MEAN_MS[1]}" 'BEGIN {
    printf "target under 50 ms: %s; target >= 10x lshw: %s\n",
        (o < 50 ? "met" : "NOT met"), (l / o >= 10 ? "met" : "NOT met") }'
