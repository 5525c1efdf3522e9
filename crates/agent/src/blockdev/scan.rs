//! The sysfs facts of whole disks: one `Disk` type and one reader of
//! `<root>/sys/block/NAME`, for the wipe selection, the install target and
//! the inventory's report. Pure reads of sysfs under the root; what uses a
//! disk is `usage`'s, which disks may be written is the callers' policy.

use crate::root::{dir_names, read_trim, Root};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// How a disk is attached. `Disk::transport` uses the command-set classes
/// (Nvme, Ata, Scsi, Usb, Virtio, Mmc, Loop, Other: which firmware
/// commands can reach it); `Disk::tran` is lsblk's TRAN, which also names
/// the bus behind the SCSI layer (Sata, Sas, Fc, Iscsi).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Nvme,
    /// AHCI (lsblk `sata`).
    Sata,
    /// ATA: libata behind the SCSI layer (wipe), a non-AHCI ATA host (lsblk).
    Ata,
    Sas,
    Usb,
    Virtio,
    /// Fibre Channel.
    Fc,
    Iscsi,
    Mmc,
    Loop,
    Scsi,
    /// dm, md, zram, ram, nbd, optical...: never wiped directly.
    Other,
}

impl Transport {
    /// The lowercase name, as the JSON reports spell it.
    pub fn name(self) -> &'static str {
        match self {
            Transport::Nvme => "nvme",
            Transport::Sata => "sata",
            Transport::Ata => "ata",
            Transport::Sas => "sas",
            Transport::Usb => "usb",
            Transport::Virtio => "virtio",
            Transport::Fc => "fc",
            Transport::Iscsi => "iscsi",
            Transport::Mmc => "mmc",
            Transport::Loop => "loop",
            Transport::Scsi => "scsi",
            Transport::Other => "other",
        }
    }
}

/// What sysfs says about one whole block device. Serialized as the wipe
/// plan and the install report show a disk; the fields marked skip are
/// for the callers' checks and the inventory's own record.
#[derive(Debug, Clone, Serialize)]
pub struct Disk {
    /// The kernel name, as in /sys/block (`cciss!c0d0` keeps its `!`).
    pub name: String,
    pub path: PathBuf,
    pub size_bytes: u64,
    /// `queue/logical_block_size`, 512 when unknown.
    pub logical_block_size: u32,
    /// The command-set class (see `Transport`).
    pub transport: Transport,
    /// lsblk's TRAN; `None` where lsblk has none (dm, md, ram...).
    #[serde(skip)]
    pub tran: Option<Transport>,
    pub rotational: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The device's own serial (`device/serial`, else SCSI VPD page 0x80).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wwn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub firmware: Option<String>,
    /// For loop devices: the file behind it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backing_file: Option<String>,
    /// `major:minor`.
    pub devno: String,
    /// `queue/logical_block_size` and `queue/physical_block_size` as read.
    #[serde(skip)]
    pub logical_sector_size: Option<u64>,
    #[serde(skip)]
    pub physical_sector_size: Option<u64>,
    #[serde(skip)]
    pub removable: bool,
    #[serde(skip)]
    pub read_only: bool,
    /// Kernel names of its partitions, sorted.
    #[serde(skip)]
    pub partitions: Vec<String>,
    /// `<root>/sys/block/NAME`.
    #[serde(skip)]
    pub sys_path: PathBuf,
    /// Set by the wipe selection: a device-mapper device over loop devices
    /// only, named in the test allow list, which the fault-injection tests
    /// erase like a loop device. Never set by the scan.
    #[serde(skip)]
    pub test_target: bool,
}

/// How a report names a disk briefly: its path, transport and size, and
/// the identifiers it has (model, serial, WWN); the install result's
/// `target`.
pub fn serialize_brief<S: serde::Serializer>(d: &Disk, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(None)?;
    m.serialize_entry("path", &d.path)?;
    m.serialize_entry("transport", &d.transport)?;
    m.serialize_entry("size_bytes", &d.size_bytes)?;
    for (k, v) in [("model", &d.model), ("serial", &d.serial), ("wwn", &d.wwn)] {
        if let Some(v) = v {
            m.serialize_entry(k, v)?;
        }
    }
    m.end()
}

impl Disk {
    /// How `--confirm` and certificates name the disk: its serial, or its
    /// path when it has none.
    pub fn confirm_name(&self) -> String {
        self.serial
            .clone()
            .unwrap_or_else(|| self.path.display().to_string())
    }

    /// NIST "media type", in words.
    pub fn media_type(&self) -> &'static str {
        match (self.transport, self.rotational) {
            (Transport::Nvme, _) => "flash (NVMe SSD)",
            (Transport::Loop, _) => "file-backed loop device",
            (Transport::Mmc, _) => "flash (eMMC/SD)",
            (_, true) => "magnetic (HDD)",
            (_, false) => "flash (SSD) or virtual disk",
        }
    }

    pub fn is_loop(&self) -> bool {
        self.transport == Transport::Loop && self.devno.starts_with("7:")
    }

    /// The major number of `devno`.
    pub fn major(&self) -> Option<u32> {
        self.devno.split(':').next()?.parse().ok()
    }

    /// A serial from where only some drivers put one, which the device's
    /// own attributes lack: virtio-blk's `serial` beside the disk, or the
    /// USB device above a USB disk (what udev's ID_SERIAL_SHORT holds).
    pub fn bus_serial(&self) -> Option<String> {
        read_trim(&self.sys_path.join("serial")).or_else(|| usb_serial(&self.sys_path))
    }
}

fn read_u64(p: &Path) -> Option<u64> {
    read_trim(p)?.parse().ok()
}

/// The command-set class, from the name and where the device sits.
fn transport_of(name: &str, real: &str) -> Transport {
    if real.contains("/usb") {
        return Transport::Usb;
    }
    if name.starts_with("nvme") {
        Transport::Nvme
    } else if name.starts_with("loop") {
        Transport::Loop
    } else if name.starts_with("vd") || name.starts_with("xvd") {
        Transport::Virtio
    } else if name.starts_with("mmcblk") {
        Transport::Mmc
    } else if name.starts_with("sd") || name.starts_with("hd") {
        if real.contains("/ata") {
            Transport::Ata
        } else {
            Transport::Scsi
        }
    } else {
        Transport::Other
    }
}

/// lsblk's transport, from where the device sits in sysfs.
fn lsblk_tran(root: &Root, name: &str, sys: &Path, real: &str) -> Option<Transport> {
    let p = real;
    Some(if name.starts_with("loop") {
        Transport::Loop
    } else if name.starts_with("nvme") || p.contains("/nvme") {
        Transport::Nvme
    } else if p.contains("/usb") {
        Transport::Usb
    } else if sys.join("device/scsi_device").exists() || p.contains("/host") {
        if p.contains("/rport-") {
            Transport::Fc
        } else if p.contains("/end_device-") || sys.join("device/sas_address").exists() {
            Transport::Sas
        } else if p.contains("/session") {
            Transport::Iscsi
        } else {
            match scsi_proc_name(root, p).as_deref() {
                Some(n) if n.starts_with("ahci") || n.starts_with("sata") => Transport::Sata,
                Some(n) if n.contains("ata") => Transport::Ata,
                Some(n) if n.starts_with("virtio") => Transport::Virtio,
                _ => Transport::Scsi,
            }
        }
    } else if name.starts_with("vd") || p.contains("/virtio") {
        Transport::Virtio
    } else if name.starts_with("mmcblk") {
        Transport::Mmc
    } else {
        return None;
    })
}

/// The SCSI host's driver name (`ahci`, `ata_piix`, `virtio_scsi`).
fn scsi_proc_name(root: &Root, real: &str) -> Option<String> {
    let host = real
        .split('/')
        .find(|c| c.starts_with("host") && c[4..].bytes().all(|b| b.is_ascii_digit()))?;
    read_trim(&root.at("/sys/class/scsi_host").join(host).join("proc_name"))
}

/// Serial from a SCSI unit serial number VPD page (0x80): a 4-byte header
/// whose last two bytes are the length, then ASCII. The page code is not
/// checked: the kernel only ever puts page 0x80 in `vpd_pg80`.
pub fn vpd_serial(p: &Path) -> Option<String> {
    let b = std::fs::read(p).ok()?;
    let body = b.get(4..)?;
    let n = (usize::from(b[2]) << 8 | usize::from(b[3])).min(body.len());
    let s = String::from_utf8_lossy(&body[..n]).trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// A USB disk's serial: the `serial` of the USB device above it in sysfs.
fn usb_serial(sys: &Path) -> Option<String> {
    let real = std::fs::canonicalize(sys.join("device")).ok()?;
    real.ancestors()
        .find(|a| a.join("idVendor").exists())
        .and_then(|a| read_trim(&a.join("serial")))
}

/// Read `<root>/sys/block/NAME`.
pub fn read(root: &Root, name: &str) -> Disk {
    use crate::root::read_attr;
    let sys = root.at("/sys/block").join(name);
    let dev = sys.join("device");
    let q = sys.join("queue");
    let real = std::fs::canonicalize(&sys).unwrap_or_else(|_| sys.clone());
    let real = real.to_string_lossy();
    let serial = read_attr(&dev.join("serial")).or_else(|| vpd_serial(&dev.join("vpd_pg80")));
    let wwn = read_attr(&sys.join("wwid"))
        .or_else(|| read_attr(&dev.join("wwid")))
        .or_else(|| read_attr(&dev.join("wwn")));
    let partitions = dir_names(&sys)
        .into_iter()
        .filter(|p| sys.join(p).join("partition").exists())
        .collect();
    let logical = read_u64(&q.join("logical_block_size"));
    Disk {
        name: name.to_string(),
        path: PathBuf::from("/dev").join(name),
        size_bytes: read_u64(&sys.join("size")).unwrap_or(0) * 512,
        logical_block_size: logical.unwrap_or(512) as u32,
        transport: transport_of(name, &real),
        tran: lsblk_tran(root, name, &sys, &real),
        rotational: read_u64(&q.join("rotational")) == Some(1),
        vendor: read_attr(&dev.join("vendor")),
        model: read_attr(&dev.join("model")),
        serial,
        wwn,
        firmware: read_attr(&dev.join("firmware_rev")).or_else(|| read_attr(&dev.join("rev"))),
        backing_file: read_trim(&sys.join("loop/backing_file")),
        devno: read_trim(&sys.join("dev")).unwrap_or_default(),
        logical_sector_size: logical,
        physical_sector_size: read_u64(&q.join("physical_block_size")),
        removable: read_u64(&sys.join("removable")) == Some(1),
        read_only: read_u64(&sys.join("ro")) == Some(1),
        partitions,
        sys_path: sys,
        test_target: false,
    }
}

/// The names under `<root>/sys/block`, sorted.
pub fn names(root: &Root) -> Vec<String> {
    dir_names(&root.at("/sys/block"))
}

/// Every disk under `<root>/sys/block`, by name.
pub fn disks(root: &Root) -> Vec<Disk> {
    names(root).iter().map(|n| read(root, n)).collect()
}

/// The disk now behind block device number `devno` (`M:m`), through
/// `root`'s `/sys/dev/block/M:m`: what the check right after open compares
/// with the plan. `None` for a partition or an unknown number.
pub fn disk_at(root: &Root, devno: &str) -> Option<Disk> {
    let real = std::fs::canonicalize(root.at("/sys/dev/block").join(devno)).ok()?;
    let name = real.file_name()?.to_string_lossy().to_string();
    root.at("/sys/block")
        .join(&name)
        .exists()
        .then(|| read(root, &name))
}

/// The kernel name behind a /dev path (following one symlink, e.g.
/// /dev/disk/by-id/x or /dev/mapper/y), looked up under `root`.
pub fn dev_name(root: &Root, path: &str) -> String {
    let under = root.at(path);
    let target = std::fs::canonicalize(&under)
        .ok()
        .or_else(|| std::fs::read_link(&under).ok())
        .unwrap_or_else(|| PathBuf::from(path));
    target
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A whole disk at `sys/devices/<devpath>/<name>`, linked from
    /// sys/block, with `files` (relative to the disk) written; `8:0` and
    /// 4 MiB unless `files` says otherwise.
    pub(crate) fn disk(root: &Root, devpath: &str, name: &str, files: &[(&str, &str)]) {
        let real = root.at("/sys/devices").join(devpath).join(name);
        std::fs::create_dir_all(&real).unwrap();
        std::fs::write(real.join("size"), "8192\n").unwrap();
        std::fs::write(real.join("dev"), "8:0\n").unwrap();
        for (f, text) in files {
            let p = real.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        std::fs::create_dir_all(root.at("/sys/block")).unwrap();
        std::os::unix::fs::symlink(&real, root.at("/sys/block").join(name)).unwrap();
    }

    fn vpd(serial: &str) -> Vec<u8> {
        let mut b = vec![0u8, 0x80, 0, serial.len() as u8];
        b.extend_from_slice(serial.as_bytes());
        b
    }

    #[test]
    fn an_ahci_disk_is_ata_to_the_wipe_and_sata_to_lsblk() {
        let t = tempfile::tempdir().unwrap();
        let r = &Root::new(t.path());
        let dev = "pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0/block";
        let files = [
            ("size", "2048\n"),
            ("ro", "0\n"),
            ("removable", "1\n"),
            ("queue/rotational", "1\n"),
            ("queue/logical_block_size", "512\n"),
            ("queue/physical_block_size", "4096\n"),
            ("device/vendor", "ATA     \n"),
            ("device/model", "QEMU HARDDISK\n"),
            ("device/rev", "2.5+\n"),
            ("device/scsi_device/x", ""),
            ("sda1/partition", "1\n"),
            ("sda10/partition", "10\n"),
            ("holders/.keep", ""),
        ];
        disk(r, dev, "sda", &files);
        let sda = r.at("/sys/devices").join(dev).join("sda");
        std::fs::write(sda.join("device/vpd_pg80"), vpd("  QM00001 ")).unwrap();
        std::fs::create_dir_all(r.at("/sys/class/scsi_host/host0")).unwrap();
        std::fs::write(r.at("/sys/class/scsi_host/host0/proc_name"), "ahci\n").unwrap();
        let d = read(r, "sda");
        assert_eq!(d.transport, Transport::Ata);
        assert_eq!(d.tran, Some(Transport::Sata));
        assert_eq!(d.size_bytes, 1 << 20);
        assert_eq!(d.serial.as_deref(), Some("QM00001"));
        assert_eq!(d.vendor.as_deref(), Some("ATA"));
        assert_eq!(d.firmware.as_deref(), Some("2.5+"));
        assert_eq!(d.partitions, ["sda1", "sda10"]);
        assert_eq!(
            (d.logical_sector_size, d.physical_sector_size),
            (Some(512), Some(4096))
        );
        assert!(d.rotational && d.removable && !d.read_only);
        assert_eq!(d.path, Path::new("/dev/sda"));
        assert_eq!(d.major(), Some(8));
        // The wipe plan's JSON: the skipped fields stay out.
        let j = serde_json::to_value(&d).unwrap();
        assert_eq!(j["transport"], "ata");
        assert!(j.get("tran").is_none() && j.get("removable").is_none());
        assert_eq!(names(r), ["sda"]);
    }

    #[test]
    fn transports_by_name_and_place() {
        use Transport::*;
        let t = tempfile::tempdir().unwrap();
        let r = &Root::new(t.path());
        let usb = "pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block";
        let fc = "pci0000:00/0000:00:05.0/host3/rport-3:0-0/target3:0:0/3:0:0:0/block";
        type Row<'a> = (
            &'a str,
            &'a str,
            &'a [(&'a str, &'a str)],
            Transport,
            Option<Transport>,
        );
        let table: &[Row] = &[
            (usb, "sdb", &[], Usb, Some(Usb)),
            (
                "pci0000:00/0000:00:04.0/virtio0/block",
                "vda",
                &[("serial", "vd-serial\n")],
                Virtio,
                Some(Virtio),
            ),
            (
                "pci0000:00/0000:00:02.0/nvme/nvme0",
                "nvme0n1",
                &[("wwid", "eui.0025\n")],
                Nvme,
                Some(Nvme),
            ),
            (fc, "sdc", &[], Scsi, Some(Fc)),
            (
                "virtual/block",
                "loop0",
                &[("loop/backing_file", "/srv/a.img\n"), ("dev", "7:0\n")],
                Loop,
                Some(Loop),
            ),
            ("virtual/block", "dm-0", &[], Other, None),
        ];
        for (devpath, name, files, transport, tran) in table {
            disk(r, devpath, name, files);
            let d = read(r, name);
            assert_eq!((d.transport, d.tran), (*transport, *tran), "{name}");
        }
        let d = |n: &str| read(r, n);
        let lo = d("loop0");
        assert!(lo.is_loop());
        assert_eq!(lo.backing_file.as_deref(), Some("/srv/a.img"));
        assert_eq!(d("nvme0n1").wwn.as_deref(), Some("eui.0025"));
        // virtio-blk's serial is no device serial, only a bus one.
        assert_eq!(d("vda").serial, None);
        assert_eq!(d("vda").bus_serial().as_deref(), Some("vd-serial"));
        assert_eq!(Iscsi.name(), "iscsi");
        assert_eq!(disks(r).len(), 6);
    }

    #[test]
    fn disk_at_and_dev_name_follow_links() {
        let t = tempfile::tempdir().unwrap();
        let r = &Root::new(t.path());
        let files = [("dev", "254:0\n"), ("vda1/partition", "1\n")];
        disk(r, "pci0000:00/0000:00:04.0/virtio0/block", "vda", &files);
        let vda = r.at("/sys/devices/pci0000:00/0000:00:04.0/virtio0/block/vda");
        std::fs::create_dir_all(r.at("/sys/dev/block")).unwrap();
        std::os::unix::fs::symlink(&vda, r.at("/sys/dev/block/254:0")).unwrap();
        std::os::unix::fs::symlink(vda.join("vda1"), r.at("/sys/dev/block/254:1")).unwrap();
        assert_eq!(disk_at(r, "254:0").unwrap().name, "vda");
        assert!(disk_at(r, "254:1").is_none(), "a partition is no disk");
        assert!(disk_at(r, "254:9").is_none());
        std::fs::create_dir_all(r.at("/dev/disk/by-id")).unwrap();
        std::os::unix::fs::symlink("../../vda", r.at("/dev/disk/by-id/virtio-x")).unwrap();
        assert_eq!(dev_name(r, "/dev/disk/by-id/virtio-x"), "vda");
        assert_eq!(dev_name(r, "/dev/sdz"), "sdz");
    }

    #[test]
    fn vpd_pages_are_read_to_their_length() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("pg");
        std::fs::write(&p, [0u8, 0x80, 0, 2, b'A', b'B', b' ', b'C']).unwrap();
        assert_eq!(vpd_serial(&p).as_deref(), Some("AB"));
        std::fs::write(&p, [0u8, 0x80, 0, 9, b'A', b'B']).unwrap();
        assert_eq!(vpd_serial(&p).as_deref(), Some("AB"));
        std::fs::write(&p, [0u8, 0x80, 0, 0, b'A']).unwrap();
        assert_eq!(vpd_serial(&p), None);
        std::fs::write(&p, [0u8, 0x80]).unwrap();
        assert_eq!(vpd_serial(&p), None);
    }
}
