//! What a disk can do, probed read-only before the plan is shown: NVMe
//! sanitize and format abilities (and the namespaces a format reaches),
//! ATA security and sanitize, SCSI SANITIZE, discard.

use super::method::Method;
use super::{ata, hidden, nvme, scsi};
use crate::blockdev::scan::{Disk, Transport};
use crate::root::Root;
use serde::Serialize;
use std::path::PathBuf;

/// What a disk can do, probed read-only before the plan is shown.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Caps {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nvme: Option<nvme::NvmeCaps>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ata: Option<ata::AtaCaps>,
    /// A native SCSI (SAS) disk's SANITIZE service actions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scsi: Option<scsi::ScsiCaps>,
    /// A RAID controller's logical volume (`speediso.wipe.logical_volumes=1`):
    /// the controller, and why it is one. Set by `plan`, never probed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logical_volume: Option<crate::blockdev::controller::LogicalVolume>,
    /// The queue accepts discards (`queue/discard_max_bytes` > 0).
    pub discard: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_error: Option<String>,
    /// Other namespaces of the same NVMe controller. Sanitize, and a
    /// format whose secure erase applies to all namespaces, would erase
    /// them too, so those methods are only used on single-namespace
    /// controllers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nvme_siblings: Vec<String>,
    /// The siblings this run does not erase, each with why (excluded,
    /// mounted, not named...). Filled in by `plan`, which knows the
    /// selection; a format that reaches every namespace is refused while
    /// one is listed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nvme_siblings_kept: Vec<String>,
    /// An ATA disk's HPA and DCO, or what an NVMe namespace does not
    /// cover (`hidden`), read-only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden: Option<hidden::HiddenAreas>,
    /// The controller (its sysfs device), so formats that reach every
    /// namespace run one at a time.
    #[serde(skip)]
    pub nvme_controller: Option<PathBuf>,
}

/// Whether `m` on this disk also erases the controller's other namespaces
/// through a format that reaches all of them (FNA bit 0 or 1).
pub(super) fn format_reaches_siblings(m: Method, caps: &Caps) -> bool {
    matches!(m, Method::NvmeFormat | Method::NvmeFormatCrypto)
        && !caps.nvme_siblings.is_empty()
        && caps.nvme.as_ref().is_some_and(|n| n.format_reaches_all())
}

/// Block devices under `root` whose `device` link resolves to the same
/// controller as `d`'s.
pub(super) fn controller_siblings(root: &Root, d: &Disk) -> Vec<String> {
    let Ok(mine) = std::fs::canonicalize(d.sys_path.join("device")) else {
        return vec![];
    };
    let mut v: Vec<String> = std::fs::read_dir(root.at("/sys/block"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| *n != d.name)
                .filter(|n| {
                    std::fs::canonicalize(root.at("/sys/block").join(n).join("device"))
                        .is_ok_and(|p| p == mine)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Probe `d` read-only. Only called for disks that passed selection, and
/// only on the real root: a fixture's /dev names are not this machine's.
pub fn probe(root: &Root, d: &Disk) -> Caps {
    let mut c = Caps {
        discard: std::fs::read_to_string(d.sys_path.join("queue/discard_max_bytes"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0),
        ..Default::default()
    };
    if d.transport == Transport::Nvme {
        c.nvme_siblings = controller_siblings(root, d);
        c.nvme_controller = std::fs::canonicalize(d.sys_path.join("device")).ok();
    }
    if !root.is_system() {
        return c;
    }
    match d.transport {
        Transport::Nvme => match nvme::probe(&d.path) {
            Ok(n) => {
                c.nvme = Some(n);
                if let Ok(f) = std::fs::File::open(&d.path) {
                    c.hidden = Some(hidden::HiddenAreas::Nvme(hidden::probe_nvme(&f)));
                }
            }
            Err(e) => c.probe_error = Some(format!("{e:#}")),
        },
        Transport::Scsi if native_scsi(d) => match scsi::probe(&d.path) {
            Ok(s) => c.scsi = Some(s),
            Err(e) => c.probe_error = Some(format!("{e:#}")),
        },
        Transport::Ata | Transport::Scsi => match ata::probe(&d.path) {
            Ok(a) => {
                c.ata = Some(a);
                let lbs = u64::from(d.logical_block_size.max(1));
                c.hidden = std::fs::File::open(&d.path)
                    .ok()
                    .and_then(|f| hidden::probe_ata(&f, d.size_bytes / lbs).ok())
                    .map(hidden::HiddenAreas::Ata);
            }
            Err(e) => c.probe_error = Some(format!("{e:#}")),
        },
        _ => {}
    }
    c
}

/// A SCSI disk that is not an ATA disk behind a SAT layer: a SATL reports
/// the vendor "ATA" (SAT-4 12.4.2), anything else speaks SCSI itself.
pub(super) fn native_scsi(d: &Disk) -> bool {
    d.transport == Transport::Scsi
        && !d
            .vendor
            .as_deref()
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("ATA"))
}

pub(super) fn fna_words(n: Option<&nvme::NvmeCaps>) -> &'static str {
    match n {
        Some(n) if n.format_erases_all_namespaces => {
            "bit 1: its secure erase applies to all namespaces"
        }
        Some(n) if n.format_all_namespaces => "bit 0: the format applies to all namespaces",
        _ => "per namespace",
    }
}
