-- speediso collector schema, version 1 (SQLite; migrations/postgres/ has the same for PostgreSQL).
-- Every event is stored once per (run_id, seq), as received; runs, hosts,
-- results and certificates are indexes derived from the events.

CREATE TABLE hosts (
    host_key   TEXT PRIMARY KEY,   -- serial, else uuid, else boot MAC, else hostname
    serial     TEXT,
    uuid       TEXT,
    boot_mac   TEXT,
    hostname   TEXT,
    cpu_model  TEXT,               -- from the inventory step's result
    first_seen TEXT NOT NULL,
    last_seen  TEXT NOT NULL
);

CREATE TABLE runs (
    run_id      TEXT PRIMARY KEY,
    host_key    TEXT NOT NULL,
    task        TEXT,
    started     TEXT,
    finished    TEXT,
    outcome     TEXT,              -- success | failed | timed_out | refused | rejected; NULL while running
    exit_status INTEGER,
    duration_ms INTEGER,
    error       TEXT,
    events      INTEGER NOT NULL DEFAULT 0,
    last_seq    INTEGER NOT NULL DEFAULT -1,
    first_ts    TEXT NOT NULL
);
CREATE INDEX runs_by_host ON runs (host_key, first_ts);
CREATE INDEX runs_by_task ON runs (task, first_ts);
CREATE INDEX runs_by_time ON runs (first_ts);

CREATE TABLE events (
    run_id TEXT    NOT NULL,
    seq    INTEGER NOT NULL,
    ts     TEXT    NOT NULL,
    type   TEXT    NOT NULL,
    step   TEXT,
    body   TEXT    NOT NULL,       -- the JSON line as received
    PRIMARY KEY (run_id, seq)
) WITHOUT ROWID;

CREATE TABLE results (
    run_id TEXT    NOT NULL,
    seq    INTEGER NOT NULL,
    step   TEXT,
    data   TEXT    NOT NULL,
    PRIMARY KEY (run_id, seq)
);

CREATE TABLE certificates (
    id     TEXT PRIMARY KEY,
    run_id TEXT    NOT NULL,
    seq    INTEGER NOT NULL,
    ord    INTEGER NOT NULL,       -- position in the result's certificates array
    step   TEXT,
    body   TEXT    NOT NULL
);
CREATE INDEX certificates_by_run ON certificates (run_id);
