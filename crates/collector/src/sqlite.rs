//! The SQLite store (the default: one file, nothing to install). WAL so
//! readers never block the writer; synchronous=FULL so a batch is on disk
//! before it is acknowledged.

use super::ingest::Incoming;
use super::store::{
    parse_events, sql, BatchOutcome, BatchTx, BenchRow, BoardFilter, BoardRow, Derived, HostRow,
    PageQuery, ProgressSpan, ResultRow, RunFilter, RunRow, Store,
};
use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;
use std::path::Path;

/// Schema migrations, applied in order; `schema_version` records each.
pub const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../migrations/sqlite/0002_run_token.sql")),
    (3, include_str!("../migrations/sqlite/0003_event_pages.sql")),
    (4, include_str!("../migrations/sqlite/0004_board.sql")),
    (
        5,
        include_str!("../migrations/sqlite/0005_agent_tokens.sql"),
    ),
];

pub struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<SqliteStore> {
        let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        migrate(&conn).with_context(|| format!("migrating {}", path.display()))?;
        Ok(SqliteStore { conn })
    }

    pub fn in_memory() -> Result<SqliteStore> {
        let conn = Connection::open_in_memory()?;
        migrate(&conn)?;
        Ok(SqliteStore { conn })
    }

    /// Every row of the (cached) statement `sql` with `params`, mapped by `f`
    /// (`.pop()` of it: the one row of a lookup by key).
    fn rows<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        f: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let mut s = self.conn.prepare_cached(sql)?;
        let rows = s.query_map(params, f)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

pub fn migrate(conn: &Connection) -> Result<i64> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied TEXT NOT NULL)",
    )?;
    let mut current: i64 = conn.query_row(
        "SELECT coalesce(max(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )?;
    for (v, text) in MIGRATIONS {
        if *v <= current {
            continue;
        }
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(text)
            .with_context(|| format!("migration {v}"))?;
        tx.execute(
            "INSERT INTO schema_version (version, applied) VALUES (?1, ?2)",
            params![v, speediso_proto::events::rfc3339_now()],
        )?;
        tx.commit()?;
        current = *v;
    }
    Ok(current)
}

/// `store::insert_batch`'s operations on SQLite, inside the caller's
/// transaction.
struct Tx<'a>(&'a Connection);

impl BatchTx for Tx<'_> {
    fn exec(&mut self, sql: &str) -> Result<()> {
        self.0.execute_batch(sql)?;
        Ok(())
    }

    fn claim_run(&mut self, run_id: &str, host_key: &str, token_id: &str, ts: &str) -> Result<()> {
        self.0
            .prepare_cached(sql::CLAIM_RUN)?
            .execute(params![run_id, host_key, token_id, ts])?;
        Ok(())
    }

    fn run_owner(&mut self, run_id: &str) -> Result<(String, Option<String>)> {
        Ok(self
            .0
            .prepare_cached(sql::RUN_OWNER)?
            .query_row([run_id], |r| Ok((r.get(0)?, r.get(1)?)))?)
    }

    fn set_run_token(&mut self, run_id: &str, token_id: &str) -> Result<()> {
        self.0
            .prepare_cached(sql::SET_RUN_TOKEN)?
            .execute(params![token_id, run_id])?;
        Ok(())
    }

    fn insert_event(&mut self, e: &Incoming) -> Result<bool> {
        let n = self.0.prepare_cached(sql::INSERT_EVENT)?.execute(params![
            e.run_id,
            e.seq as i64,
            e.ts,
            e.kind,
            e.step,
            e.line
        ])?;
        Ok(n > 0)
    }

    fn event_body(&mut self, run_id: &str, seq: i64) -> Result<Option<String>> {
        Ok(self
            .0
            .prepare_cached(sql::SELECT_EVENT_BODY)?
            .query_row(params![run_id, seq], |r| r.get(0))
            .optional()?)
    }

    fn apply(&mut self, d: &Derived<'_>) -> Result<()> {
        let tx = self.0;
        for (run_id, seq, step, data) in &d.results {
            tx.prepare_cached(sql::INSERT_RESULT)?
                .execute(params![run_id, seq, step, data])?;
        }
        for (id, run_id, seq, ord, step, body) in &d.certs {
            tx.prepare_cached(sql::INSERT_CERT)?
                .execute(params![id, run_id, seq, ord, step, body])?;
        }
        for (key, e) in &d.hosts {
            tx.prepare_cached(sql::UPSERT_HOST)?.execute(params![
                key,
                e.host.serial,
                e.host.uuid,
                e.host.boot_mac,
                e.host.hostname,
                e.ts
            ])?;
        }
        for (key, m) in &d.cpu_models {
            tx.prepare_cached(sql::SET_CPU)?.execute(params![m, key])?;
        }
        for (key, serial) in &d.disks {
            tx.prepare_cached(sql::INSERT_HOST_DISK)?
                .execute(params![serial, key])?;
        }
        for (run_id, r) in &d.runs {
            tx.prepare_cached(sql::UPSERT_RUN)?.execute(params![
                run_id, r.host_key, r.task, r.first_ts, r.events, r.last_seq
            ])?;
            if let Some(s) = &r.started {
                tx.prepare_cached(sql::SET_STARTED)?
                    .execute(params![s, run_id])?;
            }
            if let Some((ts, outcome, status, dur, err)) = &r.finished {
                tx.prepare_cached(sql::SET_FINISHED)?
                    .execute(params![ts, outcome, status, dur, err, run_id])?;
            }
        }
        // After the runs exist.
        for (run_id, v, reasons) in &d.verdicts {
            tx.prepare_cached(sql::SET_VERDICT)?
                .execute(params![v, reasons, run_id])?;
        }
        for host in d.run_hosts() {
            tx.prepare_cached(sql::REFRESH_HOST_LAST_RUN)?
                .execute([host])?;
        }
        Ok(())
    }
}

fn host_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<HostRow> {
    Ok(HostRow {
        host_key: r.get(0)?,
        serial: r.get(1)?,
        uuid: r.get(2)?,
        boot_mac: r.get(3)?,
        hostname: r.get(4)?,
        cpu_model: r.get(5)?,
        first_seen: r.get(6)?,
        last_seen: r.get(7)?,
        runs: r.get(8)?,
    })
}

fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRow> {
    Ok(RunRow {
        run_id: r.get(0)?,
        host_key: r.get(1)?,
        task: r.get(2)?,
        started: r.get(3)?,
        finished: r.get(4)?,
        outcome: r.get(5)?,
        exit_status: r.get(6)?,
        duration_ms: r.get(7)?,
        error: r.get(8)?,
        events: r.get(9)?,
        last_seq: r.get(10)?,
        first_ts: r.get(11)?,
    })
}

impl Store for SqliteStore {
    fn insert_group(&mut self, batches: &[&[Incoming]]) -> Result<Vec<BatchOutcome>> {
        let tx = self.conn.transaction()?;
        let mut stats = Vec::with_capacity(batches.len());
        for b in batches {
            stats.push(super::store::insert_batch(&mut Tx(&tx), b)?);
        }
        tx.commit()?;
        Ok(stats)
    }

    fn hosts(&mut self, limit: usize, offset: usize) -> Result<Vec<HostRow>> {
        self.rows(
            sql::SELECT_HOSTS,
            params![limit as i64, offset as i64],
            host_row,
        )
    }

    fn host(&mut self, key: &str) -> Result<Option<HostRow>> {
        Ok(self.rows(sql::SELECT_HOST, [key], host_row)?.pop())
    }

    fn host_count(&mut self) -> Result<i64> {
        Ok(self.conn.query_row(sql::COUNT_HOSTS, [], |r| r.get(0))?)
    }

    fn runs(&mut self, f: RunFilter<'_>) -> Result<Vec<RunRow>> {
        self.rows(
            sql::runs(f.host.is_some()),
            params![f.host, f.task, f.limit as i64],
            run_row,
        )
    }

    fn run(&mut self, run_id: &str) -> Result<Option<RunRow>> {
        Ok(self.rows(sql::SELECT_RUN, [run_id], run_row)?.pop())
    }

    fn events(&mut self, run_id: &str) -> Result<Vec<Value>> {
        parse_events(&self.rows(sql::SELECT_EVENTS, [run_id], |r| r.get(0))?)
    }

    fn events_page(&mut self, run_id: &str, p: PageQuery) -> Result<Vec<Value>> {
        let q = sql::events_page(p.with_progress);
        parse_events(
            &self.rows(q, params![run_id, p.after_seq, p.limit as i64], |r| {
                r.get(0)
            })?,
        )
    }

    fn events_tail(&mut self, run_id: &str, limit: usize) -> Result<Vec<Value>> {
        let q = sql::SELECT_EVENTS_TAIL;
        let mut out = parse_events(&self.rows(q, params![run_id, limit as i64], |r| r.get(0))?)?;
        out.reverse();
        Ok(out)
    }

    fn progress_spans(&mut self, run_id: &str, after: i64, upto: i64) -> Result<Vec<ProgressSpan>> {
        let q = sql::SELECT_PROGRESS_SPANS;
        self.rows(q, params![run_id, after, upto], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .into_iter()
        .map(ProgressSpan::from_row)
        .collect()
    }

    fn results(&mut self, run_id: &str) -> Result<Vec<ResultRow>> {
        self.rows(sql::SELECT_RESULTS, [run_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .into_iter()
        .map(ResultRow::from_row)
        .collect()
    }

    fn certificate_ids(&mut self, run_id: &str) -> Result<Vec<String>> {
        self.rows(sql::SELECT_CERT_IDS, [run_id], |r| r.get(0))
    }

    fn certificate(&mut self, id: &str) -> Result<Option<(String, Value)>> {
        let row: Option<(String, String)> = self
            .rows(sql::SELECT_CERT, [id], |r| Ok((r.get(0)?, r.get(1)?)))?
            .pop();
        match row {
            Some((run, body)) => Ok(Some((run, serde_json::from_str(&body)?))),
            None => Ok(None),
        }
    }

    fn bench_results(&mut self, host_key: &str) -> Result<Vec<(Option<String>, String)>> {
        self.rows(sql::SELECT_BENCH, [host_key], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
    }

    fn sibling_bench_results(&mut self, cpu_model: &str, except: &str) -> Result<Vec<BenchRow>> {
        self.rows(sql::SELECT_SIBLING_BENCH, params![cpu_model, except], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
    }

    fn runs_bench_results(&mut self, f: RunFilter<'_>) -> Result<Vec<BenchRow>> {
        self.rows(
            sql::runs_bench(f.host.is_some()),
            params![f.host, f.task, f.limit as i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    fn siblings(&mut self, cpu_model: &str, except: &str) -> Result<Vec<String>> {
        self.rows(sql::SELECT_SIBLINGS, params![cpu_model, except], |r| {
            r.get(0)
        })
    }

    fn board(&mut self, f: &BoardFilter) -> Result<Vec<BoardRow>> {
        self.rows(
            sql::SELECT_BOARD,
            params![
                f.task,
                f.outcome,
                f.verdict,
                f.from,
                f.to,
                f.search,
                f.limit as i64,
                f.offset as i64
            ],
            |r| {
                Ok(BoardRow {
                    host_key: r.get(0)?,
                    serial: r.get(1)?,
                    boot_mac: r.get(2)?,
                    hostname: r.get(3)?,
                    cpu_model: r.get(4)?,
                    last_seen: r.get(5)?,
                    run_id: r.get(6)?,
                    task: r.get(7)?,
                    outcome: r.get(8)?,
                    verdict: r.get(9)?,
                    reasons: r.get(10)?,
                    run_ts: r.get(11)?,
                })
            },
        )
    }

    fn last_result(&mut self, host_key: &str, step: &str) -> Result<Option<String>> {
        Ok(self
            .rows(sql::SELECT_LAST_RESULT, params![host_key, step], |r| {
                r.get(0)
            })?
            .pop())
    }

    fn progress_sample(&mut self, run_id: &str, stride: i64, limit: usize) -> Result<Vec<Value>> {
        let q = sql::SELECT_PROGRESS_SAMPLE;
        parse_events(
            &self.rows(q, params![run_id, stride.max(1), limit as i64], |r| {
                r.get(0)
            })?,
        )
    }

    fn ping(&mut self) -> Result<()> {
        self.conn
            .query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_store() {
        let mut s = SqliteStore::in_memory().unwrap();
        crate::store::conformance::exercise(&mut s);
        assert_eq!(migrate(&s.conn).unwrap(), 5); // applies nothing twice
    }
}
