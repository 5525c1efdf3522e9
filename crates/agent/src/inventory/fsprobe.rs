//! What blkid does, for the formats a server disk carries: read the
//! superblock at its known offset and report type, label and UUID in
//! blkid's spelling (`TYPE`, `LABEL`, `UUID`). Also the partition table
//! type of a whole disk.
//!
//! `probe` is pure over a `read(offset, len)` callback, so tests feed it
//! images made by the real mkfs tools and compare with `blkid -p`. The order
//! follows blkid's priorities: RAID and LVM metadata first (they wrap a
//! filesystem), then filesystems, then swap.

use serde::Serialize;
use std::fs::File;
use std::os::unix::fs::FileExt;

mod linux;
mod other;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FsInfo {
    /// blkid's TYPE: ext4, xfs, vfat, swap, LVM2_member, linux_raid_member, ...
    #[serde(rename = "type")]
    pub kind: String,
    pub label: Option<String>,
    pub uuid: Option<String>,
    /// blkid's VERSION where the format has one (`1.0` for ext4, `FAT32`,
    /// `2` for LUKS2, `1.2` for MD metadata 1.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Who answered: `blkid` (the image's `blkid -p`, see `identify`),
    /// `probe` (read here), or, when the device could not be read, `udev`
    /// or `mountinfo`.
    pub source: &'static str,
}

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn le64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// Standard 8-4-4-4-12 lowercase form of 16 bytes; `None` if all zero.
fn uuid(b: &[u8]) -> Option<String> {
    if b.iter().all(|&x| x == 0) {
        return None;
    }
    Some(speediso_proto::events::uuid_text(b))
}

/// A NUL- (or space-) padded label; `None` if empty.
fn label(b: &[u8]) -> Option<String> {
    let end = b.iter().position(|&x| x == 0).unwrap_or(b.len());
    let s = String::from_utf8_lossy(&b[..end]).trim_end().to_string();
    (!s.is_empty()).then_some(s)
}

fn info(kind: &str, label: Option<String>, uuid: Option<String>) -> FsInfo {
    FsInfo {
        kind: kind.to_string(),
        label,
        uuid,
        version: None,
        source: "probe",
    }
}

impl FsInfo {
    /// The same with blkid's VERSION.
    fn v(mut self, version: impl Into<String>) -> FsInfo {
        self.version = Some(version.into());
        self
    }
}

/// Probe a device of `size` bytes through `read(offset, len)`.
pub fn probe(read: &mut dyn FnMut(u64, usize) -> Option<Vec<u8>>, size: u64) -> Option<FsInfo> {
    if size < 1024 {
        return None;
    }
    let head = read(0, 69632.min(size as usize))?;
    let at = |o: usize, n: usize| head.get(o..o + n);

    // Linux MD RAID, in blkid's order: 0.90 and 1.0 near the end of the
    // device, then 1.1 at the start and 1.2 at 4 KiB.
    const MD_RESERVED: u64 = 0x10000;
    if size > MD_RESERVED {
        let off = (size & !(MD_RESERVED - 1)) - MD_RESERVED;
        if let Some(r) = read(off, 64).and_then(|b| md090(&b, off, size)) {
            return Some(r);
        }
        let off = (size & !(0x1000 - 1)) - 0x2000;
        if let Some(r) = md1(read, off) {
            return Some(r.v("1.0"));
        }
    }
    for (off, v) in [(0, "1.1"), (4096, "1.2")] {
        if let Some(r) = md1(read, off) {
            return Some(r.v(v));
        }
    }
    if let Some(r) = cluster_fs(&head, read, size) {
        return Some(r);
    }
    // LVM2 physical volume: "LABELONE" in one of the first four sectors,
    // naming its own sector.
    for s in 0..4usize {
        let o = s * 512;
        if at(o, 8) == Some(b"LABELONE")
            && at(o + 24, 8) == Some(b"LVM2 001")
            && le64(&head, o + 8) == s as u64
        {
            let pv = o + le32(&head, o + 20) as usize;
            let id = at(pv, 32).map(|b| String::from_utf8_lossy(b).into_owned());
            // blkid groups the 32 characters 6-4-4-4-4-4-6.
            let id = id.filter(|s| s.len() == 32).map(|s| {
                [
                    (0, 6),
                    (6, 10),
                    (10, 14),
                    (14, 18),
                    (18, 22),
                    (22, 26),
                    (26, 32),
                ]
                .iter()
                .map(|&(a, b)| &s[a..b])
                .collect::<Vec<_>>()
                .join("-")
            });
            return Some(info("LVM2_member", None, id).v("LVM2 001"));
        }
    }
    if let Some(r) = linux::bcache(&head) {
        return Some(r);
    }
    // LUKS (1 and 2): magic, then UUID as text at 168 and a label at 24 (v2).
    if at(0, 6) == Some(b"LUKS\xba\xbe") && head.len() >= 208 {
        let ver = u16::from_be_bytes([head[6], head[7]]);
        let lbl = if ver == 2 { label(&head[24..72]) } else { None };
        return Some(info("crypto_LUKS", lbl, label(&head[168..208])).v(ver.to_string()));
    }
    // BitLocker before FAT and NTFS: its boot sector looks like theirs.
    if let Some(r) = other::bitlocker(&head, read) {
        return Some(r);
    }
    // FAT12/16/32.
    if let Some(f) = vfat(&head, read) {
        return Some(f);
    }
    // Swap: signature in the last 10 bytes of the first page.
    for page in [4096usize, 8192, 16384, 32768, 65536] {
        let Some(sig) = at(page - 10, 10) else {
            break;
        };
        if sig == b"SWAPSPACE2" || sig == b"SWAP-SPACE" {
            if sig == b"SWAP-SPACE" {
                return Some(info("swap", None, None).v("0"));
            }
            return Some(
                info("swap", label(&head[1052..1068]), uuid(&head[1036..1052]))
                    .v(le32(&head, 1024).to_string()),
            );
        }
        if sig.ends_with(b"SUSPEND") || &sig[..6] == b"S1SUSP" {
            return Some(info("swsuspend", None, None));
        }
    }
    // XFS.
    if at(0, 4) == Some(b"XFSB") && head.len() >= 120 {
        return Some(info("xfs", label(&head[108..120]), uuid(&head[32..48])));
    }
    // ext2/3/4: superblock at 1024, magic 0xEF53 at +0x38.
    if head.len() >= 2048 && le16(&head, 1024 + 0x38) == 0xef53 {
        let sb = &head[1024..2048];
        let compat = le32(sb, 0x5c);
        let incompat = le32(sb, 0x60);
        let ro = le32(sb, 0x64);
        const JOURNAL_DEV: u32 = 0x8;
        let kind = if incompat & JOURNAL_DEV != 0 {
            "jbd"
        } else if compat & 0x4 != 0 {
            // ext3 knows FILETYPE, RECOVER, META_BG; anything else is ext4.
            if incompat & !(0x2 | 0x4 | 0x10) != 0 || ro & !0x7 != 0 {
                "ext4"
            } else {
                "ext3"
            }
        } else if incompat & !(0x2 | 0x10) != 0 || ro & !0x7 != 0 {
            "ext4"
        } else {
            "ext2"
        };
        let version = format!("{}.{}", le32(sb, 0x4c), le16(sb, 0x3e));
        return Some(info(kind, label(&sb[0x78..0x88]), uuid(&sb[0x68..0x78])).v(version));
    }
    // btrfs: superblock at 64 KiB, magic at +64.
    if at(65536 + 64, 8) == Some(b"_BHRfS_M") && head.len() >= 65536 + 555 {
        let sb = &head[65536..];
        return Some(info("btrfs", label(&sb[299..299 + 256]), uuid(&sb[32..48])));
    }
    if let Some(r) = linux::filesystems(&head, read, size) {
        return Some(r);
    }
    // UDF before ISO 9660: a UDF bridge disc carries both, blkid says udf.
    if let Some(r) = other::udf(read, size) {
        return Some(r);
    }
    // ISO 9660: primary volume descriptor at 32 KiB.
    if at(32768, 6) == Some(b"\x01CD001") && head.len() >= 32768 + 2048 {
        let pvd = &head[32768..32768 + 2048];
        // blkid's UUID is the modification (else creation) time stamp,
        // unless it is all '0' with a zero time zone (unset).
        let stamp = |o: usize| {
            let d = &pvd[o..o + 16];
            let unset = d.iter().all(|&c| c == b'0') && pvd[o + 16] == 0;
            (!unset && d.iter().all(u8::is_ascii_digit)).then(|| {
                let s = String::from_utf8_lossy(d);
                format!(
                    "{}-{}-{}-{}-{}-{}-{}",
                    &s[0..4],
                    &s[4..6],
                    &s[6..8],
                    &s[8..10],
                    &s[10..12],
                    &s[12..14],
                    &s[14..16]
                )
            })
        };
        return Some(info(
            "iso9660",
            iso_label(&head, &pvd[40..72]),
            stamp(830).or_else(|| stamp(813)),
        ));
    }
    if let Some(r) = other::ntfs(&head, read) {
        return Some(r);
    }
    if let Some(r) = other::exfat(&head, read) {
        return Some(r);
    }
    // Weak magics last: minix is two bytes, ZFS reads four labels.
    if let Some(r) = linux::minix(&head) {
        return Some(r);
    }
    other::zfs(read, size)
}

/// File systems and volume formats that several hosts share, with where
/// their signature is. Magic numbers as libblkid knows them
/// (util-linux `libblkid/src/superblocks/{vmfs,gfs,ocfs,bluestore}.c`);
/// the wipe refuses disks that carry one (`wipe::select`).
pub const CLUSTER_FS: &[(&str, &str)] = &[
    (
        "ceph_bluestore",
        "Ceph BlueStore OSD label \"bluestore block device\" at offset 0",
    ),
    (
        "VMFS_volume_member",
        "VMFS volume magic 0xc001d00d at 1 MiB",
    ),
    ("VMFS", "VMFS file system magic 0x2fabf15e at 2 MiB"),
    ("gfs2", "GFS2 superblock magic 0x01161970 at 64 KiB"),
    ("gfs", "GFS superblock magic 0x01161970 at 64 KiB"),
    ("ocfs2", "OCFS2 superblock \"OCFSV2\" in block 2"),
];

/// GPT partition types of cluster storage (the UEFI list of type GUIDs as
/// published by the vendors: IBM Spectrum Scale/GPFS NSD, ceph-disk OSD
/// data and journal).
pub const CLUSTER_PART_TYPES: &[(&str, &str)] = &[
    (
        "37affc90-ef7d-4e96-91c3-2d7ae055b174",
        "IBM GPFS (Spectrum Scale) NSD",
    ),
    ("4fbd7e29-9d25-41b8-afd0-062c0ceff05d", "Ceph OSD data"),
    ("45b0969e-9b03-4f30-b4c6-b4b80ceff106", "Ceph OSD journal"),
];

/// A cluster file system or shared volume signature (see `CLUSTER_FS`).
fn cluster_fs(
    head: &[u8],
    read: &mut dyn FnMut(u64, usize) -> Option<Vec<u8>>,
    size: u64,
) -> Option<FsInfo> {
    let at = |o: usize, n: usize| head.get(o..o + n);
    if at(0, 22) == Some(b"bluestore block device") {
        // The OSD's UUID follows as text after a newline, which makes
        // blkid (2.38) report none; neither do we.
        return Some(info("ceph_bluestore", None, None));
    }
    // GFS and GFS2: meta header magic, type 1 (superblock), then the
    // on-disk format (GFS 1309, GFS2 1801 or 1802). blkid's LABEL is the
    // lock table ("cluster:fsname"), its UUID GFS2's sb_uuid.
    let be32 = |o: usize| at(o, 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    const GFS_SB: usize = 65536;
    if be32(GFS_SB) == Some(0x0116_1970) && be32(GFS_SB + 4) == Some(1) {
        let lock_table = at(GFS_SB + 160, 64).and_then(label);
        match be32(GFS_SB + 24) {
            Some(1801 | 1802) => {
                let id = at(GFS_SB + 256, 16).and_then(uuid);
                return Some(info("gfs2", lock_table, id).v("1"));
            }
            Some(1309) => return Some(info("gfs", lock_table, None).v("1")),
            _ => {}
        }
    }
    // OCFS2: the superblock is block 2 for block sizes 512 B to 4 KiB;
    // the super block proper starts at 0xC0 in it.
    for kb in [1usize, 2, 4, 8] {
        let o = kb * 1024;
        if at(o, 6) == Some(b"OCFSV2") {
            let s = o + 0xc0;
            let f = info(
                "ocfs2",
                at(s + 80, 64).and_then(label),
                at(s + 144, 16).and_then(uuid),
            );
            return Some(match (at(s, 2), at(s + 2, 2)) {
                (Some(a), Some(b)) => f.v(format!("{}.{}", le16(a, 0), le16(b, 0))),
                _ => f,
            });
        }
    }
    // VMFS: the LVM-like volume header at 1 MiB, the file system at 2 MiB.
    // UUIDs as blkid spells them: the first two groups byte-reversed.
    let vmfs_uuid = |u: &[u8]| {
        let h = |r: &[u8]| r.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let rev = |r: &[u8]| {
            r.iter()
                .rev()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        };
        format!(
            "{}-{}-{}-{}",
            rev(&u[0..4]),
            rev(&u[4..8]),
            rev(&u[8..10]),
            h(&u[10..16])
        )
    };
    if size >= (1 << 20) + 567 {
        if let Some(b) = read(1 << 20, 567).filter(|b| b.len() == 567) {
            if le32(&b, 0) == 0xc001_d00d {
                // The LVM-style device UUID is text at +532; the volume's
                // own UUID is only UUID_SUB there.
                return Some(
                    info("VMFS_volume_member", None, label(&b[532..567]))
                        .v(le32(&b, 4).to_string()),
                );
            }
        }
    }
    if size >= (2 << 20) + 157 {
        if let Some(b) = read(2 << 20, 157).filter(|b| b.len() == 157) {
            if le32(&b, 0) == 0x2fab_f15e {
                return Some(
                    info("VMFS", label(&b[29..157]), Some(vmfs_uuid(&b[9..25])))
                        .v(b[8].to_string()),
                );
            }
        }
    }
    None
}

/// The ISO 9660 label as blkid gives it: the Joliet (UTF-16BE) volume id
/// when a Joliet descriptor exists and says more than the primary one
/// (which is limited to upper-case ASCII), else the primary volume id.
fn iso_label(head: &[u8], pvd_label: &[u8]) -> Option<String> {
    // Volume descriptors follow the primary one, up to 16, until type 255.
    for i in 1..16 {
        let o = 32768 + i * 2048;
        let Some(vd) = head.get(o..o + 2048) else {
            break;
        };
        match vd[0] {
            0xff => break,
            2 if matches!(&vd[88..91], b"%/@" | b"%/C" | b"%/E") => {
                let j = &vd[40..72];
                let same = j
                    .chunks_exact(2)
                    .zip(pvd_label)
                    .all(|(u, &a)| u[0] == 0 && u[1] == a);
                if same {
                    break;
                }
                let units: Vec<u16> = j
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .take_while(|&c| c != 0)
                    .collect();
                let s = String::from_utf16_lossy(&units).trim_end().to_string();
                return (!s.is_empty()).then_some(s);
            }
            _ => {}
        }
    }
    label(pvd_label)
}

/// An MD 0.90 superblock at byte `off` of a device of `size` bytes. Its
/// UUID words are stored in host (little-endian) order and printed
/// byte-swapped, as blkid does.
fn md090(b: &[u8], off: u64, size: u64) -> Option<FsInfo> {
    if b.len() < 64 || le32(b, 0) != 0xa92b_4efc {
        return None;
    }
    let used = (le32(b, 32) as u64) << 10;
    if size < used + 0x10000 || off < used {
        return None;
    }
    let mut u = Vec::with_capacity(16);
    u.extend(le32(b, 20).to_be_bytes());
    if le32(b, 8) >= 90 {
        for o in [52, 56, 60] {
            u.extend(le32(b, o).to_be_bytes());
        }
    } else {
        u.extend([0u8; 12]);
    }
    let version = format!("{}.{}.{}", le32(b, 4), le32(b, 8), le32(b, 12));
    Some(info("linux_raid_member", None, uuid(&u)).v(version))
}

/// An MD 1.x superblock found at byte `off`: `super_offset` (+144) must
/// point back at it and the checksum over the superblock and its
/// `max_dev` role entries must hold, as blkid checks.
fn md1(read: &mut dyn FnMut(u64, usize) -> Option<Vec<u8>>, off: u64) -> Option<FsInfo> {
    let b = read(off, 256)?;
    if b.len() < 256 || le32(&b, 0) != 0xa92b_4efc || le32(&b, 4) != 1 || le64(&b, 144) != off >> 9
    {
        return None;
    }
    // max_dev is at most a few thousand; anything larger is not an MD
    // superblock (and must not size a read).
    let max_dev = le32(&b, 220) as usize;
    if max_dev > 65536 {
        return None;
    }
    let n = 256 + 2 * max_dev;
    let mut full = read(off, n)?;
    if full.len() < n {
        return None;
    }
    full[216..220].fill(0);
    if md1_csum(&full) != le32(&b, 216) {
        return None;
    }
    Some(info(
        "linux_raid_member",
        label(&b[32..64]),
        uuid(&b[16..32]),
    ))
}

/// mdadm's 1.x checksum: 32-bit little-endian words (and a trailing
/// 16-bit one) summed in 64 bits, then folded.
pub fn md1_csum(b: &[u8]) -> u32 {
    let mut sum: u64 = 0;
    let mut chunks = b.chunks_exact(4);
    for c in &mut chunks {
        sum += u32::from_le_bytes(c.try_into().unwrap()) as u64;
    }
    if let [x, y] = chunks.remainder() {
        sum += u16::from_le_bytes([*x, *y]) as u64;
    }
    ((sum & 0xffff_ffff) + (sum >> 32)) as u32
}

/// Is this a FAT boot sector? Returns (is FAT32, serial offset).
fn fat_boot_sector(b: &[u8]) -> Option<(bool, usize)> {
    if b.len() < 512 || b[510] != 0x55 || b[511] != 0xaa {
        return None;
    }
    let bps = le16(b, 11);
    let spc = b[13];
    let fats = b[16];
    let valid_geometry = matches!(bps, 512 | 1024 | 2048 | 4096)
        && spc != 0
        && spc.is_power_of_two()
        && (1..=4).contains(&fats);
    if !valid_geometry {
        return None;
    }
    if &b[82..87] == b"FAT32" {
        Some((true, 67))
    } else if &b[54..57] == b"FAT" {
        Some((false, 39))
    } else {
        None
    }
}

/// The volume-label entry of a FAT directory (`entries` 32-byte entries
/// at `off`): not free, no cluster, not a long-name part, volume-id bit
/// without the directory bit.
fn fat_dir_label(
    read: &mut dyn FnMut(u64, usize) -> Option<Vec<u8>>,
    off: u64,
    entries: usize,
) -> Option<String> {
    let dir = read(off, entries.min(65536) * 32)?;
    for e in dir.chunks_exact(32) {
        if e[0] == 0 {
            break;
        }
        let attr = e[11];
        if e[0] == 0xe5 || le16(e, 20) != 0 || le16(e, 26) != 0 || attr & 0x3f == 0x0f {
            continue;
        }
        if attr & 0x18 == 0x08 {
            let mut name = e[..11].to_vec();
            if name[0] == 0x05 {
                name[0] = 0xe5;
            }
            return label(&name);
        }
    }
    None
}

/// FAT12/16/32. As blkid: LABEL is the root directory's volume-label
/// entry (the boot sector's copy is only LABEL_FATBOOT there), UUID the
/// volume serial when the extended boot signature says it is set.
fn vfat(b: &[u8], read: &mut dyn FnMut(u64, usize) -> Option<Vec<u8>>) -> Option<FsInfo> {
    let (fat32, id_off) = fat_boot_sector(b)?;
    let bps = le16(b, 11) as u64;
    let spc = b[13] as u64;
    let reserved = le16(b, 14) as u64;
    let fats = b[16] as u64;
    let lbl = if !fat32 {
        let root = (reserved + fats * le16(b, 22) as u64) * bps;
        fat_dir_label(read, root, le16(b, 17) as usize)
    } else {
        // Follow the root directory's cluster chain (bounded).
        let fat_len = le32(b, 36) as u64;
        let data = reserved + fats * fat_len;
        let max = fat_len * bps / 4;
        let mut next = le32(b, 44) as u64;
        let mut found = None;
        for _ in 0..100 {
            if next < 2 || next >= max {
                break;
            }
            let off = (data + (next - 2) * spc) * bps;
            if let Some(l) = fat_dir_label(read, off, (spc * bps / 32) as usize) {
                found = Some(l);
                break;
            }
            let Some(e) = read(reserved * bps + next * 4, 4) else {
                break;
            };
            if e.len() < 4 {
                break;
            }
            next = (le32(&e, 0) & 0x0fff_ffff) as u64;
        }
        found
    };
    let sig = b[id_off - 1];
    let uuid = (sig == 0x29 || (!fat32 && sig == 0x28)).then(|| {
        let id = le32(b, id_off);
        format!("{:04X}-{:04X}", id >> 16, id & 0xffff)
    });
    // blkid's VERSION: FAT32, or FAT12/FAT16 by the count of clusters.
    let version = if fat32 {
        "FAT32"
    } else {
        let total = match le16(b, 19) {
            0 => le32(b, 32) as u64,
            n => n as u64,
        };
        let root_secs = (le16(b, 17) as u64 * 32).div_ceil(bps);
        let meta = reserved + fats * le16(b, 22) as u64 + root_secs;
        if total.saturating_sub(meta) / spc < 0xff4 {
            "FAT12"
        } else {
            "FAT16"
        }
    };
    Some(info("vfat", lbl, uuid).v(version))
}

/// A partition table: blkid's PTTYPE and PTUUID, and per entry the
/// PART_ENTRY_* values (what lsblk shows as PARTUUID, PARTLABEL, PARTTYPE).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartTable {
    /// `gpt` or `dos`.
    pub kind: &'static str,
    pub uuid: Option<String>,
    pub entries: Vec<PartEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PartEntry {
    /// The kernel's partition number (GPT slot + 1; DOS 1-4, logical 5+).
    pub number: u32,
    pub start_lba: u64,
    pub uuid: Option<String>,
    pub name: Option<String>,
    /// GPT type GUID, or the DOS type byte as `0x83`.
    pub type_id: String,
}

/// GUID in its text form: the first three fields are little-endian.
fn guid(b: &[u8]) -> Option<String> {
    if b.iter().all(|&x| x == 0) {
        return None;
    }
    let mut v = b[..16].to_vec();
    v[0..4].reverse();
    v[4..6].reverse();
    v[6..8].reverse();
    uuid(&v)
}

/// Partition table type of a whole disk: `gpt` or `dos`, as blkid's PTTYPE.
pub fn partition_table(
    read: &mut dyn FnMut(u64, usize) -> Option<Vec<u8>>,
    sector: u64,
) -> Option<&'static str> {
    partitions(read, sector).map(|t| t.kind)
}

/// Read a GPT (at LBA 1 for the logical sector size) or a DOS table with
/// its extended-partition chain.
pub fn partitions(
    read: &mut dyn FnMut(u64, usize) -> Option<Vec<u8>>,
    sector: u64,
) -> Option<PartTable> {
    for ss in [sector, 512, 4096] {
        let Some(h) = read(ss, 92) else { continue };
        if h.len() < 92 || &h[..8] != b"EFI PART" {
            continue;
        }
        let lba = le64(&h, 72);
        let count = le32(&h, 80).min(1024) as usize;
        let esz = le32(&h, 84) as usize;
        let mut t = PartTable {
            kind: "gpt",
            uuid: guid(&h[56..72]),
            entries: Vec::new(),
        };
        // A corrupt header must not make us read gigabytes.
        if !(128..=4096).contains(&esz) {
            return Some(t);
        }
        let all = read(lba.saturating_mul(ss), count * esz).unwrap_or_default();
        for (i, e) in all.chunks_exact(esz).enumerate() {
            let Some(type_id) = guid(&e[0..16]) else {
                continue;
            };
            let name: Vec<u16> = e[56..128]
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .take_while(|&c| c != 0)
                .collect();
            let name = String::from_utf16_lossy(&name);
            t.entries.push(PartEntry {
                number: i as u32 + 1,
                start_lba: le64(e, 32),
                uuid: guid(&e[16..32]),
                name: (!name.is_empty()).then_some(name),
                type_id,
            });
        }
        return Some(t);
    }
    let mbr = read(0, 512)?;
    if mbr.len() < 512
        || mbr[510] != 0x55
        || mbr[511] != 0xaa
        || fat_boot_sector(&mbr).is_some()
        || &mbr[3..7] == b"NTFS"
    {
        return None;
    }
    // Each entry's status byte is 0x00 or 0x80.
    let ok = (0..4).all(|i| matches!(mbr[446 + i * 16], 0x00 | 0x80));
    let any = (0..4).any(|i| mbr[446 + i * 16 + 4] != 0);
    if !(ok && any) {
        return None;
    }
    let id = le32(&mbr, 440);
    let puuid = |n: u32| (id != 0).then(|| format!("{id:08x}-{n:02x}"));
    let mut t = PartTable {
        kind: "dos",
        uuid: (id != 0).then(|| format!("{id:08x}")),
        entries: Vec::new(),
    };
    let mut extended = None;
    for i in 0..4 {
        let e = &mbr[446 + i * 16..462 + i * 16];
        let kind = e[4];
        if kind == 0 {
            continue;
        }
        let start = le32(e, 8) as u64;
        if matches!(kind, 0x05 | 0x0f | 0x85) {
            extended = extended.or(Some(start));
        }
        t.entries.push(PartEntry {
            number: i as u32 + 1,
            start_lba: start,
            uuid: puuid(i as u32 + 1),
            name: None,
            type_id: format!("0x{kind:x}"),
        });
    }
    // Logical partitions: a chain of EBRs, each relative to the extended
    // partition's start (bounded against loops).
    if let Some(ext) = extended {
        let mut ebr = ext;
        let mut n = 5;
        for _ in 0..128 {
            let Some(b) = read(ebr * 512, 512) else { break };
            if b.len() < 512 || b[510] != 0x55 || b[511] != 0xaa {
                break;
            }
            let e = &b[446..462];
            if e[4] != 0 {
                t.entries.push(PartEntry {
                    number: n,
                    start_lba: ebr + le32(e, 8) as u64,
                    uuid: puuid(n),
                    name: None,
                    type_id: format!("0x{:x}", e[4]),
                });
                n += 1;
            }
            let next = &b[462..478];
            if next[4] == 0 || le32(next, 8) == 0 {
                break;
            }
            ebr = ext + le32(next, 8) as u64;
        }
    }
    Some(t)
}

/// Probe an open device or image file of `size` bytes.
pub fn probe_file(f: &File, size: u64) -> Option<FsInfo> {
    let mut r = reader(f);
    probe(&mut r, size)
}

/// Adapter: read from an open device or image file.
pub fn reader(f: &File) -> impl FnMut(u64, usize) -> Option<Vec<u8>> + '_ {
    move |off, len| {
        // Every probe reads a few KiB to a few MiB; refuse anything else.
        if len > 16 << 20 {
            return None;
        }
        let mut buf = vec![0u8; len];
        let mut got = 0;
        while got < len {
            let at = off.checked_add(got as u64)?;
            match f.read_at(&mut buf[got..], at) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(_) => return None,
            }
        }
        buf.truncate(got);
        (got > 0).then_some(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe_vec(v: &[u8]) -> Option<FsInfo> {
        let mut r = |off: u64, len: usize| {
            let o = off as usize;
            (o < v.len()).then(|| v[o..(o + len).min(v.len())].to_vec())
        };
        probe(&mut r, v.len() as u64)
    }

    #[test]
    fn lvm2_label() {
        let mut v = vec![0u8; 1 << 20];
        v[512..520].copy_from_slice(b"LABELONE");
        v[520..528].copy_from_slice(&1u64.to_le_bytes());
        v[512 + 20..512 + 24].copy_from_slice(&32u32.to_le_bytes());
        v[512 + 24..512 + 32].copy_from_slice(b"LVM2 001");
        v[544..576].copy_from_slice(b"abcdefghijklmnopqrstuvwxyz012345");
        let f = probe_vec(&v).unwrap();
        assert_eq!(f.kind, "LVM2_member");
        assert_eq!(
            f.uuid.as_deref(),
            Some("abcdef-ghij-klmn-opqr-stuv-wxyz-012345")
        );
        // A label that names another sector is not one.
        v[520] = 2;
        assert_eq!(probe_vec(&v), None);
    }

    #[test]
    fn md_0_90_at_end() {
        let size = 1usize << 20;
        let mut v = vec![0u8; size];
        let off = size - 65536;
        v[off..off + 4].copy_from_slice(&0xa92b_4efcu32.to_le_bytes());
        v[off + 8..off + 12].copy_from_slice(&90u32.to_le_bytes());
        v[off + 20..off + 24].copy_from_slice(&0x0102_0304u32.to_le_bytes());
        v[off + 32..off + 36].copy_from_slice(&512u32.to_le_bytes()); // KiB used
        for (i, o) in [52, 56, 60].iter().enumerate() {
            v[off + o..off + o + 4].copy_from_slice(&(0x0a0b_0c00u32 + i as u32).to_le_bytes());
        }
        let f = probe_vec(&v).unwrap();
        assert_eq!(f.kind, "linux_raid_member");
        assert_eq!(
            f.uuid.as_deref(),
            Some("01020304-0a0b-0c00-0a0b-0c010a0b0c02")
        );
    }

    #[test]
    fn md_1_2_needs_matching_offset() {
        let mut v = vec![0u8; 1 << 20];
        let sb = 4096;
        v[sb..sb + 4].copy_from_slice(&0xa92b_4efcu32.to_le_bytes());
        v[sb + 4..sb + 8].copy_from_slice(&1u32.to_le_bytes());
        v[sb + 16..sb + 32].copy_from_slice(&[0x11; 16]);
        v[sb + 32..sb + 38].copy_from_slice(b"host:0");
        v[sb + 144..sb + 152].copy_from_slice(&8u64.to_le_bytes());
        let c = md1_csum(&v[sb..sb + 256]);
        v[sb + 216..sb + 220].copy_from_slice(&c.to_le_bytes());
        let f = probe_vec(&v).unwrap();
        assert_eq!(f.kind, "linux_raid_member");
        assert_eq!(f.label.as_deref(), Some("host:0"));
        assert_eq!(
            f.uuid.as_deref(),
            Some("11111111-1111-1111-1111-111111111111")
        );
        // A wrong checksum, or an offset that does not point back: nothing.
        v[sb + 216] ^= 1;
        assert_eq!(probe_vec(&v), None);
        v[sb + 216] ^= 1;
        v[sb + 144] = 9;
        assert_eq!(probe_vec(&v), None);
    }

    #[test]
    fn iso9660_joliet_label_wins_when_it_says_more() {
        let (mut v, svd) = speediso_testsupport::images::joliet_iso();
        let f = probe_vec(&v).unwrap();
        assert_eq!(f.kind, "iso9660");
        assert_eq!(f.label.as_deref(), Some("Speediso Live"));
        // Modification time unset (all '0', zone 0): the creation time.
        assert_eq!(f.uuid.as_deref(), Some("2024-01-02-03-04-05-00"));
        // Without the Joliet descriptor: the primary label.
        v[svd] = 0xff;
        assert_eq!(probe_vec(&v).unwrap().label.as_deref(), Some("SPEEDISO"));
    }

    #[test]
    fn corrupt_headers_do_not_size_reads() {
        let mut v = vec![0u8; 1 << 20];
        v[512..520].copy_from_slice(b"EFI PART");
        v[512 + 72..512 + 80].copy_from_slice(&2u64.to_le_bytes());
        v[512 + 80..512 + 84].copy_from_slice(&u32::MAX.to_le_bytes());
        v[512 + 84..512 + 88].copy_from_slice(&u32::MAX.to_le_bytes());
        let mut v2 = v.clone();
        let mut r = |off: u64, len: usize| {
            assert!(len <= 16 << 20, "asked for {len} bytes");
            let o = off as usize;
            (o < v.len()).then(|| v[o..(o + len).min(v.len())].to_vec())
        };
        let t = partitions(&mut r, 512).unwrap();
        assert_eq!(t.kind, "gpt");
        assert!(t.entries.is_empty());
        // An entry array "at" LBA 2^63: no overflow, no entries.
        v2[512 + 72..512 + 80].copy_from_slice(&(1u64 << 63).to_le_bytes());
        v2[512 + 84..512 + 88].copy_from_slice(&128u32.to_le_bytes());
        let mut r2 = |off: u64, len: usize| {
            let o = off as usize;
            (o < v2.len()).then(|| v2[o..(o + len).min(v2.len())].to_vec())
        };
        assert!(partitions(&mut r2, 512).unwrap().entries.is_empty());
        let mut md = vec![0u8; 1 << 20];
        md[4096..4100].copy_from_slice(&0xa92b_4efcu32.to_le_bytes());
        md[4100..4104].copy_from_slice(&1u32.to_le_bytes());
        md[4096 + 144..4096 + 152].copy_from_slice(&8u64.to_le_bytes());
        md[4096 + 220..4096 + 224].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(probe_vec(&md), None);
    }

    /// Every signature, on devices cut short at every interesting size:
    /// no panic, whatever is found.
    #[test]
    fn truncated_devices_do_not_panic() {
        let mut full = vec![0u8; 70000];
        full[0..4].copy_from_slice(b"XFSB");
        full[1024 + 0x38..1024 + 0x3a].copy_from_slice(&0xef53u16.to_le_bytes());
        full[65536 + 64..65536 + 72].copy_from_slice(b"_BHRfS_M");
        full[32768..32774].copy_from_slice(b"\x01CD001");
        full[3..11].copy_from_slice(b"NTFS    ");
        full[510] = 0x55;
        full[511] = 0xaa;
        full[4086..4096].copy_from_slice(b"SWAPSPACE2");
        let cuts = [
            1024, 1100, 2047, 2048, 4095, 4096, 32800, 34815, 65600, 65700, 66090, 70000,
        ];
        for &n in &cuts {
            for variant in 0..4 {
                let mut v = full[..n].to_vec();
                match variant {
                    1 => v[0..4].fill(0),
                    2 => {
                        v[0..4].fill(0);
                        if let Some(b) = v.get_mut(1024 + 0x38) {
                            *b = 0;
                        }
                    }
                    3 => v.iter_mut().take(60000).for_each(|b| *b = 0),
                    _ => {}
                }
                let _ = probe_vec(&v);
            }
        }
    }

    /// Each newer magic alone in a sea of 0xff (every length and offset
    /// field at its maximum), cut at many sizes: no panic, no huge read.
    #[test]
    fn magics_over_garbage_do_not_panic() {
        let magics: &[(usize, &[u8])] = &[
            (0, b"hsqs"),
            (0, &[0x45, 0x3d, 0xcd, 0x28]),
            (1024, &[0xe2, 0xe1, 0xf5, 0xe0]),
            (1024, &[0x10, 0x20, 0xf5, 0xf2]),
            (32768, b"JFS1"),
            (65536 + 52, b"ReIsEr2Fs"),
            (1024 + 6, &[0x34, 0x34]),
            (1024 + 16, &[0x7f, 0x13]),
            (4096 + 24, &[0xc6, 0x85, 0x73, 0xf6]),
            (3, b"NTFS    "),
            (0, b"\xeb\x76\x90EXFAT   "),
            (0, b"\xeb\x58\x90-FVE-FS-"),
            (32769, b"NSR03"),
            (0, b"bluestore block device"),
        ];
        for &(off, m) in magics {
            let mut full = vec![0xffu8; 70000];
            full[off..off + m.len()].copy_from_slice(m);
            for cut in [1024, 1100, 2048, 4200, 33000, 65600, 70000] {
                let v = &full[..cut];
                let mut r = |o: u64, len: usize| {
                    assert!(len <= 16 << 20, "asked for {len} bytes");
                    let o = o as usize;
                    (o < v.len()).then(|| v[o..(o + len).min(v.len())].to_vec())
                };
                let _ = probe(&mut r, v.len() as u64);
                // The same bytes claiming to be a 1 TiB device.
                let _ = probe(&mut r, 1 << 40);
            }
        }
    }

    #[test]
    fn cluster_file_systems() {
        let kind = |v: &[u8]| probe_vec(v).map(|f| f.kind);
        let mut v = vec![0u8; 4 << 20];
        v[..23].copy_from_slice(b"bluestore block device\n");
        assert_eq!(kind(&v).as_deref(), Some("ceph_bluestore"));
        let mut v = vec![0u8; 4 << 20];
        v[65536..65540].copy_from_slice(&0x0116_1970u32.to_be_bytes());
        v[65540..65544].copy_from_slice(&1u32.to_be_bytes());
        v[65536 + 24..65536 + 28].copy_from_slice(&1801u32.to_be_bytes());
        assert_eq!(kind(&v).as_deref(), Some("gfs2"));
        v[65536 + 24..65536 + 28].copy_from_slice(&1309u32.to_be_bytes());
        assert_eq!(kind(&v).as_deref(), Some("gfs"));
        let mut v = vec![0u8; 4 << 20];
        v[4096..4102].copy_from_slice(b"OCFSV2");
        assert_eq!(kind(&v).as_deref(), Some("ocfs2"));
        let mut v = vec![0u8; 4 << 20];
        v[1 << 20..(1 << 20) + 4].copy_from_slice(&0xc001_d00du32.to_le_bytes());
        assert_eq!(kind(&v).as_deref(), Some("VMFS_volume_member"));
        let mut v = vec![0u8; 4 << 20];
        v[2 << 20..(2 << 20) + 4].copy_from_slice(&0x2fab_f15eu32.to_le_bytes());
        assert_eq!(kind(&v).as_deref(), Some("VMFS"));
        // Every kind found has its evidence in the table the wipe uses.
        for k in [
            "ceph_bluestore",
            "gfs2",
            "gfs",
            "ocfs2",
            "VMFS_volume_member",
            "VMFS",
        ] {
            assert!(CLUSTER_FS.iter().any(|(n, _)| *n == k), "{k}");
        }
    }

    #[test]
    fn nothing_on_zeros() {
        assert_eq!(probe_vec(&vec![0u8; 1 << 20]), None);
        assert_eq!(probe_vec(&[0u8; 100]), None);
    }

    #[test]
    fn swap_label_uuid() {
        let mut v = vec![0u8; 1 << 20];
        v[4086..4096].copy_from_slice(b"SWAPSPACE2");
        v[1036..1052].copy_from_slice(&[0xab; 16]);
        v[1052..1056].copy_from_slice(b"swp\0");
        let f = probe_vec(&v).unwrap();
        assert_eq!(f.kind, "swap");
        assert_eq!(f.label.as_deref(), Some("swp"));
        assert_eq!(
            f.uuid.as_deref(),
            Some("abababab-abab-abab-abab-abababababab")
        );
    }
}
