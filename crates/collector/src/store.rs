//! The collector's store, independent of the database: the `Store` trait
//! (SQLite in `sqlite`, PostgreSQL in `pg`), the SQL both run (written
//! once, `$n` placeholders in order of first use so SQLite binds them
//! positionally too), what a batch changes besides its events (`Derived`),
//! the checks every batch passes inside its transaction (`insert_batch`:
//! runs bound to their host and token, replays that must be identical),
//! and the figures/median logic of the host comparison.

use super::ingest::{escape_nul, Incoming, Refusal};
use anyhow::Result;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// What happened to one batch.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Stats {
    pub received: usize,
    pub stored: usize,
    pub duplicates: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct HostRow {
    pub host_key: String,
    pub serial: Option<String>,
    pub uuid: Option<String>,
    pub boot_mac: Option<String>,
    pub hostname: Option<String>,
    pub cpu_model: Option<String>,
    pub first_seen: String,
    pub last_seen: String,
    pub runs: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub run_id: String,
    pub host_key: String,
    pub task: Option<String>,
    pub started: Option<String>,
    pub finished: Option<String>,
    pub outcome: Option<String>,
    pub exit_status: Option<i64>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    pub events: i64,
    pub last_seq: i64,
    pub first_ts: String,
}

/// The progress events of one step within a page's range, left out of
/// the page and counted instead.
#[derive(Debug, Clone, Serialize)]
pub struct ProgressSpan {
    pub step: Option<String>,
    pub count: i64,
    pub first_seq: i64,
    pub last_seq: i64,
    /// The last of them (the latest figures).
    pub last: Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct ResultRow {
    pub seq: i64,
    pub step: Option<String>,
    pub data: Value,
}

/// Stored event lines (JSON text), parsed, in the order given: what the
/// backends' event reads return.
pub fn parse_events(bodies: &[String]) -> Result<Vec<Value>> {
    bodies
        .iter()
        .map(|b| Ok(serde_json::from_str(b)?))
        .collect()
}

impl ProgressSpan {
    /// A row of `sql::SELECT_PROGRESS_SPANS`, its last event parsed.
    pub fn from_row(
        (step, count, first_seq, last_seq, last): (Option<String>, i64, i64, i64, String),
    ) -> Result<ProgressSpan> {
        Ok(ProgressSpan {
            step,
            count,
            first_seq,
            last_seq,
            last: serde_json::from_str(&last)?,
        })
    }
}

impl ResultRow {
    /// A row of `sql::SELECT_RESULTS`, its data parsed.
    pub fn from_row((seq, step, data): (i64, Option<String>, String)) -> Result<ResultRow> {
        Ok(ResultRow {
            seq,
            step,
            data: serde_json::from_str(&data)?,
        })
    }
}

/// Which runs `Store::runs` lists: of this host and task (each when
/// given), the `limit` latest.
#[derive(Debug, Clone, Copy)]
pub struct RunFilter<'a> {
    pub host: Option<&'a str>,
    pub task: Option<&'a str>,
    pub limit: usize,
}

/// Which events `Store::events_page` reads: up to `limit` with
/// `seq > after_seq`; progress events only when `with_progress`.
#[derive(Debug, Clone, Copy)]
pub struct PageQuery {
    pub after_seq: i64,
    pub limit: usize,
    pub with_progress: bool,
}

/// What the fleet board (`/`, the exports) lists: hosts whose latest run
/// has this task, outcome (`running` for none yet) and verdict, last seen
/// in `[from, to)` (RFC 3339 prefixes), matching `search` (host key,
/// serial, MAC, hostname or a disk serial, exactly), `limit` from
/// `offset`, most recently seen first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BoardFilter {
    pub task: Option<String>,
    pub outcome: Option<String>,
    pub verdict: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub search: Option<String>,
    pub limit: usize,
    pub offset: usize,
}

/// One row of the board: a host and its latest run.
#[derive(Debug, Clone, Serialize)]
pub struct BoardRow {
    pub host_key: String,
    pub serial: Option<String>,
    pub boot_mac: Option<String>,
    pub hostname: Option<String>,
    pub cpu_model: Option<String>,
    pub last_seen: String,
    pub run_id: Option<String>,
    pub task: Option<String>,
    pub outcome: Option<String>,
    pub verdict: Option<String>,
    pub reasons: Option<String>,
    pub run_ts: Option<String>,
}

/// (host_key or run_id, step, data JSON) of one bench result.
pub type BenchRow = (String, Option<String>, String);

/// A database the collector stores into and reads from.
pub trait Store: Send {
    /// Store several batches in ONE transaction; `Ok` only after commit.
    /// Each batch is stored whole or, when refused (`insert_batch`), not
    /// at all, without affecting the others.
    fn insert_group(&mut self, batches: &[&[Incoming]]) -> Result<Vec<BatchOutcome>>;
    /// Hosts, most recently seen first, `limit` from `offset`.
    fn hosts(&mut self, limit: usize, offset: usize) -> Result<Vec<HostRow>>;
    fn host(&mut self, key: &str) -> Result<Option<HostRow>>;
    fn host_count(&mut self) -> Result<i64>;
    fn runs(&mut self, filter: RunFilter<'_>) -> Result<Vec<RunRow>>;
    fn run(&mut self, run_id: &str) -> Result<Option<RunRow>>;
    /// A run's events (parsed) in `seq` order: all of them, for tests and
    /// small runs; pages use `events_page`.
    fn events(&mut self, run_id: &str) -> Result<Vec<Value>>;
    /// The events `page` selects, in `seq` order.
    fn events_page(&mut self, run_id: &str, page: PageQuery) -> Result<Vec<Value>>;
    /// The last `limit` events that are not progress, in `seq` order.
    fn events_tail(&mut self, run_id: &str, limit: usize) -> Result<Vec<Value>>;
    /// The progress events with `after < seq <= upto`, counted per step.
    fn progress_spans(&mut self, run_id: &str, after: i64, upto: i64) -> Result<Vec<ProgressSpan>>;
    fn results(&mut self, run_id: &str) -> Result<Vec<ResultRow>>;
    fn certificate_ids(&mut self, run_id: &str) -> Result<Vec<String>>;
    /// (run_id, certificate) by id.
    fn certificate(&mut self, id: &str) -> Result<Option<(String, Value)>>;
    /// (step, data JSON) of a host's bench results, oldest first.
    fn bench_results(&mut self, host_key: &str) -> Result<Vec<(Option<String>, String)>>;
    /// The bench results of the other hosts with this CPU model (keyed by
    /// host_key), oldest first.
    fn sibling_bench_results(&mut self, cpu_model: &str, except: &str) -> Result<Vec<BenchRow>>;
    /// The bench results of the runs `runs(filter)` lists (keyed by run_id).
    fn runs_bench_results(&mut self, filter: RunFilter<'_>) -> Result<Vec<BenchRow>>;
    /// Other hosts with this CPU model.
    fn siblings(&mut self, cpu_model: &str, except: &str) -> Result<Vec<String>>;
    /// The fleet board: `filter.limit` rows from `filter.offset`.
    fn board(&mut self, filter: &BoardFilter) -> Result<Vec<BoardRow>>;
    /// The data JSON of a host's latest result of `step`.
    fn last_result(&mut self, host_key: &str, step: &str) -> Result<Option<String>>;
    /// Up to `limit` progress events of a run, every `stride`-th seq.
    fn progress_sample(&mut self, run_id: &str, stride: i64, limit: usize) -> Result<Vec<Value>>;
    fn ping(&mut self) -> Result<()>;
}

/// The database cannot be reached now (a lost connection is being
/// reopened): the server answers 503, so agents keep their spools and
/// retry. Attached as context to the error that says why.
#[derive(Debug, Clone, Copy)]
pub struct Unavailable;

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the database is unavailable")
    }
}

/// A batch stored, or refused with nothing of it stored.
pub type BatchOutcome = std::result::Result<Stats, Refusal>;

/// The primitive operations `insert_batch` needs inside a backend's open
/// transaction (same SQL, `sql::*`, on both).
pub trait BatchTx {
    /// Run a statement without parameters (savepoints).
    fn exec(&mut self, sql: &str) -> Result<()>;
    /// `sql::CLAIM_RUN`.
    fn claim_run(&mut self, run_id: &str, host_key: &str, token_id: &str, ts: &str) -> Result<()>;
    /// (host_key, token_id) the run is bound to.
    fn run_owner(&mut self, run_id: &str) -> Result<(String, Option<String>)>;
    /// `sql::SET_RUN_TOKEN`: bind a run stored before runs had tokens.
    fn set_run_token(&mut self, run_id: &str, token_id: &str) -> Result<()>;
    /// Insert the event; false when `(run_id, seq)` is already stored.
    fn insert_event(&mut self, e: &Incoming) -> Result<bool>;
    /// Insert several events, in order; for each, whether it was stored
    /// (false: `(run_id, seq)` was stored before, or earlier in `events`).
    /// One statement where a round trip per event is costly (PostgreSQL).
    fn insert_events(&mut self, events: &[Incoming]) -> Result<Vec<bool>> {
        events.iter().map(|e| self.insert_event(e)).collect()
    }
    /// The stored line of `(run_id, seq)`.
    fn event_body(&mut self, run_id: &str, seq: i64) -> Result<Option<String>>;
    /// The stored lines of several `(run_id, seq)`, in order.
    fn event_bodies(&mut self, keys: &[(&str, i64)]) -> Result<Vec<Option<String>>> {
        keys.iter().map(|(r, s)| self.event_body(r, *s)).collect()
    }
    /// Write what the new events change in runs, hosts, results, certificates.
    fn apply(&mut self, d: &Derived<'_>) -> Result<()>;
}

/// Store one batch inside the caller's transaction, under a savepoint: a
/// refused batch is rolled back whole. Refusals (`Ok(Err(_))`):
/// - 403 when an event belongs to a run bound to another host key or
///   another token (the host and token of the run's first stored event);
/// - 409 when `(run_id, seq)` is stored with a different content (a replay
///   must be the same JSON to count as a duplicate).
pub fn insert_batch(tx: &mut dyn BatchTx, events: &[Incoming]) -> Result<BatchOutcome> {
    tx.exec("SAVEPOINT batch")?;
    let out = insert_batch_inner(tx, events)?;
    if out.is_err() {
        tx.exec("ROLLBACK TO SAVEPOINT batch")?;
    }
    tx.exec("RELEASE SAVEPOINT batch")?;
    Ok(out)
}

fn insert_batch_inner(tx: &mut dyn BatchTx, events: &[Incoming]) -> Result<BatchOutcome> {
    let mut st = Stats {
        received: events.len(),
        ..Stats::default()
    };
    let mut owners: BTreeMap<&str, (String, String)> = BTreeMap::new();
    // Ownership first, for every event up to the first refused one; then
    // the events before it are inserted in one go. A content conflict
    // among those comes first (it is the earlier line), else the refusal.
    let mut forbidden = None;
    for e in events {
        if !owners.contains_key(e.run_id.as_str()) {
            // Claim first: with PostgreSQL a concurrent first batch of the
            // same run waits here for the other to commit.
            tx.claim_run(&e.run_id, &e.host_key, &e.token_id, &e.ts)?;
            let (host, token) = tx.run_owner(&e.run_id)?;
            let token = match token {
                Some(t) => t,
                None => {
                    tx.set_run_token(&e.run_id, &e.token_id)?;
                    e.token_id.clone()
                }
            };
            owners.insert(&e.run_id, (host, token));
        }
        let (host, token) = &owners[e.run_id.as_str()];
        if *host != e.host_key {
            forbidden = Some(Refusal::Forbidden {
                line: e.line_no,
                why: format!(
                    "run {} belongs to host {host}, this event is from host {}",
                    e.run_id, e.host_key
                ),
            });
        } else if *token != e.token_id {
            forbidden = Some(Refusal::Forbidden {
                line: e.line_no,
                why: format!(
                    "run {} was started with another token; only that token may add to it",
                    e.run_id
                ),
            });
        }
        if forbidden.is_some() {
            break;
        }
    }
    let allowed = match &forbidden {
        Some(r) => {
            let line = r.line().unwrap_or(usize::MAX);
            &events[..events.iter().take_while(|e| e.line_no < line).count()]
        }
        None => events,
    };
    let stored = tx.insert_events(allowed)?;
    let mut d = Derived::default();
    let mut dups = Vec::new();
    for (e, new) in allowed.iter().zip(&stored) {
        if *new {
            st.stored += 1;
            d.add(e);
        } else {
            dups.push(e);
        }
    }
    let keys: Vec<(&str, i64)> = dups
        .iter()
        .map(|e| (e.run_id.as_str(), e.seq as i64))
        .collect();
    let bodies = if keys.is_empty() {
        Vec::new()
    } else {
        tx.event_bodies(&keys)?
    };
    for (e, stored) in dups.iter().zip(bodies) {
        // As JSON values (key order and spacing aside); `e.value` is
        // `Null` for the types not looked into, so the line is parsed here.
        let same = stored
            .as_deref()
            .and_then(|b| serde_json::from_str::<Value>(b).ok())
            .is_some_and(|v| serde_json::from_str::<Value>(&e.line).is_ok_and(|mine| v == mine));
        if !same {
            return Ok(Err(Refusal::Conflict {
                line: e.line_no,
                why: format!(
                    "run {} seq {} is already stored with a different content",
                    e.run_id, e.seq
                ),
            }));
        }
        st.duplicates += 1;
    }
    if let Some(r) = forbidden {
        return Ok(Err(r));
    }
    tx.apply(&d)?;
    Ok(Ok(st))
}

/// Open the store `spec` names: a `postgres://` or `postgresql://` URL, or
/// a SQLite file path. Migrations are applied.
pub fn open(spec: &str) -> Result<Box<dyn Store>> {
    if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
        Ok(Box::new(super::pg::PgStore::connect(spec)?))
    } else {
        Ok(Box::new(super::sqlite::SqliteStore::open(
            std::path::Path::new(spec),
        )?))
    }
}

/// The SQL both backends run.
pub mod sql {
    pub const INSERT_EVENT: &str = "INSERT INTO events (run_id, seq, ts, type, step, body) \
        VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (run_id, seq) DO NOTHING";
    pub const CLAIM_RUN: &str = "INSERT INTO runs \
        (run_id, host_key, token_id, first_ts, events, last_seq) \
        VALUES ($1, $2, $3, $4, 0, -1) ON CONFLICT (run_id) DO NOTHING";
    pub const RUN_OWNER: &str = "SELECT host_key, token_id FROM runs WHERE run_id = $1";
    pub const SET_RUN_TOKEN: &str =
        "UPDATE runs SET token_id = $1 WHERE run_id = $2 AND token_id IS NULL";
    pub const SELECT_EVENT_BODY: &str = "SELECT body FROM events WHERE run_id = $1 AND seq = $2";
    pub const INSERT_RESULT: &str = "INSERT INTO results (run_id, seq, step, data) \
        VALUES ($1, $2, $3, $4) ON CONFLICT (run_id, seq) DO NOTHING";
    pub const INSERT_CERT: &str = "INSERT INTO certificates (id, run_id, seq, ord, step, body) \
        VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING";
    /// How a host row already stored takes a new one: known fields kept
    /// unless given, `last_seen` only forward. Shared by `UPSERT_HOST` and
    /// PostgreSQL's many-row `pg::UPSERT_HOSTS`.
    macro_rules! host_merge {
        () => {
            "ON CONFLICT (host_key) DO UPDATE SET \
              serial = coalesce(excluded.serial, hosts.serial), \
              uuid = coalesce(excluded.uuid, hosts.uuid), \
              boot_mac = coalesce(excluded.boot_mac, hosts.boot_mac), \
              hostname = coalesce(excluded.hostname, hosts.hostname), \
              last_seen = CASE WHEN excluded.last_seen > hosts.last_seen \
                          THEN excluded.last_seen ELSE hosts.last_seen END"
        };
    }
    pub(crate) use host_merge;
    /// How a run row already stored takes a new batch's: the task once,
    /// the earliest `first_ts`, events added, `last_seq` only forward.
    /// Shared by `UPSERT_RUN` and `pg::UPSERT_RUNS`.
    macro_rules! run_merge {
        () => {
            "ON CONFLICT (run_id) DO UPDATE SET \
              task = coalesce(runs.task, excluded.task), \
              first_ts = CASE WHEN excluded.first_ts < runs.first_ts \
                         THEN excluded.first_ts ELSE runs.first_ts END, \
              events = runs.events + excluded.events, \
              last_seq = CASE WHEN excluded.last_seq > runs.last_seq \
                         THEN excluded.last_seq ELSE runs.last_seq END"
        };
    }
    pub(crate) use run_merge;
    pub const UPSERT_HOST: &str = concat!(
        "INSERT INTO hosts \
        (host_key, serial, uuid, boot_mac, hostname, first_seen, last_seen) \
        VALUES ($1, $2, $3, $4, $5, $6, $6) ",
        host_merge!()
    );
    pub const SET_CPU: &str = "UPDATE hosts SET cpu_model = $1 WHERE host_key = $2";
    pub const UPSERT_RUN: &str = concat!(
        "INSERT INTO runs \
        (run_id, host_key, task, first_ts, events, last_seq) \
        VALUES ($1, $2, $3, $4, $5, $6) ",
        run_merge!()
    );
    pub const SET_STARTED: &str = "UPDATE runs SET started = $1 WHERE run_id = $2";
    pub const SET_FINISHED: &str = "UPDATE runs SET finished = $1, outcome = $2, \
        exit_status = $3, duration_ms = $4, error = $5 WHERE run_id = $6";
    pub const SELECT_HOSTS: &str = "SELECT h.host_key, serial, uuid, boot_mac, hostname, \
        cpu_model, first_seen, last_seen, \
        (SELECT count(*) FROM runs r WHERE r.host_key = h.host_key) \
        FROM hosts h ORDER BY last_seen DESC, host_key LIMIT $1 OFFSET $2";
    pub const SELECT_HOST: &str = "SELECT h.host_key, serial, uuid, boot_mac, hostname, \
        cpu_model, first_seen, last_seen, \
        (SELECT count(*) FROM runs r WHERE r.host_key = h.host_key) \
        FROM hosts h WHERE h.host_key = $1";
    pub const COUNT_HOSTS: &str = "SELECT count(*) FROM hosts";
    pub const RUN_COLS: &str = "run_id, host_key, task, started, finished, outcome, \
        exit_status, duration_ms, error, events, last_seq, first_ts";
    pub const SELECT_RUNS: &str = "SELECT run_id, host_key, task, started, finished, outcome, \
        exit_status, duration_ms, error, events, last_seq, first_ts FROM runs \
        WHERE (CAST($1 AS TEXT) IS NULL OR host_key = $1) AND (CAST($2 AS TEXT) IS NULL OR task = $2) \
        ORDER BY first_ts DESC LIMIT $3";
    /// `SELECT_RUNS` of one host: through `runs_by_host`, which the
    /// optional host filter keeps the planner from choosing.
    pub const SELECT_RUNS_OF_HOST: &str =
        "SELECT run_id, host_key, task, started, finished, outcome, \
        exit_status, duration_ms, error, events, last_seq, first_ts FROM runs \
        WHERE host_key = $1 AND (CAST($2 AS TEXT) IS NULL OR task = $2) \
        ORDER BY first_ts DESC LIMIT $3";
    /// `SELECT_RUNS_BENCH` of one host (as `SELECT_RUNS_OF_HOST`).
    pub const SELECT_RUNS_BENCH_OF_HOST: &str = "SELECT res.run_id, res.step, res.data \
        FROM results res JOIN (SELECT run_id FROM runs \
          WHERE host_key = $1 AND (CAST($2 AS TEXT) IS NULL OR task = $2) \
          ORDER BY first_ts DESC LIMIT $3) r ON r.run_id = res.run_id \
        WHERE res.step LIKE 'bench%' ORDER BY res.run_id, res.seq";
    /// The runs query for `filter`: one host's through its index.
    pub fn runs(host: bool) -> &'static str {
        if host {
            SELECT_RUNS_OF_HOST
        } else {
            SELECT_RUNS
        }
    }
    /// The runs' bench results query for `filter` (as `runs`).
    pub fn runs_bench(host: bool) -> &'static str {
        if host {
            SELECT_RUNS_BENCH_OF_HOST
        } else {
            SELECT_RUNS_BENCH
        }
    }
    pub const SELECT_RUN: &str = "SELECT run_id, host_key, task, started, finished, outcome, \
        exit_status, duration_ms, error, events, last_seq, first_ts FROM runs WHERE run_id = $1";
    pub const SELECT_EVENTS: &str = "SELECT body FROM events WHERE run_id = $1 ORDER BY seq";
    pub const SELECT_EVENTS_PAGE: &str = "SELECT body FROM events \
        WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3";
    /// `type <> 'progress'` exactly as the partial index says (migration 3).
    pub const SELECT_EVENTS_PAGE_NP: &str = "SELECT body FROM events \
        WHERE run_id = $1 AND seq > $2 AND type <> 'progress' ORDER BY seq LIMIT $3";
    /// The page query: `SELECT_EVENTS_PAGE`, or `SELECT_EVENTS_PAGE_NP`
    /// without progress events.
    pub fn events_page(with_progress: bool) -> &'static str {
        if with_progress {
            SELECT_EVENTS_PAGE
        } else {
            SELECT_EVENTS_PAGE_NP
        }
    }
    pub const SELECT_EVENTS_TAIL: &str = "SELECT body FROM events \
        WHERE run_id = $1 AND type <> 'progress' ORDER BY seq DESC LIMIT $2";
    pub const SELECT_PROGRESS_SPANS: &str = "SELECT g.step, g.n, g.first_seq, g.last_seq, \
        (SELECT body FROM events e WHERE e.run_id = $1 AND e.seq = g.last_seq) \
        FROM (SELECT step, count(*) AS n, min(seq) AS first_seq, max(seq) AS last_seq \
              FROM events WHERE run_id = $1 AND seq > $2 AND seq <= $3 AND type = 'progress' \
              GROUP BY step) g ORDER BY g.first_seq";
    pub const SELECT_RESULTS: &str =
        "SELECT seq, step, data FROM results WHERE run_id = $1 ORDER BY seq";
    pub const SELECT_CERT_IDS: &str =
        "SELECT id FROM certificates WHERE run_id = $1 ORDER BY seq, ord";
    pub const SELECT_CERT: &str = "SELECT run_id, body FROM certificates WHERE id = $1";
    pub const SELECT_BENCH: &str = "SELECT res.step, res.data FROM results res \
        JOIN runs r ON r.run_id = res.run_id \
        WHERE r.host_key = $1 AND res.step LIKE 'bench%' ORDER BY r.first_ts, res.seq";
    /// The bench results of every other host with this CPU model (one
    /// statement for the whole comparison).
    pub const SELECT_SIBLING_BENCH: &str = "SELECT r.host_key, res.step, res.data \
        FROM results res JOIN runs r ON r.run_id = res.run_id \
        JOIN hosts h ON h.host_key = r.host_key \
        WHERE h.cpu_model = $1 AND h.host_key <> $2 AND res.step LIKE 'bench%' \
        ORDER BY r.first_ts, res.seq";
    /// The bench results of the runs `SELECT_RUNS` lists (same filter).
    pub const SELECT_RUNS_BENCH: &str = "SELECT res.run_id, res.step, res.data \
        FROM results res JOIN (SELECT run_id FROM runs \
          WHERE (CAST($1 AS TEXT) IS NULL OR host_key = $1) AND (CAST($2 AS TEXT) IS NULL OR task = $2) \
          ORDER BY first_ts DESC LIMIT $3) r ON r.run_id = res.run_id \
        WHERE res.step LIKE 'bench%' ORDER BY res.run_id, res.seq";
    pub const SELECT_SIBLINGS: &str =
        "SELECT host_key FROM hosts WHERE cpu_model = $1 AND host_key <> $2";

    /// The worst verdict wins (pass < warn < fail).
    pub const SET_VERDICT: &str = "UPDATE runs SET verdict = $1, reasons = $2 \
        WHERE run_id = $3 AND (verdict IS NULL OR \
          (CASE verdict WHEN 'fail' THEN 3 WHEN 'warn' THEN 2 ELSE 1 END) <= \
          (CASE CAST($1 AS TEXT) WHEN 'fail' THEN 3 WHEN 'warn' THEN 2 ELSE 1 END))";
    pub const INSERT_HOST_DISK: &str = "INSERT INTO host_disks (serial, host_key) \
        VALUES ($1, $2) ON CONFLICT (serial, host_key) DO NOTHING";
    /// A host's latest run and its board facts, after its runs changed.
    pub const REFRESH_HOST_LAST_RUN: &str = "UPDATE hosts SET \
        (last_run_id, last_task, last_outcome, last_verdict) = \
        (SELECT run_id, task, coalesce(outcome, 'running'), verdict FROM runs \
         WHERE runs.host_key = hosts.host_key ORDER BY first_ts DESC, run_id DESC LIMIT 1) \
        WHERE host_key = $1";
    /// The board: hosts in `hosts_by_last_seen` order, filtered on the
    /// latest-run facts kept on each host, searched through the host
    /// indexes and `host_disks`; the latest run joined by its key.
    pub const SELECT_BOARD: &str = "SELECT h.host_key, h.serial, h.boot_mac, h.hostname, \
        h.cpu_model, h.last_seen, r.run_id, r.task, r.outcome, r.verdict, r.reasons, r.first_ts \
        FROM hosts h LEFT JOIN runs r ON r.run_id = h.last_run_id \
        WHERE (CAST($1 AS TEXT) IS NULL OR h.last_task = $1) \
          AND (CAST($2 AS TEXT) IS NULL OR h.last_outcome = $2) \
          AND (CAST($3 AS TEXT) IS NULL OR h.last_verdict = $3) \
          AND (CAST($4 AS TEXT) IS NULL OR h.last_seen >= $4) \
          AND (CAST($5 AS TEXT) IS NULL OR h.last_seen < $5) \
          AND (CAST($6 AS TEXT) IS NULL OR h.host_key IN ( \
                SELECT host_key FROM hosts WHERE host_key = $6 \
                UNION SELECT host_key FROM hosts WHERE serial = $6 \
                UNION SELECT host_key FROM hosts WHERE hostname = $6 \
                UNION SELECT host_key FROM hosts WHERE lower(boot_mac) = lower($6) \
                UNION SELECT host_key FROM host_disks WHERE serial = $6)) \
        ORDER BY h.last_seen DESC, h.host_key DESC LIMIT $7 OFFSET $8";
    pub const SELECT_LAST_RESULT: &str = "SELECT res.data FROM results res \
        JOIN runs r ON r.run_id = res.run_id \
        WHERE r.host_key = $1 AND res.step = $2 ORDER BY r.first_ts DESC, res.seq DESC LIMIT 1";
    pub const SELECT_PROGRESS_SAMPLE: &str = "SELECT body FROM events \
        WHERE run_id = $1 AND type = 'progress' AND seq % $2 = 0 ORDER BY seq LIMIT $3";

    pub const ALL: &[&str] = &[
        SET_VERDICT,
        INSERT_HOST_DISK,
        REFRESH_HOST_LAST_RUN,
        SELECT_RUNS_OF_HOST,
        SELECT_RUNS_BENCH_OF_HOST,
        SELECT_BOARD,
        SELECT_LAST_RESULT,
        SELECT_PROGRESS_SAMPLE,
        INSERT_EVENT,
        CLAIM_RUN,
        RUN_OWNER,
        SET_RUN_TOKEN,
        SELECT_EVENT_BODY,
        INSERT_RESULT,
        INSERT_CERT,
        UPSERT_HOST,
        SET_CPU,
        UPSERT_RUN,
        SET_STARTED,
        SET_FINISHED,
        SELECT_HOSTS,
        SELECT_RUNS,
        SELECT_RUN,
        SELECT_HOSTS,
        SELECT_HOST,
        COUNT_HOSTS,
        SELECT_EVENTS,
        SELECT_EVENTS_PAGE,
        SELECT_EVENTS_PAGE_NP,
        SELECT_EVENTS_TAIL,
        SELECT_PROGRESS_SPANS,
        SELECT_RESULTS,
        SELECT_CERT_IDS,
        SELECT_CERT,
        SELECT_BENCH,
        SELECT_SIBLINGS,
        SELECT_SIBLING_BENCH,
        SELECT_RUNS_BENCH,
    ];
}

/// `run_finished`: (ts, outcome, exit status, duration ms, error).
pub type Finished = (String, String, Option<i64>, Option<i64>, Option<String>);

/// Per-run facts gathered from the new events of a batch.
#[derive(Default)]
pub struct RunDelta {
    pub host_key: String,
    pub task: Option<String>,
    pub first_ts: String,
    pub started: Option<String>,
    pub finished: Option<Finished>,
    pub events: i64,
    pub last_seq: i64,
}

/// A certificate found in a result: (id, run_id, seq, ord, step, body).
pub type CertRow = (String, String, i64, i64, Option<String>, String);

/// What newly stored events change in the derived tables.
#[derive(Default)]
pub struct Derived<'a> {
    pub runs: BTreeMap<&'a str, RunDelta>,
    pub hosts: BTreeMap<String, &'a Incoming>,
    /// (run_id, seq, step, data JSON).
    pub results: Vec<(&'a str, i64, Option<&'a str>, String)>,
    pub certs: Vec<CertRow>,
    /// (host_key, model).
    pub cpu_models: Vec<(String, String)>,
    /// (run_id, verdict, reasons) of a health or burn-in result.
    pub verdicts: Vec<(String, String, Option<String>)>,
    /// (host_key, disk serial) of an inventory result.
    pub disks: Vec<(String, String)>,
}

impl<'a> Derived<'a> {
    /// Fold `later` (the next batch's facts, all its events new) into
    /// `self`, so that applying the result once writes what applying both
    /// in order would: run counters summed, `last_seq` the larger,
    /// `first_ts` the smaller, `task` the first known, `started` and
    /// `finished` the later one, rows appended in order. A host's upsert
    /// takes its first event's identity fields and `ts` (`last_seen`, the
    /// larger wins): merged only when both batches name the host with the
    /// same fields (the later `ts` kept); otherwise `later` comes back,
    /// untouched, for the caller to apply on its own after `self`.
    pub fn absorb(&mut self, later: Derived<'a>) -> Option<Derived<'a>> {
        let same_hosts = later
            .hosts
            .iter()
            .all(|(k, e)| self.hosts.get(k).is_none_or(|mine| mine.host == e.host));
        if !same_hosts {
            return Some(later);
        }
        for (k, e) in later.hosts {
            let slot = self.hosts.entry(k).or_insert(e);
            if e.ts > slot.ts {
                *slot = e;
            }
        }
        for (run, r) in later.runs {
            match self.runs.entry(run) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(r);
                }
                std::collections::btree_map::Entry::Occupied(mut o) => {
                    let d = o.get_mut();
                    d.events += r.events;
                    d.last_seq = d.last_seq.max(r.last_seq);
                    if r.first_ts < d.first_ts {
                        d.first_ts = r.first_ts;
                    }
                    if d.task.is_none() {
                        d.task = r.task;
                    }
                    if r.started.is_some() {
                        d.started = r.started;
                    }
                    if r.finished.is_some() {
                        d.finished = r.finished;
                    }
                }
            }
        }
        self.results.extend(later.results);
        self.certs.extend(later.certs);
        self.cpu_models.extend(later.cpu_models);
        self.verdicts.extend(later.verdicts);
        self.disks.extend(later.disks);
        None
    }

    /// The hosts whose runs this batch changed, once each (their latest
    /// run is looked up again after the runs are written).
    pub fn run_hosts(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.runs.values().map(|r| r.host_key.as_str()).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Account for one event that was NOT a duplicate.
    pub fn add(&mut self, e: &'a Incoming) {
        let key = e.host_key.clone();
        let d = self.runs.entry(&e.run_id).or_insert_with(|| RunDelta {
            host_key: key.clone(),
            first_ts: e.ts.clone(),
            last_seq: -1,
            ..RunDelta::default()
        });
        d.events += 1;
        d.last_seq = d.last_seq.max(e.seq as i64);
        if d.task.is_none() {
            d.task = e.task.clone();
        }
        if e.ts < d.first_ts {
            d.first_ts = e.ts.clone();
        }
        match e.kind.as_str() {
            "run_started" => d.started = Some(e.ts.clone()),
            "run_finished" => {
                let v = &e.value;
                d.finished = Some((
                    e.ts.clone(),
                    v["outcome"].as_str().unwrap_or("unknown").to_string(),
                    v["exit_status"].as_i64(),
                    v["duration_ms"].as_i64(),
                    v["error"].as_str().map(escape_nul),
                ));
            }
            "dispatch_rejected" => {
                d.started.get_or_insert_with(|| e.ts.clone());
                d.finished = Some((
                    e.ts.clone(),
                    "rejected".into(),
                    None,
                    Some(0),
                    e.value["reason"].as_str().map(escape_nul),
                ));
            }
            "result" => {
                let data = &e.value["data"];
                self.results
                    .push((&e.run_id, e.seq as i64, e.step.as_deref(), data.to_string()));
                if let Some(certs) = data.get("certificates").and_then(Value::as_array) {
                    for (i, c) in certs.iter().enumerate() {
                        let id = c
                            .get("id")
                            .and_then(Value::as_str)
                            .filter(|s| super::cert::valid_id(s))
                            .map(str::to_string)
                            .unwrap_or_else(|| format!("{}-{}-{i}", e.run_id, e.seq));
                        self.certs.push((
                            id,
                            e.run_id.clone(),
                            e.seq as i64,
                            i as i64,
                            e.step.clone(),
                            c.to_string(),
                        ));
                    }
                }
                if let Some(m) = cpu_model(data) {
                    self.cpu_models.push((key.clone(), m));
                }
                if let Some((v, reasons)) = verdict(data) {
                    // Which step judged, when it did not pass.
                    let step = e.step.as_deref().unwrap_or("result");
                    let reasons = match reasons {
                        Some(r) => Some(format!("{step}: {r}")),
                        None if v != "pass" => Some(format!("{step}: {v}")),
                        None => None,
                    };
                    self.verdicts.push((e.run_id.clone(), v, reasons));
                }
                for serial in disk_serials(data) {
                    self.disks.push((key.clone(), serial));
                }
            }
            _ => {}
        }
        self.hosts.entry(key).or_insert(e);
    }
}

/// The CPU model in an inventory result: `cpu.model` / `cpu.model_name` /
/// `cpu.brand`, on an object or the first element of an array.
pub fn cpu_model(data: &Value) -> Option<String> {
    let cpu = data.get("cpu")?;
    let cpu = match cpu {
        Value::Array(a) => a.first()?,
        other => other,
    };
    ["model", "model_name", "brand"]
        .iter()
        .find_map(|k| cpu.get(*k).and_then(Value::as_str))
        .map(|s| escape_nul(s.trim()))
        .filter(|s| !s.is_empty())
}

/// The verdicts a health or burn-in result may carry, best first.
pub const VERDICTS: &[&str] = &["pass", "warn", "fail"];

/// A result's health verdict (`verdict`: pass, warn or fail, as the health
/// and burn-in steps write it) and its reasons: the `message` (with its
/// `component`) of each warn/fail finding, `; `-joined, at most 10.
pub fn verdict(data: &Value) -> Option<(String, Option<String>)> {
    let v = data.get("verdict")?.as_str()?;
    if !VERDICTS.contains(&v) {
        return None;
    }
    let mut reasons = Vec::new();
    for key in ["findings", "failures", "reasons"] {
        for f in data
            .get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let text = match f {
                Value::String(s) => s.clone(),
                Value::Object(o) => {
                    let sev = o.get("severity").and_then(Value::as_str).unwrap_or("fail");
                    if sev == "info" {
                        continue;
                    }
                    let msg = o.get("message").and_then(Value::as_str).unwrap_or("");
                    match o.get("component").and_then(Value::as_str) {
                        Some(c) if !c.is_empty() => format!("{c}: {msg}"),
                        _ => msg.to_string(),
                    }
                }
                _ => continue,
            };
            reasons.push(escape_nul(&text));
        }
    }
    // Burn-in reports have no findings: their error count and error say why.
    if reasons.is_empty() && v != "pass" {
        if let Some(n) = data.get("errors_total").and_then(Value::as_u64) {
            reasons.push(format!("{n} error(s)"));
        }
        if let Some(e) = data.get("error").and_then(Value::as_str) {
            reasons.push(escape_nul(e));
        }
    }
    let more = reasons.len().saturating_sub(10);
    reasons.truncate(10);
    if more > 0 {
        reasons.push(format!("and {more} more"));
    }
    Some((
        v.to_string(),
        (!reasons.is_empty()).then(|| reasons.join("; ")),
    ))
}

/// The disk serials of an inventory result (`disks[].serial`), for search.
pub fn disk_serials(data: &Value) -> Vec<String> {
    data.get("disks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| d.get("serial").and_then(Value::as_str))
        .map(|s| escape_nul(s.trim()))
        .filter(|s| !s.is_empty())
        .collect()
}

/// Numeric leaves of a result as `path.to.leaf → value` (arrays skipped,
/// at most three levels): the "key figures" of a step.
pub fn figures(data: &Value) -> BTreeMap<String, f64> {
    fn walk(prefix: &str, v: &Value, depth: usize, out: &mut BTreeMap<String, f64>) {
        match v {
            Value::Number(n) => {
                if let Some(f) = n.as_f64() {
                    out.insert(prefix.to_string(), f);
                }
            }
            Value::Object(m) if depth < 3 => {
                for (k, v) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&p, v, depth + 1, out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    walk("", data, 0, &mut out);
    out
}

/// One page of a run's events, and what it leaves out.
#[derive(Debug, Clone, Serialize)]
pub struct EventsPage {
    /// The page holds events with `seq > after_seq`.
    pub after_seq: i64,
    pub limit: usize,
    /// `all`, or `omit`: progress events left out, counted in
    /// `progress_omitted` (each exactly once over a walk of the pages).
    pub progress: &'static str,
    #[serde(skip)]
    pub events: Vec<Value>,
    /// The cursor of the next page; `None` on the last one.
    pub next_after_seq: Option<i64>,
    pub progress_omitted: Vec<ProgressSpan>,
}

fn seq_of(e: &Value) -> Option<i64> {
    e.get("seq").and_then(Value::as_i64)
}

/// Up to `limit` events after `after_seq` (without progress unless
/// `with_progress`, the progress of the same range counted instead).
pub fn events_page(
    s: &mut dyn Store,
    run_id: &str,
    after_seq: i64,
    limit: usize,
    with_progress: bool,
) -> Result<EventsPage> {
    let limit = limit.max(1);
    let page = PageQuery {
        after_seq,
        limit,
        with_progress,
    };
    let events = s.events_page(run_id, page)?;
    let next_after_seq = if events.len() == limit {
        events.last().and_then(seq_of)
    } else {
        None
    };
    let progress_omitted = if with_progress {
        Vec::new()
    } else {
        s.progress_spans(run_id, after_seq, next_after_seq.unwrap_or(i64::MAX))?
    };
    Ok(EventsPage {
        after_seq,
        limit,
        progress: if with_progress { "all" } else { "omit" },
        events,
        next_after_seq,
        progress_omitted,
    })
}

/// The last `limit` events that are not progress, and the progress from
/// the first of them on (from the start when the run fits).
pub fn events_tail(s: &mut dyn Store, run_id: &str, limit: usize) -> Result<EventsPage> {
    let limit = limit.max(1);
    let events = s.events_tail(run_id, limit)?;
    let after_seq = match events.first().and_then(seq_of) {
        Some(first) if events.len() == limit => first - 1,
        _ => -1,
    };
    let progress_omitted = s.progress_spans(run_id, after_seq, i64::MAX)?;
    Ok(EventsPage {
        after_seq,
        limit,
        progress: "omit",
        events,
        next_after_seq: None,
        progress_omitted,
    })
}

pub fn host(s: &mut dyn Store, key: &str) -> Result<Option<HostRow>> {
    s.host(key)
}

/// The latest figures of each bench step of a host: `step → figure → value`.
pub fn latest_figures(
    s: &mut dyn Store,
    host_key: &str,
) -> Result<BTreeMap<String, BTreeMap<String, f64>>> {
    let mut out = BTreeMap::new();
    for (step, data) in s.bench_results(host_key)? {
        let data: Value = serde_json::from_str(&data)?;
        // Later runs overwrite earlier ones: the latest figure wins.
        out.insert(step.unwrap_or_default(), figures(&data));
    }
    Ok(out)
}

/// A host's bench figures next to the median of its siblings (other hosts
/// with the same CPU model).
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    pub step: String,
    pub figure: String,
    pub value: f64,
    pub median: Option<f64>,
    pub siblings: usize,
    /// value / median.
    pub ratio: Option<f64>,
    /// Each sibling's latest value of the figure, ascending (the charts).
    pub sibling_values: Vec<f64>,
}

pub fn compare(s: &mut dyn Store, host: &HostRow) -> Result<Vec<Comparison>> {
    let mine = latest_figures(s, &host.host_key)?;
    // Each sibling's latest figures, from one statement.
    let mut by_host: BTreeMap<String, BTreeMap<String, BTreeMap<String, f64>>> = BTreeMap::new();
    if let Some(m) = &host.cpu_model {
        for (key, step, data) in s.sibling_bench_results(m, &host.host_key)? {
            let data: Value = serde_json::from_str(&data)?;
            by_host
                .entry(key)
                .or_default()
                .insert(step.unwrap_or_default(), figures(&data));
        }
    }
    let theirs: Vec<_> = by_host.into_values().collect();
    let mut out = Vec::new();
    for (step, figs) in &mine {
        for (fig, &value) in figs {
            let mut vals: Vec<f64> = theirs
                .iter()
                .filter_map(|t| t.get(step).and_then(|f| f.get(fig)).copied())
                .collect();
            let median = median(&mut vals);
            out.push(Comparison {
                step: step.clone(),
                figure: fig.clone(),
                value,
                median,
                siblings: vals.len(),
                ratio: median.filter(|m| *m != 0.0).map(|m| value / m),
                sibling_values: vals,
            });
        }
    }
    Ok(out)
}

pub fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The same checks for every backend: the SQLite unit test and the
/// PostgreSQL integration test run them. Panics on a failed check.
#[doc(hidden)]
pub mod conformance {
    use super::{host, latest_figures, RunFilter, Store};
    use crate::ingest::{bind, parse_batch, Incoming, Limits, Refusal};
    use crate::tokens::{token_id, Token};

    fn line(run: &str, seq: u64, serial: &str, kind: &str, extra: &str) -> String {
        format!(
            r#"{{"v":1,"run_id":"{run}","seq":{seq},"ts":"2026-01-01T00:00:{seq:02}.000Z","host":{{"serial":"{serial}"}},"task":"speedtest","step":"bench.cpu","type":"{kind}"{extra}}}"#
        )
    }

    /// (stored, duplicates) of each batch's outcome, or its refusal.
    fn outcomes(st: &[&super::BatchOutcome]) -> Vec<Result<(usize, usize), Refusal>> {
        st.iter()
            .map(|r| {
                r.as_ref()
                    .map(|s| (s.stored, s.duplicates))
                    .map_err(Clone::clone)
            })
            .collect()
    }

    /// The `seq` of every event stored for `run`, in order.
    fn seqs(s: &mut dyn Store, run: &str) -> Vec<u64> {
        s.events(run)
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect()
    }

    fn token(secret: &str, host: Option<&str>) -> Token {
        Token {
            secret: secret.into(),
            host: host.map(str::to_string),
            role: None,
            id: token_id(secret),
            first_use: false,
        }
    }

    /// Parse and bind a batch as the server does.
    fn batch(lines: &[String], t: &Token) -> Vec<Incoming> {
        let mut evs = parse_batch(lines.join("\n").as_bytes(), Limits::default()).unwrap();
        bind(&mut evs, t).unwrap();
        evs
    }

    fn refusal(s: &mut dyn Store, evs: &[Incoming]) -> Refusal {
        match s.insert_group(&[evs]).unwrap().remove(0) {
            Err(r) => r,
            Ok(st) => panic!("stored: {st:?}"),
        }
    }

    /// After `exercise`: a store whose `runs.last_seq` of run g1 was
    /// lowered behind its back (`forget`, SQL on the backend) still stores
    /// a replay as duplicates and a new batch once: PostgreSQL's group path
    /// takes the replay for new, its insert meets the stored keys
    /// (unique violation), and the group is stored batch by batch.
    pub fn replay_after_stale_last_seq(s: &mut dyn Store, forget: &mut dyn FnMut()) {
        let t1 = token("token-one-secret", None);
        let g = |seq: u64| line("g1", seq, "S5", "log", r#","level":"info","message":"g""#);
        forget();
        let replay = batch(&[g(1), g(2)], &t1);
        let new = batch(&[g(9)], &t1);
        let st = s.insert_group(&[&replay, &new]).unwrap();
        assert_eq!(
            outcomes(&st.iter().collect::<Vec<_>>()),
            [Ok((0, 2)), Ok((1, 0))]
        );
        assert_eq!(seqs(s, "g1"), [0, 1, 2, 3, 4, 6, 7, 9], "each once");
        assert_eq!(s.run("g1").unwrap().unwrap().events, 8);
    }

    pub fn exercise(s: &mut dyn Store) {
        let t1 = token("token-one-secret", None);
        let t2 = token("token-two-secret", None);
        let cert = |id: &str, x: u64| {
            format!(
                r#"{{"id":"{id}","x":{x},"run_id":"a","host":{{"serial":"S1"}},"outcome":"wiped"}}"#
            )
        };
        let body = [
            line(
                "a",
                0,
                "S1",
                "run_started",
                r##","steps":[],"destructive":false,"after":"stay","agent_version":"0""##,
            ),
            line(
                "a",
                1,
                "S1",
                "result",
                &format!(
                    r#","data":{{"cpu":{{"model":"EPYC"}},"certificates":[{},{}]}}"#,
                    cert("c2", 1),
                    cert("c1", 2)
                ),
            )
            .replace(r#""step":"bench.cpu""#, r#""step":"wipe""#),
            line(
                "a",
                2,
                "S1",
                "result",
                r#","data":{"events_per_second":{"single":100.0,"all":800}}"#,
            ),
            line(
                "a",
                3,
                "S1",
                "run_finished",
                r#","outcome":"failed","exit_status":1,"duration_ms":1500"#,
            ),
        ];
        let evs = batch(&body, &t1);
        let st = s.insert_group(&[&evs]).unwrap().remove(0).unwrap();
        assert_eq!((st.stored, st.duplicates), (4, 0));
        let st = s.insert_group(&[&evs[1..3], &evs[..1]]).unwrap();
        assert_eq!(st[0].as_ref().map(|s| (s.stored, s.duplicates)), Ok((0, 2)));
        assert_eq!(st[1].as_ref().map(|s| (s.stored, s.duplicates)), Ok((0, 1)));
        let r = s.run("a").unwrap().unwrap();
        assert_eq!((r.events, r.last_seq), (4, 3));
        assert_eq!(r.outcome.as_deref(), Some("failed"));
        assert_eq!(r.duration_ms, Some(1500));
        assert_eq!(r.started.as_deref(), Some("2026-01-01T00:00:00.000Z"));
        let h = host(s, "S1").unwrap().unwrap();
        assert_eq!(h.cpu_model.as_deref(), Some("EPYC"));
        assert_eq!(h.runs, 1);
        assert_eq!(s.events("a").unwrap().len(), 4);
        assert_eq!(s.results("a").unwrap().len(), 2);
        assert_eq!(s.certificate_ids("a").unwrap(), vec!["c2", "c1"]);
        assert_eq!(s.certificate("c1").unwrap().unwrap().1["x"], 2);
        assert!(s.certificate("nope").unwrap().is_none());
        let figs = latest_figures(s, "S1").unwrap();
        assert_eq!(figs["bench.cpu"]["events_per_second.all"], 800.0);
        for (host, task, n) in [
            (Some("S1"), None, 1),
            (None, Some("speedtest"), 1),
            (Some("S2"), None, 0),
            (None, None, 1),
        ] {
            let filter = RunFilter {
                host,
                task,
                limit: 10,
            };
            assert_eq!(s.runs(filter).unwrap().len(), n, "{filter:?}");
        }
        assert!(s.siblings("EPYC", "S1").unwrap().is_empty());

        // A run is bound to the host and the token of its first event.
        let log = |seq, serial| line("a", seq, serial, "log", r#","level":"info","message":"m""#);
        let r = refusal(s, &batch(&[log(4, "S1")], &t2));
        assert!(
            matches!(&r, Refusal::Forbidden { line: 1, why } if why.contains("another token")),
            "{r:?}"
        );
        let r = refusal(s, &batch(&[log(4, "S1"), log(5, "S9")], &t1));
        assert!(
            matches!(&r, Refusal::Forbidden { line: 2, why } if why.contains("belongs to host S1")),
            "{r:?}"
        );
        // A per-host token files under its identity: the run is not its host's.
        let bound = token("token-bound-secret", Some("52:54:00:00:00:01"));
        let hijack = line("a", 4, "S1", "log", r#","level":"info","message":"m""#).replace(
            r#"{"serial":"S1"}"#,
            r#"{"serial":"S1","boot_mac":"52:54:00:00:00:01"}"#,
        );
        let evs = batch(&[hijack], &bound);
        assert_eq!(evs[0].host_key, "52:54:00:00:00:01");
        assert!(matches!(refusal(s, &evs), Refusal::Forbidden { .. }));
        assert_eq!(
            s.events("a").unwrap().len(),
            4,
            "refused batches store nothing"
        );
        assert!(host(s, "S9").unwrap().is_none());

        // A replay must be the same content; otherwise the whole batch is
        // refused, and a batch refused in a group leaves the others stored.
        let other = line(
            "a",
            2,
            "S1",
            "result",
            r#","data":{"events_per_second":{"all":1}}"#,
        );
        let good = batch(&[log(4, "S1")], &t1);
        let bad = batch(&[log(5, "S1"), other], &t1);
        let st = s.insert_group(&[&bad, &good]).unwrap();
        assert!(
            matches!(&st[0], Err(Refusal::Conflict { line: 2, why }) if why.contains("seq 2")),
            "{st:?}"
        );
        assert_eq!(st[1].as_ref().map(|s| s.stored), Ok(1));
        let evs = s.events("a").unwrap();
        assert_eq!(evs.len(), 5, "seq 5 of the refused batch not stored");
        assert_eq!(evs[2]["data"]["events_per_second"]["all"], 800);
        assert_eq!(s.run("a").unwrap().unwrap().events, 5);
        // Equal JSON, other spelling: still a duplicate.
        let respelled = log(4, "S1").replace(
            r#""level":"info","message":"m""#,
            r#""message":"m", "level":"info""#,
        );
        let st = s
            .insert_group(&[&batch(&[respelled], &t1)])
            .unwrap()
            .remove(0)
            .unwrap();
        assert_eq!((st.stored, st.duplicates), (0, 1));

        // The board: each host's latest run with its worst verdict and the
        // reasons; search by disk serial; filters.
        let health = line(
            "b",
            10,
            "S1",
            "result",
            r#","data":{"verdict":"warn","findings":[{"severity":"warn","component":"DIMM A1","message":"3 corrected errors"},{"severity":"info","message":"no EDAC"}],"disks":[{"serial":"DISK-9"}]}"#,
        );
        let better = line("b", 11, "S1", "result", r#","data":{"verdict":"pass"}"#);
        let st = s.insert_group(&[&batch(&[health, better], &t1)]).unwrap();
        assert_eq!(st[0].as_ref().map(|s| s.stored), Ok(2));
        let all = super::BoardFilter {
            limit: 10,
            ..Default::default()
        };
        let rows = s.board(&all).unwrap();
        assert_eq!(rows.len(), 1, "{rows:?}");
        let r = &rows[0];
        assert_eq!(r.run_id.as_deref(), Some("b"), "the latest run: {r:?}");
        assert_eq!(r.verdict.as_deref(), Some("warn"), "the worst verdict");
        assert_eq!(
            r.reasons.as_deref(),
            Some("bench.cpu: DIMM A1: 3 corrected errors")
        );
        let some = |v: &str| Some(v.to_string());
        for (f, n) in [
            (
                super::BoardFilter {
                    search: some("DISK-9"),
                    ..all.clone()
                },
                1,
            ),
            (
                super::BoardFilter {
                    search: some("S1"),
                    ..all.clone()
                },
                1,
            ),
            (
                super::BoardFilter {
                    search: some("DISK-8"),
                    ..all.clone()
                },
                0,
            ),
            (
                super::BoardFilter {
                    verdict: some("warn"),
                    ..all.clone()
                },
                1,
            ),
            (
                super::BoardFilter {
                    verdict: some("fail"),
                    ..all.clone()
                },
                0,
            ),
            (
                super::BoardFilter {
                    outcome: some("running"),
                    ..all.clone()
                },
                1,
            ),
            (
                super::BoardFilter {
                    outcome: some("failed"),
                    ..all.clone()
                },
                0,
            ),
            (
                super::BoardFilter {
                    task: some("speedtest"),
                    ..all.clone()
                },
                1,
            ),
            (
                super::BoardFilter {
                    task: some("wipe"),
                    ..all.clone()
                },
                0,
            ),
            (
                super::BoardFilter {
                    from: some("2026-01-01"),
                    to: some("2026-01-02"),
                    ..all.clone()
                },
                1,
            ),
            (
                super::BoardFilter {
                    from: some("2026-01-02"),
                    ..all.clone()
                },
                0,
            ),
            (
                super::BoardFilter {
                    offset: 1,
                    ..all.clone()
                },
                0,
            ),
        ] {
            assert_eq!(s.board(&f).unwrap().len(), n, "{f:?}");
        }
        // A later batch finishing the run changes what the board filters on.
        let fin = line(
            "b",
            12,
            "S1",
            "run_finished",
            r#","outcome":"success","exit_status":0,"duration_ms":5"#,
        );
        s.insert_group(&[&batch(&[fin], &t1)]).unwrap();
        for (outcome, n) in [("running", 0), ("success", 1)] {
            let f = super::BoardFilter {
                outcome: some(outcome),
                ..all.clone()
            };
            assert_eq!(s.board(&f).unwrap().len(), n, "{f:?}");
        }
        let inv = s
            .last_result("S1", "wipe")
            .unwrap()
            .expect("latest wipe result");
        assert!(inv.contains("certificates"), "{inv}");
        assert!(s.last_result("S1", "nope").unwrap().is_none());
        assert!(s.progress_sample("a", 1, 10).unwrap().is_empty());

        // A group of several runs' batches, one replayed within the group
        // and one after a replay of its run: each batch counted as if
        // stored alone, in order (PostgreSQL stores the new ones in one
        // statement and merges their run and host rows).
        let g = |run: &str, seq: u64, serial: &str| {
            line(run, seq, serial, "log", r#","level":"info","message":"g""#)
        };
        let started = |run: &str, serial: &str| {
            line(
                run,
                0,
                serial,
                "run_started",
                r##","steps":[],"destructive":false,"after":"stay","agent_version":"0""##,
            )
        };
        let b0 = batch(
            &[started("g1", "S5"), g("g1", 1, "S5"), g("g1", 2, "S5")],
            &t1,
        );
        let b1 = batch(
            &[started("g2", "S6"), g("g2", 1, "S6"), g("g2", 2, "S6")],
            &t1,
        );
        // The same host, now with its hostname: its own host upsert.
        let named =
            |l: String| l.replace(r#"{"serial":"S5"}"#, r#"{"serial":"S5","hostname":"h5"}"#);
        let b2 = batch(&[named(g("g1", 3, "S5")), named(g("g1", 4, "S5"))], &t1);
        let fin = line(
            "g2",
            3,
            "S6",
            "run_finished",
            r#","outcome":"success","exit_status":0,"duration_ms":30"#,
        );
        let b5 = batch(&[fin], &t1);
        let st = s.insert_group(&[&b0, &b1, &b2, &b1, &b5]).unwrap();
        let counts: Vec<_> = st
            .iter()
            .map(|r| r.as_ref().map(|s| (s.received, s.stored, s.duplicates)))
            .collect();
        assert_eq!(
            counts,
            [
                Ok((3, 3, 0)),
                Ok((3, 3, 0)),
                Ok((2, 2, 0)),
                Ok((3, 0, 3)),
                Ok((1, 1, 0))
            ]
        );
        let (r1, r2) = (s.run("g1").unwrap().unwrap(), s.run("g2").unwrap().unwrap());
        assert_eq!((r1.events, r1.last_seq, r1.outcome), (5, 4, None));
        assert_eq!(r1.first_ts, "2026-01-01T00:00:00.000Z");
        assert_eq!(r1.started.as_deref(), Some("2026-01-01T00:00:00.000Z"));
        assert_eq!((r2.events, r2.last_seq), (4, 3));
        assert_eq!(r2.outcome.as_deref(), Some("success"));
        assert_eq!(s.events("g1").unwrap().len(), 5);
        let h5 = host(s, "S5").unwrap().unwrap();
        assert_eq!(
            h5.last_seen, "2026-01-01T00:00:03.000Z",
            "the later batch's"
        );
        assert_eq!(h5.hostname.as_deref(), Some("h5"));
        assert_eq!(h5.runs, 1);
        // A conflict in a group: that batch refused whole, the others
        // stored once (the group is stored again batch by batch).
        let b4 = batch(
            &[g("g1", 5, "S5"), g("g1", 1, "S5").replace("\"g\"", "\"x\"")],
            &t1,
        );
        let b6 = batch(&[g("g1", 6, "S5")], &t1);
        let b7 = batch(&[g("g3", 0, "S5")], &t1);
        let st = s.insert_group(&[&b6, &b4, &b7, &b6]).unwrap();
        assert!(
            matches!(&st[1], Err(Refusal::Conflict { line: 2, why }) if why.contains("seq 1")),
            "{st:?}"
        );
        assert_eq!(
            outcomes(&[&st[0], &st[2], &st[3]]),
            [Ok((1, 0)), Ok((1, 0)), Ok((0, 1))]
        );
        assert_eq!(
            seqs(s, "g1"),
            [0, 1, 2, 3, 4, 6],
            "seq 5 of the refused batch not stored"
        );
        assert_eq!(s.events("g1").unwrap()[1]["message"], "g");
        assert_eq!(s.run("g1").unwrap().unwrap().events, 6);
        assert_eq!(s.run("g3").unwrap().unwrap().events, 1);
        assert_eq!(
            host(s, "S5").unwrap().unwrap().last_seen,
            "2026-01-01T00:00:06.000Z"
        );
        // Another token's batch in a group: only it is refused.
        let b8 = batch(&[g("g1", 7, "S5")], &t1);
        let st = s
            .insert_group(&[&b8, &batch(&[g("g1", 8, "S5")], &t2)])
            .unwrap();
        assert_eq!(st[0].as_ref().map(|s| s.stored), Ok(1));
        assert!(matches!(&st[1], Err(Refusal::Forbidden { .. })), "{st:?}");
        assert_eq!(s.run("g1").unwrap().unwrap().events, 7);
        s.ping().unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite numbers `$n` parameters by first appearance; positional
    /// binding is only right when they first appear as $1, $2, ...
    #[test]
    fn placeholders_appear_in_order() {
        for q in sql::ALL {
            let mut next = 1;
            let b = q.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'$' {
                    let mut j = i + 1;
                    while j < b.len() && b[j].is_ascii_digit() {
                        j += 1;
                    }
                    let n: usize = q[i + 1..j].parse().unwrap();
                    assert!(n <= next, "{q}: ${n} before ${next}");
                    if n == next {
                        next += 1;
                    }
                    i = j;
                } else {
                    i += 1;
                }
            }
        }
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
