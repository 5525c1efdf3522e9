//! Formats of other systems a server disk may carry: NTFS and exFAT with
//! their labels, BitLocker, UDF, and ZFS vdev labels. Each follows what
//! blkid reads (util-linux `libblkid/src/superblocks/`), including its
//! spelling of UUIDs.

use super::linux::utf16le;
use super::{info, label, le16, le32, le64, FsInfo};

type Read<'a> = &'a mut dyn FnMut(u64, usize) -> Option<Vec<u8>>;

/// BitLocker: the boot sector's OEM id (Vista, 7, To Go) and, but for
/// Vista, an FVE metadata block where the header says; VERSION is that
/// block's version, UUID the (usually zero, then absent) volume serial.
pub(super) fn bitlocker(head: &[u8], read: Read) -> Option<FsInfo> {
    let start = head.get(..11)?;
    let meta_at = match start {
        b"\xeb\x52\x90-FVE-FS-" => return Some(info("BitLocker", None, None)),
        b"\xeb\x58\x90-FVE-FS-" => 176,
        b"\xeb\x58\x90MSWIN4.1" => 440,
        _ => return None,
    };
    let off = le64(head.get(..meta_at + 8)?, meta_at);
    if off == 0 {
        return None;
    }
    let fve = read(off, 12).filter(|b| b.len() == 12)?;
    if &fve[..8] != b"-FVE-FS-" {
        return None;
    }
    let serial = le32(head, 67);
    let id = (meta_at == 176 && serial != 0).then(|| format!("{:016}", serial as i32));
    Some(info("BitLocker", None, id).v(le16(&fve, 10).to_string()))
}

/// NTFS: the boot sector's geometry must be sane, the MFT must start with
/// a FILE record; LABEL is $Volume's (record 3) VOLUME_NAME attribute,
/// UUID the 64-bit serial in upper-case hex.
pub(super) fn ntfs(head: &[u8], read: Read) -> Option<FsInfo> {
    let b = head.get(..80)?;
    if &b[3..11] != b"NTFS    " {
        return None;
    }
    let ss = le16(b, 11) as u64;
    let spc = b[13] as u64;
    if !(256..=4096).contains(&ss) || !spc.is_power_of_two() || ss * spc > 65536 {
        return None;
    }
    if le16(b, 14) != 0
        || le16(b, 17) != 0
        || le16(b, 19) != 0
        || le16(b, 22) != 0
        || le32(b, 32) != 0
        || b[16] != 0
    {
        return None;
    }
    let cpr = b[64] as i8;
    if !(0xe1..=0xf7).contains(&b[64]) && !matches!(cpr, 1 | 2 | 4 | 8 | 16 | 32 | 64) {
        return None;
    }
    let rec = if cpr > 0 {
        cpr as u64 * spc * ss
    } else {
        1u64 << (-(cpr as i32))
    };
    let clusters = le64(b, 40) / spc;
    if le64(b, 48) > clusters || le64(b, 56) > clusters {
        return None;
    }
    // Checked: the sector count (and so the MFT's cluster) is untrusted.
    let mft = le64(b, 48).checked_mul(ss * spc)?;
    let rec0 = read(mft, 4)?;
    if rec0 != b"FILE" {
        return None;
    }
    let vol = read(mft.checked_add(3 * rec)?, rec as usize)?;
    if vol.len() < 32 || &vol[..4] != b"FILE" {
        return None;
    }
    let mut lbl = None;
    let mut off = le16(&vol, 20) as usize;
    let allocated = le32(&vol, 28) as usize;
    while off + 24 <= vol.len() && off <= allocated {
        let ty = le32(&vol, off);
        let len = le32(&vol, off + 4) as usize;
        if len == 0 || ty == 0xffff_ffff {
            break;
        }
        if ty == 0x60 {
            let v = off + le16(&vol, off + 20) as usize;
            let n = le32(&vol, off + 16) as usize;
            lbl = vol.get(v..v.saturating_add(n)).and_then(utf16le);
            break;
        }
        off = off.saturating_add(len);
    }
    let serial = le64(b, 72);
    Some(info(
        "ntfs",
        lbl,
        (serial != 0).then(|| format!("{serial:016X}")),
    ))
}

/// exFAT: a valid boot region (jump, zero field, boot checksum), LABEL
/// from the root directory's volume-label entry (UTF-16, up to 11
/// characters), UUID the serial, VERSION the revision.
pub(super) fn exfat(head: &[u8], read: Read) -> Option<FsInfo> {
    let b = head.get(..512)?;
    if &b[3..11] != b"EXFAT   " || &b[..3] != b"\xeb\x76\x90" || le16(b, 510) != 0xaa55 {
        return None;
    }
    if b[11..64].iter().any(|&x| x != 0) {
        return None;
    }
    let (ss_shift, spc_shift) = (b[108] as u32, b[109] as u32);
    if ss_shift + spc_shift >= 32 || !(9..=12).contains(&ss_shift) {
        return None;
    }
    let ss = 1usize << ss_shift;
    let cluster = (ss as u64) << spc_shift;
    // The boot checksum over 11 sectors (flags and percent-in-use
    // excluded) repeated through the 12th.
    let region = head.get(..ss * 12)?;
    let mut sum: u32 = 0;
    for (i, &x) in region[..ss * 11].iter().enumerate() {
        if matches!(i, 106 | 107 | 112) {
            continue;
        }
        sum = sum.rotate_right(1).wrapping_add(x as u32);
    }
    if region[ss * 11..]
        .chunks_exact(4)
        .any(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) != sum)
    {
        return None;
    }
    let heap = le32(b, 88) as u64;
    let fat = (le32(b, 80) as u64) << ss_shift;
    // Wrapping: a bad cluster number gives an offset past the end, whose
    // read fails, never an overflow.
    let to_off = |c: u32| (heap.wrapping_add((c as u64).wrapping_sub(2) << spc_shift)) << ss_shift;
    let mut c = le32(b, 96);
    let mut off = to_off(c);
    let mut lbl = None;
    // Bounded: 256 MiB of directory, as blkid.
    for _ in 0..(256usize << 20) / 32 {
        let Some(e) = read(off, 32).filter(|e| e.len() == 32) else {
            break;
        };
        if e[0] == 0 {
            break;
        }
        if e[0] == 0x83 {
            let n = (e[1] as usize * 2).min(22);
            lbl = utf16le(&e[2..2 + n]);
            break;
        }
        off = off.wrapping_add(32);
        if off % cluster == 0 {
            let Some(next) = read(fat + c as u64 * 4, 4).filter(|n| n.len() == 4) else {
                break;
            };
            c = le32(&next, 0);
            if !(2..=0xffffff6).contains(&c) {
                break;
            }
            off = to_off(c);
        }
    }
    let id = le32(b, 100);
    Some(
        info(
            "exfat",
            lbl,
            (id != 0).then(|| format!("{:04X}-{:04X}", id >> 16, id & 0xffff)),
        )
        .v(format!("{}.{}", b[105], b[104])),
    )
}

/// A UDF "dstring": compression id 8 (Latin-1) or 16 (UTF-16BE), the used
/// length (with the id) in the last byte. `None` for another id.
fn dstring(d: &[u8]) -> Option<String> {
    let n = (d[d.len() - 1] as usize).saturating_sub(1).min(d.len() - 2);
    let c = &d[1..1 + n];
    let s: String = match d[0] {
        8 => c.iter().map(|&x| x as char).collect(),
        16 => {
            let u: Vec<u16> = c
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]))
                .collect();
            String::from_utf16_lossy(&u)
        }
        _ => return None,
    };
    Some(s.split('\0').next().unwrap_or("").to_string())
}

/// blkid's UDF UUID: from the first 16 UTF-8 bytes of the volume set id;
/// all hex digits: themselves (lower case); else the first 8 if hex plus 4
/// bytes in hex; else 8 bytes in hex.
fn udf_uuid(volset: &[u8]) -> Option<String> {
    let s = dstring(volset)?;
    let mut buf = [0u8; 16];
    let bytes = s.as_bytes();
    let len = bytes.len().min(16);
    buf[..len].copy_from_slice(&bytes[..len]);
    if len < 8 {
        return None;
    }
    let hex = |r: &[u8]| r.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let lower = |r: &[u8]| String::from_utf8_lossy(r).to_ascii_lowercase();
    let nonhex = buf
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(16);
    Some(if nonhex < 8 {
        hex(&buf[..8])
    } else if nonhex < 16 {
        format!("{}{}", lower(&buf[..8]), hex(&buf[8..12]))
    } else {
        lower(&buf)
    })
}

/// UDF: a volume recognition sequence with NSR02/NSR03 at 32 KiB, the
/// anchor at block 256 (block size 512 B to 4 KiB, found by trying), then
/// the main volume descriptor sequence: LABEL from the logical volume id,
/// UUID from the volume set id, VERSION the UDF revision.
pub(super) fn udf(read: Read, size: u64) -> Option<FsInfo> {
    const IDS: [&[u8; 5]; 7] = [
        b"BEA01", b"BOOT2", b"CD001", b"CDW02", b"NSR02", b"NSR03", b"TEA01",
    ];
    let first = read(32768, 7)?;
    if first.len() < 6 || !IDS.iter().any(|id| first[1..6] == id[..]) {
        return None;
    }
    let mut bs = 0u64;
    let mut anchor = Vec::new();
    for try_bs in [512u64, 1024, 2048, 4096] {
        let vsd_len = try_bs.max(2048);
        let mut nsr = false;
        for b in 0..64 {
            let Some(v) = read(32768 + b * vsd_len, 7).filter(|v| v.len() == 7) else {
                break;
            };
            if v[1] == 0 {
                break;
            }
            if &v[1..6] == b"NSR02" || &v[1..6] == b"NSR03" {
                nsr = true;
                break;
            }
            if !IDS.iter().any(|id| v[1..6] == id[..]) {
                break;
            }
        }
        if !nsr || 257 * try_bs > size {
            continue;
        }
        if let Some(a) = read(256 * try_bs, 24).filter(|a| a.len() == 24) {
            if le32(&a, 12) == 256 && le16(&a, 0) == 2 {
                bs = try_bs;
                anchor = a;
                break;
            }
        }
    }
    if bs == 0 {
        return None;
    }
    let count = le32(&anchor, 16) as u64 / bs;
    let loc = le32(&anchor, 20) as u64;
    let (mut lbl, mut volid, mut id) = (None, None, None);
    let mut rev = 0u16;
    let mut lvid = (0u64, 0u32);
    for b in 0..count.min(256) {
        let Some(vd) = read((loc + b) * bs, 440).filter(|v| v.len() == 440) else {
            break;
        };
        let ty = le16(&vd, 0);
        if ty == 0 || le32(&vd, 12) as u64 != loc + b || ty == 8 {
            break;
        }
        if ty == 1 {
            volid = volid.or_else(|| dstring(&vd[24..56]));
            id = id.or_else(|| udf_uuid(&vd[72..200]));
        } else if ty == 6 {
            if lvid.0 == 0 && le32(&vd, 268) != 0 {
                lvid = (le32(&vd, 436) as u64, le32(&vd, 432));
            }
            if rev == 0 && vd[217..240].starts_with(b"*OSTA UDF Compliant") {
                rev = le16(&vd, 240);
            }
            lbl = lbl.or_else(|| dstring(&vd[84..212]));
        }
    }
    // The first logical volume integrity descriptor's minimum read
    // revision wins over the domain's.
    if lvid.0 != 0 && lvid.1 >= 440 {
        if let Some(d) = read(lvid.0 * bs, 80).filter(|d| d.len() == 80) {
            if le16(&d, 0) == 9 && le32(&d, 12) as u64 == lvid.0 && le32(&d, 76) >= 46 {
                let at = lvid.0 * bs + 80 + 8 * le32(&d, 72) as u64 + 40;
                if let Some(r) = read(at, 2).filter(|r| r.len() == 2) {
                    if le16(&r, 0) != 0 {
                        rev = le16(&r, 0);
                    }
                }
            }
        }
    }
    let trim = |s: Option<String>| {
        s.map(|s| s.trim_end().to_string())
            .filter(|s| !s.is_empty())
    };
    let f = info("udf", trim(lbl).or(trim(volid)), id);
    Some(if rev != 0 {
        f.v(format!("{}.{:02}", rev >> 8, rev & 0xff))
    } else {
        f
    })
}

/// C's `strncmp(name, want, n) == 0` over a name of `n` bytes.
fn nv_name_is(name: &[u8], want: &str) -> bool {
    let w = want.as_bytes();
    for (i, &c) in name.iter().enumerate() {
        let d = w.get(i).copied().unwrap_or(0);
        if c != d {
            return false;
        }
        if c == 0 {
            return true;
        }
    }
    true
}

/// ZFS vdev: at least four uberblocks (magic 0x00bab10c, either byte
/// order) in the labels at the start and end of the device; LABEL is the
/// pool name and UUID the pool GUID in decimal from the label's XDR
/// nvlist, VERSION the uberblock's SPA version.
pub(super) fn zfs(read: Read, size: u64) -> Option<FsInfo> {
    const LABEL: u64 = 256 << 10;
    const MAGIC: u64 = 0x00ba_b10c;
    if size < 64 << 20 {
        return None;
    }
    let align = size % LABEL;
    let mut found = 0;
    let mut hit = None;
    for label_off in [0, LABEL, size - 2 * LABEL - align, size - LABEL - align] {
        let ubs = read(label_off + (128 << 10), 128 << 10)?;
        let mut here = 0;
        for (i, ub) in ubs.chunks_exact(1024).enumerate() {
            let m = le64(ub, 0);
            if m == MAGIC || m == MAGIC.swap_bytes() {
                here += 1;
                let ver = le64(ub, 8);
                let ver = if m == MAGIC { ver } else { ver.swap_bytes() };
                hit = Some((label_off, i, ver));
            }
        }
        found += here;
        if found >= 4 {
            break;
        }
    }
    if found < 4 {
        return None;
    }
    let (label_off, _, version) = hit?;
    let nvl = read((label_off & !(LABEL - 1)) + (16 << 10), 4096).unwrap_or_default();
    let be32 = |o: usize| {
        nvl.get(o..o + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let (mut name, mut pool) = (None, None);
    let mut p = 12usize;
    let mut left = 4096usize - 12;
    let mut seen = 0;
    while left > 12 && seen < 3 {
        let (Some(sz), Some(nlen)) = (be32(p), be32(p + 8)) else {
            break;
        };
        let (sz, nlen) = (sz as usize, nlen as usize);
        if sz == 0 || left < sz || sz < nlen + 12 {
            break;
        }
        let mut avail = (sz - nlen - 12) as i64;
        let Some(nm) = nvl.get(p + 12..p + 12 + nlen) else {
            break;
        };
        let val = p + 12 + ((nlen + 3) & !3);
        if nv_name_is(nm, "name") {
            let (ty, len) = (be32(val), be32(val + 8).unwrap_or(0) as usize);
            avail -= len as i64 + 12;
            if ty == Some(9) && avail >= 0 {
                name = nvl.get(val + 12..val + 12 + len).and_then(label);
            }
            seen += 1;
        } else if nv_name_is(nm, "guid") {
            seen += 1;
        } else if nv_name_is(nm, "pool_guid") {
            avail -= 16;
            if be32(val) == Some(8) && avail >= 0 {
                if let Some(v) = nvl.get(val + 8..val + 16) {
                    let g = u64::from_be_bytes(v.try_into().unwrap());
                    pool = (g != 0).then(|| g.to_string());
                }
            }
            seen += 1;
        }
        left = left.saturating_sub(sz);
        p += sz;
    }
    Some(info("zfs_member", name, pool).v(version.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(v: &[u8]) -> impl FnMut(u64, usize) -> Option<Vec<u8>> + '_ {
        move |off, len| {
            let o = off as usize;
            (o < v.len()).then(|| v[o..(o + len).min(v.len())].to_vec())
        }
    }

    #[test]
    fn bitlocker_needs_its_metadata_block_but_vista() {
        let mut v = vec![0u8; 2 << 20];
        v[..11].copy_from_slice(b"\xeb\x58\x90MSWIN4.1");
        v[440..448].copy_from_slice(&(1u64 << 20).to_le_bytes());
        // A FAT32 boot sector with the same OEM id: not BitLocker.
        assert_eq!(bitlocker(&v[..4096], &mut reader(&v)), None);
        v[1 << 20..(1 << 20) + 8].copy_from_slice(b"-FVE-FS-");
        v[(1 << 20) + 10] = 1;
        let head = v[..4096].to_vec();
        let f = bitlocker(&head, &mut reader(&v)).unwrap();
        assert_eq!(
            (f.kind.as_str(), f.version.as_deref()),
            ("BitLocker", Some("1"))
        );
        let mut vista = vec![0u8; 512];
        vista[..11].copy_from_slice(b"\xeb\x52\x90-FVE-FS-");
        assert!(bitlocker(&vista, &mut reader(&vista)).is_some());
    }

    #[test]
    fn udf_uuid_follows_blkid_rules() {
        let d = |s: &str| {
            let mut v = vec![0u8; 128];
            v[0] = 8;
            v[1..1 + s.len()].copy_from_slice(s.as_bytes());
            v[127] = s.len() as u8 + 1;
            v
        };
        assert_eq!(
            udf_uuid(&d("6B16B4381C471FD6LinuxUDF")).as_deref(),
            Some("6b16b4381c471fd6")
        );
        assert_eq!(
            udf_uuid(&d("6b16b438Linux")).as_deref(),
            Some("6b16b4384c696e75")
        );
        assert_eq!(
            udf_uuid(&d("Volume Set 1")).as_deref(),
            Some("566f6c756d652053")
        );
        assert_eq!(udf_uuid(&d("short")), None);
    }

    #[test]
    fn zfs_wants_four_uberblocks_in_either_byte_order() {
        let mut v = vec![0u8; 64 << 20];
        let ub = |v: &mut Vec<u8>, label: usize, i: usize, be: bool| {
            let o = label + (128 << 10) + i * 1024;
            let (m, ver) = if be {
                (0x00ba_b10cu64.to_be_bytes(), 28u64.to_be_bytes())
            } else {
                (0x00ba_b10cu64.to_le_bytes(), 28u64.to_le_bytes())
            };
            v[o..o + 8].copy_from_slice(&m);
            v[o + 8..o + 16].copy_from_slice(&ver);
        };
        for i in 0..3 {
            ub(&mut v, 0, i, true);
        }
        let size = v.len() as u64;
        assert_eq!(zfs(&mut reader(&v), size), None);
        // The fourth in label 1; no nvlist: no name, no pool GUID.
        ub(&mut v, 256 << 10, 5, true);
        let f = zfs(&mut reader(&v), size).unwrap();
        assert_eq!(f.kind, "zfs_member");
        assert_eq!((f.label, f.uuid), (None, None));
        assert_eq!(f.version.as_deref(), Some("28"));
        // Too small for a pool member.
        assert_eq!(zfs(&mut reader(&v[..32 << 20]), 32 << 20), None);
    }

    #[test]
    fn ntfs_with_absurd_counts_is_nothing_not_a_panic() {
        let mut v = vec![0u8; 4096];
        v[3..11].copy_from_slice(b"NTFS    ");
        v[11..13].copy_from_slice(&512u16.to_le_bytes());
        v[13] = 128;
        v[64] = 0xf6; // 1 KiB records
        v[40..48].copy_from_slice(&u64::MAX.to_le_bytes());
        v[48..56].copy_from_slice(&(u64::MAX / 128 - 1).to_le_bytes());
        assert_eq!(ntfs(&v, &mut reader(&v)), None);
    }

    #[test]
    fn nv_names_compare_like_strncmp() {
        assert!(nv_name_is(b"name", "name"));
        assert!(nv_name_is(b"name\0", "name"));
        assert!(!nv_name_is(b"pool_guid", "guid"));
        assert!(!nv_name_is(b"names", "name"));
    }
}
