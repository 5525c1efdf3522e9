//! `bench.cpu`: the prime-search workload of `sysbench cpu` (so events/s are
//! directly comparable), plus two workloads that look like real work, in
//! MB/s: SHA-256 hashing and deflate compression. Each runs on one thread,
//! then on all threads, for a fixed time.
//!
//! One sysbench "event" is one full pass that tests every integer c in
//! 3..max_prime for primality by trial division with 64-bit integers,
//! dividing by 2, 3, ... while the divisor is <= sqrt(c) (as a double). We
//! keep the same integer widths and the same float comparison so the work
//! per event, and hence events/s, matches; the division is a real 64-bit
//! `div` (see `sys::cpu::rem_u64`), as in sysbench's gcc build.

use super::{default_threads, opt_duration, opt_u64, round2, Rng};
use crate::events::{Progress, StepEvents};
use crate::module::{Module, StepContext};
use crate::options::{Kind, Options, Spec};
use crate::sys::cpu::rem_u64;
use anyhow::Result;
use serde::Serialize;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const NAME: &str = "bench.cpu";

/// sysbench's default `--cpu-max-prime`.
pub const DEFAULT_MAX_PRIME: u64 = 10_000;
/// Per phase (6 phases: prime, sha256, deflate × single, all).
pub const DEFAULT_DURATION: Duration = Duration::from_secs(5);
/// Bytes handed to one hash or compression call.
const CHUNK: usize = 1 << 20;
/// zlib/gzip's default level: what `gzip` and most log shippers use.
const DEFLATE_LEVEL: u8 = 6;

#[derive(Debug, Clone)]
pub struct Config {
    /// How long each phase runs.
    pub duration: Duration,
    pub threads: usize,
    pub max_prime: u64,
    /// Also run the SHA-256 and deflate workloads.
    pub workloads: bool,
}

/// `speediso bench cpu` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct CpuArgs {
    /// How long each phase runs (single/all threads × prime/sha256/deflate).
    #[arg(long, value_name = "DURATION", value_parser = super::parse_duration_flag, default_value = "5s")]
    pub duration: Duration,
    /// Threads for the all-threads runs (default: the CPUs available).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub threads: Option<u64>,
    /// Upper limit of the prime search, as sysbench's --cpu-max-prime.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_PRIME, value_parser = clap::value_parser!(u64).range(4..=100_000_000))]
    pub max_prime: u64,
    /// Only the sysbench prime workload (skip sha256 and deflate).
    #[arg(long)]
    pub prime_only: bool,
}

impl CpuArgs {
    pub fn config(&self) -> Config {
        Config {
            duration: self.duration,
            threads: self
                .threads
                .map(|t| t as usize)
                .unwrap_or_else(default_threads),
            max_prime: self.max_prime,
            workloads: !self.prime_only,
        }
    }
}

impl Config {
    /// From a task step's options: `duration`, `threads`, `max_prime`,
    /// `workloads` (default true).
    pub fn from_step(step: &toml::Table, options: &Options) -> Result<Config> {
        Ok(Config {
            duration: opt_duration(step, "duration", options, DEFAULT_DURATION)?,
            threads: opt_u64(step, "threads", 1, 4096)?
                .map(|t| t as usize)
                .unwrap_or_else(default_threads),
            max_prime: opt_u64(step, "max_prime", 4, 100_000_000)?.unwrap_or(DEFAULT_MAX_PRIME),
            workloads: match step.get("workloads") {
                None => true,
                Some(_) => super::opt_bool(step, "workloads")?,
            },
        })
    }
}

/// A figure measured on one thread and on all threads.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Pair {
    pub single: f64,
    pub all: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Workload {
    pub mbps: Pair,
    /// all / single.
    pub scaling: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CpuReport {
    pub threads: usize,
    pub max_prime: u64,
    pub duration_s: f64,
    /// sysbench cpu events per second (`sysbench cpu --threads=1|N run`).
    pub events_per_second: Pair,
    /// Events completed in each run (sysbench's "total number of events").
    pub events: Pair,
    /// all / single events per second.
    pub scaling: f64,
    /// Primes below max_prime found in one event (a correctness check).
    pub primes_per_event: u64,
    pub sha256: Option<Workload>,
    pub deflate: Option<Workload>,
    /// Compressed/original size for the deflate input.
    pub deflate_ratio: Option<f64>,
}

/// One sysbench cpu event: count the primes in 3..max_prime.
pub fn prime_event(max_prime: u64) -> u64 {
    let mut n = 0u64;
    let mut c: u64 = 3;
    // Written to compile to what gcc -O2 makes of sysbench's loop, so the
    // work per event matches: values stay far below 2^63, so converting
    // through i64 is gcc's single cvtsi2sd; gcc turns the first divisor's
    // `c % 2` into a parity test; every other `c % l` is a full 64-bit
    // `div` (rem_u64), where LLVM would add a 32-bit shortcut.
    while c < max_prime {
        let t = (c as i64 as f64).sqrt();
        let mut l: u64 = 2;
        if l as i64 as f64 <= t && c & 1 != 0 {
            l = 3;
            while l as i64 as f64 <= t {
                if rem_u64(c, l) == 0 {
                    break;
                }
                l += 1;
            }
        }
        if l as i64 as f64 > t {
            n += 1;
        }
        c += 1;
    }
    n
}

/// Run `work` on `threads` threads for `duration`; each call returns the
/// units it did (1 event, or bytes). Returns units per second. Emits a
/// progress event each second.
fn timed<F>(threads: usize, duration: Duration, what: &str, ev: &StepEvents, work: F) -> (f64, u64)
where
    F: Fn() -> u64 + Sync,
{
    let stop = AtomicBool::new(false);
    let done = AtomicU64::new(0);
    let start = Instant::now();
    let elapsed = std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let n = work();
                    done.fetch_add(n, Ordering::Relaxed);
                }
            });
        }
        let mut last = (start, 0u64);
        while start.elapsed() < duration {
            let left = duration.saturating_sub(start.elapsed());
            std::thread::sleep(left.min(Duration::from_secs(1)));
            let now = Instant::now();
            let d = done.load(Ordering::Relaxed);
            let rate = (d - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
            last = (now, d);
            ev.progress(Progress {
                percent: Some(
                    (100.0 * start.elapsed().as_secs_f64() / duration.as_secs_f64()).min(100.0),
                ),
                rate: Some(rate),
                eta_s: Some(duration.saturating_sub(start.elapsed()).as_secs_f64()),
                message: Some(format!("{what}, {threads} thread(s)")),
                ..Default::default()
            });
        }
        stop.store(true, Ordering::Relaxed);
        // Units finished before the scope ends count; threads stop after
        // their current unit, as sysbench's do.
        start
    });
    let secs = elapsed.elapsed().as_secs_f64();
    let units = done.load(Ordering::Relaxed);
    (units as f64 / secs, units)
}

/// Text-like, moderately compressible input (about 3:1 with deflate): log
/// lines from a vocabulary of a few thousand made-up words with a skewed
/// (roughly Zipf) frequency, plus numbers. A tiny vocabulary would make the
/// match finder crawl long hash chains; random bytes would make it give up.
pub fn text_like(len: usize, seed: u64) -> Vec<u8> {
    const SYLLABLES: &[&str] = &[
        "ka", "ro", "mi", "ten", "sa", "lo", "ver", "di", "an", "ex", "por", "qu", "st", "er",
        "in", "on", "al", "ti", "ne", "ser", "dis", "req", "use", "ho", "ba", "ze", "ly", "ing",
    ];
    let mut rng = Rng::new(seed);
    let vocab: Vec<String> = (0..4096)
        .map(|_| {
            (0..2 + rng.below(3))
                .map(|_| SYLLABLES[rng.below(SYLLABLES.len() as u64) as usize])
                .collect()
        })
        .collect();
    let mut out = Vec::with_capacity(len + 64);
    while out.len() < len {
        // below(below(n)+1) favours small indices: frequent words.
        let top = rng.below(vocab.len() as u64) + 1;
        let w = rng.below(top) as usize;
        out.extend_from_slice(vocab[w].as_bytes());
        match rng.below(12) {
            0 => out.extend_from_slice(format!(" {}", rng.below(1_000_000)).as_bytes()),
            1 => out.push(b'\n'),
            2 => out.extend_from_slice(b", "),
            _ => {}
        }
        out.push(b' ');
    }
    out.truncate(len);
    out
}

pub fn run(cfg: &Config, ev: &StepEvents) -> Result<CpuReport> {
    let threads = cfg.threads.max(1);
    let max_prime = cfg.max_prime;
    let primes_per_event = prime_event(max_prime);
    // Rates, and the units (events or bytes) done in each run.
    let pair = |what: &str, f: &(dyn Fn() -> u64 + Sync)| -> (Pair, Pair) {
        let single = timed(1, cfg.duration, what, ev, f);
        let all = timed(threads, cfg.duration, what, ev, f);
        (
            Pair {
                single: round2(single.0),
                all: round2(all.0),
            },
            Pair {
                single: single.1 as f64,
                all: all.1 as f64,
            },
        )
    };
    let (eps, events) = pair("prime", &|| {
        black_box(prime_event(black_box(max_prime)));
        1
    });
    let (mut sha256, mut deflate, mut deflate_ratio) = (None, None, None);
    if cfg.workloads {
        let mut data = vec![0u8; CHUNK];
        Rng::new(42).fill(&mut data);
        let (p, _) = pair("sha256", &|| {
            use sha2::Digest;
            black_box(sha2::Sha256::digest(black_box(&data[..])));
            CHUNK as u64
        });
        sha256 = Some(workload(p));
        let text = text_like(CHUNK, 7);
        let packed = miniz_oxide::deflate::compress_to_vec(&text, DEFLATE_LEVEL);
        deflate_ratio = Some(round2(packed.len() as f64 / text.len() as f64));
        let (p, _) = pair("deflate", &|| {
            black_box(miniz_oxide::deflate::compress_to_vec(
                black_box(&text[..]),
                DEFLATE_LEVEL,
            ));
            CHUNK as u64
        });
        deflate = Some(workload(p));
    }
    Ok(CpuReport {
        threads,
        max_prime,
        duration_s: cfg.duration.as_secs_f64(),
        events_per_second: eps,
        events,
        scaling: round2(eps.all / eps.single.max(f64::MIN_POSITIVE)),
        primes_per_event,
        sha256,
        deflate,
        deflate_ratio,
    })
}

fn workload(bytes_per_s: Pair) -> Workload {
    let mbps = Pair {
        single: round2(bytes_per_s.single / 1e6),
        all: round2(bytes_per_s.all / 1e6),
    };
    Workload {
        mbps,
        scaling: round2(mbps.all / mbps.single.max(f64::MIN_POSITIVE)),
    }
}

/// Readable summary for `speediso bench cpu`.
pub fn summary(r: &CpuReport) -> String {
    let mut s = format!(
        "cpu: {} threads, max prime {}, {}s per phase\n\
         {:<10} {:>14} {:>14} {:>8}\n\
         {:<10} {:>14.2} {:>14.2} {:>7.2}x  events/s\n",
        r.threads,
        r.max_prime,
        r.duration_s,
        "workload",
        "single",
        "all",
        "scaling",
        "prime",
        r.events_per_second.single,
        r.events_per_second.all,
        r.scaling
    );
    for (name, w) in [("sha256", &r.sha256), ("deflate", &r.deflate)] {
        if let Some(w) = w {
            s += &format!(
                "{:<10} {:>14.2} {:>14.2} {:>7.2}x  MB/s\n",
                name, w.mbps.single, w.mbps.all, w.scaling
            );
        }
    }
    s
}

pub struct BenchCpu;

impl Module for BenchCpu {
    type Config = Config;
    const NAME: &'static str = NAME;
    const OPTIONS: &'static [Spec] = &[
        super::DURATION,
        super::THREADS,
        Spec::step_only(
            "max_prime",
            Kind::Int(4, 100_000_000),
            "primes are searched below this (sysbench's --cpu-max-prime)",
        )
        .flag("max-prime"),
        Spec::step_only(
            "workloads",
            Kind::Bool,
            "also time SHA-256 and deflate (default true; --prime-only turns them off)",
        ),
    ];
    fn configure(step: &toml::Table, options: &Options) -> Result<Config> {
        Config::from_step(step, options)
    }
    fn run(ctx: &StepContext<Config>) -> Result<serde_json::Value> {
        Ok(serde_json::to_value(run(ctx.config, &ctx.events)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prime_event_counts_odd_primes() {
        // Primes in 3..max_prime, as sysbench's loop counts them (2 is not
        // tested; c == max_prime is excluded).
        assert_eq!(prime_event(4), 1); // 3
        assert_eq!(prime_event(12), 4); // 3 5 7 11
        assert_eq!(prime_event(10_000), 1228); // pi(10000) - 1
    }

    #[test]
    fn text_like_compresses_moderately() {
        let t = text_like(1 << 16, 1);
        assert_eq!(t.len(), 1 << 16);
        let r =
            miniz_oxide::deflate::compress_to_vec(&t, DEFLATE_LEVEL).len() as f64 / t.len() as f64;
        assert!(r > 0.15 && r < 0.7, "ratio {r}");
    }
}
