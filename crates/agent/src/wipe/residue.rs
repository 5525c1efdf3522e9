//! After the erase: no md, LVM or partition-table signature may remain
//! anywhere on the disk, including the metadata kept at its end (md 0.90
//! and 1.0 superblocks, the backup GPT header) that a disk holding a
//! customer's RAID always has. Checked on every method, after the
//! verification, by strong magics only (at least 8 bytes, or 4 bytes plus
//! a structure check), so a random overwrite never matches by chance.

use super::overwrite::Target;
use crate::sys::iobuf::IoArena;

/// How much of each end is read.
const HEAD: u64 = 64 << 10;
const TAIL: u64 = 128 << 10;

const MD_MAGIC: u32 = 0xa92b_4efc;

/// The signatures left in `head` (the first `HEAD` bytes, or the whole
/// disk when smaller) and `tail` (the last bytes, ending at `size`).
pub fn find(head: &[u8], tail: &[u8], size: u64) -> Vec<String> {
    let mut out = Vec::new();
    let tail_start = size - tail.len() as u64;
    let at = |off: u64, len: usize| -> Option<&[u8]> {
        let (buf, base) = if off + len as u64 <= head.len() as u64 {
            (head, 0)
        } else if off >= tail_start {
            (tail, tail_start)
        } else {
            return None;
        };
        let o = (off - base) as usize;
        buf.get(o..o + len)
    };
    let le32 = |off: u64| at(off, 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    // MBR: the boot signature with four plausible entries (status 00h or
    // 80h) of which one is used.
    if let Some(m) = at(0, 512) {
        let entries: Vec<&[u8]> = (0..4).map(|i| &m[446 + 16 * i..462 + 16 * i]).collect();
        if m[510..512] == [0x55, 0xaa]
            && entries.iter().all(|e| e[0] == 0 || e[0] == 0x80)
            && entries.iter().any(|e| e[4] != 0)
        {
            out.push("an MBR partition table (sector 0)".to_string());
        }
    }
    for lbs in [512u64, 4096] {
        if at(lbs, 8) == Some(b"EFI PART") {
            out.push(format!(
                "the primary GPT header (LBA 1 at {lbs}-byte sectors)"
            ));
        }
        if size >= lbs && at(size - lbs, 8) == Some(b"EFI PART") {
            out.push(format!(
                "the backup GPT header (last LBA at {lbs}-byte sectors)"
            ));
        }
    }
    // md superblocks: 1.1 at 0, 1.2 at 4 KiB, 1.0 8 KiB before the end
    // (4 KiB aligned), 0.90 in the last 64 KiB-aligned 64 KiB. Major
    // version 0 or 1 right after the magic.
    let sectors = size / 512;
    let md = [
        (0u64, "1.1"),
        (4096, "1.2"),
        (((sectors.saturating_sub(16)) & !7) * 512, "1.0"),
        ((size & !0xffff).saturating_sub(0x10000), "0.90"),
    ];
    for (off, v) in md {
        if le32(off) == Some(MD_MAGIC) && matches!(le32(off + 4), Some(0 | 1)) {
            out.push(format!("an md {v} superblock (byte {off})"));
        }
    }
    for s in 0..4u64 {
        if at(s * 512, 8) == Some(b"LABELONE") {
            out.push(format!("an LVM2 physical volume label (sector {s})"));
        }
    }
    out.dedup();
    out
}

/// Read both ends of the opened disk and say what is left there. An
/// unreadable end is itself a finding: nothing can be claimed for it.
pub fn check(t: &Target) -> Result<Vec<String>, String> {
    let head_len = HEAD.min(t.size);
    let tail_len = TAIL.min(t.size);
    let mut arena = IoArena::new((head_len + tail_len) as usize)
        .map_err(|e| format!("no buffer for the signature check: {e}"))?;
    let (h, tl) = arena.as_mut_slice().split_at_mut(head_len as usize);
    let tl = &mut tl[..tail_len as usize];
    super::readback::read_with_retry(t, h, 0)
        .map_err(|e| format!("reading the first {head_len} bytes for the signature check: {e}"))?;
    super::readback::read_with_retry(t, tl, t.size - tail_len)
        .map_err(|e| format!("reading the last {tail_len} bytes for the signature check: {e}"))?;
    Ok(find(h, tl, t.size))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE: u64 = 64 << 20;

    fn ends(disk: &[u8]) -> (Vec<u8>, Vec<u8>) {
        (
            disk[..HEAD as usize].to_vec(),
            disk[disk.len() - TAIL as usize..].to_vec(),
        )
    }

    #[test]
    fn each_kind_of_left_metadata_is_found() {
        let mut d = vec![0u8; SIZE as usize];
        let put = |d: &mut Vec<u8>, off: u64, b: &[u8]| {
            d[off as usize..off as usize + b.len()].copy_from_slice(b)
        };
        let (h, t) = ends(&d);
        assert!(find(&h, &t, SIZE).is_empty());
        // md 1.0 at the end, md 0.90 in the last 64 KiB-aligned block.
        let md = [MD_MAGIC.to_le_bytes(), 1u32.to_le_bytes()].concat();
        put(&mut d, ((SIZE / 512 - 16) & !7) * 512, &md);
        let md0 = [MD_MAGIC.to_le_bytes(), 0u32.to_le_bytes()].concat();
        put(&mut d, SIZE - 0x10000, &md0);
        put(&mut d, SIZE - 512, b"EFI PART");
        put(&mut d, 512, b"EFI PART");
        put(&mut d, 4096, &md);
        put(&mut d, 512, b"LABELONE");
        let (h, t) = ends(&d);
        let f = find(&h, &t, SIZE);
        assert_eq!(
            f,
            [
                "the backup GPT header (last LBA at 512-byte sectors)",
                "an md 1.2 superblock (byte 4096)",
                &format!("an md 1.0 superblock (byte {})", SIZE - 8192),
                &format!("an md 0.90 superblock (byte {})", SIZE - 65536),
                "an LVM2 physical volume label (sector 1)",
            ],
            "{f:?}"
        );
        // A protective MBR.
        let mut d = vec![0u8; SIZE as usize];
        d[510] = 0x55;
        d[511] = 0xaa;
        d[446 + 4] = 0xee;
        let (h, t) = ends(&d);
        assert_eq!(find(&h, &t, SIZE), ["an MBR partition table (sector 0)"]);
    }

    #[test]
    fn random_bytes_match_nothing() {
        use chacha20::cipher::{KeyIvInit, StreamCipher};
        let mut d = vec![0u8; SIZE as usize];
        let mut c = chacha20::ChaCha8::new(&[9u8; 32].into(), &[0u8; 12].into());
        c.apply_keystream(&mut d);
        // Even with a boot signature by chance.
        d[510] = 0x55;
        d[511] = 0xaa;
        let (h, t) = ends(&d);
        assert!(find(&h, &t, SIZE).is_empty());
    }

    #[test]
    fn a_disk_smaller_than_both_ends_is_read_whole() {
        let mut d = vec![0u8; 32 << 10];
        d[4096..4100].copy_from_slice(&MD_MAGIC.to_le_bytes());
        d[4100..4104].copy_from_slice(&1u32.to_le_bytes());
        assert_eq!(
            find(&d, &d, d.len() as u64),
            ["an md 1.2 superblock (byte 4096)"]
        );
    }
}
