//! Block devices from /sys/block, in the set `lsblk -d` lists (no RAM
//! disks, no unused loop devices, no hidden devices, no dm/md devices that
//! sit on other disks), with identity from sysfs and the udev database
//! (/run/udev/data, /dev/disk/by-id), filesystems from their superblocks
//! (`fsprobe`), and whether anything uses them (mounts, swap, holders).

use super::fsprobe::{self, FsInfo};
use super::sysfs::{dir_names, natural_key, read_trim, read_u64};
use crate::root::Root;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Disk {
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

/// Mounts and swap areas, keyed by device number and by source path.
#[derive(Debug, Default)]
pub struct Usage {
    by_devno: BTreeMap<String, Vec<String>>,
    by_source: BTreeMap<String, Vec<String>>,
    swaps: BTreeSet<String>,
}

impl Usage {
    pub fn parse(mountinfo: &str, swaps: &str) -> Usage {
        use crate::blockdev::usage::{parse_mountinfo, parse_swaps};
        let mut u = Usage::default();
        for m in parse_mountinfo(mountinfo) {
            u.by_devno
                .entry(m.devno)
                .or_default()
                .push(m.mountpoint.clone());
            u.by_source.entry(m.source).or_default().push(m.mountpoint);
        }
        u.swaps.extend(parse_swaps(swaps));
        u
    }

    fn mounts(&self, devno: Option<&str>, path: &str) -> Vec<String> {
        let mut v: Vec<String> = devno
            .and_then(|d| self.by_devno.get(d))
            .into_iter()
            .chain(self.by_source.get(path))
            .flatten()
            .cloned()
            .collect();
        v.sort();
        v.dedup();
        v
    }
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

/// lsblk's transport, from where the device sits in sysfs.
fn transport(root: &Root, name: &str, sysdir: &Path) -> Option<String> {
    let real = std::fs::canonicalize(sysdir).unwrap_or_else(|_| sysdir.to_path_buf());
    let p = real.to_string_lossy();
    let t = if name.starts_with("loop") {
        "loop"
    } else if name.starts_with("nvme") || p.contains("/nvme") {
        "nvme"
    } else if p.contains("/usb") {
        "usb"
    } else if sysdir.join("device/scsi_device").exists() || p.contains("/host") {
        if p.contains("/rport-") {
            "fc"
        } else if p.contains("/end_device-") || sysdir.join("device/sas_address").exists() {
            "sas"
        } else if p.contains("/session") {
            "iscsi"
        } else {
            match scsi_proc_name(root, &p).as_deref() {
                Some(n) if n.starts_with("ahci") || n.starts_with("sata") => "sata",
                Some(n) if n.contains("ata") => "ata",
                Some(n) if n.starts_with("virtio") => "virtio",
                _ => "scsi",
            }
        }
    } else if name.starts_with("vd") || p.contains("/virtio") {
        "virtio"
    } else if name.starts_with("mmcblk") {
        "mmc"
    } else {
        return None;
    };
    Some(t.to_string())
}

/// The SCSI host's driver name (`ahci`, `ata_piix`, `virtio_scsi`).
fn scsi_proc_name(root: &Root, real: &str) -> Option<String> {
    let host = real
        .split('/')
        .find(|c| c.starts_with("host") && c[4..].bytes().all(|b| b.is_ascii_digit()))?;
    read_trim(&root.at(&format!("/sys/class/scsi_host/{host}/proc_name")))
}

/// Should `lsblk -d` list this /sys/block entry?
fn listed(dir: &Path, name: &str, size: u64) -> bool {
    if read_u64(&dir.join("hidden")) == Some(1) {
        return false;
    }
    let major = read_trim(&dir.join("dev"))
        .and_then(|d| d.split(':').next().and_then(|m| m.parse::<u32>().ok()));
    if major == Some(1) {
        return false;
    }
    if size == 0
        && (major == Some(7) || name.starts_with("loop"))
        && !dir.join("loop/backing_file").exists()
    {
        return false;
    }
    dir_names(&dir.join("slaves")).is_empty()
}

fn clean(s: Option<String>) -> Option<String> {
    s.map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// Serial from the SCSI unit serial number VPD page (0x80).
fn vpd_serial(dir: &Path) -> Option<String> {
    let b = std::fs::read(dir.join("device/vpd_pg80")).ok()?;
    if b.len() < 4 || b[1] != 0x80 {
        return None;
    }
    let n = (b[3] as usize).min(b.len() - 4);
    clean(Some(String::from_utf8_lossy(&b[4..4 + n]).into_owned()))
}

/// A USB disk's serial: the `serial` of the USB device above it in sysfs
/// (what udev's ID_SERIAL_SHORT holds for USB storage).
fn usb_serial(sysdir: &Path) -> Option<String> {
    let real = std::fs::canonicalize(sysdir.join("device")).ok()?;
    real.ancestors()
        .find(|a| a.join("idVendor").exists())
        .and_then(|a| clean(read_trim(&a.join("serial"))))
}

/// Options for disk collection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Opts {
    /// Query SMART health with smartctl.
    pub smart: bool,
}

pub fn collect(root: &Root, opts: Opts) -> Vec<Disk> {
    let block = root.at("/sys/block");
    let usage = Usage::parse(
        &std::fs::read_to_string(root.at("/proc/self/mountinfo")).unwrap_or_default(),
        &std::fs::read_to_string(root.at("/proc/swaps")).unwrap_or_default(),
    );
    let links = by_id_links(root);
    let mut names = dir_names(&block);
    names.sort_by_key(|n| natural_key(n));
    let mut disks: Vec<Disk> = names
        .iter()
        .filter_map(|n| disk_sysfs(root, &block.join(n), n, &usage, &links))
        .collect();
    // Reading superblocks (and SMART) touches the devices: one thread per
    // disk so slow disks do not add up.
    std::thread::scope(|s| {
        for d in disks.iter_mut() {
            s.spawn(move || {
                probe_disk(root, d);
                if opts.smart && root.is_system() {
                    d.smart = super::smart::query(d);
                }
            });
        }
    });
    disks
}

fn disk_sysfs(
    root: &Root,
    dir: &Path,
    sysname: &str,
    usage: &Usage,
    links: &BTreeMap<String, Vec<String>>,
) -> Option<Disk> {
    let size = read_u64(&dir.join("size")).unwrap_or(0) * 512;
    if !listed(dir, sysname, size) {
        return None;
    }
    // cciss!c0d0 in sysfs is /dev/cciss/c0d0.
    let name = sysname.replace('!', "/");
    let path = format!("/dev/{name}");
    let devno = read_trim(&dir.join("dev"));
    let u = udev(root, devno.as_deref());
    let prop = |k: &str| u.props.get(k).cloned();
    let q = dir.join("queue");
    let mut partitions: Vec<Partition> = dir_names(dir)
        .into_iter()
        .filter(|p| dir.join(p).join("partition").exists())
        .map(|p| partition(root, &dir.join(&p), &p, usage, links))
        .collect();
    partitions.sort_by_key(|p| (p.number, natural_key(&p.name)));
    let mountpoints = usage.mounts(devno.as_deref(), &path);
    let holders = dir_names(&dir.join("holders"));
    let swap = usage.swaps.contains(&path);
    let in_use = !mountpoints.is_empty()
        || swap
        || !holders.is_empty()
        || partitions
            .iter()
            .any(|p| !p.mountpoints.is_empty() || p.swap || !p.holders.is_empty());
    let wwn = prop("ID_WWN_WITH_EXTENSION")
        .or_else(|| prop("ID_WWN"))
        .or_else(|| {
            let w = read_trim(&dir.join("wwid")).or_else(|| read_trim(&dir.join("device/wwid")))?;
            // udev spells NAA identifiers 0x...; others as the kernel does.
            Some(match w.strip_prefix("naa.") {
                Some(n) => format!("0x{}", n.to_ascii_lowercase()),
                None => w,
            })
        });
    Some(Disk {
        by_id: by_id(links, &u, sysname),
        size_bytes: size,
        // lsblk's order: udev first, then sysfs.
        model: clean(prop("ID_MODEL")).or_else(|| clean(read_trim(&dir.join("device/model")))),
        // Only SCSI's vendor is a name (virtio's is a PCI id).
        vendor: if dir.join("device/scsi_device").exists() {
            clean(read_trim(&dir.join("device/vendor")))
        } else {
            None
        },
        serial: clean(prop("ID_SCSI_SERIAL"))
            .or_else(|| clean(prop("ID_SERIAL_SHORT")))
            .or_else(|| clean(read_trim(&dir.join("device/serial"))))
            // Beyond lsblk: virtio-blk's serial, the SCSI VPD page, USB's.
            .or_else(|| clean(read_trim(&dir.join("serial"))))
            .or_else(|| vpd_serial(dir))
            .or_else(|| usb_serial(dir)),
        wwn,
        firmware: clean(read_trim(&dir.join("device/firmware_rev")))
            .or_else(|| clean(read_trim(&dir.join("device/rev")))),
        rotational: read_u64(&q.join("rotational")) == Some(1),
        transport: transport(root, sysname, dir),
        logical_sector_size: read_u64(&q.join("logical_block_size")),
        physical_sector_size: read_u64(&q.join("physical_block_size")),
        removable: read_u64(&dir.join("removable")) == Some(1),
        read_only: read_u64(&dir.join("ro")) == Some(1),
        partition_table: None,
        partition_table_uuid: None,
        fs: None,
        partitions,
        in_use,
        mountpoints,
        swap,
        holders,
        smart: None,
        probe_error: None,
        name,
        path,
    })
}

fn partition(
    root: &Root,
    dir: &Path,
    sysname: &str,
    usage: &Usage,
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
        mountpoints: usage.mounts(devno.as_deref(), &path),
        swap: usage.swaps.contains(&path),
        holders: dir_names(&dir.join("holders")),
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
            source: "mountinfo",
        })
}

/// Read superblocks of the disk and its partitions.
fn probe_disk(root: &Root, d: &mut Disk) {
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
                    d.fs = fsprobe::probe(&mut r, d.size_bytes);
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
        p.fs = match open(&p.name) {
            Ok(f) if p.size_bytes > 0 => fsprobe::probe_file(&f, p.size_bytes),
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

    #[test]
    fn usage_parsing() {
        let mi = "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
                  40 27 0:45 / /mnt/my\\040disk rw - btrfs /dev/sdb2 rw\n";
        let sw = "Filename\tType\tSize\tUsed\tPriority\n/dev/sda3 partition 100 0 -2\n";
        let u = Usage::parse(mi, sw);
        assert_eq!(u.mounts(Some("254:0"), "/dev/vda"), ["/"]);
        assert_eq!(u.mounts(Some("8:18"), "/dev/sdb2"), ["/mnt/my disk"]);
        assert!(u.mounts(Some("8:0"), "/dev/sda").is_empty());
        assert!(u.swaps.contains("/dev/sda3"));
    }
}
