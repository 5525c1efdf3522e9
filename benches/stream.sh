#!/usr/bin/env bash
# The wipe's random-pattern generators against OpenSSL on one core, same
# machine, same run: `speediso stream-bench` (AES-128-CTR and ChaCha8,
# 1 MiB buffers written, as the overwrite engine fills them, and XORed, as
# the verifier strips them) next to `openssl speed -evp aes-128-ctr` and
# `-evp chacha20` with the same buffer size. Both pinned to the same core,
# both divided by user CPU time (openssl speed's default; speediso counts
# getrusage user time), so other load on the machine does not skew the
# ratio; speediso's wall-clock figures are in its JSON too.
# Prints each figure and the ratio speediso/openssl (target: AES >= 0.8).
# Usage: benches/stream.sh [SECONDS] [CHUNK_BYTES]   (default 3, 1048576)
#   SPEEDISO_BIN=path   the binary to measure (default target/release/speediso;
#                       the static musl one: scripts/build-static.sh's output)
set -euo pipefail
SECS=${1:-3}
CHUNK=${2:-1048576}
BIN=${SPEEDISO_BIN:-target/release/speediso}
[ -x "$BIN" ] || cargo build --release -p speediso --bin speediso >&2
command -v openssl >/dev/null || { echo "stream.sh: needs openssl" >&2; exit 1; }
# One core, the last (CPU 0 takes most interrupts).
CPU=$(($(nproc) - 1))
pin() { if command -v taskset >/dev/null; then taskset -c "$CPU" "$@"; else "$@"; fi; }

# openssl speed -mr: "+F:N:NAME:BYTES_PER_S" for the one buffer size asked.
ossl() {
    pin openssl speed -mr -seconds "$SECS" -bytes "$CHUNK" -evp "$1" 2>/dev/null |
        awk -F: '/^\+F:/ { print $4 }'
}

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores," \
    "AES-NI: $(grep -qw aes /proc/cpuinfo && echo yes || echo no)," \
    "VAES: $(grep -qw vaes /proc/cpuinfo && echo yes || echo no); $(openssl version | cut -d' ' -f1-2); $(date -u +%F)"
echo "binary: $BIN ($(file -bL "$BIN" | cut -d, -f1-2 | tr -d '\n'))"
json=$(pin "$BIN" stream-bench --json --seconds "$SECS" --chunk "$CHUNK")
o_aes=$(ossl aes-128-ctr)
o_cha=$(ossl chacha20)
python3 - "$json" "$o_aes" "$o_cha" "$CHUNK" <<'PY'
import json, sys
j = json.loads(sys.argv[1]); oa, oc = float(sys.argv[2]), float(sys.argv[3])
a = j["algorithms"]
g = lambda x: x / 1e9
print(f"auto: {j['auto']['reason']}   buffers: {sys.argv[4]} bytes, one core")
print(f"{'figure':<34} {'GB/s':>7} {'openssl':>8} {'ratio':>6}")
rows = [
    ("speediso aes-128-ctr fill", a["aes-128-ctr"]["fill_bytes_per_s"], oa, "aes-128-ctr"),
    ("speediso aes-128-ctr xor", a["aes-128-ctr"]["xor_bytes_per_s"], oa, "aes-128-ctr"),
    ("speediso chacha8 fill", a["chacha8"]["fill_bytes_per_s"], oc, "chacha20"),
    ("speediso chacha8 xor", a["chacha8"]["xor_bytes_per_s"], oc, "chacha20"),
]
ok = True
for name, v, peer, pname in rows:
    r = v / peer
    mark = ""
    if pname == "aes-128-ctr":
        mark = "ok" if r >= 0.8 else "BELOW 0.8"
        ok &= r >= 0.8
    print(f"{name:<34} {g(v):7.2f} {g(peer):8.2f} {r:6.2f} {mark}")
print(f"(openssl speed -evp aes-128-ctr: {g(oa):.2f} GB/s; -evp chacha20: {g(oc):.2f} GB/s; "
      "chacha8 has 8 rounds to chacha20's 20: a reference, not a target)")
sys.exit(0 if ok else 1)
PY
