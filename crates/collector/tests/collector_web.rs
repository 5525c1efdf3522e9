//! The collector's web pages in a real headless Chromium (Debian package
//! `chromium`): the host list, a run page, a failed run, and a host page
//! that flags a server slower than its same-CPU siblings.

use speediso_testsupport::collector::*;
use speediso_testsupport::output_ok;
use std::path::Path;
use std::process::Command;

/// The Chromium binary, or `None` (test skipped) unless
/// SPEEDISO_REQUIRE_TOOLS=1, where a missing browser fails.
fn chromium() -> Option<&'static str> {
    for b in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(b);
        }
    }
    speediso_testsupport::missing(
        "chromium not found (apt-get install chromium; see tests/apt/report.txt)",
    );
    None
}

fn browser_args(profile: &Path) -> Vec<String> {
    [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

/// The DOM Chromium built for `url`.
fn dump_dom(bin: &str, profile: &Path, url: &str) -> String {
    let out = Command::new("timeout")
        .arg("90")
        .arg(bin)
        .args(browser_args(profile))
        .arg("--dump-dom")
        .arg(url)
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && dom.contains("</html>"),
        "chromium on {url}: {}\n{dom}",
        String::from_utf8_lossy(&out.stderr)
    );
    dom
}

fn inventory_result(run: &str, seq: u64, serial: &str, model: &str) -> String {
    event_line(
        run,
        seq,
        serial,
        &format!(r#""type":"result","data":{{"cpu":{{"model":"{model}","cores":16}}}}"#),
    )
    .replace(r#""step":"s""#, r#""step":"inventory""#)
}

fn bench_result(run: &str, seq: u64, serial: &str, eps: f64, lat: f64) -> String {
    event_line(
        run,
        seq,
        serial,
        &format!(
            r#""type":"result","data":{{"events_per_second":{{"all":{eps}}},"latency_us":{lat}}}"#
        ),
    )
    .replace(r#""step":"s""#, r#""step":"bench.cpu""#)
}

fn finished(run: &str, seq: u64, serial: &str, outcome: &str, error: Option<&str>) -> String {
    let err = error
        .map(|e| format!(r#","error":"{e}""#))
        .unwrap_or_default();
    let status = if outcome == "success" { 0 } else { 1 };
    event_line(
        run,
        seq,
        serial,
        &format!(
            r#""type":"run_finished","outcome":"{outcome}","exit_status":{status},"duration_ms":83000{err}"#
        ),
    )
}

fn started(run: &str, serial: &str) -> String {
    event_line(
        run,
        0,
        serial,
        r#""type":"run_started","steps":["inventory","bench.cpu"],"destructive":false,"after":"stay","agent_version":"0.1.0""#,
    )
}

#[test]
fn pages_in_headless_chromium() {
    let Some(bin) = chromium() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let c = Collector::start(&tmp.path().join("collector"), None, &[]);
    let model = "AMD EPYC 7302 16-Core Processor";
    // Three siblings with the same CPU; SLOW03 is 40% slower.
    for (serial, eps, lat) in [
        ("FAST01", 1000.0, 10.0),
        ("FAST02", 1040.0, 11.0),
        ("SLOW03", 600.0, 30.0),
    ] {
        let run = format!("run-{}", serial.to_lowercase());
        let body = [
            started(&run, serial),
            inventory_result(&run, 1, serial, model),
            bench_result(&run, 2, serial, eps, lat),
            finished(&run, 3, serial, "success", None),
        ]
        .join("\n");
        assert_eq!(c.post(Some(TOKEN), &body).0, 200);
    }
    // A failed run on SLOW03.
    let failed = [
        started("run-failed", "SLOW03"),
        event_line("run-failed", 1, "SLOW03", r#""type":"warning","message":"disk /dev/sdb: 12 reallocated sectors""#),
        event_line(
            "run-failed",
            2,
            "SLOW03",
            r#""type":"step_finished","outcome":"failed","duration_ms":4000,"error":"fio: I/O error on /dev/sdb""#,
        )
        .replace(r#""step":"s""#, r#""step":"bench.disk""#),
        finished("run-failed", 3, "SLOW03", "failed", Some("failed steps: bench.disk")),
    ]
    .join("\n");
    assert_eq!(c.post(Some(TOKEN), &failed).0, 200);

    let profile = tmp.path().join("chromium-profile");
    // Chromium without a session is sent to the login form...
    let dom = dump_dom(bin, &profile, &format!("{}/runs/run-failed", c.url()));
    assert!(
        dom.contains("action=\"/login\"") && dom.contains("value=\"/runs/run-failed\""),
        "not logged in: the login form, back to the run after it:\n{dom}"
    );
    // ...and with one (logged in through the form) sees the pages.
    let session = c.login(VIEWER_USER.0, VIEWER_USER.1);
    let proxy = session_proxy(c.port, &session);
    let url = format!("http://127.0.0.1:{proxy}");

    // Host list and recent runs.
    let dom = dump_dom(bin, &profile, &format!("{url}/"));
    for s in ["FAST01", "FAST02", "SLOW03"] {
        assert!(
            dom.contains(&format!("href=\"/hosts/{s}\">{s}</a>")),
            "host {s} linked:\n{dom}"
        );
    }
    assert!(dom.contains(model), "{dom}");
    assert!(dom.contains("href=\"/runs/run-failed\""), "{dom}");
    assert!(
        dom.contains("<td class=\"outcome failed\">failed</td>"),
        "{dom}"
    );
    assert!(
        dom.contains("bench.cpu events_per_second.all=600"),
        "key figures:\n{dom}"
    );
    assert!(dom.contains("1m23s"), "duration:\n{dom}");

    // The failed run: outcome, error, timeline in seq order.
    let dom = dump_dom(bin, &profile, &format!("{url}/runs/run-failed"));
    assert!(
        dom.contains("<td class=\"outcome failed\">failed</td>"),
        "{dom}"
    );
    assert!(dom.contains("failed steps: bench.disk"), "{dom}");
    assert!(dom.contains("fio: I/O error on /dev/sdb"), "{dom}");
    assert!(dom.contains("12 reallocated sectors"), "{dom}");
    let timeline = dom
        .split("class=\"timeline\"")
        .nth(1)
        .expect("timeline table");
    let seqs: Vec<usize> = (0..4)
        .map(|i| timeline.find(&format!("<td>{i}</td>")).unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "timeline in seq order"
    );

    // A successful run page with its results.
    let dom = dump_dom(bin, &profile, &format!("{url}/runs/run-fast01"));
    assert!(
        dom.contains("<td class=\"outcome success\">success</td>"),
        "{dom}"
    );
    assert!(dom.contains("events_per_second"), "{dom}");

    // The slow sibling stands out; a fast one does not.
    let dom = dump_dom(bin, &profile, &format!("{url}/hosts/SLOW03"));
    assert!(dom.contains("id=\"slower-summary\""), "{dom}");
    let row = dom
        .split("<tr")
        .find(|r| r.contains("events_per_second.all"))
        .expect("figure row");
    assert!(row.contains("class=\"slower\""), "{row}");
    assert!(row.contains("-41.2%"), "600 vs median 1020: {row}");
    let lat = dom.split("<tr").find(|r| r.contains("latency_us")).unwrap();
    assert!(
        lat.contains("class=\"slower\""),
        "higher latency is slower: {lat}"
    );
    let dom = dump_dom(bin, &profile, &format!("{url}/hosts/FAST01"));
    assert!(!dom.contains("slower-summary"), "{dom}");

    // And a screenshot renders (a real layout, not an error page).
    let shot = tmp.path().join("run.png");
    output_ok(
        Command::new("timeout")
            .arg("90")
            .arg(bin)
            .args(browser_args(&profile))
            .arg(format!("--screenshot={}", shot.display()))
            .arg("--window-size=1280,900")
            .arg(format!("{url}/runs/run-failed")),
    );
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert!(png.len() > 10_000, "screenshot of {} bytes", png.len());
}

/// Free-text fields with markup in them (host identities, task, step,
/// messages) come out as text on every page; an outcome that is not one
/// of the agent's is refused at ingest.
#[test]
fn hostile_strings_never_become_markup() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Collector::start(&tmp.path().join("collector"), None, &[]);
    let h = r#"x\" onmouseover=\"alert(1)\" y='<script>alert(2)</script>"#;
    let bad = finished("run-x", 1, "S1", "x\\\" onmouseover=\\\"alert(1)", None);
    let (code, body) = c.post(Some(TOKEN), &format!("{bad}\n"));
    assert_eq!(code, 400, "{body}");
    let line = |seq: u64, fields: &str| {
        format!(
            r#"{{"v":1,"run_id":"run-h","seq":{seq},"ts":"2026-01-01T00:00:0{seq}.000Z","host":{{"serial":"{h}","hostname":"{h}","boot_mac":"{h}"}},"task":"{h}","step":"{h}",{fields}}}"#
        )
    };
    let body = [
        line(0, r#""type":"run_started","steps":["a"],"destructive":false,"after":"stay","agent_version":"0""#),
        line(1, &format!(r#""type":"warning","message":"{h}""#)),
        line(2, &format!(r#""type":"result","data":{{"cpu":{{"model":"{h}"}}}}"#)),
        line(3, &format!(r#""type":"run_finished","outcome":"failed","exit_status":1,"duration_ms":5,"error":"{h}""#)),
    ]
    .join("\n");
    let (code, resp) = c.post(Some(TOKEN), &body);
    assert_eq!(code, 200, "{resp}");
    let key = serde_json::from_str::<serde_json::Value>(&format!("\"{h}\"")).unwrap();
    let key = key.as_str().unwrap();
    let enc: String = key
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    for path in [
        "/".to_string(),
        "/runs/run-h".into(),
        format!("/hosts/{enc}"),
    ] {
        let page = c.get_text(&path);
        assert!(
            page.contains("onmouseover=&quot;alert(1)"),
            "{path}: shown as text:\n{page}"
        );
        assert!(!page.contains("onmouseover=\""), "{path}:\n{page}");
        assert!(!page.contains("<script"), "{path}:\n{page}");
        assert!(!page.contains("y='"), "{path}:\n{page}");
    }
}
