#!/usr/bin/env bash
# Report path benchmark:
#  1. collector ingest rate (events/s) from N concurrent agents on loopback,
#     SQLite store, synchronous=FULL (each acknowledged batch is on disk),
#     and PostgreSQL (a throwaway server started here: initdb in a temp
#     dir, loopback, fsync=on, synchronous_commit=on: an acknowledged batch
#     is committed);
#  2. 5,000 agents at once (each its own host, per-host token and run, some
#     acknowledged batches resent), on both stores: events/s, the
#     collector's peak RSS (VmHWM), and the store checked row by row
#     (every event exactly once);
#  3. the agent's CPU cost per 1000 events with the report sink (getrusage,
#     all threads: serialise, spool write, fsync, HTTP), against the same
#     events through a bus with no sink.
# Usage: benches/report.sh [AGENTS EVENTS_PER_AGENT BATCH]
# Environment: STORES="sqlite pg" (default: both, pg only when initdb is
# installed), SCALE_AGENTS=5000 SCALE_EVENTS=100 SCALE_BATCH=20
# SCALE_RESEND=1 SCALE_MAX_IN_FLIGHT=256 (SCALE_AGENTS=0 skips part 2),
# INGEST=0 skips part 1, AGENT_COST=0 part 3.
set -euo pipefail
cd "$(dirname "$0")/.."

AGENTS=${1:-50}
EVENTS=${2:-4000}
BATCH=${3:-500}
TARGET_SQLITE=50000
TARGET_PG=100000
SCALE_AGENTS=${SCALE_AGENTS:-5000}
SCALE_EVENTS=${SCALE_EVENTS:-100}
SCALE_BATCH=${SCALE_BATCH:-20}
SCALE_RESEND=${SCALE_RESEND:-1}
SCALE_MAX_IN_FLIGHT=${SCALE_MAX_IN_FLIGHT:-256}
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "${STORES:-}" ]; then
    STORES=sqlite
    [ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ] && STORES="sqlite pg"
fi

cargo build --release --bin speediso-collector >&2
[ "${AGENT_COST:-1}" = 0 ] || cargo build --release --example report_cost >&2
COL=target/release/speediso-collector
COST=target/release/examples/report_cost

work=$(mktemp -d)
pid=
pg_as=()
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    [ -d "$work/pg/data" ] && "${pg_as[@]}" "$PG_BIN/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
token=bench-token-0123456789
echo "$token" > "$work/tokens"

# A throwaway PostgreSQL on 127.0.0.1 (PostgreSQL refuses to run as root:
# its tools then run as `postgres`).
start_pg() {
    mkdir -p "$work/pg"
    if [ "$(id -u)" = 0 ]; then
        pg_as=(runuser -u postgres --)
        chmod 711 "$work"
        chown postgres "$work/pg"
    fi
    "${pg_as[@]}" "$PG_BIN/initdb" -A trust -U speediso -E UTF8 -D "$work/pg/data" >/dev/null
    pg_port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
    "${pg_as[@]}" "$PG_BIN/pg_ctl" -D "$work/pg/data" -w -t 60 -l "$work/pg/log" \
        -o "-p $pg_port -k $work/pg -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on" \
        start >/dev/null
    pg_url="postgresql://speediso@127.0.0.1:$pg_port/postgres"
    echo "postgresql: $("$PG_BIN/postgres" --version), fsync=on, synchronous_commit=on, shared_buffers default" >&2
}

# Empty store for the next run.
reset_store() {
    case $1 in
    sqlite) rm -f "$work"/c.db*; db="$work/c.db" ;;
    pg) "$PG_BIN/psql" -q -h 127.0.0.1 -p "$pg_port" -U speediso -d postgres \
            -c 'SET client_min_messages = warning; DROP SCHEMA public CASCADE; CREATE SCHEMA public;' >/dev/null
        db=$pg_url ;;
    esac
}

start_collector() { # STORE TOKENS_FILE [extra serve args]
    reset_store "$1"
    local tokens=$2
    shift 2
    : > "$work/out"
    "$COL" serve --listen 127.0.0.1:0 --db "$db" --tokens "$tokens" "$@" > "$work/out" &
    pid=$!
    for _ in $(seq 100); do
        grep -q listening "$work/out" 2>/dev/null && break
        sleep 0.1
    done
    url="http://$(sed -n 's/.*listening on //p' "$work/out")"
}

stop_collector() {
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}

# The running collector's peak RSS in MiB.
peak_rss() {
    awk '/^VmHWM/ {printf "%.1f", $2/1024}' "/proc/$pid/status"
}

field() { [ -n "$1" ] || { echo "FAIL: the load generator printed nothing" >&2; exit 1; }; python3 -c "import json,sys;v=json.loads(sys.argv[1])[sys.argv[2]];print(round(v) if isinstance(v,float) else v)" "$1" "$2"; }

echo "machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
case " $STORES " in *" pg "*) start_pg ;; esac

for store in $([ "${INGEST:-1}" = 0 ] || echo "$STORES"); do
    target=$TARGET_SQLITE
    [ "$store" = pg ] && target=$TARGET_PG
    for spec in "$AGENTS $EVENTS $BATCH" "200 1000 100" "1 100000 1000"; do
        set -- $spec
        start_collector "$store" "$work/tokens"
        out=$("$COL" load --url "$url" --token "$token" --agents "$1" --events "$2" --batch "$3" --check-db "$db") || true
        res=${out%%$'\n'*}
        rss=$(peak_rss)
        stop_collector
        eps=$(field "$res" events_per_second)
        ratio=$(python3 -c "print(f'{$eps/$target:.2f}')")
        echo "ingest $store: agents=$1 events/agent=$2 batch=$3 stored=$(field "$res" acked_stored) ${eps} events/s  vs target ${target}: ratio ${ratio}  collector peak RSS ${rss} MiB  load $(cut -d' ' -f1 /proc/loadavg)"
        [ "$(field "$res" pass)" = True ] || { echo "FAIL: $res" >&2; exit 1; }
    done
done

if [ "$SCALE_AGENTS" -gt 0 ]; then
    "$COL" load --agents "$SCALE_AGENTS" --write-host-tokens "$work/host-tokens"
    for store in $STORES; do
        start_collector "$store" "$work/host-tokens" --max-in-flight "$SCALE_MAX_IN_FLIGHT"
        out=$("$COL" load --url "$url" --host-tokens "$work/host-tokens" --agents "$SCALE_AGENTS" \
            --events "$SCALE_EVENTS" --batch "$SCALE_BATCH" --resend "$SCALE_RESEND" --check-db "$db") || true
        res=${out%%$'\n'*}
        rss=$(peak_rss)
        stop_collector
        echo "scale $store: agents=$SCALE_AGENTS max-in-flight=$SCALE_MAX_IN_FLIGHT events/agent=$SCALE_EVENTS batch=$SCALE_BATCH resent=$(field "$res" resent_events) $(field "$res" events_per_second) events/s  posts=$(field "$res" posts) 503-retries=$(field "$res" busy_retries) reconnects=$(field "$res" reconnects)  collector peak RSS ${rss} MiB  load $(cut -d' ' -f1 /proc/loadavg)"
        echo "  check: $(field "$res" check)"
        [ "$(field "$res" pass)" = True ] || { echo "FAIL: $res" >&2; exit 1; }
    done
fi

[ "${AGENT_COST:-1}" = 0 ] && exit 0
start_collector sqlite "$work/tokens"
res=$("$COST" "$url" "$token" 100000)
stop_collector
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
