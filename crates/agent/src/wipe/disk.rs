//! Erasing one planned disk: open, check it is still the disk planned,
//! erase by the chosen method, verify, and say what happened.

use super::caps::{fna_words, format_reaches_siblings};
use super::config::Config;
use super::hidden::{self, HiddenAreas};
use super::method::Method;
use super::overwrite::{Failures, Pattern, Target};
use super::plan::Planned;
use super::progress::Tracker;
use super::verify::VerifyReport;
use super::{ata, nvme, overwrite, scsi, verify};
use crate::blockdev::scan::Disk;
use crate::events::StepEvents;
use crate::inventory::identify::Content;
use crate::root::Root;
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// One lock per NVMe controller: two formats that each reach every
/// namespace must not run at once (the second would abort, and reads of
/// the first's markers would fail while it runs).
pub(super) fn controller_lock(ctrl: &Path) -> std::sync::Arc<Mutex<()>> {
    static LOCKS: std::sync::OnceLock<
        Mutex<std::collections::HashMap<PathBuf, std::sync::Arc<Mutex<()>>>>,
    > = std::sync::OnceLock::new();
    LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(ctrl.to_path_buf())
        .or_default()
        .clone()
}

/// What happened to one disk.
#[derive(Debug, Clone, Serialize)]
pub struct DiskOutcome {
    pub device: String,
    pub disk: Disk,
    pub method: Method,
    pub why: String,
    /// Set for a RAID logical volume: its certificate says logical only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logical_volume: Option<crate::blockdev::controller::LogicalVolume>,
    /// wiped or failed.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub failed_ranges: Vec<overwrite::FailedRange>,
    pub passes: u32,
    pub blank: bool,
    /// Hex seed of the random stream (random method), so anyone can
    /// regenerate and check it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
    /// The keystream algorithm of the random method and why it was picked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<super::stream::Selected>,
    pub verify: VerifyReport,
    pub started: String,
    pub finished: String,
    pub duration_s: f64,
    pub bytes_written: u64,
    pub write_throughput_bps: f64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// HPA/DCO found (and restored) before the erase, or what an NVMe
    /// namespace did not cover and what the erase reached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden_area: Option<HiddenAreas>,
    /// What the plan found on the disk before the erase.
    pub contents_before: Vec<Content>,
}

/// Erase one planned disk. Never panics out: every failure becomes an
/// outcome with `outcome = "failed"`.
pub fn wipe_disk(
    p: &Planned,
    cfg: &Config,
    root: &Root,
    real_allowed: bool,
    parallel: usize,
    events: Option<StepEvents>,
) -> DiskOutcome {
    let tracker = Tracker::new(p.disk.path.display().to_string(), events);
    let started = SystemTime::now();
    let t0 = Instant::now();
    let fails = Mutex::new(Failures::default());
    let mut seed = None;
    let mut stream = None;
    let mut notes = Vec::new();
    let mut written = 0u64;
    let mut write_secs = 0f64;
    let mut hidden_area = None;
    let mut full_size = None;
    let res: Result<VerifyReport> = (|| {
        let mut t = overwrite::open_target(&p.disk.path, real_allowed || p.disk.test_target, true)?;
        check_identity(root, &t.file, &p.disk)?;
        t.set_shape(overwrite::shape_for(parallel));
        if t.size != p.disk.size_bytes {
            notes.push(format!(
                "size from the kernel {} differs from sysfs {}",
                t.size, p.disk.size_bytes
            ));
        }
        if p.caps.ata.is_some() {
            // Before anything is written (markers included): lift an HPA,
            // or fail this disk saying what would stay unerased.
            let lbs = u64::from(t.lbs.max(1));
            let rescan = p.disk.sys_path.join("device/rescan");
            let file = &t.file;
            // libata revalidates in its error handler, after the command
            // that asked for it: wait a little for the size to follow.
            let mut refresh = |want: u64| -> Result<u64> {
                std::fs::write(&rescan, "1")
                    .with_context(|| format!("writing {}", rescan.display()))?;
                let until = Instant::now() + Duration::from_secs(15);
                loop {
                    let now = crate::sys::blk::size_bytes(file).context("BLKGETSIZE64")? / lbs;
                    if now >= want || Instant::now() > until {
                        return Ok(now);
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
            };
            let (h, r) = hidden::restore_before_erase(&t.file, t.size / lbs, &mut refresh);
            hidden_area = h.map(HiddenAreas::Ata);
            r.with_context(|| format!("hidden areas of {}", p.disk.path.display()))?;
            let now = crate::sys::blk::size_bytes(&t.file)
                .with_context(|| format!("BLKGETSIZE64 on {}", p.disk.path.display()))?;
            if now != t.size {
                notes.push(format!(
                    "size {} bytes after the hidden area was restored (was {})",
                    now, t.size
                ));
                t.size = now;
                full_size = Some(now);
            }
        }
        let full = [(0, t.size)];
        let mut overwrite_pass = |pattern: Pattern, label: String, ranges: &[(u64, u64)]| {
            let bytes: u64 = ranges.iter().map(|(a, b)| b - a).sum();
            tracker.phase(&label, bytes);
            let w0 = Instant::now();
            for &(a, b) in ranges {
                overwrite::write_range(&t, a, b, pattern, &tracker, &fails);
            }
            overwrite::flush(&t, &fails);
            write_secs += w0.elapsed().as_secs_f64();
            written += bytes;
        };
        let gave_up = || fails.lock().unwrap_or_else(|e| e.into_inner()).gave_up;
        let report: Result<VerifyReport> = (|| match p.method {
            Method::Zero | Method::Random => {
                let mut last = Pattern::Zero;
                let mut s = [0u8; 32];
                let sel = super::stream::select(cfg.stream, super::stream::cpu_has_aes());
                let alg = sel.algorithm;
                if p.method == Method::Random {
                    stream = Some(sel);
                    getrandom::getrandom(&mut s)
                        .map_err(|e| anyhow!("no randomness for the seed: {e}"))?;
                    seed = Some(hex::encode(s));
                }
                for pass in 1..=cfg.passes {
                    last = if p.method == Method::Random {
                        Pattern::Stream { seed: s, pass, alg }
                    } else {
                        Pattern::Zero
                    };
                    overwrite_pass(last, format!("write pass {pass}/{}", cfg.passes), &full);
                    if gave_up() {
                        bail!("gave up after {} failed ranges or {} unwritable blocks; the disk looks dead", overwrite::MAX_FAILED_RANGES, overwrite::MAX_FAILED_BLOCKS);
                    }
                }
                Ok(verify::verify_pattern(
                    &t, &full, cfg.verify, last, &tracker, &fails,
                ))
            }
            Method::Quick => {
                let ranges = overwrite::quick_ranges(t.size);
                overwrite_pass(Pattern::Zero, "signature erase".into(), &ranges);
                Ok(verify::verify_pattern(
                    &t,
                    &ranges,
                    cfg.verify,
                    Pattern::Zero,
                    &tracker,
                    &fails,
                ))
            }
            m => {
                let ctrl = p
                    .caps
                    .nvme_controller
                    .as_deref()
                    .filter(|_| format_reaches_siblings(m, &p.caps))
                    .map(controller_lock);
                let _one_format_at_a_time = ctrl
                    .as_ref()
                    .map(|l| l.lock().unwrap_or_else(|e| e.into_inner()));
                if format_reaches_siblings(m, &p.caps) {
                    notes.push(format!(
                        "Format NVM reaches every namespace of the controller (FNA {}): also erases {}",
                        fna_words(p.caps.nvme.as_ref()),
                        p.caps.nvme_siblings.join(", ")
                    ));
                }
                if matches!(m, Method::NvmeSanitizeCrypto | Method::NvmeSanitizeBlock) {
                    // A sanitize still running from before a reboot aborts
                    // the marker writes: let it end first.
                    nvme::await_running_sanitize(
                        &t.file,
                        Duration::from_secs(1),
                        &tracker,
                        &mut notes,
                    )
                    .with_context(|| format!("{} on {}", m.name(), p.disk.path.display()))?;
                }
                if scsi::service_action(m).is_some() {
                    scsi::await_running(&t.file, Duration::from_secs(2), &tracker, &mut notes)
                        .with_context(|| format!("{} on {}", m.name(), p.disk.path.display()))?;
                }
                let markers = verify::place_markers(&t, cfg.verify);
                tracker.phase(m.name(), 0);
                firmware_erase(m, &t, &p.disk, &tracker, &mut notes)?;
                let found = verify::verify_markers(
                    &t,
                    &markers,
                    m.content_indeterminate(),
                    cfg.verify,
                    &fails,
                );
                if cfg.blank {
                    overwrite_pass(Pattern::Zero, "blank (zeros)".into(), &full);
                    let mut z = verify::verify_pattern(
                        &t,
                        &full,
                        cfg.verify,
                        Pattern::Zero,
                        &tracker,
                        &fails,
                    );
                    // The firmware erase is judged before the blank pass
                    // hides what it left.
                    if found.result == "failed" {
                        z.result = "failed".into();
                    }
                    z.note = found.note;
                    return Ok(z);
                }
                Ok(found)
            }
        })();
        let report = report?;
        // Whatever the method: no md, LVM or partition signature may be
        // left, at either end of the disk.
        match super::residue::check(&t) {
            Ok(left) if left.is_empty() => {
                notes.push("no md, LVM or partition-table signature left at either end".into())
            }
            Ok(left) => bail!("after the erase, still on the disk: {}", left.join(", ")),
            Err(e) => bail!("{e}"),
        }
        Ok(report)
    })();
    let finished = SystemTime::now();
    if matches!(p.method, Method::Zero | Method::Random | Method::Quick) {
        // The overwrite and its verification ran without io_uring.
        notes.extend(super::ring::threaded_note());
    }
    if let Some(HiddenAreas::Nvme(c)) = &p.caps.hidden {
        let mut c = c.clone();
        let all = p.caps.nvme.as_ref().is_some_and(|n| n.format_reaches_all());
        c.erase_reach = Some(hidden::nvme_reach(p.method, all, &c));
        hidden_area = Some(HiddenAreas::Nvme(c));
    }
    let mut disk = p.disk.clone();
    if let Some(n) = full_size {
        disk.size_bytes = n;
    }
    let failed_ranges = fails.into_inner().unwrap_or_else(|e| e.into_inner()).ranges;
    let (verify, mut error) = match res {
        Ok(v) => (v, None),
        Err(e) => (
            VerifyReport {
                method: "none".into(),
                result: "skipped".into(),
                ..Default::default()
            },
            Some(format!("{e:#}")),
        ),
    };
    if error.is_none() && !failed_ranges.is_empty() {
        let n: u64 = failed_ranges.iter().map(|r| r.lba_count).sum();
        error = Some(format!(
            "{} range(s), {n} logical block(s) failed: {}",
            failed_ranges.len(),
            failed_ranges
                .iter()
                .take(8)
                .map(|r| format!("{} LBA {}+{} ({})", r.op, r.lba_start, r.lba_count, r.error))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if error.is_none() && verify.result == "failed" {
        error = Some(match &verify.note {
            Some(n) => format!("verification failed: {n}"),
            None => format!(
                "verification failed: {} mismatching range(s)",
                verify.mismatches
            ),
        });
    }
    DiskOutcome {
        device: p.disk.path.display().to_string(),
        disk,
        method: p.method,
        why: p.why.clone(),
        logical_volume: p.caps.logical_volume.clone(),
        outcome: outcome_of(p.method, error.is_some(), &verify).into(),
        error,
        failed_ranges,
        passes: if p.method.is_firmware() {
            1
        } else {
            cfg.passes
        },
        blank: cfg.blank && !matches!(p.method, Method::Zero | Method::Random | Method::Quick),
        seed,
        stream,
        verify,
        started: crate::events::rfc3339(started),
        finished: crate::events::rfc3339(finished),
        duration_s: t0.elapsed().as_secs_f64(),
        bytes_written: written,
        write_throughput_bps: if write_secs > 0.0 {
            written as f64 / write_secs
        } else {
            0.0
        },
        notes,
        hidden_area,
        contents_before: p.contents.clone(),
    }
}

/// Right after open and before any write: the opened device must still be
/// the planned disk. Its number (fstat's st_rdev) must be the planned
/// `major:minor`, and the disk now at that number must have the planned
/// serial, WWN and (loop devices) backing file. Between plan and open a
/// disk can be pulled and another take its name, or a loop device be
/// re-attached to another file; either fails this disk, untouched.
pub fn check_identity(root: &Root, f: &std::fs::File, d: &Disk) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let path = d.path.display();
    let rdev = f
        .metadata()
        .with_context(|| format!("fstat of {path}"))?
        .rdev();
    let now = format!("{}:{}", libc::major(rdev), libc::minor(rdev));
    if now != d.devno {
        bail!(
            "{path} is now device {now}, not {} as planned: the disk was replaced or renumbered since the plan; nothing written",
            d.devno
        );
    }
    let cur = crate::blockdev::scan::disk_at(root, &now).ok_or_else(|| {
        anyhow!("cannot read /sys/dev/block/{now} to confirm {path} is the planned disk; nothing written")
    })?;
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
    for (what, planned, found) in [
        ("serial", &d.serial, &cur.serial),
        ("WWN", &d.wwn, &cur.wwn),
        ("backing file", &d.backing_file, &cur.backing_file),
    ] {
        if planned != found {
            bail!(
                "{path} ({now}) now has {what} {}, not {} as planned: the disk was replaced since the plan; nothing written",
                show(found),
                show(planned)
            );
        }
    }
    Ok(())
}

/// What a certificate may claim. `wiped` only for a Clear or Purge
/// method whose verification ran and passed; a Clear/Purge with
/// verification off (or inconclusive) is `wiped-unverified`; the quick
/// signature wipe and a discard are not sanitization at all and say so.
pub fn outcome_of(method: Method, failed: bool, verify: &VerifyReport) -> &'static str {
    if failed {
        return "failed";
    }
    match method {
        Method::Quick => "signatures-erased",
        Method::Discard => "discarded",
        _ if verify.result == "passed" => "wiped",
        _ => "wiped-unverified",
    }
}

pub(super) fn firmware_erase(
    m: Method,
    t: &Target,
    d: &Disk,
    tracker: &Tracker,
    notes: &mut Vec<String>,
) -> Result<()> {
    match m {
        Method::NvmeSanitizeCrypto
        | Method::NvmeSanitizeBlock
        | Method::NvmeFormatCrypto
        | Method::NvmeFormat => nvme::erase(m, t, tracker, notes)
            .with_context(|| format!("{} on {}", m.name(), d.path.display())),
        Method::AtaSanitizeCrypto
        | Method::AtaSanitizeBlock
        | Method::AtaSanitizeOverwrite
        | Method::AtaSecureErase => ata::erase(m, t, tracker, notes)
            .with_context(|| format!("{} on {}", m.name(), d.path.display())),
        Method::ScsiSanitizeCrypto | Method::ScsiSanitizeBlock | Method::ScsiSanitizeOverwrite => {
            scsi::sanitize(&t.file, m, Duration::from_secs(2), tracker, notes)
                .with_context(|| format!("{} on {}", m.name(), d.path.display()))
        }
        Method::Discard => {
            match crate::sys::blk::discard(&t.file, 0, t.size, true) {
                Ok(()) => notes.push("BLKSECDISCARD accepted".into()),
                Err(e) => {
                    notes.push(format!("BLKSECDISCARD refused ({e}); using BLKDISCARD"));
                    crate::sys::blk::discard(&t.file, 0, t.size, false)
                        .with_context(|| format!("BLKDISCARD on {}", d.path.display()))?;
                }
            }
            tracker.fraction(1.0);
            Ok(())
        }
        _ => bail!("{} is not a firmware method", m.name()),
    }
}

pub(super) fn wipe_disk_panicked(p: &Planned) -> DiskOutcome {
    let now = crate::events::rfc3339_now();
    DiskOutcome {
        device: p.disk.path.display().to_string(),
        disk: p.disk.clone(),
        method: p.method,
        why: p.why.clone(),
        logical_volume: p.caps.logical_volume.clone(),
        outcome: "failed".into(),
        error: None,
        failed_ranges: vec![],
        passes: 0,
        blank: false,
        seed: None,
        stream: None,
        verify: VerifyReport::default(),
        started: now.clone(),
        finished: now,
        duration_s: 0.0,
        bytes_written: 0,
        write_throughput_bps: 0.0,
        notes: vec![],
        hidden_area: None,
        contents_before: p.contents.clone(),
    }
}
