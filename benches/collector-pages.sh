#!/usr/bin/env bash
# Page latency of the collector's web pages on a large fleet:
#  fills the store with HOSTS hosts, 4 runs each, EPR events per run
#  (defaults: 10,000 hosts, 1,000,000 events) straight through SQL
#  (benches/collector-pages.sql: bench-only, the collector's own schema,
#  migrated by the collector first), then times REQUESTS GETs of each page
#  with curl against the release collector on loopback and prints p50/p95.
#  SQLite always; PostgreSQL too when its server binaries are installed
#  (initdb/pg_ctl from the Debian `postgresql` package; run as `postgres`
#  when root). Target: p95 < 200 ms.
# Usage: benches/collector-pages.sh [HOSTS EPR REQUESTS]
set -euo pipefail
cd "$(dirname "$0")/.."

HOSTS=${1:-10000}
EPR=${2:-25}
REQUESTS=${3:-50}

cargo build --release --bin speediso-collector >&2
COL=$PWD/target/release/speediso-collector

work=$(mktemp -d)
chmod 755 "$work"
pid=
pgdata=
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
pgrun() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    [ -n "$pgdata" ] && pgrun "$PGBIN/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
# Pages need a viewer's credential (an agent token reads nothing).
viewer=bench-viewer-0123456789
printf 'bench-token-0123456789\nrole=viewer %s\n' "$viewer" > "$work/tokens"

start_collector() { # DB
    "$COL" serve --listen 127.0.0.1:0 --db "$1" --tokens "$work/tokens" > "$work/out" 2>"$work/err" &
    pid=$!
    for _ in $(seq 600); do
        grep -q listening "$work/out" 2>/dev/null && break
        sleep 0.1
    done
    grep -q listening "$work/out" || { echo "collector did not start:" >&2; cat "$work/err" >&2; exit 1; }
    url="http://$(sed -n 's/.*listening on //p' "$work/out")"
}

stop_collector() {
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}

fill_sql() {
    sed -e "s/:HOSTS/$HOSTS/g" -e "s/:EPR/$EPR/g" benches/collector-pages.sql
}

# p50/p95 of REQUESTS GETs of each page (after one warm-up request).
measure() { # STORE
    local h=$((HOSTS / 2)) r code
    r=$((1000000 + 4 * (HOSTS / 2) + 3))
    for page in "/" "/?offset=5000" "/?verdict=fail" "/?task=wipe&outcome=failed" \
                "/?q=D200777" "/?q=52:54:00:17:10:10" "/hosts/H$((100000 + h))" "/runs/R$r" \
                "/export.csv?verdict=warn"; do
        code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $viewer" "$url$page")
        [ "$code" = 200 ] || { echo "GET $page answered $code" >&2; cat "$work/err" >&2; exit 1; }
        for _ in $(seq "$REQUESTS"); do
            curl -s -o /dev/null -w '%{time_total}\n' -H "Authorization: Bearer $viewer" "$url$page"
        done > "$work/times"
        python3 - "$1" "$page" "$work/times" <<'PY'
import sys
t = sorted(float(x) * 1000 for x in open(sys.argv[3]))
p = lambda q: t[min(len(t) - 1, int(q * len(t)))]
flag = "" if p(0.95) < 200 else "  OVER 200 ms"
print(f"{sys.argv[1]:10} {sys.argv[2]:32} n={len(t)} p50={p(0.5):7.1f} ms p95={p(0.95):7.1f} ms{flag}")
PY
    done
}

echo "machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p'); $HOSTS hosts, $((HOSTS * 4)) runs, $((HOSTS * 4 * EPR)) events"

# SQLite.
db="$work/c.db"
start_collector "$db"; stop_collector
t0=$(date +%s)
fill_sql | python3 -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(sys.stdin.read()); c.execute('ANALYZE'); c.commit()" "$db"
echo "sqlite: filled in $(( $(date +%s) - t0 )) s, $(du -h "$db" | cut -f1)"
start_collector "$db"
measure sqlite
stop_collector

# PostgreSQL, when installed.
if [ -n "$PGBIN" ] && [ -x "$PGBIN/initdb" ]; then
    pgdata="$work/pg"
    mkdir "$pgdata"
    [ "$(id -u)" = 0 ] && chown postgres "$pgdata"
    port=$(python3 -c "import socket;s=socket.socket();s.bind(('127.0.0.1',0));print(s.getsockname()[1])")
    pgrun "$PGBIN/initdb" -A trust -U speediso -E UTF8 -D "$pgdata" >/dev/null
    pgrun "$PGBIN/pg_ctl" -D "$pgdata" -o "-p $port -k $pgdata -c listen_addresses=127.0.0.1" -w -l "$pgdata/log" start >/dev/null
    pgurl="postgresql://speediso@127.0.0.1:$port/postgres"
    start_collector "$pgurl"; stop_collector
    t0=$(date +%s)
    { fill_sql; echo "ANALYZE;"; } | pgrun "$PGBIN/psql" -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U speediso postgres >/dev/null
    echo "postgres: filled in $(( $(date +%s) - t0 )) s"
    start_collector "$pgurl"
    measure postgres
    stop_collector
else
    echo "postgres: not installed (apt-get install postgresql), skipped"
fi
