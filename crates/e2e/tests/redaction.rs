//! Secrets never leave the agent: a real inventory run with the report
//! token and Foreman credentials on its kernel command line, delivered to
//! the real collector on 127.0.0.1, and then every place the agent wrote to
//! or the collector serves is searched for them (audit item 1).

use serde_json::Value;
use speediso_testsupport::collector::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FOREMAN_PASS: &str = "Foreman-Pa55-7781";

fn speediso(root: &Path, run_dir: &Path, line: &str, args: &[&str]) -> Output {
    Command::new(speediso_testsupport::bin("speediso"))
        .args(args)
        .arg("--root")
        .arg(root)
        .args(["--cmdline", line])
        .env("SPEEDISO_RUN_DIR", run_dir)
        .env_remove("SPEEDISO")
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap()
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// A viewer's GET (an agent token reads nothing).
fn http_text(url: &str) -> String {
    match ureq::get(url)
        .set("Authorization", &format!("Bearer {VIEWER_TOKEN}"))
        .call()
    {
        Ok(r) => r.into_string().unwrap(),
        Err(ureq::Error::Status(_, r)) => r.into_string().unwrap(),
        Err(e) => panic!("GET {url}: {e}"),
    }
}

/// Every sink and every collector response, searched for the secrets.
#[test]
fn token_and_url_credentials_reach_no_sink_and_no_collector_response() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Collector::start(&tmp.path().join("collector"), None, &[]);
    // A machine's tree whose /proc/cmdline carries the secrets, as a
    // Foreman-booted server's does.
    let root = tmp.path().join("root");
    let st = Command::new("cp")
        .args([
            "-a",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../fixtures/sysroot/qemu-q35"
            ),
        ])
        .arg(&root)
        .status()
        .unwrap();
    assert!(st.success());
    let line = format!(
        "console=ttyS0 BOOTIF=01-52-54-00-12-34-56 systemd.setenv=SPEEDISO=inventory \
         speediso.report={} speediso.token={TOKEN} \
         speediso.foreman=http://ops:{FOREMAN_PASS}@127.0.0.1:{}/ speediso.inventory.smart=0",
        c.url(),
        c.port
    );
    std::fs::write(root.join("proc/cmdline"), format!("{line}\n")).unwrap();
    let run_dir = tmp.path().join("run");

    let mut seen: Vec<(String, String)> = Vec::new();
    let mut keep = |what: &str, bytes: &[u8]| {
        seen.push((
            what.to_string(),
            String::from_utf8_lossy(bytes).into_owned(),
        ));
    };

    let run = speediso(&root, &run_dir, &line, &["run", "inventory", "--json"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    keep("run --json stdout", &run.stdout);
    keep("run --json stderr", &run.stderr);
    let events: Vec<Value> = String::from_utf8_lossy(&run.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let run_id = events[0]["run_id"].as_str().unwrap().to_string();

    let human = speediso(&root, &run_dir, &line, &["run", "inventory"]);
    keep("run stdout", &human.stdout);
    keep("run stderr", &human.stderr);
    for args in [
        &["status", "--json"][..],
        &["status"],
        &["dispatch", "--dry-run", "--json"],
        &["dispatch", "--dry-run"],
        &["inventory", "--json"],
        &["inventory"],
    ] {
        let o = speediso(&root, &run_dir, &line, args);
        keep(&format!("{args:?} stdout"), &o.stdout);
        keep(&format!("{args:?} stderr"), &o.stderr);
    }
    // The same, reading the secrets from the fake <root>/proc/cmdline as on
    // a booted machine (no --cmdline).
    for args in [
        &["dispatch", "--dry-run", "--json"][..],
        &["dispatch", "--dry-run"],
        &["status"],
    ] {
        let o = Command::new(speediso_testsupport::bin("speediso"))
            .args(args)
            .arg("--root")
            .arg(&root)
            .env("SPEEDISO_RUN_DIR", &run_dir)
            .env_remove("SPEEDISO")
            .env_remove("NOTIFY_SOCKET")
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        if args.contains(&"--dry-run") {
            assert!(
                out.contains("127.0.0.1") && out.contains("***"),
                "{args:?} read <root>/proc/cmdline and masked the token:\n{out}"
            );
        }
        keep(&format!("{args:?} (proc/cmdline) stdout"), &o.stdout);
        keep(&format!("{args:?} (proc/cmdline) stderr"), &o.stderr);
    }
    // A bad value next to the secrets: the rejection names the key, not them.
    let bad = format!("{line} speediso.after=sometimes");
    let o = speediso(&root, &run_dir, &bad, &["dispatch", "--dry-run", "--json"]);
    keep("rejected dry-run", &o.stdout);
    keep("rejected dry-run stderr", &o.stderr);
    assert!(String::from_utf8_lossy(&o.stdout).contains("speediso.after"));

    let mut files = Vec::new();
    files_under(&run_dir, &mut files);
    assert!(files.iter().any(|f| f.ends_with("state.json")), "{files:?}");
    for f in &files {
        keep(&f.display().to_string(), &std::fs::read(f).unwrap());
    }

    // The collector got the run (so the check below is not vacuous), with
    // the kernel command line masked, not dropped.
    let stored = c.stored_lines(&run_id);
    assert!(stored.len() >= 4, "{stored:?}");
    let result = stored
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["type"] == "result")
        .expect("inventory result stored");
    let cmdline = result["data"]["kernel"]["cmdline"].as_str().unwrap();
    assert!(cmdline.contains("speediso.token=***"), "{cmdline}");
    assert!(cmdline.contains("http://***@127.0.0.1"), "{cmdline}");
    for l in &stored {
        keep("stored line", l.as_bytes());
    }
    let host_key = result["host"]["boot_mac"]
        .as_str()
        .unwrap_or("")
        .to_string();
    for path in [
        "/v1/hosts".to_string(),
        "/v1/runs".to_string(),
        format!("/v1/runs/{run_id}"),
        "/".to_string(),
        format!("/runs/{run_id}"),
        format!("/hosts/{host_key}"),
    ] {
        keep(&path, http_text(&format!("{}{path}", c.url())).as_bytes());
    }
    keep("database file", &std::fs::read(c.dir.join("c.db")).unwrap());

    for (what, text) in &seen {
        assert!(
            !text.contains(TOKEN),
            "the token leaked into {what}:\n{text}"
        );
        assert!(
            !text.contains(FOREMAN_PASS),
            "the Foreman password leaked into {what}:\n{text}"
        );
        assert!(
            !text.contains(&format!("ops:{FOREMAN_PASS}")),
            "{what}: {text}"
        );
    }
    // The dry-run still shows which options were set.
    let dry = seen
        .iter()
        .find(|(w, _)| w.contains("\"dispatch\", \"--dry-run\", \"--json\""))
        .unwrap();
    let v: Value = serde_json::from_str(&dry.1).unwrap();
    assert_eq!(v["options"]["token"], "***");
    assert_eq!(v["options"]["report"], c.url());
}
