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
    // Its strip chart: the two siblings as dots, this host as a red bar.
    assert_eq!(row.matches("<circle").count(), 2, "{row}");
    assert!(
        row.contains("class=\"this-host\"") && row.contains("#c00020"),
        "{row}"
    );
    screenshot(
        bin,
        &profile,
        &format!("{}/hosts/SLOW03", c.url()),
        "host-slower.png",
    );
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

// ---------------------------------------------------------------------
// The fleet board, host inventory, run progress chart and certificate
// documents (HTML and PDF), with events posted through the real ingest.

use serde_json::{json, Value};
use std::path::PathBuf;

/// How the tests reach the pages: logged in as a viewer (the real login
/// form), the base URL and the headers every request carries, and for
/// Chromium (which cannot fill the form) a loopback proxy that adds the
/// session cookie.
struct Session {
    base: String,
    browser_base: String,
    headers: Vec<(String, String)>,
}

impl Session {
    fn new(c: &Collector) -> Session {
        let session = c.login(VIEWER_USER.0, VIEWER_USER.1);
        let proxy = session_proxy(c.port, &session);
        Session {
            base: c.url(),
            browser_base: format!("http://127.0.0.1:{proxy}"),
            headers: vec![("Cookie".into(), format!("speediso_session={session}"))],
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The URL Chromium opens: through the session proxy.
    fn browser(&self, path: &str) -> String {
        format!("{}{path}", self.browser_base)
    }

    /// (status, content type, body) of a GET.
    fn get(&self, path: &str) -> (u16, String, Vec<u8>) {
        let mut req = ureq::get(&self.url(path));
        for (k, v) in &self.headers {
            req = req.set(k, v);
        }
        let r = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("GET {path}: {e}"),
        };
        let (code, ctype) = (r.status(), r.content_type().to_string());
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut r.into_reader(), &mut body).unwrap();
        (code, ctype, body)
    }

    /// The text of a page that must answer 200.
    fn text(&self, path: &str) -> String {
        let (code, _, body) = self.get(path);
        let body = String::from_utf8(body).unwrap();
        assert_eq!(code, 200, "GET {path}: {body}");
        body
    }
}

/// Where the screenshots, PDFs and images of these tests are kept:
/// `target/test-artifacts/collector_web/` (or under $CARGO_TARGET_DIR).
fn artifacts() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let d = target.join("test-artifacts/collector_web");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn screenshot(bin: &str, profile: &Path, url: &str, name: &str) -> PathBuf {
    let shot = artifacts().join(name);
    let _ = std::fs::remove_file(&shot);
    output_ok(
        Command::new("timeout")
            .arg("90")
            .arg(bin)
            .args(browser_args(profile))
            .arg(format!("--screenshot={}", shot.display()))
            .arg("--window-size=1400,1600")
            .arg(url),
    );
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(&png[1..4], b"PNG", "{}", shot.display());
    assert!(
        png.len() > 10_000,
        "{}: {} bytes",
        shot.display(),
        png.len()
    );
    shot
}

/// One event line, as the agent writes it, at `2026-03-01` + `t` seconds.
fn ev(
    run: &str,
    seq: u64,
    t: u64,
    host: &Value,
    task: &str,
    step: Option<&str>,
    body: Value,
) -> String {
    let mut v = json!({
        "v": 1, "run_id": run, "seq": seq,
        "ts": format!("2026-03-01T{:02}:{:02}:{:02}.000Z", t / 3600, t / 60 % 60, t % 60),
        "host": host, "task": task, "step": step,
    });
    for (k, x) in body.as_object().unwrap() {
        v[k] = x.clone();
    }
    v.to_string()
}

fn key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[7; 32])
}

fn signer() -> Value {
    let vk = key().verifying_key();
    json!({
        "public_key": hex_lower(&vk.to_bytes()),
        "key_id": speediso_proto::cert::key_id(&vk),
        "source": "file:/etc/speediso/wipe.key",
    })
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A wipe run of `host` erasing one disk, with progress, an inventory, a
/// health verdict, the disk's and the server's signed certificates.
struct WipeRun<'a> {
    run: &'a str,
    host: Value,
    disk_serial: &'a str,
    disk_model: &'a str,
    nic: &'a str,
    message: &'a str,
    task: &'a str,
    verdict: &'a str,
    finding: &'a str,
    start: u64,
}

impl WipeRun<'_> {
    fn lines(&self) -> Vec<String> {
        let (run, h, task, t0) = (self.run, &self.host, self.task, self.start);
        let mut seq = 0;
        let mut next = || {
            seq += 1;
            seq - 1
        };
        let mut out = vec![ev(
            run,
            next(),
            t0,
            h,
            task,
            None,
            json!({
            "type": "run_started", "steps": ["inventory", "health", "wipe"],
            "destructive": true, "after": "stay", "agent_version": "0.1.0"}),
        )];
        out.push(ev(run, next(), t0 + 1, h, task, Some("inventory"), json!({"type": "result", "data": {
            "cpu": {"model": "AMD EPYC 7302 16-Core Processor", "cores": 16},
            "memory": {"total_bytes": 68719476736u64, "dimms": [{"locator": "DIMM_A1", "size_bytes": 34359738368u64}, {"locator": "DIMM_B1", "size_bytes": 34359738368u64}]},
            "disks": [{"name": "sda", "model": self.disk_model, "serial": self.disk_serial, "size_bytes": 960197124096u64}],
            "nics": [{"name": self.nic, "mac": "52:54:00:00:00:01", "speed_mbps": 25000}],
            "pci": [{"address": "0000:00:1f.2", "class": "SATA controller"}],
        }})));
        out.push(ev(run, next(), t0 + 2, h, task, Some("health"), json!({"type": "result", "data": {
            "verdict": self.verdict, "counts": {"fail": 0, "warn": 0, "info": 0},
            "findings": [{"severity": if self.verdict == "pass" { "info" } else { self.verdict }, "check": "edac",
                          "component": "DIMM_A1", "message": self.finding}],
        }})));
        out.push(ev(
            run,
            next(),
            t0 + 3,
            h,
            task,
            Some("wipe"),
            json!({"type": "log", "level": "info", "message": self.message}),
        ));
        for i in 0..30u64 {
            for (dev, base) in [("/dev/sda", 500e6), ("/dev/sdb", 300e6)] {
                out.push(ev(
                    run,
                    next(),
                    t0 + 10 + i * 10,
                    h,
                    task,
                    Some("wipe"),
                    json!({
                    "type": "progress", "percent": i as f64 * 3.3, "bytes": i * 5_000_000_000,
                    "rate": base + (i as f64 * 7.0).sin() * 50e6, "message": dev}),
                ));
            }
        }
        let host_id = self.host.clone();
        let disk = speediso_proto::cert::sign(
            json!({
                "schema": "speediso.wipe.certificate/2", "id": format!("{run}-disk"), "run_id": run,
                "issued": "2026-03-01T01:00:00Z", "host": host_id,
                "media": {"make": "Samsung", "model": self.disk_model, "serial": self.disk_serial,
                          "media_type": "SSD", "size_bytes": 960197124096u64, "transport": "sata", "device_path": "/dev/sda"},
                "sanitization": {"category": "Purge", "method": "ata-secure-erase",
                                 "technique": "ATA SECURITY ERASE UNIT (enhanced)", "passes": 1,
                                 "tool": {"name": "speediso", "version": "0.1.0", "image_build": "2026.03.01"}},
                "verification": {"method": "full", "result": "passed", "mismatches": 0},
                "timing": {"started": "2026-03-01T00:10:00Z", "finished": "2026-03-01T00:59:00Z"},
                "outcome": "wiped", "error": null,
                "attestation": {"performed_by": "Jane Operator", "organization": "Example DC",
                                "validated_by": null, "post_sanitization_destination": "resale"},
                "signer": signer(),
            }),
            &key(),
        );
        let server = speediso_proto::cert::sign(
            json!({
                "schema": "speediso.wipe.server-certificate/1", "id": format!("{run}-server"), "run_id": run,
                "issued": "2026-03-01T01:00:00Z", "host": host_id, "outcome": "wiped",
                "summary": {"disks": 1, "wiped": 1, "wiped_unverified": 0, "failed": 0, "other": 0, "skipped_blocking": 0, "skipped_policy": 1},
                "disks": [{"device_path": "/dev/sda", "serial": self.disk_serial, "model": self.disk_model,
                           "size_bytes": 960197124096u64, "method": "ata-secure-erase", "category": "Purge",
                           "technique": "ATA SECURITY ERASE UNIT (enhanced)", "verification": "passed",
                           "outcome": "wiped", "error": null, "certificate_id": format!("{run}-disk")}],
                "skipped": [{"device_path": "/dev/sdz", "serial": "USB-STICK-1", "model": "Flash", "size_bytes": 8000000000u64, "class": "policy", "reasons": ["removable"]}],
                "tool": {"name": "speediso", "version": "0.1.0"},
                "attestation": {"performed_by": "Jane Operator", "organization": "Example DC"},
                "signer": signer(),
            }),
            &key(),
        );
        out.push(ev(
            run,
            next(),
            t0 + 400,
            h,
            task,
            Some("wipe"),
            json!({"type": "result", "data": {
            "disk": "/dev/sda", "outcome": "wiped", "certificates": [disk, server]}}),
        ));
        out.push(ev(run, next(), t0 + 401, h, task, None, json!({
            "type": "run_finished", "outcome": if self.verdict == "fail" { "failed" } else { "success" },
            "exit_status": 0, "duration_ms": 401000})));
        out
    }
}

fn post_all(c: &Collector, lines: &[String]) {
    let (code, body) = c.post(Some(TOKEN), &lines.join("\n"));
    assert_eq!(code, 200, "{body}");
}

fn pdf_text(pdf: &Path) -> String {
    let out = output_ok(
        Command::new("pdftotext")
            .args(["-layout"])
            .arg(pdf)
            .arg("-"),
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn have_poppler() -> bool {
    let ok = Command::new("pdftotext").arg("-v").output().is_ok();
    if !ok {
        speediso_testsupport::missing(
            "pdftotext/pdftoppm not found (apt-get install poppler-utils; see tests/apt/report.txt)",
        );
    }
    ok
}

/// The rows of the board's table (the text between `<table class="hosts" id="board">` and `</table>`).
fn board_table(html: &str) -> &str {
    html.split("id=\"board\"")
        .nth(1)
        .expect("board table")
        .split("</table>")
        .next()
        .unwrap()
}

#[test]
fn board_host_run_and_certificates_in_headless_chromium() {
    let Some(bin) = chromium() else { return };
    if !have_poppler() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let vk = key().verifying_key();
    let trusted = tmp.path().join("trusted-signers");
    std::fs::write(
        &trusted,
        format!("{} Example DC wipe key\n", hex_lower(&vk.to_bytes())),
    )
    .unwrap();
    let c = Collector::start(
        &tmp.path().join("collector"),
        None,
        &["--trusted-signers", trusted.to_str().unwrap()],
    );
    let s = Session::new(&c);
    let hosts = [
        (
            "SRV01",
            "web-01",
            "52:54:00:00:00:01",
            "S4XYZ123",
            "wipe",
            "pass",
            0,
        ),
        (
            "SRV02",
            "db-02",
            "52:54:00:00:00:02",
            "WD-ABC987",
            "burnin",
            "fail",
            1000,
        ),
        (
            "SRV03",
            "app-03",
            "52:54:00:00:00:03",
            "ZA1234BC",
            "speedtest",
            "warn",
            2000,
        ),
    ];
    for (serial, name, mac, disk, task, verdict, start) in hosts {
        let run = format!("run-{}", serial.to_lowercase());
        post_all(
            &c,
            &WipeRun {
                run: &run,
                host: json!({"serial": serial, "hostname": name, "boot_mac": mac}),
                disk_serial: disk,
                disk_model: "SAMSUNG MZ7LH960",
                nic: "enp1s0f0",
                message: "erasing /dev/sda",
                task,
                verdict,
                finding: "3 corrected memory errors",
                start,
            }
            .lines(),
        );
    }
    let profile = tmp.path().join("chromium-profile");
    let dom = |path: &str| dump_dom(bin, &profile, &s.browser(path));

    // The board: every host, its last task, outcome, verdict, reasons.
    let html = dom("/");
    let table = board_table(&html);
    for (serial, name, ..) in hosts {
        assert!(
            table.contains(&format!(">{serial}</a>")) && table.contains(name),
            "{table}"
        );
    }
    assert!(
        table.contains("<td class=\"verdict vfail\">fail</td>"),
        "{table}"
    );
    assert!(
        table.contains("DIMM_A1: 3 corrected memory errors"),
        "{table}"
    );
    assert!(html.contains("Hosts (3)"), "{html}");
    screenshot(bin, &profile, &s.browser("/"), "board.png");

    // Filters (as the GET form sends them) and search by disk serial, MAC.
    for (query, want, not) in [
        ("/?verdict=fail", "SRV02", ["SRV01", "SRV03"]),
        ("/?q=S4XYZ123", "SRV01", ["SRV02", "SRV03"]),
        (
            "/?q=52%3A54%3A00%3A00%3A00%3A03",
            "SRV03",
            ["SRV01", "SRV02"],
        ),
        (
            "/?q=db-02&task=&outcome=&verdict=&from=&to=",
            "SRV02",
            ["SRV01", "SRV03"],
        ),
        ("/?task=wipe&outcome=success", "SRV01", ["SRV02", "SRV03"]),
        (
            "/?outcome=failed&from=2026-03-01&to=2026-03-01",
            "SRV02",
            ["SRV01", "SRV03"],
        ),
    ] {
        let html = dom(query);
        let t = board_table(&html);
        assert!(t.contains(&format!(">{want}</a>")), "{query}: {t}");
        for n in not {
            assert!(!t.contains(&format!(">{n}</a>")), "{query} lists {n}: {t}");
        }
        assert!(html.contains("Hosts matching the filter"), "{query}");
    }
    let html = dom("/?from=2026-03-02");
    assert!(html.contains("id=\"no-hosts\""), "{html}");
    screenshot(
        bin,
        &profile,
        &s.browser("/?verdict=fail"),
        "board-filtered.png",
    );
    let (code, _, html) = s.get("/?verdict=nope");
    let html = String::from_utf8(html).unwrap();
    assert_eq!(code, 400, "{html}");
    assert!(
        html.contains("verdict=&quot;nope&quot;: expected pass, warn or fail"),
        "{html}"
    );

    // Paging keeps the filter: one host per page, three pages.
    let mut path = "/?task=&limit=1".to_string();
    let mut seen = Vec::new();
    for _ in 0..5 {
        let html = s.text(&path);
        let t = board_table(&html);
        seen.extend(
            t.split("<a href=\"/hosts/")
                .skip(1)
                .map(|x| x.split('"').next().unwrap().to_string()),
        );
        let Some(next) = html
            .split("<a href=\"")
            .find(|x| x.contains("\">next</a>"))
            .map(|x| x.split('"').next().unwrap().replace("&amp;", "&"))
        else {
            break;
        };
        assert!(next.contains("limit=1"), "{next}");
        path = next;
    }
    seen.sort();
    assert_eq!(seen, ["SRV01", "SRV02", "SRV03"]);

    // Exports of the current filter.
    let (code, ctype, csv) = s.get("/export.csv?verdict=fail");
    let csv = String::from_utf8(csv).unwrap();
    assert_eq!((code, ctype.as_str()), (200, "text/csv"), "{csv}");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("host_key,hostname,serial,boot_mac"),
        "{csv}"
    );
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[1].starts_with("SRV02,db-02,SRV02,52:54:00:00:00:02"),
        "{csv}"
    );
    let j: Value = serde_json::from_slice(&s.get("/export.json?q=ZA1234BC").2).unwrap();
    assert_eq!(j["rows"].as_array().unwrap().len(), 1, "{j}");
    assert_eq!(j["rows"][0]["host_key"], "SRV03");
    assert_eq!(j["rows"][0]["verdict"], "warn");
    assert_eq!(j["filter"]["q"], "ZA1234BC");

    // The host page: inventory tables.
    let html = dom("/hosts/SRV01");
    for want in [
        "SAMSUNG MZ7LH960",
        "S4XYZ123",
        "enp1s0f0",
        "DIMM_B1",
        "0000:00:1f.2",
        "AMD EPYC 7302",
    ] {
        assert!(html.contains(want), "{want}:\n{html}");
    }
    screenshot(bin, &profile, &s.browser("/hosts/SRV01"), "host.png");

    // The run page: progress chart (two devices), certificates, raw JSON.
    let html = dom("/runs/run-srv01");
    let chart = html
        .split("id=\"progress-chart\"")
        .nth(1)
        .expect("progress chart");
    assert_eq!(
        chart
            .split("</svg>")
            .next()
            .unwrap()
            .matches("<polyline")
            .count(),
        2,
        "{chart}"
    );
    assert!(chart.contains("wipe /dev/sdb"), "legend: {chart}");
    assert!(
        html.contains("href=\"/v1/runs/run-srv01\""),
        "raw JSON link"
    );
    assert!(
        html.contains("href=\"/certificates/run-srv01-disk/pdf\""),
        "{html}"
    );
    assert!(
        html.contains("All 2 certificate(s) signed by a trusted key"),
        "{html}"
    );
    assert!(html.contains("erasing /dev/sda"), "timeline: {html}");
    screenshot(bin, &profile, &s.browser("/runs/run-srv01"), "run.png");
    let raw: Value = serde_json::from_slice(&s.get("/v1/runs/run-srv01").2).unwrap();
    assert_eq!(raw["run"]["run_id"], "run-srv01", "{raw}");

    // The disk certificate: HTML in the browser, PDF through poppler.
    let html = dom("/certificates/run-srv01-disk");
    for want in [
        "VALID AND TRUSTED",
        "S4XYZ123",
        "Purge",
        "ATA SECURITY ERASE UNIT (enhanced)",
        "Jane Operator",
        "Example DC",
        "resale",
        "speediso, version 0.1.0",
        "full, result passed",
        &speediso_proto::cert::key_id(&vk),
        "speediso verify-cert run-srv01-disk.json --pubkey",
    ] {
        assert!(html.contains(want), "{want}:\n{html}");
    }
    screenshot(
        bin,
        &profile,
        &s.browser("/certificates/run-srv01-disk"),
        "certificate.png",
    );
    let (code, ctype, pdf) = s.get("/certificates/run-srv01-disk/pdf");
    assert_eq!((code, ctype.as_str()), (200, "application/pdf"));
    let pdf_path = artifacts().join("certificate-disk.pdf");
    std::fs::write(&pdf_path, &pdf).unwrap();
    let text = pdf_text(&pdf_path);
    for want in [
        "S4XYZ123",
        "Purge",
        "ATA SECURITY ERASE UNIT (enhanced)",
        "wiped",
        "VALID AND TRUSTED",
        "Jane Operator",
        "resale",
    ] {
        assert!(text.contains(want), "{want} in the PDF text:\n{text}");
    }
    let png = artifacts().join("certificate-disk");
    output_ok(
        Command::new("pdftoppm")
            .args(["-png", "-r", "60", "-singlefile"])
            .arg(&pdf_path)
            .arg(&png),
    );
    let img = std::fs::read(png.with_extension("png")).unwrap();
    assert!(
        img.len() > 5_000 && &img[1..4] == b"PNG",
        "{} bytes",
        img.len()
    );

    // The server certificate lists its disk and the skipped one.
    let (_, _, pdf) = s.get("/certificates/run-srv02-server/pdf");
    let pdf_path = artifacts().join("certificate-server.pdf");
    std::fs::write(&pdf_path, &pdf).unwrap();
    let text = pdf_text(&pdf_path);
    for want in [
        "Server erasure certificate: SRV02",
        "WD-ABC987",
        "USB-STICK-1",
        "removable",
        "Purge",
    ] {
        assert!(text.contains(want), "{want} in the PDF text:\n{text}");
    }
    assert_eq!(s.get("/certificates/nope").0, 404);
    // Without a session, the new pages and exports answer nothing.
    for p in [
        "/export.csv",
        "/export.json",
        "/certificates/run-srv01-disk",
        "/certificates/run-srv01-disk/pdf",
    ] {
        let (code, _, body) = c.request("GET", p, &[], None);
        assert!(
            matches!(code, 303 | 401),
            "{p} without a session: {code} {body}"
        );
        assert!(
            !body.contains("S4XYZ123") && !body.contains("SRV01"),
            "{p}: {body}"
        );
    }
}

/// Hostile values in every free-text field an agent sends, through the
/// real ingest: every page and export shows them as text, never markup,
/// and CSV cells a spreadsheet would run as formulas are defused.
#[test]
fn hostile_values_through_ingest_stay_text_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Collector::start(&tmp.path().join("collector"), None, &[]);
    let s = Session::new(&c);
    let xss = "<script>alert(1)</script>";
    let img = "\"><img src=x onerror=alert(2)>";
    let evil = format!("{xss}{img}'&");
    let formula = "=HYPERLINK(\"http://x\",\"y\")";
    let host = json!({"serial": format!("SN{evil}"), "hostname": formula, "boot_mac": format!("mac{img}")});
    post_all(
        &c,
        &WipeRun {
            run: "run-evil",
            host: host.clone(),
            disk_serial: &format!("D{evil}"),
            disk_model: &format!("model{evil}"),
            nic: &format!("eth{evil}"),
            message: &format!("log {evil}"),
            task: &format!("task{evil}"),
            verdict: "fail",
            finding: &format!("finding {evil}"),
            start: 0,
        }
        .lines(),
    );
    let enc = |v: &str| -> String {
        v.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    let key = format!("SN{evil}");
    let pages = [
        "/".to_string(),
        format!("/?q={}", enc(&key)),
        format!("/?task={}", enc(&format!("task{evil}"))),
        format!("/?q={}", enc(&format!("D{evil}"))),
        format!("/hosts/{}", enc(&key)),
        "/runs/run-evil".into(),
        "/certificates/run-evil-disk".into(),
        "/certificates/run-evil-server".into(),
    ];
    for p in &pages {
        let html = s.text(p);
        assert!(!html.contains("<script"), "{p}:\n{html}");
        assert!(!html.contains("<img"), "{p}:\n{html}");
        // The quote never closes an attribute, the apostrophe and the
        // ampersand are entities.
        assert!(
            !html.contains("\"><img") && !html.contains("'&"),
            "{p}:\n{html}"
        );
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&gt;&lt;img src=x onerror=alert(2)&gt;&#39;&amp;"), "{p}: shown as text:\n{html}");
    }
    // The search found the host by each identity (and the disk serial).
    for p in &pages[1..4] {
        assert!(
            s.text(p)
                .contains(&format!("href=\"/hosts/{}\"", enc(&key))),
            "{p}"
        );
    }
    // Host page: the disk model and NIC name, escaped, in the inventory.
    let html = s.text(&format!("/hosts/{}", enc(&key)));
    assert!(
        html.contains("model&lt;script&gt;") && html.contains("eth&lt;script&gt;"),
        "{html}"
    );
    // Run page: the log line and the finding.
    let html = s.text("/runs/run-evil");
    assert!(
        html.contains("log &lt;script&gt;") && html.contains("finding &lt;script&gt;"),
        "{html}"
    );

    // CSV: the formula is defused, the quotes doubled, the row intact.
    let (_, _, csv) = s.get("/export.csv");
    let csv = String::from_utf8(csv).unwrap();
    assert!(
        csv.contains("\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""),
        "{csv}"
    );
    for line in csv.lines() {
        for cell in line.split(',') {
            assert!(
                !cell.starts_with(['=', '+', '-', '@']),
                "formula cell {cell:?} in {csv}"
            );
        }
    }
    // JSON: the values exactly as sent, as JSON strings.
    let (code, ctype, body) = s.get("/export.json");
    assert_eq!((code, ctype.as_str()), (200, "application/json"));
    let j: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(j["rows"][0]["serial"], key.as_str());
    assert_eq!(j["rows"][0]["hostname"], formula);
    assert_eq!(j["rows"][0]["task"], format!("task{evil}").as_str());
    // The PDF carries the text, not markup to render.
    let (code, ctype, pdf) = s.get("/certificates/run-evil-disk/pdf");
    assert_eq!((code, ctype.as_str()), (200, "application/pdf"));
    assert!(pdf.starts_with(b"%PDF-1.4") && pdf.is_ascii());
}
