//! Shared by the end-to-end tests: a real agent's report sink and bus aimed
//! at the real collector, and the files an agent leaves in its spool. The
//! collector itself is `speediso_testsupport::collector`.
#![allow(dead_code)]

pub mod pg;

use speediso::events::{Bus, HostId, Sink};
use speediso::report::retry::RetryPolicy;
use speediso::report::Config;
use speediso::sinks::report::{Report, Tuning};
use speediso_testsupport::collector::TOKEN;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The report configuration of an agent sending to the collector at `base`
/// (`http://127.0.0.1:port`) with the test token.
pub fn config(base: String) -> Config {
    Config {
        base,
        token: Some(TOKEN.into()),
        ca_pem: None,
        https: false,
        drain: None,
    }
}

/// Report tuning for tests: retries from 50 ms up to `cap` (half jitter, no
/// deadline), a batch sent `linger` after its first event.
pub fn fast_tuning(cap: Duration, linger: Duration) -> Tuning {
    Tuning {
        running: RetryPolicy {
            initial: Duration::from_millis(50),
            cap,
            jitter: 0.5,
            deadline: None,
        },
        linger,
        ..Tuning::default()
    }
}

/// A run of `task` on host `serial` whose one sink reports to `base`,
/// spooling under `run_dir`.
pub fn reporting_bus(
    task: &str,
    serial: &str,
    base: String,
    run_dir: &Path,
    tuning: Tuning,
) -> Bus {
    let report = Report::with_tuning(config(base), run_dir, tuning);
    host_bus(task, serial, vec![Box::new(report)])
}

/// A run of `task` on the host whose serial is `serial`, to `sinks`.
pub fn host_bus(task: &str, serial: &str, sinks: Vec<Box<dyn Sink>>) -> Bus {
    Bus::new(
        Some(task.into()),
        HostId {
            serial: Some(serial.into()),
            ..HostId::default()
        },
        sinks,
    )
}

/// A whole run on `bus`: `n` log events (`event 0` ...) in step `step`,
/// then closed with a minute to deliver them; its run id.
pub fn logged_run(bus: &Bus, step: &str, n: u64) -> String {
    for s in 0..n {
        bus.step(step).log(format!("event {s}"));
    }
    bus.close(Duration::from_secs(60));
    bus.run_id().to_string()
}

/// The files in `run_dir`'s spool whose extension is `ext` (`ndjson`: a
/// run's events; `refused`: lines the collector refused).
pub fn spooled(run_dir: &Path, ext: &str) -> Vec<PathBuf> {
    std::fs::read_dir(run_dir.join("spool"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect()
}
