#!/usr/bin/env bash
# Runs INSIDE the VM suite's guest (the booted live image, as root), piped
# over SSH by tests/vm/run.sh (scenario wipe-faults): the wipe tests of
# crates/agent/tests/wipe.rs that need device-mapper, which the CI host kernel lacks and
# the image's Debian kernel has. Every disk here is a loop device over a file
# on tmpfs that this script creates. It asserts what shell can (exit codes,
# checksums, zeros) and leaves the JSON in $OUTDIR for
# tests/vm/check_wipe_faults.py on the host:
#
#   a.json a.stderr a.rc a.certs/  a dm device linear | error | linear over a
#                                  loop device: `wipe --method zero --verify full`
#                                  must fail, naming the bad LBA range
#   b.plan.json b.json b.stderr b.rc b.certs/ b.devices
#                                  `wipe --all`: a mounted loop device, one held
#                                  by dm and one excluded by path are skipped and
#                                  keep their bytes; a plain one is zeroed
#   c.json c.stderr c.rc c.certs/  a dm device whose table is swapped for an
#                                  all-error one mid-wipe (the disk went away):
#                                  the wipe must end FAILED, never wiped
#   e.devices e1.* e2.*           an md RAID1 + LVM stack over two loop devices:
#                                  busy (held open), its members fail untouched;
#                                  then released and both zeroed
#   d.json d.stderr d.rc d.device  `burnin scan` of a dm device linear | error
#                                  (LBA 20000+3000) | linear: exit 1, exactly
#                                  that range unreadable, nothing written
set -euo pipefail

OUTDIR=${OUTDIR:-/run/speediso-wipe-faults}
work=$(mktemp -d /run/wipe-faults.XXXXXX)
loops=()
dms=()
mnt=""

fail() {
    echo "guest_wipe_faults: FAIL: $*" >&2
    exit 1
}

cleanup() {
    local d
    [ -z "$mnt" ] || umount "$mnt" || true
    for d in "${dms[@]}"; do dmsetup remove --retry "$d" || true; done
    vgchange -q -an spdtestvg >/dev/null 2>&1 || true
    [ ! -e /dev/md/spdtest ] || mdadm --stop /dev/md/spdtest >/dev/null 2>&1 || true
    for d in "${loops[@]}"; do losetup -d "$d" || true; done
    rm -rf "$work"
}
trap cleanup EXIT

# new_loop NAME MIB: a loop device over a new tmpfs file, filled with a
# non-zero pattern; its path in $dev. Checks it is ours before use.
dev=""
new_loop() {
    local f=$work/$1.img
    # (head first: tr reading /dev/zero would die of SIGPIPE under pipefail)
    head -c $(($2 << 20)) /dev/zero | tr '\0' 'Z' >"$f"
    printf 'SPEEDISO-MARKER-%s' "$1" | dd of="$f" conv=notrunc status=none
    dev=$(losetup --find --show "$f")
    case "$dev" in /dev/loop*) ;; *) fail "losetup gave $dev" ;; esac
    [ "$(losetup --noheadings -O BACK-FILE "$dev" | sed 's/ *$//')" = "$f" ] || fail "$dev is not backed by $f"
    loops+=("$dev")
}

rm -rf "$OUTDIR"
mkdir -p "$OUTDIR"
for t in dmsetup losetup mkfs.ext4 udevadm speediso; do
    command -v "$t" >/dev/null || fail "$t is not in the image (dmsetup comes with libdevmapper1.02.1; else list it in tests/vm/rootfs-packages.txt)"
done
grep -q device-mapper /proc/misc || modprobe dm_mod
grep -q device-mapper /proc/misc || fail "no device-mapper in the guest kernel"
grep -q 'root=live:' /proc/cmdline || fail "not the booted live image"

# --- (a) dm-error in the middle ----------------------------------------------
new_loop under 32
under=$dev
total=$((32 << 11)) # 512-byte sectors
bad_start=20480     # 10 MiB in
bad_len=2048        # 1 MiB
rest=$((bad_start + bad_len))
printf '0 %d linear %s 0\n%d %d error\n%d %d linear %s %d\n' \
    "$bad_start" "$under" "$bad_start" "$bad_len" "$rest" $((total - rest)) "$under" "$rest" |
    dmsetup create speediso-vm-fault
dms+=(speediso-vm-fault)
udevadm settle
fault=/dev/mapper/speediso-vm-fault
fault_kernel=$(readlink -f "$fault")
case "$fault_kernel" in /dev/dm-*) ;; *) fail "$fault is $fault_kernel, not a dm device" ;; esac
echo "$fault_kernel $bad_start $bad_len" >"$OUTDIR/a.device"
rc=0
SPEEDISO_WIPE_TEST_ALLOW=$fault SPEEDISO_RUN_DIR=$work/run-a \
    speediso wipe --device "$fault" --method zero --verify full --json --confirm "$fault_kernel" \
    >"$OUTDIR/a.json" 2>"$OUTDIR/a.stderr" || rc=$?
echo "$rc" >"$OUTDIR/a.rc"
cp -r "$work/run-a/certs" "$OUTDIR/a.certs" 2>/dev/null || mkdir -p "$OUTDIR/a.certs"
[ "$rc" = 1 ] || fail "(a) wipe of a device with bad sectors exited $rc, want 1 (failed): $(cat "$OUTDIR/a.stderr")"
grep -q 'wipe FAILED on' "$OUTDIR/a.stderr" || fail "(a) stderr does not say the wipe FAILED: $(cat "$OUTDIR/a.stderr")"
# Everything outside the bad range was overwritten: the marker at offset 0 is gone.
! grep -aq SPEEDISO-MARKER "$work/under.img" || fail "(a) a marker survived outside the bad range"
dmsetup remove --retry speediso-vm-fault
dms=()
# Detached, so that the --all run below does not find it eligible.
losetup -d "$under"
loops=()
echo "guest_wipe_faults: (a) wipe of $fault_kernel failed as it must (exit $rc)" >&2

# --- (b) --all skips mounted, held and excluded loop devices -------------------
new_loop target 8
target=$dev
new_loop mounted 16
mounted=$dev
new_loop held 8
held=$dev
new_loop excluded 8
excluded=$dev
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$mounted"
mnt=$work/mnt
mkdir "$mnt"
mount "$mounted" "$mnt"
echo kept >"$mnt/file"
dmsetup create speediso-vm-hold --table "0 $((8 << 11)) linear $held 0"
dms+=(speediso-vm-hold)
udevadm settle
sync
printf '%s %s\n' target "$target" mounted "$mounted" held "$held" excluded "$excluded" >"$OUTDIR/b.devices"
sums() { sha256sum "$work/mounted.img" "$work/held.img" "$work/excluded.img"; }
sums >"$OUTDIR/b.sums-before"
# The real command line (root=live: and all) plus the exclusion; the
# emulated NVMe, SATA and SCSI disks are excluded too (by serial and by path) so
# that --all erases only the loop device this script made (USB is skipped
# by default).
real=""
for id in /dev/disk/by-id/nvme-*NVME0001 /dev/disk/by-id/ata-*SATA0002 /dev/disk/by-id/scsi-*SCSI0004; do
    if [ -e "$id" ]; then real+=",$(readlink -f "$id")"; fi
done
cmdline="$(cat /proc/cmdline) speediso.wipe.exclude=$excluded,NVME0001,SATA0002,SCSI0004$real"
speediso --cmdline "$cmdline" wipe --plan --all --json --method zero >"$OUTDIR/b.plan.json"
rc=0
SPEEDISO_RUN_DIR=$work/run-b speediso --cmdline "$cmdline" \
    wipe --all --method zero --verify full --json --confirm "$target" \
    >"$OUTDIR/b.json" 2>"$OUTDIR/b.stderr" || rc=$?
echo "$rc" >"$OUTDIR/b.rc"
cp -r "$work/run-b/certs" "$OUTDIR/b.certs" 2>/dev/null || mkdir -p "$OUTDIR/b.certs"
[ "$rc" = 0 ] || fail "(b) wipe --all exited $rc: $(cat "$OUTDIR/b.stderr")"
sync
sums >"$OUTDIR/b.sums-after"
cmp "$OUTDIR/b.sums-before" "$OUTDIR/b.sums-after" ||
    fail "(b) a skipped loop device changed: $(cat "$OUTDIR/b.sums-before" "$OUTDIR/b.sums-after")"
cmp -n $((8 << 20)) "$work/target.img" /dev/zero ||
    fail "(b) the included loop device $target is not all zeros after the wipe"
[ "$(cat "$mnt/file")" = kept ] || fail "(b) the mounted file system lost its file"
echo "guest_wipe_faults: (b) $target zeroed; $mounted, $held, $excluded unchanged" >&2

# --- (c) a disk that goes away mid-wipe --------------------------------------
# A dm device over a loop device; once the wipe has started writing (the
# marker at byte 0 is gone), its table is swapped for an all-error one, as
# when a disk drops off the bus. The wipe must end, FAILED, with the error
# in the result and the certificate; never "wiped".
new_loop gone 96
gone_under=$dev
sectors=$((96 << 11))
# dm-delay holds every I/O 400 ms, so that the wipe (random pass, then a
# full verify) takes seconds rather than the tenth of a second tmpfs gives:
# the table swap below then always lands mid-wipe, never after it (a plain
# linear table let the wipe finish first on a fast host).
dmsetup create speediso-vm-gone --table "0 $sectors delay $gone_under 0 400" ||
    fail "(c) no dm-delay target in the guest kernel (modprobe dm_delay)"
dms+=(speediso-vm-gone)
udevadm settle
gone=/dev/mapper/speediso-vm-gone
gone_kernel=$(readlink -f "$gone")
SPEEDISO_WIPE_TEST_ALLOW=$gone SPEEDISO_RUN_DIR=$work/run-c \
    speediso wipe --device "$gone" --method random --verify full --json --confirm "$gone_kernel" \
    >"$OUTDIR/c.json" 2>"$OUTDIR/c.stderr" &
wipe_pid=$!
for _ in $(seq 600); do
    head -c 64 "$work/gone.img" | grep -aq SPEEDISO-MARKER || break
    sleep 0.05
done
head -c 64 "$work/gone.img" | grep -aq SPEEDISO-MARKER && fail "(c) the wipe did not start writing within 30 s"
kill -0 "$wipe_pid" 2>/dev/null || fail "(c) the wipe finished before the disk could be taken away (too fast to test)"
dmsetup suspend speediso-vm-gone
dmsetup load speediso-vm-gone --table "0 $sectors error"
dmsetup resume speediso-vm-gone
echo "guest_wipe_faults: (c) $gone_kernel now fails every I/O" >&2
rc=0
wait "$wipe_pid" || rc=$?
echo "$rc" >"$OUTDIR/c.rc"
cp -r "$work/run-c/certs" "$OUTDIR/c.certs" 2>/dev/null || mkdir -p "$OUTDIR/c.certs"
[ "$rc" = 1 ] || fail "(c) the wipe of a disk that went away exited $rc, want 1: $(tail -5 "$OUTDIR/c.stderr")"
grep -q 'wipe FAILED on' "$OUTDIR/c.stderr" || fail "(c) stderr does not say the wipe FAILED: $(tail -5 "$OUTDIR/c.stderr")"
grep -q '"outcome": *"wiped"' "$OUTDIR/c.json" && fail "(c) a disk that went away is reported wiped"
grep -q '"outcome": *"failed"' "$OUTDIR/c.certs"/*.json || fail "(c) no certificate says failed"
echo "guest_wipe_faults: (c) wipe of $gone_kernel failed as it must when the disk went away (exit $rc)" >&2

# --- (d) burnin scan: the dm-error segment as exactly its LBAs ---------------
# The surface scan (read-only) of a dm device linear | error | linear whose
# error segment is not aligned to the scan's 1 MiB reads: it must exit 1
# and report the segment, found by narrowing down to the block
# (crates/agent/tests/burnin_scan.rs, which skips on the host's kernel).
new_loop scanned 64
scanned=$dev
total=$((64 << 11))
bad_start=20000
bad_len=3000
rest=$((bad_start + bad_len))
printf '0 %d linear %s 0\n%d %d error\n%d %d linear %s %d\n' \
    "$bad_start" "$scanned" "$bad_start" "$bad_len" "$rest" $((total - rest)) "$scanned" "$rest" |
    dmsetup create speediso-vm-scan
dms+=(speediso-vm-scan)
udevadm settle
echo "/dev/mapper/speediso-vm-scan $bad_start $bad_len $scanned" >"$OUTDIR/d.device"
sum_before=$(sha256sum <"$work/scanned.img")
rc=0
SPEEDISO_RUN_DIR=$work/run-d speediso --cmdline quiet burnin scan \
    --disk /dev/mapper/speediso-vm-scan --disk "$scanned" --json \
    >"$OUTDIR/d.json" 2>"$OUTDIR/d.stderr" || rc=$?
echo "$rc" >"$OUTDIR/d.rc"
[ "$rc" = 1 ] || fail "(d) burnin scan of a device with bad sectors exited $rc, want 1: $(tail -5 "$OUTDIR/d.stderr")"
grep -q "LBA $bad_start +$bad_len unreadable" "$OUTDIR/d.stderr" ||
    fail "(d) stderr does not name LBA $bad_start +$bad_len: $(tail -5 "$OUTDIR/d.stderr")"
[ "$(sha256sum <"$work/scanned.img")" = "$sum_before" ] || fail "(d) the scan changed the device"
echo "guest_wipe_faults: (d) burnin scan reported LBA $bad_start +$bad_len unreadable (exit $rc)" >&2

# --- (e) a customer's md + LVM stack over two loop devices ------------------
# Issue 16: the wipe stops the stack before erasing its members. First with
# a process holding the md array open: its STOP_ARRAY is refused (busy),
# both members fail with that reason and keep every byte. Then, the holder
# gone, the stack is released, both members are zeroed and blkid -p finds
# nothing on them.
{ command -v mdadm >/dev/null && command -v lvcreate >/dev/null; } ||
    fail "(e) mdadm and lvm2 are not in the image (tests/vm/rootfs-packages.txt)"
new_loop md1 40
md1=$dev
new_loop md2 40
md2=$dev
mdadm --create /dev/md/spdtest --run --assume-clean --level=1 --raid-devices=2 \
    --metadata=1.0 "$md1" "$md2" >/dev/null 2>&1 </dev/null || fail "(e) mdadm --create failed"
udevadm settle
mdk=$(readlink -f /dev/md/spdtest)
{ pvcreate -q "$mdk" && vgcreate -q spdtestvg "$mdk" && lvcreate -q -y -n lv -l 100%FREE spdtestvg; } </dev/null >/dev/null ||
    fail "(e) building LVM on $mdk failed"
udevadm settle
echo "$md1 $md2 $mdk" >"$OUTDIR/e.devices"
esums() { sha256sum "$work/md1.img" "$work/md2.img"; }
esums >"$OUTDIR/e.sums-before"
# A reader holding the array open: nothing device-mapper can count.
# (a shell reading nothing, with the array as its stdin)
bash -c 'sleep 600' <"$mdk" &
holder=$!
rc=0
SPEEDISO_WIPE_TEST_ALLOW=$md1,$md2 SPEEDISO_RUN_DIR=$work/run-e1 \
    speediso wipe --device "$md1" --device "$md2" --method zero --verify full --json \
    --confirm "$md1" "$md2" >"$OUTDIR/e1.json" 2>"$OUTDIR/e1.stderr" || rc=$?
echo "$rc" >"$OUTDIR/e1.rc"
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
[ "$rc" = 1 ] || fail "(e1) a wipe through a busy stack exited $rc, want 1: $(tail -5 "$OUTDIR/e1.stderr")"
grep -q 'could not be stopped.*md RAID1.*busy' "$OUTDIR/e1.json" ||
    fail "(e1) the result does not say the stack was busy: $(tail -5 "$OUTDIR/e1.stderr")"
grep -q '"outcome": *"wiped"' "$OUTDIR/e1.json" && fail "(e1) a disk under a busy stack is reported wiped"
esums >"$OUTDIR/e.sums-after1"
cmp -s "$OUTDIR/e.sums-before" "$OUTDIR/e.sums-after1" ||
    fail "(e1) a member of the busy stack was written"
echo "guest_wipe_faults: (e1) the busy md array was not stopped; $md1 and $md2 untouched (exit $rc)" >&2
rc=0
SPEEDISO_WIPE_TEST_ALLOW=$md1,$md2 SPEEDISO_RUN_DIR=$work/run-e2 \
    speediso wipe --device "$md1" --device "$md2" --method zero --verify full --json \
    --confirm "$md1" "$md2" >"$OUTDIR/e2.json" 2>"$OUTDIR/e2.stderr" || rc=$?
echo "$rc" >"$OUTDIR/e2.rc"
[ "$rc" = 0 ] || fail "(e2) the wipe after the holder left exited $rc: $(tail -5 "$OUTDIR/e2.stderr")"
# Stopped: no members left (the node itself may linger while udev probes it).
[ -z "$(ls /sys/block/"${mdk#/dev/}"/slaves 2>/dev/null)" ] || fail "(e2) $mdk still has members"
grep -q '"outcome": *"released"' "$OUTDIR/e2.json" || fail "(e2) the result has no released stack"
for f in md1 md2; do
    cmp -n $((40 << 20)) "$work/$f.img" /dev/zero || fail "(e2) $f is not all zeros"
    out=$(blkid -p "$work/$f.img" || true)
    [ -z "$out" ] || fail "(e2) blkid -p still finds $out"
done
echo "guest_wipe_faults: (e2) the stack on $md1 and $md2 was released and both zeroed" >&2
