#!/usr/bin/env bash
# Image install throughput on one loop device, from one local nginx on
# 127.0.0.1: `speediso install` (download, zstd decompression, SHA-256 of
# the bytes served and of the stream, O_DIRECT writes, then a full read-back
# verification) versus the unverified pipeline
#   curl URL | zstd -d | dd of=LOOP oflag=direct bs=1M iflag=fullblock
# (iflag=fullblock: without it dd writes the pipe's short reads, which
# O_DIRECT rejects). Rounds alternate which goes first; medians compared.
# Needs root (losetup), nginx, curl, zstd.
#
#   benches/install.sh                  # 512 MiB image, 3 rounds
#   SIZE_MIB=256 ROUNDS=5 benches/install.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${SPEEDISO_BIN:-target/release/speediso}
SIZE_MIB=${SIZE_MIB:-512}
ROUNDS=${ROUNDS:-3}
[ -x "$BIN" ] || cargo build --release --bin speediso
for t in nginx curl zstd losetup; do
    command -v "$t" >/dev/null || { echo "$t is not installed" >&2; exit 1; }
done

WORK=$(mktemp -d)
chmod 755 "$WORK"  # nginx workers run unprivileged
LOOP=""
NGINX_PID=""
cleanup() {
    [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null || true
    [ -n "$LOOP" ] && losetup -d "$LOOP" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# An image that compresses like a real one (about 2:1): random runs and
# zero runs, 1 MiB each.
python3 - "$WORK/img.raw" "$SIZE_MIB" <<'PY'
import os, sys
with open(sys.argv[1], "wb") as f:
    for i in range(int(sys.argv[2])):
        f.write(os.urandom(1 << 20) if i % 2 == 0 else bytes(1 << 20))
PY
zstd -q -T0 -3 "$WORK/img.raw" -o "$WORK/img.raw.zst"
SUM=$(sha256sum "$WORK/img.raw.zst" | cut -d' ' -f1)

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/www" "$WORK/nginx"
ln "$WORK/img.raw.zst" "$WORK/www/img.raw.zst"
cat > "$WORK/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 64; }
http {
    access_log off;
    sendfile on;
    client_body_temp_path $WORK/nginx;
    proxy_temp_path $WORK/nginx;
    fastcgi_temp_path $WORK/nginx;
    uwsgi_temp_path $WORK/nginx;
    scgi_temp_path $WORK/nginx;
    server { listen 127.0.0.1:$PORT; root $WORK/www; }
}
CONF
nginx -c "$WORK/nginx.conf" -p "$WORK" &
NGINX_PID=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/img.raw.zst" -r 0-0 && break; sleep 0.05; done
URL="http://127.0.0.1:$PORT/img.raw.zst"

truncate -s $((SIZE_MIB + 64))M "$WORK/disk"
# --direct-io=on: the loop device's O_DIRECT writes reach the backing file
# without its page cache, as they reach a real disk's medium (a buffered
# loop device turns the final fsync into a 100s-of-MiB writeback that only
# the tool that syncs pays for).
LOOP=$(losetup --direct-io="${DIRECT_IO:-on}" --find --show "$WORK/disk")
case "$LOOP" in /dev/loop*) ;; *) echo "not a loop device: $LOOP" >&2; exit 1 ;; esac

now() { date +%s.%N; }
run_peer() { # extra dd conv= (fsync: durable before exit, as speediso is)
    local t0; t0=$(now)
    curl -sf "$URL" | zstd -q -d | dd of="$LOOP" oflag=direct bs=1M iflag=fullblock ${1:+conv=$1} status=none
    python3 -c "print($(now) - $t0)"
}
run_speediso() {
    local t0; t0=$(now)
    SPEEDISO_WIPE_TEST_ALLOW="$LOOP" SPEEDISO_RUN_DIR="$WORK/run" "$BIN" --cmdline "" install \
        --image "$URL" --sha256 "$SUM" --target "$LOOP" --confirm "$LOOP" --json >"$WORK/out.jsonl"
    python3 -c "print($(now) - $t0)"
}
median() { python3 -c 'import statistics,sys; print(statistics.median(map(float, sys.argv[1:])))' "$@"; }

peer=(); peers=(); ours=()
for r in $(seq "$ROUNDS"); do
    if [ $((r % 2)) -eq 1 ]; then
        peer+=("$(run_peer)"); peers+=("$(run_peer fsync)"); ours+=("$(run_speediso)")
    else
        ours+=("$(run_speediso)"); peers+=("$(run_peer fsync)"); peer+=("$(run_peer)")
    fi
    cmp -n $((SIZE_MIB << 20)) "$WORK/img.raw" "$LOOP" || { echo "device differs from the image" >&2; exit 1; }
    echo "round $r: pipeline ${peer[-1]} s, pipeline+fsync ${peers[-1]} s, speediso ${ours[-1]} s"
done
P=$(median "${peer[@]}"); PS=$(median "${peers[@]}"); O=$(median "${ours[@]}")
echo "loop device $LOOP, direct-io=${DIRECT_IO:-on}; $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p')"
python3 - "$P" "$O" "$SIZE_MIB" "$WORK/out.jsonl" "$PS" <<'PY'
import json, sys
p, o, mib, ps = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[5])
res = next(json.loads(l)["data"] for l in open(sys.argv[4]) if json.loads(l)["type"] == "result")
mb = mib * (1 << 20) / 1e6
print(f"image {mib} MiB (zstd {res['bytes_served'] / 1e6:.0f} MB served)")
print(f"curl | zstd -d | dd oflag=direct : {p:.2f} s  {mb / p:7.1f} MB/s (no verification)")
print(f"speediso install (verified)      : {o:.2f} s  {mb / o:7.1f} MB/s "
      f"(SHA-256 as served, every byte read back with O_DIRECT and compared)")
print(f"... | dd oflag=direct conv=fsync  : {ps:.2f} s  {mb / ps:7.1f} MB/s (no verification)")
print(f"ratio speediso/pipeline throughput: {p / o:.2f} (vs conv=fsync: {ps / o:.2f})")
PY
