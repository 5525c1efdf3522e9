//! `speediso-collector load`: a load generator for the benchmark and the
//! scale test. N simulated agents (tokio tasks, one keep-alive connection
//! each, not one OS thread each) send one run of M events each, in NDJSON
//! batches, to a collector on loopback, all at once; each resends some of
//! its already acknowledged batches (as the real agent does after an
//! outage: they must be stored once). A 503 (the collector's in-flight
//! limit) is retried after its Retry-After, a broken connection is
//! reopened and the batch resent. At the end the store itself is queried
//! (`--check-db`): every run holds exactly its M events, each once, and its
//! run row counts M.

use anyhow::{bail, ensure, Context, Result};
use serde::Serialize;
use speediso_proto::events::{Body, Event, HostId, EVENT_VERSION};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Most simulated agents in one run (each holds one connection).
pub const MAX_AGENTS: usize = 10_000;
/// Most events per agent.
pub const MAX_EVENTS: usize = 1_000_000;

pub struct LoadArgs {
    /// `http://127.0.0.1:PORT` (loopback only).
    pub url: String,
    /// One token every agent uses; or
    pub token: Option<String>,
    /// a tokens file with `host=LOADnnnnn SECRET` lines: agent n uses its
    /// host's own token (`write_host_tokens` makes one).
    pub host_tokens: Option<PathBuf>,
    pub agents: usize,
    pub events: usize,
    pub batch: usize,
    /// Acknowledged batches each agent sends a second time.
    pub resend: usize,
    /// The collector's `--db` (SQLite file or postgres:// URL) to check.
    pub check_db: Option<String>,
    /// The whole run's limit.
    pub timeout: Duration,
}

/// What a load run did, printed as JSON.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub agents: usize,
    pub events_per_agent: usize,
    pub batch: usize,
    /// Distinct events sent (agents x events).
    pub events: usize,
    /// POSTs acknowledged with 200, resends included.
    pub posts: usize,
    /// Events sent a second time after their batch was acknowledged.
    pub resent_events: usize,
    /// Sums of the collector's answers.
    pub acked_stored: usize,
    pub acked_duplicates: usize,
    /// 503 answers (in-flight limit), retried.
    pub busy_retries: usize,
    /// Broken connections, reopened and the batch sent again.
    pub reconnects: usize,
    pub seconds: f64,
    /// Distinct events / seconds.
    pub events_per_second: f64,
    /// What `--check-db` found; `None` without it.
    pub check: Option<String>,
    pub pass: bool,
}

/// The host identity (serial) of agent `i`.
pub fn serial(i: usize) -> String {
    format!("LOAD{i:05}")
}

/// Write a tokens file with one `host=LOADnnnnn SECRET` line per agent,
/// random secrets, mode 0600.
pub fn write_host_tokens(path: &std::path::Path, agents: usize) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    ensure!(
        (1..=MAX_AGENTS).contains(&agents),
        "--agents {agents}: use 1 to {MAX_AGENTS}"
    );
    let mut text = String::from("# speediso-collector load: one token per simulated host\n");
    for i in 0..agents {
        let secret = speediso_proto::events::new_run_id().replace('-', "");
        text.push_str(&format!("host={} {secret}\n", serial(i)));
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}

/// `host=ID SECRET` lines of a tokens file.
fn read_host_tokens(path: &std::path::Path) -> Result<HashMap<String, String>> {
    let text = super::tokens::read_config(path)?;
    let mut out = HashMap::new();
    for (_, line) in super::tokens::config_lines(&text) {
        if let Some(rest) = line.strip_prefix("host=") {
            if let Some((id, secret)) = rest.split_once(char::is_whitespace) {
                out.insert(id.to_string(), secret.trim().to_string());
            }
        }
    }
    Ok(out)
}

fn line(run_id: &str, host: &HostId, seq: u64) -> String {
    let body = if seq == 0 {
        Body::RunStarted {
            steps: vec!["bench.cpu".into()],
            destructive: false,
            after: "stay".into(),
            agent_version: "load".into(),
        }
    } else {
        Body::Progress {
            percent: Some(seq as f64 / 10.0),
            bytes: Some(seq * 4096),
            total_bytes: Some(1 << 40),
            rate: Some(1.5e9),
            eta_s: Some(100.0),
            message: Some("/dev/nvme0n1".into()),
        }
    };
    let ev = Event {
        v: EVENT_VERSION,
        run_id: run_id.to_string(),
        seq,
        ts: speediso_proto::events::rfc3339_now(),
        host: host.clone(),
        task: Some("wipe".into()),
        step: Some("wipe".into()),
        body,
    };
    serde_json::to_string(&ev).expect("event serialises")
}

/// One simulated agent's run: its token, run id and batches.
struct Plan {
    auth: String,
    run_id: String,
    bodies: Vec<Vec<u8>>,
}

/// The `host:port` of a loopback `http://` URL; anything else is refused.
fn loopback_addr(url: &str) -> Result<String> {
    let u = url::Url::parse(url).with_context(|| format!("--url {url}"))?;
    ensure!(u.scheme() == "http", "--url {url}: only http:// (loopback)");
    let host = u.host_str().unwrap_or("");
    let ok = match host
        .trim_matches(|c| c == '[' || c == ']')
        .parse::<std::net::IpAddr>()
    {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host == "localhost",
    };
    ensure!(
        ok,
        "--url {url}: the load generator only targets loopback (127.0.0.1, ::1, localhost)"
    );
    let port = u.port_or_known_default().unwrap_or(80);
    Ok(format!("{host}:{port}"))
}

/// Counters shared by the agents.
#[derive(Default)]
struct Counters {
    posts: AtomicUsize,
    stored: AtomicUsize,
    duplicates: AtomicUsize,
    busy: AtomicUsize,
    reconnects: AtomicUsize,
}

/// One HTTP/1.1 keep-alive connection.
struct Conn {
    r: BufReader<TcpStream>,
}

/// An answer: status, `Retry-After` seconds, body.
struct Answer {
    status: u16,
    retry_after: Option<u64>,
    body: Vec<u8>,
    close: bool,
}

impl Conn {
    async fn open(addr: &str) -> std::io::Result<Conn> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(Conn {
            r: BufReader::new(s),
        })
    }

    async fn post(&mut self, host: &str, auth: &str, body: &[u8]) -> std::io::Result<Answer> {
        let head = format!(
            "POST /v1/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\n\
             Content-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let s = self.r.get_mut();
        s.write_all(head.as_bytes()).await?;
        s.write_all(body).await?;
        let bad =
            |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
        let mut line = String::new();
        if self.r.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("no HTTP status line"))?;
        let (mut len, mut retry_after, mut close) = (None, None, false);
        loop {
            line.clear();
            if self.r.read_line(&mut line).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                let v = v.trim();
                match k.to_ascii_lowercase().as_str() {
                    "content-length" => len = v.parse::<usize>().ok(),
                    "retry-after" => retry_after = v.parse().ok(),
                    "connection" => close = v.eq_ignore_ascii_case("close"),
                    _ => {}
                }
            }
        }
        let len = len.ok_or_else(|| bad("answer without Content-Length"))?;
        let mut body = vec![0; len];
        self.r.read_exact(&mut body).await?;
        Ok(Answer {
            status,
            retry_after,
            body,
            close,
        })
    }
}

/// Send one batch until it is acknowledged; (stored, duplicates).
async fn send(
    conn: &mut Option<Conn>,
    addr: &str,
    auth: &str,
    body: &[u8],
    c: &Counters,
) -> Result<(usize, usize)> {
    let mut tries = 0;
    loop {
        tries += 1;
        ensure!(
            tries <= 1000,
            "a batch was not acknowledged after 1000 tries"
        );
        if conn.is_none() {
            match Conn::open(addr).await {
                Ok(n) => *conn = Some(n),
                Err(_) => {
                    // The listen backlog is full during the connect storm.
                    c.reconnects.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
        }
        let a = match conn.as_mut().expect("open").post(addr, auth, body).await {
            Ok(a) => a,
            Err(_) => {
                // Sent but no answer: resend on a new connection (what was
                // committed comes back as duplicates).
                *conn = None;
                c.reconnects.fetch_add(1, Ordering::Relaxed);
                continue;
            }
        };
        if a.close {
            *conn = None;
        }
        match a.status {
            200 => {
                let v: serde_json::Value =
                    serde_json::from_slice(&a.body).context("the collector's answer")?;
                let n = |k: &str| v[k].as_u64().unwrap_or(0) as usize;
                c.posts.fetch_add(1, Ordering::Relaxed);
                return Ok((n("stored"), n("duplicates")));
            }
            503 => {
                c.busy.fetch_add(1, Ordering::Relaxed);
                // The body may be left unread: start a fresh connection.
                *conn = None;
                // Spread the retries over the Retry-After second, like
                // many agents whose backoffs started at different times.
                let base = a.retry_after.unwrap_or(1).clamp(1, 10) * 1000;
                let jitter = std::hash::BuildHasher::hash_one(
                    &std::collections::hash_map::RandomState::new(),
                    (auth, tries),
                ) % base;
                tokio::time::sleep(Duration::from_millis(base / 2 + jitter / 2)).await;
            }
            s => bail!(
                "the collector answered {s}: {}",
                String::from_utf8_lossy(&a.body)
            ),
        }
    }
}

/// Which batches agent `i` resends, after which one: (after, again).
fn resend_points(batches: usize, resend: usize) -> Vec<(usize, usize)> {
    (0..resend.min(batches))
        .map(|r| {
            let after = (r + 1) * batches / (resend.min(batches) + 1);
            let after = after.min(batches - 1);
            (after, after - (r % 2).min(after))
        })
        .collect()
}

/// Run the load, then the check; the report (pass or not).
pub fn run(a: &LoadArgs) -> Result<Report> {
    ensure!(
        (1..=MAX_AGENTS).contains(&a.agents),
        "--agents {}: use 1 to {MAX_AGENTS}",
        a.agents
    );
    ensure!(
        (1..=MAX_EVENTS).contains(&a.events),
        "--events {}: use 1 to {MAX_EVENTS}",
        a.events
    );
    ensure!(a.batch >= 1, "--batch 0: use at least 1");
    let addr = loopback_addr(&a.url)?;
    let tokens = match (&a.token, &a.host_tokens) {
        (Some(_), Some(_)) => bail!("--token and --host-tokens: give one"),
        (None, None) => bail!("--token TOKEN or --host-tokens FILE is needed"),
        (_, Some(p)) => Some(read_host_tokens(p)?),
        (Some(_), None) => None,
    };
    // Build every body first so the measurement is the collector's time.
    let mut plans = Vec::with_capacity(a.agents);
    for i in 0..a.agents {
        let run_id = speediso_proto::events::new_run_id();
        let host = HostId {
            serial: Some(serial(i)),
            ..HostId::default()
        };
        let token = match &tokens {
            Some(t) => t
                .get(&serial(i))
                .cloned()
                .with_context(|| format!("--host-tokens has no host={} line", serial(i)))?,
            None => a.token.clone().expect("checked"),
        };
        let mut bodies = Vec::new();
        let mut cur = String::new();
        for seq in 0..a.events as u64 {
            cur.push_str(&line(&run_id, &host, seq));
            cur.push('\n');
            if (seq as usize + 1).is_multiple_of(a.batch) {
                bodies.push(std::mem::take(&mut cur).into_bytes());
            }
        }
        if !cur.is_empty() {
            bodies.push(cur.into_bytes());
        }
        plans.push(Plan {
            auth: format!("Bearer {token}"),
            run_id,
            bodies,
        });
    }
    let resent_events: usize = plans
        .iter()
        .map(|p| {
            resend_points(p.bodies.len(), a.resend)
                .iter()
                .map(|(_, b)| p.bodies[*b].iter().filter(|c| **c == b'\n').count())
                .sum::<usize>()
        })
        .sum();
    let counters = Arc::new(Counters::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let start = Instant::now();
    let run_ids: Vec<String> = plans.iter().map(|p| p.run_id.clone()).collect();
    let resend = a.resend;
    let outcome = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for p in plans {
            let (addr, c) = (addr.clone(), counters.clone());
            set.spawn(async move {
                let points = resend_points(p.bodies.len(), resend);
                let mut conn = None;
                for (i, b) in p.bodies.iter().enumerate() {
                    let (s, d) = send(&mut conn, &addr, &p.auth, b, &c).await?;
                    c.stored.fetch_add(s, Ordering::Relaxed);
                    c.duplicates.fetch_add(d, Ordering::Relaxed);
                    for (_, again) in points.iter().filter(|(after, _)| *after == i) {
                        let (s, d) = send(&mut conn, &addr, &p.auth, &p.bodies[*again], &c).await?;
                        c.stored.fetch_add(s, Ordering::Relaxed);
                        c.duplicates.fetch_add(d, Ordering::Relaxed);
                    }
                }
                anyhow::Ok(())
            });
        }
        let all = async {
            let mut errors = Vec::new();
            while let Some(r) = set.join_next().await {
                match r {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => errors.push(format!("{e:#}")),
                    Err(e) => errors.push(format!("agent task: {e}")),
                }
            }
            errors
        };
        tokio::time::timeout(a.timeout, all).await
    });
    let el = start.elapsed();
    drop(rt);
    let errors = match outcome {
        Ok(e) => e,
        Err(_) => bail!(
            "FAIL: not every agent finished within {} s",
            a.timeout.as_secs()
        ),
    };
    if !errors.is_empty() {
        bail!(
            "FAIL: {} agent(s) failed, first: {}",
            errors.len(),
            errors[0]
        );
    }
    let c = &counters;
    let total = a.agents * a.events;
    let mut r = Report {
        agents: a.agents,
        events_per_agent: a.events,
        batch: a.batch,
        events: total,
        posts: c.posts.load(Ordering::Relaxed),
        resent_events,
        acked_stored: c.stored.load(Ordering::Relaxed),
        acked_duplicates: c.duplicates.load(Ordering::Relaxed),
        busy_retries: c.busy.load(Ordering::Relaxed),
        reconnects: c.reconnects.load(Ordering::Relaxed),
        seconds: el.as_secs_f64(),
        events_per_second: total as f64 / el.as_secs_f64(),
        check: None,
        pass: true,
    };
    let mut problems = Vec::new();
    // Without broken connections every answer counts exactly; with them a
    // committed-but-unanswered batch shows up as duplicates of the resend.
    if r.acked_stored != total {
        problems.push(format!(
            "the collector acknowledged {} events as stored, {total} were sent",
            r.acked_stored
        ));
    }
    if r.reconnects == 0 && r.acked_duplicates != resent_events {
        problems.push(format!(
            "the collector counted {} duplicates, {resent_events} were resent",
            r.acked_duplicates
        ));
    }
    if let Some(db) = &a.check_db {
        let rows = store_counts(db).context("checking the store")?;
        let mut bad = 0;
        let mut first = None;
        for id in &run_ids {
            let got = rows.get(id).copied().unwrap_or_default();
            let want = RunCount {
                rows: a.events as i64,
                distinct: a.events as i64,
                max_seq: a.events as i64 - 1,
                run_events: a.events as i64,
            };
            if got != want {
                bad += 1;
                first.get_or_insert(format!("run {id}: {got:?}, expected {want:?}"));
            }
        }
        r.check = Some(if bad == 0 {
            format!(
                "{} runs x {} events: each stored exactly once, run rows count {}",
                run_ids.len(),
                a.events,
                a.events
            )
        } else {
            format!("{bad} run(s) wrong, first: {}", first.unwrap_or_default())
        });
        if bad > 0 {
            problems.push(r.check.clone().unwrap_or_default());
        }
    }
    r.pass = problems.is_empty();
    if !r.pass {
        r.check = Some(problems.join("; "));
    }
    Ok(r)
}

/// What the store holds for one run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct RunCount {
    /// Event rows.
    rows: i64,
    /// Distinct seqs among them.
    distinct: i64,
    max_seq: i64,
    /// `runs.events`: the derived counter.
    run_events: i64,
}

/// Per run: event rows, distinct seqs, highest seq, and the run row's
/// event counter, read from the database itself.
fn store_counts(db: &str) -> Result<HashMap<String, RunCount>> {
    const EVENTS: &str = "SELECT run_id, count(*), count(DISTINCT seq), max(seq) \
                          FROM events GROUP BY run_id";
    const RUNS: &str = "SELECT run_id, events FROM runs";
    let mut out: HashMap<String, RunCount> = HashMap::new();
    if db.starts_with("postgres://") || db.starts_with("postgresql://") {
        let (config, tls) = super::pg::parse_url(db)?;
        let mut c = match tls {
            Some(t) => config.connect(t)?,
            None => config.connect(postgres::NoTls)?,
        };
        for r in c.query(EVENTS, &[])? {
            let e = out.entry(r.get(0)).or_default();
            (e.rows, e.distinct, e.max_seq) = (r.get(1), r.get(2), r.get(3));
        }
        for r in c.query(RUNS, &[])? {
            out.entry(r.get(0)).or_default().run_events = r.get(1);
        }
    } else {
        let c =
            rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .with_context(|| format!("opening {db}"))?;
        let mut s = c.prepare(EVENTS)?;
        let mut rows = s.query([])?;
        while let Some(r) = rows.next()? {
            let e = out.entry(r.get(0)?).or_default();
            (e.rows, e.distinct, e.max_seq) = (r.get(1)?, r.get(2)?, r.get(3)?);
        }
        let mut s = c.prepare(RUNS)?;
        let mut rows = s.query([])?;
        while let Some(r) = rows.next()? {
            out.entry(r.get(0)?).or_default().run_events = r.get(1)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resends_are_acknowledged_batches() {
        for n in 1..20 {
            for k in 0..5 {
                for (after, again) in resend_points(n, k) {
                    assert!(after < n && again <= after, "{n} {k}: {after} {again}");
                }
                assert_eq!(resend_points(n, k).len(), k.min(n));
            }
        }
    }

    #[test]
    fn only_loopback() {
        assert_eq!(
            loopback_addr("http://127.0.0.1:8470").unwrap(),
            "127.0.0.1:8470"
        );
        assert_eq!(loopback_addr("http://localhost:1/").unwrap(), "localhost:1");
        assert!(loopback_addr("http://[::1]:9").is_ok());
        for bad in [
            "http://10.0.0.1:8470",
            "https://127.0.0.1:1",
            "http://example.com",
        ] {
            assert!(loopback_addr(bad).is_err(), "{bad}");
        }
    }
}
