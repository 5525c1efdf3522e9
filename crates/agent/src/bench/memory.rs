//! `bench.memory`: STREAM-style bandwidth (copy, scale, add, triad) on all
//! threads with arrays well beyond the last-level cache, a pointer-chasing
//! latency in ns over a random cyclic permutation, and an optional bounded
//! write/verify pattern check for burn-in.
//!
//! Bandwidth counts bytes the way STREAM does (copy/scale: 2 × 8 bytes per
//! element, add/triad: 3 × 8) and reports the best of the repetitions.

use super::{default_threads, opt_duration, opt_u64, round2, Rng};
use crate::events::{Progress, StepEvents};
use crate::module::{Module, StepContext};
use crate::options::{Kind, Options, Spec};
use crate::root::Root;
use anyhow::{bail, Result};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

pub const NAME: &str = "bench.memory";
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);
const MIB: u64 = 1 << 20;
/// Per-array bounds: at least this, whatever the cache says...
const MIN_ARRAY: u64 = 64 * MIB;
/// ...and at most this, so three arrays stay modest on any server.
const MAX_ARRAY: u64 = 2048 * MIB;
const LINE: usize = 64;

#[derive(Debug, Clone)]
pub struct Config {
    /// Time budget for the bandwidth repetitions (at least 3 run anyway).
    pub duration: Duration,
    pub threads: usize,
    /// Bytes per STREAM array; `None`: 4 × the last-level cache, bounded.
    pub array_bytes: Option<u64>,
    /// Bytes to pattern-check; 0: no check.
    pub check_bytes: u64,
}

/// `speediso bench memory` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct MemoryArgs {
    /// Time budget for the bandwidth repetitions.
    #[arg(long, value_name = "DURATION", value_parser = super::parse_duration_flag, default_value = "10s")]
    pub duration: Duration,
    /// Threads (default: the CPUs available).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub threads: Option<u64>,
    /// MiB per STREAM array (default: 4 × the last-level cache, 64..2048).
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=65536))]
    pub array_mib: Option<u64>,
    /// Pattern-check this many MiB (write/verify; 0 = off).
    #[arg(long, value_name = "MIB", default_value_t = 0)]
    pub check_mib: u64,
}

impl MemoryArgs {
    pub fn config(&self) -> Config {
        Config {
            duration: self.duration,
            threads: self
                .threads
                .map(|t| t as usize)
                .unwrap_or_else(default_threads),
            array_bytes: self.array_mib.map(|m| m * MIB),
            check_bytes: self.check_mib * MIB,
        }
    }
}

/// `bench.memory`'s options: its step keys and the `speediso bench memory`
/// flags, read by `Config::from_step`.
pub const OPTIONS: &[Spec] = &[
    super::DURATION,
    super::THREADS,
    Spec::step_only(
        "array_mib",
        Kind::Int(1, 65536),
        "MiB per STREAM array (default: 4x the last-level cache)",
    )
    .flag("array-mib"),
    Spec::step_only(
        "check_mib",
        Kind::Int(0, 1 << 22),
        "MiB to pattern-check for errors (default 0: no check)",
    )
    .flag("check-mib"),
];

impl Config {
    /// From step options `duration`, `threads`, `array_mib`, `check_mib`.
    pub fn from_step(step: &toml::Table, options: &Options) -> Result<Config> {
        Ok(Config {
            duration: opt_duration(step, "duration", options, DEFAULT_DURATION)?,
            threads: opt_u64(step, "threads", 1, 4096)?
                .map(|t| t as usize)
                .unwrap_or_else(default_threads),
            array_bytes: opt_u64(step, "array_mib", 1, 65536)?.map(|m| m * MIB),
            check_bytes: opt_u64(step, "check_mib", 0, 1 << 22)?.unwrap_or(0) * MIB,
        })
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bandwidth {
    pub copy: f64,
    pub scale: f64,
    pub add: f64,
    pub triad: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Mismatch {
    /// Byte offset in the checked buffer.
    pub offset: u64,
    /// Virtual address in the agent (physical addresses need pagemap).
    pub address: String,
    pub pattern: String,
    pub expected: String,
    pub actual: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PatternCheck {
    pub bytes: u64,
    pub patterns: Vec<String>,
    pub errors: u64,
    /// The first mismatches (at most 16).
    pub mismatches: Vec<Mismatch>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MemoryReport {
    pub threads: usize,
    /// Last-level cache found in /sys (all instances), bytes.
    pub llc_bytes: Option<u64>,
    pub array_bytes: u64,
    pub repetitions: u32,
    /// MB/s (10^6 bytes), best repetition.
    pub mbps: Bandwidth,
    /// Mean load-to-load latency of a dependent random walk.
    pub latency_ns: f64,
    pub latency_buffer_bytes: u64,
    pub check: Option<PatternCheck>,
}

/// Total last-level cache: the largest level's size times its number of
/// distinct instances (one per socket or CCX), from
/// /sys/devices/system/cpu/cpu*/cache/index*.
pub fn llc_bytes(root: &Root) -> Option<u64> {
    let cpus = std::fs::read_dir(root.at("/sys/devices/system/cpu")).ok()?;
    let mut best: Option<(u32, u64)> = None;
    let mut seen = std::collections::BTreeSet::new();
    for cpu in cpus.flatten() {
        let name = cpu.file_name().to_string_lossy().to_string();
        if !name.starts_with("cpu") || !name[3..].bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(idx) = std::fs::read_dir(cpu.path().join("cache")) else {
            continue;
        };
        for i in idx.flatten() {
            let read = |f: &str| std::fs::read_to_string(i.path().join(f)).unwrap_or_default();
            let kind = read("type");
            if kind.trim() == "Instruction" {
                continue;
            }
            let (Ok(level), Some(size)) = (
                read("level").trim().parse::<u32>(),
                parse_size(&read("size")),
            ) else {
                continue;
            };
            let shared = read("shared_cpu_list").trim().to_string();
            match best {
                Some((l, _)) if l > level => continue,
                Some((l, _)) if l < level => {
                    seen.clear();
                    best = Some((level, 0));
                }
                None => best = Some((level, 0)),
                _ => {}
            }
            if seen.insert(shared) {
                if let Some((_, total)) = best.as_mut() {
                    *total += size;
                }
            }
        }
    }
    best.map(|(_, t)| t).filter(|t| *t > 0)
}

/// `32768K`, `2M`, `512` (bytes) as in sysfs cache sizes.
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'K' => (&s[..s.len() - 1], 1024),
        'M' => (&s[..s.len() - 1], MIB),
        'G' => (&s[..s.len() - 1], 1024 * MIB),
        _ => (s, 1),
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

/// MemAvailable from /proc/meminfo, bytes.
fn mem_available(root: &Root) -> Option<u64> {
    let text = std::fs::read_to_string(root.at("/proc/meminfo")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|k| k * 1024)
}

/// STREAM's rule: each array at least 4 × the caches; bounded so three
/// arrays take at most a quarter of available memory.
pub fn array_size(llc: Option<u64>, available: Option<u64>) -> u64 {
    let want = (4 * llc.unwrap_or(32 * MIB)).clamp(MIN_ARRAY, MAX_ARRAY);
    match available {
        Some(a) => want.min(a / 12).max(16 * MIB),
        None => want,
    }
}

fn stream(cfg: &Config, n: usize, ev: &StepEvents) -> (Bandwidth, u32) {
    let threads = cfg.threads.max(1).min(n / 1024).max(1);
    // Zeroed allocations are mapped lazily: each thread's first touch of
    // its own chunk (below) puts those pages on its NUMA node.
    let mut a = vec![0f64; n];
    let mut b = vec![0f64; n];
    let mut c = vec![0f64; n];
    let chunk = n.div_ceil(threads);
    let workers = n.div_ceil(chunk);
    let barrier = Barrier::new(workers + 1);
    let scalar = 3.0f64;
    let deadline = cfg.duration;
    let mut best = [f64::MAX; 4];
    let mut reps = 0u32;
    let stop = std::sync::atomic::AtomicBool::new(false);
    let base = Instant::now();
    let marks: Vec<(AtomicU64, AtomicU64)> = (0..workers)
        .map(|_| (AtomicU64::new(0), AtomicU64::new(0)))
        .collect();
    std::thread::scope(|s| {
        let bar = &barrier;
        let stop = &stop;
        let (base, marks) = (&base, &marks);
        for (w, ((a, b), c)) in a
            .chunks_mut(chunk)
            .zip(b.chunks_mut(chunk))
            .zip(c.chunks_mut(chunk))
            .enumerate()
        {
            s.spawn(move || {
                a.fill(1.0);
                b.fill(2.0);
                c.fill(0.0);
                bar.wait();
                loop {
                    for k in 0..4 {
                        bar.wait();
                        marks[w].0.store(ns_since(base), Ordering::Relaxed);
                        match k {
                            0 => c.copy_from_slice(a),
                            1 => b
                                .iter_mut()
                                .zip(c.iter())
                                .for_each(|(b, c)| *b = scalar * c),
                            2 => c
                                .iter_mut()
                                .zip(a.iter().zip(b.iter()))
                                .for_each(|(c, (a, b))| *c = a + b),
                            _ => a
                                .iter_mut()
                                .zip(b.iter().zip(c.iter()))
                                .for_each(|(a, (b, c))| *a = b + scalar * c),
                        }
                        marks[w].1.store(ns_since(base), Ordering::Relaxed);
                        bar.wait();
                    }
                    bar.wait();
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                }
            });
        }
        barrier.wait();
        let start = Instant::now();
        let mut last_progress = start;
        loop {
            for best_k in best.iter_mut() {
                barrier.wait();
                barrier.wait();
                // From the first worker's start to the last one's end: each
                // worker stamps its own times, so a late wake-up of this
                // thread cannot shorten the interval.
                let first = marks.iter().map(|m| m.0.load(Ordering::Relaxed)).min();
                let last = marks.iter().map(|m| m.1.load(Ordering::Relaxed)).max();
                if let (Some(t0), Some(t1)) = (first, last) {
                    *best_k = best_k.min(t1.saturating_sub(t0).max(1) as f64 / 1e9);
                }
            }
            reps += 1;
            let done = reps >= 3 && (start.elapsed() >= deadline || reps >= 1000);
            stop.store(done, Ordering::Relaxed);
            barrier.wait();
            if last_progress.elapsed() >= Duration::from_secs(1) || done {
                last_progress = Instant::now();
                ev.progress(Progress {
                    percent: Some(
                        (100.0 * start.elapsed().as_secs_f64() / deadline.as_secs_f64()).min(100.0),
                    ),
                    rate: Some(3.0 * 8.0 * n as f64 / best[3]),
                    message: Some(format!("stream, {workers} thread(s), rep {reps}")),
                    ..Default::default()
                });
            }
            if done {
                break;
            }
        }
    });
    let bytes = |k: usize| (if k < 2 { 2.0 } else { 3.0 }) * 8.0 * n as f64;
    let mbps = |k: usize| round2(bytes(k) / best[k] / 1e6);
    (
        Bandwidth {
            copy: mbps(0),
            scale: mbps(1),
            add: mbps(2),
            triad: mbps(3),
        },
        reps,
    )
}

fn ns_since(base: &Instant) -> u64 {
    base.elapsed().as_nanos() as u64
}

/// Mean latency of dependent loads over `bytes`, one per cache line, in a
/// single random cycle (Sattolo's algorithm) so the prefetcher cannot guess.
pub fn chase_latency_ns(bytes: u64, budget: Duration) -> f64 {
    let stride = LINE / std::mem::size_of::<usize>();
    let lines = (bytes as usize / LINE).max(2);
    let mut order: Vec<usize> = (0..lines).collect();
    let mut rng = Rng::new(0x5eed);
    for i in (1..lines).rev() {
        let j = rng.below(i as u64) as usize;
        order.swap(i, j);
    }
    let mut next = vec![0usize; lines * stride];
    // order is a single cycle: line i points to order[i].
    for (i, &o) in order.iter().enumerate() {
        next[i * stride] = o * stride;
    }
    drop(order);
    let mut p = 0usize;
    // Warm the TLB and caches once around part of the cycle.
    for _ in 0..lines.min(1 << 20) {
        p = next[p];
    }
    let mut steps = 0u64;
    let start = Instant::now();
    const BATCH: u64 = 1 << 16;
    while start.elapsed() < budget {
        for _ in 0..BATCH {
            p = next[p];
        }
        steps += BATCH;
    }
    std::hint::black_box(p);
    start.elapsed().as_nanos() as f64 / steps as f64
}

const PATTERNS: [&str; 6] = ["zeros", "ones", "0x55", "0xaa", "address", "random"];

fn pattern_word(pat: usize, i: usize, seed: u64) -> u64 {
    match pat {
        0 => 0,
        1 => u64::MAX,
        2 => 0x5555_5555_5555_5555,
        3 => 0xaaaa_aaaa_aaaa_aaaa,
        4 => i as u64 * 8,
        // A cheap hash of the index, so verify needs no second buffer.
        _ => {
            let mut x = (i as u64)
                .wrapping_add(seed)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
            x ^= x >> 31;
            x.wrapping_mul(0xBF58_476D_1CE4_E5B9)
        }
    }
}

/// Words of `part` (starting at word `first_index` of the buffer) that do
/// not hold pattern `pat`: the count, and the first 16 (index, value).
fn mismatches_in(
    part: &[u64],
    first_index: usize,
    pat: usize,
    seed: u64,
) -> (u64, Vec<(usize, u64)>) {
    let mut n = 0u64;
    let mut first = Vec::new();
    for (j, &w) in part.iter().enumerate() {
        let i = first_index + j;
        if w != pattern_word(pat, i, seed) {
            n += 1;
            if first.len() < 16 {
                first.push((i, w));
            }
        }
    }
    (n, first)
}

/// Write each pattern over `bytes`, read it back, report mismatches.
pub fn pattern_check(bytes: u64, threads: usize, ev: &StepEvents) -> PatternCheck {
    let words = (bytes / 8) as usize;
    let mut buf = vec![0u64; words];
    let base = buf.as_ptr() as usize;
    let chunk = words.div_ceil(threads.max(1)).max(1);
    let mut errors = 0u64;
    let mut mismatches = Vec::new();
    for (pat, name) in PATTERNS.iter().enumerate() {
        let seed = 0xc0ffee + pat as u64;
        std::thread::scope(|s| {
            for (t, part) in buf.chunks_mut(chunk).enumerate() {
                s.spawn(move || {
                    for (j, w) in part.iter_mut().enumerate() {
                        *w = pattern_word(pat, t * chunk + j, seed);
                    }
                });
            }
        });
        let found: Vec<(u64, Vec<(usize, u64)>)> = std::thread::scope(|s| {
            let hs: Vec<_> = buf
                .chunks(chunk)
                .enumerate()
                .map(|(t, part)| s.spawn(move || mismatches_in(part, t * chunk, pat, seed)))
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap_or_default())
                .collect()
        });
        for (n, first) in found {
            errors += n;
            for (i, w) in first {
                if mismatches.len() < 16 {
                    mismatches.push(Mismatch {
                        offset: i as u64 * 8,
                        address: format!("{:#x}", base + i * 8),
                        pattern: name.to_string(),
                        expected: format!("{:#018x}", pattern_word(pat, i, seed)),
                        actual: format!("{w:#018x}"),
                    });
                }
            }
        }
        ev.progress(Progress {
            percent: Some(100.0 * (pat + 1) as f64 / PATTERNS.len() as f64),
            message: Some(format!("pattern check: {name} done, {errors} error(s)")),
            ..Default::default()
        });
    }
    PatternCheck {
        bytes: words as u64 * 8,
        patterns: PATTERNS.iter().map(|s| s.to_string()).collect(),
        errors,
        mismatches,
    }
}

pub fn run(cfg: &Config, root: &Root, ev: &StepEvents) -> Result<MemoryReport> {
    let llc = llc_bytes(root);
    let avail = mem_available(root);
    let array_bytes = cfg.array_bytes.unwrap_or_else(|| array_size(llc, avail));
    if let Some(a) = avail {
        if 3 * array_bytes > a / 2 {
            bail!(
                "3 arrays of {} MiB do not fit in half of the {} MiB available",
                array_bytes / MIB,
                a / MIB
            );
        }
        if cfg.check_bytes > a / 2 {
            bail!(
                "a pattern check of {} MiB is more than half of the {} MiB available",
                cfg.check_bytes / MIB,
                a / MIB
            );
        }
    }
    let n = (array_bytes / 8) as usize;
    ev.log(format!(
        "STREAM arrays of {} MiB each (last-level cache {}), {} thread(s)",
        array_bytes / MIB,
        llc.map(|l| format!("{} MiB", l / MIB))
            .unwrap_or_else(|| "unknown".into()),
        cfg.threads
    ));
    let (mbps, reps) = stream(cfg, n, ev);
    let latency_ns = chase_latency_ns(array_bytes, Duration::from_secs(2));
    let check = (cfg.check_bytes > 0).then(|| pattern_check(cfg.check_bytes, cfg.threads, ev));
    if let Some(c) = &check {
        if c.errors > 0 {
            ev.warn(format!(
                "memory pattern check: {} mismatching word(s); first at offset {} ({})",
                c.errors, c.mismatches[0].offset, c.mismatches[0].address
            ));
        }
    }
    Ok(MemoryReport {
        threads: cfg.threads,
        llc_bytes: llc,
        array_bytes,
        repetitions: reps,
        mbps,
        latency_ns: round2(latency_ns),
        latency_buffer_bytes: array_bytes,
        check,
    })
}

pub fn summary(r: &MemoryReport) -> String {
    let mut s = format!(
        "memory: {} threads, arrays {} MiB, {} repetitions (best)\n\
         copy  {:>12.0} MB/s\nscale {:>12.0} MB/s\nadd   {:>12.0} MB/s\ntriad {:>12.0} MB/s\n\
         latency {:.1} ns (random chase over {} MiB)\n",
        r.threads,
        r.array_bytes / MIB,
        r.repetitions,
        r.mbps.copy,
        r.mbps.scale,
        r.mbps.add,
        r.mbps.triad,
        r.latency_ns,
        r.latency_buffer_bytes / MIB
    );
    if let Some(c) = &r.check {
        s += &format!(
            "pattern check: {} MiB, {} patterns, {} error(s)\n",
            c.bytes / MIB,
            c.patterns.len(),
            c.errors
        );
        for m in &c.mismatches {
            s += &format!(
                "  mismatch at offset {} ({}) pattern {}: expected {} got {}\n",
                m.offset, m.address, m.pattern, m.expected, m.actual
            );
        }
    }
    s
}

pub struct BenchMemory;

impl Module for BenchMemory {
    type Config = Config;
    const NAME: &'static str = NAME;
    const OPTIONS: &'static [Spec] = OPTIONS;
    fn configure(step: &toml::Table, options: &Options) -> Result<Config> {
        Config::from_step(step, options)
    }
    fn run(ctx: &StepContext<Config>) -> Result<serde_json::Value> {
        let r = run(ctx.config, ctx.root, &ctx.events)?;
        if r.check.as_ref().is_some_and(|c| c.errors > 0) {
            bail!(
                "memory pattern check found errors: {}",
                serde_json::to_string(&r.check)?
            );
        }
        Ok(serde_json::to_value(r)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llc_from_fixture_tree() {
        let dir = tempfile::tempdir().unwrap();
        // Two sockets, each with its own 32 MiB L3 shared by two CPUs.
        for (cpu, shared) in [(0, "0-1"), (1, "0-1"), (2, "2-3"), (3, "2-3")] {
            for (idx, level, kind, size, sh) in [
                (0, "1", "Data", "32K", cpu.to_string()),
                (1, "1", "Instruction", "32K", cpu.to_string()),
                (2, "2", "Unified", "1024K", cpu.to_string()),
                (3, "3", "Unified", "32768K", shared.to_string()),
            ] {
                let d = dir
                    .path()
                    .join(format!("sys/devices/system/cpu/cpu{cpu}/cache/index{idx}"));
                std::fs::create_dir_all(&d).unwrap();
                std::fs::write(d.join("level"), format!("{level}\n")).unwrap();
                std::fs::write(d.join("type"), format!("{kind}\n")).unwrap();
                std::fs::write(d.join("size"), format!("{size}\n")).unwrap();
                std::fs::write(d.join("shared_cpu_list"), format!("{sh}\n")).unwrap();
            }
        }
        std::fs::create_dir_all(dir.path().join("sys/devices/system/cpu/cpufreq")).unwrap();
        assert_eq!(llc_bytes(&Root::new(dir.path())), Some(64 * MIB));
        assert_eq!(llc_bytes(&Root::new("/nonexistent")), None);
    }

    #[test]
    fn array_size_is_bounded() {
        assert_eq!(array_size(Some(32 * MIB), None), 128 * MIB);
        assert_eq!(array_size(Some(MIB), None), MIN_ARRAY);
        assert_eq!(array_size(Some(4096 * MIB), None), MAX_ARRAY);
        // Little memory: a quarter of it over three arrays.
        assert_eq!(array_size(Some(32 * MIB), Some(1200 * MIB)), 100 * MIB);
        assert_eq!(parse_size("32768K"), Some(32 * MIB));
        assert_eq!(parse_size("2M"), Some(2 * MIB));
    }

    #[test]
    fn pattern_check_is_clean_on_good_memory() {
        let ev = crate::events::Bus::new(None, Default::default(), vec![]).step("t");
        let c = pattern_check(4 * MIB, 2, &ev);
        assert_eq!(c.errors, 0);
        assert_eq!(c.bytes, 4 * MIB);
        assert!(c.mismatches.is_empty());
    }

    #[test]
    fn mismatches_name_the_word() {
        for (pat, name) in PATTERNS.iter().enumerate() {
            let mut part: Vec<u64> = (0..1000).map(|j| pattern_word(pat, 5000 + j, 9)).collect();
            assert_eq!(mismatches_in(&part, 5000, pat, 9), (0, vec![]));
            part[123] ^= 1 << 17; // one flipped bit
            let (n, first) = mismatches_in(&part, 5000, pat, 9);
            assert_eq!(n, 1, "pattern {name}");
            assert_eq!(first, vec![(5123, part[123])]);
        }
    }

    #[test]
    fn chase_latency_is_positive() {
        let ns = chase_latency_ns(MIB, Duration::from_millis(50));
        assert!(ns > 0.0 && ns < 1000.0, "{ns}");
    }
}
