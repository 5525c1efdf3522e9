//! An md superblock written by hand, for the tests that compare our probe
//! with `blkid -p` (inventory_fs, fsprobe_blkid): the host kernel may have
//! no md driver, so mdadm cannot make one.

use speediso::inventory::fsprobe;

/// The 512-byte superblock of md `version` ("0.90", "1.0", "1.1" or
/// "1.2") that sits at byte `off` of its member: the magic, a UUID, the
/// name "speediso:0" (1.x), two device roles and a valid checksum (1.x).
pub fn md_superblock(version: &str, off: u64) -> Vec<u8> {
    let mut sb = vec![0u8; 512];
    sb[0..4].copy_from_slice(&0xa92b_4efcu32.to_le_bytes());
    if version == "0.90" {
        sb[8..12].copy_from_slice(&90u32.to_le_bytes());
        sb[20..24].copy_from_slice(&0xdead_beefu32.to_le_bytes());
        sb[32..36].copy_from_slice(&4096u32.to_le_bytes());
        sb[52..56].copy_from_slice(&0x0102_0304u32.to_le_bytes());
        sb[56..60].copy_from_slice(&0x0506_0708u32.to_le_bytes());
        sb[60..64].copy_from_slice(&0x090a_0b0cu32.to_le_bytes());
    } else {
        sb[4..8].copy_from_slice(&1u32.to_le_bytes());
        for (i, b) in sb[16..32].iter_mut().enumerate() {
            *b = 0x10 + i as u8;
        }
        sb[32..42].copy_from_slice(b"speediso:0");
        sb[144..152].copy_from_slice(&(off >> 9).to_le_bytes());
        sb[168..184].copy_from_slice(&[0x77; 16]);
        sb[220..224].copy_from_slice(&2u32.to_le_bytes()); // max_dev
        sb[256..260].copy_from_slice(&[0, 0, 1, 0]); // two dev roles
        let c = fsprobe::md1_csum(&sb[..260]);
        sb[216..220].copy_from_slice(&c.to_le_bytes());
    }
    sb
}
