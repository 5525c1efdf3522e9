//! `speediso-collector load`: a load generator for the benchmark. N agent
//! threads each send one run of M events, in NDJSON batches, to a running
//! collector, and the ingest rate is printed.

use anyhow::{bail, Result};
use speediso_proto::events::{Body, Event, HostId, EVENT_VERSION};
use std::time::{Duration, Instant};

pub struct LoadArgs {
    pub url: String,
    pub token: String,
    pub agents: usize,
    pub events: usize,
    pub batch: usize,
}

fn line(run_id: &str, host: &HostId, seq: u64) -> String {
    let body = if seq == 0 {
        Body::RunStarted {
            steps: vec!["bench.cpu".into()],
            destructive: false,
            after: "stay".into(),
            agent_version: "load".into(),
        }
    } else {
        Body::Progress {
            percent: Some(seq as f64 / 10.0),
            bytes: Some(seq * 4096),
            total_bytes: Some(1 << 40),
            rate: Some(1.5e9),
            eta_s: Some(100.0),
            message: Some("/dev/nvme0n1".into()),
        }
    };
    let ev = Event {
        v: EVENT_VERSION,
        run_id: run_id.to_string(),
        seq,
        ts: speediso_proto::events::rfc3339_now(),
        host: host.clone(),
        task: Some("wipe".into()),
        step: Some("wipe".into()),
        body,
    };
    serde_json::to_string(&ev).expect("event serialises")
}

/// Run the load; returns (events sent, elapsed).
pub fn run(a: &LoadArgs) -> Result<(usize, Duration)> {
    let url = format!("{}/v1/events", a.url.trim_end_matches('/'));
    // Build every body first so the measurement is the collector's time.
    let mut plans = Vec::new();
    for i in 0..a.agents {
        let run_id = speediso_proto::events::new_run_id();
        let host = HostId {
            serial: Some(format!("LOAD{i:05}")),
            ..HostId::default()
        };
        let mut bodies = Vec::new();
        let mut cur = String::new();
        for seq in 0..a.events as u64 {
            cur.push_str(&line(&run_id, &host, seq));
            cur.push('\n');
            if (seq as usize + 1).is_multiple_of(a.batch.max(1)) {
                bodies.push(std::mem::take(&mut cur));
            }
        }
        if !cur.is_empty() {
            bodies.push(cur);
        }
        plans.push(bodies);
    }
    let start = Instant::now();
    let handles: Vec<_> = plans
        .into_iter()
        .map(|bodies| {
            let url = url.clone();
            let auth = format!("Bearer {}", a.token);
            std::thread::spawn(move || -> Result<()> {
                let agent = ureq::AgentBuilder::new()
                    .timeout(Duration::from_secs(60))
                    .build();
                for b in bodies {
                    agent
                        .post(&url)
                        .set("Authorization", &auth)
                        .set("Content-Type", "application/x-ndjson")
                        .send_string(&b)?;
                }
                Ok(())
            })
        })
        .collect();
    let mut errors = Vec::new();
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(format!("{e:#}")),
            Err(_) => errors.push("agent thread panicked".into()),
        }
    }
    let el = start.elapsed();
    if !errors.is_empty() {
        bail!("{} agent(s) failed, first: {}", errors.len(), errors[0]);
    }
    Ok((a.agents * a.events, el))
}
