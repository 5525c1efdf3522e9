//! Linux file systems and caches beyond the common ones: bcache, squashfs,
//! cramfs, erofs, f2fs, jfs, reiserfs, nilfs2 and minix, each read from its
//! superblock as blkid reads it (util-linux `libblkid/src/superblocks/`).

use super::{info, label, le16, le32, le64, uuid, FsInfo};

/// Little-endian UTF-16 text up to the first NUL, trimmed; `None` if empty.
pub(super) fn utf16le(b: &[u8]) -> Option<String> {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .take_while(|&c| c != 0)
        .collect();
    let s = String::from_utf16_lossy(&units).trim_end().to_string();
    (!s.is_empty()).then_some(s)
}

/// bcache backing or cache device: superblock at 4 KiB that names its own
/// sector (8), then bcache's magic; UUID is the device's (not the set's).
pub(super) fn bcache(head: &[u8]) -> Option<FsInfo> {
    const MAGIC: [u8; 16] = [
        0xc6, 0x85, 0x73, 0xf6, 0x4e, 0x1a, 0x45, 0xca, 0x82, 0x65, 0xf5, 0x7f, 0x48, 0xba, 0x6d,
        0x81,
    ];
    let sb = head.get(4096..4096 + 104)?;
    if sb[24..40] != MAGIC || le64(sb, 8) != 8 {
        return None;
    }
    Some(info("bcache", None, uuid(&sb[40..56])))
}

/// Linux's crc32_le without pre- or post-inversion (nilfs2's checksum).
fn crc32_le(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// A nilfs2 superblock whose checksum holds (crc32 seeded with
/// `s_crc_seed` over `s_bytes`, the `s_sum` field taken as zero).
fn nilfs_sb(sb: &[u8]) -> Option<FsInfo> {
    if sb.len() < 248 || le16(sb, 6) != 0x3434 {
        return None;
    }
    let bytes = le16(sb, 8) as usize;
    if !(24..=sb.len()).contains(&bytes) {
        return None;
    }
    let mut c = sb[..bytes].to_vec();
    c[16..20].fill(0);
    if crc32_le(le32(sb, 12), &c) != le32(sb, 16) {
        return None;
    }
    Some(info("nilfs2", label(&sb[168..248]), uuid(&sb[152..168])).v(le32(sb, 0).to_string()))
}

/// The file systems of this module found by their superblocks in `head`
/// (the first 68 KiB), or through `read` (nilfs2's backup at the end).
pub(super) fn filesystems(
    head: &[u8],
    read: &mut dyn FnMut(u64, usize) -> Option<Vec<u8>>,
    size: u64,
) -> Option<FsInfo> {
    let at = |o: usize, n: usize| head.get(o..o + n);
    // squashfs (version 4; older ones are blkid's squashfs3).
    if at(0, 4) == Some(b"hsqs") && head.len() >= 32 {
        let (major, minor) = (le16(head, 28), le16(head, 30));
        let kind = if major >= 4 { "squashfs" } else { "squashfs3" };
        return Some(info(kind, None, None).v(format!("{major}.{minor}")));
    }
    // cramfs: magic in either byte order, the volume name is the label.
    if head.len() >= 64 && matches!(le32(head, 0), 0x28cd_3d45 | 0x453d_cd28) {
        return Some(info("cramfs", label(&head[48..64]), None));
    }
    // erofs: superblock at 1 KiB, block size 512 B to 64 KiB.
    if let Some(sb) = at(1024, 80) {
        if le32(sb, 0) == 0xe0f5_e1e2 && (9..=16).contains(&sb[12]) {
            return Some(info("erofs", label(&sb[64..80]), uuid(&sb[48..64])));
        }
    }
    // f2fs: superblock at 1 KiB, UTF-16 volume name.
    if let Some(sb) = at(1024, 124 + 1024) {
        if le32(sb, 0) == 0xf2f5_2010 {
            let (major, minor) = (le16(sb, 4), le16(sb, 6));
            let f = info("f2fs", utf16le(&sb[124..124 + 1024]), uuid(&sb[108..124]));
            // blkid reports nothing but the type for the first format.
            if major == 1 && minor == 0 {
                return Some(info("f2fs", None, None));
            }
            return Some(f.v(format!("{major}.{minor}")));
        }
    }
    // JFS: superblock at 32 KiB; block sizes must agree with their logs.
    if let Some(sb) = at(32768, 168) {
        let shift_ok = |v: u32, s: u16| s < 32 && v == 1u32 << s;
        if &sb[..4] == b"JFS1"
            && shift_ok(le32(sb, 16), le16(sb, 20))
            && shift_ok(le32(sb, 24), le16(sb, 28))
            && le16(sb, 20).checked_sub(le16(sb, 28)) == Some(le16(sb, 22))
        {
            return Some(info("jfs", label(&sb[152..168]), uuid(&sb[136..152])));
        }
    }
    // reiserfs: superblock at 64 KiB (3.5 also at 8 KiB), magic at +52.
    for off in [65536usize, 8192] {
        let Some(sb) = at(off, 116) else { continue };
        let m = &sb[52..64];
        let version = if m.starts_with(b"ReIsEr2Fs") {
            "3.6"
        } else if m.starts_with(b"ReIsEr3Fs") {
            "JR"
        } else if m.starts_with(b"ReIsErFs") {
            "3.5"
        } else {
            continue;
        };
        if off == 8192 && version != "3.5" {
            continue;
        }
        let bs = le16(sb, 44);
        if bs == 0 || !bs.is_power_of_two() {
            continue;
        }
        let f = if version == "3.5" {
            info("reiserfs", None, None)
        } else {
            info("reiserfs", label(&sb[100..116]), uuid(&sb[84..100]))
        };
        return Some(f.v(version));
    }
    // nilfs2: primary superblock at 1 KiB, the backup in the last 4 KiB
    // block.
    if let Some(f) = at(1024, 1024).and_then(nilfs_sb) {
        return Some(f);
    }
    if size >= 8192 && head.get(1024 + 6..1024 + 8) == Some(&[0x34, 0x34]) {
        let off = ((size >> 12) - 1) << 12;
        if let Some(f) = read(off, 1024).and_then(|b| nilfs_sb(&b)) {
            return Some(f);
        }
    }
    None
}

/// Minix v1/v2 (magic at 1 KiB + 16) or v3 (at + 24), with fsck.minix's
/// sanity checks on the counts, since a two-byte magic is easily met.
pub(super) fn minix(head: &[u8]) -> Option<FsInfo> {
    let sb = head.get(1024..1024 + 32)?;
    let version = match (le16(sb, 16), le16(sb, 24)) {
        (0x137f | 0x138f, _) => 1,
        (0x2468 | 0x2478, _) => 2,
        (_, 0x4d5a) => 3,
        _ => return None,
    };
    if version <= 2 {
        let zones = if version == 2 {
            le32(sb, 20) as u64
        } else {
            le16(sb, 2) as u64
        };
        let ninodes = le16(sb, 0) as u64;
        let imaps = le16(sb, 4) as u64;
        let zmaps = le16(sb, 6) as u64;
        let firstz = le16(sb, 8) as u64;
        if le16(sb, 10) != 0 || ninodes == 0 {
            return None;
        }
        if imaps * 1024 * 8 < ninodes + 1 || firstz > zones {
            return None;
        }
        if zmaps * 1024 * 8 < zones - firstz + 1 {
            return None;
        }
    }
    Some(info("minix", None, None).v(version.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minix_magic_alone_is_not_enough() {
        let mut v = vec![0u8; 4096];
        v[1024 + 16..1024 + 18].copy_from_slice(&0x138fu16.to_le_bytes());
        // No inodes: fsck.minix would refuse it, so does blkid.
        assert_eq!(minix(&v), None);
        v[1024..1026].copy_from_slice(&32u16.to_le_bytes()); // inodes
        v[1026..1028].copy_from_slice(&1024u16.to_le_bytes()); // zones
        v[1028..1030].copy_from_slice(&1u16.to_le_bytes()); // imap blocks
        v[1030..1032].copy_from_slice(&1u16.to_le_bytes()); // zmap blocks
        v[1032..1034].copy_from_slice(&8u16.to_le_bytes()); // first zone
        assert_eq!(minix(&v).unwrap().version.as_deref(), Some("1"));
        v[1034] = 1; // log zone size
        assert_eq!(minix(&v), None);
    }

    #[test]
    fn nilfs_checksum_must_hold() {
        let mut sb = vec![0u8; 1024];
        sb[6..8].copy_from_slice(&0x3434u16.to_le_bytes());
        sb[8..10].copy_from_slice(&1024u16.to_le_bytes());
        sb[12..16].copy_from_slice(&0x1234_5678u32.to_le_bytes());
        sb[0..4].copy_from_slice(&2u32.to_le_bytes());
        sb[168..171].copy_from_slice(b"nil");
        assert_eq!(nilfs_sb(&sb), None);
        let c = crc32_le(0x1234_5678, &sb);
        sb[16..20].copy_from_slice(&c.to_le_bytes());
        let f = nilfs_sb(&sb).unwrap();
        assert_eq!(f.label.as_deref(), Some("nil"));
        assert_eq!(f.version.as_deref(), Some("2"));
    }

    #[test]
    fn bcache_superblock_names_its_sector() {
        let mut v = vec![0u8; 8192];
        v[4096 + 24..4096 + 40].copy_from_slice(&[
            0xc6, 0x85, 0x73, 0xf6, 0x4e, 0x1a, 0x45, 0xca, 0x82, 0x65, 0xf5, 0x7f, 0x48, 0xba,
            0x6d, 0x81,
        ]);
        v[4096 + 40..4096 + 56].copy_from_slice(&[0xab; 16]);
        assert_eq!(bcache(&v), None);
        v[4096 + 8] = 8;
        assert_eq!(bcache(&v).unwrap().kind, "bcache");
    }
}
