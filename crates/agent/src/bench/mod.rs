//! Speed tests with typed, comparable figures: `bench.cpu`, `bench.memory`,
//! `bench.disk` (and `bench.net`, added beside them). Each module turns its
//! task-file options or command-line flags into a `Config`, runs, and returns
//! a serialisable report whose field names are the figures in the contract.
//!
//! Units: MB/s are 10^6 bytes per second (what fio's `bw_bytes`/1e6 gives),
//! latencies are in ns (memory) or µs (disk), as the field names say.

pub mod cpu;
pub mod disk;
pub mod memory;

use crate::options::{Kind, Options, Spec};
use anyhow::{bail, Result};
use speediso_proto::units::parse_duration;
use std::time::Duration;

/// `speediso.bench.duration`, a step's `duration`, the `--duration` flag:
/// how long each CPU, memory and disk benchmark phase runs.
pub const DURATION: Spec = Spec::cmdline(
    "bench.duration",
    Kind::Duration,
    "duration of each CPU/memory/disk benchmark",
)
.step("duration")
.flag("duration");

/// `threads`: how many threads the all-threads phases use.
pub const THREADS: Spec = Spec::step_only(
    "threads",
    Kind::Int(1, 4096),
    "threads of the all-threads phases (default: every CPU)",
)
.flag("threads");

/// A step option as a duration (`"10s"`, `"2m"` or an integer of seconds),
/// else `speediso.bench.duration`, else `default`.
pub fn opt_duration(
    step: &toml::Table,
    key: &str,
    options: &Options,
    default: Duration,
) -> Result<Duration> {
    let d = match step.get(key) {
        Some(toml::Value::Integer(n)) if *n > 0 => Duration::from_secs(*n as u64),
        Some(toml::Value::String(s)) => match parse_duration(s) {
            Some(d) if !d.is_zero() => d,
            _ => bail!("option {key} = {s:?} is not a duration like 10s or 2m"),
        },
        Some(v) => bail!("option {key} = {v} is not a duration like \"10s\""),
        None => match options.get("bench.duration").and_then(parse_duration) {
            Some(d) if !d.is_zero() => d,
            _ => default,
        },
    };
    Ok(d)
}

/// A step option as an unsigned integer within `[min, max]`.
pub fn opt_u64(step: &toml::Table, key: &str, min: u64, max: u64) -> Result<Option<u64>> {
    match step.get(key) {
        None => Ok(None),
        Some(toml::Value::Integer(n)) if (min as i64..=max as i64).contains(n) => {
            Ok(Some(*n as u64))
        }
        Some(v) => bail!("option {key} = {v} must be an integer in {min}..={max}"),
    }
}

/// A step option as a boolean (absent: false).
pub fn opt_bool(step: &toml::Table, key: &str) -> Result<bool> {
    match step.get(key) {
        None => Ok(false),
        Some(toml::Value::Boolean(b)) => Ok(*b),
        Some(v) => bail!("option {key} = {v} must be true or false"),
    }
}

/// A step option as a string.
pub fn opt_str<'a>(step: &'a toml::Table, key: &str) -> Result<Option<&'a str>> {
    match step.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(s)),
        Some(v) => bail!("option {key} = {v} must be a string"),
    }
}

/// Parse a duration flag (`10s`, `2m`, `30`).
pub fn parse_duration_flag(s: &str) -> Result<Duration, String> {
    match parse_duration(s) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(format!("{s:?} is not a duration like 10s or 2m")),
    }
}

/// Threads to use by default: the CPUs this process may run on.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// Round to two decimals so reports stay readable.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A small, fast PRNG (xorshift64*) for data and offsets: benchmarks need
/// cheap, reproducible randomness, not cryptographic quality.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15 | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in `0..n` (n > 0), without modulo bias worth caring about.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_from_step_then_option_then_default() {
        let def = Duration::from_secs(7);
        let empty = toml::Table::new();
        assert_eq!(
            opt_duration(&empty, "duration", &Options::default(), def).unwrap(),
            def
        );
        let opts = Options::from_pairs([("bench.duration", "30s")]);
        assert_eq!(
            opt_duration(&empty, "duration", &opts, def).unwrap(),
            Duration::from_secs(30)
        );
        let step: toml::Table = toml::from_str("duration = \"2m\"").unwrap();
        assert_eq!(
            opt_duration(&step, "duration", &opts, def).unwrap(),
            Duration::from_secs(120)
        );
        let bad: toml::Table = toml::from_str("duration = \"soon\"").unwrap();
        assert!(opt_duration(&bad, "duration", &opts, def).is_err());
    }

    #[test]
    fn int_options_are_bounded() {
        let step: toml::Table = toml::from_str("threads = 0\nok = 4").unwrap();
        assert!(opt_u64(&step, "threads", 1, 4096).is_err());
        assert_eq!(opt_u64(&step, "ok", 1, 4096).unwrap(), Some(4));
        assert_eq!(opt_u64(&step, "missing", 1, 4096).unwrap(), None);
    }

    #[test]
    fn rng_below_stays_in_range() {
        let mut r = Rng::new(1);
        for n in [1u64, 2, 7, 1 << 40] {
            for _ in 0..1000 {
                assert!(r.below(n) < n);
            }
        }
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }
}
