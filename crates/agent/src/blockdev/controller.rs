//! Which storage controller a disk sits on (PCI function, driver, SCSI
//! host and address), the controller's mode, and whether the "disk" is a
//! RAID controller's logical volume rather than a drive. Pure reads of
//! sysfs under the root; the inventory lists controllers with it and the
//! wipe refuses (or certifies as logical only) what it calls a volume.

use super::scan::Disk;
use crate::root::{read_trim, Root};
use serde::Serialize;

/// Drivers of controllers that build logical volumes (RAID personality).
pub const RAID_DRIVERS: &[&str] = &["megaraid_sas", "hpsa", "smartpqi", "aacraid"];
/// LSI/Broadcom SAS HBAs; with Integrated RAID firmware they expose
/// volumes on their RAID channel.
const MPT_DRIVERS: &[&str] = &["mpt3sas", "mpt2sas"];

/// A disk's place on its controller.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Attachment {
    /// The controller's PCI function (`0000:03:00.0`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pci_address: Option<String>,
    /// The PCI function's driver (`megaraid_sas`, `ahci`, `virtio-pci`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pci_driver: Option<String>,
    /// The SCSI host (`host0`) and its driver (`proc_name`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scsi_host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_driver: Option<String>,
    /// `H:C:T:L`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scsi_address: Option<String>,
    #[serde(skip)]
    pub channel: Option<u32>,
}

impl Attachment {
    /// The driver that speaks for the disk: the SCSI host's, else the
    /// PCI function's.
    pub fn driver(&self) -> Option<&str> {
        self.host_driver.as_deref().or(self.pci_driver.as_deref())
    }

    /// "megaraid_sas (host0, PCI 0000:03:00.0)".
    pub fn describe(&self) -> String {
        let mut at = vec![];
        if let Some(h) = &self.scsi_host {
            at.push(h.clone());
        }
        if let Some(p) = &self.pci_address {
            at.push(format!("PCI {p}"));
        }
        format!(
            "{}{}",
            self.driver().unwrap_or("unknown controller"),
            if at.is_empty() {
                String::new()
            } else {
                format!(" ({})", at.join(", "))
            }
        )
    }
}

/// A RAID controller's logical volume: where it sits and why it is one.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LogicalVolume {
    pub controller: Attachment,
    pub evidence: String,
}

fn is_pci_address(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 12 && b[b.len() - 2] == b'.' && s.matches(':').count() == 2
}

/// Where `d` sits, from its resolved sysfs path.
pub fn attachment(root: &Root, d: &Disk) -> Attachment {
    let real = std::fs::canonicalize(&d.sys_path).unwrap_or_else(|_| d.sys_path.clone());
    let parts: Vec<String> = real
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .collect();
    let mut a = Attachment::default();
    let mut prefix = std::path::PathBuf::new();
    for p in &parts {
        prefix.push(p);
        if is_pci_address(p) {
            a.pci_address = Some(p.clone());
            a.pci_driver = std::fs::read_link(prefix.join("driver"))
                .ok()
                .and_then(|l| l.file_name().map(|n| n.to_string_lossy().to_string()));
        } else if p.starts_with("host") && p[4..].bytes().all(|b| b.is_ascii_digit()) && p.len() > 4
        {
            a.host_driver = read_trim(&root.at("/sys/class/scsi_host").join(p).join("proc_name"));
            a.scsi_host = Some(p.clone());
        } else if p.split(':').count() == 4 && p.split(':').all(|x| x.parse::<u32>().is_ok()) {
            a.channel = p.split(':').nth(1).and_then(|c| c.parse().ok());
            a.scsi_address = Some(p.clone());
        }
    }
    a
}

/// Why a disk on `driver` at SCSI `channel` with this INQUIRY vendor and
/// model is a logical volume, or `None` for a drive. Channels are the
/// drivers' own: megaraid_sas puts system PDs (JBOD) on channels 0-1 and
/// logical drives on 2-3 (MEGASAS_MAX_PD_CHANNELS); hpsa and smartpqi put
/// RAID volumes on bus 1 (and external ones on 2/3), physical drives on
/// 0; aacraid's containers are on channel 0; mpt2sas/mpt3sas IR volumes
/// on channel 1 (RAID_CHANNEL). The model names controllers give their
/// volumes ("PERC H730", "LOGICAL VOLUME", "MR9361-8i") decide where the
/// driver is not known.
pub fn lv_evidence(
    driver: Option<&str>,
    channel: Option<u32>,
    vendor: Option<&str>,
    model: Option<&str>,
) -> Option<String> {
    let model_u = model.unwrap_or("").trim().to_ascii_uppercase();
    let vm = format!(
        "{} {}",
        vendor.unwrap_or("").trim(),
        model.unwrap_or("").trim()
    )
    .trim()
    .to_string();
    let by_channel = match (driver, channel) {
        (Some("megaraid_sas"), Some(c)) if c >= 2 => Some(format!(
            "megaraid_sas logical drive (channel {c}; pass-through drives are on channels 0-1)"
        )),
        (Some("megaraid_sas"), Some(_)) => return None,
        (Some(d @ ("hpsa" | "smartpqi")), Some(c)) if (1..=3).contains(&c) => Some(format!(
            "{d} RAID volume (bus {c}; physical drives are on bus 0)"
        )),
        (Some("hpsa" | "smartpqi"), Some(0)) if !model_u.contains("LOGICAL VOLUME") => return None,
        (Some("aacraid"), Some(0)) => Some("aacraid container (channel 0)".to_string()),
        (Some("aacraid"), Some(_)) => return None,
        (Some(d), Some(1)) if MPT_DRIVERS.contains(&d) => {
            Some(format!("{d} Integrated RAID volume (channel 1)"))
        }
        (Some(d), Some(_)) if MPT_DRIVERS.contains(&d) => return None,
        _ => None,
    };
    if let Some(e) = by_channel {
        return Some(format!("{e}: {vm}"));
    }
    let volume_model = model_u.contains("LOGICAL VOLUME")
        || model_u.starts_with("PERC ")
        || model_u.starts_with("MR9")
        || model_u.contains("MEGARAID");
    volume_model.then(|| format!("a RAID controller's volume by its model: {vm}"))
}

/// `Some` when `d` is a RAID controller's logical volume.
pub fn logical_volume(root: &Root, d: &Disk) -> Option<LogicalVolume> {
    if !matches!(
        d.transport,
        super::scan::Transport::Scsi | super::scan::Transport::Other
    ) {
        return None;
    }
    let a = attachment(root, d);
    let evidence = lv_evidence(
        a.driver(),
        a.channel,
        d.vendor.as_deref(),
        d.model.as_deref(),
    )?;
    Some(LogicalVolume {
        controller: a,
        evidence,
    })
}

/// A controller's mode: `raid` for RAID personalities (and an MPT HBA
/// with IR volumes), `hba` for SAS/SCSI HBAs that pass drives through,
/// `ahci`, `nvme`, `ide`, `ata`, `other`, from its driver and PCI class
/// (base class 01, subclass in `class_id`'s last two digits).
pub fn mode(class_id: &str, driver: Option<&str>, any_volume: bool) -> &'static str {
    match driver {
        Some(d) if RAID_DRIVERS.contains(&d) => return "raid",
        Some(d) if MPT_DRIVERS.contains(&d) => return if any_volume { "raid" } else { "hba" },
        Some("ahci") => return "ahci",
        Some("nvme") => return "nvme",
        _ => {}
    }
    match class_id {
        "0104" => "raid",
        "0100" | "0107" => {
            if any_volume {
                "raid"
            } else {
                "hba"
            }
        }
        "0106" => "ahci",
        "0108" => "nvme",
        "0101" => "ide",
        "0105" => "ata",
        _ => "other",
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::blockdev::scan::{self, Transport};

    /// A host with a MegaRAID (PERC H730) in RAID mode at 0000:03:00.0,
    /// SCSI host0: logical drive sda on channel 2, a JBOD pass-through
    /// drive sdb on channel 0; and an AHCI SATA disk sdc.
    pub(crate) fn megaraid_host(r: &Root) {
        let pci = "pci0000:00/0000:00:02.0/0000:03:00.0";
        let files_lv = [
            ("device/vendor", "DELL    \n"),
            ("device/model", "PERC H730 Mini  \n"),
            ("device/scsi_device/x", ""),
            ("dev", "8:0\n"),
        ];
        scan::tests::disk(
            r,
            &format!("{pci}/host0/target0:2:0/0:2:0:0/block"),
            "sda",
            &files_lv,
        );
        let files_pd = [
            ("device/vendor", "SEAGATE \n"),
            ("device/model", "ST1200MM0099    \n"),
            ("device/scsi_device/x", ""),
            ("dev", "8:16\n"),
        ];
        scan::tests::disk(
            r,
            &format!("{pci}/host0/target0:0:4/0:0:4:0/block"),
            "sdb",
            &files_pd,
        );
        let files_sata = [
            ("device/vendor", "ATA     \n"),
            ("device/model", "Samsung SSD 860 \n"),
            ("device/scsi_device/x", ""),
            ("dev", "8:32\n"),
        ];
        scan::tests::disk(
            r,
            "pci0000:00/0000:00:1f.2/ata1/host1/target1:0:0/1:0:0:0/block",
            "sdc",
            &files_sata,
        );
        for (h, name) in [("host0", "megaraid_sas"), ("host1", "ahci")] {
            let d = r.at("/sys/class/scsi_host").join(h);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join("proc_name"), format!("{name}\n")).unwrap();
        }
        // PCI functions with their class and driver links.
        for (addr, path, class, drv) in [
            ("0000:03:00.0", pci, "0x010400", "megaraid_sas"),
            (
                "0000:00:1f.2",
                "pci0000:00/0000:00:1f.2",
                "0x010601",
                "ahci",
            ),
        ] {
            let dev = r.at("/sys/devices").join(path);
            std::fs::create_dir_all(&dev).unwrap();
            std::fs::write(dev.join("class"), format!("{class}\n")).unwrap();
            std::fs::write(dev.join("vendor"), "0x1000\n").unwrap();
            std::fs::write(dev.join("device"), "0x005d\n").unwrap();
            let drvdir = r.at("/sys/bus/pci/drivers").join(drv);
            std::fs::create_dir_all(&drvdir).unwrap();
            std::os::unix::fs::symlink(&drvdir, dev.join("driver")).unwrap();
            std::fs::create_dir_all(r.at("/sys/bus/pci/devices")).unwrap();
            std::os::unix::fs::symlink(&dev, r.at("/sys/bus/pci/devices").join(addr)).unwrap();
        }
    }

    #[test]
    fn a_megaraid_volume_is_one_and_its_jbod_drive_is_a_disk() {
        let t = tempfile::tempdir().unwrap();
        let r = &Root::new(t.path());
        megaraid_host(r);
        let sda = scan::read(r, "sda");
        assert_eq!(sda.transport, Transport::Scsi);
        let lv = logical_volume(r, &sda).expect("sda is a logical drive");
        assert_eq!(lv.controller.pci_address.as_deref(), Some("0000:03:00.0"));
        assert_eq!(lv.controller.pci_driver.as_deref(), Some("megaraid_sas"));
        assert_eq!(lv.controller.scsi_address.as_deref(), Some("0:2:0:0"));
        assert_eq!(
            lv.controller.describe(),
            "megaraid_sas (host0, PCI 0000:03:00.0)"
        );
        assert!(lv.evidence.contains("channel 2"), "{}", lv.evidence);
        assert!(
            lv.evidence.contains("DELL PERC H730 Mini"),
            "{}",
            lv.evidence
        );
        assert_eq!(logical_volume(r, &scan::read(r, "sdb")), None);
        assert_eq!(logical_volume(r, &scan::read(r, "sdc")), None);
    }

    #[test]
    fn volumes_by_driver_channel_and_model() {
        type Row<'a> = (
            Option<&'a str>,
            Option<u32>,
            &'a str,
            &'a str,
            Option<&'a str>,
        );
        let table: &[Row] = &[
            (
                Some("megaraid_sas"),
                Some(2),
                "AVAGO",
                "MR9361-8i",
                Some("channel 2"),
            ),
            (
                Some("megaraid_sas"),
                Some(0),
                "HGST",
                "HUC101818CS4200",
                None,
            ),
            (Some("hpsa"), Some(1), "HP", "LOGICAL VOLUME", Some("bus 1")),
            (Some("hpsa"), Some(0), "HP", "EG0600FBVFP", None),
            (
                Some("smartpqi"),
                Some(0),
                "HPE",
                "LOGICAL VOLUME",
                Some("by its model"),
            ),
            (
                Some("aacraid"),
                Some(0),
                "Adaptec",
                "RAID1",
                Some("container"),
            ),
            (Some("aacraid"), Some(1), "SEAGATE", "ST4000NM0023", None),
            (
                Some("mpt3sas"),
                Some(1),
                "LSI",
                "Logical Volume",
                Some("Integrated RAID"),
            ),
            (Some("mpt3sas"), Some(0), "SEAGATE", "ST4000NM0023", None),
            (Some("virtio_scsi"), Some(0), "QEMU", "QEMU HARDDISK", None),
            (None, None, "DELL", "PERC H730P Adp", Some("by its model")),
            (None, None, "LSI", "MR9271-8i", Some("by its model")),
            (None, None, "SEAGATE", "ST4000NM0023", None),
        ];
        for (drv, ch, v, m, want) in table {
            let got = lv_evidence(*drv, *ch, Some(v), Some(m));
            match want {
                None => assert_eq!(got, None, "{drv:?} {ch:?} {m}"),
                Some(w) => {
                    let g = got.unwrap_or_else(|| panic!("{drv:?} {ch:?} {m}: not a volume"));
                    assert!(g.contains(w) && g.contains(m), "{g}");
                }
            }
        }
    }

    #[test]
    fn modes() {
        assert_eq!(mode("0104", Some("megaraid_sas"), false), "raid");
        assert_eq!(mode("0107", Some("mpt3sas"), false), "hba");
        assert_eq!(mode("0107", Some("mpt3sas"), true), "raid");
        assert_eq!(mode("0104", Some("smartpqi"), false), "raid");
        assert_eq!(mode("0106", Some("ahci"), false), "ahci");
        assert_eq!(mode("0108", Some("nvme"), false), "nvme");
        assert_eq!(mode("0100", Some("virtio-pci"), false), "hba");
        assert_eq!(mode("0101", Some("ata_piix"), false), "ide");
        assert_eq!(mode("0180", None, false), "other");
    }
}
