#!/usr/bin/env bash
# Process time of `speediso --version` and `speediso dispatch --dry-run`
# (what runs at boot before a task starts), and the static binary's size.
# Targets: under 5 ms each, binary under 10 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-$(./scripts/build-static.sh)}
line="BOOT_IMAGE=vmlinuz initrd=initrd.img root=live:http://mirror/speedtest.squashfs rd.live.image ip=dhcp systemd.setenv=SPEEDISO=rescue speediso.report=https://collector.example.net speediso.token=t"
echo "binary: $bin ($(stat -c %s "$bin") bytes, $(file -b -L "$bin" | cut -d, -f1-2))"
hyperfine -N --warmup 20 --runs 300 --export-json target/startup.json \
    "$bin --version" \
    "$bin dispatch --dry-run --json --cmdline '$line'"
python3 - <<'PY'
import json
for r in json.load(open("target/startup.json"))["results"]:
    print(f"{r['command'][:60]:60s} mean {r['mean']*1000:6.2f} ms  max {r['max']*1000:6.2f} ms")
PY
