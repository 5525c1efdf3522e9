//! `burnin.memory`: a memory pattern test over most of the machine's memory
//! (90% of MemAvailable by default), on every core. The region is split in
//! one slice per worker thread; each worker touches and locks its slice,
//! then writes each pattern (`pattern::ALL`) over it and checks it back.
//! A word that differs fails the test and is reported with its pattern,
//! virtual and physical address, expected and actual value; the EDAC
//! counters read before and after name the DIMM when the kernel can.
//!
//! Files: `config` (options and flags), `pattern` (the patterns and the hot
//! loops, pure), `phys` (pagemap and EDAC); this file runs the workers and
//! is the module.

pub mod config;
pub mod pattern;
pub mod phys;

pub use config::{Amount, Config, MemoryArgs, OPTIONS};

use crate::events::{Body, Progress, StepEvents};
use crate::module::{Module, StepContext};
use crate::options::{Options, Spec};
use crate::root::Root;
use crate::sys;
use anyhow::{bail, Context, Result};
use pattern::{Params, Pattern, ALL};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

pub const NAME: &str = "burnin.memory";
/// Mismatches reported in full; the rest are counted.
pub const MAX_DETAIL: usize = 16;
const MIB: u64 = 1 << 20;

/// One bad word, as the report gives it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Mismatch {
    /// The pass it was found in, from 1.
    pub pass: u64,
    pub pattern: &'static str,
    /// Index of the 64-bit word in the region.
    pub word_index: u64,
    /// Byte offset in the region (word_index × 8).
    pub virtual_offset: u64,
    pub virtual_address: String,
    /// Hex, from /proc/self/pagemap; `None` when it cannot be read...
    pub physical_address: Option<String>,
    /// ...and then why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub physical_address_unavailable: Option<String>,
    pub expected: String,
    pub actual: String,
    /// expected XOR actual: the bits that differ...
    pub xor: String,
    /// ...by position (0 = least significant).
    pub bits: Vec<u32>,
}

/// The `result` of a `burnin.memory` step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// "pass" or "fail".
    pub verdict: &'static str,
    pub size_bytes: u64,
    /// Where the size came from (a share of MemAvailable, or the size option).
    pub size_from: String,
    pub mem_available_bytes: Option<u64>,
    pub threads: usize,
    pub passes_requested: Option<u64>,
    pub duration_limit_s: Option<f64>,
    pub passes_done: u64,
    /// The patterns of each pass, in order.
    pub patterns: Vec<&'static str>,
    pub bytes_written: u64,
    pub bytes_verified: u64,
    /// MB/s (10^6 bytes) of all threads together, write and check phases.
    pub write_mbps: f64,
    pub verify_mbps: f64,
    pub elapsed_s: f64,
    /// Were the pages locked in memory (mlock)?
    pub locked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lock_error: Option<String>,
    /// Bad words found (all of them; `mismatches` has the first 16).
    pub mismatch_count: u64,
    pub mismatches: Vec<Mismatch>,
    /// The DIMM the kernel's EDAC counters point at, if any.
    pub dimms: phys::DimmReport,
    /// The word a fault was injected into (`--inject-flip`): a FAIL with
    /// this set is the test of the checker, not of the memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub injected_word: Option<u64>,
}

/// MemAvailable from /proc/meminfo, bytes.
pub fn mem_available(root: &Root) -> Option<u64> {
    let text = std::fs::read_to_string(root.at("/proc/meminfo")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|k| k * 1024)
}

/// The bytes to test (whole pages) and where the figure came from.
pub fn region_size(amount: Amount, available: Option<u64>, page: u64) -> Result<(u64, String)> {
    let (bytes, from) = match amount {
        Amount::Share(f) => {
            let Some(a) = available else {
                bail!("cannot read MemAvailable from /proc/meminfo: give a size (--size, step option size)");
            };
            (
                (a as f64 * f) as u64,
                format!("{f} of MemAvailable ({} MiB)", a / MIB),
            )
        }
        Amount::Bytes(b) => {
            if let Some(a) = available.filter(|a| b as f64 > *a as f64 * config::MAX_SHARE) {
                bail!(
                    "size {} MiB is more than {} of MemAvailable ({} MiB)",
                    b / MIB,
                    config::MAX_SHARE,
                    a / MIB
                );
            }
            (b, "size option".to_string())
        }
    };
    let bytes = bytes / page * page;
    if bytes < config::MIN_SIZE {
        bail!(
            "{} bytes to test ({from}) is below the smallest test, 1 MiB",
            bytes
        );
    }
    Ok((bytes, from))
}

/// The bytes `cfg` asks for on this machine (MemAvailable under `root`),
/// or why it cannot have them: what a command checks before it starts.
pub fn planned_size(cfg: &Config, root: &Root) -> Result<(u64, String)> {
    region_size(cfg.amount, mem_available(root), sys::mem::page_size())
}

/// A bad word as a worker found it.
#[derive(Debug, Clone, Copy)]
struct Found {
    pass: u64,
    pattern: Pattern,
    bad: pattern::Bad,
}

/// What the workers and the controlling thread share.
struct Shared {
    barrier: Barrier,
    /// The next phase (`phase`), or `STOP`.
    cmd: AtomicU64,
    bad: AtomicU64,
    found: Mutex<Vec<Found>>,
    lock_errors: Mutex<Vec<String>>,
}

const STOP: u64 = u64::MAX;

fn phase(pass: u64, pat: usize, verify: bool) -> u64 {
    pass << 8 | (pat as u64) << 1 | verify as u64
}

/// The phases' totals, from the controlling thread's clock.
#[derive(Default)]
struct Totals {
    passes_done: u64,
    write: Duration,
    verify: Duration,
    bytes_written: u64,
    bytes_verified: u64,
    locked: bool,
    lock_error: Option<String>,
    found: Vec<Found>,
    bad: u64,
}

/// One worker: touch and lock its slice, then run each phase it is told.
fn worker(
    slice: &mut [u64],
    first: u64,
    base: u64,
    page_words: usize,
    inject: Option<u64>,
    sh: &Shared,
) {
    // First touch from the worker: each page is placed on its NUMA node.
    for w in slice.iter_mut().step_by(page_words) {
        *w = 0;
    }
    std::hint::black_box(&mut *slice);
    let locked = match sys::mem::mlock(slice) {
        Ok(()) => true,
        Err(e) => {
            let mut l = sh.lock_errors.lock().unwrap_or_else(|e| e.into_inner());
            l.push(e.to_string());
            false
        }
    };
    let end = first + slice.len() as u64;
    sh.barrier.wait();
    loop {
        sh.barrier.wait();
        let cmd = sh.cmd.load(Ordering::Acquire);
        if cmd == STOP {
            break;
        }
        let (pass, k, verify) = (cmd >> 8, (cmd >> 1 & 0x7f) as usize, cmd & 1 == 1);
        let pat = ALL[k];
        let g = pattern::Gen::new(pat, Params::new(pass, base));
        if verify {
            // The check reads what memory holds now: black_box makes the
            // compiler forget what was written.
            let s: &[u64] = std::hint::black_box(&*slice);
            let mut local = Vec::new();
            let n = pattern::check(s, first, &g, &mut |bad| {
                if local.len() < MAX_DETAIL {
                    local.push(Found {
                        pass,
                        pattern: pat,
                        bad,
                    });
                }
            });
            if n > 0 {
                sh.bad.fetch_add(n, Ordering::Relaxed);
                let mut f = sh.found.lock().unwrap_or_else(|e| e.into_inner());
                let room = MAX_DETAIL.saturating_sub(f.len());
                f.extend(local.into_iter().take(room));
            }
        } else {
            pattern::fill(slice, first, &g);
            if let Some(i) = inject.filter(|i| pass == 0 && k == 0 && (first..end).contains(i)) {
                slice[(i - first) as usize] ^= 1;
            }
            std::hint::black_box(&mut *slice);
        }
        sh.barrier.wait();
    }
    if locked {
        // Failing to unlock only keeps pages resident until they are freed.
        let _ = sys::mem::munlock(slice);
    }
}

/// Run the passes over `buf` with one worker per `chunk` words.
fn drive(
    buf: &mut [u64],
    chunk: usize,
    page_words: usize,
    cfg: &Config,
    ev: &StepEvents,
) -> Totals {
    let base = buf.as_ptr() as u64;
    let size = buf.len() as u64 * 8;
    let workers = buf.len().div_ceil(chunk);
    let inject = cfg.inject.map(|i| i % buf.len() as u64);
    let sh = Shared {
        barrier: Barrier::new(workers + 1),
        cmd: AtomicU64::new(STOP),
        bad: AtomicU64::new(0),
        found: Mutex::new(Vec::new()),
        lock_errors: Mutex::new(Vec::new()),
    };
    let max_passes = cfg
        .passes
        .unwrap_or(if cfg.duration.is_some() { u64::MAX } else { 1 });
    let mut t = Totals::default();
    std::thread::scope(|s| {
        for (w, slice) in buf.chunks_mut(chunk).enumerate() {
            let sh = &sh;
            let first = (w * chunk) as u64;
            s.spawn(move || worker(slice, first, base, page_words, inject, sh));
        }
        sh.barrier.wait();
        let errs = sh.lock_errors.lock().unwrap_or_else(|e| e.into_inner());
        t.locked = errs.is_empty();
        t.lock_error = errs
            .first()
            .map(|e| format!("mlock: {e} ({} of {workers} slices)", errs.len()));
        drop(errs);
        let start = Instant::now();
        let mut last = start;
        let planned = cfg.passes.filter(|_| cfg.duration.is_none());
        let per_pass = size * 2 * ALL.len() as u64;
        for pass in 0..max_passes {
            for (k, pat) in ALL.iter().enumerate() {
                for verify in [false, true] {
                    sh.cmd.store(phase(pass, k, verify), Ordering::Release);
                    let t0 = Instant::now();
                    sh.barrier.wait();
                    sh.barrier.wait();
                    if verify {
                        t.verify += t0.elapsed();
                        t.bytes_verified += size;
                    } else {
                        t.write += t0.elapsed();
                        t.bytes_written += size;
                    }
                    if last.elapsed() >= Duration::from_secs(1) {
                        last = Instant::now();
                        let msg = format!(
                            "pass {} pattern {}, {} bad word(s)",
                            pass + 1,
                            pat.name(),
                            sh.bad.load(Ordering::Relaxed)
                        );
                        ev.progress(progress(&t, start, planned, per_pass, cfg.duration, msg));
                    }
                }
            }
            t.passes_done = pass + 1;
            // A failing pass ends the test: the verdict is known, and the
            // first errors are the ones worth reading.
            let over = cfg.duration.is_some_and(|d| start.elapsed() >= d);
            if sh.bad.load(Ordering::Relaxed) > 0 || over {
                break;
            }
        }
        sh.cmd.store(STOP, Ordering::Release);
        sh.barrier.wait();
        let msg = format!(
            "{} pass(es) done, {} bad word(s)",
            t.passes_done,
            sh.bad.load(Ordering::Relaxed)
        );
        ev.progress(progress(&t, start, planned, per_pass, cfg.duration, msg));
    });
    t.bad = sh.bad.into_inner();
    t.found = sh.found.into_inner().unwrap_or_else(|e| e.into_inner());
    t.found
        .sort_by_key(|f| (f.pass, f.pattern as usize, f.bad.index));
    t
}

fn progress(
    t: &Totals,
    start: Instant,
    planned: Option<u64>,
    per_pass: u64,
    duration: Option<Duration>,
    message: String,
) -> Progress {
    let done = t.bytes_written + t.bytes_verified;
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let rate = done as f64 / secs;
    let total = planned.map(|p| p * per_pass);
    let percent = match (total, duration) {
        (Some(total), _) => Some(100.0 * done as f64 / total as f64),
        (None, Some(d)) => Some((100.0 * secs / d.as_secs_f64()).min(100.0)),
        (None, None) => Some(100.0 * done as f64 / per_pass as f64),
    };
    let eta_s = match (total, duration) {
        (Some(total), _) => Some(total.saturating_sub(done) as f64 / rate.max(1.0)),
        (None, Some(d)) => Some((d.as_secs_f64() - secs).max(0.0)),
        (None, None) => Some(per_pass.saturating_sub(done) as f64 / rate.max(1.0)),
    };
    Progress {
        percent: percent.map(|p| p.min(100.0)),
        bytes: Some(done),
        total_bytes: total,
        rate: Some(rate),
        eta_s,
        message: Some(message),
    }
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 {
        (bytes as f64 / s / 1e6 * 100.0).round() / 100.0
    } else {
        0.0
    }
}

/// Run the test as `cfg` says, reading /proc and /sys under `root`.
pub fn run(cfg: &Config, root: &Root, ev: &StepEvents) -> Result<Report> {
    let page = sys::mem::page_size();
    let available = mem_available(root);
    let (bytes, size_from) = region_size(cfg.amount, available, page)?;
    let page_words = (page / 8) as usize;
    let words = (bytes / 8) as usize;
    let threads = cfg.threads.clamp(1, (words / page_words).max(1));
    // Whole pages per worker, so no page is shared by two.
    let chunk = words.div_ceil(threads).div_ceil(page_words) * page_words;
    let edac_before = phys::edac_snapshot(root);
    let started = Instant::now();
    let mut buf = sys::mem::zeroed_words(words)
        .with_context(|| format!("allocating {} MiB to test", bytes / MIB))?;
    // Before the first touch: one fault and one TLB entry per huge page
    // instead of per 4 KiB. Only a speed-up, so a refusal is just noted.
    if let Err(e) = sys::mem::advise_huge(&buf) {
        tracing::debug!("madvise(MADV_HUGEPAGE) over the test region: {e}");
    }
    ev.log(format!(
        "memory test: {} MiB ({size_from}), {} thread(s), {} pattern(s) a pass, {}",
        bytes / MIB,
        words.div_ceil(chunk),
        ALL.len(),
        match (cfg.passes, cfg.duration) {
            (None, None) => "1 pass".to_string(),
            (Some(p), None) => format!("{p} pass(es)"),
            (None, Some(d)) => format!("passes until {}s have passed", d.as_secs()),
            (Some(p), Some(d)) =>
                format!("{p} pass(es) or {}s, whichever comes first", d.as_secs()),
        }
    ));
    let t = drive(&mut buf, chunk, page_words, cfg, ev);
    if let Some(e) = &t.lock_error {
        ev.warn(format!(
            "memory test: pages not locked ({e}): the test runs, but the kernel may move or swap \
             them, so a physical address is only where the page was when it was read"
        ));
    }
    // Physical addresses while the region is still ours.
    let pagemap = phys::open_pagemap(root);
    let base = buf.as_ptr() as u64;
    let mismatches: Vec<Mismatch> = t
        .found
        .iter()
        .map(|f| {
            let b = f.bad;
            let vaddr = base + b.index * 8;
            let pa = pagemap
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|pm| phys::physical_address(pm, vaddr, page));
            Mismatch {
                pass: f.pass + 1,
                pattern: f.pattern.name(),
                word_index: b.index,
                virtual_offset: b.index * 8,
                virtual_address: format!("{vaddr:#x}"),
                physical_address: pa.as_ref().ok().map(|a| format!("{a:#x}")),
                physical_address_unavailable: pa.err(),
                expected: format!("{:#018x}", b.expected),
                actual: format!("{:#018x}", b.actual),
                xor: format!("{:#018x}", b.expected ^ b.actual),
                bits: pattern::bits(b.expected ^ b.actual),
            }
        })
        .collect();
    drop(buf);
    let elapsed = started.elapsed();
    let edac_after = phys::edac_snapshot(root);
    let dimms = phys::dimm_report(&edac_before, &edac_after, t.bad);
    if !dimms.rose.is_empty() {
        ev.warn(format!("memory test: {}", dimms.note));
    }
    let r = Report {
        verdict: if t.bad == 0 { "pass" } else { "fail" },
        size_bytes: bytes,
        size_from,
        mem_available_bytes: available,
        threads: words.div_ceil(chunk),
        passes_requested: cfg.passes,
        duration_limit_s: cfg.duration.map(|d| d.as_secs_f64()),
        passes_done: t.passes_done,
        patterns: ALL.iter().map(|p| p.name()).collect(),
        bytes_written: t.bytes_written,
        bytes_verified: t.bytes_verified,
        write_mbps: mbps(t.bytes_written, t.write),
        verify_mbps: mbps(t.bytes_verified, t.verify),
        elapsed_s: (elapsed.as_secs_f64() * 100.0).round() / 100.0,
        locked: t.locked,
        lock_error: t.lock_error,
        mismatch_count: t.bad,
        mismatches,
        dimms,
        injected_word: cfg.inject.map(|i| i % words as u64),
    };
    if let Some(m) = r.mismatches.first() {
        ev.warn(format!(
            "memory test FAIL: {} bad word(s); first: pattern {} at offset {:#x} ({}, physical {}): \
             expected {} read {}",
            r.mismatch_count,
            m.pattern,
            m.virtual_offset,
            m.virtual_address,
            phys_text(m),
            m.expected,
            m.actual
        ));
    }
    Ok(r)
}

fn phys_text(m: &Mismatch) -> String {
    match (&m.physical_address, &m.physical_address_unavailable) {
        (Some(a), _) => a.clone(),
        (None, Some(why)) => format!("physical address unavailable: {why}"),
        (None, None) => "physical address unavailable".into(),
    }
}

/// The report for people.
pub fn render(r: &Report) -> String {
    let mut s = format!(
        "memory test: {}\n\
         size:       {} MiB ({})\n\
         threads:    {}\n\
         passes:     {} done, {} patterns each: {}\n\
         throughput: write {:.0} MB/s, check {:.0} MB/s ({} MiB written, {} MiB checked in {:.1}s)\n\
         locked:     {}\n",
        r.verdict.to_uppercase(),
        r.size_bytes / MIB,
        r.size_from,
        r.threads,
        r.passes_done,
        r.patterns.len(),
        r.patterns.join(", "),
        r.write_mbps,
        r.verify_mbps,
        r.bytes_written / MIB,
        r.bytes_verified / MIB,
        r.elapsed_s,
        match &r.lock_error {
            None => "yes".to_string(),
            Some(e) => format!("no ({e})"),
        }
    );
    if let Some(i) = r.injected_word {
        s += &format!(
            "injected:   one bit flipped in word {i} after the first write (--inject-flip)\n"
        );
    }
    if r.mismatch_count > 0 {
        s += &format!(
            "bad words:  {} (first {} below)\n",
            r.mismatch_count,
            r.mismatches.len()
        );
        for m in &r.mismatches {
            s += &format!(
                "  pass {} {}: offset {:#x}, virtual {}, {}\n    expected {} read {} xor {} (bit{} {})\n",
                m.pass,
                m.pattern,
                m.virtual_offset,
                m.virtual_address,
                match &m.physical_address {
                    Some(a) => format!("physical {a}"),
                    None => phys_text(m),
                },
                m.expected,
                m.actual,
                m.xor,
                if m.bits.len() == 1 { "" } else { "s" },
                m.bits.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(",")
            );
        }
    }
    s += &format!("DIMM:       {}\n", r.dimms.note);
    s
}

pub struct BurninMemory;

impl Module for BurninMemory {
    type Config = Config;
    const NAME: &'static str = NAME;
    const OPTIONS: &'static [Spec] = OPTIONS;

    fn configure(step: &toml::Table, options: &Options) -> Result<Config> {
        Config::new(step, options)
    }

    fn run(ctx: &StepContext<Config>) -> Result<serde_json::Value> {
        let r = run(ctx.config, ctx.root, &ctx.events)?;
        let data = serde_json::to_value(&r)?;
        if r.mismatch_count > 0 {
            ctx.events.emit(Body::Result { data });
            let m = &r.mismatches[0];
            bail!(
                "memory test FAIL: {} bad word(s); first: pattern {} at offset {:#x} ({})",
                r.mismatch_count,
                m.pattern,
                m.virtual_offset,
                phys_text(m)
            );
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events() -> StepEvents {
        crate::events::Bus::new(None, Default::default(), vec![]).step("t")
    }

    fn cfg(threads: usize, inject: Option<u64>) -> Config {
        Config {
            amount: Amount::Bytes(4 * MIB),
            passes: Some(2),
            duration: None,
            threads,
            inject,
        }
    }

    #[test]
    fn sizes_from_a_share_or_bytes() {
        let a = Some(1000 * MIB);
        let (b, from) = region_size(Amount::Share(0.5), a, 4096).unwrap();
        assert_eq!(b, 500 * MIB);
        assert!(from.contains("0.5 of MemAvailable (1000 MiB)"), "{from}");
        assert_eq!(region_size(Amount::Bytes(MIB + 5), a, 4096).unwrap().0, MIB);
        let e = region_size(Amount::Bytes(990 * MIB), a, 4096).unwrap_err();
        assert!(
            e.to_string().contains("more than 0.98 of MemAvailable"),
            "{e}"
        );
        let e = region_size(Amount::Share(0.9), None, 4096).unwrap_err();
        assert!(e.to_string().contains("MemAvailable"), "{e}");
        assert!(region_size(Amount::Share(0.0005), a, 4096).is_err());
    }

    #[test]
    fn mem_available_from_meminfo() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("proc")).unwrap();
        std::fs::write(
            t.path().join("proc/meminfo"),
            "MemTotal:       16303920 kB\nMemFree:         1000 kB\nMemAvailable:    8000000 kB\n",
        )
        .unwrap();
        assert_eq!(mem_available(&Root::new(t.path())), Some(8_000_000 * 1024));
        assert_eq!(mem_available(&Root::new("/nonexistent")), None);
    }

    #[test]
    fn good_memory_passes_with_every_byte_counted() {
        let t = tempfile::tempdir().unwrap();
        let r = run(&cfg(3, None), &Root::new(t.path()), &events()).unwrap();
        assert_eq!(r.verdict, "pass");
        assert_eq!((r.passes_done, r.threads), (2, 3));
        assert_eq!(r.bytes_written, 2 * 10 * 4 * MIB);
        assert_eq!(r.bytes_verified, r.bytes_written);
        assert_eq!(r.mismatch_count, 0);
        assert!(r.write_mbps > 0.0 && r.verify_mbps > 0.0);
    }

    /// The injected flip is found by the real checker, in the worker that
    /// owns the word, with its offset, values, and a reason where the
    /// physical address is not given; the failing pass is the last.
    #[test]
    fn an_injected_flip_fails_the_test_naming_the_word() {
        let t = tempfile::tempdir().unwrap();
        let words = 4 * MIB / 8;
        let at = words + 300_001; // modulo the region
        let r = run(&cfg(4, Some(at)), &Root::new(t.path()), &events()).unwrap();
        assert_eq!(r.verdict, "fail");
        assert_eq!(r.mismatch_count, 1);
        assert_eq!(r.passes_done, 1);
        let m = &r.mismatches[0];
        assert_eq!((m.pass, m.pattern), (1, "zeros"));
        assert_eq!(m.word_index, 300_001);
        assert_eq!(m.virtual_offset, 300_001 * 8);
        assert_eq!(m.expected, "0x0000000000000000");
        assert_eq!(m.actual, "0x0000000000000001");
        assert_eq!(m.bits, vec![0]);
        assert_eq!(m.physical_address, None);
        let why = m.physical_address_unavailable.as_deref().unwrap();
        assert!(why.contains("proc/self/pagemap"), "{why}");
        assert_eq!(r.injected_word, Some(300_001));
        let text = render(&r);
        assert!(text.contains("memory test: FAIL"), "{text}");
        assert!(
            text.contains("physical address unavailable: opening"),
            "{text}"
        );
        assert!(text.contains("no DIMM mapping"), "{text}");
    }
}
