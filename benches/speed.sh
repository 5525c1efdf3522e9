#!/usr/bin/env bash
# speediso bench cpu|memory|disk against the tools engineers trust, on the
# same target in one run: sysbench cpu, sysbench memory, and fio (io_uring,
# direct=1) for each disk job on a 2 GiB file and on a loop device over
# another 2 GiB file. Prints each pair and the ratio speediso/peer.
#
# Needs root (losetup), sysbench, fio, and the release binary
# (built if missing). Environment:
#   DUR=10        seconds per measurement (sysbench's default --time)
#   REPS=3        repetitions of each pair, alternating which tool goes
#                 first; the median of each side is compared (a shared
#                 machine or disk is noisy)
#   DIR=/var/tmp/speediso-bench   where the 2 GiB files go (a real disk:
#                 O_DIRECT bypasses the page cache, tmpfs cannot do it)
#   SIZE_MIB=2048 size of each disk target
#   SPEEDISO, SYSBENCH, FIO   binaries to use
#   PARTS="cpu memory disk"   which comparisons to run
#   JOBS="seq_read seq_write rand_read rand_write"   which disk jobs
#   TARGETS="file loop"       which disk targets
# Targets: CPU prime events/s and disk figures within +-10% of the peer;
# STREAM bandwidth at least sysbench memory's.
set -euo pipefail

cd "$(dirname "$0")/.."
DUR=${DUR:-10}
REPS=${REPS:-3}
PARTS=${PARTS:-cpu memory disk}
JOBS=${JOBS:-seq_read seq_write rand_read rand_write}
TARGETS=${TARGETS:-file loop}
DIR=${DIR:-/var/tmp/speediso-bench}
SIZE_MIB=${SIZE_MIB:-2048}
SPEEDISO=${SPEEDISO:-target/release/speediso}
SYSBENCH=${SYSBENCH:-sysbench}
FIO=${FIO:-fio}
NPROC=$(nproc)

if [[ ! -x $SPEEDISO ]]; then
    cargo build --release
fi
for t in "$SYSBENCH" "$FIO"; do
    command -v "$t" >/dev/null || { echo "speed.sh: $t not found" >&2; exit 2; }
done

# First number after "key": in (pretty) JSON on stdin; $2 picks the Nth.
num() { grep -o "\"$1\" *: *[-0-9.e+]*" | sed -n "${2:-1}p" | sed 's/.*: *//'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# max/min of the samples: how noisy this machine is for that tool.
spread() { tr ' ' '\n' | grep . | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { if (lo > 0) printf "x%.2f", hi / lo; else printf "n/a" }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else printf "n/a" }'; }
# pair NAME SPEEDISO PEER RULE (within10 | atleast | info)
FAILS=0
pair() {
    local r verdict
    r=$(ratio "$2" "$3")
    case $4 in
        within10) verdict=$(awk -v r="$r" 'BEGIN { print (r >= 0.9 && r <= 1.1) ? "ok" : "MISS" }') ;;
        atleast) verdict=$(awk -v r="$r" 'BEGIN { print (r >= 1.0) ? "ok" : "MISS" }') ;;
        *) verdict="" ;;
    esac
    [[ $verdict == MISS ]] && FAILS=$((FAILS + 1))
    printf "%-44s %14.2f %14.2f %8s %-4s %s\n" "$1" "$2" "$3" "$r" "$verdict" "${5:-}"
}
header() {
    printf "\n== %s\n%-44s %14s %14s %8s\n" "$1" "figure" "speediso" "${2}" "ratio"
}
# The spread (max/min over the repetitions) says how far this machine lets
# one tool disagree with itself; a ratio outside +-10% means little when
# the peer's own spread is wider than that.

echo "machine: $NPROC CPUs, $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(uname -r)"
echo "speediso $("$SPEEDISO" --version | awk '{print $2}'), $("$SYSBENCH" --version), $("$FIO" --version); ${DUR}s per measurement"

# Keys in speediso's JSON are sorted: pick the object first, then the field.
obj() { sed -n "/\"$1\": {/,/}/p"; }
want() { [[ " $PARTS " == *" $1 "* ]]; }

# ---- CPU: sysbench cpu (max prime 10000) --------------------------------
if want cpu; then
sb_cpu() { "$SYSBENCH" cpu --cpu-max-prime=10000 --threads="$1" --time="$DUR" run | sed -n 's/.*events per second: *//p'; }
sp_cpu() { "$SPEEDISO" bench cpu --prime-only --duration "${DUR}s" --json 2>/dev/null | obj events_per_second; }
sb1="" sbn="" sp1="" spn=""
for ((r = 1; r <= REPS; r++)); do
    if ((r % 2)); then
        sb1+=" $(sb_cpu 1)" sbn+=" $(sb_cpu "$NPROC")"
        e=$(sp_cpu)
    else
        e=$(sp_cpu)
        sb1+=" $(sb_cpu 1)" sbn+=" $(sb_cpu "$NPROC")"
    fi
    sp1+=" $(num single <<<"$e")" spn+=" $(num all <<<"$e")"
done
header "cpu: sysbench cpu --cpu-max-prime=10000 --threads=1|$NPROC --time=$DUR run (median of $REPS)" "sysbench"
pair "prime events/s, 1 thread" "$(median <<<"$sp1")" "$(median <<<"$sb1")" within10 \
    "spread: speediso $(spread <<<"$sp1"), sysbench $(spread <<<"$sb1")"
pair "prime events/s, $NPROC threads" "$(median <<<"$spn")" "$(median <<<"$sbn")" within10 \
    "spread: speediso $(spread <<<"$spn"), sysbench $(spread <<<"$sbn")"
# Work per event, independent of how much of a shared CPU each tool got:
# events per second of user CPU time, one thread each.
TIMEFORMAT=%U
cpu_s() { { time "$@" >"$DIR/.cpu.out" 2>/dev/null; } 2>&1; }
sbc="" spc=""
mkdir -p "$DIR"
for ((r = 1; r <= REPS; r++)); do
    u=$(cpu_s "$SYSBENCH" cpu --cpu-max-prime=10000 --threads=1 --time="$DUR" run)
    ev=$(sed -n 's/.*total number of events: *//p' "$DIR/.cpu.out")
    sbc+=" $(awk -v e="$ev" -v u="$u" 'BEGIN { printf "%.2f", e / u }')"
    u=$(cpu_s "$SPEEDISO" bench cpu --prime-only --threads 1 --duration "${DUR}s" --json)
    ev=$(obj events <"$DIR/.cpu.out" | grep -o '[0-9.]*' | awk '{ s += $1 } END { print s }')
    spc+=" $(awk -v e="$ev" -v u="$u" 'BEGIN { printf "%.2f", e / u }')"
done
pair "prime events per CPU-second, 1 thread" "$(median <<<"$spc")" "$(median <<<"$sbc")" within10 \
    "spread: speediso $(spread <<<"$spc"), sysbench $(spread <<<"$sbc")"
cpu=$("$SPEEDISO" bench cpu --duration "${DUR}s" --json 2>/dev/null)
for w in sha256 deflate; do
    v=$(obj "$w" <<<"$cpu")
    printf "%-44s %14.2f %14.2f (single, all threads; no peer)\n" "$w MB/s" "$(num single <<<"$v")" "$(num all <<<"$v")"
done
fi

# ---- Memory: sysbench memory ---------------------------------------------
if want memory; then
mem=$("$SPEEDISO" bench memory --duration "${DUR}s" --json 2>/dev/null)
arr_mib=$(( $(num array_bytes <<<"$mem") / 1048576 ))
# sysbench prints MiB/sec; convert to MB/s (10^6) like speediso.
sb_mem() {
    "$SYSBENCH" memory --threads="$NPROC" --time="$DUR" --memory-total-size=100000G "$@" run |
        sed -n 's/.*(\([0-9.]*\) MiB\/sec).*/\1/p' | awk '{ printf "%.2f", $1 * 1.048576 }'
}
sbw=$(sb_mem --memory-block-size="${arr_mib}M" --memory-oper=write)
sbr=$(sb_mem --memory-block-size="${arr_mib}M" --memory-oper=read)
sbd=$(sb_mem)
header "memory: sysbench memory --threads=$NPROC --memory-block-size=${arr_mib}M (= one STREAM array)" "sysbench"
for k in copy scale add triad; do
    v=$(num "$k" <<<"$mem")
    pair "stream $k MB/s vs sysbench write" "$v" "$sbw" atleast
    pair "stream $k MB/s vs sysbench read" "$v" "$sbr" atleast
done
pair "stream triad vs sysbench memory defaults (1K)" "$(num triad <<<"$mem")" "$sbd" info
printf "%-44s %14.2f\n" "pointer-chase latency ns" "$(num latency_ns <<<"$mem")"
fi

# ---- Disk: fio, io_uring, direct=1 ----------------------------------------
if want disk; then
mkdir -p "$DIR"
FILE=$DIR/file.img
LOOPIMG=$DIR/loop.img
LOOP=""
cleanup() { [[ -n $LOOP ]] && losetup -d "$LOOP" 2>/dev/null; thp_restore; true; }
trap cleanup EXIT
# shellcheck source=benches/thp.sh
. "$(dirname "$0")/thp.sh"
thp_setup
# Lay out both targets with real blocks (speediso writes a missing file fully).
"$SPEEDISO" bench disk --target "$FILE" --size-mib "$SIZE_MIB" --jobs seq_read --duration 1s >/dev/null 2>&1
if [[ $(stat -c %s "$LOOPIMG" 2>/dev/null || echo 0) -lt $((SIZE_MIB * 1048576)) ]]; then
    rm -f "$LOOPIMG"
    "$SPEEDISO" bench disk --target "$LOOPIMG" --size-mib "$SIZE_MIB" --jobs seq_read --duration 1s >/dev/null 2>&1
fi
# --direct-io=on: the loop driver itself bypasses the page cache of its file.
LOOP=$(losetup --find --show --direct-io=on "$LOOPIMG" || true)

run_disk() { # target
    local t=$1 job rw bs qd idx fo so r
    local f_v f_50 f_99 s_v s_50 s_99
    header "disk: $t (median of $REPS)" "fio"
    for spec in "seq_read read 1M 16" "seq_write write 1M 16" "rand_read randread 4k 32" "rand_write randwrite 4k 32"; do
        read -r job rw bs qd <<<"$spec"
        [[ " $JOBS " == *" $job "* ]] || continue
        # fio lists read, then write: pick the direction this job used.
        idx=1
        [[ $rw == *write ]] && idx=2
        f_v="" f_50="" f_99="" s_v="" s_50="" s_99=""
        for ((r = 1; r <= REPS; r++)); do
            run_fio() {
                fo=$("$FIO" --name="$job" --filename="$t" --rw="$rw" --bs="$bs" --iodepth="$qd" \
                    --ioengine=io_uring --direct=1 --iomem_align=2m --size="${SIZE_MIB}M" --runtime="$DUR" --time_based \
                    --output-format=json 2>/dev/null)
            }
            run_sp() {
                so=$("$SPEEDISO" bench disk --target "$t" --jobs "$job" --size-mib "$SIZE_MIB" \
                    --duration "${DUR}s" --json 2>/dev/null)
            }
            if ((r % 2)); then run_fio; run_sp; else run_sp; run_fio; fi
            if [[ $job == seq_* ]]; then
                f_v+=" $(num bw_bytes "$idx" <<<"$fo" | awk '{ printf "%.2f", $1 / 1e6 }')"
                s_v+=" $(num "${job}_mbps" <<<"$so")"
            else
                f_v+=" $(num iops "$idx" <<<"$fo")"
                s_v+=" $(num "${job}_iops" <<<"$so")"
            fi
            # Only the job's direction has clat percentiles in fio's JSON.
            f_50+=" $(num 50.000000 <<<"$fo" | awk '{ printf "%.2f", $1 / 1000 }')"
            f_99+=" $(num 99.000000 <<<"$fo" | awk '{ printf "%.2f", $1 / 1000 }')"
            s_50+=" $(num lat_p50_us <<<"$so")"
            s_99+=" $(num lat_p99_us <<<"$so")"
        done
        local unit=IOPS
        [[ $job == seq_* ]] && unit=MB/s
        pair "$job $unit (bs=$bs iodepth=$qd)" "$(median <<<"$s_v")" "$(median <<<"$f_v")" within10 \
            "spread: speediso $(spread <<<"$s_v"), fio $(spread <<<"$f_v")"
        pair "  $job p50 latency µs" "$(median <<<"$s_50")" "$(median <<<"$f_50")" info
        pair "  $job p99 latency µs" "$(median <<<"$s_99")" "$(median <<<"$f_99")" info
    done
}
[[ " $TARGETS " == *" file "* ]] && run_disk "$FILE"
if [[ " $TARGETS " != *" loop "* ]]; then
    :
elif [[ -n $LOOP ]]; then
    run_disk "$LOOP"
else
    echo "no loop device (losetup failed): loop pairs not measured"
    FAILS=$((FAILS + 1))
fi
fi

echo
echo "figures outside their target: $FAILS"
