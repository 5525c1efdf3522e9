//! Live progress of one disk's erase: phases, fractions and rates, sent
//! as progress events.

use crate::events::{Progress, StepEvents};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Live progress of one disk; phases are write passes and verification.
pub struct Tracker {
    device: String,
    events: Option<StepEvents>,
    phase: Mutex<(String, u64, Instant)>,
    done: AtomicU64,
    last: Mutex<Instant>,
    interval: Duration,
}

impl Tracker {
    pub fn new(device: String, events: Option<StepEvents>) -> Tracker {
        Tracker {
            device,
            events,
            phase: Mutex::new((String::new(), 0, Instant::now())),
            done: AtomicU64::new(0),
            last: Mutex::new(Instant::now()),
            interval: Duration::from_secs(2),
        }
    }

    /// Start a phase of `total` bytes.
    pub fn phase(&self, name: &str, total: u64) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) =
            (name.to_string(), total, Instant::now());
        self.done.store(0, Ordering::Relaxed);
        self.emit(None);
    }

    /// `n` more bytes done; emits at most every `interval`.
    pub fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
        let due = match self.last.try_lock() {
            Ok(mut l) if l.elapsed() >= self.interval => {
                *l = Instant::now();
                true
            }
            _ => false,
        };
        if due {
            self.emit(None);
        }
    }

    /// Bytes done in this phase so far.
    pub fn done(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }

    /// A firmware operation's own progress (0..=1).
    pub fn fraction(&self, f: f64) {
        self.emit(Some(f));
    }

    fn emit(&self, fraction: Option<f64>) {
        let Some(ev) = &self.events else { return };
        let (name, total, start) = self.phase.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let done = self.done.load(Ordering::Relaxed);
        let secs = start.elapsed().as_secs_f64();
        let pct = fraction.unwrap_or(if total > 0 {
            done as f64 / total as f64
        } else {
            0.0
        });
        let rate = (secs > 0.0 && fraction.is_none()).then(|| done as f64 / secs);
        let eta = if pct > 0.0 && pct < 1.0 {
            Some(secs * (1.0 - pct) / pct)
        } else {
            None
        };
        ev.progress(Progress {
            percent: Some((pct * 1000.0).round() / 10.0),
            bytes: fraction.is_none().then_some(done),
            total_bytes: (total > 0).then_some(total),
            rate,
            eta_s: eta,
            message: Some(format!("{} {name}", self.device)),
        });
    }
}
