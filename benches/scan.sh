#!/usr/bin/env bash
# Surface-scan throughput vs fio, on the same loop device in one run:
# `speediso burnin scan --disk DEV` against
# `fio --rw=read --direct=1 --bs=1M --iodepth=32 --ioengine=io_uring`,
# caches dropped before each run, interleaved rounds, medians.
# Root only. Creates and removes its own temp file and loop device; reads
# only that device.
# Usage: benches/scan.sh [SIZE_MIB] [disk|ram]   (default 1024 disk)
#   disk: the loop device's file is on /var/tmp, loop --direct-io=on (the
#         disk's speed, and its neighbours' noise on a shared host);
#   ram:  the file is on a tmpfs (no disk at all: what each tool's own
#         per-I/O cost allows, the engine against fio's).
set -euo pipefail

SIZE_MIB=${1:-1024}
BACKING=${2:-disk}
BIN=${SPEEDISO_BIN:-target/release/speediso}
[ -x "$BIN" ] || cargo build --release -p speediso --bin speediso
WORK=$(mktemp -d /var/tmp/speediso-scan-bench.XXXXXX)
LOOPDEV=""
# shellcheck source=benches/thp.sh
. "$(dirname "$0")/thp.sh"
DIO=on
if [ "$BACKING" = ram ]; then
    mount -t tmpfs -o size=$((SIZE_MIB + 64))m speediso-scan-bench "$WORK"
    DIO=off
fi
cleanup() {
    thp_restore
    if [ -n "$LOOPDEV" ]; then losetup -d "$LOOPDEV" 2>/dev/null || true; fi
    if [ "$BACKING" = ram ]; then
        # Detaching is asynchronous: wait for the loop to let go.
        for _ in 1 2 3 4 5 6 7 8 9 10; do umount "$WORK" 2>/dev/null && break; sleep 1; done
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

echo "machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p'), kernel $(uname -r)"
thp_setup
echo "size: ${SIZE_MIB} MiB"

# A file with data in it (not sparse: a sparse file reads as holes, which
# is the file system's speed, not the disk's).
dd if=/dev/urandom of="$WORK/disk.img" bs=1M count="$SIZE_MIB" status=none
LOOPDEV=$(losetup --find --show --direct-io="$DIO" "$WORK/disk.img")
[[ $LOOPDEV == /dev/loop* ]] || { echo "not a loop device: $LOOPDEV" >&2; exit 1; }
[ "$(losetup -nO BACK-FILE "$LOOPDEV")" = "$WORK/disk.img" ] || { echo "$LOOPDEV is not ours" >&2; exit 1; }
echo "== loop device $LOOPDEV (backing file on $(df --output=source "$WORK" | tail -1), direct-io=$DIO)"

settle() { sync; echo 3 >/proc/sys/vm/drop_caches; sleep 1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

fio_read() { # → MB/s
    fio --name=scan --filename="$LOOPDEV" --rw=read --bs=1M --direct=1 --iodepth=32 \
        --ioengine=io_uring --iomem_align=2m --size="${SIZE_MIB}M" --output-format=json 2>/dev/null |
        python3 -c 'import json,sys; print(round(json.load(sys.stdin)["jobs"][0]["read"]["bw_bytes"]/1e6))'
}

speediso_scan() { # → MB/s, from the result (bytes read / seconds)
    SPEEDISO_RUN_DIR="$WORK/run" "$BIN" --cmdline quiet burnin scan --disk "$LOOPDEV" --json 2>/dev/null |
        python3 -c 'import json,sys; d=json.load(sys.stdin)["disks"][0]; assert d["verdict"]=="pass", d; print(round(d["mb_per_s"]))'
}

ROUNDS=${ROUNDS:-5}
F=(); S=()
for i in $(seq "$ROUNDS"); do
    # Alternate which runs first.
    if [ $((i % 2)) = 1 ]; then
        settle; F+=("$(fio_read)"); settle; S+=("$(speediso_scan)")
    else
        settle; S+=("$(speediso_scan)"); settle; F+=("$(fio_read)")
    fi
done
FIO=$(median "${F[@]}"); SCAN=$(median "${S[@]}")
echo "rounds: fio ${F[*]} | speediso ${S[*]}"
printf '%-48s %8s MB/s\n' "fio read 1M QD32 io_uring direct" "$FIO"
printf '%-48s %8s MB/s  ratio vs fio %s (target >= 0.9)\n' "speediso burnin scan" "$SCAN" "$(ratio "$SCAN" "$FIO")"
