//! Block devices from /sys/block, in the set `lsblk -d` lists (no RAM
//! disks, no unused loop devices, no hidden devices, no dm/md devices that
//! sit on other disks), with identity from sysfs and the udev database
//! (/run/udev/data, /dev/disk/by-id), filesystems from their superblocks
//! (`fsprobe`), and whether anything uses them (mounts, swap, holders:
//! `blockdev::usage`). The sysfs facts are `blockdev::scan`'s.

use super::fsprobe::{self, FsInfo};
use super::sysfs::{dir_names, natural_key, read_trim, read_u64};
use crate::blockdev::scan::Disk;
use crate::blockdev::usage::{DiskUse, Usage};
use crate::root::Root;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One disk as the inventory reports it: the scan's sysfs facts
/// (`blockdev::Disk`) with udev's identity first where it has one
/// (lsblk's order), by-id links, file systems, partitions, use and SMART.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct DiskRecord {
    pub name: String,
    pub path: String,
    /// Stable /dev/disk/by-id paths.
    pub by_id: Vec<String>,
    pub size_bytes: u64,
    pub model: Option<String>,
    pub vendor: Option<String>,
    pub serial: Option<String>,
    pub wwn: Option<String>,
    pub firmware: Option<String>,
    pub rotational: bool,
    /// nvme, sata, ata, sas, usb, virtio, fc, iscsi, mmc, loop, scsi.
    pub transport: Option<String>,
    /// The command set the disk speaks, which decides the firmware erases
    /// that reach it: nvme, ata (also behind SAT), scsi (SAS, virtio-scsi,
    /// RAID logical volumes), usb, virtio, mmc, loop, other.
    pub command_set: Option<String>,
    pub logical_sector_size: Option<u64>,
    pub physical_sector_size: Option<u64>,
    pub removable: bool,
    pub read_only: bool,
    /// `gpt` or `dos` (blkid's PTTYPE).
    pub partition_table: Option<String>,
    /// The table's id (blkid's PTUUID): GPT disk GUID or DOS signature.
    pub partition_table_uuid: Option<String>,
    /// A filesystem (or RAID/LVM member) on the whole disk.
    pub fs: Option<FsInfo>,
    pub partitions: Vec<Partition>,
    /// True when the disk or any partition is mounted, is swap, or has
    /// holders (LVM, MD, dm-crypt).
    pub in_use: bool,
    pub mountpoints: Vec<String>,
    pub swap: bool,
    pub holders: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smart: Option<super::smart::Smart>,
    /// ATA: HPA and DCO (`native_max_sectors`, `hpa_sectors`...); NVMe:
    /// capacity the namespace does not cover. Read-only, real root only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden_areas: Option<crate::wipe::hidden::HiddenAreas>,
    /// Why superblocks could not be read (e.g. permission denied).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_error: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Partition {
    pub name: String,
    pub path: String,
    pub number: Option<u32>,
    pub start_bytes: Option<u64>,
    pub size_bytes: u64,
    pub fs: Option<FsInfo>,
    pub partuuid: Option<String>,
    pub partlabel: Option<String>,
    /// GPT type GUID or DOS type (`0x83`).
    pub parttype: Option<String>,
    pub by_id: Vec<String>,
    pub mountpoints: Vec<String>,
    pub swap: bool,
    pub holders: Vec<String>,
}

/// The udev database record of a block device: properties and symlinks.
#[derive(Debug, Default)]
struct Udev {
    props: BTreeMap<String, String>,
    links: Vec<String>,
}

fn udev(root: &Root, devno: Option<&str>) -> Udev {
    let mut u = Udev::default();
    let Some(d) = devno else { return u };
    let Ok(text) = std::fs::read_to_string(root.at(&format!("/run/udev/data/b{d}"))) else {
        return u;
    };
    for line in text.lines() {
        if let Some(l) = line.strip_prefix("S:") {
            u.links.push(l.to_string());
        } else if let Some((k, v)) = line.strip_prefix("E:").and_then(|e| e.split_once('=')) {
            u.props.insert(k.to_string(), v.to_string());
        }
    }
    u
}

/// Map of device name → its /dev/disk/by-id links, from the directory.
fn by_id_links(root: &Root) -> BTreeMap<String, Vec<String>> {
    let dir = root.at("/dev/disk/by-id");
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in dir_names(&dir) {
        if let Ok(t) = std::fs::read_link(dir.join(&n)) {
            if let Some(target) = t.file_name() {
                m.entry(target.to_string_lossy().into_owned())
                    .or_default()
                    .push(format!("/dev/disk/by-id/{n}"));
            }
        }
    }
    m
}

fn by_id(links: &BTreeMap<String, Vec<String>>, u: &Udev, name: &str) -> Vec<String> {
    let mut v: Vec<String> = links.get(name).cloned().unwrap_or_default();
    v.extend(
        u.links
            .iter()
            .filter(|l| l.starts_with("disk/by-id/"))
            .map(|l| format!("/dev/{l}")),
    );
    v.sort();
    v.dedup();
    v
}

/// Should `lsblk -d` list this /sys/block entry?
fn listed(d: &Disk) -> bool {
    let dir = &d.sys_path;
    if read_u64(&dir.join("hidden")) == Some(1) {
        return false;
    }
    let major = d.major();
    if major == Some(1) {
        return false;
    }
    if d.size_bytes == 0
        && (major == Some(7) || d.name.starts_with("loop"))
        && !dir.join("loop/backing_file").exists()
    {
        return false;
    }
    dir_names(&dir.join("slaves")).is_empty()
}

fn clean(s: Option<String>) -> Option<String> {
    s.map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// Options for disk collection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Opts {
    /// Query SMART health with smartctl.
    pub smart: bool,
}

pub fn collect(root: &Root, opts: Opts) -> Vec<DiskRecord> {
    let usage = Usage::read(root);
    let links = by_id_links(root);
    let mut scanned = crate::blockdev::scan::disks(root);
    scanned.sort_by_key(|d| natural_key(&d.name));
    let mut disks: Vec<DiskRecord> = scanned
        .iter()
        .filter(|d| listed(d))
        .map(|d| record(root, d, &usage, &links))
        .collect();
    // Reading superblocks (and SMART) touches the devices: one thread per
    // disk so slow disks do not add up.
    std::thread::scope(|s| {
        for d in disks.iter_mut() {
            s.spawn(move || {
                probe_disk(root, d);
                if opts.smart && root.is_system() {
                    d.smart = super::smart::query(&d.path, d.transport.as_deref());
                }
                if root.is_system() && d.size_bytes > 0 {
                    d.hidden_areas = crate::wipe::hidden::inventory_probe(
                        &d.path,
                        d.transport.as_deref(),
                        d.size_bytes,
                        d.logical_sector_size.unwrap_or(512),
                    );
                }
            });
        }
    });
    disks
}

fn record(
    root: &Root,
    d: &Disk,
    usage: &Usage,
    links: &BTreeMap<String, Vec<String>>,
) -> DiskRecord {
    let dir = &d.sys_path;
    // cciss!c0d0 in sysfs is /dev/cciss/c0d0.
    let name = d.name.replace('!', "/");
    let path = format!("/dev/{name}");
    let devno = Some(d.devno.as_str()).filter(|s| !s.is_empty());
    let u = udev(root, devno);
    let prop = |k: &str| u.props.get(k).cloned();
    let used = usage.of(dir, &d.name, &d.devno);
    let mut partitions: Vec<Partition> = d
        .partitions
        .iter()
        .map(|p| partition(root, &dir.join(p), p, &used, links))
        .collect();
    partitions.sort_by_key(|p| (p.number, natural_key(&p.name)));
    let wwn = prop("ID_WWN_WITH_EXTENSION")
        .or_else(|| prop("ID_WWN"))
        .or_else(|| {
            let w = d.wwn.clone()?;
            // udev spells NAA identifiers 0x...; others as the kernel does.
            Some(match w.strip_prefix("naa.") {
                Some(n) => format!("0x{}", n.to_ascii_lowercase()),
                None => w,
            })
        });
    DiskRecord {
        by_id: by_id(links, &u, &d.name),
        size_bytes: d.size_bytes,
        // lsblk's order: udev first, then sysfs.
        model: clean(prop("ID_MODEL")).or_else(|| d.model.clone()),
        // Only SCSI's vendor is a name (virtio's is a PCI id).
        vendor: d
            .vendor
            .clone()
            .filter(|_| dir.join("device/scsi_device").exists()),
        serial: clean(prop("ID_SCSI_SERIAL"))
            .or_else(|| clean(prop("ID_SERIAL_SHORT")))
            .or_else(|| d.serial.clone())
            // Beyond lsblk: virtio-blk's serial, USB's.
            .or_else(|| d.bus_serial()),
        wwn,
        firmware: d.firmware.clone(),
        rotational: d.rotational,
        transport: d.tran.map(|t| t.name().to_string()),
        command_set: Some(d.transport.name().to_string()),
        logical_sector_size: d.logical_sector_size,
        physical_sector_size: d.physical_sector_size,
        removable: d.removable,
        read_only: d.read_only,
        partition_table: None,
        partition_table_uuid: None,
        fs: None,
        partitions,
        in_use: !used.is_empty(),
        mountpoints: used.mountpoints(&d.name),
        swap: used.swap(&d.name),
        holders: used.holders(&d.name),
        smart: None,
        hidden_areas: None,
        probe_error: None,
        name,
        path,
    }
}

fn partition(
    root: &Root,
    dir: &Path,
    sysname: &str,
    used: &DiskUse,
    links: &BTreeMap<String, Vec<String>>,
) -> Partition {
    let name = sysname.replace('!', "/");
    let path = format!("/dev/{name}");
    let devno = read_trim(&dir.join("dev"));
    let u = udev(root, devno.as_deref());
    Partition {
        number: read_u64(&dir.join("partition")).map(|n| n as u32),
        start_bytes: read_u64(&dir.join("start")).map(|s| s * 512),
        size_bytes: read_u64(&dir.join("size")).unwrap_or(0) * 512,
        fs: None,
        partuuid: u.props.get("ID_PART_ENTRY_UUID").cloned(),
        partlabel: u.props.get("ID_PART_ENTRY_NAME").cloned(),
        parttype: u.props.get("ID_PART_ENTRY_TYPE").cloned(),
        by_id: by_id(links, &u, sysname),
        mountpoints: used.mountpoints(sysname),
        swap: used.swap(sysname),
        holders: used.holders(sysname),
        name,
        path,
    }
}

/// Filesystem from udev's database, for a device that cannot be read.
fn fs_from_udev(root: &Root, sysdir: &Path) -> Option<FsInfo> {
    let u = udev(root, read_trim(&sysdir.join("dev")).as_deref());
    let kind = u.props.get("ID_FS_TYPE").filter(|t| !t.is_empty())?;
    Some(FsInfo {
        kind: kind.clone(),
        label: u.props.get("ID_FS_LABEL").cloned(),
        uuid: u.props.get("ID_FS_UUID").cloned(),
        version: u.props.get("ID_FS_VERSION").cloned(),
        source: "udev",
    })
}

/// Filesystem type from mountinfo, the last resort for a mounted device.
fn fs_from_mountinfo(root: &Root, devno: Option<&str>) -> Option<FsInfo> {
    let devno = devno?;
    crate::blockdev::usage::mounts(root)
        .into_iter()
        .find(|m| m.devno == devno)
        .map(|m| FsInfo {
            kind: m.fstype,
            label: None,
            uuid: None,
            version: None,
            source: "mountinfo",
        })
}

/// Read superblocks of the disk and its partitions.
fn probe_disk(root: &Root, d: &mut DiskRecord) {
    let sysdir: PathBuf = root.at("/sys/block").join(d.name.replace('/', "!"));
    let open = |name: &str| std::fs::File::open(root.at(&format!("/dev/{name}")));
    if d.size_bytes > 0 {
        match open(&d.name) {
            Ok(f) => {
                let mut r = fsprobe::reader(&f);
                let sector = d.logical_sector_size.unwrap_or(512);
                if let Some(t) = fsprobe::partitions(&mut r, sector) {
                    d.partition_table = Some(t.kind.to_string());
                    d.partition_table_uuid = t.uuid;
                    // Match entries to the kernel's partitions by number and
                    // start (sysfs `start` is in 512-byte units).
                    for p in d.partitions.iter_mut() {
                        let Some(e) = t.entries.iter().find(|e| {
                            Some(e.number) == p.number
                                && p.start_bytes.is_none_or(|s| s == e.start_lba * sector)
                        }) else {
                            continue;
                        };
                        p.partuuid = p.partuuid.take().or_else(|| e.uuid.clone());
                        p.partlabel = p.partlabel.take().or_else(|| e.name.clone());
                        p.parttype = p.parttype.take().or_else(|| Some(e.type_id.clone()));
                    }
                }
                if d.partitions.is_empty() {
                    d.fs = match super::identify::identify(root, &d.name, d.size_bytes) {
                        Ok(fs) => fs,
                        Err(_) => fsprobe::probe(&mut r, d.size_bytes),
                    };
                }
            }
            Err(e) => {
                d.probe_error = Some(format!("{}: {e}", d.path));
                if d.partitions.is_empty() {
                    d.fs = fs_from_udev(root, &sysdir).or_else(|| {
                        fs_from_mountinfo(root, read_trim(&sysdir.join("dev")).as_deref())
                    });
                }
            }
        }
    }
    for p in d.partitions.iter_mut() {
        let pdir = sysdir.join(p.name.replace('/', "!"));
        p.fs = match super::identify::identify(root, &p.name, p.size_bytes) {
            Ok(fs) if p.size_bytes > 0 => fs,
            Ok(_) => None,
            Err(_) => fs_from_udev(root, &pdir)
                .or_else(|| fs_from_mountinfo(root, read_trim(&pdir.join("dev")).as_deref())),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udev_records_and_by_id_links() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("run/udev/data")).unwrap();
        std::fs::write(
            r.join("run/udev/data/b8:0"),
            "S:disk/by-id/ata-Disk_SN1\nS:disk/by-path/pci-0000:00:1f.2-ata-1\n\
             E:ID_SERIAL_SHORT=SN1\nE:ID_MODEL=Disk\nE:ID_WWN=0x5000c500a1b2c3d4\n",
        )
        .unwrap();
        std::fs::create_dir_all(r.join("dev/disk/by-id")).unwrap();
        std::os::unix::fs::symlink("../../sda", r.join("dev/disk/by-id/wwn-0x5000c500a1b2c3d4"))
            .unwrap();
        std::os::unix::fs::symlink(
            "../../sda1",
            r.join("dev/disk/by-id/wwn-0x5000c500a1b2c3d4-part1"),
        )
        .unwrap();
        let u = udev(&Root::new(r), Some("8:0"));
        assert_eq!(u.props["ID_SERIAL_SHORT"], "SN1");
        assert_eq!(u.props["ID_WWN"], "0x5000c500a1b2c3d4");
        let links = by_id_links(&Root::new(r));
        assert_eq!(
            by_id(&links, &u, "sda"),
            [
                "/dev/disk/by-id/ata-Disk_SN1",
                "/dev/disk/by-id/wwn-0x5000c500a1b2c3d4"
            ]
        );
        assert_eq!(
            by_id(&links, &Udev::default(), "sda1"),
            ["/dev/disk/by-id/wwn-0x5000c500a1b2c3d4-part1"]
        );
        assert!(udev(&Root::new(r), Some("8:16")).props.is_empty());
    }
}
