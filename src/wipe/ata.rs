//! ATA and SCSI erase commands through SG_IO: IDENTIFY DEVICE (sanitize and
//! security capabilities), SANITIZE DEVICE (ACS-3) wrapped in ATA
//! PASS-THROUGH(16) (SAT-4) and polled with SANITIZE STATUS EXT, ATA
//! Security Erase (opt-in), and SCSI SANITIZE (SBC-4) for SAS disks.

use super::overwrite::Target;
use super::{Method, Tracker};
use crate::sys::sg::{sg_io, Data, Reply};
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};

pub const ATA_PASS_THROUGH_16: u8 = 0x85;
pub const ATA_IDENTIFY_DEVICE: u8 = 0xEC;
pub const ATA_SANITIZE_DEVICE: u8 = 0xB4;
pub const ATA_SECURITY_SET_PASSWORD: u8 = 0xF1;
pub const ATA_SECURITY_ERASE_PREPARE: u8 = 0xF3;
pub const ATA_SECURITY_ERASE_UNIT: u8 = 0xF4;
pub const SCSI_SANITIZE: u8 = 0x48;

/// SANITIZE DEVICE feature codes and the LBA "signatures" ACS-3 requires.
pub const SAN_STATUS_EXT: u16 = 0x0000;
pub const SAN_CRYPTO_SCRAMBLE_EXT: u16 = 0x0011;
pub const SAN_BLOCK_ERASE_EXT: u16 = 0x0012;
pub const SAN_OVERWRITE_EXT: u16 = 0x0014;
pub const SIG_CRYPTO: u64 = 0x4372_7970; // "Cryp"
pub const SIG_BLOCK: u64 = 0x426B_4572; // "BkEr"
pub const SIG_OVERWRITE: u64 = 0x4F57; // "OW" in LBA 47:32

/// The password speediso sets for a security erase; it is cleared by the
/// erase itself.
const SECURITY_PASSWORD: &[u8] = b"speediso";
const SANITIZE_LIMIT: Duration = Duration::from_secs(48 * 3600);

/// ATA security state (IDENTIFY word 128).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Security {
    pub supported: bool,
    pub enabled: bool,
    pub locked: bool,
    pub frozen: bool,
    pub count_expired: bool,
    pub enhanced_supported: bool,
    /// Words 89/90: estimated minutes (0 = not given).
    pub erase_minutes: u32,
    pub enhanced_erase_minutes: u32,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct AtaCaps {
    pub model: String,
    pub serial: String,
    pub firmware: String,
    /// Word 59 bit 12: the SANITIZE feature set.
    pub sanitize: bool,
    pub sanitize_crypto: bool,
    pub sanitize_overwrite: bool,
    pub sanitize_block: bool,
    pub security: Security,
}

/// ATA strings swap the bytes of each word.
fn ata_string(words: &[u16]) -> String {
    let b: Vec<u8> = words
        .iter()
        .flat_map(|w| [(w >> 8) as u8, *w as u8])
        .collect();
    String::from_utf8_lossy(&b)
        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_string()
}

/// Decode IDENTIFY DEVICE data (256 little-endian words).
pub fn parse_identify(raw: &[u8]) -> AtaCaps {
    let w: Vec<u16> = raw
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    let w59 = w[59];
    let w128 = w[128];
    let minutes = |x: u16| -> u32 {
        // Bit 15 set: extended format, 14:0 in 2-minute units; else 7:0.
        if x & 0x8000 != 0 {
            (x & 0x7FFF) as u32 * 2
        } else {
            (x & 0xFF) as u32 * 2
        }
    };
    AtaCaps {
        serial: ata_string(&w[10..20]),
        firmware: ata_string(&w[23..27]),
        model: ata_string(&w[27..47]),
        sanitize: w59 & (1 << 12) != 0,
        sanitize_crypto: w59 & (1 << 12) != 0 && w59 & (1 << 13) != 0,
        sanitize_overwrite: w59 & (1 << 12) != 0 && w59 & (1 << 14) != 0,
        sanitize_block: w59 & (1 << 12) != 0 && w59 & (1 << 15) != 0,
        security: Security {
            supported: w128 & 0x1 != 0,
            enabled: w128 & 0x2 != 0,
            locked: w128 & 0x4 != 0,
            frozen: w128 & 0x8 != 0,
            count_expired: w128 & 0x10 != 0,
            enhanced_supported: w128 & 0x20 != 0,
            erase_minutes: minutes(w[89]),
            enhanced_erase_minutes: minutes(w[90]),
        },
    }
}

/// ATA PASS-THROUGH protocols (SAT-4 table 140).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    NonData = 3,
    PioIn = 4,
    PioOut = 5,
}

/// An ATA PASS-THROUGH(16) CDB. Byte 1: PROTOCOL (4:1) | EXTEND (0).
/// Byte 2: CK_COND (5) | T_DIR (3, 1 = from device) | BYTE_BLOCK (2) |
/// T_LENGTH (1:0, 2 = length in the COUNT field). Bytes 3-12 carry
/// FEATURE, COUNT and LBA as (high, low) byte pairs; 13 DEVICE; 14 COMMAND.
pub fn ata16(
    protocol: Protocol,
    ext: bool,
    ck_cond: bool,
    feature: u16,
    count: u16,
    lba: u64,
    command: u8,
) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = ATA_PASS_THROUGH_16;
    c[1] = (protocol as u8) << 1 | ext as u8;
    c[2] = (ck_cond as u8) << 5;
    match protocol {
        Protocol::PioIn => c[2] |= 0x08 | 0x04 | 0x02,
        Protocol::PioOut => c[2] |= 0x04 | 0x02,
        Protocol::NonData => {}
    }
    c[3] = (feature >> 8) as u8;
    c[4] = feature as u8;
    c[5] = (count >> 8) as u8;
    c[6] = count as u8;
    c[7] = (lba >> 24) as u8;
    c[8] = lba as u8;
    c[9] = (lba >> 32) as u8;
    c[10] = (lba >> 8) as u8;
    c[11] = (lba >> 40) as u8;
    c[12] = (lba >> 16) as u8;
    c[13] = 0x40; // LBA mode
    c[14] = command;
    c
}

pub fn identify_cdb() -> [u8; 16] {
    ata16(Protocol::PioIn, false, false, 0, 1, 0, ATA_IDENTIFY_DEVICE)
}

/// SANITIZE DEVICE with the feature's signature in the LBA field.
pub fn sanitize_cdb(m: Method) -> Option<[u8; 16]> {
    let (feature, count, lba) = match m {
        Method::AtaSanitizeCrypto => (SAN_CRYPTO_SCRAMBLE_EXT, 0, SIG_CRYPTO),
        Method::AtaSanitizeBlock => (SAN_BLOCK_ERASE_EXT, 0, SIG_BLOCK),
        // One pass of zeros (pattern 0 in LBA 31:0, count 3:0 = passes).
        Method::AtaSanitizeOverwrite => (SAN_OVERWRITE_EXT, 1, SIG_OVERWRITE << 32),
        _ => return None,
    };
    Some(ata16(
        Protocol::NonData,
        true,
        true,
        feature,
        count,
        lba,
        ATA_SANITIZE_DEVICE,
    ))
}

pub fn sanitize_status_cdb() -> [u8; 16] {
    ata16(
        Protocol::NonData,
        true,
        true,
        SAN_STATUS_EXT,
        0,
        0,
        ATA_SANITIZE_DEVICE,
    )
}

/// SCSI SANITIZE (SBC-4): byte 1 = IMMED (7) | AUSE (5) | SERVICE ACTION
/// (4:0: 1 overwrite, 2 block erase, 3 crypto erase). No parameter list
/// for block and crypto erase.
pub fn scsi_sanitize_cdb(m: Method) -> Option<[u8; 10]> {
    let sa = match m {
        Method::AtaSanitizeBlock => 0x02,
        Method::AtaSanitizeCrypto => 0x03,
        _ => return None,
    };
    let mut c = [0u8; 10];
    c[0] = SCSI_SANITIZE;
    c[1] = 0x80 | sa;
    Some(c)
}

/// ATA registers returned with CK_COND, from descriptor (72h, descriptor
/// 09h) or fixed-format (70h) sense data. Fixed format lacks COUNT 15:8
/// and LBA 47:24.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AtaRegs {
    pub error: u8,
    pub status: u8,
    pub count: u16,
    pub lba: u64,
    /// False for fixed-format sense, where the high bytes are missing.
    pub complete: bool,
}

pub fn parse_ata_sense(s: &[u8]) -> Option<AtaRegs> {
    match s.first()? & 0x7F {
        0x72 => {
            let mut i = 8;
            while i + 1 < s.len() {
                let (code, len) = (s[i], s[i + 1] as usize);
                if code == 0x09 && i + 13 < s.len() {
                    let d = &s[i..];
                    let lba = d[7] as u64
                        | (d[9] as u64) << 8
                        | (d[11] as u64) << 16
                        | (d[6] as u64) << 24
                        | (d[8] as u64) << 32
                        | (d[10] as u64) << 40;
                    return Some(AtaRegs {
                        error: d[3],
                        count: (d[4] as u16) << 8 | d[5] as u16,
                        lba,
                        status: d[13],
                        complete: true,
                    });
                }
                i += 2 + len;
            }
            None
        }
        0x70 if s.len() >= 12 => Some(AtaRegs {
            error: s[3],
            status: s[4],
            count: s[6] as u16,
            lba: s[9] as u64 | (s[10] as u64) << 8 | (s[11] as u64) << 16,
            complete: false,
        }),
        _ => None,
    }
}

fn check(r: &Reply, what: &str) -> Result<()> {
    if r.host_status != 0 || (r.driver_status & 0xF) != 0 && r.sense.is_empty() {
        bail!(
            "{what}: host status {:#x}, driver status {:#x}",
            r.host_status,
            r.driver_status
        );
    }
    if r.status != 0 && r.status != 2 {
        bail!("{what}: SCSI status {:#x}", r.status);
    }
    if let Some(regs) = parse_ata_sense(&r.sense) {
        if regs.status & 0x01 != 0 {
            bail!(
                "{what}: ATA error (status {:#x}, error {:#x}); the device aborted the command",
                regs.status,
                regs.error
            );
        }
    } else if r.status == 2 {
        bail!("{what}: CHECK CONDITION, sense {}", hex::encode(&r.sense));
    }
    Ok(())
}

pub const SCSI_TEST_UNIT_READY: u8 = 0x00;

/// What SCSI sense data says: key, ASC, ASCQ and the sense-key-specific
/// progress indication (0..65536) when SKSV is set. Fixed (70h/71h) and
/// descriptor (72h/73h, descriptor 02h) formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sense {
    pub key: u8,
    pub asc: u8,
    pub ascq: u8,
    pub progress: Option<u16>,
}

pub fn parse_scsi_sense(s: &[u8]) -> Option<Sense> {
    match s.first()? & 0x7F {
        0x70 | 0x71 if s.len() >= 14 => Some(Sense {
            key: s[2] & 0x0F,
            asc: s[12],
            ascq: s[13],
            progress: (s.len() >= 18 && s[15] & 0x80 != 0)
                .then(|| (s[16] as u16) << 8 | s[17] as u16),
        }),
        0x72 | 0x73 if s.len() >= 4 => {
            let mut progress = None;
            let mut i = 8;
            while i + 1 < s.len() {
                let len = s[i + 1] as usize;
                if s[i] == 0x02 && i + 6 < s.len() && s[i + 4] & 0x80 != 0 {
                    progress = Some((s[i + 5] as u16) << 8 | s[i + 6] as u16);
                }
                i += 2 + len;
            }
            Some(Sense {
                key: s[1] & 0x0F,
                asc: s[2],
                ascq: s[3],
                progress,
            })
        }
        _ => None,
    }
}

/// Where a SCSI SANITIZE stands, from a TEST UNIT READY reply (SBC-4 4.11):
/// NOT READY / 04h 1Bh "sanitize in progress" while it runs, 31h 03h
/// "sanitize command failed" when it failed, GOOD when done.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SanitizeState {
    Running(Option<f64>),
    Done,
    Failed,
    /// Unit attention and the like: ask again.
    Retry,
    Other(u8, u8, u8),
}

pub fn scsi_sanitize_state(status: u8, sense: &[u8]) -> SanitizeState {
    if status == 0 {
        return SanitizeState::Done;
    }
    match parse_scsi_sense(sense) {
        Some(Sense {
            key: 0x2,
            asc: 0x04,
            ascq: 0x1B,
            progress,
        }) => SanitizeState::Running(progress.map(|p| p as f64 / 65536.0)),
        Some(Sense {
            asc: 0x31,
            ascq: 0x03,
            ..
        }) => SanitizeState::Failed,
        Some(Sense { key: 0x6, .. }) => SanitizeState::Retry,
        Some(x) => SanitizeState::Other(x.key, x.asc, x.ascq),
        None => SanitizeState::Other(0, 0, 0),
    }
}

fn poll_scsi_sanitize(t: &Target, tracker: &Tracker) -> Result<()> {
    let start = Instant::now();
    let mut odd = 0;
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let r = sg_io(
            &t.file,
            &[SCSI_TEST_UNIT_READY, 0, 0, 0, 0, 0],
            Data::None,
            10_000,
        )?;
        match scsi_sanitize_state(r.status, &r.sense) {
            SanitizeState::Done => return Ok(()),
            SanitizeState::Running(p) => {
                if let Some(p) = p {
                    tracker.fraction(p);
                }
            }
            SanitizeState::Failed => bail!("the SCSI sanitize failed (sense 31h/03h)"),
            SanitizeState::Retry => {}
            SanitizeState::Other(k, a, q) => {
                odd += 1;
                if odd > 10 {
                    bail!("unexpected sense while sanitizing: key {k:#x} ASC {a:#x} ASCQ {q:#x}");
                }
            }
        }
        if start.elapsed() > SANITIZE_LIMIT {
            bail!(
                "sanitize still running after {} h",
                SANITIZE_LIMIT.as_secs() / 3600
            );
        }
    }
}

/// IDENTIFY DEVICE through SG_IO (read-only).
pub fn probe(path: &Path) -> Result<AtaCaps> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut buf = vec![0u8; 512];
    let r =
        sg_io(&f, &identify_cdb(), Data::In(&mut buf), 10_000).context("SG_IO IDENTIFY DEVICE")?;
    check(&r, "IDENTIFY DEVICE")?;
    if buf.iter().all(|&b| b == 0) {
        bail!("IDENTIFY DEVICE returned no data (not an ATA disk behind SAT?)");
    }
    Ok(parse_identify(&buf))
}

/// The 512-byte data of SECURITY SET PASSWORD / ERASE UNIT: word 0 is the
/// control word (bit 0 master=1/user=0, bit 1 enhanced erase), words 1-16
/// the password.
pub fn security_block(enhanced: bool) -> Vec<u8> {
    let mut b = vec![0u8; 512];
    b[0] = if enhanced { 0x02 } else { 0x00 };
    b[2..2 + SECURITY_PASSWORD.len()].copy_from_slice(SECURITY_PASSWORD);
    b
}

pub fn erase(m: Method, t: &Target, tracker: &Tracker, notes: &mut Vec<String>) -> Result<()> {
    match m {
        Method::AtaSanitizeCrypto | Method::AtaSanitizeBlock | Method::AtaSanitizeOverwrite => {
            let cdb = sanitize_cdb(m).expect("sanitize method");
            let r = sg_io(&t.file, &cdb, Data::None, 60_000).context("SG_IO SANITIZE DEVICE")?;
            if check(&r, "SANITIZE DEVICE").is_err() {
                // A SAS disk: the SCSI SANITIZE command instead.
                let scdb = scsi_sanitize_cdb(m).ok_or_else(|| {
                    anyhow!("ATA SANITIZE failed and SCSI SANITIZE has no {}", m.name())
                })?;
                let r = sg_io(&t.file, &scdb, Data::None, 60_000).context("SG_IO SCSI SANITIZE")?;
                if r.status != 0 {
                    bail!(
                        "SANITIZE refused by the device (SCSI status {:#x}, sense {})",
                        r.status,
                        hex::encode(&r.sense)
                    );
                }
                notes.push("SCSI SANITIZE issued (IMMED)".into());
                poll_scsi_sanitize(t, tracker)?;
                notes.push("TEST UNIT READY: sanitize completed".into());
                tracker.fraction(1.0);
                return Ok(());
            } else {
                notes.push(format!(
                    "ATA SANITIZE DEVICE feature {:#06x} issued",
                    u16::from(cdb[3]) << 8 | u16::from(cdb[4])
                ));
            }
            let start = Instant::now();
            loop {
                std::thread::sleep(Duration::from_secs(2));
                let r = sg_io(&t.file, &sanitize_status_cdb(), Data::None, 10_000)?;
                let regs = parse_ata_sense(&r.sense);
                match regs {
                    Some(g) if g.status & 0x01 != 0 => bail!(
                        "SANITIZE STATUS EXT reports an error (error {:#x}): the sanitize failed",
                        g.error
                    ),
                    // COUNT bit 14: in progress; bit 15: completed without error.
                    Some(g) if g.complete && g.count & 0x4000 != 0 => {
                        tracker.fraction(g.lba as f64 / 65536.0)
                    }
                    Some(g) if g.complete && g.count & 0x8000 != 0 => break,
                    Some(g) if g.complete => bail!(
                        "SANITIZE STATUS EXT: neither in progress nor completed (count {:#x})",
                        g.count
                    ),
                    // Fixed-format sense: no COUNT 15:8. The device aborts
                    // reads while sanitizing, so a read that succeeds means done.
                    _ => {
                        let mut probe = super::overwrite::AlignedBuf::new(4096);
                        if std::os::unix::fs::FileExt::read_at(&t.file, probe.as_mut_slice(), 0)
                            .is_ok()
                        {
                            notes.push(
                                "completion detected by a successful read (fixed-format sense)"
                                    .into(),
                            );
                            break;
                        }
                    }
                }
                if start.elapsed() > SANITIZE_LIMIT {
                    bail!(
                        "sanitize still running after {} h",
                        SANITIZE_LIMIT.as_secs() / 3600
                    );
                }
            }
            tracker.fraction(1.0);
            Ok(())
        }
        Method::AtaSecureErase => {
            // Re-read the state: it may have changed since the plan.
            let mut id = vec![0u8; 512];
            let r = sg_io(&t.file, &identify_cdb(), Data::In(&mut id), 10_000)?;
            check(&r, "IDENTIFY DEVICE")?;
            let sec = parse_identify(&id).security;
            if sec.frozen {
                bail!("security is FROZEN: suspend/resume the machine or hot-plug the disk, then retry");
            }
            if sec.locked || sec.enabled {
                bail!(
                    "security is already enabled or locked with an unknown password; not guessing"
                );
            }
            let enhanced = sec.enhanced_supported;
            let minutes = if enhanced {
                sec.enhanced_erase_minutes
            } else {
                sec.erase_minutes
            };
            let timeout_ms = ((minutes.max(60) as u64 * 2 * 60_000).min(u32::MAX as u64)) as u32;
            let pw = security_block(false);
            let r = sg_io(
                &t.file,
                &ata16(
                    Protocol::PioOut,
                    false,
                    false,
                    0,
                    1,
                    0,
                    ATA_SECURITY_SET_PASSWORD,
                ),
                Data::Out(&pw),
                30_000,
            )?;
            check(&r, "SECURITY SET PASSWORD")?;
            let r = sg_io(
                &t.file,
                &ata16(
                    Protocol::NonData,
                    false,
                    false,
                    0,
                    0,
                    0,
                    ATA_SECURITY_ERASE_PREPARE,
                ),
                Data::None,
                30_000,
            )?;
            check(&r, "SECURITY ERASE PREPARE")?;
            tracker.fraction(0.0);
            let eb = security_block(enhanced);
            let r = sg_io(
                &t.file,
                &ata16(
                    Protocol::PioOut,
                    false,
                    false,
                    0,
                    1,
                    0,
                    ATA_SECURITY_ERASE_UNIT,
                ),
                Data::Out(&eb),
                timeout_ms,
            )?;
            check(&r, "SECURITY ERASE UNIT").context(
                "the erase failed with the speediso password set; unlock with `hdparm --user-master u --security-disable speediso`",
            )?;
            tracker.fraction(1.0);
            notes.push(format!(
                "ATA SECURITY ERASE UNIT ({}) completed",
                if enhanced { "enhanced" } else { "normal" }
            ));
            Ok(())
        }
        _ => bail!("{} is not an ATA method", m.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_through_cdbs_match_sat() {
        // IDENTIFY DEVICE: PIO in, T_DIR|BYTE_BLOCK|T_LENGTH=2, count 1, ECh.
        assert_eq!(
            identify_cdb(),
            [0x85, 0x08, 0x0E, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x40, 0xEC, 0]
        );
        // SANITIZE CRYPTO SCRAMBLE EXT: non-data + EXTEND, CK_COND,
        // feature 0011h, LBA 43727970h ("Cryp"), command B4h.
        let c = sanitize_cdb(Method::AtaSanitizeCrypto).unwrap();
        assert_eq!(
            c,
            [0x85, 0x07, 0x20, 0x00, 0x11, 0, 0, 0x43, 0x70, 0, 0x79, 0, 0x72, 0x40, 0xB4, 0]
        );
        // BLOCK ERASE EXT: feature 0012h, LBA 426B4572h ("BkEr").
        let b = sanitize_cdb(Method::AtaSanitizeBlock).unwrap();
        assert_eq!(
            (b[4], b[7], b[8], b[10], b[12]),
            (0x12, 0x42, 0x72, 0x45, 0x6B)
        );
        // OVERWRITE EXT: feature 0014h, LBA 47:32 = 4F57h ("OW"), 1 pass.
        let o = sanitize_cdb(Method::AtaSanitizeOverwrite).unwrap();
        assert_eq!((o[4], o[6], o[9], o[11]), (0x14, 1, 0x57, 0x4F));
        // SANITIZE STATUS EXT: feature 0.
        assert_eq!(sanitize_status_cdb()[3..5], [0, 0]);
        // SCSI SANITIZE crypto erase with IMMED: 48h 83h.
        assert_eq!(
            scsi_sanitize_cdb(Method::AtaSanitizeCrypto).unwrap()[..2],
            [0x48, 0x83]
        );
        assert_eq!(
            scsi_sanitize_cdb(Method::AtaSanitizeBlock).unwrap()[1],
            0x82
        );
        // SECURITY ERASE UNIT: PIO out, count 1, F4h.
        let e = ata16(
            Protocol::PioOut,
            false,
            false,
            0,
            1,
            0,
            ATA_SECURITY_ERASE_UNIT,
        );
        assert_eq!((e[1], e[2], e[6], e[14]), (0x0A, 0x06, 1, 0xF4));
        assert_eq!(&security_block(true)[..10], b"\x02\x00speediso");
    }

    #[test]
    fn identify_words() {
        let mut raw = vec![0u8; 512];
        let put = |raw: &mut Vec<u8>, w: usize, v: u16| {
            raw[w * 2..w * 2 + 2].copy_from_slice(&v.to_le_bytes())
        };
        // Model "ABCD" byte-swapped per word.
        put(&mut raw, 27, u16::from_be_bytes(*b"AB"));
        put(&mut raw, 28, u16::from_be_bytes(*b"CD"));
        put(&mut raw, 59, 1 << 12 | 1 << 13 | 1 << 15);
        put(&mut raw, 128, 0x1 | 0x8 | 0x20);
        put(&mut raw, 89, 30);
        let c = parse_identify(&raw);
        assert_eq!(c.model, "ABCD");
        assert!(c.sanitize_crypto && c.sanitize_block && !c.sanitize_overwrite);
        assert!(c.security.supported && c.security.frozen && c.security.enhanced_supported);
        assert!(!c.security.locked && !c.security.enabled);
        assert_eq!(c.security.erase_minutes, 60);
    }

    #[test]
    fn scsi_sanitize_progress_from_sense() {
        // Fixed format: NOT READY, 04h/1Bh, SKSV with progress 8000h (50 %).
        let mut f = vec![0u8; 18];
        f[0] = 0x70;
        f[2] = 0x02;
        f[12] = 0x04;
        f[13] = 0x1B;
        f[15] = 0x80;
        f[16] = 0x80;
        assert_eq!(
            scsi_sanitize_state(2, &f),
            SanitizeState::Running(Some(0.5))
        );
        // Descriptor format, same state, progress in descriptor 02h.
        let d = [
            0x72, 0x02, 0x04, 0x1B, 0, 0, 0, 8, 0x02, 0x06, 0, 0, 0x80, 0x40, 0x00, 0,
        ];
        assert_eq!(
            scsi_sanitize_state(2, &d),
            SanitizeState::Running(Some(0.25))
        );
        // Failed: 31h/03h. Done: GOOD. Unit attention: ask again.
        f[12] = 0x31;
        f[13] = 0x03;
        f[2] = 0x03;
        assert_eq!(scsi_sanitize_state(2, &f), SanitizeState::Failed);
        assert_eq!(scsi_sanitize_state(0, &[]), SanitizeState::Done);
        f[2] = 0x06;
        f[12] = 0x29;
        assert_eq!(scsi_sanitize_state(2, &f), SanitizeState::Retry);
    }

    #[test]
    fn sense_formats() {
        // Descriptor format with an ATA Status Return descriptor.
        let mut s = vec![0x72, 0x01, 0x00, 0x1D, 0, 0, 0, 14];
        s.extend([
            0x09, 0x0C, 0x01, 0x00, 0x40, 0x00, 0x00, 0x34, 0x00, 0x12, 0x00, 0x00, 0x40, 0x50,
        ]);
        let r = parse_ata_sense(&s).unwrap();
        assert_eq!(
            (r.count, r.lba, r.status, r.complete),
            (0x4000, 0x1234, 0x50, true)
        );
        // Fixed format: error, status, count low, LBA 23:0.
        let f = [
            0x70, 0, 0x01, 0x04, 0x51, 0x40, 0x05, 0x0A, 0x40, 0x34, 0x12, 0x00,
        ];
        let r = parse_ata_sense(&f).unwrap();
        assert_eq!(
            (r.error, r.status, r.count, r.lba, r.complete),
            (0x04, 0x51, 0x05, 0x1234, false)
        );
    }
}
