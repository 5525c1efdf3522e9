//! `bench.disk`: fio-comparable jobs on a block device or a file, with
//! O_DIRECT (the page cache is bypassed) and a real queue depth through
//! io_uring: sequential read/write in 1 MiB blocks at queue depth 16, random
//! read/write in 4 KiB blocks at queue depth 32, each for a fixed time.
//!
//! Reads are safe on any disk. Writes destroy data, so they run only on a
//! regular file or a loop device that nothing has mounted; a whole block
//! device needs an explicit confirmation naming it (as wipe does), and is
//! still refused while mounted or held. `--verify` writes checksummed 4 KiB
//! sectors and reads them back (burn-in).

use super::{opt_bool, opt_duration, opt_str, opt_u64, round2, Rng};
pub use crate::blockdev::guard::{classify, write_guard, Kind, Refusal};
use crate::events::{Progress, StepEvents};
use crate::module::{Module, StepContext};
use crate::options::{Kind as OptKind, Options, Spec};
use crate::root::Root;
use crate::sys::uring::{Completion, Queue};
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const NAME: &str = "bench.disk";
pub const DEFAULT_DURATION: Duration = Duration::from_secs(10);
const MIB: u64 = 1 << 20;
/// Size of a file target laid out when it is missing or short.
pub const DEFAULT_FILE_SIZE: u64 = 1024 * MIB;
/// Default amount written and read back by `--verify`.
pub const DEFAULT_VERIFY_SIZE: u64 = 256 * MIB;
const SECTOR: usize = 4096;

/// One fio-equivalent job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    SeqRead,
    SeqWrite,
    RandRead,
    RandWrite,
}

impl Job {
    pub const ALL: [Job; 4] = [Job::SeqRead, Job::SeqWrite, Job::RandRead, Job::RandWrite];
    pub fn name(self) -> &'static str {
        match self {
            Job::SeqRead => "seq_read",
            Job::SeqWrite => "seq_write",
            Job::RandRead => "rand_read",
            Job::RandWrite => "rand_write",
        }
    }
    pub fn parse(s: &str) -> Option<Job> {
        Job::ALL.into_iter().find(|j| j.name() == s)
    }
    pub fn block_size(self) -> usize {
        if self.random() {
            4096
        } else {
            1 << 20
        }
    }
    pub fn queue_depth(self) -> usize {
        if self.random() {
            32
        } else {
            16
        }
    }
    pub fn write(self) -> bool {
        matches!(self, Job::SeqWrite | Job::RandWrite)
    }
    pub fn random(self) -> bool {
        matches!(self, Job::RandRead | Job::RandWrite)
    }
}

/// Which jobs to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Reads only on block devices, everything on files.
    Auto,
    Read,
    Write,
    All,
}

impl Mode {
    fn parse(s: &str) -> Option<Mode> {
        match s {
            "auto" => Some(Mode::Auto),
            "read" => Some(Mode::Read),
            "write" => Some(Mode::Write),
            "all" => Some(Mode::All),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// `None`: every disk (module only), read jobs.
    pub target: Option<PathBuf>,
    pub mode: Mode,
    /// Explicit job list; overrides `mode`.
    pub jobs: Option<Vec<Job>>,
    pub duration: Duration,
    /// Bytes of the target to use (default: whole device, or 1 GiB file).
    pub size: Option<u64>,
    /// Bytes to write and read back checksummed; `None`: no verify.
    pub verify: Option<u64>,
    /// The path a person named to allow writes on a whole block device.
    pub confirm_destroy: Option<PathBuf>,
}

/// `speediso bench disk` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct DiskArgs {
    /// Block device or file to test (a missing file is created and laid out).
    #[arg(long, value_name = "PATH")]
    pub target: PathBuf,
    /// Which jobs: auto = reads on block devices, all jobs on files.
    #[arg(long, value_enum, default_value = "auto")]
    pub mode: Mode,
    /// Run only these jobs (comma-separated: seq_read, seq_write, rand_read, rand_write).
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = parse_job)]
    pub jobs: Option<Vec<Job>>,
    /// How long each job runs.
    #[arg(long, value_name = "DURATION", value_parser = super::parse_duration_flag, default_value = "10s")]
    pub duration: Duration,
    /// MiB of the target to use (default: the whole device; 1024 for a file).
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    pub size_mib: Option<u64>,
    /// Write checksummed blocks and read them back (burn-in).
    #[arg(long)]
    pub verify: bool,
    /// MiB to verify (default 256, at most the size tested).
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..))]
    pub verify_mib: Option<u64>,
    /// Allow write jobs on this whole block device, destroying its data.
    #[arg(long, value_name = "DEVICE")]
    pub confirm_destroy: Option<PathBuf>,
}

fn parse_job(s: &str) -> Result<Job, String> {
    Job::parse(s)
        .ok_or_else(|| format!("{s:?} is not one of seq_read, seq_write, rand_read, rand_write"))
}

impl DiskArgs {
    pub fn config(&self) -> Config {
        Config {
            target: Some(self.target.clone()),
            mode: self.mode,
            jobs: self.jobs.clone(),
            duration: self.duration,
            size: self.size_mib.map(|m| m * MIB),
            verify: self.verify.then(|| {
                self.verify_mib
                    .map(|m| m * MIB)
                    .unwrap_or(DEFAULT_VERIFY_SIZE)
            }),
            confirm_destroy: self.confirm_destroy.clone(),
        }
    }
}

impl Config {
    /// Step options: `target`, `mode` (auto|read|write|all), `jobs` (list),
    /// `duration`, `size_mib`, `verify`, `verify_mib`, `confirm` (the
    /// block device a destructive task may write to).
    pub fn from_step(step: &toml::Table, options: &Options) -> Result<Config> {
        let mode = match opt_str(step, "mode")? {
            None => Mode::Auto,
            Some(m) => Mode::parse(m).ok_or_else(|| {
                anyhow!("option mode = {m:?} is not one of auto, read, write, all")
            })?,
        };
        let jobs = match step.get("jobs") {
            None => None,
            Some(toml::Value::Array(a)) => Some(
                a.iter()
                    .map(|v| {
                        v.as_str()
                            .and_then(Job::parse)
                            .ok_or_else(|| anyhow!("option jobs: {v} is not a job name"))
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            Some(v) => bail!("option jobs = {v} must be a list of job names"),
        };
        let verify = opt_bool(step, "verify")?;
        Ok(Config {
            target: opt_str(step, "target")?.map(PathBuf::from),
            mode,
            jobs,
            duration: opt_duration(step, "duration", options, DEFAULT_DURATION)?,
            size: opt_u64(step, "size_mib", 1, u64::MAX / MIB)?.map(|m| m * MIB),
            verify: verify.then_some(
                opt_u64(step, "verify_mib", 1, u64::MAX / MIB)?
                    .map(|m| m * MIB)
                    .unwrap_or(DEFAULT_VERIFY_SIZE),
            ),
            confirm_destroy: opt_str(step, "confirm")?.map(PathBuf::from),
        })
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JobResult {
    pub job: &'static str,
    pub block_size: usize,
    pub queue_depth: usize,
    pub duration_s: f64,
    pub bytes: u64,
    pub ios: u64,
    pub mbps: f64,
    pub iops: f64,
    pub lat_mean_us: f64,
    pub lat_p50_us: f64,
    pub lat_p99_us: f64,
    pub lat_max_us: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct VerifyReport {
    pub bytes: u64,
    pub sectors: u64,
    pub errors: u64,
    /// The first bad sectors (at most 16): byte offset and what was wrong.
    pub bad: Vec<(u64, String)>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DiskReport {
    pub target: String,
    pub kind: Kind,
    /// Bytes of the target the jobs used.
    pub size_bytes: u64,
    pub engine: &'static str,
    pub direct: bool,
    pub seq_read_mbps: Option<f64>,
    pub seq_write_mbps: Option<f64>,
    pub rand_read_iops: Option<f64>,
    pub rand_write_iops: Option<f64>,
    /// Completion latency per job in µs.
    pub latency_us: std::collections::BTreeMap<&'static str, Latency>,
    pub jobs: Vec<JobResult>,
    pub verify: Option<VerifyReport>,
}

/// Latency histogram: exact below 64 ns, then 64 linear buckets per power
/// of two (under 1.6% error), like fio's clat histogram.
pub struct Histogram {
    counts: Vec<u64>,
    n: u64,
    sum: u128,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; 64 * 59],
            n: 0,
            sum: 0,
            max: 0,
        }
    }
}

impl Histogram {
    fn index(v: u64) -> usize {
        if v < 64 {
            return v as usize;
        }
        let e = 63 - v.leading_zeros() as usize; // >= 6
        let sub = ((v >> (e - 6)) & 63) as usize;
        64 + (e - 6) * 64 + sub
    }
    /// Midpoint of bucket `i`.
    fn value(i: usize) -> f64 {
        if i < 64 {
            return i as f64;
        }
        let e = (i - 64) / 64 + 6;
        let sub = ((i - 64) % 64) as u64;
        let lo = (64 + sub) << (e - 6);
        lo as f64 + ((1u64 << (e - 6)) as f64 - 1.0) / 2.0
    }
    pub fn record(&mut self, ns: u64) {
        let last = self.counts.len() - 1;
        self.counts[Self::index(ns).min(last)] += 1;
        self.n += 1;
        self.sum += ns as u128;
        self.max = self.max.max(ns);
    }
    /// The value below which `q` (0..1) of the samples fall, in ns.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.n == 0 {
            return 0.0;
        }
        let want = ((q * self.n as f64).ceil() as u64).clamp(1, self.n);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= want {
                // A bucket's midpoint can lie above the largest sample.
                return Self::value(i).min(self.max as f64);
            }
        }
        self.max as f64
    }
    pub fn mean(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.sum as f64 / self.n as f64
        }
    }
}

fn open(path: &Path, write: bool, create: bool) -> Result<std::fs::File> {
    OpenOptions::new()
        .read(true)
        .write(write)
        .create(create)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .with_context(|| format!("opening {} with O_DIRECT", path.display()))
}

/// Run one job on `path` over its first `region` bytes for `duration`.
pub fn run_job(
    path: &Path,
    job: Job,
    region: u64,
    duration: Duration,
    ev: &StepEvents,
) -> Result<JobResult> {
    let bs = job.block_size();
    let qd = job.queue_depth();
    let blocks = region / bs as u64;
    if blocks == 0 {
        bail!(
            "{}: {} bytes is smaller than one {bs}-byte block",
            path.display(),
            region
        );
    }
    let file = open(path, job.write(), false)?;
    let mut q = Queue::new(file, qd, bs)
        .with_context(|| format!("setting up io_uring for {}", path.display()))?;
    let mut rng = Rng::new(0x00d1_5c00 ^ bs as u64);
    if job.write() {
        // Random data, so a compressing or deduplicating device cannot cheat
        // (fio does the same by default).
        for slot in 0..qd {
            if let Some(b) = q.buf_mut(slot) {
                rng.fill(b);
            }
        }
    }
    let mut seq_next = 0u64;
    let mut next_offset = |rng: &mut Rng| {
        let block = if job.random() {
            rng.below(blocks)
        } else {
            let b = seq_next;
            seq_next = (seq_next + 1) % blocks;
            b
        };
        block * bs as u64
    };
    // Each I/O goes to the kernel on its own `io_uring_enter` the moment
    // its slot is free, as fio does by default (iodepth_batch_submit=1).
    // Refilling every reaped slot and sending them all on one enter was
    // cheaper in CPU but slower on a file: the ~30 reads went down as one
    // plugged burst, and the virtio disk served bursts slower (290 us per
    // read against 231 sent one by one, fio 222, in the guest's own
    // /sys/block/vda/stat at the same device queue depth): 0.87 of fio,
    // against 0.99-1.00 sent one by one
    // (benches/README.md, "Random 4K read on a file, closed").
    // Latency is stamped just before the submit: fio's "clat" plus the
    // submission itself (microseconds against a 4K read's hundreds).
    let send = |q: &mut Queue, started: &mut [Instant], slot: usize, off: u64| {
        if job.write() {
            q.push_write(slot, off)?;
        } else {
            q.push_read(slot, off)?;
        }
        started[slot] = Instant::now();
        q.submit()
    };
    let what = || format!("{} on {}", job.name(), path.display());
    let mut hist = Histogram::default();
    let mut started = vec![Instant::now(); qd];
    let start = Instant::now();
    let deadline = start + duration;
    for slot in 0..qd {
        let off = next_offset(&mut rng);
        send(&mut q, &mut started, slot, off).with_context(what)?;
    }
    let (mut ios, mut bytes) = (0u64, 0u64);
    let mut done: Vec<Completion> = Vec::with_capacity(qd);
    let mut last = (start, 0u64);
    while q.in_flight() > 0 {
        done.clear();
        q.wait(1, &mut done).with_context(what)?;
        let now = Instant::now();
        for c in done.drain(..) {
            let n = c.result.with_context(what)?;
            if n != bs {
                bail!("{}: short transfer of {n} bytes", what());
            }
            hist.record(now.duration_since(started[c.slot]).as_nanos() as u64);
            ios += 1;
            bytes += n as u64;
            if now < deadline {
                let off = next_offset(&mut rng);
                send(&mut q, &mut started, c.slot, off).with_context(what)?;
            }
        }
        if now.duration_since(last.0) >= Duration::from_secs(1) {
            let rate = (bytes - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
            last = (now, bytes);
            let el = now.duration_since(start).as_secs_f64();
            ev.progress(Progress {
                percent: Some((100.0 * el / duration.as_secs_f64()).min(100.0)),
                bytes: Some(bytes),
                rate: Some(rate),
                eta_s: Some((duration.as_secs_f64() - el).max(0.0)),
                message: Some(format!("{} {}", job.name(), path.display())),
                ..Default::default()
            });
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let us = |ns: f64| round2(ns / 1000.0);
    Ok(JobResult {
        job: job.name(),
        block_size: bs,
        queue_depth: qd,
        duration_s: round2(secs),
        bytes,
        ios,
        mbps: round2(bytes as f64 / secs / 1e6),
        iops: round2(ios as f64 / secs),
        lat_mean_us: us(hist.mean()),
        lat_p50_us: us(hist.quantile(0.50)),
        lat_p99_us: us(hist.quantile(0.99)),
        lat_max_us: us(hist.max as f64),
    })
}

/// Word-wise checksum of a verify sector's body (not cryptographic: it
/// catches torn, stale and misdirected writes).
fn sector_sum(body: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for w in body.chunks_exact(8) {
        let v = u64::from_le_bytes(w.try_into().unwrap_or_default());
        h = (h ^ v).wrapping_mul(0x0100_0000_01b3).rotate_left(23);
    }
    h
}

/// Fill a verify sector for byte `offset`: offset, seed, pseudo-random
/// payload, checksum of all that in the last 8 bytes.
fn fill_sector(s: &mut [u8], offset: u64, seed: u64) {
    s[0..8].copy_from_slice(&offset.to_le_bytes());
    s[8..16].copy_from_slice(&seed.to_le_bytes());
    Rng::new(seed ^ offset).fill(&mut s[16..SECTOR - 8]);
    let sum = sector_sum(&s[..SECTOR - 8]);
    s[SECTOR - 8..].copy_from_slice(&sum.to_le_bytes());
}

/// What is wrong with a read-back sector, if anything.
fn check_sector(s: &[u8], offset: u64, seed: u64) -> Option<String> {
    let stored = u64::from_le_bytes(s[SECTOR - 8..].try_into().unwrap_or_default());
    if sector_sum(&s[..SECTOR - 8]) != stored {
        return Some("checksum mismatch (corrupt or torn data)".into());
    }
    let off = u64::from_le_bytes(s[0..8].try_into().unwrap_or_default());
    let sd = u64::from_le_bytes(s[8..16].try_into().unwrap_or_default());
    if sd != seed {
        return Some("stale data from an earlier pass (write lost)".into());
    }
    if off != offset {
        return Some(format!(
            "sector written for offset {off} (misdirected write)"
        ));
    }
    None
}

/// Write `bytes` of checksummed sectors from offset 0 with 1 MiB I/Os at
/// queue depth 16, then read them back and check every sector.
pub fn verify(path: &Path, bytes: u64, ev: &StepEvents) -> Result<VerifyReport> {
    let job = Job::SeqWrite;
    let bs = job.block_size() as u64;
    let blocks = bytes / bs;
    if blocks == 0 {
        bail!("verify size must be at least 1 MiB");
    }
    let mut seed_bytes = [0u8; 8];
    getrandom::getrandom(&mut seed_bytes).map_err(|e| anyhow!("random seed: {e}"))?;
    let seed = u64::from_le_bytes(seed_bytes);
    let mut report = VerifyReport {
        bytes: blocks * bs,
        sectors: blocks * bs / SECTOR as u64,
        errors: 0,
        bad: Vec::new(),
    };
    for write in [true, false] {
        let mut q = Queue::new(open(path, write, false)?, job.queue_depth(), bs as usize)?;
        let mut next = 0u64;
        let mut done = Vec::new();
        let mut last = Instant::now();
        let start_one = |q: &mut Queue, slot: usize, block: u64| -> Result<()> {
            let off = block * bs;
            if write {
                let b = q.buf_mut(slot).ok_or_else(|| anyhow!("slot {slot} busy"))?;
                for (i, s) in b.chunks_mut(SECTOR).enumerate() {
                    fill_sector(s, off + (i * SECTOR) as u64, seed);
                }
                q.push_write(slot, off)?;
            } else {
                q.push_read(slot, off)?;
            }
            Ok(())
        };
        let mut slot_block = vec![0u64; q.depth()];
        for (slot, sb) in slot_block.iter_mut().enumerate() {
            if next < blocks {
                *sb = next;
                start_one(&mut q, slot, next)?;
                next += 1;
            }
        }
        while q.in_flight() > 0 {
            done.clear();
            q.wait(1, &mut done)?;
            for c in done.drain(..) {
                let block = slot_block[c.slot];
                let n = c
                    .result
                    .with_context(|| format!("verify on {} at {}", path.display(), block * bs))?;
                if n as u64 != bs {
                    bail!(
                        "verify on {}: short transfer at {}",
                        path.display(),
                        block * bs
                    );
                }
                if !write {
                    let b = q.buf(c.slot).ok_or_else(|| anyhow!("slot busy"))?;
                    for (i, s) in b.chunks(SECTOR).enumerate() {
                        let off = block * bs + (i * SECTOR) as u64;
                        if let Some(why) = check_sector(s, off, seed) {
                            report.errors += 1;
                            if report.bad.len() < 16 {
                                report.bad.push((off, why));
                            }
                        }
                    }
                }
                if next < blocks {
                    slot_block[c.slot] = next;
                    start_one(&mut q, c.slot, next)?;
                    next += 1;
                }
            }
            if last.elapsed() >= Duration::from_secs(1) {
                last = Instant::now();
                ev.progress(Progress {
                    percent: Some(100.0 * next as f64 / blocks as f64),
                    bytes: Some(next * bs),
                    total_bytes: Some(blocks * bs),
                    message: Some(format!(
                        "verify {} {}",
                        if write { "write" } else { "read-back" },
                        path.display()
                    )),
                    ..Default::default()
                });
            }
        }
        if write {
            q.file()
                .sync_all()
                .with_context(|| format!("syncing {}", path.display()))?;
        }
    }
    Ok(report)
}

/// Lay out a file target: extend it to `size` and write every block, as fio
/// does, so reads hit real blocks rather than holes.
fn layout(path: &Path, size: u64, ev: &StepEvents) -> Result<()> {
    let cur = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if cur >= size {
        return Ok(());
    }
    ev.log(format!(
        "laying out {} ({} MiB)",
        path.display(),
        size / MIB
    ));
    let f = open(path, true, true)?;
    f.set_len(size)
        .with_context(|| format!("extending {}", path.display()))?;
    let bs = MIB;
    let mut q = Queue::new(f, 16, bs as usize)?;
    let mut rng = Rng::new(size);
    for slot in 0..q.depth() {
        if let Some(b) = q.buf_mut(slot) {
            rng.fill(b);
        }
    }
    let first = cur / bs;
    let blocks = size.div_ceil(bs);
    let mut next = first;
    let mut done = Vec::new();
    for slot in 0..q.depth() {
        if next < blocks {
            q.push_write(slot, next * bs)?;
            next += 1;
        }
    }
    while q.in_flight() > 0 {
        done.clear();
        q.wait(1, &mut done)?;
        for c in done.drain(..) {
            c.result
                .with_context(|| format!("laying out {}", path.display()))?;
            if next < blocks {
                q.push_write(c.slot, next * bs)?;
                next += 1;
            }
        }
    }
    q.file().sync_all()?;
    Ok(())
}

/// Bytes in a block device or file.
fn target_size(path: &Path) -> Result<u64> {
    let mut f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    f.seek(SeekFrom::End(0))
        .with_context(|| format!("sizing {}", path.display()))
}

/// Run the configured jobs on one target.
/// The jobs a run does on a target of `kind`.
fn jobs_for(cfg: &Config, kind: Kind) -> Vec<Job> {
    match (&cfg.jobs, cfg.mode) {
        (Some(j), _) => j.clone(),
        (None, Mode::Read) => vec![Job::SeqRead, Job::RandRead],
        (None, Mode::Write) => vec![Job::SeqWrite, Job::RandWrite],
        (None, Mode::All) => Job::ALL.to_vec(),
        (None, Mode::Auto) if kind == Kind::File => Job::ALL.to_vec(),
        (None, Mode::Auto) => vec![Job::SeqRead, Job::RandRead],
    }
}

/// The checks `run_target` makes before touching `path`, for a caller that
/// wants a refusal before anything starts (a `Refusal` error when the jobs
/// would write to a disk they must not).
pub fn check_target(root: &Root, cfg: &Config, path: &Path) -> Result<()> {
    let (kind, dev) = classify(root, path)?;
    let jobs = jobs_for(cfg, kind);
    if jobs.iter().any(|j| j.write()) || cfg.verify.is_some() {
        write_guard(root, path, kind, dev, cfg.confirm_destroy.as_deref())?;
    }
    Ok(())
}

pub fn run_target(root: &Root, cfg: &Config, path: &Path, ev: &StepEvents) -> Result<DiskReport> {
    let (kind, _) = classify(root, path)?;
    check_target(root, cfg, path)?;
    let jobs = jobs_for(cfg, kind);
    let size = match kind {
        Kind::File => {
            let size = cfg.size.unwrap_or(DEFAULT_FILE_SIZE) / MIB * MIB;
            layout(path, size, ev)?;
            size
        }
        _ => {
            let dev_size = target_size(path)?;
            cfg.size.map(|s| s.min(dev_size)).unwrap_or(dev_size)
        }
    };
    let mut report = DiskReport {
        target: path.display().to_string(),
        kind,
        size_bytes: size,
        engine: "io_uring",
        direct: true,
        seq_read_mbps: None,
        seq_write_mbps: None,
        rand_read_iops: None,
        rand_write_iops: None,
        latency_us: Default::default(),
        jobs: Vec::new(),
        verify: None,
    };
    for job in jobs {
        let r = run_job(path, job, size, cfg.duration, ev)?;
        ev.log(format!(
            "{} {}: {:.1} MB/s, {:.0} IOPS, p50 {:.1} µs, p99 {:.1} µs",
            job.name(),
            path.display(),
            r.mbps,
            r.iops,
            r.lat_p50_us,
            r.lat_p99_us
        ));
        match job {
            Job::SeqRead => report.seq_read_mbps = Some(r.mbps),
            Job::SeqWrite => report.seq_write_mbps = Some(r.mbps),
            Job::RandRead => report.rand_read_iops = Some(r.iops),
            Job::RandWrite => report.rand_write_iops = Some(r.iops),
        }
        report.latency_us.insert(
            job.name(),
            Latency {
                p50: r.lat_p50_us,
                p99: r.lat_p99_us,
            },
        );
        report.jobs.push(r);
    }
    if let Some(v) = cfg.verify {
        let v = verify(path, v.min(size), ev)?;
        if v.errors > 0 {
            ev.warn(format!(
                "verify on {}: {} bad sector(s), first at byte {}: {}",
                path.display(),
                v.errors,
                v.bad[0].0,
                v.bad[0].1
            ));
        }
        report.verify = Some(v);
    }
    Ok(report)
}

/// Whole disks worth a read benchmark: /sys/block entries that are not
/// loop, RAM, optical or floppy devices, and have a size.
pub fn all_disks(root: &Root) -> Vec<PathBuf> {
    // Not loop, RAM, optical, floppy or network block devices, nor empty
    // ones (a card reader without a card).
    let skip = |n: &str| {
        ["loop", "ram", "zram", "sr", "fd", "nbd"]
            .iter()
            .any(|p| n.starts_with(p))
    };
    crate::blockdev::scan::disks(root)
        .into_iter()
        .filter(|d| !skip(&d.name) && d.size_bytes > 0)
        .map(|d| d.path)
        .collect()
}

pub fn summary(r: &DiskReport) -> String {
    let mut s = format!(
        "disk: {} ({:?}), {} MiB used, io_uring, O_DIRECT\n{:<11} {:>5} {:>3} {:>11} {:>11} {:>10} {:>10}\n",
        r.target,
        r.kind,
        r.size_bytes / MIB,
        "job",
        "bs",
        "qd",
        "MB/s",
        "IOPS",
        "p50 µs",
        "p99 µs"
    );
    for j in &r.jobs {
        s += &format!(
            "{:<11} {:>5} {:>3} {:>11.1} {:>11.0} {:>10.1} {:>10.1}\n",
            j.job,
            if j.block_size >= 1 << 20 {
                "1M".to_string()
            } else {
                format!("{}k", j.block_size / 1024)
            },
            j.queue_depth,
            j.mbps,
            j.iops,
            j.lat_p50_us,
            j.lat_p99_us
        );
    }
    if let Some(v) = &r.verify {
        s += &format!(
            "verify: {} MiB, {} sectors, {} bad\n",
            v.bytes / MIB,
            v.sectors,
            v.errors
        );
        for (off, why) in &v.bad {
            s += &format!("  bad sector at byte {off}: {why}\n");
        }
    }
    s
}

pub struct BenchDisk;

impl Module for BenchDisk {
    type Config = Config;
    const NAME: &'static str = NAME;
    const OPTIONS: &'static [Spec] = &[
        Spec::step_only(
            "target",
            OptKind::NonEmpty,
            "file or block device to test (default: every disk, reads only)",
        )
        .flag("target"),
        Spec::step_only(
            "size_mib",
            OptKind::Int(1, u64::MAX),
            "MiB of the target to use",
        )
        .flag("size-mib"),
        super::DURATION,
        Spec::step_only(
            "mode",
            OptKind::Choice(&["auto", "read", "write", "all"]),
            "which jobs: read, write, all, or auto (writes only to files)",
        )
        .flag("mode"),
        Spec::step_only("jobs", OptKind::List, "the jobs to run, by name").flag("jobs"),
        Spec::step_only(
            "verify",
            OptKind::Bool,
            "write checksummed blocks and read them back",
        )
        .flag("verify"),
        Spec::step_only("verify_mib", OptKind::Int(1, u64::MAX), "MiB to verify")
            .flag("verify-mib"),
        Spec::step_only(
            "confirm",
            OptKind::NonEmpty,
            "the block device writes may destroy, named again",
        )
        .flag("confirm-destroy"),
    ];
    fn configure(step: &toml::Table, options: &Options) -> Result<Config> {
        Config::from_step(step, options)
    }
    fn run(ctx: &StepContext<Config>) -> Result<serde_json::Value> {
        let mut cfg = ctx.config.clone();
        // A block device may be written only by a task the boot asked for
        // (or a person confirmed) that also names it in `confirm`.
        if !ctx.destructive_allowed {
            cfg.confirm_destroy = None;
        }
        let targets = match &cfg.target {
            Some(t) => vec![t.clone()],
            None => {
                // Every disk: reads only, whatever mode says.
                cfg.mode = Mode::Read;
                cfg.jobs = None;
                cfg.verify = None;
                all_disks(ctx.root)
            }
        };
        if targets.is_empty() {
            ctx.events.warn("no disks found to benchmark");
        }
        let mut disks = Vec::new();
        for t in &targets {
            disks.push(run_target(ctx.root, &cfg, t, &ctx.events)?);
        }
        if let Some(bad) = disks
            .iter()
            .find(|d| d.verify.as_ref().is_some_and(|v| v.errors > 0))
        {
            bail!("verify found bad sectors on {}", bad.target);
        }
        Ok(serde_json::json!({ "disks": disks }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_are_close() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v * 10);
        }
        let p50 = h.quantile(0.5);
        let p99 = h.quantile(0.99);
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.02, "{p50}");
        assert!((p99 - 990_000.0).abs() / 990_000.0 < 0.02, "{p99}");
        assert_eq!(h.quantile(0.0), Histogram::value(Histogram::index(10)));
        for v in [0u64, 63, 64, 65, 1000, 1 << 40] {
            let back = Histogram::value(Histogram::index(v));
            assert!(
                (back - v as f64).abs() <= v as f64 * 0.016 + 0.5,
                "{v} -> {back}"
            );
        }
    }

    #[test]
    fn sectors_detect_corruption_and_misdirection() {
        let mut s = vec![0u8; SECTOR];
        fill_sector(&mut s, 8192, 7);
        assert_eq!(check_sector(&s, 8192, 7), None);
        assert!(check_sector(&s, 4096, 7).unwrap().contains("misdirected"));
        assert!(check_sector(&s, 8192, 8).unwrap().contains("stale"));
        s[100] ^= 1;
        assert!(check_sector(&s, 8192, 7).unwrap().contains("checksum"));
    }

    #[test]
    fn step_options_parse() {
        let step: toml::Table = toml::from_str(
            "target='/tmp/x'\nmode='read'\njobs=['rand_read']\nverify=true\nsize_mib=64",
        )
        .unwrap();
        let c = Config::from_step(&step, &Options::default()).unwrap();
        assert_eq!(c.mode, Mode::Read);
        assert_eq!(c.jobs, Some(vec![Job::RandRead]));
        assert_eq!(c.size, Some(64 * MIB));
        assert_eq!(c.verify, Some(DEFAULT_VERIFY_SIZE));
        let bad: toml::Table = toml::from_str("mode='erase'").unwrap();
        assert!(Config::from_step(&bad, &Options::default()).is_err());
    }
}
