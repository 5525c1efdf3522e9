//! The PostgreSQL store, for fleets where one collector is not enough:
//! several collectors can share one database (idempotency holds across
//! them: `(run_id, seq)` is the primary key, derived counters are updated
//! only for rows actually inserted, and a run is claimed by its first
//! batch before anything else, so a concurrent one waits and sees the
//! binding). Same SQL as SQLite
//! (`store::sql`), schema in `migrations/postgres/`. TLS (rustls) and
//! reconnecting after a lost connection are here too.

use super::ingest::Incoming;
use super::store::{
    parse_events, sql, BatchOutcome, BatchTx, BenchRow, BoardFilter, BoardRow, Derived, HostRow,
    PageQuery, ProgressSpan, ResultRow, RunFilter, RunRow, Store,
};
use anyhow::{Context, Result};
use postgres::types::ToSql;
use postgres::{Client, NoTls, Row};
use serde_json::Value;
use tokio_postgres_rustls::MakeRustlsConnect;

pub const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_init.sql")),
    (2, include_str!("../migrations/postgres/0002_run_token.sql")),
    (
        3,
        include_str!("../migrations/postgres/0003_event_pages.sql"),
    ),
    (4, include_str!("../migrations/postgres/0004_board.sql")),
    (
        5,
        include_str!("../migrations/postgres/0005_agent_tokens.sql"),
    ),
];

/// Any fixed number: serialises migrations of collectors starting together.
const MIGRATION_LOCK: i64 = 0x05ee_d150;

/// One open connection; `PgStore` replaces it when it breaks.
struct Conn {
    client: Client,
    /// The write path's statements, prepared once per connection (a
    /// statement given as text costs a second round trip on every call).
    stmts: Stmts,
}

type Stmts = std::collections::HashMap<&'static str, postgres::Statement>;

/// `BatchTx::insert_events` in one statement: the batch's columns as
/// arrays; the keys actually inserted come back.
const INSERT_EVENTS: &str = "INSERT INTO events (run_id, seq, ts, type, step, body) \
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[]) \
    ON CONFLICT (run_id, seq) DO NOTHING RETURNING run_id, seq";

/// `sql::UPSERT_HOST` for many hosts (distinct keys) in one statement.
const UPSERT_HOSTS: &str = concat!(
    "INSERT INTO hosts \
    (host_key, serial, uuid, boot_mac, hostname, first_seen, last_seen) \
    SELECT k, s, u, m, n, t, t \
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) \
      AS x(k, s, u, m, n, t) ",
    crate::store::sql::host_merge!()
);

/// `sql::UPSERT_RUN` for many runs (distinct ids) in one statement.
const UPSERT_RUNS: &str = concat!(
    "INSERT INTO runs \
    (run_id, host_key, task, first_ts, events, last_seq) \
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[]) ",
    crate::store::sql::run_merge!()
);

/// `sql::REFRESH_HOST_LAST_RUN` for many hosts in one statement.
const REFRESH_HOSTS_LAST_RUN: &str = "UPDATE hosts SET \
    (last_run_id, last_task, last_outcome, last_verdict) = \
    (SELECT run_id, task, coalesce(outcome, 'running'), verdict FROM runs \
     WHERE runs.host_key = hosts.host_key ORDER BY first_ts DESC, run_id DESC LIMIT 1) \
    WHERE host_key = ANY($1::text[])";

/// `BatchTx::event_bodies` in one statement, in the keys' order.
const SELECT_EVENT_BODIES: &str = "SELECT e.body \
    FROM unnest($1::text[], $2::bigint[]) WITH ORDINALITY AS k(run_id, seq, n) \
    LEFT JOIN events e ON e.run_id = k.run_id AND e.seq = k.seq ORDER BY k.n";

/// The PostgreSQL store. A connection lost (the server restarted, the
/// network broke) is reopened on a later call, with backoff; meanwhile
/// every call fails with `store::Unavailable`, which the server answers
/// with 503, so agents keep their spools and retry.
pub struct PgStore {
    config: postgres::Config,
    /// `sslmode=verify-full`: the rustls connector (certificate checked).
    tls: Option<MakeRustlsConnect>,
    conn: Option<Conn>,
    /// No reconnect before this; the delay doubles on each failure.
    next_try: std::time::Instant,
    delay: std::time::Duration,
}

const RECONNECT_FIRST: std::time::Duration = std::time::Duration::from_millis(100);
const RECONNECT_MAX: std::time::Duration = std::time::Duration::from_secs(5);

/// The connection settings of a `postgres://` URL, and its TLS. TLS is
/// set with libpq's parameters, which the `postgres` crate does not know
/// (they are taken out of the URL here): `sslmode=verify-full` (or
/// `require`, which here verifies as well) encrypts and verifies the
/// server's certificate against `sslrootcert=PATH` (PEM), else the
/// system's roots (`http::Trust::System`), and its name against the URL's
/// host; `sslmode=disable` or
/// none: no TLS. `prefer`, `allow` (which fall back to plain text) and
/// `verify-ca` (no host name check) are refused.
pub fn parse_url(url: &str) -> Result<(postgres::Config, Option<MakeRustlsConnect>)> {
    let mut u = url::Url::parse(url).context("parsing the PostgreSQL URL")?;
    let (mut mode, mut root, mut rest) = (None, None, Vec::new());
    for (k, v) in u.query_pairs() {
        match k.as_ref() {
            "sslmode" => mode = Some(v.into_owned()),
            "sslrootcert" => root = Some(v.into_owned()),
            _ => rest.push((k.into_owned(), v.into_owned())),
        }
    }
    if rest.is_empty() {
        u.set_query(None);
    } else {
        u.query_pairs_mut().clear().extend_pairs(&rest);
    }
    let mut config: postgres::Config = u.as_str().parse().context("parsing the PostgreSQL URL")?;
    let tls = match mode.as_deref() {
        None | Some("disable") => {
            if let Some(r) = &root {
                anyhow::bail!("sslrootcert={r} without sslmode=verify-full");
            }
            config.ssl_mode(postgres::config::SslMode::Disable);
            None
        }
        Some("verify-full" | "require") => {
            // sslrootcert: exactly that bundle; else the agent's system
            // trust (web roots, SSL_CERT_FILE or the distribution bundle).
            let trust = match &root {
                Some(p) => speediso_proto::tls::Trust::Pinned(
                    std::fs::read(p).with_context(|| format!("reading sslrootcert {p}"))?,
                ),
                None => speediso_proto::tls::Trust::System,
            };
            let tls = speediso_proto::tls::tls(&trust).with_context(|| {
                format!(
                    "CA certificates of {}",
                    root.as_deref().unwrap_or("the system")
                )
            })?;
            config.ssl_mode(postgres::config::SslMode::Require);
            Some(MakeRustlsConnect::new(std::sync::Arc::unwrap_or_clone(tls)))
        }
        Some(other) => anyhow::bail!(
            "sslmode={other} is not supported: use verify-full (TLS, certificate and host name \
             verified; sslrootcert=PATH for a private CA) or disable"
        ),
    };
    Ok((config, tls))
}

/// Whether `e` says the connection (not the statement) failed: no
/// server-side error at all (I/O, closed), or SQLSTATE class 08
/// (connection exception) or 57 (operator intervention: shutdown).
fn connection_lost(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<postgres::Error>())
        .any(|pe| {
            pe.is_closed()
                || match pe.code() {
                    Some(code) => code.code().starts_with("08") || code.code().starts_with("57"),
                    None => pe.as_db_error().is_none(),
                }
        })
}

impl PgStore {
    /// Connect and migrate; the connection must work now (a collector
    /// that cannot reach its database at start stops with the reason).
    pub fn connect(url: &str) -> Result<PgStore> {
        let (mut config, tls) = parse_url(url)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(5));
        }
        let mut s = PgStore {
            config,
            tls,
            conn: None,
            next_try: std::time::Instant::now(),
            delay: RECONNECT_FIRST,
        };
        let c = s.open().with_context(|| {
            format!(
                "connecting to PostgreSQL ({})",
                if s.tls.is_some() {
                    "TLS, certificate and host name verified"
                } else {
                    "no TLS: add sslmode=verify-full to the URL for TLS"
                }
            )
        })?;
        s.conn = Some(c);
        s.migrate().context("migrating the PostgreSQL schema")?;
        Ok(s)
    }

    fn open(&self) -> Result<Conn> {
        let client = match &self.tls {
            Some(tls) => self.config.connect(tls.clone())?,
            None => self.config.connect(NoTls)?,
        };
        Ok(Conn {
            client,
            stmts: Stmts::new(),
        })
    }

    /// The open connection, reopened when lost (not before the backoff
    /// allows); `Unavailable` otherwise.
    fn conn(&mut self) -> Result<&mut Conn> {
        if self.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            self.conn = None;
        }
        if self.conn.is_none() {
            let now = std::time::Instant::now();
            if now < self.next_try {
                return Err(anyhow::anyhow!(
                    "reconnecting in {} ms",
                    (self.next_try - now).as_millis()
                )
                .context(super::store::Unavailable));
            }
            match self.open() {
                Ok(c) => {
                    tracing::warn!("reconnected to PostgreSQL");
                    self.delay = RECONNECT_FIRST;
                    self.conn = Some(c);
                }
                Err(e) => {
                    self.next_try = now + self.delay;
                    self.delay = (self.delay * 2).min(RECONNECT_MAX);
                    return Err(e
                        .context("reconnecting to PostgreSQL")
                        .context(super::store::Unavailable));
                }
            }
        }
        Ok(self.conn.as_mut().expect("just opened"))
    }

    /// Run `f` on the connection. When the connection turns out lost (a
    /// server restart breaks every idle one), `f` runs once more on a new
    /// one (safe for a batch too: a commit whose answer was lost shows up
    /// as duplicates); failing again, `Unavailable`.
    fn call<T>(&mut self, mut f: impl FnMut(&mut Conn) -> Result<T>) -> Result<T> {
        let mut retried = false;
        loop {
            let r = f(self.conn()?);
            let lost = matches!(&r, Err(e) if connection_lost(e))
                || self.conn.as_ref().is_some_and(|c| c.client.is_closed());
            match r {
                Err(e) if lost => {
                    tracing::warn!("lost the PostgreSQL connection: {e:#}");
                    self.conn = None;
                    if retried {
                        return Err(e.context(super::store::Unavailable));
                    }
                    retried = true;
                    self.next_try = std::time::Instant::now();
                }
                r => return r,
            }
        }
    }

    pub fn migrate(&mut self) -> Result<i64> {
        self.call(|c| c.migrate())
    }
}

impl Conn {
    pub fn migrate(&mut self) -> Result<i64> {
        let mut tx = self.client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT PRIMARY KEY, applied TEXT NOT NULL)",
        )?;
        let mut current: i64 = tx
            .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])?
            .get(0);
        for (v, text) in MIGRATIONS {
            if *v <= current {
                continue;
            }
            tx.batch_execute(text)
                .with_context(|| format!("migration {v}"))?;
            tx.execute(
                "INSERT INTO schema_version (version, applied) VALUES ($1, $2)",
                &[v, &speediso_proto::events::rfc3339_now()],
            )?;
            current = *v;
        }
        tx.commit()?;
        Ok(current)
    }
}

/// `store::insert_batch`'s operations on PostgreSQL, inside the caller's
/// transaction, with the connection's prepared statements.
struct Tx<'a, 'b>(&'a mut postgres::Transaction<'b>, &'a mut Stmts);

impl Tx<'_, '_> {
    /// `sql`, prepared on this connection the first time.
    fn prep(&mut self, sql: &'static str) -> Result<postgres::Statement> {
        if let Some(s) = self.1.get(sql) {
            return Ok(s.clone());
        }
        let s = self.0.prepare(sql)?;
        self.1.insert(sql, s.clone());
        Ok(s)
    }
}

impl BatchTx for Tx<'_, '_> {
    fn exec(&mut self, sql: &str) -> Result<()> {
        self.0.batch_execute(sql)?;
        Ok(())
    }

    fn claim_run(&mut self, run_id: &str, host_key: &str, token_id: &str, ts: &str) -> Result<()> {
        let s = self.prep(sql::CLAIM_RUN)?;
        self.0.execute(&s, &[&run_id, &host_key, &token_id, &ts])?;
        Ok(())
    }

    fn run_owner(&mut self, run_id: &str) -> Result<(String, Option<String>)> {
        let s = self.prep(sql::RUN_OWNER)?;
        let r = self.0.query_one(&s, &[&run_id])?;
        Ok((r.get(0), r.get(1)))
    }

    fn set_run_token(&mut self, run_id: &str, token_id: &str) -> Result<()> {
        let s = self.prep(sql::SET_RUN_TOKEN)?;
        self.0.execute(&s, &[&token_id, &run_id])?;
        Ok(())
    }

    fn insert_event(&mut self, e: &Incoming) -> Result<bool> {
        let s = self.prep(sql::INSERT_EVENT)?;
        let n = self.0.execute(
            &s,
            &[&e.run_id, &(e.seq as i64), &e.ts, &e.kind, &e.step, &e.line],
        )?;
        Ok(n > 0)
    }

    fn insert_events(&mut self, events: &[Incoming]) -> Result<Vec<bool>> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let s = self.prep(INSERT_EVENTS)?;
        let run_ids: Vec<&str> = events.iter().map(|e| e.run_id.as_str()).collect();
        let seqs: Vec<i64> = events.iter().map(|e| e.seq as i64).collect();
        let ts: Vec<&str> = events.iter().map(|e| e.ts.as_str()).collect();
        let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
        let steps: Vec<Option<&str>> = events.iter().map(|e| e.step.as_deref()).collect();
        let bodies: Vec<&str> = events.iter().map(|e| e.line.as_str()).collect();
        let rows = self
            .0
            .query(&s, &[&run_ids, &seqs, &ts, &kinds, &steps, &bodies])?;
        let mut new: std::collections::HashSet<(String, i64)> =
            rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        // A key twice in the batch: only its first line was inserted.
        Ok(events
            .iter()
            .map(|e| new.remove(&(e.run_id.clone(), e.seq as i64)))
            .collect())
    }

    fn event_body(&mut self, run_id: &str, seq: i64) -> Result<Option<String>> {
        let s = self.prep(sql::SELECT_EVENT_BODY)?;
        Ok(self.0.query_opt(&s, &[&run_id, &seq])?.map(|r| r.get(0)))
    }

    fn event_bodies(&mut self, keys: &[(&str, i64)]) -> Result<Vec<Option<String>>> {
        let s = self.prep(SELECT_EVENT_BODIES)?;
        let run_ids: Vec<&str> = keys.iter().map(|k| k.0).collect();
        let seqs: Vec<i64> = keys.iter().map(|k| k.1).collect();
        let rows = self.0.query(&s, &[&run_ids, &seqs])?;
        anyhow::ensure!(rows.len() == keys.len(), "one body per key");
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn apply(&mut self, d: &Derived<'_>) -> Result<()> {
        for (run_id, seq, step, data) in &d.results {
            let s = self.prep(sql::INSERT_RESULT)?;
            self.0.execute(&s, &[run_id, seq, step, data])?;
        }
        for (id, run_id, seq, ord, step, body) in &d.certs {
            let s = self.prep(sql::INSERT_CERT)?;
            self.0.execute(&s, &[id, run_id, seq, ord, step, body])?;
        }
        if !d.hosts.is_empty() {
            // All hosts in one statement (keys distinct, in key order).
            let hosts = d.hosts.values();
            let keys: Vec<&str> = d.hosts.keys().map(String::as_str).collect();
            let serials: Vec<Option<&str>> =
                hosts.clone().map(|e| e.host.serial.as_deref()).collect();
            let uuids: Vec<Option<&str>> = hosts.clone().map(|e| e.host.uuid.as_deref()).collect();
            let macs: Vec<Option<&str>> =
                hosts.clone().map(|e| e.host.boot_mac.as_deref()).collect();
            let names: Vec<Option<&str>> =
                hosts.clone().map(|e| e.host.hostname.as_deref()).collect();
            let ts: Vec<&str> = hosts.map(|e| e.ts.as_str()).collect();
            let s = self.prep(UPSERT_HOSTS)?;
            self.0
                .execute(&s, &[&keys, &serials, &uuids, &macs, &names, &ts])?;
        }
        for (key, m) in &d.cpu_models {
            let s = self.prep(sql::SET_CPU)?;
            self.0.execute(&s, &[m, key])?;
        }
        for (key, serial) in &d.disks {
            let s = self.prep(sql::INSERT_HOST_DISK)?;
            self.0.execute(&s, &[serial, key])?;
        }
        if !d.runs.is_empty() {
            // All runs' counters in one statement (as `hosts`).
            let runs = d.runs.values();
            let ids: Vec<&str> = d.runs.keys().copied().collect();
            let hosts: Vec<&str> = runs.clone().map(|r| r.host_key.as_str()).collect();
            let tasks: Vec<Option<&str>> = runs.clone().map(|r| r.task.as_deref()).collect();
            let first: Vec<&str> = runs.clone().map(|r| r.first_ts.as_str()).collect();
            let events: Vec<i64> = runs.clone().map(|r| r.events).collect();
            let last: Vec<i64> = runs.map(|r| r.last_seq).collect();
            let s = self.prep(UPSERT_RUNS)?;
            self.0
                .execute(&s, &[&ids, &hosts, &tasks, &first, &events, &last])?;
        }
        for (run_id, r) in &d.runs {
            if let Some(started) = &r.started {
                let s = self.prep(sql::SET_STARTED)?;
                self.0.execute(&s, &[started, run_id])?;
            }
            if let Some((ts, outcome, status, dur, err)) = &r.finished {
                let s = self.prep(sql::SET_FINISHED)?;
                self.0
                    .execute(&s, &[ts, outcome, status, dur, err, run_id])?;
            }
        }
        // After the runs exist.
        for (run_id, v, reasons) in &d.verdicts {
            let s = self.prep(sql::SET_VERDICT)?;
            self.0.execute(&s, &[v, reasons, run_id])?;
        }
        let hosts = d.run_hosts();
        if !hosts.is_empty() {
            let s = self.prep(REFRESH_HOSTS_LAST_RUN)?;
            self.0.execute(&s, &[&hosts])?;
        }
        Ok(())
    }
}

fn host_row(r: &Row) -> HostRow {
    HostRow {
        host_key: r.get(0),
        serial: r.get(1),
        uuid: r.get(2),
        boot_mac: r.get(3),
        hostname: r.get(4),
        cpu_model: r.get(5),
        first_seen: r.get(6),
        last_seen: r.get(7),
        runs: r.get(8),
    }
}

fn run_row(r: &Row) -> RunRow {
    RunRow {
        run_id: r.get(0),
        host_key: r.get(1),
        task: r.get(2),
        started: r.get(3),
        finished: r.get(4),
        outcome: r.get(5),
        exit_status: r.get(6),
        duration_ms: r.get(7),
        error: r.get(8),
        events: r.get(9),
        last_seq: r.get(10),
        first_ts: r.get(11),
    }
}

/// The group's runs claimed in one statement: (run_id, host_key,
/// token_id, first_ts) of each run's first event in the group, in run_id
/// order (two collectors claiming the same runs lock them in one order).
const CLAIM_RUNS: &str = "INSERT INTO runs (run_id, host_key, token_id, first_ts, events, last_seq) \
    SELECT r, h, t, ts, 0, -1 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS c(r, h, t, ts) \
    ORDER BY r ON CONFLICT (run_id) DO NOTHING";

/// The owners of the group's runs, and their highest stored `seq`.
const RUN_OWNERS: &str =
    "SELECT run_id, host_key, token_id, last_seq FROM runs WHERE run_id = ANY($1::text[])";

/// `INSERT_EVENTS` for events known to be new: no `ON CONFLICT` (its
/// speculative insertion costs about a third of the insert) and no
/// `RETURNING`. A key stored after all fails the statement (23505), and
/// the group is stored again batch by batch.
const INSERT_NEW_EVENTS: &str = "INSERT INTO events (run_id, seq, ts, type, step, body) \
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[])";

/// Whether `e` is PostgreSQL's unique_violation.
fn unique_violation(e: &postgres::Error) -> bool {
    e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION)
}

impl Conn {
    /// A group of batches in one transaction. First the group path
    /// (`group_fast`): a few statements for the whole group; when it meets
    /// anything but plain new events and exact replays (a refusal, a key
    /// stored meanwhile), it rolls back and the group is stored batch by
    /// batch (`insert_group_per_batch`), each batch in its savepoint, as
    /// before: the outcome is the same either way.
    fn insert_group(&mut self, batches: &[&[Incoming]]) -> Result<Vec<BatchOutcome>> {
        if let Some(out) = self.group_fast(batches)? {
            return Ok(out);
        }
        self.insert_group_per_batch(batches)
    }

    /// The group path; `None` (rolled back) where the batch-by-batch path
    /// must decide. Statements per group, however many batches: claim the
    /// runs, read their owners and `last_seq`, insert every event of the
    /// batches that are wholly new (each `seq` above its run's `last_seq`,
    /// no key in an earlier batch of the group) in one statement, then the
    /// derived rows of those batches merged (one upsert per run and host,
    /// not per batch). The other batches (replays) go through
    /// `store::insert_batch` after them, in their group order.
    fn group_fast(&mut self, batches: &[&[Incoming]]) -> Result<Option<Vec<BatchOutcome>>> {
        use std::collections::HashMap;
        let mut tx = self.client.transaction()?;
        let stmts = &mut self.stmts;
        // Each run's first event in the group: the claim.
        // Each run's first event in the group (its claim), by run index;
        // a batch's events mostly share one run: one lookup per change.
        let mut index: HashMap<&str, usize> = HashMap::new();
        let mut first: Vec<&Incoming> = Vec::new();
        let mut last = None;
        for e in batches.iter().flat_map(|b| b.iter()) {
            if last != Some(e.run_id.as_str()) {
                index.entry(&e.run_id).or_insert_with(|| {
                    first.push(e);
                    first.len() - 1
                });
                last = Some(e.run_id.as_str());
            }
        }
        let runs: Vec<&str> = first.iter().map(|e| e.run_id.as_str()).collect();
        let hosts: Vec<&str> = first.iter().map(|e| e.host_key.as_str()).collect();
        let tokens: Vec<&str> = first.iter().map(|e| e.token_id.as_str()).collect();
        let ts: Vec<&str> = first.iter().map(|e| e.ts.as_str()).collect();
        let s = Tx(&mut tx, stmts).prep(CLAIM_RUNS)?;
        tx.execute(&s, &[&runs, &hosts, &tokens, &ts])?;
        let s = Tx(&mut tx, stmts).prep(RUN_OWNERS)?;
        // (host_key, token_id, the highest seq stored or in the group so
        // far, replayed in the group) of each run.
        let mut owners: Vec<Option<(String, String, i64, bool)>> = vec![None; first.len()];
        for r in tx.query(&s, &[&runs])? {
            let run: &str = r.get(0);
            let Some(&i) = index.get(run) else { continue };
            let token = match r.get::<_, Option<String>>(2) {
                Some(t) => t,
                None => {
                    // A run from before tokens were recorded: the first
                    // token to add to it owns it (as `insert_batch` does).
                    let t = &first[i].token_id;
                    Tx(&mut tx, stmts).set_run_token(run, t)?;
                    t.clone()
                }
            };
            owners[i] = Some((r.get(1), token, r.get(3), false));
        }
        // Wholly new: each seq above its run's stored `last_seq` and above
        // the run's earlier events in the group (so every key is new and
        // once), and no event of the run in an earlier replay batch (stored
        // after the new ones: derived rows must not depend on the order).
        // Another host's or token's run: the batch-by-batch path refuses
        // exactly that batch.
        let mut fresh = vec![false; batches.len()];
        for (f, b) in fresh.iter_mut().zip(batches) {
            let mut ok = true;
            let (mut cur, mut cur_id) = (0, None);
            for e in b.iter() {
                if cur_id != Some(e.run_id.as_str()) {
                    cur = index[e.run_id.as_str()];
                    cur_id = Some(e.run_id.as_str());
                }
                let Some((host, token, high, replayed)) = &mut owners[cur] else {
                    return Ok(None);
                };
                if *host != e.host_key || *token != e.token_id {
                    return Ok(None);
                }
                if *replayed || e.seq as i64 <= *high {
                    ok = false;
                } else {
                    *high = e.seq as i64;
                }
            }
            if !ok {
                for e in b.iter() {
                    if let Some(o) = &mut owners[index[e.run_id.as_str()]] {
                        o.3 = true;
                    }
                }
            }
            *f = ok;
        }
        let new: Vec<&Incoming> = batches
            .iter()
            .zip(&fresh)
            .filter(|(_, f)| **f)
            .flat_map(|(b, _)| b.iter())
            .collect();
        if !new.is_empty() {
            let run_ids: Vec<&str> = new.iter().map(|e| e.run_id.as_str()).collect();
            let seqs: Vec<i64> = new.iter().map(|e| e.seq as i64).collect();
            let ts: Vec<&str> = new.iter().map(|e| e.ts.as_str()).collect();
            let kinds: Vec<&str> = new.iter().map(|e| e.kind.as_str()).collect();
            let steps: Vec<Option<&str>> = new.iter().map(|e| e.step.as_deref()).collect();
            let bodies: Vec<&str> = new.iter().map(|e| e.line.as_str()).collect();
            let s = Tx(&mut tx, stmts).prep(INSERT_NEW_EVENTS)?;
            match tx.execute(&s, &[&run_ids, &seqs, &ts, &kinds, &steps, &bodies]) {
                Ok(n) => anyhow::ensure!(n as usize == new.len(), "one row per new event"),
                Err(e) if unique_violation(&e) => return Ok(None),
                Err(e) => return Err(e.into()),
            }
            // The derived rows of the new batches, merged in group order.
            let mut layers: Vec<Derived<'_>> = Vec::new();
            for (b, _) in batches.iter().zip(&fresh).filter(|(_, f)| **f) {
                let mut d = Derived::default();
                for e in b.iter() {
                    d.add(e);
                }
                match layers.last_mut() {
                    Some(last) => {
                        if let Some(d) = last.absorb(d) {
                            layers.push(d);
                        }
                    }
                    None => layers.push(d),
                }
            }
            for d in &layers {
                Tx(&mut tx, stmts).apply(d)?;
            }
        }
        let mut out = Vec::with_capacity(batches.len());
        for (b, f) in batches.iter().zip(&fresh) {
            if *f {
                out.push(Ok(super::store::Stats {
                    received: b.len(),
                    stored: b.len(),
                    duplicates: 0,
                }));
                continue;
            }
            let r = super::store::insert_batch(&mut Tx(&mut tx, stmts), b)?;
            if r.is_err() {
                return Ok(None);
            }
            out.push(r);
        }
        tx.commit()?;
        Ok(Some(out))
    }

    /// Each batch in its own savepoint, in group order, one transaction.
    fn insert_group_per_batch(&mut self, batches: &[&[Incoming]]) -> Result<Vec<BatchOutcome>> {
        let mut tx = self.client.transaction()?;
        let mut all = Vec::with_capacity(batches.len());
        for b in batches {
            all.push(super::store::insert_batch(
                &mut Tx(&mut tx, &mut self.stmts),
                b,
            )?);
        }
        tx.commit()?;
        Ok(all)
    }

    /// Every row of `sql` with `params`, mapped by `f` (`.pop()` of it: the
    /// one row of a lookup by key).
    fn rows<T>(
        &mut self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        f: impl Fn(&Row) -> T,
    ) -> Result<Vec<T>> {
        Ok(self.client.query(sql, params)?.iter().map(f).collect())
    }

    fn hosts(&mut self, limit: usize, offset: usize) -> Result<Vec<HostRow>> {
        self.rows(
            sql::SELECT_HOSTS,
            &[&(limit as i64), &(offset as i64)],
            host_row,
        )
    }

    fn host(&mut self, key: &str) -> Result<Option<HostRow>> {
        Ok(self.rows(sql::SELECT_HOST, &[&key], host_row)?.pop())
    }

    fn host_count(&mut self) -> Result<i64> {
        Ok(self.client.query_one(sql::COUNT_HOSTS, &[])?.get(0))
    }

    fn runs(&mut self, f: RunFilter<'_>) -> Result<Vec<RunRow>> {
        self.rows(
            sql::runs(f.host.is_some()),
            &[&f.host, &f.task, &(f.limit as i64)],
            run_row,
        )
    }

    fn run(&mut self, run_id: &str) -> Result<Option<RunRow>> {
        Ok(self.rows(sql::SELECT_RUN, &[&run_id], run_row)?.pop())
    }

    fn events(&mut self, run_id: &str) -> Result<Vec<Value>> {
        parse_events(&self.rows(sql::SELECT_EVENTS, &[&run_id], |r| r.get(0))?)
    }

    fn events_page(&mut self, run_id: &str, p: PageQuery) -> Result<Vec<Value>> {
        let q = sql::events_page(p.with_progress);
        parse_events(&self.rows(q, &[&run_id, &p.after_seq, &(p.limit as i64)], |r| r.get(0))?)
    }

    fn events_tail(&mut self, run_id: &str, limit: usize) -> Result<Vec<Value>> {
        let q = sql::SELECT_EVENTS_TAIL;
        let mut out = parse_events(&self.rows(q, &[&run_id, &(limit as i64)], |r| r.get(0))?)?;
        out.reverse();
        Ok(out)
    }

    fn progress_spans(&mut self, run_id: &str, after: i64, upto: i64) -> Result<Vec<ProgressSpan>> {
        let q = sql::SELECT_PROGRESS_SPANS;
        self.rows(q, &[&run_id, &after, &upto], |r| {
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))
        })?
        .into_iter()
        .map(ProgressSpan::from_row)
        .collect()
    }

    fn results(&mut self, run_id: &str) -> Result<Vec<ResultRow>> {
        self.rows(sql::SELECT_RESULTS, &[&run_id], |r| {
            (r.get(0), r.get(1), r.get(2))
        })?
        .into_iter()
        .map(ResultRow::from_row)
        .collect()
    }

    fn certificate_ids(&mut self, run_id: &str) -> Result<Vec<String>> {
        self.rows(sql::SELECT_CERT_IDS, &[&run_id], |r| r.get(0))
    }

    fn certificate(&mut self, id: &str) -> Result<Option<(String, Value)>> {
        match self.client.query_opt(sql::SELECT_CERT, &[&id])? {
            Some(r) => Ok(Some((r.get(0), serde_json::from_str(r.get::<_, &str>(1))?))),
            None => Ok(None),
        }
    }

    fn bench_results(&mut self, host_key: &str) -> Result<Vec<(Option<String>, String)>> {
        self.rows(sql::SELECT_BENCH, &[&host_key], |r| (r.get(0), r.get(1)))
    }

    fn sibling_bench_results(&mut self, cpu_model: &str, except: &str) -> Result<Vec<BenchRow>> {
        self.rows(sql::SELECT_SIBLING_BENCH, &[&cpu_model, &except], |r| {
            (r.get(0), r.get(1), r.get(2))
        })
    }

    fn runs_bench_results(&mut self, f: RunFilter<'_>) -> Result<Vec<BenchRow>> {
        self.rows(
            sql::runs_bench(f.host.is_some()),
            &[&f.host, &f.task, &(f.limit as i64)],
            |r| (r.get(0), r.get(1), r.get(2)),
        )
    }

    fn siblings(&mut self, cpu_model: &str, except: &str) -> Result<Vec<String>> {
        self.rows(sql::SELECT_SIBLINGS, &[&cpu_model, &except], |r| r.get(0))
    }

    fn board(&mut self, f: &BoardFilter) -> Result<Vec<BoardRow>> {
        self.rows(
            sql::SELECT_BOARD,
            &[
                &f.task,
                &f.outcome,
                &f.verdict,
                &f.from,
                &f.to,
                &f.search,
                &(f.limit as i64),
                &(f.offset as i64),
            ],
            |r| BoardRow {
                host_key: r.get(0),
                serial: r.get(1),
                boot_mac: r.get(2),
                hostname: r.get(3),
                cpu_model: r.get(4),
                last_seen: r.get(5),
                run_id: r.get(6),
                task: r.get(7),
                outcome: r.get(8),
                verdict: r.get(9),
                reasons: r.get(10),
                run_ts: r.get(11),
            },
        )
    }

    fn last_result(&mut self, host_key: &str, step: &str) -> Result<Option<String>> {
        Ok(self
            .rows(sql::SELECT_LAST_RESULT, &[&host_key, &step], |r| r.get(0))?
            .pop())
    }

    fn progress_sample(&mut self, run_id: &str, stride: i64, limit: usize) -> Result<Vec<Value>> {
        let bodies: Vec<String> = self.rows(
            sql::SELECT_PROGRESS_SAMPLE,
            &[&run_id, &stride.max(1), &(limit as i64)],
            |r| r.get(0),
        )?;
        parse_events(&bodies)
    }

    fn ping(&mut self) -> Result<()> {
        self.client.query_one("SELECT 1", &[])?;
        Ok(())
    }
}

impl Store for PgStore {
    fn insert_group(&mut self, batches: &[&[Incoming]]) -> Result<Vec<BatchOutcome>> {
        self.call(|c| c.insert_group(batches))
    }

    fn hosts(&mut self, limit: usize, offset: usize) -> Result<Vec<HostRow>> {
        self.call(|c| c.hosts(limit, offset))
    }

    fn host(&mut self, key: &str) -> Result<Option<HostRow>> {
        self.call(|c| c.host(key))
    }

    fn host_count(&mut self) -> Result<i64> {
        self.call(|c| c.host_count())
    }

    fn runs(&mut self, filter: RunFilter<'_>) -> Result<Vec<RunRow>> {
        self.call(|c| c.runs(filter))
    }

    fn run(&mut self, run_id: &str) -> Result<Option<RunRow>> {
        self.call(|c| c.run(run_id))
    }

    fn events(&mut self, run_id: &str) -> Result<Vec<Value>> {
        self.call(|c| c.events(run_id))
    }

    fn events_page(&mut self, run_id: &str, page: PageQuery) -> Result<Vec<Value>> {
        self.call(|c| c.events_page(run_id, page))
    }

    fn events_tail(&mut self, run_id: &str, limit: usize) -> Result<Vec<Value>> {
        self.call(|c| c.events_tail(run_id, limit))
    }

    fn progress_spans(&mut self, run_id: &str, after: i64, upto: i64) -> Result<Vec<ProgressSpan>> {
        self.call(|c| c.progress_spans(run_id, after, upto))
    }

    fn results(&mut self, run_id: &str) -> Result<Vec<ResultRow>> {
        self.call(|c| c.results(run_id))
    }

    fn certificate_ids(&mut self, run_id: &str) -> Result<Vec<String>> {
        self.call(|c| c.certificate_ids(run_id))
    }

    fn certificate(&mut self, id: &str) -> Result<Option<(String, Value)>> {
        self.call(|c| c.certificate(id))
    }

    fn bench_results(&mut self, host_key: &str) -> Result<Vec<(Option<String>, String)>> {
        self.call(|c| c.bench_results(host_key))
    }

    fn sibling_bench_results(&mut self, cpu_model: &str, except: &str) -> Result<Vec<BenchRow>> {
        self.call(|c| c.sibling_bench_results(cpu_model, except))
    }

    fn runs_bench_results(&mut self, filter: RunFilter<'_>) -> Result<Vec<BenchRow>> {
        self.call(|c| c.runs_bench_results(filter))
    }

    fn siblings(&mut self, cpu_model: &str, except: &str) -> Result<Vec<String>> {
        self.call(|c| c.siblings(cpu_model, except))
    }

    fn board(&mut self, filter: &BoardFilter) -> Result<Vec<BoardRow>> {
        self.call(|c| c.board(filter))
    }

    fn last_result(&mut self, host_key: &str, step: &str) -> Result<Option<String>> {
        self.call(|c| c.last_result(host_key, step))
    }

    fn progress_sample(&mut self, run_id: &str, stride: i64, limit: usize) -> Result<Vec<Value>> {
        self.call(|c| c.progress_sample(run_id, stride, limit))
    }

    fn ping(&mut self) -> Result<()> {
        self.call(|c| c.ping())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_settings_from_the_url() {
        let host = "postgresql://u@db.example:5433/speediso";
        let (c, tls) = parse_url(host).unwrap();
        assert!(tls.is_none());
        assert_eq!(c.get_ssl_mode(), postgres::config::SslMode::Disable);
        assert_eq!(c.get_ports(), &[5433]);
        let (c, tls) =
            parse_url(&format!("{host}?sslmode=verify-full&application_name=x")).unwrap();
        assert!(tls.is_some(), "system roots");
        assert_eq!(c.get_ssl_mode(), postgres::config::SslMode::Require);
        assert_eq!(c.get_application_name(), Some("x"), "other parameters kept");
        for (q, why) in [
            ("sslmode=prefer", "sslmode=prefer is not supported"),
            ("sslmode=verify-ca", "sslmode=verify-ca is not supported"),
            ("sslrootcert=/x.pem", "without sslmode=verify-full"),
            (
                "sslmode=verify-full&sslrootcert=/nonexistent.pem",
                "reading sslrootcert /nonexistent.pem",
            ),
        ] {
            let e = format!("{:#}", parse_url(&format!("{host}?{q}")).err().unwrap());
            assert!(e.contains(why), "{q}: {e}");
        }
    }
}
