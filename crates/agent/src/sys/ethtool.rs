//! ethtool's queries through the SIOCETHTOOL ioctl (linux/ethtool.h):
//! the link settings (ETHTOOL_GLINKSETTINGS: the negotiated speed and the
//! supported, advertised and link-partner link modes as bitmaps; the
//! mode-to-speed table is `link_mode_mbps`, the names `mode_names`), the
//! driver information `ethtool -i` prints (ETHTOOL_GDRVINFO) and the
//! permanent MAC address (ETHTOOL_GPERMADDR).

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const SIOCETHTOOL: libc::Ioctl = 0x8946;
const ETHTOOL_GLINKSETTINGS: u32 = 0x4c;
const ETHTOOL_GDRVINFO: u32 = 0x03;
const ETHTOOL_GPERMADDR: u32 = 0x20;
/// `struct ethtool_drvinfo`: cmd, driver[32], version[32], fw_version[32],
/// bus_info[32], erom_version[32], reserved2[12], five u32 counts.
const DRVINFO_WORDS: usize = 196 / 4;
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

/// A socket for the ioctls.
fn socket() -> io::Result<OwnedFd> {
    // SAFETY: socket(2) with constant arguments; the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// What `ethtool -i` prints: empty strings become `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DriverInfo {
    pub driver: Option<String>,
    pub version: Option<String>,
    pub firmware_version: Option<String>,
    pub bus_info: Option<String>,
}

/// A NUL-terminated field of `bytes`.
fn cstr(bytes: &[u8]) -> Option<String> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let s = String::from_utf8_lossy(&bytes[..end]).trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// Decode `struct ethtool_drvinfo` (as bytes).
pub fn parse_drvinfo(b: &[u8]) -> DriverInfo {
    let field = |i: usize| b.get(4 + 32 * i..4 + 32 * (i + 1)).and_then(cstr);
    DriverInfo {
        driver: field(0),
        version: field(1),
        firmware_version: field(2),
        bus_info: field(3),
    }
}

fn bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_ne_bytes()).collect()
}

/// `ethtool -i ifname`: driver, its version, firmware version, bus info.
pub fn driver_info(ifname: &str) -> io::Result<DriverInfo> {
    let sock = socket()?;
    let mut buf = vec![0u32; DRVINFO_WORDS];
    buf[0] = ETHTOOL_GDRVINFO;
    call(&sock, ifname, &mut buf)?;
    Ok(parse_drvinfo(&bytes(&buf)))
}

/// `ethtool -P ifname`: the permanent (factory) MAC address; `None` when
/// the device has none (all zeros, or no address at all).
pub fn permanent_mac(ifname: &str) -> io::Result<Option<String>> {
    let sock = socket()?;
    // cmd, size, then data[size]: room for MAX_ADDR_LEN (32) bytes.
    let mut buf = vec![0u32; 2 + 8];
    buf[0] = ETHTOOL_GPERMADDR;
    buf[1] = 32;
    call(&sock, ifname, &mut buf)?;
    let n = (buf[1] as usize).min(32);
    let b = bytes(&buf[2..]);
    let a = &b[..n];
    Ok((!a.is_empty() && a.iter().any(|&x| x != 0)).then(|| {
        a.iter()
            .map(|x| format!("{x:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    }))
}

/// The link settings of `ifname` in this process's network namespace.
pub fn link_settings(ifname: &str) -> io::Result<LinkSettings> {
    let sock = socket()?;
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

/// The names of enum ethtool_link_mode_bit_indices as `ethtool` prints
/// them (`_Full` as `/Full`), by bit.
const MODE_NAMES: &[&str] = &[
    "10baseT/Half",
    "10baseT/Full",
    "100baseT/Half",
    "100baseT/Full",
    "1000baseT/Half",
    "1000baseT/Full",
    "Autoneg",
    "TP",
    "AUI",
    "MII",
    "FIBRE",
    "BNC",
    "10000baseT/Full",
    "Pause",
    "Asym_Pause",
    "2500baseX/Full",
    "Backplane",
    "1000baseKX/Full",
    "10000baseKX4/Full",
    "10000baseKR/Full",
    "10000baseR_FEC",
    "20000baseMLD2/Full",
    "20000baseKR2/Full",
    "40000baseKR4/Full",
    "40000baseCR4/Full",
    "40000baseSR4/Full",
    "40000baseLR4/Full",
    "56000baseKR4/Full",
    "56000baseCR4/Full",
    "56000baseSR4/Full",
    "56000baseLR4/Full",
    "25000baseCR/Full",
    "25000baseKR/Full",
    "25000baseSR/Full",
    "50000baseCR2/Full",
    "50000baseKR2/Full",
    "100000baseKR4/Full",
    "100000baseSR4/Full",
    "100000baseCR4/Full",
    "100000baseLR4_ER4/Full",
    "50000baseSR2/Full",
    "1000baseX/Full",
    "10000baseCR/Full",
    "10000baseSR/Full",
    "10000baseLR/Full",
    "10000baseLRM/Full",
    "10000baseER/Full",
    "2500baseT/Full",
    "5000baseT/Full",
    "FEC_NONE",
    "FEC_RS",
    "FEC_BASER",
    "50000baseKR/Full",
    "50000baseSR/Full",
    "50000baseCR/Full",
    "50000baseLR_ER_FR/Full",
    "50000baseDR/Full",
    "100000baseKR2/Full",
    "100000baseSR2/Full",
    "100000baseCR2/Full",
    "100000baseLR2_ER2_FR2/Full",
    "100000baseDR2/Full",
    "200000baseKR4/Full",
    "200000baseSR4/Full",
    "200000baseLR4_ER4_FR4/Full",
    "200000baseDR4/Full",
    "200000baseCR4/Full",
    "100baseT1/Full",
    "1000baseT1/Full",
    "400000baseKR8/Full",
    "400000baseSR8/Full",
    "400000baseLR8_ER8_FR8/Full",
    "400000baseDR8/Full",
    "400000baseCR8/Full",
    "FEC_LLRS",
    "100000baseKR/Full",
    "100000baseSR/Full",
    "100000baseLR_ER_FR/Full",
    "100000baseCR/Full",
    "100000baseDR/Full",
    "200000baseKR2/Full",
    "200000baseSR2/Full",
    "200000baseLR2_ER2_FR2/Full",
    "200000baseDR2/Full",
    "200000baseCR2/Full",
    "400000baseKR4/Full",
    "400000baseSR4/Full",
    "400000baseLR4_ER4_FR4/Full",
    "400000baseDR4/Full",
    "400000baseCR4/Full",
    "100baseFX/Half",
    "100baseFX/Full",
    "10baseT1L/Full",
    "800000baseCR8/Full",
    "800000baseKR8/Full",
    "800000baseDR8/Full",
    "800000baseDR8_2/Full",
    "800000baseSR8/Full",
    "800000baseVR8/Full",
    "10baseT1S/Full",
    "10baseT1S/Half",
    "10baseT1S_P2MP/Half",
    "10baseT1BRR/Full",
    "200000baseCR/Full",
    "200000baseKR/Full",
    "200000baseDR/Full",
    "200000baseDR_2/Full",
    "200000baseSR/Full",
    "200000baseVR/Full",
    "400000baseCR2/Full",
    "400000baseKR2/Full",
    "400000baseDR2/Full",
    "400000baseDR2_2/Full",
    "400000baseSR2/Full",
    "400000baseVR2/Full",
    "800000baseCR4/Full",
    "800000baseKR4/Full",
    "800000baseDR4/Full",
    "800000baseDR4_2/Full",
    "800000baseSR4/Full",
    "800000baseVR4/Full",
];

/// The speed modes set in `mask`, named as `ethtool`'s "link modes" lines
/// name them ("25000baseCR/Full"), in bit order; port types, pause, FEC
/// and autoneg bits are left out, as ethtool lists those apart. An unknown
/// speed bit is `bit N`.
pub fn mode_names(mask: &[u32]) -> Vec<String> {
    (0..mask.len() as u32 * 32)
        .filter(|b| mask[(b / 32) as usize] & (1 << (b % 32)) != 0)
        .filter(|&b| link_mode_mbps(b).is_some() || b as usize >= MODE_NAMES.len())
        .map(|b| {
            MODE_NAMES
                .get(b as usize)
                .map(|n| n.to_string())
                .unwrap_or_else(|| format!("bit {b}"))
        })
        .collect()
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

    #[test]
    fn names_of_modes() {
        // 1000baseT_Full (5), Autoneg (6), TP (7), 10000baseT_Full (12),
        // 25000baseCR_Full (31).
        let mask = [1 << 5 | 1 << 6 | 1 << 7 | 1 << 12 | 1 << 31, 0, 0, 0];
        assert_eq!(
            mode_names(&mask),
            ["1000baseT/Full", "10000baseT/Full", "25000baseCR/Full"]
        );
        assert_eq!(
            mode_names(&[0, 0, 0, 1 << (120 - 96)]),
            ["800000baseVR4/Full"]
        );
        assert_eq!(mode_names(&[0, 0, 0, 1 << (125 - 96)]), ["bit 125"]);
        // 10000baseR_FEC (20) names a FEC mode, not a speed.
        for b in (0..121).filter(|&b| b != 20) {
            assert_eq!(
                link_mode_mbps(b).map(|m| m.to_string()),
                MODE_NAMES[b as usize]
                    .split("base")
                    .next()
                    .filter(|s| s.bytes().all(|c| c.is_ascii_digit()))
                    .map(str::to_string),
                "bit {b}: {}",
                MODE_NAMES[b as usize]
            );
        }
    }

    #[test]
    fn drvinfo_fields() {
        let mut b = vec![0u8; 196];
        b[4..10].copy_from_slice(b"virtio");
        b[36..41].copy_from_slice(b"1.0.0");
        b[100..112].copy_from_slice(b"0000:00:03.0");
        let d = parse_drvinfo(&b);
        assert_eq!(d.driver.as_deref(), Some("virtio"));
        assert_eq!(d.version.as_deref(), Some("1.0.0"));
        assert_eq!(d.firmware_version, None);
        assert_eq!(d.bus_info.as_deref(), Some("0000:00:03.0"));
    }

    /// Loopback has no link settings: an error, not a made-up answer.
    #[test]
    fn loopback_answers_with_an_error() {
        assert!(link_settings("lo").is_err());
        assert!(link_settings("").is_err());
    }
}
