//! Uploads Foreman discovery facts (`report::foreman`): the inventory's
//! facts as soon as the inventory step's result goes by, so the host shows
//! up in Foreman early, and once more when the run finishes with what the
//! later steps found (health verdict, benchmark figures, wipe outcome and
//! certificate ids, each step's outcome), so an operator sees the results
//! on the host in Foreman. Each upload carries every fact known so far
//! (Foreman replaces a discovered host's facts with each upload).
//!
//! Uploads run on one background thread with the report retry policy; a
//! newer set of facts replaces one still waiting to be retried. Like every
//! sink it never fails the task; `close` waits (bounded) for the last
//! upload.

use crate::events::{Body, Event, Sink};
use crate::report::foreman;
use crate::report::retry::RetryPolicy;
use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Foreman being down for a while is normal during a datacenter rollout:
/// keep trying for five minutes (the run's close deadline bounds it too).
pub const POLICY: RetryPolicy = RetryPolicy {
    initial: Duration::from_secs(1),
    cap: Duration::from_secs(15),
    jitter: 0.5,
    deadline: Some(Duration::from_secs(300)),
};

type Facts = BTreeMap<String, String>;

struct Uploader {
    tx: mpsc::Sender<Facts>,
    done: mpsc::Receiver<()>,
    thread: JoinHandle<()>,
}

pub struct Foreman {
    base: String,
    agent: ureq::Agent,
    policy: RetryPolicy,
    /// Every fact so far: the inventory's, then the later steps'.
    facts: Facts,
    /// Step id → module, from `step_started`.
    modules: HashMap<String, String>,
    inventory_seen: bool,
    /// Facts arrived since the last upload was queued.
    dirty: bool,
    uploader: Option<Uploader>,
}

impl Foreman {
    pub fn new(base: &str, agent: ureq::Agent, policy: RetryPolicy) -> Foreman {
        Foreman {
            base: base.trim_end_matches('/').to_string(),
            agent,
            policy,
            facts: Facts::new(),
            modules: HashMap::new(),
            inventory_seen: false,
            dirty: false,
            uploader: None,
        }
    }

    /// Queue the current facts for upload, starting the thread on first use.
    fn upload(&mut self) {
        self.dirty = false;
        let facts = self.facts.clone();
        if let Some(u) = &self.uploader {
            let _ = u.tx.send(facts);
            return;
        }
        let url = format!("{}{}", self.base, foreman::FACTS_PATH);
        let (agent, policy) = (self.agent.clone(), self.policy);
        let (tx, rx) = mpsc::channel::<Facts>();
        let (done_tx, done) = mpsc::channel();
        let _ = tx.send(facts);
        let thread = std::thread::spawn(move || {
            let mut next = rx.recv().ok();
            while let Some(facts) = next.take() {
                next = send(&agent, &url, policy, &facts, &rx);
            }
            let _ = done_tx.send(());
        });
        self.uploader = Some(Uploader { tx, done, thread });
    }
}

/// Upload `facts`, retrying; a newer set arriving on `rx` while waiting to
/// retry replaces it. Returns the next set to upload, if any (blocking for
/// it until the sink is closed).
fn send(
    agent: &ureq::Agent,
    url: &str,
    policy: RetryPolicy,
    facts: &Facts,
    rx: &mpsc::Receiver<Facts>,
) -> Option<Facts> {
    let body = foreman::body(facts).to_string();
    let mut backoff = policy.start();
    loop {
        match agent
            .post(url)
            .set("Accept", "application/json")
            .set("Content-Type", "application/json")
            .send_string(&body)
        {
            Ok(_) => {
                tracing::info!("foreman: {} facts uploaded to {url}", facts.len());
                break;
            }
            Err(ureq::Error::Status(code, r)) if (400..500).contains(&code) && code != 429 => {
                let text = r.into_string().unwrap_or_default();
                crate::say!(
                    "speediso: foreman refused the facts ({code}): {}",
                    text.trim()
                );
                break;
            }
            Err(e) => match backoff.next_delay() {
                Some(d) => match rx.recv_timeout(d) {
                    // Newer facts: upload those instead (they hold these).
                    Ok(newer) => return Some(latest(newer, rx)),
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    // Closed: nothing newer can come, but still wait out
                    // the delay (close's deadline bounds the wait).
                    Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(d),
                },
                None => {
                    crate::say!("speediso: foreman facts not uploaded: {e}");
                    break;
                }
            },
        }
    }
    rx.recv().ok().map(|f| latest(f, rx))
}

/// The newest of `first` and whatever else is already queued.
fn latest(first: Facts, rx: &mpsc::Receiver<Facts>) -> Facts {
    rx.try_iter().last().unwrap_or(first)
}

impl Sink for Foreman {
    fn event(&mut self, ev: &Event) {
        let step = ev.step.as_deref().unwrap_or("");
        match &ev.body {
            Body::StepStarted { module } => {
                self.modules.insert(step.to_string(), module.clone());
            }
            Body::Result { data } => {
                let module = self
                    .modules
                    .get(step)
                    .cloned()
                    .unwrap_or_else(|| step.to_string());
                if module.starts_with("inventory") {
                    if self.inventory_seen {
                        return;
                    }
                    self.inventory_seen = true;
                    let inv = foreman::facts(data, ev.host.boot_mac.as_deref());
                    self.facts.extend(inv);
                    self.upload();
                } else {
                    let f = foreman::result_facts(&module, step, data);
                    self.dirty |= !f.is_empty();
                    self.facts.extend(f);
                }
            }
            Body::StepFinished { outcome, .. } => {
                let key = foreman::fact_name(&["speediso_step", step, "outcome"]);
                self.facts.insert(key, outcome.as_str().to_string());
                self.dirty = true;
            }
            Body::RunFinished { outcome, .. } => {
                let f = &mut self.facts;
                f.insert("speediso_run_id".into(), ev.run_id.clone());
                if let Some(t) = &ev.task {
                    f.insert("speediso_task".into(), t.clone());
                }
                f.insert("speediso_outcome".into(), outcome.as_str().into());
                f.insert("speediso_finished_at".into(), ev.ts.clone());
                if !self.inventory_seen {
                    // A task without inventory: Foreman still needs the
                    // boot interface to file the facts under.
                    let base =
                        foreman::facts(&serde_json::Value::Null, ev.host.boot_mac.as_deref());
                    for (k, v) in base {
                        self.facts.entry(k).or_insert(v);
                    }
                }
                self.upload();
            }
            _ => {}
        }
    }

    fn close(&mut self, deadline: Duration) {
        // Results after the last upload with no run_finished (an ad-hoc
        // command): upload them too.
        if self.dirty && self.uploader.is_some() {
            self.upload();
        }
        if let Some(u) = self.uploader.take() {
            drop(u.tx);
            let until = Instant::now() + deadline;
            if u.done
                .recv_timeout(until.saturating_duration_since(Instant::now()))
                .is_ok()
            {
                let _ = u.thread.join();
            }
        }
    }
}
