//! Many agents reporting at once: 500 simulated agents (each its own host,
//! its own per-host token and run, one connection each) send their events
//! to one collector at the same time, each resending acknowledged batches,
//! beyond the collector's in-flight limit (503s retried). The store is then
//! read directly (`speediso-collector load --check-db`): every event stored
//! exactly once, every run row counting its events once. On SQLite and on
//! a real PostgreSQL (skipped without its server binaries, unless
//! SPEEDISO_REQUIRE_TOOLS=1).

mod common;

use common::pg::Postgres;
use speediso_testsupport::collector::{Collector, VIEWER_TOKEN};
use std::path::Path;
use std::process::Command;

const AGENTS: usize = 500;
const EVENTS: usize = 40;
const BATCH: usize = 10;
const RESEND: usize = 2;

fn collector_cmd() -> Command {
    Command::new(speediso_testsupport::bin("speediso-collector"))
}

/// A tokens file with one `host=LOADnnnnn` token per agent under `dir`.
fn host_tokens(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let out = collector_cmd()
        .args([
            "load",
            "--agents",
            &AGENTS.to_string(),
            "--write-host-tokens",
        ])
        .arg(dir.join("tokens"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut text = std::fs::read_to_string(dir.join("tokens")).unwrap();
    assert_eq!(
        text.lines().filter(|l| l.starts_with("host=")).count(),
        AGENTS
    );
    // Reading the collector's view back takes a viewer's token.
    text.push_str(&format!("role=viewer {VIEWER_TOKEN}\n"));
    std::fs::write(dir.join("tokens"), text).unwrap();
}

/// Run the load against `c` and check the store `db`; the report.
fn load(c: &Collector, db: &str) -> serde_json::Value {
    let out = collector_cmd()
        .args(["load", "--url", &c.url(), "--host-tokens"])
        .arg(c.dir.join("tokens"))
        .args(["--agents", &AGENTS.to_string()])
        .args(["--events", &EVENTS.to_string()])
        .args(["--batch", &BATCH.to_string()])
        .args(["--resend", &RESEND.to_string()])
        .args(["--check-db", db, "--timeout-s", "60"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "load failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    let r: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(lines.next(), Some("PASS"), "{stdout}");
    let total = (AGENTS * EVENTS) as u64;
    assert_eq!(r["pass"], true, "{r}");
    assert_eq!(r["events"], total, "{r}");
    assert_eq!(r["acked_stored"], total, "every event stored once: {r}");
    let resent = r["resent_events"].as_u64().unwrap();
    assert_eq!(resent, (AGENTS * RESEND * BATCH) as u64, "{r}");
    // A batch committed but unanswered (broken connection) is resent and
    // counted as duplicates a second time; otherwise the counts are exact.
    if r["reconnects"] == 0 {
        assert_eq!(r["acked_duplicates"], resent, "{r}");
    } else {
        assert!(r["acked_duplicates"].as_u64().unwrap() >= resent, "{r}");
    }
    let check = r["check"].as_str().unwrap();
    assert!(check.contains("exactly once"), "{check}");
    assert!(check.starts_with(&format!("{AGENTS} runs")), "{check}");
    // The collector's own view agrees: one host per agent.
    let hosts = ureq::get(&format!("{}/v1/hosts?limit=1", c.url()))
        .set("Authorization", &format!("Bearer {VIEWER_TOKEN}"))
        .call()
        .unwrap();
    assert_eq!(
        hosts.header("x-total-count"),
        Some(AGENTS.to_string().as_str())
    );
    r
}

#[test]
fn many_agents_at_once_sqlite_nothing_lost_nothing_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    host_tokens(&dir);
    // A low in-flight limit, so some agents are answered 503 and retry.
    let c = Collector::start(&dir, None, &["--max-in-flight", "64"]);
    let r = load(&c, &c.db);
    eprintln!("sqlite: {r}");
}

#[test]
fn many_agents_at_once_postgres_nothing_lost_nothing_twice() {
    let Some(pg) = Postgres::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    host_tokens(&dir);
    let c = Collector::start_with_db(&dir, None, &pg.url(), &["--max-in-flight", "64"]);
    let r = load(&c, &pg.url());
    eprintln!("postgres: {r}");
}
