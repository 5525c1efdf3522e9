//! The PostgreSQL store against a real PostgreSQL server this test starts
//! (initdb + pg_ctl from the Debian `postgresql` package, on 127.0.0.1 and
//! a free port, in a temporary directory): the same store checks as SQLite,
//! then two collectors sharing one database with agents replaying across
//! them, every event stored exactly once.

mod common;

use common::pg::Postgres;
use common::{fast_tuning, logged_run, reporting_bus};
use speediso_collector::pg::PgStore;
use speediso_collector::store::Store;
use speediso_testsupport::collector::*;
use speediso_testsupport::output_ok;
use std::process::Command;
use std::time::Duration;

#[test]
fn postgres_store_and_two_collectors_sharing_it() {
    let Some(pg) = Postgres::start() else { return };

    // The store checks SQLite passes, against PostgreSQL.
    let mut s = PgStore::connect(&pg.url()).unwrap();
    speediso_collector::store::conformance::exercise(&mut s);
    speediso_collector::store::conformance::replay_after_stale_last_seq(&mut s, &mut || {
        let out = pg
            .cmd("psql")
            .args(["-h", "127.0.0.1", "-U", "speediso", "-d", "postgres", "-p"])
            .arg(
                pg.url()
                    .rsplit(':')
                    .next()
                    .unwrap()
                    .split('/')
                    .next()
                    .unwrap(),
            )
            .args(["-c", "UPDATE runs SET last_seq = -1 WHERE run_id = 'g1'"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    assert_eq!(s.migrate().unwrap(), 5, "migrating twice applies nothing");

    // Two collectors on one database; half the agents report to each, and
    // every batch is replayed to the other collector too.
    let tmp = tempfile::tempdir().unwrap();
    let a = Collector::start_with_db(&tmp.path().join("a"), None, &pg.url(), &[]);
    let b = Collector::start_with_db(&tmp.path().join("b"), None, &pg.url(), &[]);
    let mut ids = Vec::new();
    let handles: Vec<_> = (0..20)
        .map(|i| {
            let url = if i % 2 == 0 { a.url() } else { b.url() };
            let run_dir = tmp.path().join(format!("agent{i}"));
            std::thread::spawn(move || {
                let tuning = fast_tuning(Duration::from_millis(500), Duration::from_millis(10));
                let bus = reporting_bus("pgfleet", &format!("PG{i:02}"), url, &run_dir, tuning);
                logged_run(&bus, "bench.memory", 100)
            })
        })
        .collect();
    for h in handles {
        ids.push(h.join().unwrap());
    }
    // Replays across collectors (the same events, re-serialised: equal
    // JSON): acknowledged, stored once.
    let mut check = PgStore::connect(&pg.url()).unwrap();
    let body: String = check
        .events(&ids[0])
        .unwrap()
        .iter()
        .map(|e| e.to_string() + "\n")
        .collect();
    let (code, resp) = b.post(Some(TOKEN), &body);
    assert_eq!(code, 200, "{resp}");
    let v: serde_json::Value = serde_json::from_str(&resp).unwrap();
    assert_eq!(v["duplicates"], 100, "{resp}");
    // Another content under a stored (run_id, seq): 409; another host for
    // the run: 403; nothing of either stored, on either collector.
    let (code, resp) = a.post(Some(TOKEN), &(log_line(&ids[0], 5, "PG00") + "\n"));
    assert_eq!(code, 409, "{resp}");
    let (code, resp) = b.post(Some(TOKEN), &(log_line(&ids[0], 100, "PG99") + "\n"));
    assert_eq!(code, 403, "{resp}");
    assert!(resp.contains("belongs to host PG00"), "{resp}");

    for id in &ids {
        let run = check
            .run(id)
            .unwrap()
            .unwrap_or_else(|| panic!("run {id} missing"));
        assert_eq!((run.events, run.last_seq), (100, 99), "{id}");
        let evs = check.events(id).unwrap();
        let seqs: Vec<i64> = evs.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, (0..100).collect::<Vec<_>>(), "{id}");
    }
    // Both collectors serve the same data.
    for c in [&a, &b] {
        let runs = c.get("/v1/runs?task=pgfleet&limit=100");
        assert_eq!(runs.as_array().unwrap().len(), 20);
        let r = c.get(&format!("/v1/runs/{}", ids[3]));
        assert_eq!(r["events"].as_array().unwrap().len(), 100);
    }
}

/// A NUL in strings the collector indexes (host, step, error) and in a
/// message: stored, and read back the same on both stores (`\u0000` as six
/// characters), while another agent's batch posted at the same moment
/// (grouped into the same transaction or not) is stored too.
fn nul_batch_and_neighbour(c: &Collector, round: usize) {
    let run = format!("nul-{round}");
    let host = r#""host":{"serial":"NUL1","hostname":"h\u0000x"}"#;
    let lines = [
        r#"{"v":1,"run_id":"RUN","seq":0,"ts":"2026-01-01T00:00:00.000Z",HOST,"task":"t","step":"s\u0000t","type":"log","level":"info","message":"a\u0000b"}"#,
        r#"{"v":1,"run_id":"RUN","seq":1,"ts":"2026-01-01T00:00:01.000Z",HOST,"task":"t","step":null,"type":"run_finished","outcome":"failed","exit_status":1,"duration_ms":5,"error":"e\u0000r"}"#,
    ]
    .map(|l| l.replace("RUN", &run).replace("HOST", host))
    .join("\n");
    let other = (0..50)
        .map(|s| log_line(&format!("neighbour-{round}"), s, "NUL2"))
        .collect::<Vec<_>>()
        .join("\n");
    let (a, b) = std::thread::scope(|sc| {
        let a = sc.spawn(|| c.post(Some(TOKEN), &lines));
        let b = sc.spawn(|| c.post(Some(TOKEN), &other));
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_eq!(a.0, 200, "{}", a.1);
    assert_eq!(b.0, 200, "{}", b.1);
    let r = c.get(&format!("/v1/runs/{run}"));
    assert_eq!(r["run"]["error"], "e\\u0000r", "{r}");
    assert_eq!(
        r["events"][0]["message"], "a\u{0}b",
        "the line is kept as received"
    );
    let n = c.get(&format!("/v1/runs/neighbour-{round}"));
    assert_eq!(n["run"]["events"], 50, "{n}");
}

fn nul_checks(c: &Collector) {
    for round in 0..5 {
        nul_batch_and_neighbour(c, round);
    }
    let hosts = c.get("/v1/hosts");
    let h = hosts
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["host_key"] == "NUL1")
        .unwrap_or_else(|| panic!("{hosts}"));
    assert_eq!(h["hostname"], "h\\u0000x");
    let page = c.get_text("/runs/nul-0");
    assert!(!page.contains('\0') && page.contains("a\\u0000b"), "{page}");
}

#[test]
fn nul_in_strings_is_stored_escaped_on_both_stores() {
    let tmp = tempfile::tempdir().unwrap();
    let sqlite = Collector::start(&tmp.path().join("sqlite"), None, &[]);
    nul_checks(&sqlite);
    let Some(pg) = Postgres::start() else { return };
    let c = Collector::start_with_db(&tmp.path().join("pg"), None, &pg.url(), &[]);
    nul_checks(&c);
}

fn inventory_and_bench(run: &str, serial: &str, eps: f64) -> String {
    let l = |seq: u64, step: &str, data: String| {
        event_line(
            run,
            seq,
            serial,
            &format!(r#""type":"result","data":{data}"#),
        )
        .replace(r#""step":"s""#, &format!(r#""step":"{step}""#))
    };
    format!(
        "{}\n{}\n",
        l(0, "inventory", r#"{"cpu":{"model":"EPYC 9654"}}"#.into()),
        l(
            1,
            "bench.cpu",
            format!(r#"{{"events_per_second":{{"all":{eps}}}}}"#)
        )
    )
}

/// The host page of a host with 500 runs and 60 siblings (same CPU model)
/// is served with a bounded number of SQL statements, counted by the
/// PostgreSQL server itself (`log_statement=all`), not one per run or
/// sibling.
#[test]
fn host_page_statements_are_bounded() {
    let Some(pg) = Postgres::start_with("-c log_statement=all") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let c = Collector::start_with_db(&tmp.path().join("c"), None, &pg.url(), &[]);
    let mut body = String::new();
    for i in 0..500 {
        body.push_str(&inventory_and_bench(&format!("mine-{i}"), "BIG1", 100.0));
    }
    for i in 0..60 {
        body.push_str(&inventory_and_bench(
            &format!("sib-{i}"),
            &format!("SIB{i}"),
            200.0,
        ));
    }
    let (code, resp) = c.post(Some(TOKEN), &body);
    assert_eq!(code, 200, "{resp}");
    let statements = |log: &str| {
        log.lines()
            .filter(|l| l.contains("LOG:  execute") || l.contains("LOG:  statement:"))
            .count()
    };
    std::thread::sleep(Duration::from_millis(300));
    let before = statements(&pg.log());
    let html = c.get_text("/hosts/BIG1");
    std::thread::sleep(Duration::from_millis(300));
    let n = statements(&pg.log()) - before;
    assert!(html.contains("SLOWER"), "100 vs a median of 200: {html}");
    assert_eq!(html.matches("<a href=\"/runs/mine-").count(), 100);
    assert!(
        html.contains("bench.cpu events_per_second.all=100"),
        "{html}"
    );
    assert!(n <= 8, "{n} statements for one host page");
}

/// PostgreSQL restarted under the collector while agents post: while it
/// is down the collector answers 503 (never 400: agents keep their
/// spools), and once it is back it reconnects by itself and every event
/// is stored exactly once.
#[test]
fn postgres_restart_under_load_loses_nothing() {
    let Some(pg) = Postgres::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let c = Collector::start_with_db(&tmp.path().join("c"), None, &pg.url(), &[]);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let agents: Vec<_> = (0..8)
        .map(|i| {
            let url = c.url();
            let run_dir = tmp.path().join(format!("agent{i}"));
            let stop = stop.clone();
            std::thread::spawn(move || {
                let tuning = fast_tuning(Duration::from_millis(400), Duration::from_millis(10));
                let bus = reporting_bus("pgrestart", &format!("RST{i}"), url, &run_dir, tuning);
                let mut n = 0u64;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    bus.step("wipe").log(format!("event {n}"));
                    n += 1;
                    std::thread::sleep(Duration::from_millis(3));
                }
                bus.close(Duration::from_secs(90));
                let left = std::fs::read_dir(run_dir.join("spool")).unwrap().count();
                (bus.run_id().to_string(), n, left)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    pg.pg_stop();
    // Down: 503 for a batch and for the health check, never 400.
    let (code, resp) = c.post(Some(TOKEN), &(log_line("down-1", 0, "DOWN1") + "\n"));
    assert_eq!(code, 503, "{resp}");
    match ureq::get(&format!("{}/healthz", c.url())).call() {
        Err(ureq::Error::Status(503, r)) => assert_eq!(r.header("Retry-After"), Some("1")),
        other => panic!("healthz while the database is down: {other:?}"),
    }
    std::thread::sleep(Duration::from_millis(1500));
    pg.pg_start("");
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut check = PgStore::connect(&pg.url()).unwrap();
    for a in agents {
        let (id, n, left) = a.join().unwrap();
        assert!(n > 300, "{id}: only {n} events");
        assert_eq!(left, 0, "{id}: spool not drained");
        let run = check.run(&id).unwrap().expect("run stored");
        assert_eq!((run.events, run.last_seq), (n as i64, n as i64 - 1), "{id}");
        let seqs: Vec<i64> = check
            .events(&id)
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect();
        assert_eq!(
            seqs,
            (0..n as i64).collect::<Vec<_>>(),
            "{id}: each event once"
        );
    }
    let r = ureq::get(&format!("{}/healthz", c.url())).call().unwrap();
    assert_eq!(r.status(), 200, "reconnected");
    assert_eq!(
        c.get("/v1/runs?task=pgrestart").as_array().unwrap().len(),
        8
    );
}

/// `openssl` with these arguments, in `dir`; panics with its stderr.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    output_ok(Command::new("openssl").args(args).current_dir(dir));
}

/// A CA `name`.pem/.key, self-signed.
fn make_ca(dir: &std::path::Path, name: &str) {
    speediso_testsupport::openssl_self_signed(
        dir,
        name,
        &[
            "basicConstraints=critical,CA:TRUE",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
}

/// The collector binary's exit status and stderr for `serve --db db`,
/// when it stops at start.
fn collector_refuses(dir: &std::path::Path, db: &str) -> String {
    std::fs::write(dir.join("tokens"), format!("{TOKEN}\n")).unwrap();
    let out = Command::new(speediso_testsupport::bin("speediso-collector"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db", db, "--tokens"])
        .arg(dir.join("tokens"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "started with {db}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// TLS to PostgreSQL with a server certificate from a CA this test makes:
/// `sslmode=verify-full` with that CA connects (the server logs every
/// connection as SSL) and the collector works; another CA, or a mode that
/// could fall back to plain text, stops the collector with a clear error.
#[test]
fn postgres_over_verified_tls() {
    let certs = tempfile::tempdir().unwrap();
    let d = certs.path();
    make_ca(d, "ca");
    make_ca(d, "other-ca");
    openssl(
        d,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
            "-out",
            "server.pem",
        ],
    );
    // The server's key must be its own and private.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.join("server.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    if Command::new("id").arg("-u").output().unwrap().stdout == b"0\n" {
        for f in ["server.key", "server.pem"] {
            assert!(Command::new("chown")
                .arg("postgres")
                .arg(d.join(f))
                .status()
                .unwrap()
                .success());
        }
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let Some(pg) = Postgres::start_with(&format!(
        "-c ssl=on -c ssl_cert_file={} -c ssl_key_file={} -c log_connections=on",
        d.join("server.pem").display(),
        d.join("server.key").display()
    )) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let url = |ca: &str| {
        format!(
            "{}?sslmode=verify-full&sslrootcert={}",
            pg.url(),
            d.join(ca).display()
        )
    };
    let c = Collector::start_with_db(&tmp.path().join("good"), None, &url("ca.pem"), &[]);
    let (code, resp) = c.post(Some(TOKEN), &(log_line("tls-1", 0, "TLS1") + "\n"));
    assert_eq!(code, 200, "{resp}");
    assert_eq!(c.get("/v1/runs/tls-1")["run"]["events"], 1);
    let log = pg.log();
    let authorized: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("connection authorized"))
        .collect();
    assert!(authorized.len() >= 5, "writer and 4 readers: {log}");
    assert!(
        authorized.iter().all(|l| l.contains("SSL enabled")),
        "every connection over TLS: {authorized:#?}"
    );

    let bad = tmp.path().join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    let err = collector_refuses(&bad, &url("other-ca.pem"));
    assert!(
        err.contains("connecting to PostgreSQL") && err.contains("UnknownIssuer"),
        "{err}"
    );
    eprintln!("wrong CA: {err}");
    let err = collector_refuses(&bad, &format!("{}?sslmode=prefer", pg.url()));
    assert!(err.contains("sslmode=prefer is not supported"), "{err}");
}

/// Agent tokens on PostgreSQL, two collectors sharing the database: a
/// token issued by the CLI (`--db postgres://...`) and bound by its first
/// batch, hosts racing on one unbound token through both collectors
/// (exactly one wins), a binding made through one collector holding on
/// the other, and a revoke through one refused by the other after its
/// refresh (5 s).
#[test]
fn postgres_agent_tokens_bind_once_across_collectors() {
    let Some(pg) = Postgres::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let issue = |host: Option<&str>| -> serde_json::Value {
        let mut cmd = Command::new(speediso_testsupport::bin("speediso-collector"));
        cmd.args(["token", "issue", "--json", "--db", &pg.url()]);
        if let Some(h) = host {
            cmd.args(["--host", h]);
        }
        serde_json::from_slice(&output_ok(&mut cmd).stdout).unwrap()
    };
    let host_tok = issue(Some("PGT1"));
    let a = Collector::start_with_db(&tmp.path().join("a"), None, &pg.url(), &[]);
    let b = Collector::start_with_db(&tmp.path().join("b"), None, &pg.url(), &[]);
    let post = |c: &Collector, secret: &str, run: &str, serial: &str| {
        c.post(Some(secret), &(log_line(run, 0, serial) + "\n"))
    };
    let stored = |run: &str| -> usize {
        PgStore::connect(&pg.url())
            .unwrap()
            .events(run)
            .unwrap()
            .len()
    };
    let secret = host_tok["secret"].as_str().unwrap();
    assert_eq!(post(&a, secret, "pgt-1", "PGT1").0, 200);
    assert_eq!(post(&b, secret, "pgt-2", "PGT2").0, 403);
    assert_eq!((stored("pgt-1"), stored("pgt-2")), (1, 0));

    for round in 0..3 {
        let tok = issue(None);
        let secret = tok["secret"].as_str().unwrap().to_string();
        // Issued by the CLI: the collectors take it at their next refresh.
        a.hup();
        b.hup();
        std::thread::sleep(Duration::from_millis(500));
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
        let results: Vec<(String, u16, String)> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..6)
                .map(|i| {
                    let (c, secret, barrier) =
                        (if i % 2 == 0 { &a } else { &b }, &secret, barrier.clone());
                    s.spawn(move || {
                        let host = format!("PGR{round}-{i}");
                        barrier.wait();
                        let (st, body) = post(c, secret, &format!("pgr{round}-{i}"), &host);
                        (host, st, body)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let winners: Vec<_> = results.iter().filter(|r| r.1 == 200).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        let winner = winners[0].0.clone();
        for (i, (host, st, body)) in results.iter().enumerate() {
            let run = format!("pgr{round}-{i}");
            if *host == winner {
                assert_eq!(stored(&run), 1);
            } else {
                assert_eq!(*st, 403, "{host}: {body}");
                assert_eq!(stored(&run), 0, "{host}");
            }
        }
        // Bound through one collector, the binding holds on both.
        for c in [&a, &b] {
            assert_eq!(
                post(c, &secret, &format!("pgr{round}-x"), "PGR-OTHER").0,
                403
            );
        }
    }

    // Revoked through A's API: A refuses at once, B after its refresh.
    let id = host_tok["id"].as_str().unwrap();
    let (st, _, body) = a.request(
        "DELETE",
        &format!("/v1/admin/tokens/{id}"),
        &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        None,
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(post(&a, secret, "pgt-3", "PGT1").0, 401);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while post(&b, secret, "pgt-4", "PGT1").0 != 401 {
        assert!(
            std::time::Instant::now() < deadline,
            "B never saw the revoke"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let mut cmd = Command::new(speediso_testsupport::bin("speediso-collector"));
    cmd.args(["token", "list", "--db", &pg.url()]);
    let out = String::from_utf8(output_ok(&mut cmd).stdout).unwrap();
    assert!(out.contains(id) && !out.contains(secret), "{out}");
}
