//! Uploads the inventory as Foreman discovery facts (`report::foreman`)
//! when the inventory step's result goes by, from a background thread with
//! the report retry policy, bounded. Like every sink it never fails the
//! task; `close` waits (bounded) for the upload to finish.

use crate::events::{Body, Event, Sink};
use crate::report::foreman;
use crate::report::retry::RetryPolicy;
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

pub struct Foreman {
    base: String,
    agent: ureq::Agent,
    policy: RetryPolicy,
    upload: Option<(JoinHandle<()>, mpsc::Receiver<()>)>,
}

impl Foreman {
    pub fn new(base: &str, agent: ureq::Agent, policy: RetryPolicy) -> Foreman {
        Foreman {
            base: base.trim_end_matches('/').to_string(),
            agent,
            policy,
            upload: None,
        }
    }
}

impl Sink for Foreman {
    fn event(&mut self, ev: &Event) {
        let Body::Result { data } = &ev.body else {
            return;
        };
        if self.upload.is_some()
            || !ev
                .step
                .as_deref()
                .is_some_and(|s| s.starts_with("inventory"))
        {
            return;
        }
        let body = foreman::body(&foreman::facts(data, ev.host.boot_mac.as_deref()));
        let url = format!("{}{}", self.base, foreman::FACTS_PATH);
        let agent = self.agent.clone();
        let policy = self.policy;
        let (tx, rx) = mpsc::channel();
        let h = std::thread::spawn(move || {
            let mut backoff = policy.start();
            loop {
                match agent
                    .post(&url)
                    .set("Accept", "application/json")
                    .set("Content-Type", "application/json")
                    .send_string(&body.to_string())
                {
                    Ok(_) => {
                        tracing::info!("foreman: facts uploaded to {url}");
                        break;
                    }
                    Err(ureq::Error::Status(code, r))
                        if (400..500).contains(&code) && code != 429 =>
                    {
                        let text = r.into_string().unwrap_or_default();
                        crate::say!(
                            "speediso: foreman refused the facts ({code}): {}",
                            text.trim()
                        );
                        break;
                    }
                    Err(e) => match backoff.next_delay() {
                        Some(d) => std::thread::sleep(d),
                        None => {
                            crate::say!("speediso: foreman facts not uploaded: {e}");
                            break;
                        }
                    },
                }
            }
            let _ = tx.send(());
        });
        self.upload = Some((h, rx));
    }

    fn close(&mut self, deadline: Duration) {
        if let Some((h, rx)) = self.upload.take() {
            let until = Instant::now() + deadline;
            if rx
                .recv_timeout(until.saturating_duration_since(Instant::now()))
                .is_ok()
            {
                let _ = h.join();
            }
        }
    }
}
