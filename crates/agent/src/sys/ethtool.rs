//! ethtool's link settings through the SIOCETHTOOL ioctl
//! (ETHTOOL_GLINKSETTINGS, linux/ethtool.h): the negotiated speed and the
//! supported, advertised and link-partner link modes as bitmaps. The
//! mode-to-speed table is `link_mode_mbps`.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const SIOCETHTOOL: libc::Ioctl = 0x8946;
const ETHTOOL_GLINKSETTINGS: u32 = 0x4c;
/// The fixed part of `struct ethtool_link_settings`: cmd, speed, 12 bytes
/// of u8 fields (duplex ... rate_matching), reserved[7].
const HEADER: usize = 48;
/// The kernel's largest mask today is 4 words (128 modes); room for more.
const MAX_NWORDS: usize = 32;

/// What the driver says about the link.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LinkSettings {
    /// Negotiated speed in Mb/s; `None` when unknown (no link).
    pub speed: Option<u32>,
    pub autoneg: bool,
    pub supported: Vec<u32>,
    pub advertising: Vec<u32>,
    pub lp_advertising: Vec<u32>,
}

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    data: *mut u8,
    _pad: [u8; 16],
}

/// The settings buffer: the header, then `nwords` words for each of the
/// three masks. u32-aligned, as the kernel reads it.
fn buffer(nwords: usize) -> Vec<u32> {
    vec![0u32; HEADER / 4 + 3 * nwords]
}

fn call(sock: &OwnedFd, ifname: &str, buf: &mut [u32]) -> io::Result<()> {
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: buf.as_mut_ptr() as *mut u8,
        _pad: [0; 16],
    };
    let n = ifname.as_bytes();
    if n.is_empty() || n.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "bad interface name",
        ));
    }
    req.name[..n.len()].copy_from_slice(n);
    // SAFETY: SIOCETHTOOL reads the ifreq (a NUL-terminated name and a
    // pointer) and reads and writes the ethtool_link_settings at `data`,
    // whose size the kernel takes from link_mode_masks_nwords in it: `buf`
    // holds the header and three masks of that many words, and is borrowed
    // mutably for the call.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL, &mut req as *mut IfReq) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The link settings of `ifname` in this process's network namespace.
pub fn link_settings(ifname: &str) -> io::Result<LinkSettings> {
    // SAFETY: socket(2) with constant arguments; the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor nothing else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    // The handshake: nwords 0 asks, the kernel answers with -nwords.
    let mut buf = buffer(0);
    buf[0] = ETHTOOL_GLINKSETTINGS;
    call(&sock, ifname, &mut buf)?;
    // link_mode_masks_nwords is byte 15: the top byte of word 3.
    let asked = (buf[3] >> 24) as u8 as i8;
    let nwords = (-(asked as i32)) as usize;
    if asked >= 0 || nwords == 0 || nwords > MAX_NWORDS {
        return Err(io::Error::other(format!(
            "ETHTOOL_GLINKSETTINGS handshake answered {asked} words"
        )));
    }
    let mut buf = buffer(nwords);
    buf[0] = ETHTOOL_GLINKSETTINGS;
    buf[3] = (nwords as u8 as u32) << 24;
    call(&sock, ifname, &mut buf)?;
    Ok(parse(&buf, nwords))
}

/// Decode the answer (`buf` as the kernel left it).
pub fn parse(buf: &[u32], nwords: usize) -> LinkSettings {
    let b = buf[2].to_le_bytes(); // duplex, port, phy_address, autoneg
    let m = HEADER / 4;
    let speed = buf[1];
    LinkSettings {
        // SPEED_UNKNOWN is -1 (0xffffffff).
        speed: (speed != 0 && speed != u32::MAX).then_some(speed),
        autoneg: b[3] == 1,
        supported: buf[m..m + nwords].to_vec(),
        advertising: buf[m + nwords..m + 2 * nwords].to_vec(),
        lp_advertising: buf[m + 2 * nwords..m + 3 * nwords].to_vec(),
    }
}

/// The speed in Mb/s of link mode `bit` (enum ethtool_link_mode_bit_indices);
/// `None` for the bits that are no speed (autoneg, port types, pause, FEC).
pub fn link_mode_mbps(bit: u32) -> Option<u32> {
    Some(match bit {
        0 | 1 | 92 | 99..=102 => 10,
        2 | 3 | 67 | 90 | 91 => 100,
        4 | 5 | 17 | 41 | 68 => 1_000,
        15 | 47 => 2_500,
        48 => 5_000,
        12 | 18 | 19 | 42..=46 => 10_000,
        21 | 22 => 20_000,
        31..=33 => 25_000,
        23..=26 => 40_000,
        34 | 35 | 40 | 52..=56 => 50_000,
        27..=30 => 56_000,
        36..=39 | 57..=61 | 75..=79 => 100_000,
        62..=66 | 80..=84 | 103..=108 => 200_000,
        69..=73 | 85..=89 | 109..=114 => 400_000,
        93..=98 | 115..=120 => 800_000,
        _ => return None,
    })
}

/// The fastest speed among the modes set in `mask`.
pub fn max_mbps(mask: &[u32]) -> Option<u32> {
    (0..mask.len() as u32 * 32)
        .filter(|b| mask[(b / 32) as usize] & (1 << (b % 32)) != 0)
        .filter_map(link_mode_mbps)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_to_speeds() {
        // 1000baseT_Full (5), 10000baseT_Full (12), Autoneg (6), TP (7).
        let mask = [1 << 5 | 1 << 6 | 1 << 7 | 1 << 12, 0, 0];
        assert_eq!(max_mbps(&mask), Some(10_000));
        // 25000baseSR (33) and 100000baseSR4 (37) in the second word.
        assert_eq!(max_mbps(&[0, 1 << 1 | 1 << 5]), Some(100_000));
        assert_eq!(max_mbps(&[1 << 6 | 1 << 13, 1 << (49 - 32)]), None);
        assert_eq!(max_mbps(&[]), None);
        assert_eq!(link_mode_mbps(120), Some(800_000));
    }

    #[test]
    fn parse_the_answer() {
        let mut buf = buffer(2);
        buf[1] = 25_000;
        buf[2] = u32::from_le_bytes([1, 0, 0, 1]);
        buf[3] = 2 << 24;
        buf[12] = 1 << 5; // supported word 0
        buf[13] = 1 << 1 | 1 << 5; // supported word 1: 25G, 100G
        buf[14] = 1 << 5; // advertising
        buf[16] = 1 << 12; // partner: 10G
        let s = parse(&buf, 2);
        assert_eq!(s.speed, Some(25_000));
        assert!(s.autoneg);
        assert_eq!(max_mbps(&s.supported), Some(100_000));
        assert_eq!(max_mbps(&s.advertising), Some(1_000));
        assert_eq!(max_mbps(&s.lp_advertising), Some(10_000));
        buf[1] = u32::MAX;
        assert_eq!(parse(&buf, 2).speed, None);
    }

    /// Loopback has no link settings: an error, not a made-up answer.
    #[test]
    fn loopback_answers_with_an_error() {
        assert!(link_settings("lo").is_err());
        assert!(link_settings("").is_err());
    }
}
