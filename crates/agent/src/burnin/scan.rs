//! `burnin.scan`: read every logical block of every eligible disk, once,
//! with the wipe verifier's read engine (`wipe::readback`: O_DIRECT,
//! `depth` reads in flight, retries), disks in parallel. A piece that
//! stays unreadable is narrowed down block by block and reported as LBA
//! ranges with the kernel's error. Read-only: devices are opened
//! `O_RDONLY | O_DIRECT` and nothing is ever written.
//!
//! Which disks: every whole disk in /sys/block but the live medium, loop,
//! ram, zram, optical and device-mapper devices (those only when named
//! with `--disk`) and the ones `speediso.burnin.scan_exclude` names.

use crate::blockdev::scan::{dev_name, Disk, Transport};
use crate::events::StepEvents;
use crate::module::{Module, StepContext};
use crate::options::{Kind, Options, Spec};
use crate::root::Root;
use crate::wipe::overwrite::{shape_for, Failures, Shape, Target, CHUNK, RETRIES};
use crate::wipe::readback::{read_pieces, read_with_retry, Flow};
use crate::wipe::Tracker;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

pub const NAME: &str = "burnin.scan";

/// `speediso.burnin.scan_exclude`, a step's `exclude`.
pub const EXCLUDE: Spec = Spec::cmdline(
    "burnin.scan_exclude",
    Kind::List,
    "disks the surface scan leaves out: serials, WWNs or paths, comma-separated",
)
.step("exclude");

/// A step's `disks`, `--disk`.
pub const DISKS: Spec = Spec::step_only(
    "disks",
    Kind::List,
    "scan only these disks (paths; loop and device-mapper devices too)",
)
.flag("disk");

/// Sub-piece tried before a failing piece is read block by block.
const NARROW: usize = 64 << 10;

#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Serials, WWNs or paths never scanned.
    pub exclude: Vec<String>,
    /// Scan only these paths (empty: every eligible disk).
    pub disks: Vec<String>,
}

/// `speediso burnin scan` flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ScanArgs {
    /// Scan only this disk (repeatable); loop and device-mapper devices
    /// are scanned only when named. Default: every eligible disk.
    #[arg(long = "disk", value_name = "PATH")]
    pub disks: Vec<String>,
    /// Print the result as one JSON document on stdout (progress goes to stderr).
    #[arg(long)]
    pub json: bool,
}

impl ScanArgs {
    pub fn config(&self, options: &Options) -> Config {
        Config {
            exclude: list_option(options),
            disks: self.disks.clone(),
        }
    }
}

fn list_option(options: &Options) -> Vec<String> {
    options
        .get("burnin.scan_exclude")
        .map(|s| {
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// A step option as a list of strings: `"a,b"` or `["a", "b"]`.
fn step_list(step: &toml::Table, key: &str) -> Result<Option<Vec<String>>> {
    let bad = |v: &toml::Value| {
        anyhow::anyhow!(
            "option {key} = {v} must be a string or a list of strings (paths, serials or WWNs)"
        )
    };
    match step.get(key) {
        None => Ok(None),
        Some(toml::Value::String(s)) => Ok(Some(
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect(),
        )),
        Some(v @ toml::Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map(str::to_string).ok_or_else(|| bad(v)))
            .collect::<Result<Vec<_>>>()
            .map(Some),
        Some(v) => Err(bad(v)),
    }
}

impl Config {
    /// From a task step's `exclude` and `speediso.burnin.scan_exclude`
    /// (both: leaving out more is the safe side), and `disks`.
    pub fn from_step(step: &toml::Table, options: &Options) -> Result<Config> {
        let mut exclude = step_list(step, "exclude")?.unwrap_or_default();
        exclude.extend(list_option(options));
        Ok(Config {
            exclude,
            disks: step_list(step, "disks")?.unwrap_or_default(),
        })
    }
}

/// A disk left out, and why.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

/// The disks to scan: `(path to open, disk)`, and those left out.
#[derive(Debug, Default)]
pub struct Selection {
    pub disks: Vec<(String, Disk)>,
    pub skipped: Vec<Skipped>,
}

/// Why `d` is not scanned unless named, if it is not.
fn not_a_target(d: &Disk) -> Option<String> {
    if d.transport == Transport::Loop {
        return Some("loop device: a file, not a disk (name it with --disk to scan it)".into());
    }
    if d.transport == Transport::Other {
        return Some("not a disk (device-mapper, md, ram, zram, optical or network device; name it with --disk to scan it)".into());
    }
    None
}

/// The live medium, by its mount at /run/initramfs/live or the kernel's
/// `root=` argument: kernel names of disks and partitions.
fn live_media(root: &Root) -> Vec<String> {
    use crate::blockdev::usage::{root_arg_device, Usage, LIVE_MEDIUM};
    let usage = Usage::read(root);
    let mut names: Vec<String> = Vec::new();
    for d in crate::blockdev::scan::disks(root) {
        let u = usage.of(&d.sys_path, &d.name, &d.devno);
        if u.mounts.iter().any(|(_, m)| m.mountpoint == LIVE_MEDIUM) {
            names.push(d.name.clone());
        }
    }
    if let Ok(c) = crate::cmdline::read(root) {
        if let Some(v) = crate::cmdline::parse(&c)
            .get("root")
            .and_then(|p| p.value.clone())
        {
            names.extend(root_arg_device(root, &v));
        }
    }
    names
}

/// Which disks `cfg` scans on this machine. A named path that is no
/// whole disk is an error naming it.
pub fn select(root: &Root, cfg: &Config) -> Result<Selection> {
    use crate::wipe::select::matches_exclude;
    let all = crate::blockdev::scan::disks(root);
    let mut sel = Selection::default();
    let excluded = |d: &Disk| cfg.exclude.iter().find(|e| matches_exclude(d, root, e));
    if !cfg.disks.is_empty() {
        for p in &cfg.disks {
            let name = dev_name(root, p);
            let Some(d) = all.iter().find(|d| d.name == name) else {
                bail!("--disk {p}: not a whole disk (no /sys/block/{name})");
            };
            match excluded(d) {
                Some(e) => sel.skipped.push(Skipped {
                    path: p.clone(),
                    reason: format!("excluded by speediso.burnin.scan_exclude ({e})"),
                }),
                None => sel.disks.push((p.clone(), d.clone())),
            }
        }
        return Ok(sel);
    }
    let live = live_media(root);
    for d in all {
        let path = d.path.display().to_string();
        // Under a fixture root the node opened is the tree's, never this
        // machine's disk of the same name.
        let open_at = if root.is_system() {
            path.clone()
        } else {
            root.at(&path).display().to_string()
        };
        let is_live = live
            .iter()
            .any(|n| *n == d.name || d.partitions.contains(n));
        let reason = if let Some(r) = not_a_target(&d) {
            Some(r)
        } else if is_live {
            Some("live medium (mounted at /run/initramfs/live or named by root=)".into())
        } else if d.size_bytes == 0 {
            Some("zero size (no medium?)".into())
        } else {
            excluded(&d).map(|e| format!("excluded by speediso.burnin.scan_exclude ({e})"))
        };
        match reason {
            Some(reason) => sel.skipped.push(Skipped { path, reason }),
            None => sel.disks.push((open_at, d)),
        }
    }
    Ok(sel)
}

/// A run of logical blocks that could not be read.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Unreadable {
    pub lba: u64,
    pub count: u64,
    /// What the kernel said (`Input/output error (os error 5)`).
    pub error: String,
}

/// One disk's scan.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DiskScan {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub size_bytes: u64,
    pub logical_block_size: u32,
    /// Bytes read successfully.
    pub bytes_read: u64,
    pub seconds: f64,
    /// 10^6 bytes per second.
    pub mb_per_s: f64,
    pub unreadable: Vec<Unreadable>,
    /// Why the scan of this disk stopped early (the disk went away, too
    /// many unreadable blocks) or could not start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `pass` or `fail`.
    pub verdict: &'static str,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ScanReport {
    pub disks: Vec<DiskScan>,
    pub skipped: Vec<Skipped>,
    /// `pass` when every disk was read whole; nothing scanned fails.
    pub verdict: &'static str,
}

/// Errors that mean the device is gone, not a bad block.
fn vanished(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENODEV) | Some(libc::ENXIO))
}

/// What one disk's readers share.
struct Scan<'a> {
    t: &'a Target,
    fails: Mutex<Failures>,
    gone: Mutex<Option<String>>,
    read: AtomicU64,
    tracker: Tracker,
}

impl Scan<'_> {
    fn gone(&self, off: u64, e: &std::io::Error) -> Flow {
        let mut g = self.gone.lock().unwrap_or_else(|e| e.into_inner());
        g.get_or_insert_with(|| {
            format!(
                "the disk went away during the scan (at LBA {}: {e})",
                off / self.t.lbs as u64
            )
        });
        Flow::Stop
    }

    /// A piece at `off` whose read failed `RETRIES` times: read it again
    /// in 64 KiB parts, and the failing parts block by block, recording
    /// each block that stays unreadable.
    fn narrow(&self, off: u64, buf: &mut [u8]) -> Flow {
        let lbs = self.t.lbs as usize;
        for (i, part) in buf.chunks_mut(NARROW.max(lbs)).enumerate() {
            let poff = off + (i * NARROW.max(lbs)) as u64;
            match read_with_retry(self.t, part, poff) {
                Ok(()) => {
                    self.read.fetch_add(part.len() as u64, Ordering::Relaxed);
                    continue;
                }
                Err(e) if vanished(&e) => return self.gone(poff, &e),
                Err(_) => {}
            }
            for (j, b) in part.chunks_mut(lbs).enumerate() {
                let boff = poff + (j * lbs) as u64;
                match read_with_retry(self.t, b, boff) {
                    Ok(()) => {
                        self.read.fetch_add(b.len() as u64, Ordering::Relaxed);
                    }
                    Err(e) if vanished(&e) => return self.gone(boff, &e),
                    Err(e) => {
                        let mut f = self.fails.lock().unwrap_or_else(|e| e.into_inner());
                        f.add(self.t.lbs, boff, b.len() as u64, "read", e.to_string());
                        if f.too_many() {
                            f.gave_up = true;
                            return Flow::Stop;
                        }
                    }
                }
            }
        }
        Flow::Continue
    }
}

/// Failed ranges in LBA order, adjacent ones with the same error merged
/// (pieces fail in whatever order the workers reach them).
pub fn merge(mut ranges: Vec<crate::wipe::overwrite::FailedRange>) -> Vec<Unreadable> {
    ranges.sort_by_key(|r| r.lba_start);
    let mut out: Vec<Unreadable> = Vec::new();
    for r in ranges {
        match out.last_mut() {
            Some(u) if u.lba + u.count == r.lba_start && u.error == r.error => {
                u.count += r.lba_count
            }
            _ => out.push(Unreadable {
                lba: r.lba_start,
                count: r.lba_count,
                error: r.error,
            }),
        }
    }
    out
}

/// Open `path` for reading only, with O_DIRECT.
pub fn open(path: &str, shape: Shape) -> Result<Target> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .with_context(|| format!("opening {path} (O_RDONLY, O_DIRECT)"))?;
    if !file.metadata()?.file_type().is_block_device() {
        bail!("{path} is not a block device");
    }
    let size =
        crate::sys::blk::size_bytes(&file).with_context(|| format!("BLKGETSIZE64 on {path}"))?;
    let lbs = crate::sys::blk::logical_block_size(&file)
        .with_context(|| format!("BLKSSZGET on {path}"))?;
    Ok(Target {
        file,
        size,
        lbs,
        depth: shape.depth,
        chunk: shape.chunk,
        lanes: shape.lanes,
    })
}

/// Read all of `t` (named `path` in progress events): the bytes read,
/// the unreadable ranges and why the scan stopped early, if it did.
pub fn scan_target(
    t: &Target,
    path: &str,
    ev: Option<&StepEvents>,
) -> (u64, Vec<Unreadable>, Option<String>) {
    let s = Scan {
        t,
        fails: Mutex::new(Failures::default()),
        gone: Mutex::new(None),
        read: AtomicU64::new(0),
        tracker: Tracker::new(path.to_string(), ev.cloned()),
    };
    s.tracker.phase("scan", t.size);
    let list = crate::wipe::verify::pieces(&[(0, t.size)], crate::wipe::verify::VerifyMode::Full);
    debug_assert!(list.iter().all(|(a, b)| b - a <= CHUNK as u64));
    let r = read_pieces(t, &list, |off, buf, r| {
        let len = buf.len() as u64;
        let flow = match r {
            Ok(()) => {
                s.read.fetch_add(len, Ordering::Relaxed);
                Flow::Continue
            }
            Err(e) if vanished(&e) => s.gone(off, &e),
            Err(e) => {
                tracing::debug!("{path}: read of {len} bytes at {off} failed {RETRIES} times: {e}; narrowing down");
                s.narrow(off, buf)
            }
        };
        s.tracker.add(len);
        flow
    });
    let fails = s.fails.into_inner().unwrap_or_else(|e| e.into_inner());
    let unreadable = merge(fails.ranges);
    let error = match (r, s.gone.into_inner().unwrap_or_else(|e| e.into_inner())) {
        (Err(e), _) => Some(format!("no memory for I/O buffers: {e}")),
        (_, Some(g)) => Some(g),
        _ if fails.gave_up => Some(format!(
            "gave up after {} unreadable blocks in {} ranges: the disk is failing",
            fails.blocks,
            unreadable.len()
        )),
        _ => None,
    };
    (s.read.load(Ordering::Relaxed), unreadable, error)
}

impl DiskScan {
    /// The disk `d` at `path`, nothing read yet: a failure until the scan
    /// says otherwise.
    fn failed(path: &str, d: &Disk, error: Option<String>) -> DiskScan {
        DiskScan {
            path: path.to_string(),
            serial: d.serial.clone(),
            model: d.model.clone(),
            size_bytes: d.size_bytes,
            logical_block_size: d.logical_block_size,
            bytes_read: 0,
            seconds: 0.0,
            mb_per_s: 0.0,
            unreadable: vec![],
            error,
            verdict: "fail",
        }
    }
}

/// Read all of `path` (the disk `d`) with `shape.depth` reads in flight.
pub fn scan_disk(path: &str, d: &Disk, shape: Shape, ev: Option<&StepEvents>) -> DiskScan {
    let started = Instant::now();
    let mut out = DiskScan::failed(path, d, None);
    let t = match open(path, shape) {
        Ok(t) => t,
        Err(e) => {
            out.error = Some(format!("{e:#}"));
            return out;
        }
    };
    out.size_bytes = t.size;
    out.logical_block_size = t.lbs;
    let (read, unreadable, error) = scan_target(&t, path, ev);
    let secs = started.elapsed().as_secs_f64();
    out.bytes_read = read;
    out.seconds = (secs * 1000.0).round() / 1000.0;
    out.mb_per_s = if secs > 0.0 {
        (read as f64 / secs / 1e6 * 10.0).round() / 10.0
    } else {
        0.0
    };
    out.unreadable = unreadable;
    out.error = error;
    if out.error.is_none() && out.unreadable.is_empty() && out.bytes_read == t.size {
        out.verdict = "pass";
    }
    out
}

/// Scan every selected disk, in parallel.
pub fn run(root: &Root, cfg: &Config, ev: &StepEvents) -> Result<ScanReport> {
    let sel = select(root, cfg)?;
    for s in &sel.skipped {
        ev.log(format!("{}: not scanned: {}", s.path, s.reason));
    }
    let shape = shape_for(sel.disks.len());
    let disks: Vec<DiskScan> = std::thread::scope(|sc| {
        let hs: Vec<_> = sel
            .disks
            .iter()
            .map(|(p, d)| sc.spawn(move || scan_disk(p, d, shape, Some(ev))))
            .collect();
        hs.into_iter()
            .zip(&sel.disks)
            .map(|(h, (p, d))| {
                h.join().unwrap_or_else(|_| {
                    DiskScan::failed(p, d, Some("the scan of this disk panicked".into()))
                })
            })
            .collect()
    });
    // Nothing to scan (a diskless server, every disk excluded) is said,
    // not passed and not failed.
    let verdict = if disks.is_empty() {
        "warn"
    } else if disks.iter().all(|d| d.verdict == "pass") {
        "pass"
    } else {
        "fail"
    };
    Ok(ScanReport {
        disks,
        skipped: sel.skipped,
        verdict,
    })
}

/// Why the scan failed, one line per disk; empty when it passed.
pub fn failures(r: &ScanReport) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for d in r.disks.iter().filter(|d| d.verdict != "pass") {
        let mut parts: Vec<String> = d
            .unreadable
            .iter()
            .map(|u| format!("LBA {} +{} unreadable ({})", u.lba, u.count, u.error))
            .collect();
        if let Some(e) = &d.error {
            parts.push(e.clone());
        }
        if parts.is_empty() {
            parts.push(format!("read {} of {} bytes", d.bytes_read, d.size_bytes));
        }
        v.push(format!("{}: {}", d.path, parts.join("; ")));
    }
    v
}

/// Readable summary for `speediso burnin scan`.
pub fn summary(r: &ScanReport) -> String {
    let mut s = format!("burnin scan: {}\n", r.verdict.to_uppercase());
    for d in &r.disks {
        let mut name = d.path.clone();
        if let Some(m) = &d.model {
            name += &format!(" {m}");
        }
        if let Some(x) = &d.serial {
            name += &format!(" ({x})");
        }
        s += &format!(
            "  {name}: {} of {} bytes read in {:.1}s, {:.1} MB/s: {}\n",
            d.bytes_read,
            d.size_bytes,
            d.seconds,
            d.mb_per_s,
            d.verdict.to_uppercase()
        );
        for u in &d.unreadable {
            s += &format!(
                "    unreadable: LBA {} count {} ({})\n",
                u.lba, u.count, u.error
            );
        }
        if let Some(e) = &d.error {
            s += &format!("    error: {e}\n");
        }
    }
    if r.disks.is_empty() {
        s += "  no disk was scanned\n";
    }
    for k in &r.skipped {
        s += &format!("  not scanned: {}: {}\n", k.path, k.reason);
    }
    s
}

pub struct BurninScan;

impl Module for BurninScan {
    type Config = Config;
    const NAME: &'static str = NAME;
    const OPTIONS: &'static [Spec] = &[EXCLUDE, DISKS];
    fn configure(step: &toml::Table, options: &Options) -> Result<Config> {
        Config::from_step(step, options)
    }
    fn run(ctx: &StepContext<Config>) -> Result<serde_json::Value> {
        let r = run(ctx.root, ctx.config, &ctx.events)?;
        let data = serde_json::to_value(&r)?;
        if r.disks.is_empty() {
            ctx.events
                .warn("burnin.scan: no disk was scanned (each one skipped: see the log)");
        }
        let bad = failures(&r);
        if !bad.is_empty() {
            for b in &bad {
                ctx.events.warn(format!("burnin.scan: {b}"));
            }
            ctx.events
                .emit(crate::events::Body::Result { data: data.clone() });
            bail!("burnin.scan FAIL: {}", bad.join("; "));
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wipe::overwrite::FailedRange;

    fn fr(lba: u64, n: u64, e: &str) -> FailedRange {
        FailedRange {
            lba_start: lba,
            lba_count: n,
            byte_offset: lba * 512,
            byte_len: n * 512,
            op: "read".into(),
            error: e.into(),
        }
    }

    #[test]
    fn ranges_found_out_of_order_merge_by_lba() {
        let m = merge(vec![
            fr(4096, 10, "EIO"),
            fr(2048, 2048, "EIO"),
            fr(9000, 1, "EIO"),
            fr(9001, 1, "X"),
        ]);
        let got: Vec<(u64, u64)> = m.iter().map(|u| (u.lba, u.count)).collect();
        assert_eq!(got, vec![(2048, 2058), (9000, 1), (9001, 1)]);
    }

    /// A target longer than its file: every block past the end fails (a
    /// short read), and exactly those blocks are reported, narrowed from
    /// the 1 MiB pieces down to the logical block.
    #[test]
    fn unreadable_blocks_are_narrowed_to_the_block() {
        use std::os::unix::fs::FileExt;
        let have = 2 * CHUNK as u64 + 7 * 512;
        let f = tempfile::tempfile().unwrap();
        f.write_all_at(&vec![1u8; have as usize], 0).unwrap();
        let t = Target {
            file: f,
            size: have,
            lbs: 512,
            depth: 4,
            chunk: CHUNK,
            lanes: 1,
        };
        let (read, bad, err) = scan_target(&t, "file", None);
        assert_eq!((read, bad.len(), err), (have, 0, None));
        let t = Target {
            size: 3 * CHUNK as u64,
            ..t
        };
        let (read, bad, err) = scan_target(&t, "file", None);
        assert_eq!(err, None);
        assert_eq!(read, have);
        let got: Vec<(u64, u64)> = bad.iter().map(|u| (u.lba, u.count)).collect();
        assert_eq!(got, vec![(have / 512, (3 * CHUNK as u64 - have) / 512)]);
        assert!(bad[0].error.contains("short read"), "{}", bad[0].error);
    }

    #[test]
    fn step_options_take_strings_or_lists_and_name_the_key() {
        let o = Options::from_pairs([("burnin.scan_exclude", "S1, /dev/sdb")]);
        let c = Config::from_step(&toml::Table::new(), &o).unwrap();
        assert_eq!(c.exclude, vec!["S1", "/dev/sdb"]);
        let step: toml::Table =
            toml::from_str("exclude = [\"W1\"]\ndisks = \"/dev/loop3,/dev/loop4\"").unwrap();
        let c = Config::from_step(&step, &o).unwrap();
        assert_eq!(
            (c.exclude, c.disks.len()),
            (vec!["W1".to_string(), "S1".into(), "/dev/sdb".into()], 2)
        );
        let bad: toml::Table = toml::from_str("disks = [1]").unwrap();
        let e = format!("{:#}", Config::from_step(&bad, &o).unwrap_err());
        assert!(e.contains("disks = [1]"), "{e}");
    }

    #[test]
    fn selection_skips_loop_dm_live_and_excluded_disks() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        let disk = |name: &str, serial: Option<&str>| {
            let d = root.at("/sys/block").join(name);
            std::fs::create_dir_all(d.join("device")).unwrap();
            std::fs::create_dir_all(d.join("queue")).unwrap();
            std::fs::write(d.join("size"), "2048\n").unwrap();
            if let Some(s) = serial {
                std::fs::write(d.join("device/serial"), s).unwrap();
            }
        };
        disk("sda", Some("LIVE1"));
        disk("sdb", Some("KEEP"));
        disk("sdc", Some("DROP"));
        disk("loop0", None);
        disk("dm-0", None);
        disk("zram0", None);
        std::fs::create_dir_all(root.at("/proc/self")).unwrap();
        std::fs::write(root.at("/proc/self/mountinfo"), "").unwrap();
        std::fs::write(root.at("/proc/swaps"), "").unwrap();
        // The live medium by label, on a partition of sda.
        let part = root.at("/sys/block/sda/sda1");
        std::fs::create_dir_all(&part).unwrap();
        std::fs::write(part.join("partition"), "1\n").unwrap();
        std::fs::create_dir_all(root.at("/dev/disk/by-label")).unwrap();
        std::fs::write(root.at("/dev/sda1"), "").unwrap();
        std::os::unix::fs::symlink("../../sda1", root.at("/dev/disk/by-label/LIVE")).unwrap();
        std::fs::write(root.at("/proc/cmdline"), "root=live:CDLABEL=LIVE quiet\n").unwrap();
        let cfg = Config {
            exclude: vec!["drop".into()],
            disks: vec![],
        };
        let s = select(&root, &cfg).unwrap();
        let names: Vec<&str> = s.disks.iter().map(|(_, d)| d.name.as_str()).collect();
        assert_eq!(names, vec!["sdb"]);
        // Opened in the tree, never this machine's /dev/sdb.
        assert_eq!(s.disks[0].0, root.at("/dev/sdb").display().to_string());
        let why = |p: &str| {
            s.skipped
                .iter()
                .find(|k| k.path == p)
                .map(|k| k.reason.clone())
                .unwrap_or_else(|| panic!("{p} not skipped: {:?}", s.skipped))
        };
        assert!(why("/dev/sda").contains("live medium"));
        assert!(why("/dev/sdc").contains("excluded"));
        assert!(why("/dev/loop0").contains("loop device"));
        assert!(why("/dev/dm-0").contains("not a disk"));
        assert!(why("/dev/zram0").contains("not a disk"));
        // Named: scanned whatever it is; a path that is no disk is refused.
        let named = Config {
            exclude: vec![],
            disks: vec!["/dev/loop0".into()],
        };
        assert_eq!(select(&root, &named).unwrap().disks.len(), 1);
        let e = select(
            &root,
            &Config {
                exclude: vec![],
                disks: vec!["/dev/nope".into()],
            },
        )
        .unwrap_err();
        assert!(e.to_string().contains("/dev/nope"), "{e}");
    }
}
