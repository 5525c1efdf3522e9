#!/usr/bin/env bash
# Build the initramfs that PXE-boots the speediso live image: dracut's livenet
# module fetches the squashfs named by root=live:URL over HTTP, dmsquash-live
# mounts it with a RAM overlay, and the network module brings the NIC up first
# (rd.neednet=1 ip=dhcp on the command line).
#
#   dracut-initramfs.sh KVER BUILD [OUTPUT]
#
# KVER    kernel version (modules from /lib/modules/KVER, or SPEEDISO_KMODDIR)
# BUILD   build number; stamped into the initramfs as /etc/speediso-build and
#         into the default output name initrd-speediso-BUILD.img
# Environment, for building from an unpacked image tree instead of the host:
#   SPEEDISO_KMODDIR   directory holding the kernel's modules
#   SPEEDISO_NETWORK   dracut network module (default "network": dracut picks
#                      NetworkManager or network-legacy; Debian needs
#                      "network-legacy" with isc-dhcp-client installed)
#   SPEEDISO_COMPRESS  --xz (default), --zstd, --gzip
set -euo pipefail

usage() {
    echo "usage: $0 KVER BUILD [OUTPUT]" >&2
    exit 2
}
if [ "$#" -lt 2 ] || [ "$#" -gt 3 ]; then usage; fi
kver=$1
build=$2
out=${3:-initrd-speediso-$build.img}
case "$build" in
    '' | *[!A-Za-z0-9._-]*)
        echo "$0: BUILD must be [A-Za-z0-9._-]+, got '$build'" >&2
        exit 2
        ;;
esac
kmoddir=${SPEEDISO_KMODDIR:-/lib/modules/$kver}
if [ ! -d "$kmoddir/kernel" ]; then
    echo "$0: no kernel modules for $kver in $kmoddir" >&2
    exit 1
fi

# Only the NIC drivers must be in the initramfs (disk drivers load from the
# squashfs). Server NICs first, then what VMs and small boxes use. Drivers
# this kernel does not have are left out with a note, so one list serves
# every kernel.
nics=(ixgbe ixgbevf i40e iavf ice igb igc e1000e e1000 bnxt_en tg3 bnx2 bnx2x
    mlx4_en mlx5_core qede be2net sfc cxgb4 nfp ena r8169 virtio_net virtio_pci)
live=(squashfs loop overlay dm_mod)
drivers=()
for m in "${nics[@]}" "${live[@]}"; do
    # Module files may spell _ as - (dm_mod is dm-mod.ko).
    if [ -n "$(find "$kmoddir/kernel" \( -name "$m.ko*" -o -name "${m//_/-}.ko*" \) -print -quit)" ]; then
        drivers+=("$m")
    elif grep -Eq "/(${m}|${m//_/-})\.ko\$" "$kmoddir/modules.builtin" 2>/dev/null; then
        : # built into the kernel
    else
        echo "$0: note: $kver has no module $m; left out" >&2
    fi
done

stamp=$(mktemp)
trap 'rm -f "$stamp"' EXIT
printf 'speediso live image, build %s\n' "$build" >"$stamp"

dracut --force --no-hostonly "${SPEEDISO_COMPRESS:---xz}" \
    --kver "$kver" --kmoddir "$kmoddir" \
    --add "livenet dmsquash-live ${SPEEDISO_NETWORK:-network}" \
    --omit "plymouth systemd-networkd" \
    --add-drivers "${drivers[*]}" \
    --include "$stamp" /etc/speediso-build \
    "$out" "$kver"
echo "$out"
