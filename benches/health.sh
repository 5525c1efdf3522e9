#!/usr/bin/env bash
# `speediso health` (every signal: EDAC, machine checks, throttling, hwmon,
# PCIe AER and links, NIC counters, the disks' SMART read natively) against
# the same facts gathered by the tools an engineer runs by hand, in the same
# run: edac-util, sensors, smartctl -H -A on every disk, lspci -vv.
# Issue 15's target: under 100 ms for speediso, without self-tests.
#
#   sudo benches/health.sh            # RUNS=20 by default
#
# Needs hyperfine, edac-utils, lm-sensors, smartmontools, pciutils
# (tests/apt/bench.txt). Prints both means and the ratio speediso/peers.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-20}
# The static agent, as the image carries it.
# (BIN= names an already built one.)
bin=${BIN:-$(./scripts/build-static.sh)}
for t in hyperfine edac-util sensors smartctl lspci; do
    command -v "$t" >/dev/null || { echo "health.sh: $t is missing (tests/apt/bench.txt)" >&2; exit 1; }
done
# Every disk smartctl can ask, as speediso's disk check does.
disks=$(lsblk -dno NAME,TYPE | awk '$2 == "disk" && $1 !~ /^(loop|zram|ram|sr)/ {print "/dev/" $1}' | tr '\n' ' ')
peers="edac-util -s 0 >/dev/null 2>&1; sensors >/dev/null 2>&1; for d in $disks; do smartctl -H -A \$d >/dev/null 2>&1; done; lspci -vv >/dev/null 2>&1; true"
json=$(mktemp)
trap 'rm -f "$json"' EXIT
hyperfine -N --warmup 3 --runs "$runs" --export-json "$json" \
    -n speediso "$bin health --json" \
    -n peers "bash -c '$peers'" >&2 || true
python3 - "$json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
s, p = r["speediso"]["mean"] * 1000, r["peers"]["mean"] * 1000
print(f"speediso health: {s:.1f} ms mean (min {r['speediso']['min']*1000:.1f} ms); "
      f"edac-util + sensors + smartctl + lspci -vv: {p:.1f} ms mean")
print(f"ratio speediso/peers (time): {s / p:.2f}; target: speediso < 100 ms -> "
      f"{'met' if s < 100 else 'MISSED'}")
PY
