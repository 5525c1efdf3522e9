#!/usr/bin/env python3
"""Boot timing from a VM suite console log (printk.time=1 with journald
forwarding to kmsg, so systemd's and speediso's lines carry the kernel's
monotonic timestamp: seconds since the kernel started).

    boot_timing.py CONSOLE.log TASK

Prints, in seconds since the kernel started: when systemd started
speediso-dispatch.service, when the dispatcher was running (exec'd), when
systemd began starting speediso@TASK.service (the dispatcher's StartUnit),
and the dispatcher's own share: from its exec to its StartUnit, and from
systemd starting its unit to StartUnit.
"""
import re
import sys

STAMP = re.compile(r"^\[\s*(\d+\.\d+)\]\s(.*)$")


def first(lines, pattern):
    rx = re.compile(pattern)
    for t, text in lines:
        if rx.search(text):
            return t
    return None


def main():
    path, task = sys.argv[1], sys.argv[2]
    lines = []
    for raw in open(path, errors="replace"):
        m = STAMP.match(raw.strip("\r\n"))
        if m:
            lines.append((float(m.group(1)), m.group(2)))
    unit = re.escape(f"speediso@{task}.service")
    marks = {
        "switch_root": first(lines, r"systemd\[1\]: .*(Detected virtualization|systemd 2\d\d)"),
        "dispatch_starting": first(lines, r"systemd\[1\]: Starting speediso-dispatch\.service"),
        "dispatch_started": first(lines, r"systemd\[1\]: Started speediso-dispatch\.service"),
        "task_starting": first(lines, rf"systemd\[1\]: Starting {unit}"),
        "task_finished": first(lines, rf"systemd\[1\]: (Finished {unit}|{unit}: Deactivated successfully)"),
    }
    missing = [k for k, v in marks.items() if v is None and k != "switch_root"]
    if missing:
        print(f"boot_timing: not on the console: {', '.join(missing)}", file=sys.stderr)
        sys.exit(1)
    for k, v in marks.items():
        print(f"{k:18} {v:9.3f} s" if v is not None else f"{k:18} -")
    exec_to_start = (marks["task_starting"] - marks["dispatch_started"]) * 1000
    unit_to_start = (marks["task_starting"] - marks["dispatch_starting"]) * 1000
    print(f"dispatch_share     {exec_to_start:9.1f} ms (exec to StartUnit)")
    print(f"dispatch_unit      {unit_to_start:9.1f} ms (unit start to StartUnit, incl. fork/exec)")


if __name__ == "__main__":
    main()
