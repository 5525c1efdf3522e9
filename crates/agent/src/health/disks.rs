//! Disk health from the disks' own logs (`smart`): NVMe SMART / Health
//! (critical warning bits, media and data integrity errors, spare against
//! its threshold, percentage used, temperature) and the newest Device
//! Self-test; ATA SMART attributes against their thresholds, reallocated,
//! pending and uncorrectable sectors, and the newest self-test. Each finding
//! names the disk by serial, then its node and model.
//!
//! Disks asked: NVMe namespaces and `sd*`/`hd*` disks (ATA, or SCSI that
//! may be SATA behind a SAS HBA: those answer ATA PASS-THROUGH). A SCSI
//! disk that does not is an info line (SCSI log pages are not read);
//! virtio, loop, USB and the like have no SMART to ask.

use super::smart::{self, Logs};
use super::{Finding, Out, Severity, Thresholds};
use crate::blockdev::scan::{Disk, Transport};
use crate::root::Root;

const CHECK: &str = "disk";

/// How a finding names the disk: serial first (what a technician reads
/// off the label), then the node and model.
pub fn component(d: &Disk) -> String {
    let mut s = d.serial.clone().unwrap_or_else(|| d.name.clone());
    let mut extra = vec![d.name.clone()];
    if d.serial.is_none() {
        extra.clear();
    }
    if let Some(m) = &d.model {
        extra.push(m.clone());
    }
    if !extra.is_empty() {
        s.push_str(&format!(" ({})", extra.join(", ")));
    }
    s
}

/// The disks with SMART to ask, as `blockdev::scan` lists them.
pub fn smart_disks(root: &Root) -> Vec<Disk> {
    super::expect::counted_disks(root)
        .into_iter()
        .filter(|d| {
            matches!(
                d.transport,
                Transport::Nvme | Transport::Sata | Transport::Ata | Transport::Scsi
            )
        })
        .collect()
}

pub fn check(root: &Root, t: &Thresholds) -> Out {
    let mut out = Out::default();
    let disks = smart_disks(root);
    if disks.is_empty() {
        out.skipped = true;
        out.summary = "no NVMe, SATA or SAS disks".into();
        return out;
    }
    let mut read = Vec::new();
    for d in &disks {
        let comp = component(d);
        let logs = match Logs::open(root, &d.name) {
            Ok(l) => l,
            Err(e) => {
                // A disk that vanished since the scan is not a finding.
                if root.at(&format!("/sys/block/{}", d.name)).exists() {
                    out.findings.push(Finding::unreadable(
                        CHECK,
                        comp,
                        &d.path.to_string_lossy(),
                        &e,
                    ));
                }
                continue;
            }
        };
        let (what, mut f) = match d.transport {
            Transport::Nvme => ("NVMe log", nvme(&logs, &comp, t)),
            _ => (
                "ATA SMART",
                ata(&logs, &comp, d.transport == Transport::Scsi, t),
            ),
        };
        read.push(format!("{} ({what})", d.name));
        out.findings.append(&mut f);
    }
    out.summary = format!("{} disk(s): {}", disks.len(), read.join(", "));
    out
}

fn nvme(logs: &Logs, comp: &str, t: &Thresholds) -> Vec<Finding> {
    let src = format!("{} (NVMe log 02h)", logs.path());
    let mut v = Vec::new();
    let h = match logs.nvme_log(smart::LID_SMART, smart::SMART_LOG_LEN) {
        Ok(b) => smart::parse_nvme_health(&b),
        Err(e) => {
            v.push(Finding::unreadable(CHECK, comp, &src, &e));
            return v;
        }
    };
    let f = |sev, msg: String, ev: String, thr: &str| {
        Finding::new(sev, CHECK, comp, msg)
            .evidence(ev)
            .source(src.clone())
            .threshold(thr)
    };
    if h.critical_warning != 0 {
        v.push(f(
            Severity::Fail,
            format!(
                "NVMe critical warning: {}",
                smart::critical_warning_words(h.critical_warning).join(", ")
            ),
            format!(
                "critical_warning = {:#04x}, available_spare = {}% (threshold {}%), temperature = {} °C",
                h.critical_warning, h.available_spare, h.available_spare_threshold, h.temperature_c
            ),
            "critical_warning = 0",
        ));
    }
    if h.media_errors > 0 {
        v.push(f(
            Severity::Fail,
            format!("{} media and data integrity errors", h.media_errors),
            format!("media_errors = {}", h.media_errors),
            "> 0",
        ));
    }
    if h.available_spare < h.available_spare_threshold && h.critical_warning & 1 == 0 {
        v.push(f(
            Severity::Fail,
            format!(
                "available spare {}% below its threshold {}%",
                h.available_spare, h.available_spare_threshold
            ),
            format!("available_spare = {}", h.available_spare),
            &format!(">= {}%", h.available_spare_threshold),
        ));
    }
    if h.percentage_used as u64 >= t.max_percentage_used {
        v.push(f(
            Severity::Warn,
            format!("{}% of its rated endurance used", h.percentage_used),
            format!("percentage_used = {}", h.percentage_used),
            &format!("< {}%", t.max_percentage_used),
        ));
    }
    // The temperature against the controller's own warning and critical
    // thresholds (Identify Controller WCTEMP, CCTEMP; 0 = not reported).
    if let Ok(id) = logs.nvme_identify() {
        let (warn, crit) = smart::nvme_temp_thresholds(&id);
        let t = h.temperature_c;
        let over = match (crit, warn) {
            (Some(c), _) if t >= c => Some((Severity::Fail, "critical", c)),
            (_, Some(w)) if t >= w => Some((Severity::Warn, "warning", w)),
            _ => None,
        };
        if let Some((sev, what, limit)) = over {
            v.push(
                Finding::new(
                    sev,
                    CHECK,
                    comp,
                    format!("temperature {t} °C at or above its {what} threshold"),
                )
                .evidence(format!("composite temperature = {t} °C"))
                .source(format!(
                    "{} (NVMe log 02h, Identify Controller)",
                    logs.path()
                ))
                .threshold(format!("< {limit} °C")),
            );
        }
    }
    // The self-test log is optional (Device Self-test is optional).
    if let Ok(b) = logs.nvme_log(smart::LID_SELF_TEST, smart::SELF_TEST_LOG_LEN) {
        let st = smart::parse_nvme_self_tests(&b);
        if let Some(e) = st.newest.filter(|e| e.outcome == "failed") {
            v.push(self_test_failed(comp, &e, logs.path(), "NVMe log 06h"));
        }
    }
    v
}

fn self_test_failed(comp: &str, e: &smart::SelfTestEntry, path: &str, log: &str) -> Finding {
    let lba = e
        .failing_lba
        .map(|l| format!(", first failing LBA {l}"))
        .unwrap_or_default();
    Finding::new(
        Severity::Fail,
        CHECK,
        comp,
        format!("last {} self-test failed: {}{lba}", e.kind, e.result),
    )
    .evidence(format!(
        "at power-on hour {}",
        e.power_on_hours.unwrap_or_default()
    ))
    .source(format!("{path} ({log})"))
    .threshold("passed")
}

/// Raw counts of sectors the drive gave up on or replaced.
const BAD_SECTOR_ATTRS: &[u8] = &[5, 187, 197, 198];

fn ata(logs: &Logs, comp: &str, maybe_not_ata: bool, t: &Thresholds) -> Vec<Finding> {
    let src = format!("{} (ATA SMART)", logs.path());
    let mut v = Vec::new();
    let data = match logs.ata_smart(smart::SMART_READ_DATA, 0) {
        Ok(b) => b,
        Err(e) if maybe_not_ata => {
            v.push(
                Finding::new(
                    Severity::Info,
                    CHECK,
                    comp,
                    "no ATA SMART: a SCSI disk (its SCSI log pages are not read)",
                )
                .evidence(e)
                .source(src),
            );
            return v;
        }
        Err(e) => {
            v.push(Finding::unreadable(CHECK, comp, &src, &e));
            return v;
        }
    };
    let thr = logs.ata_smart(smart::SMART_READ_THRESHOLDS, 0).ok();
    for a in smart::parse_ata_attrs(&data, thr.as_deref()) {
        let name = if a.name.is_empty() {
            format!("attribute {}", a.id)
        } else {
            format!("{} ({})", a.name, a.id)
        };
        // Threshold 0 means "never fails"; FDh/FEh/FFh are not thresholds.
        if a.threshold != 0 && a.threshold < 0xFD && a.value <= a.threshold {
            let (sev, kind) = if a.prefailure {
                (Severity::Fail, "pre-failure")
            } else {
                (Severity::Warn, "old-age")
            };
            v.push(
                Finding::new(
                    sev,
                    CHECK,
                    comp,
                    format!("{kind} attribute {name} at or below its threshold"),
                )
                .evidence(format!(
                    "value {} (worst {}), raw {}",
                    a.value, a.worst, a.raw
                ))
                .source(src.clone())
                .threshold(format!("> {}", a.threshold)),
            );
        } else if BAD_SECTOR_ATTRS.contains(&a.id) && a.raw > t.max_bad_sectors {
            v.push(
                Finding::new(Severity::Warn, CHECK, comp, format!("{name}: {}", a.raw))
                    .evidence(format!("raw {} (value {})", a.raw, a.value))
                    .source(src.clone())
                    .threshold(format!("<= {}", t.max_bad_sectors)),
            );
        }
    }
    let (status, left) = smart::ata_self_test_status(&data);
    if let Ok(b) = logs.ata_smart(smart::SMART_READ_LOG, 0x06) {
        if let Some(e) = smart::parse_ata_self_test_log(&b).filter(|e| e.outcome == "failed") {
            v.push(self_test_failed(
                comp,
                &e,
                logs.path(),
                "SMART self-test log",
            ));
        }
    } else if smart::ata_status_words(status).0 == "failed" {
        let (_, words) = smart::ata_status_words(status);
        v.push(
            Finding::new(
                Severity::Fail,
                CHECK,
                comp,
                format!("last self-test failed: {words}"),
            )
            .evidence(format!(
                "self-test execution status {status} ({left}0% left)"
            ))
            .source(src)
            .threshold("passed"),
        );
    }
    v
}
