//! ATA and SCSI erase commands through SG_IO: IDENTIFY DEVICE (sanitize and
//! security capabilities), SANITIZE DEVICE (ACS-3) wrapped in ATA
//! PASS-THROUGH(16) (SAT-4) and polled with SANITIZE STATUS EXT, ATA
//! Security Erase (opt-in), and SCSI SANITIZE (SBC-4) for SAS disks.

use super::method::Method;
use super::overwrite::Target;
use super::progress::Tracker;
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
pub const ATA_SECURITY_UNLOCK: u8 = 0xF2;
pub const ATA_SECURITY_DISABLE_PASSWORD: u8 = 0xF6;

/// SANITIZE DEVICE feature codes and the LBA "signatures" ACS-3 requires.
pub const SAN_STATUS_EXT: u16 = 0x0000;
pub const SAN_CRYPTO_SCRAMBLE_EXT: u16 = 0x0011;
pub const SAN_BLOCK_ERASE_EXT: u16 = 0x0012;
pub const SAN_OVERWRITE_EXT: u16 = 0x0014;
pub const SIG_CRYPTO: u64 = 0x4372_7970; // "Cryp"
pub const SIG_BLOCK: u64 = 0x426B_4572; // "BkEr"
pub const SIG_OVERWRITE: u64 = 0x4F57; // "OW" in LBA 47:32

/// The password speediso sets for a security erase; it is cleared by the
/// erase itself, and by `clear_password` when the erase fails.
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
    /// Words 89/90: estimated minutes (0 = not given; with `*_open` the
    /// lower bound of "more than N minutes").
    pub erase_minutes: u32,
    pub enhanced_erase_minutes: u32,
    /// Word 89/90 said "more than" (255, or 32767 in the extended format).
    pub erase_time_open: bool,
    pub enhanced_erase_time_open: bool,
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
    // ACS-4 7.12.7.40/41: bit 15 clear, bits 7:0 in 2-minute units with
    // 255 = "more than 508 minutes"; bit 15 set (extended format), bits
    // 14:0 in 2-minute units with 32767 = "more than 65532 minutes".
    let minutes = |x: u16| -> (u32, bool) {
        if x & 0x8000 != 0 {
            let v = (x & 0x7FFF) as u32;
            if v == 0x7FFF {
                (65532, true)
            } else {
                (v * 2, false)
            }
        } else {
            let v = (x & 0xFF) as u32;
            if v == 0xFF {
                (508, true)
            } else {
                (v * 2, false)
            }
        }
    };
    let (erase_minutes, erase_time_open) = minutes(w[89]);
    let (enhanced_erase_minutes, enhanced_erase_time_open) = minutes(w[90]);
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
            erase_minutes,
            enhanced_erase_minutes,
            erase_time_open,
            enhanced_erase_time_open,
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

/// ATA registers returned with CK_COND: from descriptor-format sense
/// (72h/73h) the ATA Status Return descriptor 09h (SAT-4 12.2.2.6), from
/// fixed-format sense (70h/71h) the INFORMATION and COMMAND-SPECIFIC
/// INFORMATION fields, which carry them only with ASC/ASCQ 00h/1Dh "ATA
/// PASS-THROUGH INFORMATION AVAILABLE" (SAT-4 12.2.2.7). Fixed format
/// lacks COUNT 15:8 and LBA 47:24 and only flags them non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AtaRegs {
    pub error: u8,
    pub status: u8,
    pub count: u16,
    pub lba: u64,
    /// DEVICE: bits 3:0 carry LBA 27:24 of a 28-bit command's result
    /// (READ NATIVE MAX ADDRESS).
    pub device: u8,
    /// False when COUNT 15:8 or LBA 47:24 are non-zero and not given
    /// (fixed format with COUNT/LBA UPPER NONZERO set).
    pub complete: bool,
}

/// SENSE KEY RECOVERED ERROR with 00h/1Dh: how SAT returns the registers
/// of a command that completed (CK_COND=1), not an error.
fn is_ata_info(s: &Sense) -> bool {
    s.key == 0x01 && s.asc == 0x00 && s.ascq == 0x1D
}

/// The ATA registers in `s`, if it carries them (see `AtaRegs`).
pub fn parse_ata_sense(s: &[u8]) -> Option<AtaRegs> {
    match s.first()? & 0x7F {
        0x72 | 0x73 => {
            let end = s.len().min(8 + *s.get(7)? as usize);
            let mut i = 8;
            while i + 1 < end {
                let (code, len) = (s[i], s[i + 1] as usize);
                if code == 0x09 && len >= 12 && i + 13 < end {
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
                        device: d[12],
                        status: d[13],
                        complete: true,
                    });
                }
                i += 2 + len;
            }
            None
        }
        0x70 | 0x71 if s.len() >= 14 => {
            let sense = parse_scsi_sense(s)?;
            if !is_ata_info(&sense) {
                // ILLEGAL REQUEST and the rest: bytes 3-11 are the
                // ordinary INFORMATION fields, not registers.
                return None;
            }
            Some(AtaRegs {
                error: s[3],
                status: s[4],
                count: s[6] as u16,
                lba: s[9] as u64 | (s[10] as u64) << 8 | (s[11] as u64) << 16,
                device: s[5],
                // Byte 8: EXTEND (7), COUNT UPPER NONZERO (6), LBA UPPER
                // NONZERO (5). Upper bytes flagged zero are known.
                complete: s[8] & 0x60 == 0,
            })
        }
        _ => None,
    }
}

/// Why an ATA PASS-THROUGH command did not succeed. Typed because the
/// SANITIZE path branches on ILLEGAL REQUEST (no ATA behind this SCSI
/// device: try SCSI SANITIZE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassThroughError {
    /// The HBA or the kernel failed the command.
    Transport { host: u16, driver: u16 },
    /// A SCSI status other than GOOD or CHECK CONDITION.
    Status(u8),
    /// CHECK CONDITION with sense that is not "ATA pass-through
    /// information available"; the registers when the sense carries them.
    Sense {
        key: u8,
        asc: u8,
        ascq: u8,
        regs: Option<AtaRegs>,
    },
    /// CHECK CONDITION without sense data that can be decoded.
    BadSense(Vec<u8>),
    /// The command reached the drive, which set ERR in STATUS.
    Aborted(AtaRegs),
}

/// SPC's name of a sense key (also `scsi::describe`'s).
pub(super) fn sense_key_name(k: u8) -> &'static str {
    match k {
        0x0 => "NO SENSE",
        0x1 => "RECOVERED ERROR",
        0x2 => "NOT READY",
        0x3 => "MEDIUM ERROR",
        0x4 => "HARDWARE ERROR",
        0x5 => "ILLEGAL REQUEST",
        0x6 => "UNIT ATTENTION",
        0x7 => "DATA PROTECT",
        0xB => "ABORTED COMMAND",
        _ => "other",
    }
}

impl std::fmt::Display for PassThroughError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PassThroughError::Transport { host, driver } => {
                write!(f, "host status {host:#x}, driver status {driver:#x}")
            }
            PassThroughError::Status(s) => write!(f, "SCSI status {s:#x}"),
            PassThroughError::Sense {
                key,
                asc,
                ascq,
                regs,
            } => {
                write!(
                    f,
                    "CHECK CONDITION, sense key {key:#x} ({}), ASC {asc:#04x}, ASCQ {ascq:#04x}",
                    sense_key_name(*key)
                )?;
                if let Some(r) = regs {
                    write!(f, "; ATA status {:#04x}, error {:#04x}", r.status, r.error)?;
                }
                Ok(())
            }
            PassThroughError::BadSense(b) => {
                write!(f, "CHECK CONDITION, undecodable sense {}", hex::encode(b))
            }
            PassThroughError::Aborted(r) => write!(
                f,
                "the device aborted the command (ATA status {:#04x}, error {:#04x})",
                r.status, r.error
            ),
        }
    }
}

impl std::error::Error for PassThroughError {}

/// Decide how an ATA PASS-THROUGH reply ended. GOOD is success (no
/// registers); CHECK CONDITION is success only as RECOVERED ERROR 00h/1Dh
/// with the registers and ERR clear. Every other CHECK CONDITION is an
/// error naming its sense key, ASC and ASCQ.
pub fn pass_through_result(r: &Reply) -> Result<Option<AtaRegs>, PassThroughError> {
    if r.host_status != 0 || (r.driver_status & 0xF) != 0 && r.sense.is_empty() {
        return Err(PassThroughError::Transport {
            host: r.host_status,
            driver: r.driver_status,
        });
    }
    match r.status {
        0 => return Ok(parse_ata_sense(&r.sense)),
        2 => {}
        s => return Err(PassThroughError::Status(s)),
    }
    let Some(sense) = parse_scsi_sense(&r.sense) else {
        return Err(PassThroughError::BadSense(r.sense.clone()));
    };
    let regs = parse_ata_sense(&r.sense);
    match regs {
        Some(g) if is_ata_info(&sense) && g.status & 0x01 != 0 => Err(PassThroughError::Aborted(g)),
        Some(g) if is_ata_info(&sense) => Ok(Some(g)),
        _ => Err(PassThroughError::Sense {
            key: sense.key,
            asc: sense.asc,
            ascq: sense.ascq,
            regs,
        }),
    }
}

fn check(r: &Reply, what: &str) -> Result<Option<AtaRegs>> {
    pass_through_result(r).with_context(|| what.to_string())
}

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

/// Something that takes ATA PASS-THROUGH CDBs: the opened disk, or a
/// scripted fake in tests (the Security Erase sequence and its cleanup
/// cannot run on a loop device).
pub trait PassThrough {
    fn send(&self, cdb: &[u8], data: Data<'_>, timeout_ms: u32) -> std::io::Result<Reply>;
}

impl PassThrough for std::fs::File {
    fn send(&self, cdb: &[u8], data: Data<'_>, timeout_ms: u32) -> std::io::Result<Reply> {
        sg_io(self, cdb, data, timeout_ms)
    }
}

pub fn erase(m: Method, t: &Target, tracker: &Tracker, notes: &mut Vec<String>) -> Result<()> {
    match m {
        Method::AtaSanitizeCrypto | Method::AtaSanitizeBlock | Method::AtaSanitizeOverwrite => {
            let cdb = sanitize_cdb(m).expect("sanitize method");
            let r = sg_io(&t.file, &cdb, Data::None, 60_000).context("SG_IO SANITIZE DEVICE")?;
            match pass_through_result(&r) {
                Ok(_) => notes.push(format!(
                    "ATA SANITIZE DEVICE feature {:#06x} issued",
                    u16::from(cdb[3]) << 8 | u16::from(cdb[4])
                )),
                // No ATA behind this SCSI device (a SAS disk): the SCSI
                // SANITIZE command instead.
                Err(PassThroughError::Sense { key: 0x5, .. }) => {
                    let sm = match m {
                        Method::AtaSanitizeBlock => Method::ScsiSanitizeBlock,
                        Method::AtaSanitizeCrypto => Method::ScsiSanitizeCrypto,
                        _ => bail!(
                            "ATA PASS-THROUGH is refused (ILLEGAL REQUEST) and SCSI SANITIZE has no {}",
                            m.name()
                        ),
                    };
                    return super::scsi::sanitize(
                        &t.file,
                        sm,
                        Duration::from_secs(2),
                        tracker,
                        notes,
                    );
                }
                Err(e) => return Err(e).context("SANITIZE DEVICE"),
            }
            let start = Instant::now();
            loop {
                std::thread::sleep(Duration::from_secs(2));
                let r = sg_io(&t.file, &sanitize_status_cdb(), Data::None, 10_000)?;
                match pass_through_result(&r) {
                    Err(PassThroughError::Aborted(g)) => bail!(
                        "SANITIZE STATUS EXT reports an error (error {:#x}): the sanitize failed",
                        g.error
                    ),
                    Err(e) => return Err(e).context("SANITIZE STATUS EXT"),
                    // COUNT bit 14: in progress; bit 15: completed without error.
                    Ok(Some(g)) if g.complete && g.count & 0x4000 != 0 => {
                        tracker.fraction(g.lba as f64 / 65536.0)
                    }
                    Ok(Some(g)) if g.complete && g.count & 0x8000 != 0 => break,
                    Ok(Some(g)) if g.complete => bail!(
                        "SANITIZE STATUS EXT: neither in progress nor completed (count {:#x})",
                        g.count
                    ),
                    // Fixed-format sense without COUNT 15:8, or no
                    // registers at all. The device aborts reads while
                    // sanitizing, so a read that succeeds means done.
                    Ok(_) => {
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
        Method::AtaSecureErase => security_erase(&t.file, t.size, tracker, notes),
        _ => bail!("{} is not an ATA method", m.name()),
    }
}

/// The slowest rate a Security Erase is assumed to run at when the drive
/// gives no usable estimate: a fifth of what the inner tracks of a
/// 7200-rpm disk write, so a slow disk is never abandoned mid-erase.
pub const MIN_ERASE_BYTES_PER_S: u64 = 20_000_000;

/// The SG_IO timeout of SECURITY ERASE UNIT. A drive's own estimate
/// (IDENTIFY word 89, or 90 for enhanced) is doubled, at least two hours.
/// Where there is none (0) or it is open-ended (255: "more than 508
/// minutes", or 32767 in the extended format), the capacity at
/// `MIN_ERASE_BYTES_PER_S` decides, never less than twice the stated bound.
pub fn security_erase_timeout_ms(minutes: u32, open_ended: bool, capacity: u64) -> u32 {
    let stated_s = minutes as u64 * 60;
    let secs = if minutes > 0 && !open_ended {
        (stated_s * 2).max(2 * 3600)
    } else {
        (capacity / MIN_ERASE_BYTES_PER_S)
            .max(stated_s * 2)
            .max(2 * 3600)
    };
    (secs.saturating_mul(1000)).min(u32::MAX as u64) as u32
}

fn ata_cmd(pt: &dyn PassThrough, cdb: [u8; 16], data: Data<'_>, ms: u32, what: &str) -> Result<()> {
    let r = pt
        .send(&cdb, data, ms)
        .with_context(|| format!("SG_IO {what}"))?;
    check(&r, what).map(|_| ())
}

/// One of the SECURITY feature set's commands (ACS-3 7.43..7.48): no LBA;
/// the 512-byte password block as data, or none (ERASE PREPARE).
fn security_cmd(pt: &dyn PassThrough, cmd: u8, data: Data<'_>, ms: u32, what: &str) -> Result<()> {
    let (protocol, sectors) = match data {
        Data::None => (Protocol::NonData, 0),
        _ => (Protocol::PioOut, 1),
    };
    ata_cmd(
        pt,
        ata16(protocol, false, false, 0, sectors, 0, cmd),
        data,
        ms,
        what,
    )
}

fn identify(pt: &dyn PassThrough) -> Result<AtaCaps> {
    let mut id = vec![0u8; 512];
    ata_cmd(
        pt,
        identify_cdb(),
        Data::In(&mut id),
        10_000,
        "IDENTIFY DEVICE",
    )?;
    Ok(parse_identify(&id))
}

/// Take the speediso password off again: SECURITY UNLOCK (in case the
/// drive locked) then SECURITY DISABLE PASSWORD, both with the user
/// password. Returns what happened, for the error or the notes.
fn clear_password(pt: &dyn PassThrough) -> Result<String, String> {
    let pw = security_block(false);
    let unlock = security_cmd(
        pt,
        ATA_SECURITY_UNLOCK,
        Data::Out(&pw),
        30_000,
        "SECURITY UNLOCK",
    );
    let disable = security_cmd(
        pt,
        ATA_SECURITY_DISABLE_PASSWORD,
        Data::Out(&pw),
        30_000,
        "SECURITY DISABLE PASSWORD",
    );
    match disable {
        Ok(()) => Ok("the speediso password was removed (SECURITY DISABLE PASSWORD)".into()),
        Err(e) => Err(format!(
            "the speediso password could NOT be removed ({}{e:#}); clear it with `hdparm --user-master u --security-disable speediso`",
            unlock
                .err()
                .map(|u| format!("{u:#}; "))
                .unwrap_or_default()
        )),
    }
}

/// ATA Security Erase: IDENTIFY (state re-read), SET PASSWORD, ERASE
/// PREPARE, ERASE UNIT. Once a password was sent, every failure takes it
/// off again before returning, so a failed erase never leaves a disk that
/// locks at the next power cycle.
pub fn security_erase(
    pt: &dyn PassThrough,
    capacity: u64,
    tracker: &Tracker,
    notes: &mut Vec<String>,
) -> Result<()> {
    // Re-read the state: it may have changed since the plan.
    let sec = identify(pt)?.security;
    if sec.frozen {
        bail!("security is FROZEN: suspend/resume the machine or hot-plug the disk, then retry");
    }
    if sec.locked || sec.enabled {
        bail!("security is already enabled or locked with an unknown password; not guessing");
    }
    let enhanced = sec.enhanced_supported;
    let (minutes, open) = if enhanced {
        (sec.enhanced_erase_minutes, sec.enhanced_erase_time_open)
    } else {
        (sec.erase_minutes, sec.erase_time_open)
    };
    let timeout_ms = security_erase_timeout_ms(minutes, open, capacity);
    let pw = security_block(false);
    let eb = security_block(enhanced);
    let run = || -> Result<()> {
        security_cmd(
            pt,
            ATA_SECURITY_SET_PASSWORD,
            Data::Out(&pw),
            30_000,
            "SECURITY SET PASSWORD",
        )?;
        security_cmd(
            pt,
            ATA_SECURITY_ERASE_PREPARE,
            Data::None,
            30_000,
            "SECURITY ERASE PREPARE",
        )?;
        tracker.fraction(0.0);
        security_cmd(
            pt,
            ATA_SECURITY_ERASE_UNIT,
            Data::Out(&eb),
            timeout_ms,
            "SECURITY ERASE UNIT",
        )
    };
    if let Err(e) = run() {
        // SET PASSWORD may have taken effect even when its reply was lost:
        // ask the drive, and clean up unless it says security is off.
        match identify(pt) {
            Ok(c) if !c.security.enabled && !c.security.locked => {
                return Err(e.context("security is not enabled after the failure; no password left"))
            }
            _ => {}
        }
        return Err(match clear_password(pt) {
            Ok(done) => e.context(done),
            Err(left) => e.context(left),
        });
    }
    tracker.fraction(1.0);
    notes.push(format!(
        "ATA SECURITY ERASE UNIT ({}) completed; SG_IO timeout {} min{}",
        if enhanced { "enhanced" } else { "normal" },
        timeout_ms / 60_000,
        if open || minutes == 0 {
            " (derived from the capacity: the drive gave no bounded estimate)"
        } else {
            ""
        }
    ));
    // A successful erase disables security itself; make sure.
    match identify(pt) {
        Ok(c) if c.security.enabled => {
            clear_password(pt).map_err(|e| anyhow!("after the erase: {e}"))?;
            notes.push("security was still enabled after the erase; password removed".into());
        }
        Ok(_) => {}
        Err(e) => notes.push(format!("IDENTIFY after the erase failed: {e:#}")),
    }
    Ok(())
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
        // The SCSI SANITIZE the fallback sends (scsi.rs): crypto erase
        // with IMMED is 48h 83h, block erase 82h.
        use super::super::scsi;
        let sa = |m| scsi::service_action(m).unwrap().0;
        assert_eq!(
            scsi::sanitize_cdb(sa(Method::ScsiSanitizeCrypto), false, 0)[..2],
            [0x48, 0x83]
        );
        assert_eq!(
            scsi::sanitize_cdb(sa(Method::ScsiSanitizeBlock), false, 0)[1],
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
        // What the fallback's polling (scsi::poll_state) reads.
        use super::super::scsi::{poll_state, Poll};
        // Fixed format: NOT READY, 04h/1Bh, SKSV with progress 8000h (50 %).
        let mut f = vec![0u8; 18];
        f[0] = 0x70;
        f[2] = 0x02;
        f[12] = 0x04;
        f[13] = 0x1B;
        f[15] = 0x80;
        f[16] = 0x80;
        assert!(matches!(poll_state(&f), Some(Poll::Running(Some(p))) if p == 0.5));
        // Descriptor format, same state, progress in descriptor 02h.
        let d = [
            0x72, 0x02, 0x04, 0x1B, 0, 0, 0, 8, 0x02, 0x06, 0, 0, 0x80, 0x40, 0x00, 0,
        ];
        assert!(matches!(poll_state(&d), Some(Poll::Running(Some(p))) if p == 0.25));
        // Failed: 31h/03h. Done: NO SENSE. Unit attention: ask again.
        f[12] = 0x31;
        f[13] = 0x03;
        f[2] = 0x03;
        assert!(matches!(poll_state(&f), Some(Poll::Failed(_))));
        let mut none = vec![0u8; 18];
        none[0] = 0x70;
        assert!(matches!(poll_state(&none), Some(Poll::Done)));
        f[2] = 0x06;
        f[12] = 0x29;
        assert!(matches!(poll_state(&f), Some(Poll::Again)));
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
        // (SAT-4 12.2.2.7: RECOVERED ERROR, 00h/1Dh; byte 8 bit 6 COUNT
        // UPPER NONZERO.)
        let f = [
            0x70, 0, 0x01, 0x04, 0x51, 0x40, 0x05, 0x0A, 0x40, 0x34, 0x12, 0x00, 0x00, 0x1D, 0, 0,
            0, 0,
        ];
        let r = parse_ata_sense(&f).unwrap();
        assert_eq!(
            (r.error, r.status, r.count, r.lba, r.complete),
            (0x04, 0x51, 0x05, 0x1234, false)
        );
    }

    /// Fixed-format sense (SPC-5 4.4.3): response code, key in byte 2,
    /// INFORMATION 3-6, additional length 7, COMMAND-SPECIFIC 8-11,
    /// ASC 12, ASCQ 13.
    fn fixed(key: u8, asc: u8, ascq: u8, info: [u8; 4], csi: [u8; 4]) -> Vec<u8> {
        let mut s = vec![0u8; 18];
        s[0] = 0x70;
        s[2] = key;
        s[3..7].copy_from_slice(&info);
        s[7] = 10;
        s[8..12].copy_from_slice(&csi);
        s[12] = asc;
        s[13] = ascq;
        s
    }

    /// Descriptor-format sense (SPC-5 4.4.2) with an ATA Status Return
    /// descriptor 09h (SAT-4 12.2.2.6) of `status`/`error`.
    fn desc(key: u8, asc: u8, ascq: u8, ata: Option<(u8, u8)>) -> Vec<u8> {
        let mut s = vec![0x72, key, asc, ascq, 0, 0, 0, 0];
        if let Some((status, error)) = ata {
            s.extend([
                0x09, 0x0C, 0x00, error, 0, 0x01, 0, 0, 0, 0, 0, 0, 0x40, status,
            ]);
        }
        s[7] = (s.len() - 8) as u8;
        s
    }

    fn reply(status: u8, sense: Vec<u8>) -> Reply {
        Reply {
            status,
            sense,
            ..Default::default()
        }
    }

    #[test]
    fn pass_through_results() {
        use PassThroughError as E;
        let regs = |status, error, complete| AtaRegs {
            error,
            status,
            count: 1,
            lba: 0,
            device: 0x40,
            complete,
        };
        type Want = Result<Option<AtaRegs>, E>;
        let table: Vec<(&str, Reply, Want)> = vec![
            ("GOOD", reply(0, vec![]), Ok(None)),
            (
                "descriptor, ATA information available, ERR clear",
                reply(2, desc(0x01, 0x00, 0x1D, Some((0x50, 0)))),
                Ok(Some(regs(0x50, 0, true))),
            ),
            (
                "descriptor, ATA information available, ERR set",
                reply(2, desc(0x01, 0x00, 0x1D, Some((0x51, 0x04)))),
                Err(E::Aborted(regs(0x51, 0x04, true))),
            ),
            (
                // What libata returns when the drive aborts a command.
                "descriptor, ABORTED COMMAND with registers",
                reply(2, desc(0x0B, 0x00, 0x00, Some((0x51, 0x04)))),
                Err(E::Sense {
                    key: 0x0B,
                    asc: 0,
                    ascq: 0,
                    regs: Some(regs(0x51, 0x04, true)),
                }),
            ),
            (
                // A SAS disk: ATA PASS-THROUGH is an invalid opcode. The
                // old code read bytes 3-6 as registers and took it as success.
                "fixed, ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE",
                reply(2, fixed(0x05, 0x20, 0x00, [0; 4], [0; 4])),
                Err(E::Sense {
                    key: 0x05,
                    asc: 0x20,
                    ascq: 0x00,
                    regs: None,
                }),
            ),
            (
                // INVALID FIELD IN CDB with a non-zero INFORMATION field
                // that must not be read as STATUS.
                "fixed, ILLEGAL REQUEST, INVALID FIELD IN CDB",
                reply(2, fixed(0x05, 0x24, 0x00, [0, 0x50, 0, 0], [0; 4])),
                Err(E::Sense {
                    key: 0x05,
                    asc: 0x24,
                    ascq: 0x00,
                    regs: None,
                }),
            ),
            (
                "fixed, ATA information available, 28-bit",
                reply(2, fixed(0x01, 0x00, 0x1D, [0, 0x50, 0x40, 1], [0; 4])),
                Ok(Some(regs(0x50, 0, true))),
            ),
            (
                "fixed, ATA information available, COUNT UPPER NONZERO",
                reply(
                    2,
                    fixed(0x01, 0x00, 0x1D, [0, 0x50, 0x40, 1], [0xC0, 0, 0, 0]),
                ),
                Ok(Some(regs(0x50, 0, false))),
            ),
            (
                "fixed, UNIT ATTENTION, POWER ON OR RESET",
                reply(2, fixed(0x06, 0x29, 0x00, [0; 4], [0; 4])),
                Err(E::Sense {
                    key: 0x06,
                    asc: 0x29,
                    ascq: 0,
                    regs: None,
                }),
            ),
            (
                "descriptor, MEDIUM ERROR without registers",
                reply(2, desc(0x03, 0x11, 0x04, None)),
                Err(E::Sense {
                    key: 0x03,
                    asc: 0x11,
                    ascq: 0x04,
                    regs: None,
                }),
            ),
            (
                "CHECK CONDITION without sense",
                reply(2, vec![]),
                Err(E::BadSense(vec![])),
            ),
            ("BUSY", reply(0x08, vec![]), Err(E::Status(0x08))),
            (
                "host error",
                Reply {
                    host_status: 0x07,
                    ..Default::default()
                },
                Err(E::Transport {
                    host: 0x07,
                    driver: 0,
                }),
            ),
        ];
        for (what, r, want) in table {
            assert_eq!(pass_through_result(&r), want, "{what}");
        }
        let e = check(
            &reply(2, fixed(0x05, 0x20, 0x00, [0; 4], [0; 4])),
            "SANITIZE DEVICE",
        )
        .unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "SANITIZE DEVICE: CHECK CONDITION, sense key 0x5 (ILLEGAL REQUEST), ASC 0x20, ASCQ 0x00"
        );
    }

    #[test]
    fn erase_time_words_and_timeouts() {
        let id = |w89: u16, w90: u16| {
            let mut raw = vec![0u8; 512];
            raw[178..180].copy_from_slice(&w89.to_le_bytes());
            raw[180..182].copy_from_slice(&w90.to_le_bytes());
            parse_identify(&raw).security
        };
        // (word, minutes, open-ended); ACS-4 7.12.7.40.
        let table = [
            (0u16, 0u32, false),
            (30, 60, false),
            (254, 508, false),
            (255, 508, true), // "more than 508 minutes"; the old code said 510
            (0x8000 | 100, 200, false),
            (0x8000 | 0x7FFF, 65532, true),
            (0x1234, 0x34 * 2, false), // bits 14:8 reserved in the normal format
        ];
        for (w, min, open) in table {
            let s = id(w, w);
            assert_eq!((s.erase_minutes, s.erase_time_open), (min, open), "{w:#x}");
            assert_eq!(
                (s.enhanced_erase_minutes, s.enhanced_erase_time_open),
                (min, open)
            );
        }
        let tb16 = 16_000_000_000_000u64;
        let h = |ms: u32| ms as u64 / 3_600_000;
        // A bounded estimate: doubled, at least two hours.
        assert_eq!(h(security_erase_timeout_ms(300, false, tb16)), 10);
        assert_eq!(h(security_erase_timeout_ms(10, false, tb16)), 2);
        // Open-ended on 16 TB: 16e12 / 20e6 B/s = 800000 s (222 h), not
        // the old 2 x 510 min = 17 h.
        assert_eq!(security_erase_timeout_ms(508, true, tb16), 800_000_000);
        // Open-ended on a small disk: twice the stated bound.
        assert_eq!(
            security_erase_timeout_ms(508, true, 100_000_000_000),
            2 * 508 * 60_000
        );
        // Not given: the capacity decides.
        assert_eq!(security_erase_timeout_ms(0, false, tb16), 800_000_000);
        // Capped at what SG_IO takes.
        assert_eq!(security_erase_timeout_ms(65532, true, u64::MAX), u32::MAX);
    }

    /// An ATA disk behind SG_IO, scripted: IDENTIFY reports the security
    /// state it keeps, `fail` lists the opcodes that the drive aborts
    /// (descriptor sense, ABORTED COMMAND, ATA status 51h error 04h).
    struct FakeAta {
        log: std::cell::RefCell<Vec<(u8, u32)>>,
        fail: Vec<u8>,
        enabled: std::cell::Cell<bool>,
        w89: u16,
    }

    impl FakeAta {
        fn new(fail: &[u8]) -> FakeAta {
            FakeAta {
                log: Default::default(),
                fail: fail.to_vec(),
                enabled: Default::default(),
                w89: 255,
            }
        }
        fn ops(&self) -> Vec<u8> {
            self.log.borrow().iter().map(|x| x.0).collect()
        }
    }

    impl PassThrough for FakeAta {
        fn send(&self, cdb: &[u8], data: Data<'_>, ms: u32) -> std::io::Result<Reply> {
            let op = cdb[14];
            self.log.borrow_mut().push((op, ms));
            if self.fail.contains(&op) {
                return Ok(reply(2, desc(0x0B, 0x00, 0x00, Some((0x51, 0x04)))));
            }
            match (op, data) {
                (ATA_IDENTIFY_DEVICE, Data::In(b)) => {
                    b.fill(0);
                    b[178..180].copy_from_slice(&self.w89.to_le_bytes());
                    let w128: u16 = 0x1 | if self.enabled.get() { 0x2 } else { 0 };
                    b[256..258].copy_from_slice(&w128.to_le_bytes());
                }
                (ATA_SECURITY_SET_PASSWORD, Data::Out(b)) => {
                    assert_eq!(&b[2..10], SECURITY_PASSWORD);
                    self.enabled.set(true)
                }
                (ATA_SECURITY_DISABLE_PASSWORD | ATA_SECURITY_UNLOCK, Data::Out(b)) => {
                    assert_eq!(&b[2..10], SECURITY_PASSWORD);
                    if op == ATA_SECURITY_DISABLE_PASSWORD {
                        self.enabled.set(false)
                    }
                }
                (ATA_SECURITY_ERASE_UNIT, _) => self.enabled.set(false),
                _ => {}
            }
            Ok(reply(0, vec![]))
        }
    }

    #[test]
    fn security_erase_takes_the_password_off_on_every_failure() {
        use ATA_IDENTIFY_DEVICE as ID;
        use ATA_SECURITY_DISABLE_PASSWORD as DIS;
        use ATA_SECURITY_ERASE_PREPARE as PREP;
        use ATA_SECURITY_ERASE_UNIT as UNIT;
        use ATA_SECURITY_SET_PASSWORD as SET;
        use ATA_SECURITY_UNLOCK as UNL;
        let tr = Tracker::new("test".into(), None);
        let cap = 16_000_000_000_000;
        // (opcodes the drive aborts, commands sent, error contains)
        let table: &[(&[u8], &[u8], &str)] = &[
            (&[], &[ID, SET, PREP, UNIT, ID], ""),
            (
                &[UNIT],
                &[ID, SET, PREP, UNIT, ID, UNL, DIS],
                "the speediso password was removed",
            ),
            (
                &[PREP],
                &[ID, SET, PREP, ID, UNL, DIS],
                "the speediso password was removed",
            ),
            // The password never took: nothing to clean up.
            (&[SET], &[ID, SET, ID], "no password left"),
            (
                &[UNIT, DIS],
                &[ID, SET, PREP, UNIT, ID, UNL, DIS],
                "could NOT be removed",
            ),
        ];
        for (fail, want, msg) in table {
            let d = FakeAta::new(fail);
            let mut notes = vec![];
            let r = security_erase(&d, cap, &tr, &mut notes);
            assert_eq!(d.ops(), *want, "fail {fail:02x?}");
            match r {
                Ok(()) => {
                    assert!(msg.is_empty(), "fail {fail:02x?} succeeded");
                    assert!(notes[0].contains("derived from the capacity"), "{notes:?}");
                }
                Err(e) => {
                    let e = format!("{e:#}");
                    assert!(e.contains(msg), "fail {fail:02x?}: {e}");
                    assert!(e.contains("ABORTED COMMAND"), "{e}");
                }
            }
            // Only a failed DISABLE PASSWORD leaves the password set.
            assert_eq!(d.enabled.get(), fail.contains(&DIS), "fail {fail:02x?}");
            // ERASE UNIT ran with the capacity-derived timeout (word 89 = 255).
            let unit_ms: Vec<u32> = d
                .log
                .borrow()
                .iter()
                .filter(|x| x.0 == UNIT)
                .map(|x| x.1)
                .collect();
            assert!(unit_ms.iter().all(|&ms| ms == 800_000_000), "{unit_ms:?}");
        }
        // Frozen, enabled or locked: refused before any password is sent.
        let d = FakeAta::new(&[]);
        d.enabled.set(true);
        assert!(security_erase(&d, cap, &tr, &mut vec![]).is_err());
        assert_eq!(d.ops(), [ID]);
    }
}
