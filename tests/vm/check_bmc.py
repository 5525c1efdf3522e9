#!/usr/bin/env python3
"""VM suite, scenario site-access: the inventory's `bmc` section shows
exactly what QEMU's simulated BMC was told to be.

    check_bmc.py INVENTORY.json [SYSFS.txt]

INVENTORY.json is `speediso inventory --json` from the guest, or the
guest's /run/speediso/state.json ({results: {step: data}}), or the
collector's GET /v1/runs/<run_id> ({results: [{step, data}]}).
The BMC is `-device ipmi-bmc-sim` with the properties in run.sh's
`bmc_props` (WANT below) behind `-device isa-ipmi-kcs` (I/O port 0xca2):
Get Device ID must give exactly those values; SMBIOS type 38 must describe
the KCS interface; LAN channels the simulator does not answer must be
explained by a note, never left silent. SYSFS.txt is the kernel's own view
of the same BMC (`grep -H . device_id revision firmware_revision
ipmi_version manufacturer_id product_id` in /sys/class/ipmi/ipmi0/device/bmc,
from ipmi_msghandler's Get Device ID): each value must agree.
"""
import json
import sys

# run.sh: device_id=81,device_rev=3,fwrev1=5,fwrev2=39,mfg_id=10876,product_id=4660.
# Not device_id: QEMU 7.2's simulator answers 0x20 whatever device_id= says
# (the guest kernel's "Found new BMC (... dev_id: 0x20)" says so too); the
# device id is checked against the kernel's view instead.
WANT = {
    "device_revision": 3,
    "firmware_version": "5.27",
    "ipmi_version": "2.0",
    "manufacturer_id": 10876,
    "manufacturer": "Supermicro",
    "product_id": 4660,
    "firmware_update_in_progress": False,
}
WANT_SMBIOS = {
    "interface_type": "KCS",
    "base_address": "0xca2",
    "address_space": "io",
    "spec_version": "2.0",
}


def fail(msg):
    print(f"check_bmc: {msg}", file=sys.stderr)
    sys.exit(1)


def inventory(doc):
    if "bmc" in doc:
        return doc
    results = doc.get("results")
    if isinstance(results, dict) and isinstance(results.get("inventory"), dict):
        return results["inventory"]
    if isinstance(results, list):
        for r in results:
            if r.get("step") == "inventory" and isinstance(r.get("data"), dict):
                return r["data"]
    fail("no inventory in the document")


def sysfs(path):
    """The kernel's attributes, in the inventory's names and types."""
    raw = {}
    for line in open(path):
        name, _, value = line.strip().partition(":")
        raw[name] = value
    out = {}
    conv = {
        "device_id": ("device_id", int),
        "revision": ("device_revision", int),
        # "%u.%x": the major in decimal, the BCD minor byte in hex.
        "firmware_revision": ("firmware_version", lambda v: "{}.{:02x}".format(
            int(v.split(".")[0]), int(v.split(".")[1], 16))),
        "ipmi_version": ("ipmi_version", str),
        "manufacturer_id": ("manufacturer_id", lambda v: int(v, 16)),
        "product_id": ("product_id", lambda v: int(v, 16)),
    }
    for k, (name, f) in conv.items():
        if k not in raw:
            fail(f"{path} lacks {k}")
        out[name] = f(raw[k])
    return out


def same(got, want, what):
    """Fail with `what` and every key whose value in `got` is not `want`'s."""
    wrong = {k: (got.get(k), v) for k, v in want.items() if got.get(k) != v}
    if wrong:
        fail(f"{what}: {wrong}")


def main():
    if len(sys.argv) not in (2, 3):
        fail("usage: check_bmc.py INVENTORY.json [SYSFS.txt]")
    inv = inventory(json.load(open(sys.argv[1])))
    bmc = inv.get("bmc")
    if not isinstance(bmc, dict):
        fail(f"the inventory has no bmc section: {bmc!r}")
    notes = bmc.get("notes") or []
    if bmc.get("device") != "/dev/ipmi0":
        fail(f"bmc.device is {bmc.get('device')!r}, want /dev/ipmi0 (notes: {notes})")
    dev = bmc.get("device_id")
    if not isinstance(dev, dict):
        fail(f"no Get Device ID answer (notes: {notes})")
    same(dev, WANT, "Get Device ID differs from QEMU's properties (got, want)")
    if len(sys.argv) == 3:
        kernel = sysfs(sys.argv[2])
        same(dev, kernel, "Get Device ID differs from the kernel's view in sysfs (got, kernel)")
    sm = bmc.get("smbios")
    if not isinstance(sm, dict):
        fail(f"no SMBIOS type 38 record (notes: {notes})")
    same(sm, WANT_SMBIOS, "SMBIOS type 38 differs from QEMU's isa-ipmi-kcs (got, want)")
    lan = bmc.get("lan")
    if not isinstance(lan, list):
        fail(f"bmc.lan is {lan!r}, want a list")
    for ch in lan:
        if not isinstance(ch.get("channel"), int):
            fail(f"a LAN channel without its number: {ch}")
    unanswered = [c for c in lan if not c.get("ip_address")]
    if (not lan or unanswered) and not any("Channel Info" in n or "LAN" in n for n in notes):
        fail(f"LAN configuration missing without a note saying why: lan {lan}, notes {notes}")
    print(f"check_bmc: {dev['manufacturer']} ({dev['manufacturer_id']}) device {dev['device_id']} "
          f"firmware {dev['firmware_version']} IPMI {dev['ipmi_version']}; "
          f"{sm['interface_type']} at {sm['base_address']}; {len(lan)} LAN channel(s); notes: {notes}")


if __name__ == "__main__":
    main()
