#!/usr/bin/env bash
# Wipe throughput vs peers, on the same loop device (and a plain file) in one
# run: speediso wipe --method zero / random against fio (libaio, QD16, 1M,
# O_DIRECT), dd oflag=direct, shred -n1 and nwipe; verification read vs fio
# sequential read; then N disks at once (N = 1 4 16, and 24 on a machine
# with 24 CPUs): speediso wiping N loop devices against fio with N jobs,
# aggregate MB/s, verification read vs fio read, max RSS for each N.
# Root only. Creates and removes its own temp files and loop devices.
# Usage: benches/wipe.sh [SIZE_MIB] [disk|ram]   (default 1024 disk)
# Environment: ROUNDS (single-disk rounds, 5), SINGLE=0 (only the N-disk
# part), NS ("1 4 16"), N_MIB (size of each of the N loops; default
# clamp(4096 / N, 256, 1024) MiB), NROUNDS (rounds per N, 3), NO_NWIPE=1.
#   disk: the loop device's file is on /var/tmp, loop --direct-io=on (the
#         disk's speed); ram: the file is on a tmpfs (CPU/memory bound: the
#         worst case for the random stream generator).
# Each throughput is the median of 3 runs.
set -euo pipefail

SIZE_MIB=${1:-1024}
BACKING=${2:-disk}
BIN=${SPEEDISO_BIN:-target/release/speediso}
[ -x "$BIN" ] || cargo build --release
WORK=$(mktemp -d /var/tmp/speediso-wipe-bench.XXXXXX)
LOOPS=()
DIO=on
if [ "$BACKING" = ram ]; then
    mount -t tmpfs -o size=$((SIZE_MIB * 2 + 64))m speediso-bench "$WORK"
    DIO=off
fi
# shellcheck source=benches/thp.sh
. "$(dirname "$0")/thp.sh"
cleanup() {
    thp_restore
    for l in "${LOOPS[@]}"; do losetup -d "$l" 2>/dev/null || true; done
    if [ "$BACKING" = ram ]; then
        # Detaching is asynchronous: wait for the loops to let go.
        for _ in 1 2 3 4 5 6 7 8 9 10; do umount "$WORK" 2>/dev/null && break; sleep 1; done
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

mkloop() { # FILE SIZE_MIB → sets LOOPDEV=/dev/loopN (checked to be ours).
    # Not called in $(...): LOOPS must be recorded in this shell for cleanup.
    truncate -s "${2}M" "$1"
    local d
    d=$(losetup --find --show --direct-io="$DIO" "$1")
    LOOPS+=("$d")
    [[ $d == /dev/loop* ]] || { echo "not a loop device: $d" >&2; exit 1; }
    [ "$(losetup -nO BACK-FILE "$d")" = "$1" ] || { echo "$d is not ours" >&2; exit 1; }
    LOOPDEV=$d
}

BYTES=$((SIZE_MIB * 1024 * 1024))
now() { date +%s.%N; }
mbps() { awk -v b="$1" -v t="$2" 'BEGIN { printf "%.0f", b / t / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
settle() { sync; sleep 1; }

fio_bw() { # TARGET RW → MB/s
    fio --name=b --filename="$1" --rw="$2" --bs=1M --direct=1 --iodepth=16 --ioengine=libaio --iomem_align=2m \
        --size="${SIZE_MIB}M" --output-format=json 2>/dev/null |
        python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]; k=sys.argv[1]; print(round(j[k]["bw_bytes"]/1e6))' "$3"
}

timed() { # BYTES CMD... → MB/s
    local b=$1; shift
    local t0 t1
    t0=$(now); "$@" >/dev/null 2>&1; t1=$(now)
    mbps "$b" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')"
}

speediso_bw() { # DEV METHOD VERIFY FIELD → MB/s from the certificate
    local run="$WORK/run-$2-$3"
    rm -rf "$run"
    SPEEDISO_RUN_DIR="$run" SPEEDISO_WIPE_TEST_ALLOW="$1" \
        "$BIN" --cmdline quiet wipe --device "$1" --method "$2" --verify "$3" --confirm "$1" >/dev/null
    python3 -c 'import json,sys,glob; c=json.load(open(glob.glob(sys.argv[1]+"/certs/*.json")[0])); s,k=sys.argv[2].split("."); print(round(c[s][k]/1e6))' "$run" "$4"
}

med3() { # CMD... → median of three runs' outputs
    local a b c
    a=$("$@"); b=$("$@"); c=$("$@")
    printf '%s\n' "$a" "$b" "$c" | sort -n | sed -n 2p
}

echo "machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p'), kernel $(uname -r)"
thp_setup
echo "size: ${SIZE_MIB} MiB"

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
if [ "${SINGLE:-1}" = 1 ]; then
mkloop "$WORK/loop.img" "$SIZE_MIB"
DEV=$LOOPDEV
echo "== loop device $DEV (backing file on $(df --output=source "$WORK" | tail -1), direct-io=$DIO)"
# Interleaved rounds: the peers and speediso see the same conditions (on a
# shared machine the disk's speed drifts between minutes).
ROUNDS=${ROUNDS:-5}
FW=(); ZW=(); RW=(); FR=(); VZ=(); VR=()
for _ in $(seq "$ROUNDS"); do
    settle; FW+=("$(fio_bw "$DEV" write write)")
    settle; ZW+=("$(speediso_bw "$DEV" zero off timing.write_throughput_bytes_per_s)")
    settle; RW+=("$(speediso_bw "$DEV" random off timing.write_throughput_bytes_per_s)")
    settle; FR+=("$(fio_bw "$DEV" read read)")
    settle; VZ+=("$(speediso_bw "$DEV" zero full verification.throughput_bytes_per_s)")
    settle; VR+=("$(speediso_bw "$DEV" random full verification.throughput_bytes_per_s)")
done
FIO_W=$(median "${FW[@]}"); ZERO=$(median "${ZW[@]}"); RAND=$(median "${RW[@]}")
FIO_R=$(median "${FR[@]}"); VZERO=$(median "${VZ[@]}"); VRAND=$(median "${VR[@]}")
echo "rounds: fio write ${FW[*]} | zero ${ZW[*]} | random ${RW[*]}"
echo "rounds: fio read ${FR[*]} | verify zeros ${VZ[*]} | verify random ${VR[*]}"
settle; DD=$(med3 timed "$BYTES" dd if=/dev/zero of="$DEV" bs=1M count="$SIZE_MIB" oflag=direct)
settle; SHRED=$(timed "$BYTES" shred -n1 "$DEV")
NWIPE=n/a
if [ -z "${NO_NWIPE:-}" ] && command -v nwipe >/dev/null; then
    # nwipe is slow: give it its own 256 MiB loop device on the same backing.
    # --autonuke wipes every disk when none is named: always name the
    # device (checked to be our loop device) and exclude every real disk.
    mkloop "$WORK/nwipe.img" 256
    NDEV=$LOOPDEV
    [[ $NDEV == /dev/loop* ]] || exit 1
    EXCL=$(ls -d /sys/block/* | xargs -n1 basename | grep -v '^loop' |
        sed 's|^|/dev/|' | head -10 | paste -sd,)
    settle
    NWIPE=$(timed $((256 << 20)) timeout 900 nwipe --method=zero --nogui --autonuke --nowait --noblank \
        --verify=off ${EXCL:+--exclude="$EXCL"} --logfile="$WORK/nwipe.log" "$NDEV")
    losetup -d "$NDEV"
    # Forget it, so cleanup never detaches a device someone else reuses.
    KEEP=()
    for l in "${LOOPS[@]}"; do [ "$l" = "$NDEV" ] || KEEP+=("$l"); done
    LOOPS=("${KEEP[@]}")
    rm -f "$WORK/nwipe.img"
fi

printf '%-36s %8s MB/s\n' "fio write 1M QD16 libaio direct" "$FIO_W"
printf '%-36s %8s MB/s  ratio vs fio %s\n' "speediso wipe --method zero" "$ZERO" "$(ratio "$ZERO" "$FIO_W")"
printf '%-36s %8s MB/s  ratio vs fio %s, vs zero %s\n' "speediso wipe --method random" "$RAND" "$(ratio "$RAND" "$FIO_W")" "$(ratio "$RAND" "$ZERO")"
printf '%-36s %8s MB/s  speediso zero / dd %s\n' "dd oflag=direct bs=1M" "$DD" "$(ratio "$ZERO" "$DD")"
printf '%-36s %8s MB/s  speediso random / shred %s\n' "shred -n1" "$SHRED" "$(ratio "$RAND" "$SHRED")"
if [ "$NWIPE" != n/a ]; then
    printf '%-36s %8s MB/s  speediso zero / nwipe %s\n' "nwipe --method=zero" "$NWIPE" "$(ratio "$ZERO" "$NWIPE")"
fi
printf '%-36s %8s MB/s\n' "fio read 1M QD16 libaio direct" "$FIO_R"
printf '%-36s %8s MB/s  ratio vs fio read %s\n' "speediso verify (zeros)" "$VZERO" "$(ratio "$VZERO" "$FIO_R")"
printf '%-36s %8s MB/s  ratio vs fio read %s\n' "speediso verify (random stream)" "$VRAND" "$(ratio "$VRAND" "$FIO_R")"

echo "== CPU cost per GiB written (user+sys; independent of the disk and of other load)"
for m in zero random; do
    for v in off full; do
        SPEEDISO_RUN_DIR="$WORK/run-cpu" SPEEDISO_WIPE_TEST_ALLOW="$DEV" /usr/bin/time -f "%U %S" -o "$WORK/cpu.txt" \
            "$BIN" --cmdline quiet wipe --device "$DEV" --method "$m" --verify "$v" --confirm "$DEV" >/dev/null
        read -r U S < "$WORK/cpu.txt"
        awk -v u="$U" -v s="$S" -v m="$m" -v v="$v" -v g="$SIZE_MIB" \
            'BEGIN { c = (u + s) * 1024 / g; printf "%-36s %8.2f CPU-s/GiB (%.1f GB/s per core)\n", "speediso " m " verify=" v, c, (c > 0 ? 1.073741824 / c : 0) }'
    done
done

echo "== plain file $WORK/plain.img (speediso wipes block devices only)"
truncate -s "${SIZE_MIB}M" "$WORK/plain.img"
settle; PF=$(fio_bw "$WORK/plain.img" write write)
settle; PD=$(timed "$BYTES" dd if=/dev/zero of="$WORK/plain.img" bs=1M count="$SIZE_MIB" oflag=direct conv=notrunc)
settle; PS=$(timed "$BYTES" shred -n1 "$WORK/plain.img")
printf '%-36s %8s MB/s\n' "fio write (file)" "$PF" "dd oflag=direct (file)" "$PD" "shred -n1 (file)" "$PS"
rm -f "$WORK/plain.img"

fi # SINGLE

# ---- N disks at once ------------------------------------------------------
# N loop devices, each --direct-io=on over its own file (created here,
# checked to be ours, removed on exit). speediso wipes all N in one run;
# fio writes/reads the same N devices with N jobs (one per device, bs=1M,
# iodepth=16, libaio, direct, group_reporting) in one run. Aggregate MB/s:
# all bytes over the longest disk's time, which is what fio's
# group_reporting reports (total bytes / longest job's runtime); speediso's
# per-disk times come from the certificates (bytes / throughput). Max RSS
# from /usr/bin/time -v of the random, full-verify run.
# NS: the disk counts (default 1 4 16, and 24 where nproc >= 24).
# Each loop file: clamp(4096 / N, 256, 1024) MiB, or N_MIB.
NS=${NS:-"1 4 16$( [ "$(nproc)" -ge 24 ] && echo " 24")"}
agg() { # RUN_DIR BYTES_FIELD RATE_FIELD → aggregate MB/s over the certificates
    python3 - "$@" <<'PY'
import json, glob, sys
run, bf, rf = sys.argv[1:4]
def get(c, k):
    s, f = k.split(".")
    return c[s][f]
cs = [json.load(open(p)) for p in glob.glob(run + "/certs/*.json") if "/server-" not in p]
total = sum(get(c, bf) for c in cs)
longest = max(get(c, bf) / get(c, rf) for c in cs)
print(round(total / longest / 1e6))
PY
}
fio_n() { # RW FIELD DEV... → aggregate MB/s
    local rw=$1 k=$2; shift 2
    local args=() i=0
    for d in "$@"; do args+=(--name="d$i" --filename="$d"); i=$((i + 1)); done
    fio --rw="$rw" --bs=1M --direct=1 --iodepth=16 --ioengine=libaio --iomem_align=2m \
        --size="${NMIB}M" --group_reporting --output-format=json "${args[@]}" 2>/dev/null |
        python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]; print(round(j[sys.argv[1]]["bw_bytes"]/1e6))' "$k"
}
speediso_n() { # METHOD VERIFY NAME DEV... → run directory (certificates)
    local m=$1 v=$2 name=$3; shift 3
    local run="$WORK/n-$name"
    rm -rf "$run"
    local allow
    allow=$(IFS=,; echo "$*")
    SPEEDISO_RUN_DIR="$run" SPEEDISO_WIPE_TEST_ALLOW="$allow" /usr/bin/time -v -o "$run.time" \
        "$BIN" --cmdline quiet wipe --all --method "$m" --verify "$v" --confirm "$@" >/dev/null 2>"$run.err" ||
        { echo "speediso wipe failed:" >&2; cat "$run.err" >&2; exit 1; }
    echo "$run"
}
rss_mib() { awk '/Maximum resident set size/ { printf "%d", $NF / 1024 }' "$1.time"; }
echo "== N disks at once (loop devices, direct-io=$DIO); load before: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-4s %-9s %9s %9s %6s %9s %6s %9s %9s %6s %9s %6s %8s\n' N "MiB/disk" "fio-w" zero ratio random ratio "fio-r" "v-zero" ratio "v-rand" ratio "RSS MiB"
for N in $NS; do
    NMIB=${N_MIB:-$(( 4096 / N < 256 ? 256 : (4096 / N > 1024 ? 1024 : 4096 / N) ))}
    DN=()
    for i in $(seq "$N"); do
        mkloop "$WORK/n$N-$i.img" "$NMIB"
        DN+=("$LOOPDEV")
    done
    FW=(); ZW=(); RW=(); FR=(); VZ=(); VR=(); RS=()
    for _ in $(seq "${NROUNDS:-3}"); do
        settle; FW+=("$(fio_n write write "${DN[@]}")")
        settle; r=$(speediso_n zero off zero "${DN[@]}"); ZW+=("$(agg "$r" timing.bytes_written timing.write_throughput_bytes_per_s)")
        settle; r=$(speediso_n random off random "${DN[@]}"); RW+=("$(agg "$r" timing.bytes_written timing.write_throughput_bytes_per_s)")
        settle; FR+=("$(fio_n read read "${DN[@]}")")
        settle; r=$(speediso_n zero full vzero "${DN[@]}"); VZ+=("$(agg "$r" verification.bytes_read verification.throughput_bytes_per_s)")
        settle; r=$(speediso_n random full vrand "${DN[@]}"); VR+=("$(agg "$r" verification.bytes_read verification.throughput_bytes_per_s)")
        RS+=("$(rss_mib "$r")")
    done
    echo "   rounds N=$N: fio-w ${FW[*]} | zero ${ZW[*]} | random ${RW[*]} | fio-r ${FR[*]} | v-zero ${VZ[*]} | v-rand ${VR[*]} | RSS ${RS[*]}"
    fw=$(median "${FW[@]}"); z=$(median "${ZW[@]}"); rr=$(median "${RW[@]}")
    fr=$(median "${FR[@]}"); vz=$(median "${VZ[@]}"); vr=$(median "${VR[@]}")
    rs=$(printf '%s\n' "${RS[@]}" | sort -n | tail -1)
    printf '%-4s %-9s %9s %9s %6s %9s %6s %9s %9s %6s %9s %6s %8s\n' "$N" "$NMIB" "$fw" "$z" "$(ratio "$z" "$fw")" \
        "$rr" "$(ratio "$rr" "$fw")" "$fr" "$vz" "$(ratio "$vz" "$fr")" "$vr" "$(ratio "$vr" "$fr")" "$rs"
    # Detach and forget this N's loops before the next N.
    KEEP=()
    for l in "${LOOPS[@]}"; do
        if [[ " ${DN[*]} " == *" $l "* ]]; then losetup -d "$l"; else KEEP+=("$l"); fi
    done
    LOOPS=("${KEEP[@]}")
    rm -f "$WORK"/n"$N"-*.img
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
