//! Benchmark helper for benches/report.sh: the agent's CPU cost of the
//! report sink. Emits N events through a bus with (a) no sink and (b) the
//! report sink posting to a running collector, and prints the process CPU
//! time (getrusage: user + system, all threads) of each as JSON.
//!
//! Usage: report_cost URL TOKEN EVENTS

use speediso::events::{Bus, Event, HostId, Progress, Sink};
use speediso::report::Config;
use speediso::sinks::report::Report;
use std::time::{Duration, Instant};

struct Null;
impl Sink for Null {
    fn event(&mut self, _: &Event) {}
}

fn cpu() -> Duration {
    let (u, s) = speediso::sys::rusage::self_cpu();
    u + s
}

fn emit(bus: &Bus, n: u64) {
    let step = bus.step("wipe");
    for i in 0..n {
        step.progress(Progress {
            percent: Some(i as f64 * 100.0 / n as f64),
            bytes: Some(i << 20),
            total_bytes: Some(n << 20),
            rate: Some(1.9e9),
            eta_s: Some((n - i) as f64 / 10.0),
            message: Some("/dev/nvme0n1".into()),
        });
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (url, token, n) = (a[1].clone(), a[2].clone(), a[3].parse::<u64>().unwrap());
    let host = HostId {
        serial: Some("BENCH0001".into()),
        ..HostId::default()
    };
    let t0 = cpu();
    let bus = Bus::new(Some("wipe".into()), host.clone(), vec![Box::new(Null)]);
    emit(&bus, n);
    let base = cpu() - t0;

    let run_dir = std::env::temp_dir().join(format!("speediso-report-cost-{}", std::process::id()));
    let cfg = Config {
        base: url,
        token: Some(token),
        ca_pem: None,
        https: false,
        drain: None,
    };
    let t0 = cpu();
    let w0 = Instant::now();
    let bus = Bus::new(
        Some("wipe".into()),
        host,
        vec![Box::new(Report::new(cfg, &run_dir))],
    );
    emit(&bus, n);
    bus.close(Duration::from_secs(120));
    let with = cpu() - t0;
    let wall = w0.elapsed();
    let left = std::fs::read_dir(run_dir.join("spool"))
        .map(|d| d.count())
        .unwrap_or(0);
    let _ = std::fs::remove_dir_all(&run_dir);
    let per_k = |d: Duration| d.as_secs_f64() * 1000.0 / (n as f64 / 1000.0);
    println!(
        "{}",
        serde_json::json!({
            "events": n,
            "cpu_ms_per_1000_events_no_sink": per_k(base),
            "cpu_ms_per_1000_events_report_sink": per_k(with),
            "wall_s_report_sink": wall.as_secs_f64(),
            "undelivered_spools": left,
        })
    );
}
