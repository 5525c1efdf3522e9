#!/usr/bin/env python3
"""Check what the collector stored for a lininstall run (the VM suite's
lininstall, lininstall-badsum and kexec scenarios).

    check_install.py image RUN.json SHA256 SERIAL   an image install succeeded
    check_install.py failed RUN.json                the install failed, nothing installed
    check_install.py kexec RUN.json KERNEL_SHA256   the installer kernel was loaded

RUN.json is the collector's GET /v1/runs/<id>: {run, events, results,
certificates}. Prints what it found; exits 1 with the reason otherwise.
"""
import json
import sys


def fail(msg):
    print(f"check_install: {msg}", file=sys.stderr)
    sys.exit(1)


def install_results(doc):
    out = []
    for r in doc.get("results", []):
        data = r.get("data", r)
        if isinstance(data, dict) and data.get("mode") in ("image", "kexec"):
            out.append(data)
    return out


def finished(doc):
    types = [e.get("type") for e in doc.get("events", [])]
    if "run_finished" not in types:
        fail(f"the collector has no run_finished event for the run (types: {types})")
    return doc["run"]


def main(argv):
    if len(argv) < 3:
        fail(__doc__)
    mode, path = argv[1], argv[2]
    doc = json.load(open(path))
    run = finished(doc)
    res = install_results(doc)
    if mode == "image":
        want_sha, serial = argv[3], argv[4]
        if run.get("outcome") != "success":
            fail(f"run outcome {run.get('outcome')!r}, want success ({run.get('error')})")
        if len(res) != 1:
            fail(f"{len(res)} install results, want 1: {res}")
        r = res[0]
        checks = {
            "installed": (r.get("installed"), True),
            "sha256": (r.get("sha256"), want_sha),
            "checksum_verified": (r.get("checksum_verified"), True),
            "readback_verified": (r.get("readback_verified"), True),
            "target.serial": ((r.get("target") or {}).get("serial"), serial),
            "target.transport": ((r.get("target") or {}).get("transport"), "nvme"),
        }
        bad = {k: v for k, v in checks.items() if v[0] != v[1]}
        if bad:
            fail(f"install result differs (got, want): {bad}; result: {r}")
        print(f"installed {r['bytes_written']} bytes to {r['target']['path']} "
              f"(serial {serial}), sha256 {r['sha256']}, read back")
    elif mode == "failed":
        if run.get("outcome") == "success":
            fail("the run succeeded with a wrong checksum")
        if any(r.get("installed") for r in res):
            fail(f"a result says installed: {res}")
        err = run.get("error") or ""
        text = json.dumps(doc["events"])
        for want in ("checksum mismatch", "partition tables cleared", "nothing installed"):
            if want not in text:
                fail(f"no event says {want!r} (run error: {err!r})")
        print(f"run {run.get('outcome')}: {err}")
    elif mode == "kexec":
        want_k = argv[3]
        if run.get("outcome") != "success":
            fail(f"run outcome {run.get('outcome')!r}, want success ({run.get('error')})")
        if len(res) != 1 or res[0].get("mode") != "kexec":
            fail(f"want one kexec result: {res}")
        r = res[0]
        if r.get("loaded") is not True:
            fail(f"the kernel says no kexec image is loaded: {r}")
        if r["kernel"]["sha256"] != want_k or r["kernel"]["verified"] is not True:
            fail(f"kernel digest {r['kernel']} differs from {want_k} or is unverified")
        print(f"kexec loaded {r['kernel']['bytes']} + {r['initrd']['bytes']} bytes, append {r['append']!r}")
    else:
        fail(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv)
