#!/bin/bash
# speediso-repo: publish throughput against the shell way of doing the same
# work (cp + sha256sum + sync + mv), and rollback latency against an atomic
# symlink swap in shell (ln -sfn + mv -T). Usage: benches/repo.sh [SIZE_MIB]
set -euo pipefail

size_mib=${1:-512}
runs=3
cd "$(dirname "$0")/.."
bin=target/release/speediso-repo
[[ -x $bin ]] || cargo build --release --bin speediso-repo
work=$(mktemp -d "${TMPDIR:-/var/tmp}/speediso-repo-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

mkdir -p "$work/in" "$work/repo" "$work/peer"
head -c "$((size_mib << 20))" /dev/urandom >"$work/in/speedtest.squashfs"
cat "$work/in/speedtest.squashfs" >/dev/null # both start from the page cache

ours=() peer=()
for i in $(seq 1 "$runs"); do
    t0=$(now)
    "$bin" publish --root "$work/repo" --job bench --build "$i" --keep 2 "$work/in/speedtest.squashfs" >/dev/null
    t1=$(now)
    cp "$work/in/speedtest.squashfs" "$work/peer/.tmp"
    sha256sum "$work/peer/.tmp" >/dev/null
    sync "$work/peer/.tmp"
    mv "$work/peer/.tmp" "$work/peer/speedtest.squashfs.$i"
    sync "$work/peer"
    t2=$(now)
    rm -f "$work/peer/speedtest.squashfs.$i"
    ours+=("$(echo "$t1 - $t0" | bc -l)")
    peer+=("$(echo "$t2 - $t1" | bc -l)")
done
o=$(printf '%s\n' "${ours[@]}" | median)
p=$(printf '%s\n' "${peer[@]}" | median)
printf 'publish %d MiB: speediso-repo %.2fs (%.0f MiB/s), cp+sha256sum+sync+mv %.2fs (%.0f MiB/s), ratio peer/ours %.2f\n' \
    "$size_mib" "$o" "$(echo "$size_mib / $o" | bc -l)" "$p" "$(echo "$size_mib / $p" | bc -l)" "$(echo "$p / $o" | bc -l)"

# Rollback latency: 20 switches each way.
n=20
t0=$(now)
for i in $(seq 1 "$n"); do
    if ((i % 2)); then to=2; else to=3; fi
    "$bin" rollback --root "$work/repo" --job bench --to "$to" >/dev/null
done
t1=$(now)
ln -s a "$work/peer/a"
for i in $(seq 1 "$n"); do
    if ((i % 2)); then to=2; else to=3; fi
    ln -sfn "$to" "$work/peer/.current.tmp"
    mv -T "$work/peer/.current.tmp" "$work/peer/current"
    sync "$work/peer"
done
t2=$(now)
o=$(echo "($t1 - $t0) * 1000 / $n" | bc -l)
p=$(echo "($t2 - $t1) * 1000 / $n" | bc -l)
printf 'rollback: speediso-repo %.1f ms, ln -sfn + mv -T + sync %.1f ms, ratio ours/peer %.2f\n' "$o" "$p" "$(echo "$o / $p" | bc -l)"
