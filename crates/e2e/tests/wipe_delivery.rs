//! The wipe against the real collector (root only, loop devices): a run
//! that powers off stays up until its certificates are delivered, and a
//! certificate the collector refuses fails the run. Moved from the agent's
//! tests/wipe.rs, which may not link the collector's test support.

mod common;

use serde_json::Value;
use speediso_testsupport::loops::{ready as loops_ready, Loop};
use std::path::{Path, PathBuf};
use std::process::Command;

const MIB: u64 = 1 << 20;

fn bin() -> PathBuf {
    speediso_testsupport::bin("speediso")
}

/// Root and the tools, or skip (fail under SPEEDISO_REQUIRE_TOOLS=1).
fn ready(tools: &[&str]) -> bool {
    loops_ready("wipe loop-device test", tools)
}

/// Audit item 6: a decommission-style run (after=poweroff) whose
/// collector is down stays up with its certificates, says so on the
/// console and in `speediso status`, and delivers them (then exits, so the
/// dispatcher may power off) once the collector is back. With
/// `speediso.wipe.poweroff_undelivered=1` it gives up after the drain.
#[test]
fn a_run_that_powers_off_stays_up_until_its_certificates_are_delivered() {
    use std::time::{Duration, Instant};
    if !ready(&["losetup"]) {
        return;
    }
    let l = Loop::new(2 * MIB, 0x33);
    let tmp = tempfile::tempdir().unwrap();
    let port = speediso_testsupport::free_port();
    // A provisioned key, which the collector lists as trusted.
    let key = tmp.path().join("wipe.key");
    std::fs::write(
        &key,
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60\n",
    )
    .unwrap();
    let trusted = tmp.path().join("trusted-signers");
    std::fs::write(
        &trusted,
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a lab key\n",
    )
    .unwrap();
    let line = format!(
        "speediso.report=http://127.0.0.1:{port} speediso.token={} speediso.spool.drain=1s \
         speediso.after=poweroff speediso.wipe.method=zero speediso.wipe.key={}",
        speediso_testsupport::collector::TOKEN,
        key.display()
    );
    let spawn = |line: &str, run_dir: &Path| {
        Command::new(bin())
            .args(["--cmdline", line, "run", "wipe", "--confirm", "wipe"])
            .env("SPEEDISO_WIPE_TEST_ALLOW", &l.dev)
            .env("SPEEDISO_RUN_DIR", run_dir)
            .env_remove("SPEEDISO_WIPE_ALLOW_REAL")
            .env_remove("SPEEDISO")
            .env_remove("INVOCATION_ID")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };

    // Allowed to power off without them: gives up after the drain.
    let run_dir = tmp.path().join("run-giveup");
    let giveup = format!("{line} speediso.wipe.poweroff_undelivered=1");
    let t0 = Instant::now();
    let out = spawn(&giveup, &run_dir).wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(t0.elapsed() < Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("NOT DELIVERED"), "{stderr}");
    assert!(!stderr.contains("STAYS UP"), "{stderr}");

    // The default: stays up.
    let run_dir = tmp.path().join("run");
    let mut child = spawn(&line, &run_dir);
    let hold_file = run_dir.join("spool/HOLDING-FOR-CERTIFICATES.json");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !hold_file.exists() {
        assert!(Instant::now() < deadline, "no hold file");
        assert!(
            child.try_wait().unwrap().is_none(),
            "exited without delivering"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the run exited with its certificate undelivered"
    );
    let status = Command::new(bin())
        .args(["--cmdline", &line, "status", "--json"])
        .env("SPEEDISO_RUN_DIR", &run_dir)
        .output()
        .unwrap();
    let st: Value = serde_json::from_slice(&status.stdout).unwrap();
    // The disk's certificate, and the server's.
    assert_eq!(st["report_backlog"]["undelivered_certificates"], 2, "{st}");
    assert!(
        st["report_backlog"]["holding_for_certificates"].is_object(),
        "{st}"
    );
    assert!(
        !String::from_utf8_lossy(&status.stdout).contains(speediso_testsupport::collector::TOKEN)
    );
    let text = Command::new(bin())
        .args(["--cmdline", &line, "status"])
        .env("SPEEDISO_RUN_DIR", &run_dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("HOLDING:"), "{text}");

    // The collector comes back: the certificate goes in, the run ends.
    let c = speediso_testsupport::collector::Collector::start(
        &tmp.path().join("collector"),
        Some(port),
        &["--trusted-signers", trusted.to_str().unwrap()],
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        assert!(
            Instant::now() < deadline,
            "still holding with the collector up"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("ERASURE CERTIFICATE(S) NOT DELIVERED"),
        "{stderr}"
    );
    assert!(stderr.contains("STAYS UP"), "{stderr}");
    assert!(
        stderr.contains("every erasure certificate delivered"),
        "{stderr}"
    );
    assert!(!hold_file.exists());
    let runs = c.get("/v1/runs?task=wipe");
    let run_id = runs[0]["run_id"].as_str().unwrap().to_string();
    let run = c.get(&format!("/v1/runs/{run_id}"));
    let ids = run["certificates"].as_array().unwrap();
    // The disk's and the server's.
    assert_eq!(ids.len(), 2, "{} certificates", ids.len());
    // The real agent's certificates, through the real collector: accepted
    // for their own run and host, and trusted by the listed key.
    let mut schemas = Vec::new();
    for id in ids {
        let got = c.get(&format!("/v1/certificates/{}", id.as_str().unwrap()));
        let v = &got["verification"];
        assert_eq!(v["valid"], true, "{v}");
        assert_eq!(v["trust"], "trusted", "{v}");
        assert_eq!(v["signer_name"], "lab key", "{v}");
        assert_eq!(v["key_source"], format!("file:{}", key.display()), "{v}");
        schemas.push(
            got["certificate"]["schema"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        );
    }
    schemas.sort();
    assert_eq!(
        schemas,
        [
            "speediso.wipe.certificate/2",
            "speediso.wipe.server-certificate/1"
        ]
    );
    let stored = c.stored_lines(&run_id);
    assert!(stored.iter().any(|l| l.contains("\"run_finished\"")));
}

/// Review of audit item 6: a certificate the collector refuses is not a
/// delivered one. Here a task names its wipe step `erase`, and the
/// collector takes certificates only from a step `wipe`: the refused line
/// is kept next to the spool and the run fails (so nothing powers off),
/// instead of "every certificate delivered".
#[test]
fn a_refused_certificate_fails_the_run_and_is_kept() {
    if !ready(&["losetup"]) {
        return;
    }
    let l = Loop::new(2 * MIB, 0x44);
    let tmp = tempfile::tempdir().unwrap();
    let c =
        speediso_testsupport::collector::Collector::start(&tmp.path().join("collector"), None, &[]);
    let tasks = tmp.path().join("tasks");
    std::fs::create_dir(&tasks).unwrap();
    std::fs::write(
        tasks.join("scrap.toml"),
        "name = \"scrap\"\ndescription = \"erase, then power off\"\ndestructive = true\n\
         time_limit = \"1h\"\nafter = \"poweroff\"\n[[steps]]\nmodule = \"wipe\"\nid = \"erase\"\n",
    )
    .unwrap();
    let run_dir = tmp.path().join("run");
    let out = Command::new(bin())
        .arg("--tasks-dir")
        .arg(&tasks)
        .args([
            "--cmdline",
            &format!(
                "speediso.report={} speediso.token={} speediso.spool.drain=5s speediso.wipe.method=zero",
                c.url(),
                speediso_testsupport::collector::TOKEN
            ),
            "run",
            "scrap",
            "--confirm",
            "scrap",
        ])
        .env("SPEEDISO_WIPE_TEST_ALLOW", &l.dev)
        .env("SPEEDISO_RUN_DIR", &run_dir)
        .env_remove("SPEEDISO_WIPE_ALLOW_REAL")
        .env_remove("SPEEDISO")
        .env_remove("INVOCATION_ID")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(l.bytes().iter().all(|&b| b == 0), "the disk was erased");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("REFUSED an erasure certificate"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("every erasure certificate delivered"),
        "{stderr}"
    );
    let refused = common::spooled(&run_dir, "refused");
    assert_eq!(refused.len(), 1, "{refused:?}");
    let kept = std::fs::read_to_string(&refused[0]).unwrap();
    assert!(kept.contains("\"certificates\":[{"), "{kept}");
}
