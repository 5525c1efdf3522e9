//! `speediso bench net` against a real `iperf3 -s` on 127.0.0.1, checked
//! against the server's own JSON log; failure paths (busy, killed, stalled,
//! refused, silent, DNS) with bounded time; and the HTTP download test
//! against a small local HTTP server with a redirect.

use serde_json::Value;
use speediso_testsupport::{free_port, output_ok};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// iperf tests saturate loopback; run them one at a time so timings and
/// the "killed mid-run" moments are not skewed by each other.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// An iperf3 test's turn: `serial()` once iperf3 is there; `None` (skip,
/// or fail under SPEEDISO_REQUIRE_TOOLS=1) without it.
fn iperf3_turn() -> Option<std::sync::MutexGuard<'static, ()>> {
    have("iperf3", &["--version"]).then(serial)
}

/// Is `tool` installed? Missing: fail under SPEEDISO_REQUIRE_TOOLS=1 (CI),
/// else skip with a note.
fn have(tool: &str, args: &[&str]) -> bool {
    let ok = Command::new(tool)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok || speediso_testsupport::missing(&format!(
        "{tool} is required (tests/apt/net.txt) but `{tool} {}` failed",
        args.join(" ")
    ))
}

/// Is something listening on 127.0.0.1:port (read from /proc, because a
/// probe connection would count as an iperf3 client)?
fn listening(port: u16) -> bool {
    let want = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().any(|f| {
        std::fs::read_to_string(f)
            .unwrap_or_default()
            .lines()
            .any(|l| {
                let c: Vec<&str> = l.split_whitespace().collect();
                c.len() > 3 && c[1].ends_with(&want) && c[3] == "0A"
            })
    })
}

/// A child process killed (by its own pid) when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // Only while it has not been reaped, so the pid is still ours.
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = signal(self.0.id(), "CONT");
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(pid: u32, sig: &str) -> bool {
    Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

struct Iperf3 {
    proc: Proc,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Iperf3 {
    /// `iperf3 -s [-1] --json --logfile` on a free loopback port.
    fn start(one_off: bool) -> Iperf3 {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("server.json");
        let port = free_port();
        let mut cmd = Command::new("iperf3");
        cmd.args(["-s", "--json", "-B", "127.0.0.1", "-p", &port.to_string()]);
        cmd.arg("--logfile").arg(&log);
        if one_off {
            cmd.arg("-1");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting iperf3 -s");
        let t = Instant::now();
        while !listening(port) {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "iperf3 -s never listened on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Iperf3 {
            proc: Proc(child),
            port,
            log,
            _dir: dir,
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Wait for a one-off server to finish its test and return its log.
    fn finish(mut self) -> Value {
        let t = Instant::now();
        while self.proc.0.try_wait().unwrap().is_none() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "iperf3 -s -1 did not exit"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let text = std::fs::read_to_string(&self.log).unwrap();
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("server log: {e}\n{text}"))
    }
}

struct Output {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Output {
    fn events(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
    /// The result: the whole of stdout for `bench net --json` (one
    /// document), else the `result` event of a task's event stream.
    fn result(&self) -> Value {
        if let Ok(doc) = serde_json::from_str::<Value>(&self.stdout) {
            if doc.get("type").is_none() {
                return doc;
            }
        }
        self.events()
            .into_iter()
            .find(|e| e["type"] == "result")
            .unwrap_or_else(|| {
                panic!(
                    "no result event\nstdout:\n{}\nstderr:\n{}",
                    self.stdout, self.stderr
                )
            })["data"]
            .clone()
    }
}

fn speediso() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_speediso"));
    // Keep the state file out of /run, and the real /proc/cmdline out.
    c.env(
        "SPEEDISO_RUN_DIR",
        std::env::temp_dir().join("speediso-net-tests"),
    )
    .env_remove("SPEEDISO")
    .args(["--cmdline", ""]);
    c
}

/// Run with a hard bound: a hang is a test failure, not a stuck CI.
fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    let t = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let o = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let e = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "speediso did not finish within {limit:?}: {}",
                e.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        code: status.code(),
        stdout: o.join().unwrap(),
        stderr: e.join().unwrap(),
        elapsed: t.elapsed(),
    }
}

fn bench(args: &[&str]) -> Command {
    let mut c = speediso();
    c.args(["bench", "net", "--json"]).args(args);
    c
}

/// `bench net --server <srv> extra...` (30 s at most), which must succeed:
/// its output and its result.
fn bench_against(srv: &Iperf3, extra: &[&str]) -> (Output, Value) {
    let addr = srv.addr();
    let out = run_bounded(
        bench(&[&["--server", addr.as_str()][..], extra].concat()),
        Duration::from_secs(30),
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let r = out.result();
    (out, r)
}

fn mbit(v: &Value) -> f64 {
    v["bits_per_second"].as_f64().unwrap() / 1e6
}

#[track_caller]
fn within(ours: f64, theirs: f64, what: &str) {
    let dev = (ours - theirs).abs() / theirs;
    assert!(
        theirs > 0.0 && dev <= 0.05,
        "{what}: speediso {ours:.1} vs iperf3 server {theirs:.1} Mbit/s ({:.1}% apart)",
        dev * 100.0
    );
}

#[test]
fn forward_one_stream_agrees_with_server_log() {
    let Some(_g) = iperf3_turn() else { return };
    let srv = Iperf3::start(true);
    let addr = srv.addr();
    let (out, r) = bench_against(&srv, &["--duration", "3"]);
    let log = srv.finish();
    let ts = &log["start"]["test_start"];
    assert_eq!(ts["num_streams"], 1);
    assert_eq!(ts["reverse"], 0);
    assert_eq!(ts["duration"], 3);
    assert_eq!(ts["blksize"], 131072);
    let recv = &log["end"]["sum_received"];
    // What the server says it received is what speediso reports as received.
    assert_eq!(r["received_bytes"], recv["bytes"]);
    within(r["received_mbps"].as_f64().unwrap(), mbit(recv), "received");
    // And the client's own count of what it sent matches the server's.
    within(
        r["sent_mbps"].as_f64().unwrap(),
        mbit(recv),
        "sent vs received",
    );
    assert_eq!(r["streams"], 1);
    assert_eq!(r["reverse"], false);
    assert_eq!(r["duration_s"], 3.0);
    assert!(r["retransmits"].is_u64(), "TCP_INFO retransmits: {r}");
    assert_eq!(r["per_stream"][0]["id"], 1);
    // Per-second progress: intervals in the result, live figures on the
    // console (stderr with --json; stdout is the result document only).
    assert!(r["intervals"].as_array().unwrap().len() >= 3, "{r}");
    assert!(
        out.stderr.contains(&format!("iperf3 {addr}:")) && out.stderr.contains("Mbit/s"),
        "no progress on stderr:\n{}",
        out.stderr
    );
    assert!(
        serde_json::from_str::<Value>(&out.stdout).is_ok(),
        "stdout must be one JSON document:\n{}",
        out.stdout
    );
}

#[test]
fn reverse_agrees_with_server_log() {
    let Some(_g) = iperf3_turn() else { return };
    let srv = Iperf3::start(true);
    let (_, r) = bench_against(&srv, &["--duration", "3", "--reverse"]);
    let log = srv.finish();
    assert_eq!(log["start"]["test_start"]["reverse"], 1);
    let sent = &log["end"]["sum_sent"];
    // In reverse mode the server sends; its figures are speediso's "sent".
    assert_eq!(r["sent_bytes"], sent["bytes"]);
    within(r["sent_mbps"].as_f64().unwrap(), mbit(sent), "sent");
    within(
        r["received_mbps"].as_f64().unwrap(),
        mbit(sent),
        "received vs sent",
    );
    // Retransmits come from the server's kernel, as in its log.
    assert_eq!(r["retransmits"], sent["retransmits"]);
    assert_eq!(r["reverse"], true);
    assert_eq!(r["directions"][0]["direction"], "download");
}

#[test]
fn four_streams_agree_per_stream() {
    let Some(_g) = iperf3_turn() else { return };
    let srv = Iperf3::start(true);
    let (_, r) = bench_against(&srv, &["--duration", "3", "--streams", "4"]);
    let log = srv.finish();
    assert_eq!(log["start"]["test_start"]["num_streams"], 4);
    let recv = &log["end"]["sum_received"];
    within(r["received_mbps"].as_f64().unwrap(), mbit(recv), "received");
    within(
        r["sent_mbps"].as_f64().unwrap(),
        mbit(recv),
        "sent vs received",
    );
    // Each stream's bytes as the server logged them (it names streams by
    // socket, speediso by iperf3 id: compare the sorted sets).
    let mut theirs: Vec<u64> = log["end"]["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["receiver"]["bytes"].as_u64().unwrap())
        .collect();
    let mut ours: Vec<u64> = r["per_stream"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["received_bytes"].as_u64().unwrap())
        .collect();
    theirs.sort();
    ours.sort();
    assert_eq!(ours, theirs);
    let ids: Vec<u64> = r["per_stream"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![1, 3, 4, 5]);
    assert!(ours.iter().all(|&b| b > 0));
}

#[test]
fn bidir_reports_both_directions() {
    let Some(_g) = iperf3_turn() else { return };
    let srv = Iperf3::start(true);
    let (_, r) = bench_against(&srv, &["--duration", "2", "--bidir", "-P", "2"]);
    let log = srv.finish();
    // iperf3 3.12 logs the direction it sends in a bidir test separately.
    let server_sent = &log["end"]["sum_sent_bidir_reverse"];
    assert!(server_sent.is_object(), "not a bidir log: {}", log["end"]);
    let d = r["directions"].as_array().unwrap();
    assert_eq!(d.len(), 2);
    let up = d.iter().find(|d| d["direction"] == "upload").unwrap();
    let down = d.iter().find(|d| d["direction"] == "download").unwrap();
    // The server received the upload and sent the download.
    within(
        up["received_mbps"].as_f64().unwrap(),
        mbit(&log["end"]["sum_received"]),
        "upload",
    );
    within(
        down["sent_mbps"].as_f64().unwrap(),
        mbit(server_sent),
        "download",
    );
    assert_eq!(down["sent_bytes"], server_sent["bytes"]);
    assert_eq!(up["received_bytes"], log["end"]["sum_received"]["bytes"]);
    assert_eq!(r["per_stream"].as_array().unwrap().len(), 4);
}

#[test]
fn busy_server_is_a_clear_error() {
    let Some(_g) = iperf3_turn() else { return };
    let srv = Iperf3::start(false);
    // Another client holds the server for 8 s.
    let other = Proc(
        Command::new("iperf3")
            .args([
                "-c",
                "127.0.0.1",
                "-p",
                &srv.port.to_string(),
                "-t",
                "8",
                "-b",
                "100M",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let out = run_bounded(
        bench(&["--server", &srv.addr(), "--duration", "2"]),
        Duration::from_secs(20),
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("is busy") && out.stderr.contains("ACCESS_DENIED"),
        "{}",
        out.stderr
    );
    assert!(out.elapsed < Duration::from_secs(5), "{:?}", out.elapsed);
    drop(other);
}

fn killed_mid_run(extra: &[&str]) {
    let _g = serial();
    let mut srv = Iperf3::start(false);
    let pid = srv.proc.0.id();
    let mut args = vec![
        "--server".to_string(),
        srv.addr(),
        "--duration".into(),
        "10".into(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let cmd = bench(&args);
    let killer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        signal(pid, "KILL")
    });
    let out = run_bounded(cmd, Duration::from_secs(30));
    assert!(killer.join().unwrap(), "could not kill iperf3 -s");
    let _ = srv.proc.0.wait();
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("went away mid-test"), "{}", out.stderr);
    assert!(
        out.elapsed < Duration::from_secs(6),
        "took {:?}",
        out.elapsed
    );
    // No result document on a failed test; the console says it failed.
    assert!(out.stdout.trim().is_empty(), "{}", out.stdout);
    assert!(out.stderr.contains("failed"), "{}", out.stderr);
}

#[test]
fn server_killed_mid_run_forward() {
    if have("iperf3", &["--version"]) {
        killed_mid_run(&[]);
    }
}

#[test]
fn server_killed_mid_run_reverse() {
    if have("iperf3", &["--version"]) {
        killed_mid_run(&["--reverse", "-P", "2"]);
    }
}

#[test]
fn stalled_server_times_out() {
    let Some(_g) = iperf3_turn() else { return };
    let srv = Iperf3::start(false);
    let pid = srv.proc.0.id();
    let cmd = bench(&["--server", &srv.addr(), "--duration", "4", "--timeout", "2"]);
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1000));
        signal(pid, "STOP")
    });
    let out = run_bounded(cmd, Duration::from_secs(30));
    assert!(stopper.join().unwrap());
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("timeout"), "{}", out.stderr);
    // 4 s test + 2 s timeout + slack; never the 15 s default or a hang.
    assert!(
        out.elapsed < Duration::from_secs(10),
        "took {:?}",
        out.elapsed
    );
    drop(srv); // SIGCONT, then kill
}

#[test]
fn refused_is_a_clear_error() {
    let port = free_port();
    let out = run_bounded(
        bench(&["--server", &format!("127.0.0.1:{port}")]),
        Duration::from_secs(10),
    );
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("connection refused by 127.0.0.1"),
        "{}",
        out.stderr
    );
}

#[test]
fn silent_server_times_out() {
    // Accepts the connection, reads the cookie, never answers.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let t = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut b = [0u8; 37];
        let _ = s.read_exact(&mut b);
        std::thread::sleep(Duration::from_secs(4));
        b
    });
    let out = run_bounded(
        bench(&["--server", &format!("127.0.0.1:{port}"), "--timeout", "2"]),
        Duration::from_secs(10),
    );
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("timeout") && out.stderr.contains("did not answer within 2s"),
        "{}",
        out.stderr
    );
    assert!(out.elapsed < Duration::from_secs(4), "{:?}", out.elapsed);
    let cookie = t.join().unwrap();
    assert_eq!(cookie[36], 0, "cookie is NUL-terminated");
    assert!(cookie[..36]
        .iter()
        .all(|c| c.is_ascii_lowercase() || (b'2'..=b'7').contains(c)));
}

#[test]
fn dns_failure_is_a_clear_error() {
    // A network namespace with no interfaces up: the lookup fails at once
    // and no packet leaves the machine.
    if !have("unshare", &["--net", "true"]) {
        return;
    }
    let mut c = Command::new("unshare");
    c.args([
        "--net",
        env!("CARGO_BIN_EXE_speediso"),
        "--cmdline",
        "",
        "bench",
        "net",
    ])
    .args(["--server", "iperf.nonexistent.invalid", "--timeout", "5"])
    .env(
        "SPEEDISO_RUN_DIR",
        std::env::temp_dir().join("speediso-net-tests"),
    );
    let out = run_bounded(c, Duration::from_secs(15));
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("DNS failure") && out.stderr.contains("iperf.nonexistent.invalid"),
        "{}",
        out.stderr
    );
}

#[test]
fn no_target_is_a_usage_error() {
    let out = run_bounded(bench(&[]), Duration::from_secs(10));
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("--server"), "{}", out.stderr);
}

/// A tiny HTTP/1.1 server: `/start` redirects to `/data`, `/data` sends
/// `size` bytes, anything else is 404. Serves `conns` connections.
fn http_server(size: usize, conns: usize) -> (u16, std::thread::JoinHandle<Vec<String>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for _ in 0..conns {
            let (s, _) = l.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap() == 0 || h == "\r\n" {
                    break;
                }
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
            seen.push(path.clone());
            let mut s = s;
            match path.as_str() {
                "/start" => write!(
                    s,
                    "HTTP/1.1 302 Found\r\nLocation: /data\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .unwrap(),
                "/data" => {
                    write!(
                        s,
                        "HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
                    )
                    .unwrap();
                    let chunk = vec![0xa5u8; 64 * 1024];
                    let mut left = size;
                    while left > 0 {
                        let n = left.min(chunk.len());
                        s.write_all(&chunk[..n]).unwrap();
                        left -= n;
                    }
                }
                _ => write!(
                    s,
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )
                .unwrap(),
            }
        }
        seen
    });
    (port, h)
}

#[test]
fn http_download_follows_redirect_and_counts_bytes() {
    let size = 24 << 20;
    let (port, srv) = http_server(size, 2);
    let url = format!("http://127.0.0.1:{port}/start");
    let out = run_bounded(bench(&["--http", &url]), Duration::from_secs(30));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let h = &out.result()["http"];
    assert_eq!(h["bytes"], size as u64);
    assert_eq!(h["content_length"], size as u64);
    assert_eq!(h["status"], 200);
    assert_eq!(h["complete"], true);
    assert_eq!(h["redirects"], serde_json::json!([url]));
    assert_eq!(h["final_url"], format!("http://127.0.0.1:{port}/data"));
    assert!(h["ttfb_ms"].as_f64().unwrap() > 0.0);
    let mbps = h["mbps"].as_f64().unwrap();
    let secs = h["transfer_s"].as_f64().unwrap();
    assert!((mbps - size as f64 * 8.0 / secs / 1e6).abs() < 1e-6 * mbps.max(1.0));
    assert_eq!(srv.join().unwrap(), vec!["/start", "/data"]);
}

#[test]
fn http_error_status_fails_the_step() {
    let (port, srv) = http_server(0, 1);
    let out = run_bounded(
        bench(&["--http", &format!("http://127.0.0.1:{port}/missing")]),
        Duration::from_secs(15),
    );
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("HTTP 404"), "{}", out.stderr);
    srv.join().unwrap();
}

fn task_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("nettest.toml"),
        "name = 'nettest'\ndescription = 'bench.net only'\ntime_limit = '2m'\nafter = 'stay'\n\
         [[steps]]\nmodule = 'bench.net'\n",
    )
    .unwrap();
    d
}

fn run_task(dir: &Path, cmdline: &str) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_speediso"));
    c.env("SPEEDISO_RUN_DIR", dir.join("run"))
        .env_remove("SPEEDISO")
        .args(["--cmdline", cmdline, "--tasks-dir"])
        .arg(dir)
        .args(["run", "nettest", "--json"]);
    run_bounded(c, Duration::from_secs(60))
}

#[test]
fn task_step_reads_kernel_options() {
    let Some(_g) = iperf3_turn() else { return };
    let dir = task_dir();
    let srv = Iperf3::start(true);
    let out = run_task(
        dir.path(),
        &format!(
            "speediso.net.server={} speediso.net.streams=2 speediso.net.duration=2 speediso.net.mode=reverse",
            srv.addr()
        ),
    );
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    let r = out.result();
    let log = srv.finish();
    assert_eq!(log["start"]["test_start"]["num_streams"], 2);
    assert_eq!(log["start"]["test_start"]["duration"], 2);
    assert_eq!(log["start"]["test_start"]["reverse"], 1);
    assert_eq!(r["streams"], 2);
    within(
        r["sent_mbps"].as_f64().unwrap(),
        mbit(&log["end"]["sum_sent"]),
        "sent",
    );
}

#[test]
fn task_step_without_targets_is_skipped_with_a_warning() {
    let dir = task_dir();
    let out = run_task(dir.path(), "");
    assert_eq!(out.code, Some(0), "{}\n{}", out.stdout, out.stderr);
    let ev = out.events();
    assert!(ev
        .iter()
        .any(|e| e["type"] == "warning" && e["message"].as_str().unwrap().contains("skipped")));
    assert_eq!(out.result()["skipped"], true);
    let fin = ev.iter().find(|e| e["type"] == "step_finished").unwrap();
    assert_eq!(fin["outcome"], "success");
}

#[test]
fn task_with_bad_net_option_is_rejected_before_running() {
    let dir = task_dir();
    let out = run_task(
        dir.path(),
        "speediso.net.server=127.0.0.1 speediso.net.duration=0",
    );
    assert_eq!(out.code, Some(2), "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("speediso.net.duration"),
        "{}",
        out.stderr
    );
    assert!(!out.stdout.contains("step_started"), "{}", out.stdout);
}

/// Run an openssl subcommand in `dir`; panics with its stderr on failure.
fn openssl(dir: &Path, args: &[&str]) {
    output_ok(Command::new("openssl").args(args).current_dir(dir));
}

#[test]
fn https_download_verifies_against_the_ca_bundle() {
    if !have("openssl", &["version"]) {
        return;
    }
    // A throwaway CA and a localhost certificate it signed.
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "1",
            "-subj",
            "/CN=speediso-test-ca",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "leaf.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
        ],
    );
    let size = 5_000_000usize;
    let blob: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.join("blob.bin"), &blob).unwrap();
    let port = free_port();
    // openssl s_server -WWW serves files from its working directory.
    let _srv = Proc(
        Command::new("openssl")
            .args([
                "s_server",
                "-WWW",
                "-quiet",
                "-accept",
                &format!("127.0.0.1:{port}"),
            ])
            .args(["-cert", "cert.pem", "-key", "key.pem"])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let t = Instant::now();
    while !listening(port) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "openssl s_server never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = format!("https://127.0.0.1:{port}/blob.bin");
    let mut trusted = bench(&["--http", &url]);
    trusted.env("SSL_CERT_FILE", dir.join("ca.pem"));
    let out = run_bounded(trusted, Duration::from_secs(30));
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let h = &out.result()["http"];
    assert_eq!(h["bytes"], size as u64);
    assert_eq!(h["final_url"], url);
    assert_eq!(h["status"], 200);
    // Without the CA the certificate must be refused, not waved through.
    let mut untrusted = bench(&["--http", &url]);
    untrusted.env_remove("SSL_CERT_FILE");
    let out = run_bounded(untrusted, Duration::from_secs(30));
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("UnknownIssuer"), "{}", out.stderr);
}
