//! Storage controllers (PCI base class 01h: SATA AHCI, NVMe, SAS HBAs,
//! RAID) with their driver and mode, and the disks behind each, each
//! marked a drive or a RAID logical volume (`blockdev::controller`). Where
//! a RAID controller hides its drives, smartctl's controller device types
//! (`-d megaraid,N`, `-d cciss,N`) list them when smartctl is in the image.

use super::pci::PciDevice;
use crate::blockdev::controller::{self, RAID_DRIVERS};
use crate::blockdev::scan::Disk;
use crate::root::Root;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StorageController {
    pub address: String,
    pub class_id: String,
    pub vendor: String,
    pub device: String,
    pub driver: Option<String>,
    /// raid, hba, ahci, nvme, ide, ata, other.
    pub mode: &'static str,
    /// The SCSI hosts on it and their drivers (`host0 megaraid_sas`).
    pub scsi_hosts: Vec<String>,
    pub disks: Vec<ControllerDisk>,
    /// Drives a RAID controller hides behind its volumes, from smartctl.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub physical_drives: Vec<PhysicalDrive>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ControllerDisk {
    pub name: String,
    /// `drive`, or `logical_volume` for a RAID controller's volume.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scsi_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
}

/// One drive behind a RAID controller, as smartctl reports it.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct PhysicalDrive {
    /// smartctl's device and type: `/dev/bus/0`, `megaraid,4`.
    pub device: String,
    pub device_type: String,
    pub protocol: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub capacity_bytes: Option<u64>,
}

/// The controllers among `pci` with the `disks` behind them.
pub fn collect(root: &Root, pci: &[PciDevice], disks: &[Disk]) -> Vec<StorageController> {
    let hosts = host_drivers(root);
    let mut out: Vec<StorageController> = pci
        .iter()
        .filter(|p| p.class_id.starts_with("01"))
        .map(|p| {
            let mine: Vec<(&Disk, controller::Attachment)> = disks
                .iter()
                .map(|d| (d, controller::attachment(root, d)))
                .filter(|(_, a)| a.pci_address.as_deref() == Some(p.address.as_str()))
                .collect();
            let cds: Vec<ControllerDisk> = mine
                .iter()
                .map(|(d, a)| {
                    let lv = controller::logical_volume(root, d);
                    ControllerDisk {
                        name: d.name.clone(),
                        kind: if lv.is_some() {
                            "logical_volume"
                        } else {
                            "drive"
                        },
                        scsi_address: a.scsi_address.clone(),
                        model: d.model.clone(),
                        serial: d.serial.clone(),
                        evidence: lv.map(|l| l.evidence),
                    }
                })
                .collect();
            let any_volume = cds.iter().any(|c| c.kind == "logical_volume");
            let mut scsi_hosts: Vec<String> = mine
                .iter()
                .filter_map(|(_, a)| {
                    Some(format!(
                        "{} {}",
                        a.scsi_host.as_ref()?,
                        a.host_driver.as_deref().unwrap_or("?")
                    ))
                })
                .collect();
            scsi_hosts.extend(
                hosts
                    .iter()
                    .filter(|(_, pci, _)| pci.as_deref() == Some(p.address.as_str()))
                    .map(|(h, _, drv)| format!("{h} {drv}")),
            );
            scsi_hosts.sort();
            scsi_hosts.dedup();
            StorageController {
                address: p.address.clone(),
                class_id: p.class_id.clone(),
                vendor: p.vendor.clone(),
                device: p.device.clone(),
                driver: p.driver.clone(),
                mode: controller::mode(&p.class_id, p.driver.as_deref(), any_volume),
                scsi_hosts,
                disks: cds,
                physical_drives: vec![],
            }
        })
        .collect();
    if root.is_system() && out.iter().any(|c| c.mode == "raid") {
        attach_physical_drives(&mut out);
    }
    out
}

/// `(hostN, PCI address, proc_name)` of every SCSI host.
fn host_drivers(root: &Root) -> Vec<(String, Option<String>, String)> {
    crate::root::dir_names(&root.at("/sys/class/scsi_host"))
        .into_iter()
        .map(|h| {
            let dir = root.at("/sys/class/scsi_host").join(&h);
            let pci = std::fs::canonicalize(&dir).ok().and_then(|real| {
                real.components()
                    .map(|c| c.as_os_str().to_string_lossy().to_string())
                    .rfind(|c| c.len() >= 12 && c.matches(':').count() == 2 && c.contains('.'))
            });
            let drv = crate::root::read_trim(&dir.join("proc_name")).unwrap_or_default();
            (h, pci, drv)
        })
        .collect()
}

/// Drives from `smartctl --scan-open` whose type is a RAID controller's
/// (`megaraid,N`, `cciss,N`, `aacraid,H,L,ID`), each asked `smartctl -i`.
fn attach_physical_drives(ctrls: &mut [StorageController]) {
    let script = "command -v smartctl >/dev/null || exit 1; smartctl -j --scan-open; exit 0";
    let Ok(scan) = crate::cmd::run(&["sh", "-c", script]) else {
        return;
    };
    for (dev, ty) in parse_scan(&scan) {
        let script = "smartctl -j -i -d \"$1\" \"$0\"; exit 0";
        let Some(mut pd) = crate::cmd::run(&["sh", "-c", script, &dev, &ty])
            .ok()
            .and_then(|out| parse_info(&out))
        else {
            continue;
        };
        pd.device = dev.clone();
        pd.device_type = ty.clone();
        // /dev/bus/N is SCSI host N (megaraid); else the first controller
        // whose driver fits the type.
        let host = dev.strip_prefix("/dev/bus/").map(|n| format!("host{n} "));
        let fits = |c: &StorageController| match ty.split(',').next() {
            Some("megaraid") => c.driver.as_deref() == Some("megaraid_sas"),
            Some("cciss") => matches!(c.driver.as_deref(), Some("hpsa" | "smartpqi")),
            Some("aacraid") => c.driver.as_deref() == Some("aacraid"),
            _ => false,
        };
        let i = ctrls
            .iter()
            .position(|c| {
                fits(c)
                    && host
                        .as_ref()
                        .is_none_or(|h| c.scsi_hosts.iter().any(|s| s.starts_with(h)))
            })
            .or_else(|| ctrls.iter().position(fits));
        if let Some(i) = i {
            ctrls[i].physical_drives.push(pd);
        }
    }
}

/// `smartctl -j --scan-open`: the devices whose type names a RAID
/// controller's drive, as (name, type).
pub fn parse_scan(json: &str) -> Vec<(String, String)> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
        return vec![];
    };
    v["devices"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| {
                    let name = d["name"].as_str()?;
                    let ty = d["type"].as_str()?;
                    ["megaraid,", "cciss,", "aacraid,"]
                        .iter()
                        .any(|p| ty.starts_with(p))
                        .then(|| (name.to_string(), ty.to_string()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `smartctl -j -i -d TYPE DEV`: model, serial and capacity of one drive
/// (ATA drives say `model_name`, SCSI ones `scsi_model_name`).
pub fn parse_info(json: &str) -> Option<PhysicalDrive> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let s = |p: &str| v.pointer(p).and_then(|x| x.as_str()).map(str::to_string);
    let model = s("/model_name").or_else(|| {
        match (
            s("/scsi_vendor"),
            s("/scsi_product").or_else(|| s("/scsi_model_name")),
        ) {
            (Some(a), Some(b)) => Some(format!("{a} {b}")),
            (a, b) => a.or(b),
        }
    });
    let serial = s("/serial_number");
    if model.is_none() && serial.is_none() {
        return None;
    }
    Some(PhysicalDrive {
        protocol: s("/device/protocol"),
        model,
        serial,
        capacity_bytes: v.pointer("/user_capacity/bytes").and_then(|x| x.as_u64()),
        ..Default::default()
    })
}

/// Whether `driver` is a RAID personality's.
pub fn is_raid_driver(driver: &str) -> bool {
    RAID_DRIVERS.contains(&driver)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `smartctl -j --scan-open` on a Dell with a PERC H730 (smartctl 7.x
    /// JSON layout: devices[] with name, info_name, type, protocol).
    const SCAN: &str = r#"{
      "json_format_version": [1, 0],
      "smartctl": {"version": [7, 3], "exit_status": 0},
      "devices": [
        {"name": "/dev/sda", "info_name": "/dev/sda", "type": "scsi", "protocol": "SCSI"},
        {"name": "/dev/bus/0", "info_name": "/dev/bus/0 [megaraid_disk_00]", "type": "megaraid,0", "protocol": "SCSI"},
        {"name": "/dev/bus/0", "info_name": "/dev/bus/0 [megaraid_disk_01]", "type": "megaraid,1", "protocol": "SCSI"},
        {"name": "/dev/nvme0", "info_name": "/dev/nvme0", "type": "nvme", "protocol": "NVMe"}
      ]
    }"#;

    /// `smartctl -j -i -d megaraid,0 /dev/bus/0`: a SAS drive.
    const INFO_SAS: &str = r#"{
      "device": {"name": "/dev/bus/0", "info_name": "/dev/bus/0 [megaraid_disk_00] [SAT]", "type": "megaraid,0", "protocol": "SCSI"},
      "scsi_vendor": "SEAGATE", "scsi_product": "ST1200MM0099", "scsi_model_name": "SEAGATE ST1200MM0099",
      "scsi_revision": "ST31", "user_capacity": {"blocks": 2344225968, "bytes": 1200243695616},
      "logical_block_size": 512, "serial_number": "WFK0AB12"
    }"#;

    /// `smartctl -j -i -d megaraid,1 /dev/bus/0`: a SATA drive behind SAT.
    const INFO_SATA: &str = r#"{
      "device": {"name": "/dev/bus/0", "info_name": "/dev/bus/0 [megaraid_disk_01] [SAT]", "type": "sat+megaraid,1", "protocol": "ATA"},
      "model_name": "Samsung SSD 860 EVO 500GB", "serial_number": "S3Z1NB0K123456X",
      "firmware_version": "RVT02B6Q", "user_capacity": {"blocks": 976773168, "bytes": 500107862016}
    }"#;

    #[test]
    fn smartctl_scan_and_info() {
        assert_eq!(
            parse_scan(SCAN),
            [
                ("/dev/bus/0".to_string(), "megaraid,0".to_string()),
                ("/dev/bus/0".to_string(), "megaraid,1".to_string())
            ]
        );
        assert!(parse_scan("not json").is_empty());
        let sas = parse_info(INFO_SAS).unwrap();
        assert_eq!(sas.model.as_deref(), Some("SEAGATE ST1200MM0099"));
        assert_eq!(sas.serial.as_deref(), Some("WFK0AB12"));
        assert_eq!(sas.capacity_bytes, Some(1200243695616));
        assert_eq!(sas.protocol.as_deref(), Some("SCSI"));
        let sata = parse_info(INFO_SATA).unwrap();
        assert_eq!(sata.model.as_deref(), Some("Samsung SSD 860 EVO 500GB"));
        assert_eq!(sata.protocol.as_deref(), Some("ATA"));
        assert_eq!(parse_info(r#"{"device": {}}"#), None);
        assert!(is_raid_driver("megaraid_sas") && !is_raid_driver("ahci"));
    }

    #[test]
    fn a_megaraid_host_lists_its_volume_and_its_jbod_drive() {
        let t = tempfile::tempdir().unwrap();
        let r = &Root::new(t.path());
        crate::blockdev::controller::tests::megaraid_host(r);
        let ids = super::super::pciids::PciIds::default();
        let pci = super::super::pci::collect(r, &ids);
        let disks = crate::blockdev::scan::disks(r);
        let c = collect(r, &pci, &disks);
        let by = |a: &str| c.iter().find(|x| x.address == a).unwrap();
        let mr = by("0000:03:00.0");
        assert_eq!(mr.mode, "raid");
        assert_eq!(mr.driver.as_deref(), Some("megaraid_sas"));
        assert_eq!(mr.scsi_hosts, ["host0 megaraid_sas"]);
        let kinds: Vec<(&str, &str)> = mr.disks.iter().map(|d| (d.name.as_str(), d.kind)).collect();
        assert_eq!(kinds, [("sda", "logical_volume"), ("sdb", "drive")]);
        assert_eq!(mr.disks[0].scsi_address.as_deref(), Some("0:2:0:0"));
        let ahci = by("0000:00:1f.2");
        assert_eq!(ahci.mode, "ahci");
        assert_eq!(ahci.disks[0].name, "sdc");
        assert_eq!(ahci.disks[0].kind, "drive");
    }
}
