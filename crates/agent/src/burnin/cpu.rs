//! `burnin.cpu`: every logical CPU busy for a set time with work whose
//! answer is known, checked after every operation. One worker a CPU,
//! pinned to it; each runs in turn a SHA-256 chain, an f64 matrix product
//! and a prime sieve, and compares each answer with the one computed once
//! at the start (the sieve with the known prime count). A wrong answer is
//! a failure naming the worker, its CPU, the workload, expected and got;
//! a slow CPU is not (that is `bench.cpu`'s business).

use crate::events::{Progress, StepEvents};
use crate::module::{Module, StepContext};
use crate::options::{Kind, Options, Spec};
use crate::root::{dir_names, read_trim, Root};
use anyhow::{bail, Result};
use serde::Serialize;
use speediso_proto::units::parse_duration;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const NAME: &str = "burnin.cpu";

/// How long a task's CPU stress runs unless told.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(600);
/// How long `speediso burnin cpu` runs unless told.
pub const ADHOC_DURATION: Duration = Duration::from_secs(30);
/// Errors listed in the result; more are counted, not listed.
pub const MAX_LISTED: usize = 64;

/// The workloads, as the result names them.
pub const WORKLOADS: [&str; 3] = ["sha256_chain", "matmul_f64", "prime_sieve"];

/// Bytes hashed in each link of the SHA-256 chain (a worker's own copy:
/// it stays in that core's L2).
const SHA_BUF: usize = 256 << 10;
/// Links in one chain: the digest of each is hashed with the buffer again.
const SHA_ROUNDS: u32 = 8;
/// Order of the f64 matrices multiplied.
const MAT_N: usize = 96;
/// The sieve counts the primes up to here...
pub const SIEVE_LIMIT: usize = 2_000_000;
/// ... and must find π(2·10^6) of them.
pub const SIEVE_PRIMES: u64 = 148_933;

/// `speediso.burnin.cpu_duration`, a step's `duration`, `--duration`.
pub const DURATION: Spec = Spec::cmdline(
    "burnin.cpu_duration",
    Kind::Duration,
    "how long the CPU stress runs (default 10m; speediso burnin cpu: 30s)",
)
.step("duration")
.flag("duration");

/// A step's `threads`, `--threads`.
pub const THREADS: Spec = Spec::step_only(
    "threads",
    Kind::Int(1, 4096),
    "workers of the CPU stress, one pinned to each CPU (default: every CPU)",
)
.flag("threads");

#[derive(Debug, Clone)]
pub struct Config {
    pub duration: Duration,
    pub threads: usize,
    /// Corrupt one worker's first SHA-256 answer (tests of the checker).
    pub inject_error: bool,
}

/// `speediso burnin cpu` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct CpuArgs {
    /// How long to run (e.g. 30s, 10m, 2h) [default: speediso.burnin.cpu_duration, else 30s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_flag)]
    pub duration: Option<Duration>,
    /// Workers, one pinned to each CPU in turn [default: every CPU this process may use]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub threads: Option<u64>,
    /// Print the result as one JSON document on stdout (progress goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Corrupt one worker's first answer, to see the checker fail (tests).
    #[arg(long, hide = true)]
    pub inject_error: bool,
}

impl CpuArgs {
    /// The config from the flags, else the `speediso.*` options, else the
    /// ad-hoc defaults.
    pub fn config(&self, options: &Options) -> Result<Config> {
        let duration = match self.duration {
            Some(d) => d,
            None => option_duration(options)?.unwrap_or(ADHOC_DURATION),
        };
        Ok(Config {
            duration,
            threads: self
                .threads
                .map(|t| t as usize)
                .unwrap_or_else(default_threads),
            inject_error: self.inject_error,
        })
    }
}

/// Parse a duration flag (`10s`, `2m`, `30`).
pub fn parse_duration_flag(s: &str) -> Result<Duration, String> {
    match parse_duration(s) {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(format!("{s:?} is not a duration like 30s, 10m or 2h")),
    }
}

fn option_duration(options: &Options) -> Result<Option<Duration>> {
    match options.get("burnin.cpu_duration") {
        None => Ok(None),
        Some(v) => match parse_duration(v) {
            Some(d) if !d.is_zero() => Ok(Some(d)),
            _ => bail!("speediso.burnin.cpu_duration = {v:?} is not a duration like 10m"),
        },
    }
}

/// The CPUs this process may use.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl Config {
    /// `speediso.burnin.cpu_duration` (the host's own, from Foreman: it
    /// wins, as for `health`), else the task step's `duration` (checked
    /// either way), else the default; `threads` from the step.
    pub fn from_step(step: &toml::Table, options: &Options) -> Result<Config> {
        let from_option = option_duration(options)?;
        let from_step = match step.get("duration") {
            None => None,
            Some(toml::Value::Integer(n)) if *n > 0 => Some(Duration::from_secs(*n as u64)),
            Some(toml::Value::String(s)) => match parse_duration(s) {
                Some(d) if !d.is_zero() => Some(d),
                _ => bail!("option duration = {s:?} is not a duration like 10m"),
            },
            Some(v) => bail!("option duration = {v} is not a duration like \"10m\""),
        };
        let duration = from_option.or(from_step).unwrap_or(DEFAULT_DURATION);
        let threads = match step.get("threads") {
            None => default_threads(),
            Some(toml::Value::Integer(n)) if (1..=4096).contains(n) => *n as usize,
            Some(v) => bail!("option threads = {v} must be an integer in 1..=4096"),
        };
        Ok(Config {
            duration,
            threads,
            inject_error: false,
        })
    }
}

/// One wrong answer.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CpuError {
    pub worker: usize,
    /// The CPU the worker was pinned to (`None`: pinning failed).
    pub cpu: Option<usize>,
    pub workload: &'static str,
    pub expected: String,
    pub got: String,
    /// Seconds into the run.
    pub at_s: f64,
}

impl std::fmt::Display for CpuError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cpu = self.cpu.map_or("unpinned".into(), |c| format!("CPU {c}"));
        write!(
            f,
            "worker {} ({cpu}): {}: expected {}, got {}",
            self.worker, self.workload, self.expected, self.got
        )
    }
}

/// Operations of one workload done (and checked) by all workers.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorkloadFigures {
    pub name: &'static str,
    pub ops: u64,
    pub ops_per_s: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CpuReport {
    pub threads: usize,
    /// The CPUs the workers were pinned to, by worker.
    pub cpus: Vec<Option<usize>>,
    pub duration_s: f64,
    pub workloads: Vec<WorkloadFigures>,
    /// Wrong answers: the first `MAX_LISTED`.
    pub errors: Vec<CpuError>,
    pub errors_total: u64,
    /// The largest rise of a CPU's `core_throttle_count` during the run;
    /// absent where the kernel has no such counter.
    pub throttle_count_delta_max: Option<u64>,
    /// `pass` or `fail`.
    pub verdict: &'static str,
}

/// A SHA-256 chain: each link hashes the previous digest and `buf`.
pub fn sha_chain(buf: &[u8], rounds: u32) -> [u8; 32] {
    use sha2::Digest;
    let mut h = [0u8; 32];
    for _ in 0..rounds {
        let mut d = sha2::Sha256::new();
        d.update(h);
        d.update(buf);
        h.copy_from_slice(&d.finalize());
    }
    h
}

/// `a × b` of two n×n row-major matrices, in i-k-j order (the inner loop
/// runs along rows, so it vectorises).
pub fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut c = vec![0.0f64; n * n];
    for i in 0..n {
        let row = &mut c[i * n..(i + 1) * n];
        for k in 0..n {
            let x = a[i * n + k];
            for (cj, bj) in row.iter_mut().zip(&b[k * n..(k + 1) * n]) {
                *cj += x * bj;
            }
        }
    }
    c
}

/// The primes up to `limit` (inclusive), by the sieve of Eratosthenes
/// over odd numbers.
pub fn sieve(limit: usize) -> u64 {
    if limit < 2 {
        return 0;
    }
    // odd[i] stands for 2i + 1.
    let mut composite = vec![false; limit / 2 + 1];
    let mut i = 3;
    while i * i <= limit {
        if !composite[i / 2] {
            let mut j = i * i;
            while j <= limit {
                composite[j / 2] = true;
                j += 2 * i;
            }
        }
        i += 2;
    }
    // 1 is not prime; 2 is.
    let odd = (1..=(limit - 1) / 2).filter(|&k| !composite[k]).count() as u64;
    odd + 1
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The first difference of two digests, as (expected, got).
pub fn check_digest(expected: &[u8; 32], got: &[u8; 32]) -> Option<(String, String)> {
    (expected != got).then(|| (hex(expected), hex(got)))
}

/// The first element that differs bit for bit, as (expected, got).
pub fn check_matrix(expected: &[f64], got: &[f64]) -> Option<(String, String)> {
    if expected.len() != got.len() {
        return Some((
            format!("{} elements", expected.len()),
            format!("{} elements", got.len()),
        ));
    }
    let i = expected
        .iter()
        .zip(got)
        .position(|(e, g)| e.to_bits() != g.to_bits())?;
    let show = |x: f64| format!("c[{}] = {x:e} (bits {:016x})", i, x.to_bits());
    Some((show(expected[i]), show(got[i])))
}

/// The prime count against π(SIEVE_LIMIT), as (expected, got).
pub fn check_count(expected: u64, got: u64) -> Option<(String, String)> {
    (expected != got).then(|| {
        (
            format!("{expected} primes up to {SIEVE_LIMIT}"),
            format!("{got}"),
        )
    })
}

/// The known answers, computed once before the workers start.
struct Reference {
    data: Vec<u8>,
    digest: [u8; 32],
    a: Vec<f64>,
    b: Vec<f64>,
    product: Vec<f64>,
}

impl Reference {
    fn new() -> Reference {
        let mut data = vec![0u8; SHA_BUF];
        crate::bench::Rng::new(0x5eed).fill(&mut data);
        let mut rng = crate::bench::Rng::new(0xa11ce);
        let mut m = || -> Vec<f64> {
            (0..MAT_N * MAT_N)
                .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
                .collect()
        };
        let (a, b) = (m(), m());
        Reference {
            digest: sha_chain(&data, SHA_ROUNDS),
            product: matmul(&a, &b, MAT_N),
            data,
            a,
            b,
        }
    }
}

/// What the workers share.
struct Shared<'a> {
    r: &'a Reference,
    stop: AtomicBool,
    ops: [AtomicU64; 3],
    errors: Mutex<Vec<CpuError>>,
    errors_total: AtomicU64,
    start: Instant,
}

impl Shared<'_> {
    fn fail(&self, worker: usize, cpu: Option<usize>, w: usize, (e, g): (String, String)) {
        self.errors_total.fetch_add(1, Ordering::Relaxed);
        let mut v = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if v.len() < MAX_LISTED {
            v.push(CpuError {
                worker,
                cpu,
                workload: WORKLOADS[w],
                expected: e,
                got: g,
                at_s: (self.start.elapsed().as_secs_f64() * 10.0).round() / 10.0,
            });
        }
    }
}

/// One worker: pinned to `cpu`, the three workloads in turn until told
/// to stop, every answer checked.
fn worker(s: &Shared, id: usize, cpu: Option<usize>, mut inject: bool) {
    let r = s.r;
    // Its own copies, in its own core's caches.
    let data = r.data.clone();
    let (a, b) = (r.a.clone(), r.b.clone());
    while !s.stop.load(Ordering::Relaxed) {
        let mut got = sha_chain(black_box(&data), SHA_ROUNDS);
        if std::mem::take(&mut inject) {
            got[7] ^= 0x10;
        }
        if let Some(d) = check_digest(&r.digest, &got) {
            s.fail(id, cpu, 0, d);
        }
        s.ops[0].fetch_add(1, Ordering::Relaxed);
        let c = matmul(black_box(&a), black_box(&b), MAT_N);
        if let Some(d) = check_matrix(&r.product, &c) {
            s.fail(id, cpu, 1, d);
        }
        s.ops[1].fetch_add(1, Ordering::Relaxed);
        let n = sieve(black_box(SIEVE_LIMIT));
        if let Some(d) = check_count(SIEVE_PRIMES, n) {
            s.fail(id, cpu, 2, d);
        }
        s.ops[2].fetch_add(1, Ordering::Relaxed);
    }
}

/// Each CPU's `core_throttle_count`, where the kernel has one.
pub fn throttle_counts(root: &Root) -> BTreeMap<usize, u64> {
    let base = root.at("/sys/devices/system/cpu");
    dir_names(&base)
        .into_iter()
        .filter_map(|n| {
            let id: usize = n.strip_prefix("cpu")?.parse().ok()?;
            let c = read_trim(&base.join(&n).join("thermal_throttle/core_throttle_count"))?;
            Some((id, c.parse().ok()?))
        })
        .collect()
}

/// The largest rise of one CPU's count between `before` and `after`.
pub fn throttle_delta(before: &BTreeMap<usize, u64>, after: &BTreeMap<usize, u64>) -> Option<u64> {
    after
        .iter()
        .filter_map(|(cpu, a)| Some(a.saturating_sub(*before.get(cpu)?)))
        .max()
}

pub fn run(cfg: &Config, root: &Root, ev: &StepEvents) -> Result<CpuReport> {
    let threads = cfg.threads.max(1);
    let allowed = crate::sys::cpu::allowed_cpus().unwrap_or_default();
    let r = Reference::new();
    if let Some(d) = check_count(SIEVE_PRIMES, sieve(SIEVE_LIMIT)) {
        bail!(
            "the prime sieve is wrong on the first try: expected {}, got {}",
            d.0,
            d.1
        );
    }
    let before = throttle_counts(root);
    let s = Shared {
        r: &r,
        stop: AtomicBool::new(false),
        ops: Default::default(),
        errors: Mutex::new(Vec::new()),
        errors_total: AtomicU64::new(0),
        start: Instant::now(),
    };
    let cpus: Vec<Option<usize>> = std::thread::scope(|sc| {
        let (tx, rx) = std::sync::mpsc::channel();
        for id in 0..threads {
            let want = (!allowed.is_empty()).then(|| allowed[id % allowed.len()]);
            let (s, tx) = (&s, tx.clone());
            let inject = cfg.inject_error && id == 0;
            sc.spawn(move || {
                let cpu = want.filter(|&c| match crate::sys::cpu::pin_to(c) {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!("worker {id}: cannot pin to CPU {c}: {e}");
                        false
                    }
                });
                let _ = tx.send((id, cpu));
                worker(s, id, cpu, inject);
            });
        }
        drop(tx);
        let mut last = (s.start, 0u64);
        while s.start.elapsed() < cfg.duration {
            let left = cfg.duration.saturating_sub(s.start.elapsed());
            std::thread::sleep(left.min(Duration::from_secs(1)));
            let now = Instant::now();
            let done: u64 = s.ops.iter().map(|o| o.load(Ordering::Relaxed)).sum();
            let rate = (done - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
            last = (now, done);
            let secs = s.start.elapsed().as_secs_f64();
            ev.progress(Progress {
                percent: Some((100.0 * secs / cfg.duration.as_secs_f64()).min(100.0)),
                eta_s: Some(cfg.duration.saturating_sub(s.start.elapsed()).as_secs_f64()),
                // The rate is in operations, not bytes: said in words.
                message: Some(format!(
                    "{threads} worker(s), {done} checked operations ({rate:.0}/s), {} wrong",
                    s.errors_total.load(Ordering::Relaxed)
                )),
                ..Default::default()
            });
        }
        s.stop.store(true, Ordering::Relaxed);
        let mut cpus = vec![None; threads];
        for (id, cpu) in rx {
            cpus[id] = cpu;
        }
        cpus
    });
    let secs = s.start.elapsed().as_secs_f64();
    let after = throttle_counts(root);
    let errors = s.errors.into_inner().unwrap_or_else(|e| e.into_inner());
    let errors_total = s.errors_total.load(Ordering::Relaxed);
    Ok(CpuReport {
        threads,
        cpus,
        duration_s: (secs * 100.0).round() / 100.0,
        workloads: WORKLOADS
            .iter()
            .zip(&s.ops)
            .map(|(name, o)| {
                let ops = o.load(Ordering::Relaxed);
                WorkloadFigures {
                    name,
                    ops,
                    ops_per_s: (ops as f64 / secs * 100.0).round() / 100.0,
                }
            })
            .collect(),
        errors,
        errors_total,
        throttle_count_delta_max: throttle_delta(&before, &after),
        verdict: if errors_total == 0 { "pass" } else { "fail" },
    })
}

/// Readable summary for `speediso burnin cpu`.
pub fn summary(r: &CpuReport) -> String {
    let mut s = format!(
        "burnin cpu: {} worker(s), {:.1}s: {}\n",
        r.threads,
        r.duration_s,
        r.verdict.to_uppercase()
    );
    for w in &r.workloads {
        s += &format!(
            "  {:<14} {:>10} ops  {:>10.2} ops/s  checked\n",
            w.name, w.ops, w.ops_per_s
        );
    }
    match r.throttle_count_delta_max {
        Some(d) => s += &format!("  thermal throttling: +{d} (largest rise of a CPU's count)\n"),
        None => s += "  thermal throttling: no counters on this machine\n",
    }
    for e in &r.errors {
        s += &format!("  WRONG: {e}\n");
    }
    if r.errors_total > r.errors.len() as u64 {
        s += &format!("  ... {} wrong answers in all\n", r.errors_total);
    }
    s
}

pub struct BurninCpu;

impl Module for BurninCpu {
    type Config = Config;
    const NAME: &'static str = NAME;
    const OPTIONS: &'static [Spec] = &[DURATION, THREADS];
    fn configure(step: &toml::Table, options: &Options) -> Result<Config> {
        Config::from_step(step, options)
    }
    fn run(ctx: &StepContext<Config>) -> Result<serde_json::Value> {
        let r = run(ctx.config, ctx.root, &ctx.events)?;
        let data = serde_json::to_value(&r)?;
        if r.errors_total > 0 {
            for e in &r.errors {
                ctx.events.warn(format!("burnin.cpu: {e}"));
            }
            ctx.events
                .emit(crate::events::Body::Result { data: data.clone() });
            bail!(
                "burnin.cpu FAIL: {} wrong answer(s); first: {}",
                r.errors_total,
                r.errors.first().map(|e| e.to_string()).unwrap_or_default()
            );
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sieve_knows_pi() {
        for (x, pi) in [
            (1, 0),
            (2, 1),
            (3, 2),
            (10, 4),
            (100, 25),
            (1_000_000, 78_498),
        ] {
            assert_eq!(sieve(x), pi, "pi({x})");
        }
        assert_eq!(sieve(SIEVE_LIMIT), SIEVE_PRIMES);
        assert!(check_count(SIEVE_PRIMES, SIEVE_PRIMES).is_none());
        let (e, g) = check_count(SIEVE_PRIMES, SIEVE_PRIMES - 1).unwrap();
        assert!(e.starts_with("148933 primes") && g == "148932", "{e} {g}");
    }

    #[test]
    fn a_changed_digest_bit_is_caught() {
        // SHA-256("abc"), FIPS 180-2: the chain's first link is the plain hash.
        use sha2::Digest;
        let one = sha_chain(b"", 1);
        let mut want = [0u8; 32];
        want.copy_from_slice(&sha2::Sha256::digest([0u8; 32]));
        assert_eq!(one, want);
        let d = sha_chain(b"abc", SHA_ROUNDS);
        assert!(check_digest(&d, &sha_chain(b"abc", SHA_ROUNDS)).is_none());
        assert_ne!(d, sha_chain(b"abc", SHA_ROUNDS - 1));
        let mut bad = d;
        bad[31] ^= 1;
        let (e, g) = check_digest(&d, &bad).unwrap();
        assert_eq!(e.len(), 64);
        assert_ne!(e, g);
        assert_eq!(e[..62], g[..62]);
    }

    #[test]
    fn a_changed_matrix_bit_is_caught() {
        let r = Reference::new();
        let again = matmul(&r.a, &r.b, MAT_N);
        assert!(check_matrix(&r.product, &again).is_none());
        // The product against the naive i-j-k order (different rounding,
        // so compared with a tolerance): the fast loop computes a product.
        for (i, j) in [(0, 0), (5, 17), (MAT_N - 1, MAT_N - 1)] {
            let s: f64 = (0..MAT_N)
                .map(|k| r.a[i * MAT_N + k] * r.b[k * MAT_N + j])
                .sum();
            assert!((s - r.product[i * MAT_N + j]).abs() < 1e-9);
        }
        let mut bad = again.clone();
        bad[1234] = f64::from_bits(bad[1234].to_bits() ^ 1);
        let (e, g) = check_matrix(&r.product, &bad).unwrap();
        assert!(
            e.starts_with("c[1234] = ") && g.starts_with("c[1234] = "),
            "{e} {g}"
        );
        assert_ne!(e, g);
    }

    #[test]
    fn a_short_run_passes_and_an_injected_error_fails_naming_it() {
        let bus = crate::events::Bus::new(None, Default::default(), vec![]);
        let ev = bus.step(NAME);
        let root = Root::new("/nonexistent");
        let mut cfg = Config {
            duration: Duration::from_millis(300),
            threads: 2,
            inject_error: false,
        };
        let r = run(&cfg, &root, &ev).unwrap();
        assert_eq!((r.verdict, r.errors_total), ("pass", 0), "{r:?}");
        assert!(r.workloads.iter().all(|w| w.ops > 0), "{r:?}");
        assert_eq!(r.throttle_count_delta_max, None);
        cfg.inject_error = true;
        let r = run(&cfg, &root, &ev).unwrap();
        assert_eq!((r.verdict, r.errors_total), ("fail", 1), "{r:?}");
        let e = &r.errors[0];
        assert_eq!((e.worker, e.workload), (0, "sha256_chain"));
        assert_ne!(e.expected, e.got);
    }

    /// As a task step: a wrong answer emits the result, then fails the
    /// step naming the worker and the workload.
    #[test]
    fn the_step_fails_after_its_result() {
        use crate::events::{Event, Sink};
        use std::sync::Arc;
        struct Collect(Arc<Mutex<Vec<Event>>>);
        impl Sink for Collect {
            fn event(&mut self, ev: &Event) {
                self.0.lock().unwrap().push(ev.clone());
            }
        }
        let got = Arc::new(Mutex::new(Vec::new()));
        let bus = crate::events::Bus::new(
            None,
            Default::default(),
            vec![Box::new(Collect(got.clone()))],
        );
        let root = Root::new("/nonexistent");
        let cfg = Config {
            duration: Duration::from_millis(200),
            threads: 1,
            inject_error: true,
        };
        let ctx = StepContext {
            root: &root,
            run_dir: std::path::Path::new("/nonexistent"),
            config: &cfg,
            events: bus.step(NAME),
            destructive_allowed: false,
            deadline: Default::default(),
        };
        let e = format!("{:#}", BurninCpu::run(&ctx).unwrap_err());
        assert!(
            e.contains("worker 0") && e.contains("sha256_chain: expected"),
            "{e}"
        );
        let results: Vec<serde_json::Value> = got
            .lock()
            .unwrap()
            .iter()
            .map(|ev| serde_json::to_value(ev).unwrap())
            .filter(|j| j["type"] == "result")
            .collect();
        assert_eq!(results.len(), 1);
        assert_eq!(results[0]["data"]["verdict"], "fail");
    }

    #[test]
    fn throttle_delta_is_the_largest_rise() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        let set = |cpu: usize, n: u64| {
            let d = root.at(&format!(
                "/sys/devices/system/cpu/cpu{cpu}/thermal_throttle"
            ));
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("core_throttle_count"), format!("{n}\n")).unwrap();
        };
        set(0, 5);
        set(1, 10);
        let before = throttle_counts(&root);
        set(0, 9);
        set(1, 11);
        assert_eq!(throttle_delta(&before, &throttle_counts(&root)), Some(4));
        assert_eq!(throttle_delta(&before, &BTreeMap::new()), None);
    }

    #[test]
    fn step_options_reject_bad_values_by_name() {
        let o = Options::default();
        let bad: toml::Table = toml::from_str("duration = \"soon\"").unwrap();
        assert!(format!("{:#}", Config::from_step(&bad, &o).unwrap_err()).contains("duration"));
        let bad: toml::Table = toml::from_str("threads = 0").unwrap();
        assert!(format!("{:#}", Config::from_step(&bad, &o).unwrap_err()).contains("threads"));
        let ok: toml::Table = toml::from_str("duration = \"2m\"\nthreads = 3").unwrap();
        let c = Config::from_step(&ok, &o).unwrap();
        assert_eq!((c.duration, c.threads), (Duration::from_secs(120), 3));
        let o = Options::from_pairs([("burnin.cpu_duration", "45s")]);
        let c = Config::from_step(&toml::Table::new(), &o).unwrap();
        assert_eq!(c.duration, Duration::from_secs(45));
    }
}
