//! The memory test's options: how much memory (a share of MemAvailable, or
//! a size), how long (passes and/or a duration), how many threads. Each is
//! a task-file step key and a flag of `speediso burnin memory`; the share is
//! also `speediso.burnin.memory_share` on the kernel command line, which
//! wins over the task file's (it is the host's own).

use crate::options::{parse_fraction, Kind, Options, Spec};
use anyhow::{bail, Result};
use speediso_proto::units::parse_duration;
use std::time::Duration;

/// Share of MemAvailable tested by default.
pub const DEFAULT_SHARE: f64 = 0.9;
/// The largest share: the rest is the agent's, the kernel's and the sinks'.
pub const MAX_SHARE: f64 = 0.98;
const MIB: u64 = 1 << 20;
/// The smallest region worth testing.
pub const MIN_SIZE: u64 = MIB;

/// How much memory to test.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    /// This share of MemAvailable (0 < share <= MAX_SHARE).
    Share(f64),
    /// Exactly this many bytes (rounded down to whole pages).
    Bytes(u64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub amount: Amount,
    /// Passes to run; `None` with no duration: 1.
    pub passes: Option<u64>,
    /// Start no pass after this long (the pass in progress finishes).
    pub duration: Option<Duration>,
    /// Worker threads (each writes and checks its own slice).
    pub threads: usize,
    /// Flip bit 0 of this word (modulo the region) after the first write:
    /// the fault injection that proves the checker finds a bad word. Only
    /// the hidden `--inject-flip` flag of the ad-hoc command sets it; no
    /// task-file key or kernel option can.
    pub inject: Option<u64>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            amount: Amount::Share(DEFAULT_SHARE),
            passes: None,
            duration: None,
            threads: default_threads(),
            inject: None,
        }
    }
}

/// Every option, in `speediso tasks --options` order.
pub const OPTIONS: &[Spec] = &[
    Spec::cmdline(
        "burnin.memory_share",
        Kind::Fraction(MAX_SHARE),
        "burnin.memory: share of MemAvailable to test (default 0.9, at most 0.98)",
    )
    .step("share")
    .flag("share"),
    Spec::step_only(
        "size",
        Kind::NonEmpty,
        "burnin.memory: test this much memory instead of a share, like 512M or 16G",
    )
    .flag("size"),
    Spec::step_only(
        "passes",
        Kind::Int(1, 1_000_000),
        "burnin.memory: passes of every pattern (default 1; with duration: at most this many)",
    )
    .flag("passes"),
    Spec::step_only(
        "duration",
        Kind::Duration,
        "burnin.memory: start passes until this long has passed (the last one finishes)",
    )
    .flag("duration"),
    Spec::step_only(
        "threads",
        Kind::Int(1, 4096),
        "burnin.memory: worker threads (default: every CPU)",
    )
    .flag("threads"),
];

impl Config {
    /// From a step's options and the command line's (which win).
    pub fn new(step: &toml::Table, options: &Options) -> Result<Config> {
        let mut c = Config::default();
        let share = match options.get("burnin.memory_share") {
            Some(v) => match parse_fraction(v, MAX_SHARE) {
                Some(f) => Some(f),
                None => bail!(
                    "speediso.burnin.memory_share={v:?}: expected a number greater than 0 and at most {MAX_SHARE}"
                ),
            },
            None => None,
        };
        let step_share = match step.get("share") {
            None => None,
            Some(toml::Value::Float(f)) if *f > 0.0 && *f <= MAX_SHARE => Some(*f),
            Some(v) => bail!(
                "burnin.memory option share = {v}: expected a number greater than 0 and at most {MAX_SHARE}"
            ),
        };
        let size = match step.get("size") {
            None => None,
            Some(toml::Value::String(s)) => Some(
                size_value(s)
                    .map_err(|e| anyhow::anyhow!("burnin.memory option size = {s:?}: {e}"))?,
            ),
            Some(toml::Value::Integer(n)) if *n >= MIN_SIZE as i64 => Some(*n as u64),
            Some(v) => {
                bail!("burnin.memory option size = {v}: expected a size like \"512M\" or \"16G\"")
            }
        };
        if size.is_some() && step_share.is_some() {
            bail!("burnin.memory options size and share: give one, not both");
        }
        c.amount = match (share, size, step_share) {
            (Some(f), _, _) => Amount::Share(f),
            (None, Some(b), _) => Amount::Bytes(b),
            (None, None, Some(f)) => Amount::Share(f),
            (None, None, None) => Amount::Share(DEFAULT_SHARE),
        };
        c.passes = match step.get("passes") {
            None => None,
            Some(toml::Value::Integer(n)) if (1..=1_000_000).contains(n) => Some(*n as u64),
            Some(v) => {
                bail!("burnin.memory option passes = {v}: expected an integer from 1 to 1000000")
            }
        };
        c.duration = match step.get("duration") {
            None => None,
            Some(toml::Value::Integer(n)) if *n > 0 => Some(Duration::from_secs(*n as u64)),
            Some(toml::Value::String(s)) => Some(
                duration_value(s)
                    .map_err(|e| anyhow::anyhow!("burnin.memory option duration = {s:?}: {e}"))?,
            ),
            Some(v) => {
                bail!("burnin.memory option duration = {v}: expected a duration like \"30m\"")
            }
        };
        if let Some(v) = step.get("threads") {
            match v {
                toml::Value::Integer(n) if (1..=4096).contains(n) => c.threads = *n as usize,
                _ => {
                    bail!("burnin.memory option threads = {v}: expected an integer from 1 to 4096")
                }
            }
        }
        Ok(c)
    }
}

/// Threads by default: the CPUs this process may run on.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// A size: bytes, or a number with K, M, G or T (powers of 1024; `MiB`,
/// `MB` and `m` mean the same), at least 1M.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let n: u64 = s[..digits].parse().ok()?;
    let unit = s[digits..].trim().to_ascii_lowercase();
    let shift = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

/// A size option's value, or what was wrong with it.
pub fn size_value(s: &str) -> Result<u64, String> {
    match parse_size(s) {
        Some(b) if b >= MIN_SIZE => Ok(b),
        Some(_) => Err("below the smallest size, 1M".into()),
        None => Err("not a size like 512M or 16G".into()),
    }
}

/// A duration option's value, or what was wrong with it.
pub fn duration_value(s: &str) -> Result<Duration, String> {
    match parse_duration(s) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err("not a duration like 90s, 30m or 4h".into()),
    }
}

/// `speediso burnin memory` flags. Each flag given replaces its field of
/// the config made from the command line's `speediso.*` options.
#[derive(Debug, Clone, clap::Args)]
pub struct MemoryArgs {
    /// Test this much memory instead of a share of MemAvailable: bytes, or
    /// a number with K, M, G or T (powers of 1024), at least 1M.
    #[arg(long, value_name = "SIZE", value_parser = |s: &str| size_value(s).map_err(|e| format!("{s:?}: {e}")), conflicts_with = "share")]
    pub size: Option<u64>,
    /// Share of MemAvailable to test, 0 < F <= 0.98 [default: 0.9, or
    /// speediso.burnin.memory_share].
    #[arg(long, value_name = "F", value_parser = |s: &str| parse_fraction(s, MAX_SHARE).ok_or_else(|| format!("{s:?}: expected a number greater than 0 and at most {MAX_SHARE}")))]
    pub share: Option<f64>,
    /// Passes of every pattern [default: 1; with --duration: no limit but
    /// the duration].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub passes: Option<u64>,
    /// Keep starting passes until this long has passed (90s, 30m, 4h); the
    /// pass in progress finishes. With --passes: whichever comes first.
    #[arg(long, value_name = "DURATION", value_parser = |s: &str| duration_value(s).map_err(|e| format!("{s:?}: {e}")))]
    pub duration: Option<Duration>,
    /// Worker threads, each writing and checking its own slice [default:
    /// every CPU].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub threads: Option<u64>,
    /// Flip bit 0 of word WORD_INDEX (modulo the region) after the first
    /// pattern is written: a fault injected to prove the checker (tests).
    #[arg(long, value_name = "WORD_INDEX", hide = true)]
    pub inject_flip: Option<u64>,
    /// Print the result as one JSON document (progress goes to stderr).
    #[arg(long)]
    pub json: bool,
}

impl MemoryArgs {
    /// Replace the fields of `c` that flags give.
    pub fn apply(&self, c: &mut Config) {
        if let Some(b) = self.size {
            c.amount = Amount::Bytes(b);
        }
        if let Some(f) = self.share {
            c.amount = Amount::Share(f);
        }
        if self.passes.is_some() {
            c.passes = self.passes;
        }
        if self.duration.is_some() {
            c.duration = self.duration;
        }
        if let Some(t) = self.threads {
            c.threads = t as usize;
        }
        c.inject = self.inject_flip;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        for (s, want) in [
            ("512M", Some(512 * MIB)),
            ("512MiB", Some(512 * MIB)),
            ("512mb", Some(512 * MIB)),
            ("16G", Some(16 << 30)),
            ("4096K", Some(4 * MIB)),
            ("2T", Some(2 << 40)),
            ("1048576", Some(MIB)),
            (" 64 M ", Some(64 * MIB)),
            ("garbage", None),
            ("12X", None),
            ("M", None),
            ("-1M", None),
            ("99999999999T", None),
        ] {
            assert_eq!(parse_size(s), want, "{s:?}");
        }
        assert!(size_value("4K").unwrap_err().contains("smallest"));
    }

    #[test]
    fn defaults_and_the_command_line_winning() {
        let c = Config::new(&toml::Table::new(), &Options::default()).unwrap();
        assert_eq!(c.amount, Amount::Share(0.9));
        assert_eq!((c.passes, c.duration, c.inject), (None, None, None));
        let step: toml::Table =
            toml::from_str("share = 0.5\npasses = 3\nduration = \"2h\"\nthreads = 2").unwrap();
        let c = Config::new(&step, &Options::default()).unwrap();
        assert_eq!(c.amount, Amount::Share(0.5));
        assert_eq!(c.passes, Some(3));
        assert_eq!(c.duration, Some(Duration::from_secs(7200)));
        assert_eq!(c.threads, 2);
        let o = Options::from_pairs([("burnin.memory_share", "0.75")]);
        assert_eq!(Config::new(&step, &o).unwrap().amount, Amount::Share(0.75));
        let step: toml::Table = toml::from_str("size = \"1G\"").unwrap();
        let c = Config::new(&step, &Options::default()).unwrap();
        assert_eq!(c.amount, Amount::Bytes(1 << 30));
    }

    #[test]
    fn bad_values_name_the_key_and_value() {
        for (text, needle) in [
            ("share = 0.99", "share = 0.99"),
            ("share = 1", "share = 1"),
            ("size = \"lots\"", "size = \"lots\""),
            ("size = \"12K\"", "size = \"12K\""),
            ("passes = 0", "passes = 0"),
            ("duration = \"soon\"", "duration = \"soon\""),
            ("threads = 'x'", "threads = \"x\""),
            ("size = \"1G\"\nshare = 0.5", "size and share"),
        ] {
            let step: toml::Table = toml::from_str(text).unwrap();
            let err = format!("{:#}", Config::new(&step, &Options::default()).unwrap_err());
            assert!(err.contains(needle), "{text}: {err}");
        }
        let o = Options::from_pairs([("burnin.memory_share", "0")]);
        let err = format!("{:#}", Config::new(&toml::Table::new(), &o).unwrap_err());
        assert!(err.contains("speediso.burnin.memory_share=\"0\""), "{err}");
    }
}
