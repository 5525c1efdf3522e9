#!/bin/bash
# `speediso burnin memory` against memtester on the same amount of memory in
# the same run: bytes written plus bytes read back per second, each tool
# running the patterns they share, and the ratio speediso/memtester.
#
#   sudo benches/memtest.sh                 # builds target/release/speediso if needed
#   sudo SIZE=512M REPS=3 SPEEDISO=path/to/speediso benches/memtest.sh
#
# memtester runs one thread (it has no other mode); speediso runs one per
# CPU, and once more with --threads 1 to show the speed of one core. The
# shared patterns are memtester's MEMTESTER_TEST_MASK bits 0 (Random Value),
# 8 (Solid Bits), 10 (Checkerboard), 13 (Walking Ones), 14 (Walking Zeroes)
# plus its Stuck Address, which always runs (address in address); speediso
# runs its own ten patterns (zeros, ones, checkerboard, walking ones and
# zeros, random, address, and inversions). memtester's traffic per loop is
# counted from its source (tests.c), N being the buffer:
#   Stuck Address    16 x (write N + read N)      32 N
#   Random Value      write N + read N              2 N
#   Solid Bits       64 x (write N + read N)      128 N
#   Checkerboard     64 x (write N + read N)      128 N
#   Walking Ones    128 x (write N + read N)      256 N
#   Walking Zeroes  128 x (write N + read N)      256 N
#                                        total    802 N
# speediso's is in its result (bytes_written + bytes_verified). Both tools
# lock their buffer (mlock) and are timed from start to exit. speediso asks
# for transparent huge pages on its region (madvise); memtester's buffer
# gets them only in THP mode "always", so the script sets that for the run
# (benches/thp.sh; THP_MODE=keep leaves the machine as it is).
#
# Needs root (mlock of the whole buffer), memtester (tests/apt/bench.txt).
# Target (issue 15): speediso at least 5x memtester's bytes per second.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${SPEEDISO:-target/release/speediso}
SIZE=${SIZE:-512M}
REPS=${REPS:-1}
MASK=0x6501
FACTOR=802
if [ ! -x "$BIN" ]; then
    cargo build --release --quiet -p speediso
fi
command -v memtester >/dev/null || { echo "missing memtester (apt-get install memtester)" >&2; exit 1; }
bytes=$(awk -v s="$SIZE" 'BEGIN {
    n = s + 0; u = toupper(substr(s, length(n "") + 1, 1));
    m = (u == "K") ? 2^10 : (u == "M") ? 2^20 : (u == "G") ? 2^30 : 1; printf "%.0f", n * m }')
run_dir=$(mktemp -d)
# shellcheck source=benches/thp.sh
. "$(dirname "$0")/thp.sh"
trap 'thp_restore; rm -rf "$run_dir"' EXIT
thp_setup

now() { date +%s%N; }

# memtester: one loop of the shared tests; checks that exactly those ran.
memtester_rate() {
    local t0 t1 out
    t0=$(now)
    out=$(MEMTESTER_TEST_MASK=$MASK memtester "$SIZE" 1 2>&1) || { echo "memtester failed: $out" >&2; exit 1; }
    t1=$(now)
    local ran
    ran=$(tr '\r\b' '\n\n' <<<"$out" | sed -n 's/^ *\([A-Z][A-Za-z ]*[a-z]\) *: .*/\1/p' | sort -u | paste -sd, -)
    if [ "$ran" != "Checkerboard,Random Value,Solid Bits,Stuck Address,Walking Ones,Walking Zeroes" ]; then
        echo "memtester ran other tests than expected: $ran" >&2
        exit 1
    fi
    # Each "setting" is one write of N and one read of N; Random Value is one more.
    local settings
    settings=$(tr '\r\b' '\n\n' <<<"$out" | grep -c '^setting')
    if [ $((2 * settings + 2)) != "$FACTOR" ]; then
        echo "memtester did $settings write/read sweeps, not the $(((FACTOR - 2) / 2)) counted from its source" >&2
        exit 1
    fi
    awk -v b="$bytes" -v f="$FACTOR" -v a="$t0" -v z="$t1" 'BEGIN { printf "%.0f %.2f", b * f / ((z - a) / 1e9) / 1e6, (z - a) / 1e9 }'
}

# speediso: PASSES passes; prints MB/s (written + verified, over the wall time) and seconds.
speediso_rate() {
    local threads=$1 passes=$2 t0 t1 json
    t0=$(now)
    json=$(SPEEDISO_RUN_DIR=$run_dir "$BIN" --cmdline quiet burnin memory --size "$SIZE" \
        --passes "$passes" --threads "$threads" --json 2>/dev/null)
    t1=$(now)
    local moved
    moved=$(grep -o '"bytes_\(written\|verified\)": *[0-9]*' <<<"$json" | awk -F: '{ s += $2 } END { printf "%.0f", s }')
    grep -q '"verdict": "pass"' <<<"$json" || { echo "speediso did not pass: $json" >&2; exit 1; }
    awk -v m="$moved" -v a="$t0" -v z="$t1" 'BEGIN { printf "%.0f %.2f", m / ((z - a) / 1e9) / 1e6, (z - a) / 1e9 }'
}

# Enough speediso passes to move about as much as memtester (802 N vs 20 N a pass).
PASSES=${PASSES:-8}
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
declare -a MT SA S1
for r in $(seq "$REPS"); do
    # Alternate which runs first, so neither always gets a cold machine.
    if [ $((r % 2)) = 1 ]; then
        MT+=("$(memtester_rate)")
        SA+=("$(speediso_rate "$(nproc)" "$PASSES")")
    else
        SA+=("$(speediso_rate "$(nproc)" "$PASSES")")
        MT+=("$(memtester_rate)")
    fi
    S1+=("$(speediso_rate 1 "$PASSES")")
done
mt=$(printf '%s\n' "${MT[@]}" | awk '{ print $1 }' | median)
sa=$(printf '%s\n' "${SA[@]}" | awk '{ print $1 }' | median)
s1=$(printf '%s\n' "${S1[@]}" | awk '{ print $1 }' | median)

echo "machine: $(nproc) CPUs, $(lscpu | awk -F: '/Model name/ { gsub(/^ +/, "", $2); print $2; exit }'), load $(cut -d' ' -f1-3 /proc/loadavg)"
mt_version=$({ memtester 2>&1 || true; } | awk '/^memtester version/ { print $3; exit }')
echo "size $SIZE, $REPS repetition(s), medians; memtester $mt_version mask $MASK, speediso $PASSES passes"
printf '%-40s %12s %10s\n' "tool" "MB/s" "seconds"
printf '%-40s %12s %10s\n' "memtester (1 thread, 802 N)" "$mt" "$(printf '%s\n' "${MT[@]}" | awk '{ print $2 }' | median)"
printf '%-40s %12s %10s\n' "speediso burnin memory ($(nproc) threads)" "$sa" "$(printf '%s\n' "${SA[@]}" | awk '{ print $2 }' | median)"
printf '%-40s %12s %10s\n' "speediso burnin memory (1 thread)" "$s1" "$(printf '%s\n' "${S1[@]}" | awk '{ print $2 }' | median)"
echo "repetitions (MB/s seconds): memtester ${MT[*]}; speediso all ${SA[*]}; speediso 1 thread ${S1[*]}"
awk -v a="$sa" -v o="$s1" -v m="$mt" 'BEGIN {
    printf "ratio speediso/memtester: %.1fx all threads, %.1fx one thread; target >= 5x: %s\n",
        a / m, o / m, (a / m >= 5 ? "met" : "NOT met") }'
