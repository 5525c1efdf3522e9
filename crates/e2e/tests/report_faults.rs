//! Fault tests of the report path against the real collector binary on
//! 127.0.0.1: the collector killed and restarted mid-run, a run that starts
//! while it is down, an agent that exits with events undelivered (loud box,
//! spool kept, replayed by the next run), and plan-time refusal of plain
//! http to a non-loopback endpoint.

mod common;

use common::{config, fast_tuning, host_bus, spooled};
use speediso::events::{Body, Bus, Event, Progress, Sink};
use speediso::sinks::report::{Report, Tuning};
use speediso_testsupport::collector::*;
use speediso_testsupport::free_port;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A sink that keeps every event, to compare with what was stored.
struct Keep(Arc<Mutex<Vec<Event>>>);

impl Sink for Keep {
    fn event(&mut self, ev: &Event) {
        self.0.lock().unwrap().push(ev.clone());
    }
}

/// The report sink to the collector on `port`, retrying fast, in batches of
/// at most 200 lines (so a run is many batches).
fn report(port: u16, run_dir: &Path) -> Report {
    let tuning = Tuning {
        max_batch_lines: 200,
        ..fast_tuning(Duration::from_millis(400), Duration::from_millis(20))
    };
    Report::with_tuning(config(format!("http://127.0.0.1:{port}")), run_dir, tuning)
}

fn agent_bus(
    port: u16,
    run_dir: &Path,
    serial: &str,
) -> (Bus, Arc<Mutex<Vec<speediso::events::Event>>>) {
    let kept = Arc::new(Mutex::new(Vec::new()));
    let bus = host_bus(
        "wipe",
        serial,
        vec![
            Box::new(report(port, run_dir)),
            Box::new(Keep(kept.clone())),
        ],
    );
    (bus, kept)
}

/// Emit a run of progress events, one every ~2 ms, for at least `dur` and
/// until `until` is set (if given).
fn emit_run(bus: &Bus, dur: Duration, until: Option<&AtomicBool>) {
    bus.emit(
        None,
        Body::RunStarted {
            steps: vec!["wipe".into()],
            destructive: true,
            after: "poweroff".into(),
            agent_version: "test".into(),
        },
    );
    let t0 = Instant::now();
    let step = bus.step("wipe");
    let mut i = 0u64;
    while t0.elapsed() < dur || until.is_some_and(|u| !u.load(Ordering::SeqCst)) {
        step.progress(Progress {
            percent: Some(t0.elapsed().as_secs_f64() / dur.as_secs_f64() * 100.0),
            bytes: Some(i << 20),
            message: Some("/dev/loop0".into()),
            ..Progress::default()
        });
        i += 1;
        std::thread::sleep(Duration::from_millis(2));
    }
    bus.emit(
        None,
        Body::RunFinished {
            outcome: speediso::events::Outcome::Success,
            exit_status: 0,
            duration_ms: t0.elapsed().as_millis() as u64,
            error: None,
        },
    );
}

/// Every kept event stored exactly once, byte-for-byte the same JSON.
fn assert_exactly_once(c: &Collector, bus: &Bus, kept: &[speediso::events::Event]) {
    let n = kept.len() as i64;
    assert!(n > 100, "run too short: {n} events");
    assert_eq!(kept.last().unwrap().seq as i64, n - 1);
    assert_eq!(
        c.stored(bus.run_id()),
        (n, n, n - 1),
        "count, distinct seq, max seq"
    );
    let stored = c.stored_lines(bus.run_id());
    assert_eq!(stored.len(), kept.len());
    for (s, k) in stored.iter().zip(kept) {
        assert_eq!(s, &serde_json::to_string(k).unwrap());
    }
    let run = c.get(&format!("/v1/runs/{}", bus.run_id()));
    assert_eq!(run["events"].as_array().unwrap().len(), kept.len());
    assert_eq!(run["run"]["outcome"], "success");
    assert_eq!(run["run"]["last_seq"].as_i64(), Some(n - 1));
}

fn spool_files(run_dir: &Path) -> usize {
    std::fs::read_dir(run_dir.join("spool"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn collector_killed_and_restarted_three_times_mid_run() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let mut c = Collector::start(&tmp.path().join("collector"), None, &[]);
    let (bus, kept) = agent_bus(c.port, &run_dir, "KILL01");
    let spool = run_dir
        .join("spool")
        .join(format!("{}.ndjson", bus.run_id()));
    let done = Arc::new(AtomicBool::new(false));
    let done2 = done.clone();
    let killer = std::thread::spawn(move || {
        let mut pids = Vec::new();
        let mut backlog = Vec::new();
        for (i, at) in [600u64, 1600, 2600].into_iter().enumerate() {
            std::thread::sleep(Duration::from_millis(if i == 0 { at } else { 700 }));
            pids.push(c.pid());
            if i == 1 {
                // One graceful stop among the hard kills.
                assert!(c.terminate());
            } else {
                c.kill();
            }
            std::thread::sleep(Duration::from_millis(300));
            // The outage is real: events pile up unacknowledged.
            backlog.push(speediso::report::spool::undelivered_lines(&spool));
            c.restart();
        }
        // The run goes on a little after the last restart.
        std::thread::sleep(Duration::from_millis(300));
        done2.store(true, Ordering::SeqCst);
        (c, pids, backlog)
    });
    emit_run(&bus, Duration::from_millis(1000), Some(&done));
    let (c, pids, backlog) = killer.join().unwrap();
    assert_eq!(pids.len(), 3);
    assert!(
        backlog.iter().all(|&n| n >= 1),
        "backlog during outages: {backlog:?}"
    );
    assert_ne!(pids[0], c.pid(), "the collector was really restarted");
    bus.close(Duration::from_secs(30));
    assert_eq!(spool_files(&run_dir), 0, "spool drained and removed");
    assert_exactly_once(&c, &bus, &kept.lock().unwrap());
}

#[test]
fn run_started_while_collector_down_delivers_when_it_comes_up() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    // Find a free port, then leave it closed.
    let port = free_port();
    let (bus, kept) = agent_bus(port, &run_dir, "LATE01");
    let dir = tmp.path().join("collector");
    let starter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(1500));
        Collector::start(&dir, Some(port), &[])
    });
    emit_run(&bus, Duration::from_millis(1000), None);
    // The run is over before the collector exists: everything is spooled.
    assert!(spool_files(&run_dir) >= 1);
    let c = starter.join().unwrap();
    bus.close(Duration::from_secs(30));
    assert_eq!(spool_files(&run_dir), 0);
    assert_exactly_once(&c, &bus, &kept.lock().unwrap());
}

fn speediso(run_dir: &Path, cmdline: &str, args: &[&str]) -> std::process::Output {
    Command::new(speediso_testsupport::bin("speediso"))
        .arg("--tasks-dir")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tasks"))
        .arg("--run-dir")
        .arg(run_dir)
        .arg("--cmdline")
        .arg(cmdline)
        .args(args)
        .env_remove("SPEEDISO")
        .env_remove("INVOCATION_ID")
        .output()
        .unwrap()
}

#[test]
fn undelivered_events_are_announced_kept_and_replayed_by_the_next_run() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    let port = free_port();
    let line = format!(
        "speediso.report=http://127.0.0.1:{port} speediso.token={TOKEN} speediso.spool.drain=1s"
    );
    let out = speediso(&run_dir, &line, &["run", "rescue"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A report failure never fails the task.
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("2 EVENT(S) NOT DELIVERED"), "{stderr}");
    assert!(stderr.contains("+====="), "boxed: {stderr}");
    let spooled = spooled(&run_dir, "ndjson");
    assert_eq!(spooled.len(), 1, "spool kept");
    let first_run = spooled[0]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        std::fs::read_to_string(&spooled[0])
            .unwrap()
            .lines()
            .count(),
        2
    );

    // The collector comes up; the next run delivers its own events and the
    // leftover of the first.
    let c = Collector::start(&tmp.path().join("collector"), Some(port), &[]);
    let out = speediso(&run_dir, &line, &["run", "rescue"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("NOT DELIVERED"), "{stderr}");
    assert_eq!(c.stored(&first_run), (2, 2, 1));
    let runs = c.get("/v1/runs?task=rescue");
    assert_eq!(runs.as_array().unwrap().len(), 2);
    for r in runs.as_array().unwrap() {
        assert_eq!(r["outcome"], "success");
        assert_eq!(r["events"], 2);
    }
    assert_eq!(spool_files(&run_dir), 0);
}

#[test]
fn plain_http_to_a_remote_endpoint_is_refused_at_plan_time() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = tmp.path().join("run");
    // `dispatch --dry-run` with this command line: its status and stdout.
    let dry_run = |cmdline: &str| {
        let out = speediso(&run_dir, cmdline, &["dispatch", "--dry-run"]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.code(), stdout)
    };
    let remote = "speediso.task=rescue speediso.report=http://10.1.2.3:8470";
    let (code, stdout) = dry_run(&format!("{remote} speediso.token=abcdefgh"));
    assert_eq!(code, Some(2), "{stdout}");
    assert!(stdout.contains("speediso.insecure=1"), "{stdout}");
    assert!(stdout.contains("10.1.2.3"), "{stdout}");
    let (code, stdout) = dry_run(&format!("{remote} speediso.insecure=1"));
    assert_eq!(code, Some(0), "{stdout}");
    let out = speediso(
        &run_dir,
        "speediso.report=https://c.example speediso.ca=bm90IGEgY2VydA",
        &["run", "rescue"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("speediso.ca="), "{stderr}");
}

/// Audit item 11: the spool's file system fills up mid-run. A partial
/// write never leaves a torn line (every spooled line is whole JSON, so
/// no later event is glued onto one), the lost events are counted, and
/// everything that was spooled is delivered exactly once.
#[test]
fn a_full_spool_file_system_drops_whole_events_and_never_tears_a_line() {
    // A tiny tmpfs of our own: root only.
    if not_root() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let st = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=64k",
            "speediso-test",
            mnt.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(st.success(), "mounting a tmpfs");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let run_dir = mnt.join("run");
    let port = free_port();
    let state = Arc::new(Mutex::new(0u64));
    let bus = host_bus(
        "wipe",
        "FULL01",
        vec![Box::new(Counted(report(port, &run_dir), state.clone()))],
    );
    let step = bus.step("wipe");
    for i in 0..2000u64 {
        // Lines of varying length, so the file system fills mid-line.
        step.log(format!("event {i} {}", "x".repeat((i as usize * 37) % 500)));
    }
    let spool = spooled(&run_dir, "ndjson");
    assert_eq!(spool.len(), 1);
    let text = std::fs::read(&spool[0]).unwrap();
    assert_eq!(text.last(), Some(&b'\n'), "the spool ends in a torn line");
    let lines: Vec<&[u8]> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    for l in &lines {
        serde_json::from_slice::<serde_json::Value>(l).unwrap_or_else(|e| {
            panic!("a torn or glued line: {e}: {}", String::from_utf8_lossy(l))
        });
    }
    let dropped = *state.lock().unwrap();
    assert!(dropped > 0, "the file system never filled");
    assert_eq!(
        lines.len() as u64 + dropped,
        2000,
        "every event is spooled or counted"
    );
    // Whatever was spooled is delivered exactly once.
    let c = Collector::start(&tmp.path().join("collector"), Some(port), &[]);
    let t0 = Instant::now();
    bus.close(Duration::from_secs(60));
    // Drained (not given up at the deadline), though the full file system
    // cannot even record the acknowledged offset.
    assert!(
        t0.elapsed() < Duration::from_secs(30),
        "the spool never drained"
    );
    let (n, distinct, _) = c.stored(bus.run_id());
    assert_eq!((n, distinct), (lines.len() as i64, lines.len() as i64));
}

fn not_root() -> bool {
    let root = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")
        .is_ok();
    if !root {
        speediso_testsupport::missing("the full-spool test needs root to mount a tmpfs");
    }
    !root
}

/// The report sink, with its dropped-event count copied out at close.
struct Counted(Report, Arc<Mutex<u64>>);

impl speediso::events::Sink for Counted {
    fn event(&mut self, ev: &speediso::events::Event) {
        self.0.event(ev);
        *self.1.lock().unwrap() = self.0.dropped();
    }
    fn close(&mut self, deadline: Duration) {
        self.0.close(deadline);
    }
}
