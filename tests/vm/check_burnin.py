#!/usr/bin/env python3
"""VM suite, scenario burnin: what the burn-in task left in the guest's state
file (/run/speediso/state.json, its results per step).

    check_burnin.py STATE.json pass
    check_burnin.py STATE.json fail

pass: the run succeeded; both health reports are not FAIL and name the
emulated NVMe (NVME0001) and SATA (SATA0002) disks as checked; the after
report compared with the snapshot (`change`, 0 new findings); the SATA
disk's SMART self-test passed (QEMU's IDE disk runs them); the NVMe one
passed or said it is unsupported (QEMU's NVMe may not offer it); the CPU
stress, the memory test and the surface scan passed, the scan reading both
disks.
fail: the run failed; the health reports FAIL with a disk finding naming
NVME0001's critical warning and an expect finding naming the expected and
found memory.
"""
import json
import sys


def fail(msg):
    print(f"check_burnin: {msg}", file=sys.stderr)
    sys.exit(1)


def main():
    state = json.load(open(sys.argv[1]))
    want = sys.argv[2]
    res = state["results"]
    for step in ["health-before", "burnin.selftest", "health-after"]:
        if step not in res:
            fail(f"no result for step {step}: {sorted(res)}")
    before, after, st = res["health-before"], res["health-after"], res["burnin.selftest"]
    checks = {c["check"]: c for c in after["checked"]}
    if "change" not in checks:
        fail(f"health-after did not compare with the snapshot: {sorted(checks)}")
    disk_summary = checks["disk"]["summary"]
    if want == "pass":
        if state["outcome"] != "success":
            fail(f"outcome {state['outcome']}, want success")
        for r in (before, after):
            if r["verdict"] == "fail":
                fail(f"health FAIL on a clean machine: {r['findings']}")
        if "nvme0n1 (NVMe log)" not in disk_summary or "(ATA SMART)" not in disk_summary:
            fail(f"the disk check did not read both disks: {disk_summary}")
        for step in ["burnin.cpu", "burnin.memory", "burnin.scan"]:
            if res.get(step, {}).get("verdict") != "pass":
                fail(f"{step} did not pass: {res.get(step)}")
        scanned = {d.get("serial") for d in res["burnin.scan"]["disks"]}
        if not {"NVME0001", "SATA0002"} <= scanned:
            fail(f"the surface scan did not read both disks: {scanned}")
        if not checks["change"]["summary"].endswith(": 0 new"):
            fail(f"new findings after the burn-in: {checks['change']}")
        by_serial = {d["serial"]: d for d in st["disks"]}
        sata = by_serial.get("SATA0002")
        if not sata or sata["outcome"] != "passed":
            fail(f"the SATA self-test did not pass: {st['disks']}")
        nvme = by_serial.get("NVME0001")
        if not nvme or nvme["outcome"] not in ("passed", "unsupported"):
            fail(f"the NVMe self-test: {st['disks']}")
        print(f"check_burnin: pass: {disk_summary}; self-tests "
              f"{[(d['serial'], d['outcome']) for d in st['disks']]}")
        return
    if state["outcome"] == "success":
        fail("the run succeeded with a critical warning and missing memory")
    for name, r in (("health-before", before), ("health-after", after)):
        if r["verdict"] != "fail":
            fail(f"{name}: verdict {r['verdict']}, want fail")
        fs = [f for f in r["findings"] if f["severity"] == "fail"]
        nvme = [f for f in fs if f["check"] == "disk" and f["component"].startswith("NVME0001")
                and "critical warning" in f["message"]]
        mem = [f for f in fs if f["check"] == "expect" and f["component"] == "memory"
               and "expected 64 GiB of memory, found" in f["message"]]
        if not nvme or not mem:
            fail(f"{name}: want FAIL findings naming NVME0001's critical warning and the memory: {fs}")
    print(f"check_burnin: fail as wanted: {[f['message'] for f in after['findings'] if f['severity'] == 'fail']}")


main()
