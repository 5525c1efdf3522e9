//! The retry policy of the report sender: exponential backoff from `initial`
//! up to `cap`, each delay scattered by `jitter` so a rack of agents that lost
//! the collector together does not come back in lockstep, and an optional
//! `deadline` after which the caller stops trying.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Longest delay between two attempts.
    pub cap: Duration,
    /// Fraction of each delay that is random: 0.5 gives delays in
    /// [d/2, d]. 0 is deterministic (tests).
    pub jitter: f64,
    /// Give up this long after the first failure (`None`: never).
    pub deadline: Option<Duration>,
}

impl RetryPolicy {
    /// While a task runs: never give up (the spool keeps everything), but
    /// back off to 30 s so a dead collector costs nothing.
    pub const RUNNING: RetryPolicy = RetryPolicy {
        initial: Duration::from_millis(200),
        cap: Duration::from_secs(30),
        jitter: 0.5,
        deadline: None,
    };

    /// Draining before exit: short cap, bounded by the caller's deadline.
    pub fn draining(deadline: Duration) -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_millis(100),
            cap: Duration::from_secs(2),
            jitter: 0.5,
            deadline: Some(deadline),
        }
    }

    pub fn start(&self) -> Backoff {
        Backoff {
            policy: *self,
            attempt: 0,
            started: Instant::now(),
        }
    }
}

/// The state of one outage: how many attempts failed, since when.
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: RetryPolicy,
    attempt: u32,
    started: Instant,
}

impl Backoff {
    /// The delay before the next attempt, or `None` when the deadline has
    /// passed (or would pass before the next attempt).
    pub fn next_delay(&mut self) -> Option<Duration> {
        let p = &self.policy;
        let exp = p
            .initial
            .saturating_mul(1u32.checked_shl(self.attempt.min(30)).unwrap_or(u32::MAX));
        let base = exp.min(p.cap);
        self.attempt = self.attempt.saturating_add(1);
        let jitter = p.jitter.clamp(0.0, 1.0);
        let d = base.mul_f64(1.0 - jitter * random_unit());
        match p.deadline {
            Some(dl) if self.started.elapsed() + d > dl => None,
            _ => Some(d),
        }
    }

    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Whether the policy's deadline has passed.
    pub fn expired(&self) -> bool {
        self.policy
            .deadline
            .is_some_and(|d| self.started.elapsed() >= d)
    }
}

/// A uniform number in [0, 1) from the OS; jitter needs no more than that.
fn random_unit() -> f64 {
    let mut b = [0u8; 8];
    if getrandom::getrandom(&mut b).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_cap_without_jitter() {
        let p = RetryPolicy {
            initial: Duration::from_millis(100),
            cap: Duration::from_millis(1000),
            jitter: 0.0,
            deadline: None,
        };
        let mut b = p.start();
        let got: Vec<u128> = (0..7)
            .map(|_| b.next_delay().unwrap().as_millis())
            .collect();
        assert_eq!(got, vec![100, 200, 400, 800, 1000, 1000, 1000]);
        // Huge attempt counts do not overflow.
        for _ in 0..100 {
            assert_eq!(b.next_delay(), Some(Duration::from_millis(1000)));
        }
    }

    #[test]
    fn jitter_stays_in_range() {
        let p = RetryPolicy {
            jitter: 0.5,
            ..RetryPolicy::RUNNING
        };
        let mut b = p.start();
        for i in 0..20 {
            let d = b.next_delay().unwrap();
            let base = Duration::from_millis(200)
                .saturating_mul(1 << i.min(20))
                .min(p.cap);
            assert!(d <= base && d >= base / 2, "{i}: {d:?} vs {base:?}");
        }
    }

    #[test]
    fn deadline_stops() {
        let p = RetryPolicy {
            initial: Duration::from_millis(30),
            cap: Duration::from_millis(30),
            jitter: 0.0,
            deadline: Some(Duration::from_millis(50)),
        };
        let mut b = p.start();
        assert!(b.next_delay().is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.expired());
        assert_eq!(b.next_delay(), None);
    }
}
