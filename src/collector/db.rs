//! The SQLite store: migrations from `migrations/`, one transaction per
//! group of batches (`INSERT OR IGNORE` on `(run_id, seq)`, so a replayed
//! event is acknowledged but stored once), and the read queries behind the
//! JSON API and the web pages.

use super::ingest::Incoming;
use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// Schema migrations, applied in order; the version table records each.
pub const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../../migrations/0001_init.sql"))];

/// Open (and migrate) the database at `path`.
pub fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
    // WAL: readers never block the writer; FULL: a commit is on disk before
    // the batch is acknowledged.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    migrate(&conn).with_context(|| format!("migrating {}", path.display()))?;
    Ok(conn)
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
    for (v, sql) in MIGRATIONS {
        if *v <= current {
            continue;
        }
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(sql)
            .with_context(|| format!("migration {v}"))?;
        tx.execute(
            "INSERT INTO schema_version (version, applied) VALUES (?1, ?2)",
            params![v, crate::events::rfc3339_now()],
        )?;
        tx.commit()?;
        current = *v;
    }
    Ok(current)
}

/// What happened to one batch.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Stats {
    pub received: usize,
    pub stored: usize,
    pub duplicates: usize,
}

/// Per-run facts gathered from the new events of a batch.
/// `run_finished`: (ts, outcome, exit status, duration ms, error).
type Finished = (String, String, Option<i64>, Option<i64>, Option<String>);

#[derive(Default)]
struct RunDelta {
    host_key: String,
    task: Option<String>,
    first_ts: String,
    started: Option<String>,
    finished: Option<Finished>,
    events: i64,
    last_seq: i64,
}

/// Store one batch inside the caller's transaction.
pub fn insert_batch(tx: &Connection, events: &[Incoming]) -> Result<Stats> {
    let mut st = Stats {
        received: events.len(),
        ..Stats::default()
    };
    let mut ins = tx.prepare_cached(
        "INSERT OR IGNORE INTO events (run_id, seq, ts, type, step, body) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut runs: BTreeMap<&str, RunDelta> = BTreeMap::new();
    let mut hosts: BTreeMap<String, &Incoming> = BTreeMap::new();
    let mut cpu_models: Vec<(String, String)> = Vec::new();
    for e in events {
        let n = ins.execute(params![
            e.run_id,
            e.seq as i64,
            e.ts,
            e.kind,
            e.step,
            e.line
        ])?;
        if n == 0 {
            st.duplicates += 1;
            continue;
        }
        st.stored += 1;
        let key = e.host.key();
        let d = runs.entry(&e.run_id).or_insert_with(|| RunDelta {
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
                    v["error"].as_str().map(str::to_string),
                ));
            }
            "dispatch_rejected" => {
                d.started.get_or_insert_with(|| e.ts.clone());
                d.finished = Some((
                    e.ts.clone(),
                    "rejected".into(),
                    None,
                    Some(0),
                    e.value["reason"].as_str().map(str::to_string),
                ));
            }
            "result" => {
                let data = &e.value["data"];
                tx.prepare_cached(
                    "INSERT OR IGNORE INTO results (run_id, seq, step, data) VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![e.run_id, e.seq as i64, e.step, data.to_string()])?;
                if let Some(certs) = data.get("certificates").and_then(Value::as_array) {
                    for (i, c) in certs.iter().enumerate() {
                        let id = c
                            .get("id")
                            .and_then(Value::as_str)
                            .filter(|s| super::cert::valid_id(s))
                            .map(str::to_string)
                            .unwrap_or_else(|| format!("{}-{}-{i}", e.run_id, e.seq));
                        tx.prepare_cached(
                            "INSERT OR IGNORE INTO certificates (id, run_id, seq, step, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                        )?
                        .execute(params![id, e.run_id, e.seq as i64, e.step, c.to_string()])?;
                    }
                }
                if let Some(m) = cpu_model(data) {
                    cpu_models.push((key.clone(), m));
                }
            }
            _ => {}
        }
        hosts.entry(key).or_insert(e);
    }
    drop(ins);
    for (key, e) in &hosts {
        tx.prepare_cached(
            "INSERT INTO hosts (host_key, serial, uuid, boot_mac, hostname, first_seen, last_seen)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
             ON CONFLICT (host_key) DO UPDATE SET
               serial = coalesce(excluded.serial, serial),
               uuid = coalesce(excluded.uuid, uuid),
               boot_mac = coalesce(excluded.boot_mac, boot_mac),
               hostname = coalesce(excluded.hostname, hostname),
               last_seen = max(last_seen, excluded.last_seen)",
        )?
        .execute(params![
            key,
            e.host.serial,
            e.host.uuid,
            e.host.boot_mac,
            e.host.hostname,
            e.ts
        ])?;
    }
    for (key, m) in cpu_models {
        tx.prepare_cached("UPDATE hosts SET cpu_model = ?2 WHERE host_key = ?1")?
            .execute(params![key, m])?;
    }
    for (run_id, d) in runs {
        tx.prepare_cached(
            "INSERT INTO runs (run_id, host_key, task, first_ts, events, last_seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (run_id) DO UPDATE SET
               task = coalesce(task, excluded.task),
               first_ts = min(first_ts, excluded.first_ts),
               events = events + excluded.events,
               last_seq = max(last_seq, excluded.last_seq)",
        )?
        .execute(params![
            run_id, d.host_key, d.task, d.first_ts, d.events, d.last_seq
        ])?;
        if let Some(s) = d.started {
            tx.prepare_cached("UPDATE runs SET started = ?2 WHERE run_id = ?1")?
                .execute(params![run_id, s])?;
        }
        if let Some((ts, outcome, status, dur, err)) = d.finished {
            tx.prepare_cached(
                "UPDATE runs SET finished = ?2, outcome = ?3, exit_status = ?4, duration_ms = ?5, error = ?6 WHERE run_id = ?1",
            )?
            .execute(params![run_id, ts, outcome, status, dur, err])?;
        }
    }
    Ok(st)
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
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
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

const RUN_COLS: &str = "run_id, host_key, task, started, finished, outcome, exit_status, duration_ms, error, events, last_seq, first_ts";

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

pub fn hosts(c: &Connection) -> Result<Vec<HostRow>> {
    let mut s = c.prepare_cached(
        "SELECT h.host_key, serial, uuid, boot_mac, hostname, cpu_model, first_seen, last_seen,
                (SELECT count(*) FROM runs r WHERE r.host_key = h.host_key)
         FROM hosts h ORDER BY last_seen DESC",
    )?;
    let rows = s.query_map([], |r| {
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
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn host(c: &Connection, key: &str) -> Result<Option<HostRow>> {
    Ok(hosts(c)?.into_iter().find(|h| h.host_key == key))
}

pub fn runs(
    c: &Connection,
    host: Option<&str>,
    task: Option<&str>,
    limit: usize,
) -> Result<Vec<RunRow>> {
    let sql = format!(
        "SELECT {RUN_COLS} FROM runs WHERE (?1 IS NULL OR host_key = ?1) AND (?2 IS NULL OR task = ?2)
         ORDER BY first_ts DESC LIMIT ?3"
    );
    let mut s = c.prepare_cached(&sql)?;
    let rows = s.query_map(params![host, task, limit as i64], run_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn run(c: &Connection, run_id: &str) -> Result<Option<RunRow>> {
    let sql = format!("SELECT {RUN_COLS} FROM runs WHERE run_id = ?1");
    Ok(c.query_row(&sql, [run_id], run_row).optional()?)
}

/// A run's events (parsed) in `seq` order.
pub fn events(c: &Connection, run_id: &str) -> Result<Vec<Value>> {
    let mut s = c.prepare_cached("SELECT body FROM events WHERE run_id = ?1 ORDER BY seq")?;
    let rows = s.query_map([run_id], |r| r.get::<_, String>(0))?;
    let mut out = Vec::new();
    for b in rows {
        out.push(serde_json::from_str(&b?)?);
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize)]
pub struct ResultRow {
    pub seq: i64,
    pub step: Option<String>,
    pub data: Value,
}

pub fn results(c: &Connection, run_id: &str) -> Result<Vec<ResultRow>> {
    let mut s =
        c.prepare_cached("SELECT seq, step, data FROM results WHERE run_id = ?1 ORDER BY seq")?;
    let rows = s.query_map([run_id], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, Option<String>>(1)?,
            r.get::<_, String>(2)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, step, data) = row?;
        out.push(ResultRow {
            seq,
            step,
            data: serde_json::from_str(&data)?,
        });
    }
    Ok(out)
}

/// Certificate ids of a run.
pub fn certificate_ids(c: &Connection, run_id: &str) -> Result<Vec<String>> {
    let mut s =
        c.prepare_cached("SELECT id FROM certificates WHERE run_id = ?1 ORDER BY seq, rowid")?;
    let rows = s.query_map([run_id], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn certificate(c: &Connection, id: &str) -> Result<Option<(String, Value)>> {
    let row: Option<(String, String)> = c
        .query_row(
            "SELECT run_id, body FROM certificates WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match row {
        Some((run, body)) => Ok(Some((run, serde_json::from_str(&body)?))),
        None => Ok(None),
    }
}

/// The latest figures of each bench step of a host: `step → figure → value`.
pub fn latest_figures(
    c: &Connection,
    host_key: &str,
) -> Result<BTreeMap<String, BTreeMap<String, f64>>> {
    let mut s = c.prepare_cached(
        "SELECT res.step, res.data FROM results res JOIN runs r ON r.run_id = res.run_id
         WHERE r.host_key = ?1 AND res.step LIKE 'bench%'
         ORDER BY r.first_ts, res.seq",
    )?;
    let rows = s.query_map([host_key], |r| {
        Ok((r.get::<_, Option<String>>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = BTreeMap::new();
    for row in rows {
        let (step, data) = row?;
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
}

pub fn compare(c: &Connection, host: &HostRow) -> Result<Vec<Comparison>> {
    let mine = latest_figures(c, &host.host_key)?;
    let siblings: Vec<String> = match &host.cpu_model {
        Some(m) => {
            let mut s = c.prepare_cached(
                "SELECT host_key FROM hosts WHERE cpu_model = ?1 AND host_key <> ?2",
            )?;
            let rows = s.query_map(params![m, host.host_key], |r| r.get(0))?;
            rows.collect::<rusqlite::Result<_>>()?
        }
        None => Vec::new(),
    };
    let mut theirs = Vec::new();
    for s in &siblings {
        theirs.push(latest_figures(c, s)?);
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collector::ingest::{parse_batch, Limits};

    fn line(run: &str, seq: u64, serial: &str, kind: &str, extra: &str) -> String {
        format!(
            r#"{{"v":1,"run_id":"{run}","seq":{seq},"ts":"2026-01-01T00:00:{seq:02}.000Z","host":{{"serial":"{serial}"}},"task":"speedtest","step":"bench.cpu","type":"{kind}"{extra}}}"#
        )
    }

    #[test]
    fn idempotent_store_and_derived_rows() {
        let c = Connection::open_in_memory().unwrap();
        assert_eq!(migrate(&c).unwrap(), 1);
        assert_eq!(migrate(&c).unwrap(), 1); // a second start applies nothing
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
                r#","data":{"cpu":{"model":"EPYC"},"certificates":[{"id":"c1","x":1}]}"#,
            ),
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
        ]
        .join("\n");
        let evs = parse_batch(body.as_bytes(), Limits::default()).unwrap();
        let tx = c.unchecked_transaction().unwrap();
        let st = insert_batch(&tx, &evs).unwrap();
        tx.commit().unwrap();
        assert_eq!((st.stored, st.duplicates), (4, 0));
        let st = insert_batch(&c, &evs[1..3]).unwrap();
        assert_eq!((st.stored, st.duplicates), (0, 2));
        let r = run(&c, "a").unwrap().unwrap();
        assert_eq!((r.events, r.last_seq), (4, 3));
        assert_eq!(r.outcome.as_deref(), Some("failed"));
        assert_eq!(r.duration_ms, Some(1500));
        let h = host(&c, "S1").unwrap().unwrap();
        assert_eq!(h.cpu_model.as_deref(), Some("EPYC"));
        assert_eq!(events(&c, "a").unwrap().len(), 4);
        assert_eq!(results(&c, "a").unwrap().len(), 2);
        assert_eq!(certificate(&c, "c1").unwrap().unwrap().1["x"], 1);
        let figs = latest_figures(&c, "S1").unwrap();
        assert_eq!(figs["bench.cpu"]["events_per_second.all"], 800.0);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
