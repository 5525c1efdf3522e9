#!/usr/bin/env bash
# Report path benchmark:
#  1. collector ingest rate (events/s) from N concurrent agents on loopback,
#     SQLite store, synchronous=FULL (each acknowledged batch is on disk);
#  2. the agent's CPU cost per 1000 events with the report sink (getrusage,
#     all threads: serialise, spool write, fsync, HTTP), against the same
#     events through a bus with no sink.
# Usage: benches/report.sh [AGENTS EVENTS_PER_AGENT BATCH]
set -euo pipefail
cd "$(dirname "$0")/.."

AGENTS=${1:-50}
EVENTS=${2:-4000}
BATCH=${3:-500}
TARGET=50000

cargo build --release --bin speediso-collector --example report_cost >&2
COL=target/release/speediso-collector
COST=target/release/examples/report_cost

work=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
token=bench-token-0123456789
echo "$token" > "$work/tokens"

start_collector() {
    rm -f "$work"/c.db*
    "$COL" serve --listen 127.0.0.1:0 --db "$work/c.db" --tokens "$work/tokens" > "$work/out" &
    pid=$!
    for _ in $(seq 50); do
        grep -q listening "$work/out" 2>/dev/null && break
        sleep 0.1
    done
    url="http://$(sed -n 's/.*listening on //p' "$work/out")"
}

echo "machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p')"

for spec in "$AGENTS $EVENTS $BATCH" "200 1000 100" "1 100000 1000"; do
    set -- $spec
    start_collector
    res=$("$COL" load --url "$url" --token "$token" --agents "$1" --events "$2" --batch "$3")
    stored=$(python3 -c "import sqlite3,sys;print(sqlite3.connect(sys.argv[1]).execute('select count(*) from events').fetchone()[0])" "$work/c.db")
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
    eps=$(python3 -c "import json,sys;print(round(json.loads(sys.argv[1])['events_per_second']))" "$res")
    ratio=$(python3 -c "print(f'{$eps/$TARGET:.2f}')")
    echo "ingest: agents=$1 events/agent=$2 batch=$3 stored=$stored  ${eps} events/s  vs target ${TARGET}: ratio ${ratio}"
    [ "$stored" -eq $(( $1 * $2 )) ] || { echo "stored $stored != sent $(( $1 * $2 ))" >&2; exit 1; }
done

start_collector
res=$("$COST" "$url" "$token" 100000)
kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
python3 - "$res" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
base = r["cpu_ms_per_1000_events_no_sink"]
rep = r["cpu_ms_per_1000_events_report_sink"]
print(f"agent cpu per 1000 events: no sink {base:.2f} ms, report sink {rep:.2f} ms, ratio {rep/max(base,1e-9):.1f}x")
# A wipe emits about 2 progress events per second per disk; 24 disks:
eps = 48
print(f"agent report overhead at {eps} events/s (24-disk wipe): {rep*eps/1000/10:.4f}% of one CPU (target < 1%)")
assert r["undelivered_spools"] == 0, r
PY
