#!/usr/bin/env python3
"""VM suite, scenario inventory: the inventory the collector stored for the
run equals what the guest itself shows.

    check_inventory.py RUN.json LSPCI.txt [--no-hidden-areas]

RUN.json is the collector's GET /v1/runs/<run_id> ({run, events, results:
[{seq, step, data}], certificates}) or, without a collector, the guest's
/run/speediso/state.json ({results: {step: data}}); LSPCI.txt is `lspci -mm -nn -D` from inside the same guest.
Asserts: the PCI list (address, vendor, device and class ids, names) equals
lspci's, and the disks carry the serials given to QEMU. The hidden areas
(issue 16): QEMU's ide-hd answers READ NATIVE MAX ADDRESS and has no HPA or
DCO, and QEMU's NVMe namespace covers the whole controller, so the SATA
disk has hpa_sectors 0 and the NVMe namespace leaves nothing uncovered.
--no-hidden-areas skips that, for inventories captured before the field.
"""
import json
import re
import shlex
import sys

WANT_SERIALS = {"NVME0001": "nvme", "SATA0002": "sata", "USB0003": "usb", "SCSI0004": "virtio"}
# The command set each disk speaks (what a wipe can send it): the SCSI
# disk sits on virtio-scsi (lsblk-style transport "virtio") and speaks SCSI.
WANT_COMMAND_SETS = {"NVME0001": "nvme", "SATA0002": "ata", "SCSI0004": "scsi"}


def fail(msg):
    print(f"check_inventory: {msg}", file=sys.stderr)
    sys.exit(1)


def split_id(field):
    """'Ethernet controller [0200]' -> ('Ethernet controller', '0200')."""
    m = re.fullmatch(r"(.*) \[([0-9a-f]{4})\]", field)
    return (m.group(1), m.group(2)) if m else (field, None)


def lspci(path):
    devs = {}
    for line in open(path):
        words = shlex.split(line)
        if not words:
            continue
        addr = words[0]
        fields = [w for w in words[1:] if not w.startswith("-")]
        cls, vendor, device = fields[0], fields[1], fields[2]
        vname, vid = split_id(vendor)
        dname, did = split_id(device)
        # For an id missing from pci.ids lspci -nn prints "Vendor [1234]" /
        # "Device [1111]"; without -nn it prints "Vendor 1234" / "Device
        # 1111", which is what the inventory stores.
        if dname in ("Device", "Unknown device"):
            dname = f"{dname} {did}"
        if vname in ("Vendor", "Unknown vendor"):
            vname = f"{vname} {vid}"
        devs[addr] = {
            "class_id": split_id(cls)[1],
            "vendor": vname,
            "vendor_id": vid,
            "device": dname,
            "device_id": did,
        }
    return devs


def check_hidden(disk, serial):
    """The hidden_areas QEMU's disks must show (see the module doc)."""
    h = disk.get("hidden_areas")
    transport = disk.get("transport")
    if transport == "sata":
        if not h or h.get("kind") != "ata":
            fail(f"disk {serial}: no ATA hidden_areas: {h!r}")
        if h.get("hpa_sectors") != 0:
            fail(f"disk {serial}: hpa_sectors {h.get('hpa_sectors')!r}, want 0 ({h})")
        native, accessible = h.get("native_max_sectors"), h.get("accessible_sectors")
        sector = disk.get("logical_sector_size") or 512
        if native is None or native != accessible or native * sector != disk.get("size_bytes"):
            fail(f"disk {serial}: native {native!r}, accessible {accessible!r}, "
                 f"size {disk.get('size_bytes')!r} bytes: want one size ({h})")
        if h.get("dco_hidden_sectors") not in (None, 0):
            fail(f"disk {serial}: dco_hidden_sectors {h.get('dco_hidden_sectors')!r} ({h})")
    elif transport == "nvme":
        if not h or h.get("kind") != "nvme":
            fail(f"disk {serial}: no NVMe hidden_areas: {h!r}")
        if h.get("other_namespaces") != [] or h.get("uncovered") != []:
            fail(f"disk {serial}: the namespace does not cover the controller: {h}")
        if h.get("unallocated_bytes") not in (None, 0):
            fail(f"disk {serial}: unallocated_bytes {h.get('unallocated_bytes')!r} ({h})")
        if h.get("namespace_bytes") != disk.get("size_bytes"):
            fail(f"disk {serial}: namespace_bytes {h.get('namespace_bytes')!r}, "
                 f"size {disk.get('size_bytes')!r}")
    elif h is not None:
        fail(f"disk {serial} ({transport}): unexpected hidden_areas {h}")


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    hidden = "--no-hidden-areas" not in sys.argv[1:]
    run = json.load(open(args[0]))
    guest = lspci(args[1])
    if not guest:
        fail("lspci printed nothing")
    inv = None
    results = run.get("results", [])
    if isinstance(results, dict):
        results = [{"step": k, "data": v} for k, v in results.items()]
    for r in results:
        data = r.get("data", {})
        if isinstance(data, dict) and "pci" in data and "disks" in data:
            inv = data
    if inv is None:
        fail("no inventory result in the run: %s" % json.dumps(run)[:500])
    stored = {d["address"]: d for d in inv["pci"]}
    if set(stored) != set(guest):
        fail(f"PCI addresses differ: collector only {sorted(set(stored) - set(guest))}, "
             f"lspci only {sorted(set(guest) - set(stored))}")
    for addr, want in guest.items():
        got = stored[addr]
        for k, v in want.items():
            if got.get(k) != v:
                fail(f"{addr} {k}: collector {got.get(k)!r}, lspci {v!r}")
    serials = {d.get("serial"): d for d in inv["disks"]}
    for serial, transport in WANT_SERIALS.items():
        if serial not in serials:
            fail(f"no disk with serial {serial}: {sorted(map(str, serials))}")
        got = serials[serial].get("transport")
        if got != transport:
            fail(f"disk {serial}: transport {got!r}, want {transport!r}")
        if hidden:
            check_hidden(serials[serial], serial)
    for serial, cs in WANT_COMMAND_SETS.items():
        got = serials[serial].get("command_set")
        if got != cs:
            fail(f"disk {serial}: command_set {got!r}, want {cs!r}")
    print(f"check_inventory: {len(guest)} PCI devices and {len(WANT_SERIALS)} disk serials match")


if __name__ == "__main__":
    main()
