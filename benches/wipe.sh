#!/usr/bin/env bash
# Wipe throughput vs peers, on the same loop device (and a plain file) in one
# run: speediso wipe --method zero / random against fio (libaio, QD16, 1M,
# O_DIRECT), dd oflag=direct, shred -n1 and nwipe; verification read vs fio
# sequential read; max RSS with 4 disks wiped in parallel.
# Root only. Creates and removes its own temp files and loop devices.
# Usage: benches/wipe.sh [SIZE_MIB] [disk|ram]   (default 1024 disk)
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
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
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

echo "== max RSS, 4 disks in parallel (random, full verify)"
Q=$((SIZE_MIB / 4))
D4=()
rm -f "$WORK/plain.img"
for i in 1 2 3 4; do
    mkloop "$WORK/p$i.img" "$Q"
    D4+=("$LOOPDEV")
done
ALLOW=$(IFS=,; echo "${D4[*]}")
SPEEDISO_RUN_DIR="$WORK/run4" SPEEDISO_WIPE_TEST_ALLOW="$ALLOW" /usr/bin/time -v \
    "$BIN" --cmdline quiet wipe --all --method random --verify full --confirm "${D4[@]}" \
    >/dev/null 2>"$WORK/time.txt"
RSS=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$WORK/time.txt")
printf '%-36s %8s KiB (%s MiB)\n' "max RSS, 4 disks" "$RSS" "$((RSS / 1024))"
