#!/bin/bash
# Run in the guest (tests/vm/run.sh decommission-stack, first boot): leave
# the disks as a customer's OS would. A GPT on the NVMe disk with one
# partition; an md RAID1 (metadata 1.0: the superblock at the end of each
# member) over that partition and the whole SATA disk; LVM on the array;
# ext4 on the logical volume, with a file whose bytes the later erase must
# remove from both disks. Then everything is stopped cleanly and the guest
# powered off by the suite.
set -euo pipefail
# The whole script is read before it runs (bash -s reads it from the same
# stdin that mkfs or pvcreate might read from), and runs with stdin closed.
main() {
set -x
by_serial() { lsblk -dno NAME,SERIAL | awk -v s="$1" '$2 == s { print "/dev/" $1 }'; }
nvme=$(by_serial NVME0001)
sata=$(by_serial SATA0002)
if [ ! -b "$nvme" ] || [ ! -b "$sata" ]; then
    echo "disks not found: nvme=$nvme sata=$sata"
    lsblk
    exit 1
fi
echo "label: gpt" | sfdisk --quiet "$nvme"
echo ",,L" | sfdisk --quiet --append "$nvme"
udevadm settle --timeout=60 || echo "udevadm settle timed out"
part=$(lsblk -lno NAME,TYPE "$nvme" | awk '$2 == "part" { print "/dev/" $1; exit }')
[ -b "$part" ] || { echo "no partition on $nvme"; exit 1; }
mdadm --create /dev/md/customer --run --assume-clean --level=1 --raid-devices=2 \
    --metadata=1.0 "$part" "$sata"
udevadm settle --timeout=60 || echo "udevadm settle timed out"
pvcreate -q /dev/md/customer
vgcreate -q custvg /dev/md/customer
lvcreate -q -y -n data -l 100%FREE custvg
udevadm settle --timeout=60 || echo "udevadm settle timed out"
mkfs.ext4 -q -L customer-data /dev/custvg/data
mkdir -p /mnt/customer
mount /dev/custvg/data /mnt/customer
# 4 MiB of a recognisable text: the suite greps the disk images for it.
# (yes dies of SIGPIPE when head has enough: not a failure under pipefail)
{ yes 'speediso-customer-secret-file' || true; } | head -c 4194304 >/mnt/customer/secret.txt
sync
umount /mnt/customer
vgchange -q -an custvg
mdadm --stop /dev/md/customer
sync
blkid -p "$part" "$sata" || true
echo "stack built on $part and $sata"
}
main </dev/null
