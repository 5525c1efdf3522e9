//! Per-host agent tokens of the real collector binary on 127.0.0.1 with
//! SQLite: issued by `speediso-collector token issue` and by `POST
//! /v1/admin/tokens`, bound to their host or to the first host that posts
//! (also `host=first-use` lines of the tokens file), racing hosts, revoke,
//! `token list` without secrets, and bindings kept across a restart.
//! (`collector_auth.rs` checks the admin token routes refuse strangers,
//! agent tokens and viewers, as every route in `auth::ROUTES`.)

use serde_json::Value;
use speediso_testsupport::bin;
use speediso_testsupport::collector::*;
use std::path::Path;
use std::process::Command;

const FIRST_USE_FILE_TOKEN: &str = "file-first-use-token-0123";

/// A collector whose tokens file also has a `host=first-use` line.
fn start(dir: &Path) -> Collector {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("tokens"),
        format!(
            "{TOKEN}\nhost=BOUND1 {HOST_TOKEN}\nrole=viewer {VIEWER_TOKEN}\nrole=admin {ADMIN_TOKEN}\nhost=first-use {FIRST_USE_FILE_TOKEN}\n"
        ),
    )
    .unwrap();
    Collector::start(dir, None, &[])
}

/// `speediso-collector token ARGS --db DB`: (exit success, stdout, stderr).
fn cli(db: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin("speediso-collector"))
        .arg("token")
        .args(args)
        .args(["--db", db])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn admin(c: &Collector, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let (st, _, b) = c.request(
        method,
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body,
    );
    (st, serde_json::from_str(&b).unwrap_or(Value::String(b)))
}

/// Issue a token through the admin API: (id, secret).
fn issue(c: &Collector, body: &str) -> (String, String) {
    let (st, v) = admin(c, "POST", "/v1/admin/tokens", Some(body));
    assert_eq!(st, 201, "{v}");
    (
        v["id"].as_str().unwrap().to_string(),
        v["secret"].as_str().unwrap().to_string(),
    )
}

fn list(c: &Collector) -> Vec<Value> {
    let (st, v) = admin(c, "GET", "/v1/admin/tokens", None);
    assert_eq!(st, 200, "{v}");
    v.as_array().unwrap().clone()
}

fn row(c: &Collector, id: &str) -> Value {
    list(c)
        .into_iter()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("token {id} not listed"))
}

/// One log event of run `run` from the host with this serial.
fn post(c: &Collector, token: &str, run: &str, serial: &str) -> (u16, String) {
    c.post(Some(token), &format!("{}\n", log_line(run, 0, serial)))
}

#[test]
fn issued_host_tokens_post_only_for_their_host() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let db = dir.join("c.db").to_str().unwrap().to_string();
    std::fs::create_dir_all(&dir).unwrap();
    // Issued by the CLI before the collector runs (it migrates the file).
    let (ok, out, err) = cli(&db, &["issue", "--host", "CLI1", "--note", "rack 4"]);
    assert!(ok, "{err}");
    let cli_secret = out.trim().to_string();
    assert_eq!(cli_secret.len(), 64, "the secret alone on stdout: {out}");
    assert!(err.contains("not shown again"), "{err}");
    let c = start(&dir);

    // ... and by the admin API.
    let (api_id, api_secret) = issue(&c, r#"{"host": "API1", "note": "via api"}"#);
    for (secret, host, run) in [
        (&cli_secret, "CLI1", "r-cli"),
        (&api_secret, "API1", "r-api"),
    ] {
        let (st, b) = post(&c, secret, run, host);
        assert_eq!(st, 200, "{host}: {b}");
        assert_eq!(c.stored(run), (1, 1, 0), "{host}");
        let other = format!("{run}-other");
        let (st, b) = post(&c, secret, &other, "VICTIM");
        assert_eq!(st, 403, "{host}'s token for another host: {b}");
        assert!(b.contains(&format!("this token is for host {host}")), "{b}");
        assert_eq!(c.stored(&other).0, 0, "nothing stored");
        // An agent token reads nothing and administers nothing.
        let auth = format!("Bearer {secret}");
        for (m, p) in [("GET", "/v1/hosts"), ("GET", "/v1/admin/tokens")] {
            let (st, _, b) = c.request(m, p, &[("Authorization", &auth)], None);
            assert_eq!(st, 403, "{m} {p} with an issued agent token: {b}");
        }
        let (st, _, b) = c.request(
            "POST",
            "/v1/admin/tokens",
            &[("Authorization", &auth)],
            Some("{}"),
        );
        assert_eq!(st, 403, "{b}");
    }
    let hosts: Vec<String> = c
        .get("/v1/hosts")
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host_key"].as_str().unwrap().to_string())
        .collect();
    assert!(
        hosts.contains(&"CLI1".into()) && hosts.contains(&"API1".into()),
        "{hosts:?}"
    );
    assert!(!hosts.contains(&"VICTIM".into()), "{hosts:?}");

    // Listed, by the API and the CLI, with notes and last use, never the secret.
    let r = row(&c, &api_id);
    assert_eq!(
        (r["host"].as_str(), r["note"].as_str()),
        (Some("API1"), Some("via api"))
    );
    assert_eq!(r["source"], "issued");
    assert!(
        r["bound_at"].is_string() && r["revoked_at"].is_null(),
        "{r}"
    );
    let (st, _, all) = c.request(
        "GET",
        "/v1/admin/tokens",
        &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        None,
    );
    assert_eq!(st, 200);
    assert!(
        !all.contains(&cli_secret) && !all.contains(&api_secret),
        "{all}"
    );
    // Last use is written within the refresh period (5 s).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while row(&c, &api_id)["last_used"].is_null() {
        assert!(
            std::time::Instant::now() < deadline,
            "last_used never written"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    for json in [false, true] {
        let args: &[&str] = if json { &["list", "--json"] } else { &["list"] };
        let (ok, out, err) = cli(&db, args);
        assert!(ok, "{err}");
        assert!(
            out.contains(&api_id) && out.contains("CLI1") && out.contains("rack 4"),
            "{out}"
        );
        let unbound = if json { "\"host\":null" } else { "unbound" };
        assert!(out.contains(unbound), "the file's first-use token: {out}");
        assert!(
            !out.contains(&cli_secret)
                && !out.contains(&api_secret)
                && !out.contains(FIRST_USE_FILE_TOKEN),
            "token list printed a secret: {out}"
        );
        if json {
            let v: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(v.as_array().unwrap().len(), 3, "{out}");
        } else {
            assert!(out.starts_with("ID  "), "{out}");
        }
    }

    // Bad input names the key and value and issues nothing.
    for (body, want) in [
        (r#"{"host": "a b"}"#, "host \"a b\""),
        (r#"{"host": "first-use"}"#, "leave the host out"),
        (r#"{"hots": "S1"}"#, "unknown field `hots`"),
        ("[1]", "body: expected"),
    ] {
        let (st, v) = admin(&c, "POST", "/v1/admin/tokens", Some(body));
        assert_eq!(st, 400, "{body}: {v}");
        assert!(v["error"].as_str().unwrap().contains(want), "{body}: {v}");
    }
    let (ok, _, err) = cli(&db, &["issue", "--host", "a b"]);
    assert!(!ok && err.contains("--host \"a b\""), "{err}");
    assert_eq!(list(&c).len(), 3, "nothing issued by bad input");
    let missing = tmp.path().join("typo.db");
    let (ok, _, err) = cli(missing.to_str().unwrap(), &["list"]);
    assert!(!ok && err.contains("no such database file"), "{err}");
    assert!(!missing.exists(), "token list made a database");
}

#[test]
fn unbound_tokens_bind_to_the_first_host() {
    let tmp = tempfile::tempdir().unwrap();
    let c = start(&tmp.path().join("c"));
    let (id, secret) = issue(&c, "");
    assert!(row(&c, &id)["host"].is_null());

    // A batch from two hosts binds nothing.
    let mixed = format!(
        "{}\n{}\n",
        log_line("r-mix", 0, "UB1"),
        log_line("r-mix2", 0, "UB2")
    );
    let (st, b) = c.post(Some(&secret), &mixed);
    assert_eq!(st, 403, "{b}");
    assert!(b.contains("more than one host (UB1, then UB2)"), "{b}");
    assert!(row(&c, &id)["host"].is_null(), "still unbound");
    assert_eq!(c.stored("r-mix").0 + c.stored("r-mix2").0, 0);

    // The first host wins; from then on it is that host's token.
    let (st, b) = post(&c, &secret, "r-ub1", "UB1");
    assert_eq!(st, 200, "{b}");
    assert_eq!(c.stored("r-ub1").0, 1);
    let r = row(&c, &id);
    assert_eq!(r["host"], "UB1", "{r}");
    assert!(r["bound_at"].is_string(), "{r}");
    let (st, b) = post(&c, &secret, "r-ub2", "UB2");
    assert_eq!(st, 403, "{b}");
    assert!(b.contains("this token is for host UB1"), "{b}");
    assert_eq!(c.stored("r-ub2").0, 0);
    let (st, b) = post(&c, &secret, "r-ub1b", "UB1");
    assert_eq!(st, 200, "{b}");

    // The same for the tokens file's host=first-use line.
    let (st, b) = post(&c, FIRST_USE_FILE_TOKEN, "r-f1", "FU1");
    assert_eq!(st, 200, "{b}");
    let (st, b) = post(&c, FIRST_USE_FILE_TOKEN, "r-f2", "FU2");
    assert_eq!(st, 403, "{b}");
    assert_eq!(c.stored("r-f2").0, 0);
    let file_row = list(&c)
        .into_iter()
        .find(|r| r["source"] == "file")
        .unwrap();
    assert_eq!(file_row["host"], "FU1", "{file_row}");
    // A file token is revoked by removing its line, not here.
    let fid = file_row["id"].as_str().unwrap();
    let (st, v) = admin(&c, "DELETE", &format!("/v1/admin/tokens/{fid}"), None);
    assert_eq!(st, 409, "{v}");
}

#[test]
fn hosts_racing_on_one_unbound_token_exactly_one_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let c = std::sync::Arc::new(start(&tmp.path().join("c")));
    for round in 0..5 {
        let (id, secret) = issue(&c, "");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (c, secret, barrier) = (c.clone(), secret.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let host = format!("RACE{round}-{i}");
                    let run = format!("r-race{round}-{i}");
                    barrier.wait();
                    let (st, b) = post(&c, &secret, &run, &host);
                    (host, run, st, b)
                })
            })
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let winners: Vec<_> = results.iter().filter(|r| r.2 == 200).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        let winner = &winners[0].0;
        for (host, run, st, b) in &results {
            if host != winner {
                assert_eq!(*st, 403, "{host}: {b}");
                assert!(
                    b.contains(&format!("this token is for host {winner}")),
                    "{b}"
                );
                assert_eq!(c.stored(run).0, 0, "{host}'s event stored");
            } else {
                assert_eq!(c.stored(run).0, 1);
            }
        }
        assert_eq!(row(&c, &id)["host"].as_str(), Some(winner.as_str()));
    }
}

#[test]
fn revoked_tokens_are_refused_and_bindings_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let mut c = start(&dir);
    let (id_a, secret_a) = issue(&c, r#"{"host": "RV1"}"#);
    let (_, secret_b) = issue(&c, "");
    let (id_c, secret_c) = issue(&c, r#"{"host": "RV3"}"#);
    assert_eq!(post(&c, &secret_a, "r-a", "RV1").0, 200);
    assert_eq!(post(&c, &secret_b, "r-b", "RB1").0, 200);
    assert_eq!(post(&c, FIRST_USE_FILE_TOKEN, "r-f", "RF1").0, 200);
    assert_eq!(post(&c, &secret_c, "r-c", "RV3").0, 200);

    // Revoked through the API: the very next post is 401, nothing stored.
    let (st, v) = admin(&c, "DELETE", &format!("/v1/admin/tokens/{id_a}"), None);
    assert_eq!(st, 200, "{v}");
    assert!(v["revoked_at"].is_string(), "{v}");
    let (st, b) = post(&c, &secret_a, "r-a2", "RV1");
    assert_eq!(st, 401, "{b}");
    assert_eq!(c.stored("r-a2").0, 0);
    let (st, v) = admin(&c, "DELETE", "/v1/admin/tokens/0123456789abcdef", None);
    assert_eq!(st, 404, "{v}");

    // Revoked with the CLI: refused once the collector re-reads (SIGHUP).
    let (ok, out, err) = cli(&c.db, &["revoke", &id_c]);
    assert!(ok && out.contains("revoked"), "{out}{err}");
    c.hup();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (st, b) = post(&c, &secret_c, "r-c2", "RV3");
        if st == 401 {
            break;
        }
        assert_eq!(st, 200, "{b}");
        assert!(
            std::time::Instant::now() < deadline,
            "CLI revoke never took effect"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (ok, out, _) = cli(&c.db, &["revoke", &id_c]);
    assert!(ok && out.contains("already revoked"), "{out}");

    // A restart keeps every binding and revocation.
    assert!(c.terminate(), "clean exit");
    c.restart();
    let (st, b) = post(&c, &secret_b, "r-b2", "OTHER");
    assert_eq!(
        st, 403,
        "issued unbound token, bound before the restart: {b}"
    );
    assert_eq!(post(&c, &secret_b, "r-b3", "RB1").0, 200);
    let (st, b) = post(&c, FIRST_USE_FILE_TOKEN, "r-f2", "OTHER");
    assert_eq!(
        st, 403,
        "file first-use token, bound before the restart: {b}"
    );
    assert_eq!(post(&c, FIRST_USE_FILE_TOKEN, "r-f3", "RF1").0, 200);
    assert_eq!(post(&c, &secret_a, "r-a3", "RV1").0, 401);
    assert_eq!(
        c.stored("r-b2").0 + c.stored("r-f2").0 + c.stored("r-a3").0,
        0
    );
    // And a reload (SIGHUP) too.
    c.hup();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(post(&c, FIRST_USE_FILE_TOKEN, "r-f4", "OTHER").0, 403);
}
