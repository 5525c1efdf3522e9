//! The collector's API against the real binary on 127.0.0.1: tokens,
//! limits, malformed input (nothing partial stored), idempotency,
//! certificates, 200 concurrent agents, graceful shutdown.

mod common;

use common::{fast_tuning, logged_run, reporting_bus};
use speediso_testsupport::collector::*;
use std::time::Duration;

fn batch(run: &str, n: u64, serial: &str) -> String {
    (0..n)
        .map(|s| log_line(run, s, serial) + "\n")
        .collect::<String>()
}

/// `body` posted with `token` is answered `code` with a body saying `why`;
/// that body.
#[track_caller]
fn refused(c: &Collector, token: &str, body: &str, code: u16, why: &str) -> String {
    let (got, answer) = c.post(Some(token), body);
    assert_eq!(got, code, "{answer}");
    assert!(answer.contains(why), "{answer}");
    answer
}

/// `body` posted with the test token is taken: (stored, duplicates).
#[track_caller]
fn accepted(c: &Collector, body: &str) -> (u64, u64) {
    let (code, answer) = c.post(Some(TOKEN), body);
    assert_eq!(code, 200, "{answer}");
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    let count = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k}: {answer}"));
    (count("stored"), count("duplicates"))
}

/// `body` posted with the test token is answered `code` with a JSON object
/// naming line `line` and saying `why` in its `error`; that object.
#[track_caller]
fn refused_at(c: &Collector, body: &str, code: u16, line: u64, why: &str) -> serde_json::Value {
    let (got, answer) = c.post(Some(TOKEN), body);
    assert_eq!(got, code, "{answer}");
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["line"], line, "{answer}");
    assert!(v["error"].as_str().unwrap().contains(why), "{answer}");
    v
}

#[test]
fn tokens_limits_and_malformed_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Collector::start(
        tmp.path(),
        None,
        &["--max-body", "8192", "--max-line", "1024"],
    );

    // Wrong or missing token: 401, nothing stored.
    let (code, body) = c.post(Some("not-a-token-at-all"), &batch("r-wrong", 3, "S1"));
    assert_eq!(code, 401, "{body}");
    let (code, _) = c.post(None, &batch("r-wrong", 3, "S1"));
    assert_eq!(code, 401);
    assert_eq!(c.stored("r-wrong").0, 0);

    // Oversized body: 413, nothing stored.
    let big = batch("r-big", 60, "S1");
    assert!(big.len() > 8192);
    refused(&c, TOKEN, &big, 413, "8192");
    assert_eq!(c.stored("r-big").0, 0);

    // One line over the line limit: 413 naming the line.
    let long = format!(
        "{}\n{}\n",
        log_line("r-long", 0, "S1"),
        event_line(
            "r-long",
            1,
            "S1",
            &format!(
                r#""type":"log","level":"info","message":"{}""#,
                "x".repeat(1100)
            )
        )
    );
    refused(&c, TOKEN, &long, 413, "line 2");
    assert_eq!(c.stored("r-long").0, 0);

    // Garbage on line 3: 400 naming line 3; lines 1-2 not stored either.
    let bad = format!(
        "{}\n{}\nthis is not json\n{}\n",
        log_line("r-bad", 0, "S1"),
        log_line("r-bad", 1, "S1"),
        log_line("r-bad", 2, "S1")
    );
    refused_at(&c, &bad, 400, 3, "line 3: not JSON");
    assert_eq!(c.stored("r-bad").0, 0);

    // A JSON object that is not an event.
    let not_an_event = format!("{}\n{{\"hello\":1}}\n", log_line("r-bad2", 0, "S1"));
    refused(&c, TOKEN, &not_an_event, 400, "line 2: not an event");

    // A host-bound token only for its host.
    refused(&c, HOST_TOKEN, &batch("r-other", 2, "S1"), 403, "line 1");
    assert_eq!(c.stored("r-other").0, 0);
    let (code, body) = c.post(Some(HOST_TOKEN), &batch("r-bound", 2, "BOUND1"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(c.stored("r-bound"), (2, 2, 1));

    // Idempotent on (run_id, seq): a replay is acknowledged, not stored twice.
    assert_eq!(accepted(&c, &batch("r-ok", 5, "S1")), (5, 0));
    assert_eq!(accepted(&c, &batch("r-ok", 7, "S1")), (2, 5));
    assert_eq!(c.stored("r-ok"), (7, 7, 6));
    let run = c.get("/v1/runs/r-ok");
    assert_eq!(run["run"]["events"], 7);
    assert_eq!(run["events"].as_array().unwrap().len(), 7);
    assert_eq!(run["events"][6]["seq"], 6);

    let hosts = c.get("/v1/hosts");
    let keys: Vec<&str> = hosts
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["host_key"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"S1") && keys.contains(&"BOUND1"), "{keys:?}");
    assert!(!keys.contains(&"r-wrong"));
    let runs = c.get("/v1/runs?host=BOUND1");
    assert_eq!(runs.as_array().unwrap().len(), 1);
    assert_eq!(runs[0]["run_id"], "r-bound");
    let runs = c.get("/v1/runs?task=nonexistent");
    assert_eq!(runs.as_array().unwrap().len(), 0);
    let h = ureq::get(&format!("{}/healthz", c.url())).call().unwrap();
    assert_eq!(h.status(), 200);

    // A new token works after SIGHUP, and the old one is gone.
    std::fs::write(c.dir.join("tokens"), "fresh-token-after-hup\n").unwrap();
    c.hup();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while c
        .post(Some("fresh-token-after-hup"), &batch("r-hup", 1, "S1"))
        .0
        != 200
    {
        assert!(std::time::Instant::now() < deadline, "token not reloaded");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(c.post(Some(TOKEN), &batch("r-hup", 1, "S1")).0, 401);
    // A broken file keeps the tokens in force.
    std::fs::write(c.dir.join("tokens"), "a b c\n").unwrap();
    c.hup();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        c.post(Some("fresh-token-after-hup"), &batch("r-hup", 2, "S1"))
            .0,
        200
    );
}

fn signed_cert(id: &str, outcome: &str) -> serde_json::Value {
    signed_cert_for(id, outcome, "r-wipe", "W1")
}

/// A schema /1 certificate (no signer) about `run` on host `serial`.
fn signed_cert_for(id: &str, outcome: &str, run: &str, serial: &str) -> serde_json::Value {
    let sk = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let v = serde_json::json!({
        "schema": "speediso.wipe.certificate/1",
        "id": id,
        "run_id": run,
        "host": {"serial": serial, "uuid": null, "boot_mac": "52:54:00:12:34:56", "hostname": "h"},
        "media": {"model": "QEMU NVMe Ctrl", "serial": "NVME0001"},
        "sanitization": {"method": "nvme-format-crypto", "category": "Purge"},
        "outcome": outcome,
    });
    speediso::wipe::cert::sign(v, &sk)
}

fn public_hex(seed: u8) -> String {
    hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
            .verifying_key()
            .to_bytes(),
    )
}

/// A schema /2 certificate signed with key `seed`, whose signer member
/// names key `signer_seed`.
fn cert_v2(id: &str, run: &str, serial: &str, seed: u8, signer_seed: u8) -> serde_json::Value {
    use sha2::Digest;
    let signer = public_hex(signer_seed);
    let key_id = hex::encode(&sha2::Sha256::digest(hex::decode(&signer).unwrap())[..8]);
    let v = serde_json::json!({
        "schema": "speediso.wipe.certificate/2",
        "id": id,
        "run_id": run,
        "host": {"serial": serial, "uuid": null, "boot_mac": null, "hostname": "h"},
        "media": {"serial": "NVME0001"},
        "outcome": "wiped",
        "signer": {"public_key": signer, "key_id": key_id, "source": "file:/etc/speediso/wipe.key"},
    });
    speediso::wipe::cert::sign(v, &ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
}

/// The wipe step's result carrying `certs`.
fn wipe_result(run: &str, seq: u64, serial: &str, certs: &[serde_json::Value]) -> String {
    let data = serde_json::json!({ "certificates": certs });
    event_line(
        run,
        seq,
        serial,
        &format!(r#""type":"result","data":{data}"#),
    )
    .replace(r#""step":"s""#, r#""step":"wipe""#)
}

#[test]
fn certificates_are_stored_and_verified() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Collector::start(tmp.path(), None, &[]);
    let good = signed_cert("cert-good", "wiped");
    let mut forged = signed_cert("cert-forged", "failed");
    forged["outcome"] = "wiped".into(); // altered after signing
    let line = wipe_result("r-wipe", 0, "W1", &[good, forged]);
    let (code, body) = c.post(Some(TOKEN), &format!("{line}\n"));
    assert_eq!(code, 200, "{body}");
    let g = c.get("/v1/certificates/cert-good");
    assert_eq!(g["verification"]["valid"], true, "{g}");
    // Valid, but no trusted signers list: not trusted.
    assert_eq!(g["verification"]["trust"], "untrusted", "{g}");
    assert!(g["verification"]["trust_note"]
        .as_str()
        .unwrap()
        .contains("no trusted signers list"));
    assert_eq!(g["verification"]["signed_by"], public_hex(9));
    assert_eq!(g["certificate"]["media"]["serial"], "NVME0001");
    assert_eq!(g["run_id"], "r-wipe");
    let f = c.get("/v1/certificates/cert-forged");
    assert_eq!(f["verification"]["valid"], false, "{f}");
    assert_eq!(f["verification"]["trust"], "invalid", "{f}");
    let r = ureq::get(&format!("{}/v1/certificates/nope", c.url()))
        .set("Authorization", &format!("Bearer {VIEWER_TOKEN}"))
        .call();
    assert!(matches!(r, Err(ureq::Error::Status(404, _))));
    let run = c.get("/v1/runs/r-wipe");
    assert_eq!(
        run["certificates"],
        serde_json::json!(["cert-good", "cert-forged"])
    );
}

#[test]
fn certificates_only_from_the_wipe_step_of_their_own_run_and_host() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Collector::start(tmp.path(), None, &[]);
    let ok = signed_cert_for("c-ok", "wiped", "r-x", "W1");
    let cases = [
        (
            // Another step's result.
            wipe_result("r-x", 1, "W1", std::slice::from_ref(&ok))
                .replace(r#""step":"wipe""#, r#""step":"bench.cpu""#),
            "only in results of step wipe",
        ),
        (
            // A certificate of another run.
            wipe_result(
                "r-x",
                1,
                "W1",
                &[signed_cert_for("c-1", "wiped", "r-other", "W1")],
            ),
            "run_id \"r-other\" is not the event's run r-x",
        ),
        (
            // A certificate of another host.
            wipe_result(
                "r-x",
                1,
                "W1",
                &[signed_cert_for("c-2", "wiped", "r-x", "W2")],
            ),
            "host.serial \"W2\" is not the event's host.serial \"W1\"",
        ),
        (
            // No identity in common (the event has only a serial).
            wipe_result(
                "r-x",
                1,
                "W1",
                &[{
                    let mut v = ok.clone();
                    v["host"] = serde_json::json!({"boot_mac": "52:54:00:12:34:56"});
                    v
                }],
            ),
            "shares no identity",
        ),
        (
            wipe_result(
                "r-x",
                1,
                "W1",
                &[signed_cert_for(
                    "c-3",
                    "x\" onmouseover=\"alert(1)",
                    "r-x",
                    "W1",
                )],
            ),
            "outcome",
        ),
    ];
    for (bad, why) in cases {
        let body = format!("{}\n{bad}\n", log_line("r-x", 0, "W1"));
        let v = refused_at(&c, &body, 400, 2, why);
        assert!(v["error"].as_str().unwrap().starts_with("line 2: "), "{v}");
        assert_eq!(c.stored("r-x").0, 0, "{why}: nothing stored");
    }
    let r = ureq::get(&format!("{}/v1/certificates/c-1", c.url()))
        .set("Authorization", &format!("Bearer {VIEWER_TOKEN}"))
        .call();
    assert!(matches!(r, Err(ureq::Error::Status(404, _))));
    // The right one is taken.
    let body = format!("{}\n", wipe_result("r-x", 1, "W1", &[ok]));
    assert_eq!(c.post(Some(TOKEN), &body).0, 200);
    assert_eq!(
        c.get("/v1/runs/r-x")["certificates"],
        serde_json::json!(["c-ok"])
    );
}

#[test]
fn certificate_trust_comes_from_the_trusted_signers_list() {
    let tmp = tempfile::tempdir().unwrap();
    let list = tmp.path().join("signers");
    std::fs::write(
        &list,
        format!("# wipe keys\n{} lab wipe key\n", public_hex(9)),
    )
    .unwrap();
    let c = Collector::start(
        &tmp.path().join("c"),
        None,
        &["--trusted-signers", list.to_str().unwrap()],
    );
    let certs = [
        cert_v2("t-trusted", "r-t", "W1", 9, 9),
        cert_v2("t-unlisted", "r-t", "W1", 10, 10),
        // Signed by key 10, but the signer member claims the listed key 9.
        cert_v2("t-liar", "r-t", "W1", 10, 9),
    ];
    let (code, body) = c.post(
        Some(TOKEN),
        &format!("{}\n", wipe_result("r-t", 0, "W1", &certs)),
    );
    assert_eq!(code, 200, "{body}");
    let verification = |id: &str| c.get(&format!("/v1/certificates/{id}"))["verification"].clone();
    // (certificate, valid, trust, a member of the verification, what it says)
    for (id, valid, trust, member, says) in [
        ("t-trusted", true, "trusted", "signer_name", "lab wipe key"),
        (
            "t-unlisted",
            true,
            "untrusted",
            "trust_note",
            "not in the trusted signers list",
        ),
        ("t-liar", false, "invalid", "error", "signer.public_key"),
    ] {
        let v = verification(id);
        assert_eq!(
            (v["valid"].as_bool(), v["trust"].as_str()),
            (Some(valid), Some(trust)),
            "{v}"
        );
        assert!(v[member].as_str().unwrap().contains(says), "{v}");
    }
    let v = verification("t-trusted");
    assert_eq!(v["signer_name"], "lab wipe key");
    assert_eq!(v["key_source"], "file:/etc/speediso/wipe.key");
    assert_eq!(v["signed_by"], public_hex(9));

    // The run page: the trust summary says it, only the trusted one is green.
    let page = c.get_text("/runs/r-t");
    assert!(
        page.contains("id=\"cert-trust\">2 of 3 certificate(s) NOT signed by a trusted key"),
        "{page}"
    );
    let row = |id: &str| {
        page.split("<tr>")
            .find(|r| r.contains(&format!(">{id}</a>")))
            .unwrap_or_else(|| panic!("row {id}: {page}"))
            .to_string()
    };
    assert!(
        row("t-trusted").contains("class=\"trust trusted\">TRUSTED<"),
        "{page}"
    );
    assert!(row("t-trusted").contains("lab wipe key"));
    let unlisted = row("t-unlisted");
    assert!(
        unlisted.contains("class=\"trust untrusted\">UNTRUSTED<"),
        "{unlisted}"
    );
    assert!(
        !unlisted.contains("success") && !unlisted.contains(">valid<"),
        "{unlisted}"
    );
    assert!(row("t-liar").contains(">INVALID<"));

    // A malformed list stops the collector at start, naming the line.
    std::fs::write(&list, format!("{}\nnot-a-key bob\n", public_hex(9))).unwrap();
    let out = std::process::Command::new(speediso_testsupport::bin("speediso-collector"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(tmp.path().join("x.db"))
        .arg("--tokens")
        .arg(tmp.path().join("c/tokens"))
        .arg("--trusted-signers")
        .arg(&list)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("signers") && err.contains("line 2"), "{err}");
}

/// Real agents: each thread builds a bus with the report sink (its own
/// spool directory) and emits a run; every event of every run must arrive.
#[test]
fn two_hundred_concurrent_agents_all_stored() {
    const AGENTS: usize = 200;
    const EVENTS: u64 = 40;
    let tmp = tempfile::tempdir().unwrap();
    let c = Collector::start(&tmp.path().join("collector"), None, &[]);
    let url = c.url();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(AGENTS));
    let handles: Vec<_> = (0..AGENTS)
        .map(|i| {
            let run_dir = tmp.path().join(format!("agent{i}"));
            let url = url.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let tuning = fast_tuning(Duration::from_millis(500), Duration::from_millis(20));
                let bus = reporting_bus("speedtest", &format!("CONC{i:03}"), url, &run_dir, tuning);
                barrier.wait();
                for s in 0..EVENTS {
                    bus.step("bench.cpu").log(format!("event {s}"));
                    if s % 10 == 0 {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
                bus.close(Duration::from_secs(60));
                let left = std::fs::read_dir(run_dir.join("spool")).unwrap().count();
                (bus.run_id().to_string(), left)
            })
        })
        .collect();
    let mut ids = Vec::new();
    for h in handles {
        let (id, left) = h.join().unwrap();
        assert_eq!(left, 0, "run {id}: spool not drained");
        ids.push(id);
    }
    for id in &ids {
        assert_eq!(
            c.stored(id),
            (EVENTS as i64, EVENTS as i64, EVENTS as i64 - 1),
            "{id}"
        );
    }
    let runs = c.get("/v1/runs?task=speedtest&limit=1000");
    assert_eq!(runs.as_array().unwrap().len(), AGENTS);
    assert_eq!(c.get("/v1/hosts").as_array().unwrap().len(), AGENTS);
}

#[test]
fn sigterm_exits_cleanly_and_keeps_acknowledged_events() {
    let tmp = tempfile::tempdir().unwrap();
    let mut c = Collector::start(tmp.path(), None, &[]);
    let (code, _) = c.post(Some(TOKEN), &batch("r-term", 100, "S1"));
    assert_eq!(code, 200);
    assert!(c.terminate(), "collector did not exit 0 on SIGTERM");
    assert_eq!(c.stored("r-term"), (100, 100, 99));
    c.restart();
    assert_eq!(c.get("/v1/runs/r-term")["run"]["events"], 100);
}

/// A collector whose tokens file has two global tokens and one bound to a
/// boot MAC.
const OTHER_TOKEN: &str = "other-global-token-77";
const MAC_TOKEN: &str = "mac-bound-token-99";

fn start_with_tokens(dir: &std::path::Path) -> Collector {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(
        dir.join("tokens"),
        format!("{TOKEN}\n{OTHER_TOKEN}\nhost=BOUND1 {HOST_TOKEN}\nhost=52:54:00:aa:bb:01 {MAC_TOKEN}\nrole=viewer {VIEWER_TOKEN}\n"),
    )
    .unwrap();
    Collector::start(dir, None, &[])
}

fn with_host(line: String, host: &str) -> String {
    let i = line.find(r#""host":{"#).unwrap();
    let j = i + line[i..].find('}').unwrap() + 1;
    format!("{}\"host\":{host}{}", &line[..i], &line[j..])
}

#[test]
fn runs_are_bound_to_their_host_and_token() {
    let tmp = tempfile::tempdir().unwrap();
    let c = start_with_tokens(tmp.path());
    assert_eq!(c.post(Some(TOKEN), &batch("r-live", 3, "S1")).0, 200);
    let before = c.stored_lines("r-live");

    // Another token, same host: refused, nothing stored.
    let ahead: String = (3..6).map(|s| log_line("r-live", s, "S1") + "\n").collect();
    let (code, body) = c.post(Some(OTHER_TOKEN), &ahead);
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("line 1") && body.contains("another token"),
        "{body}"
    );
    // The same token, another host: refused.
    let (code, body) = c.post(
        Some(TOKEN),
        &format!(
            "{}\n{}\n",
            log_line("r-live", 3, "S1"),
            log_line("r-live", 4, "S2")
        ),
    );
    assert_eq!(code, 403, "{body}");
    assert!(
        body.contains("line 2") && body.contains("belongs to host S1"),
        "{body}"
    );
    assert_eq!(c.stored_lines("r-live"), before);
    assert_eq!(c.get("/v1/runs/r-live")["run"]["events"], 3);

    // A MAC-bound token cannot file under another host's serial: its
    // events are filed under its MAC, so it can neither join r-live...
    let hijack = with_host(
        log_line("r-live", 3, "S1"),
        r#"{"serial":"S1","boot_mac":"52:54:00:AA:BB:01"}"#,
    );
    let (code, body) = c.post(Some(MAC_TOKEN), &format!("{hijack}\n"));
    assert_eq!(code, 403, "{body}");
    assert_eq!(c.stored_lines("r-live"), before);
    // ...nor create runs under serial VICTIM.
    let fake = with_host(
        log_line("r-fake", 0, "VICTIM"),
        r#"{"serial":"VICTIM","boot_mac":"52:54:00:aa:bb:01"}"#,
    );
    let (code, body) = c.post(Some(MAC_TOKEN), &format!("{fake}\n"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(c.get("/v1/runs?host=VICTIM").as_array().unwrap().len(), 0);
    let runs = c.get("/v1/runs?host=52:54:00:aa:bb:01");
    assert_eq!(runs[0]["run_id"], "r-fake", "{runs}");
    // A token without host= still files under the serial, as before.
    assert_eq!(c.get("/v1/runs?host=S1")[0]["run_id"], "r-live");
    // The owner goes on.
    let (code, body) = c.post(Some(TOKEN), &batch("r-live", 5, "S1"));
    assert_eq!(code, 200, "{body}");
    assert_eq!(c.stored("r-live"), (5, 5, 4));
}

#[test]
fn a_replay_with_other_content_is_a_conflict() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Collector::start(tmp.path(), None, &[]);
    assert_eq!(c.post(Some(TOKEN), &batch("r-c", 4, "S1")).0, 200);
    let before = c.stored_lines("r-c");
    let changed = event_line(
        "r-c",
        2,
        "S1",
        r#""type":"log","level":"info","message":"not hello""#,
    );
    let body = format!("{}\n{changed}\n", log_line("r-c", 4, "S1"));
    refused_at(&c, &body, 409, 2, "line 2");
    assert_eq!(c.stored_lines("r-c"), before, "nothing of the batch stored");
    assert_eq!(c.get("/v1/runs/r-c")["run"]["events"], 4);
    // The same content is still a duplicate.
    assert_eq!(accepted(&c, &batch("r-c", 5, "S1")), (1, 4));
}

/// Events planted ahead of a live run (same host and token: the host
/// itself) no longer make the real ones vanish as duplicates: the agent
/// gets 409, splits the batch down to the one line, skips only it, and
/// delivers every other event.
#[test]
fn agent_isolates_a_conflicting_event_and_delivers_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Collector::start(&tmp.path().join("collector"), None, &[]);
    let run_dir = tmp.path().join("agent");
    let tuning = fast_tuning(Duration::from_millis(200), Duration::from_millis(300));
    let bus = reporting_bus("speedtest", "AG1", c.url(), &run_dir, tuning);
    let run = bus.run_id().to_string();
    let planted = event_line(
        &run,
        3,
        "AG1",
        r#""type":"log","level":"info","message":"planted""#,
    )
    .replace(r#""task":"t""#, r#""task":"speedtest""#);
    assert_eq!(c.post(Some(TOKEN), &format!("{planted}\n")).0, 200);
    for s in 0..10 {
        bus.step("bench.cpu").log(format!("event {s}"));
    }
    bus.close(Duration::from_secs(20));
    let left = std::fs::read_dir(run_dir.join("spool")).unwrap().count();
    assert_eq!(left, 0, "spool not drained: the 409 was retried");
    let lines = c.stored_lines(&run);
    assert_eq!(lines.len(), 10, "{lines:#?}");
    assert!(lines[3].contains("planted"), "{}", lines[3]);
    for (i, l) in lines.iter().enumerate().filter(|(i, _)| *i != 3) {
        assert!(l.contains(&format!("event {i}")), "{l}");
    }
}

#[test]
fn enumerated_fields_are_checked_at_ingest() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Collector::start(tmp.path(), None, &[]);
    let hostile = event_line(
        "r-xss",
        1,
        "S1",
        r#""type":"run_finished","outcome":"x\" onmouseover=\"alert(1)","exit_status":1,"duration_ms":5"#,
    );
    let body = format!("{}\n{hostile}\n", log_line("r-xss", 0, "S1"));
    refused_at(&c, &body, 400, 2, "run_finished outcome");
    let step = event_line(
        "r-xss",
        1,
        "S1",
        r#""type":"step_finished","outcome":"bogus","duration_ms":5"#,
    );
    assert_eq!(c.post(Some(TOKEN), &format!("{step}\n")).0, 400);
    assert_eq!(c.stored("r-xss").0, 0);
    for o in ["success", "failed", "timed_out", "refused"] {
        let run = format!("r-{o}");
        let line = event_line(
            &run,
            0,
            "S1",
            &format!(r#""type":"run_finished","outcome":"{o}","exit_status":1,"duration_ms":5"#),
        );
        assert_eq!(c.post(Some(TOKEN), &format!("{line}\n")).0, 200, "{o}");
        assert_eq!(c.get(&format!("/v1/runs/{run}"))["run"]["outcome"], o);
    }
}

/// A POST whose body is sent only partly: it holds one in-flight slot
/// until `finish` sends the rest (a valid batch of `n` events).
struct SlowPost {
    sock: std::net::TcpStream,
    rest: Vec<u8>,
}

impl SlowPost {
    fn start(port: u16, run: &str, n: u64) -> SlowPost {
        use std::io::Write;
        let body = batch(run, n, "SLOW1").into_bytes();
        let mut sock = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        write!(
            sock,
            "POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .unwrap();
        sock.write_all(&body[..10]).unwrap();
        SlowPost {
            sock,
            rest: body[10..].to_vec(),
        }
    }

    /// Whether it was answered already (refused before its body came).
    fn answered(&self) -> bool {
        self.sock.set_nonblocking(true).unwrap();
        let r = self.sock.peek(&mut [0u8; 1]);
        self.sock.set_nonblocking(false).unwrap();
        matches!(r, Ok(n) if n > 0)
    }

    /// Send the rest; the status line's code.
    fn finish(mut self) -> u16 {
        use std::io::{Read, Write};
        self.sock.write_all(&self.rest).unwrap();
        let mut buf = [0u8; 12];
        self.sock.read_exact(&mut buf).unwrap();
        std::str::from_utf8(&buf[9..12]).unwrap().parse().unwrap()
    }
}

#[test]
fn requests_beyond_the_in_flight_limit_get_503_and_agents_retry() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Collector::start(
        &tmp.path().join("collector"),
        None,
        &["--max-in-flight", "2"],
    );
    let mut slow: Vec<SlowPost> = (0..2)
        .map(|i| SlowPost::start(c.port, &format!("slow-{i}"), 20))
        .collect();
    // Both slots are taken once the collector has read both heads. A probe
    // may take a slot first and a slow POST be answered 503 instead: it is
    // started again.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let refused = loop {
        std::thread::sleep(Duration::from_millis(50));
        for (i, s) in slow.iter_mut().enumerate() {
            if s.answered() {
                *s = SlowPost::start(c.port, &format!("slow-{i}"), 20);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
        match ureq::get(&format!("{}/healthz", c.url())).call() {
            Err(ureq::Error::Status(503, r)) => break r,
            _ => assert!(std::time::Instant::now() < deadline, "never full"),
        }
    };
    assert_eq!(refused.header("Retry-After"), Some("1"));
    let (code, resp) = c.post(Some(TOKEN), &batch("full", 3, "FULL1"));
    assert_eq!(code, 503, "{resp}");
    assert!(resp.contains("too many requests in flight"), "{resp}");
    assert_eq!(c.stored("full"), (0, 0, -1));

    // Agents reporting while it is full keep their events and retry.
    let agents: Vec<_> = (0..6)
        .map(|i| {
            let url = c.url();
            let run_dir = tmp.path().join(format!("agent{i}"));
            std::thread::spawn(move || {
                let tuning = fast_tuning(Duration::from_millis(300), Duration::from_millis(10));
                let bus = reporting_bus("limited", &format!("LIM{i}"), url, &run_dir, tuning);
                logged_run(&bus, "bench.cpu", 50)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    for s in slow {
        assert_eq!(s.finish(), 200);
    }
    for a in agents {
        let id = a.join().unwrap();
        assert_eq!(c.stored(&id), (50, 50, 49), "{id}: every event once");
    }
    assert_eq!(c.stored("slow-0"), (20, 20, 19));
}

fn progress_line(run: &str, seq: u64) -> String {
    event_line(
        run,
        seq,
        "LONG1",
        &format!(
            r#""type":"progress","percent":{}.0,"bytes":{seq}"#,
            seq % 100
        ),
    )
    .replace(r#""step":"s""#, r#""step":"wipe""#)
}

/// A 48 h wipe reports millions of progress events: the run page and the
/// JSON are served in bounded size, paging walks every event exactly once,
/// and the results stay complete.
#[test]
fn a_run_with_200000_progress_events_is_paged() {
    const PROGRESS: u64 = 200_000;
    let tmp = tempfile::tempdir().unwrap();
    let c = Collector::start(&tmp.path().join("collector"), None, &[]);
    let run = "long-wipe";
    let mut seq = 0;
    let mut other = Vec::new(); // seqs of the events that are not progress
    let mut body = String::new();
    let flush = |body: &mut String| {
        let (code, resp) = c.post(Some(TOKEN), body);
        assert_eq!(code, 200, "{resp}");
        body.clear();
    };
    for i in 0..PROGRESS {
        if i % 40_000 == 0 {
            body.push_str(&log_line(run, seq, "LONG1"));
            body.push('\n');
            other.push(seq);
            seq += 1;
        }
        body.push_str(&progress_line(run, seq));
        body.push('\n');
        seq += 1;
        if i % 20_000 == 19_999 {
            flush(&mut body);
        }
    }
    let result = event_line(
        run,
        seq,
        "LONG1",
        r#""type":"result","data":{"disks":[{"name":"sda","outcome":"wiped"}]}"#,
    );
    let done = event_line(
        run,
        seq + 1,
        "LONG1",
        r#""type":"run_finished","outcome":"success","exit_status":0,"duration_ms":172800000"#,
    );
    other.extend([seq, seq + 1]);
    body = format!("{result}\n{done}\n");
    flush(&mut body);
    let total = seq + 2;

    let get = |path: &str| c.get_text(path);
    // The page: the last events, the progress counted, the result whole.
    let html = get(&format!("/runs/{run}"));
    assert!(html.len() < 100_000, "run page is {} bytes", html.len());
    assert!(
        html.contains(&format!("{PROGRESS} progress event(s) counted")),
        "{html}"
    );
    assert!(
        html.contains("&quot;wiped&quot;") && html.contains("success"),
        "{html}"
    );
    assert!(
        html.contains(&format!("/runs/{run}?after_seq=-1")),
        "{html}"
    );

    // The JSON: one page by default, every type, a cursor to the next.
    let v: serde_json::Value = serde_json::from_str(&get(&format!("/v1/runs/{run}"))).unwrap();
    let page = v["events"].as_array().unwrap();
    assert_eq!(page.len(), 5000);
    assert_eq!(v["page"]["next_after_seq"], 4999);
    assert_eq!(v["run"]["events"], total);
    assert_eq!(
        v["results"].as_array().unwrap().len(),
        1,
        "results complete"
    );
    let small = get(&format!("/v1/runs/{run}?progress=omit"));
    assert!(small.len() < 20_000, "{} bytes", small.len());

    // Every page of `/v1/runs/{run}?{query}` from the start, each to `f`,
    // following the cursors.
    let walk = |query: &str, f: &mut dyn FnMut(&serde_json::Value)| {
        let mut after = -1i64;
        loop {
            let v: serde_json::Value =
                serde_json::from_str(&get(&format!("/v1/runs/{run}?after_seq={after}&{query}")))
                    .unwrap();
            f(&v);
            match v["page"]["next_after_seq"].as_i64() {
                Some(n) => after = n,
                None => break,
            }
        }
    };
    let seqs = |v: &serde_json::Value| -> Vec<u64> {
        let events = v["events"].as_array().unwrap();
        events.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
    };
    // Walking every page sees every event exactly once.
    let mut seen = Vec::new();
    walk("limit=50000&progress=all", &mut |v| seen.extend(seqs(v)));
    assert_eq!(seen, (0..total).collect::<Vec<_>>());
    // Without progress, in small pages: the others once, the progress
    // counted once.
    let (mut listed, mut counted) = (Vec::new(), 0);
    walk("limit=2&progress=omit", &mut |v| {
        listed.extend(seqs(v));
        for p in v["page"]["progress_omitted"].as_array().unwrap() {
            assert_eq!(p["step"], "wipe");
            counted += p["count"].as_u64().unwrap();
        }
    });
    assert_eq!(listed, other);
    assert_eq!(counted, PROGRESS);
}

/// `/` with a few thousand hosts: one page at a time, the total shown,
/// and the pages together list every host exactly once.
#[test]
fn the_host_list_is_paged() {
    const HOSTS: usize = 3000;
    let tmp = tempfile::tempdir().unwrap();
    let c = Collector::start(&tmp.path().join("collector"), None, &[]);
    for chunk in (0..HOSTS).collect::<Vec<_>>().chunks(1000) {
        let body: String = chunk
            .iter()
            .map(|i| log_line(&format!("h-{i}"), 0, &format!("HK{i:05}")) + "\n")
            .collect();
        let (code, resp) = c.post(Some(TOKEN), &body);
        assert_eq!(code, 200, "{resp}");
    }
    let get = |path: &str| c.get_text(path);
    let mut seen = Vec::new();
    let mut path = "/".to_string();
    loop {
        let html = get(&path);
        assert!(html.len() < 60_000, "{path}: {} bytes", html.len());
        assert!(html.contains(&format!("Hosts ({HOSTS})")), "{html}");
        let hosts = html.split("class=\"hosts\"").nth(1).unwrap();
        let hosts = hosts.split("</table>").next().unwrap();
        seen.extend(
            hosts
                .split("<a href=\"/hosts/")
                .skip(1)
                .map(|s| s.split('"').next().unwrap().to_string()),
        );
        match html.split("<a href=\"/?offset=").find_map(|s| {
            let (n, rest) = s.split_once('"')?;
            rest.starts_with(">next<").then(|| n.to_string())
        }) {
            Some(n) => path = format!("/?offset={n}"),
            None => break,
        }
    }
    seen.sort();
    let want: Vec<String> = (0..HOSTS).map(|i| format!("HK{i:05}")).collect();
    assert_eq!(seen, want);
    // The API: pages of `limit`, the total in X-Total-Count.
    let r = ureq::get(&format!("{}/v1/hosts?limit=500&offset=2900", c.url()))
        .set("Authorization", &format!("Bearer {VIEWER_TOKEN}"))
        .call()
        .unwrap();
    assert_eq!(r.header("X-Total-Count"), Some("3000"));
    let v: serde_json::Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 100);
}
