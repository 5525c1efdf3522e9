//! Hidden disk areas: an ATA Host Protected Area (READ NATIVE MAX ADDRESS
//! against IDENTIFY and the kernel's size), a Device Configuration Overlay
//! (DCO IDENTIFY), and NVMe capacity that the namespace being erased does
//! not cover. Detection is read-only and feeds the inventory, the plan and
//! the certificate; `restore_before_erase` lifts an HPA before a wipe and
//! fails the disk, before anything is written, where it cannot.

use super::ata::{ata16, pass_through_result, AtaRegs, PassThrough, Protocol};
use super::method::Method;
use crate::sys::nvme::AdminCmd;
use crate::sys::sg::Data;
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;

pub const ATA_READ_NATIVE_MAX_EXT: u8 = 0x27;
pub const ATA_SET_MAX_EXT: u8 = 0x37;
pub const ATA_ACCESSIBLE_MAX: u8 = 0x78;
pub const ATA_DCO: u8 = 0xB1;
pub const ATA_READ_NATIVE_MAX: u8 = 0xF8;
pub const ATA_SET_MAX: u8 = 0xF9;
pub const ATA_SET_FEATURES: u8 = 0xEF;
/// ACCESSIBLE MAX ADDRESS CONFIGURATION features (ACS-3 7.3).
pub const AMAC_GET_NATIVE_MAX: u16 = 0x0000;
pub const AMAC_SET_ACCESSIBLE_MAX: u16 = 0x0001;
/// DEVICE CONFIGURATION IDENTIFY (ATA8-ACS 7.10.3). RESTORE (C0h) and
/// FREEZE LOCK (C1h) are never sent.
pub const DCO_IDENTIFY: u16 = 0x00C2;

/// What IDENTIFY DEVICE says about capacity and the features that hide
/// part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IdCapacity {
    /// Word 83 bit 10: the 48-bit Address feature set.
    pub lba48: bool,
    /// Word 82 bit 10: the HPA feature set.
    pub hpa: bool,
    /// Word 83 bit 11: the DCO feature set.
    pub dco: bool,
    /// Word 119 bit 8: Accessible Max Address Configuration (ACS-3),
    /// which replaces HPA and makes DCO obsolete.
    pub amac: bool,
    /// Read look-ahead (word 82 bit 6 supported, word 85 bit 6 enabled):
    /// `Some(enabled)` where supported.
    pub look_ahead: Option<bool>,
    /// Volatile write cache (words 82/85 bit 5), likewise.
    pub write_cache: Option<bool>,
    /// User addressable sectors now: words 230-233 where word 69 bit 3
    /// says they are valid, else words 100-103 (48-bit), else 60-61.
    pub accessible: u64,
}

/// Words 82-84 and 119-120 are valid only with bits 15:14 = 01.
fn valid(w: u16) -> bool {
    w & 0xC000 == 0x4000
}

fn words(raw: &[u8]) -> Vec<u16> {
    raw.chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

fn qword(w: &[u16]) -> u64 {
    w.iter()
        .enumerate()
        .fold(0u64, |a, (i, &x)| a | (x as u64) << (16 * i))
}

/// Decode the capacity words of IDENTIFY DEVICE data (256 words).
pub fn parse_id_capacity(raw: &[u8]) -> IdCapacity {
    let w = words(raw);
    if w.len() < 256 {
        return IdCapacity::default();
    }
    let set = valid(w[83]);
    let lba48 = set && w[83] & (1 << 10) != 0;
    let accessible = if w[69] & (1 << 3) != 0 && qword(&w[230..234]) > 0 {
        qword(&w[230..234])
    } else if lba48 {
        qword(&w[100..104])
    } else {
        qword(&w[60..62])
    };
    IdCapacity {
        lba48,
        hpa: set && w[82] & (1 << 10) != 0,
        dco: set && w[83] & (1 << 11) != 0,
        amac: valid(w[119]) && w[119] & (1 << 8) != 0,
        look_ahead: (set && w[82] & (1 << 6) != 0).then_some(w[85] & (1 << 6) != 0),
        write_cache: (set && w[82] & (1 << 5) != 0).then_some(w[85] & (1 << 5) != 0),
        accessible,
    }
}

/// An ATA PASS-THROUGH(16) CDB for a 28-bit command with an LBA: LBA 27:24
/// go in DEVICE bits 3:0 (the LBA "high" bytes are ignored without EXTEND).
fn ata16_28(protocol: Protocol, ck_cond: bool, feature: u16, lba: u64, command: u8) -> [u8; 16] {
    let mut c = ata16(
        protocol,
        false,
        ck_cond,
        feature,
        0,
        lba & 0xFF_FFFF,
        command,
    );
    c[13] |= ((lba >> 24) & 0xF) as u8;
    c
}

/// READ NATIVE MAX ADDRESS (EXT): non-data, CK_COND so the registers
/// (the native max LBA) come back in the sense data.
pub fn read_native_max_cdb(ext: bool) -> [u8; 16] {
    if ext {
        ata16(
            Protocol::NonData,
            true,
            true,
            0,
            0,
            0,
            ATA_READ_NATIVE_MAX_EXT,
        )
    } else {
        ata16_28(Protocol::NonData, true, 0, 0, ATA_READ_NATIVE_MAX)
    }
}

/// GET NATIVE MAX ADDRESS EXT (ACCESSIBLE MAX ADDRESS CONFIGURATION 0000h).
pub fn get_native_max_cdb() -> [u8; 16] {
    ata16(
        Protocol::NonData,
        true,
        true,
        AMAC_GET_NATIVE_MAX,
        0,
        0,
        ATA_ACCESSIBLE_MAX,
    )
}

/// SET MAX ADDRESS (EXT) to `max_lba`, volatile: COUNT bit 0 is VV
/// ("value volatile"), and VV=1 would keep the value over a power cycle,
/// so it is sent as 0, as libata does when it lifts an HPA at probe time
/// (`ata_set_max_sectors`). The drive aborts it unless READ NATIVE MAX
/// ADDRESS came immediately before.
pub fn set_max_cdb(ext: bool, max_lba: u64) -> [u8; 16] {
    if ext {
        ata16(
            Protocol::NonData,
            true,
            true,
            0,
            0,
            max_lba,
            ATA_SET_MAX_EXT,
        )
    } else {
        ata16_28(Protocol::NonData, true, 0, max_lba, ATA_SET_MAX)
    }
}

/// SET ACCESSIBLE MAX ADDRESS EXT (0001h): non-volatile by definition.
pub fn set_accessible_max_cdb(max_lba: u64) -> [u8; 16] {
    ata16(
        Protocol::NonData,
        true,
        true,
        AMAC_SET_ACCESSIBLE_MAX,
        0,
        max_lba,
        ATA_ACCESSIBLE_MAX,
    )
}

/// SET FEATURES that sets read look-ahead (AAh on, 55h off) or the write
/// cache (02h on, 82h off) to the state IDENTIFY reported: no change to
/// the drive, but libata revalidates a device after these four
/// (`ata_qc_complete`), re-reads IDENTIFY without a reset, takes the
/// larger size ("late HPA unlock, n_sectors updated") and has the SCSI
/// disk rescan its capacity. `None` where the drive has neither feature.
pub fn revalidate_cdb(id: &IdCapacity) -> Option<[u8; 16]> {
    let feature = match (id.look_ahead, id.write_cache) {
        (Some(true), _) => 0xAA,
        (Some(false), _) => 0x55,
        (None, Some(true)) => 0x02,
        (None, Some(false)) => 0x82,
        (None, None) => return None,
    };
    Some(ata16(
        Protocol::NonData,
        false,
        false,
        feature,
        0,
        0,
        ATA_SET_FEATURES,
    ))
}

/// DEVICE CONFIGURATION IDENTIFY: PIO data-in, one 512-byte block.
pub fn dco_identify_cdb() -> [u8; 16] {
    ata16(Protocol::PioIn, false, false, DCO_IDENTIFY, 1, 0, ATA_DCO)
}

/// The max LBA a READ NATIVE MAX / GET NATIVE MAX reply carries: LBA 47:0
/// for a 48-bit command (only when the sense gave all of it), LBA 23:0 and
/// DEVICE 3:0 for a 28-bit one.
pub fn max_lba_from_regs(r: &AtaRegs, ext: bool) -> Option<u64> {
    if ext {
        r.complete.then_some(r.lba)
    } else {
        Some(r.lba & 0xFF_FFFF | ((r.device & 0xF) as u64) << 24)
    }
}

/// The factory max LBA from DEVICE CONFIGURATION IDENTIFY data: words 3-6
/// (ATA8-ACS table 23), checked against the integrity word 255 (signature
/// A5h in bits 7:0; the 512 bytes then sum to 0 mod 256).
pub fn parse_dco(raw: &[u8]) -> Result<u64, String> {
    if raw.len() < 512 {
        return Err(format!("{} bytes, not 512", raw.len()));
    }
    let w = words(raw);
    if w[255] & 0xFF == 0xA5 && raw.iter().fold(0u8, |a, &b| a.wrapping_add(b)) != 0 {
        return Err("checksum (word 255) does not match".into());
    }
    let max = qword(&w[3..7]);
    if max == 0 {
        return Err("max LBA (words 3-6) is 0".into());
    }
    Ok(max)
}

/// An ATA disk's hidden areas, in logical sectors.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct AtaHidden {
    /// Native max LBA + 1 (READ/GET NATIVE MAX ADDRESS); null when unread.
    pub native_max_sectors: Option<u64>,
    /// What the drive offers now (IDENTIFY).
    pub accessible_sectors: u64,
    /// What the kernel offers (its size / logical block size).
    pub kernel_sectors: u64,
    /// Native minus accessible: the Host Protected Area.
    pub hpa_sectors: Option<u64>,
    /// The factory max from DCO IDENTIFY (max LBA + 1); null when there
    /// is no DCO (or "n/a" with AMAC, see `dco`).
    pub dco_max_sectors: Option<u64>,
    /// DCO max minus native: sectors a DCO hides.
    pub dco_hidden_sectors: Option<u64>,
    /// `read`, `not supported`, `n/a (Accessible Max Address
    /// Configuration)` or `error: ...`.
    pub dco: String,
    /// Whether the full size was restored before the erase; null where
    /// nothing needed it (or nothing was erased).
    pub restored: Option<bool>,
    /// Which commands found (and restored) what.
    pub how: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl AtaHidden {
    /// Sectors an erase through the kernel would not reach: everything
    /// between the kernel's end and the largest known max.
    pub fn unreachable(&self) -> u64 {
        let top = [self.native_max_sectors, self.dco_max_sectors]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(self.accessible_sectors)
            .max(self.accessible_sectors);
        top.saturating_sub(self.kernel_sectors)
    }
}

/// NVMe capacity that one namespace may not cover (Identify Controller
/// TNVMCAP/UNVMCAP, Identify Namespace NSZE/NCAP/NUSE, the active
/// namespace list).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, Default)]
pub struct NvmeCapacity {
    /// TNVMCAP in bytes; null when the controller does not report it (0).
    pub total_bytes: Option<u64>,
    /// UNVMCAP: capacity in no namespace.
    pub unallocated_bytes: Option<u64>,
    pub namespace_id: Option<u32>,
    /// NSZE × the LBA data size.
    pub namespace_bytes: Option<u64>,
    pub nsze: Option<u64>,
    pub ncap: Option<u64>,
    pub nuse: Option<u64>,
    pub block_bytes: Option<u64>,
    /// Active namespace ids of the controller (Identify CNS 02h).
    pub active_namespaces: Vec<u32>,
    /// The active namespaces other than this one.
    pub other_namespaces: Vec<u32>,
    /// What this namespace does not cover, in words; empty when it covers
    /// everything that was reported.
    pub uncovered: Vec<String>,
    /// What the erase reached (set in the certificate): sanitize acts on
    /// the whole NVM subsystem, a format on one or all namespaces, an
    /// overwrite on this namespace's LBAs only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erase_reach: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Hidden or uncovered capacity of a disk, as the inventory, the plan and
/// the certificate show it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum HiddenAreas {
    Ata(AtaHidden),
    Nvme(NvmeCapacity),
}

impl HiddenAreas {
    /// What is hidden or uncovered, in words (the inventory's flags);
    /// empty when nothing is.
    pub fn findings(&self) -> Vec<String> {
        match self {
            HiddenAreas::Ata(a) => {
                let mut v = vec![];
                if let Some(e) = &a.error {
                    v.push(format!("hidden areas unknown: {e}"));
                }
                if let Some(n) = a.hpa_sectors.filter(|&n| n > 0) {
                    v.push(format!("HPA hides {n} sectors"));
                }
                if let Some(n) = a.dco_hidden_sectors.filter(|&n| n > 0) {
                    v.push(format!("DCO hides {n} sectors"));
                }
                if a.dco.starts_with("error") {
                    v.push(format!("DCO unknown ({})", a.dco));
                }
                v
            }
            HiddenAreas::Nvme(n) => n.uncovered.clone(),
        }
    }
}

fn send(
    pt: &dyn PassThrough,
    cdb: &[u8; 16],
    data: Data<'_>,
    what: &str,
) -> Result<Option<AtaRegs>> {
    let r = pt
        .send(cdb, data, 10_000)
        .with_context(|| format!("SG_IO {what}"))?;
    pass_through_result(&r).with_context(|| what.to_string())
}

fn identify_raw(pt: &dyn PassThrough) -> Result<Vec<u8>> {
    let mut id = vec![0u8; 512];
    send(
        pt,
        &super::ata::identify_cdb(),
        Data::In(&mut id),
        "IDENTIFY DEVICE",
    )?;
    if id.iter().all(|&b| b == 0) {
        bail!("IDENTIFY DEVICE returned no data (not an ATA disk behind SAT?)");
    }
    Ok(id)
}

/// Read the native max address by the command the drive has; returns the
/// sectors (max LBA + 1) and how they were read.
///
/// Fixed-format sense (what some SATLs, such as LSI's, and Linux 6.10-6.11
/// return for CK_COND) carries only LBA 23:0 of a 48-bit result. Where
/// those bits equal the accessible max's, the native max is taken to be
/// the accessible one, and `how` says it was inferred (an HPA of an exact
/// multiple of 2^24 sectors would alias); where they differ there is an
/// HPA of unknown size, which is an error.
fn read_native(pt: &dyn PassThrough, id: &IdCapacity) -> Result<(u64, String)> {
    let (cdb, ext, what) = if id.amac {
        (
            get_native_max_cdb(),
            true,
            "GET NATIVE MAX ADDRESS EXT (78h/0000h)",
        )
    } else if id.lba48 {
        (
            read_native_max_cdb(true),
            true,
            "READ NATIVE MAX ADDRESS EXT (27h)",
        )
    } else {
        (
            read_native_max_cdb(false),
            false,
            "READ NATIVE MAX ADDRESS (F8h)",
        )
    };
    let regs = send(pt, &cdb, Data::None, what)?
        .ok_or_else(|| anyhow!("{what}: no registers came back (CK_COND ignored)"))?;
    if let Some(max) = max_lba_from_regs(&regs, ext) {
        return Ok((max + 1, what.to_string()));
    }
    let acc_max = id.accessible.saturating_sub(1);
    if regs.lba & 0xFF_FFFF == acc_max & 0xFF_FFFF {
        return Ok((
            id.accessible,
            format!("{what}, fixed-format sense without LBA 47:24: LBA 23:0 equal the accessible max's, so no HPA (inferred)"),
        ));
    }
    bail!(
        "{what}: the sense data lacks LBA 47:24 (fixed format) and LBA 23:0 ({:#x}) differ from the accessible max's ({:#x}): there is a hidden area of unknown size",
        regs.lba & 0xFF_FFFF,
        acc_max & 0xFF_FFFF
    )
}

/// Detect an HPA and a DCO, read-only: IDENTIFY, READ/GET NATIVE MAX
/// ADDRESS, DCO IDENTIFY. `kernel_sectors` is the kernel's size in logical
/// sectors. Fails only when IDENTIFY does (not an ATA disk).
pub fn probe_ata(pt: &dyn PassThrough, kernel_sectors: u64) -> Result<AtaHidden> {
    let id = parse_id_capacity(&identify_raw(pt)?);
    Ok(probe_with(pt, &id, kernel_sectors))
}

fn probe_with(pt: &dyn PassThrough, id: &IdCapacity, kernel_sectors: u64) -> AtaHidden {
    let mut h = AtaHidden {
        accessible_sectors: id.accessible,
        kernel_sectors,
        ..Default::default()
    };
    let mut how = vec![];
    match read_native(pt, id) {
        Ok((n, what)) => {
            h.native_max_sectors = Some(n);
            h.hpa_sectors = Some(n.saturating_sub(id.accessible));
            how.push(what);
        }
        // Without the HPA feature set (and AMAC) nothing can be hidden by
        // SET MAX; QEMU's ide-hd and many SSDs are like that.
        Err(e) if !id.hpa && !id.amac => {
            h.native_max_sectors = Some(id.accessible);
            h.hpa_sectors = Some(0);
            how.push(format!(
                "no HPA feature set (IDENTIFY word 82 bit 10 clear; the native max read failed: {e:#})"
            ));
        }
        Err(e) => h.error = Some(format!("{e:#}")),
    }
    h.dco = if id.amac {
        "n/a (Accessible Max Address Configuration)".into()
    } else if !id.dco {
        "not supported".into()
    } else {
        let mut raw = vec![0u8; 512];
        match send(
            pt,
            &dco_identify_cdb(),
            Data::In(&mut raw),
            "DEVICE CONFIGURATION IDENTIFY",
        )
        .map_err(|e| format!("{e:#}"))
        .and_then(|_| parse_dco(&raw))
        {
            Ok(max) => {
                h.dco_max_sectors = Some(max + 1);
                h.dco_hidden_sectors = h.native_max_sectors.map(|n| (max + 1).saturating_sub(n));
                how.push("DEVICE CONFIGURATION IDENTIFY (B1h/C2h)".into());
                "read".into()
            }
            Err(e) => format!("error: {e}"),
        }
    };
    h.how = how.join("; ");
    h
}

/// Restore the full native size before an erase, or say why not. Every
/// step re-reads the drive: READ NATIVE MAX ADDRESS comes immediately
/// before SET MAX ADDRESS as the drive requires; after a restore a no-op
/// SET FEATURES (`revalidate_cdb`) makes libata re-read IDENTIFY, and
/// `refresh(want)` makes the kernel re-read the size, waiting a little for
/// it to reach `want`, and returns it in logical sectors. Returns the
/// record for the certificate and, as `Err`, why the disk must fail
/// before anything is written (with the sectors that would stay
/// unerased). Never sends DCO RESTORE or a FREEZE LOCK.
pub fn restore_before_erase(
    pt: &dyn PassThrough,
    kernel_sectors: u64,
    refresh: &mut dyn FnMut(u64) -> Result<u64>,
) -> (Option<AtaHidden>, Result<()>) {
    let id = match identify_raw(pt) {
        Ok(raw) => parse_id_capacity(&raw),
        Err(e) => {
            return (
                None,
                Err(e.context("re-reading IDENTIFY DEVICE before the erase; nothing written")),
            )
        }
    };
    let mut h = probe_with(pt, &id, kernel_sectors);
    let r = restore(pt, &id, &mut h, refresh);
    if r.is_err() && h.restored.is_none() && h.hpa_sectors.unwrap_or(0) > 0 {
        h.restored = Some(false);
    }
    (Some(h), r)
}

fn restore(
    pt: &dyn PassThrough,
    id: &IdCapacity,
    h: &mut AtaHidden,
    refresh: &mut dyn FnMut(u64) -> Result<u64>,
) -> Result<()> {
    let Some(native) = h.native_max_sectors else {
        bail!(
            "the native max address cannot be read ({}), so whether part of the disk is hidden is unknown; nothing written",
            h.error.as_deref().unwrap_or("no reply")
        );
    };
    if let Some(dco_hidden) = h.dco_hidden_sectors.filter(|&n| n > 0) {
        bail!(
            "the disk is DCO-reduced by {dco_hidden} sectors (factory max {} sectors, native {native}): only DEVICE CONFIGURATION RESTORE could undo it, which speediso does not send; {} sectors would stay unerased; nothing written",
            h.dco_max_sectors.unwrap_or(0),
            h.unreachable()
        );
    }
    if let Some(e) = h.dco.strip_prefix("error: ") {
        bail!(
            "the drive has the DCO feature set but DEVICE CONFIGURATION IDENTIFY failed ({e}), so whether a DCO hides part of the disk is unknown; nothing written"
        );
    }
    let hpa = h.hpa_sectors.unwrap_or(0);
    if hpa > 0 {
        let max_lba = native - 1;
        let (cdb, what, note) = if id.amac {
            (
                set_accessible_max_cdb(max_lba),
                "SET ACCESSIBLE MAX ADDRESS EXT (78h/0001h)",
                "permanent: the disk keeps its full size from now on",
            )
        } else {
            if !id.lba48 && max_lba > 0x0FFF_FFFF {
                bail!("the native max LBA {max_lba} needs a 48-bit command the drive lacks; {hpa} sectors would stay unerased; nothing written");
            }
            // Immediately before SET MAX, as ATA8-ACS requires.
            let (again, _) = read_native(pt, id).with_context(|| {
                format!(
                    "before SET MAX ADDRESS; {hpa} sectors would stay unerased; nothing written"
                )
            })?;
            if again != native {
                bail!("the native max changed from {native} to {again} sectors between two reads; nothing written");
            }
            if id.lba48 {
                (
                    set_max_cdb(true, max_lba),
                    "SET MAX ADDRESS EXT (37h)",
                    "volatile: the drive reverts to its HPA at the next power cycle",
                )
            } else {
                (
                    set_max_cdb(false, max_lba),
                    "SET MAX ADDRESS (F9h)",
                    "volatile: the drive reverts to its HPA at the next power cycle",
                )
            }
        };
        if let Err(e) = send(pt, &cdb, Data::None, what) {
            h.restored = Some(false);
            return Err(e.context(format!(
                "the Host Protected Area of {hpa} sectors (LBA {}..{}) could not be restored (locked or frozen by the firmware?), so they would stay unerased; nothing written",
                id.accessible, max_lba
            )));
        }
        let now = parse_id_capacity(&identify_raw(pt)?).accessible;
        if now != native {
            h.restored = Some(false);
            bail!("{what} was accepted but IDENTIFY now says {now} sectors, not {native}; {} sectors would stay unerased; nothing written", native.saturating_sub(now));
        }
        h.restored = Some(true);
        h.how = format!("{}; restored by {what}, {note}", h.how);
        if h.kernel_sectors < native {
            match revalidate_cdb(id) {
                Some(c) => {
                    if let Err(e) = send(pt, &c, Data::None, "SET FEATURES (revalidate)") {
                        h.how = format!("{}; the no-op SET FEATURES failed: {e:#}", h.how);
                    }
                }
                None => {
                    h.how = format!(
                        "{}; no read look-ahead or write cache to make libata revalidate",
                        h.how
                    )
                }
            }
        }
    }
    if h.kernel_sectors < native {
        let k = refresh(native).context("making the kernel re-read the size")?;
        h.kernel_sectors = k;
        if k < native {
            bail!(
                "the drive offers {native} sectors{} but the kernel still sees {k}: {} sectors would stay unerased; the kernel (libata) keeps the size it read at probe time, so boot the image with libata.ignore_hpa=1, which lifts an HPA at probe (volatile); nothing written",
                if hpa > 0 { " after the HPA was lifted" } else { "" },
                native - k
            );
        }
        h.how = format!("{}; the kernel re-read the size: {k} sectors", h.how);
    }
    Ok(())
}

/// What the plan line says about a disk's hidden areas; empty when there
/// is nothing to say.
pub fn plan_note(h: Option<&HiddenAreas>) -> String {
    match h {
        Some(HiddenAreas::Ata(a)) => {
            if let Some(e) = &a.error {
                return format!(" [hidden areas unknown: {e}; the erase will fail]");
            }
            let mut v = vec![];
            if let Some(n) = a.dco_hidden_sectors.filter(|&n| n > 0) {
                v.push(format!("DCO hides {n} sectors: the erase will FAIL"));
            }
            if a.dco.starts_with("error") {
                v.push(format!("DCO {}: the erase will FAIL", a.dco));
            }
            if let Some(n) = a.hpa_sectors.filter(|&n| n > 0) {
                v.push(format!(
                    "HPA {n} sectors: restored before the erase ({})",
                    if a.dco.starts_with("n/a") {
                        "SET ACCESSIBLE MAX ADDRESS, permanent"
                    } else {
                        "SET MAX ADDRESS, volatile"
                    }
                ));
            }
            if v.is_empty() {
                String::new()
            } else {
                format!(" [{}]", v.join("; "))
            }
        }
        Some(HiddenAreas::Nvme(n)) if !n.uncovered.is_empty() => {
            format!(" [{}]", n.uncovered.join("; "))
        }
        _ => String::new(),
    }
}

fn le_u64(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"))
}

/// A 128-bit little-endian capacity, saturated to u64 (18 EB).
fn le_cap(b: &[u8], o: usize) -> u64 {
    let v = u128::from_le_bytes(b[o..o + 16].try_into().expect("16 bytes"));
    v.min(u64::MAX as u128) as u64
}

/// TNVMCAP (bytes 280-295) and UNVMCAP (296-311) of Identify Controller;
/// TNVMCAP 0 means not reported, and then UNVMCAP means nothing either.
pub fn parse_ctrl_capacity(ctrl: &[u8]) -> (Option<u64>, Option<u64>) {
    if ctrl.len() < 312 {
        return (None, None);
    }
    let total = le_cap(ctrl, 280);
    if total == 0 {
        return (None, None);
    }
    (Some(total), Some(le_cap(ctrl, 296)))
}

/// NSZE, NCAP, NUSE (bytes 0-23) and the LBA data size of the current
/// format (FLBAS byte 26 → LBA format at 128 + 4 × index, LBADS in bits
/// 23:16) of Identify Namespace.
pub fn parse_ns_capacity(ns: &[u8]) -> Option<(u64, u64, u64, u64)> {
    if ns.len() < 384 {
        return None;
    }
    let flbas = ns[26];
    let idx = (flbas & 0xF) as usize | (((flbas >> 5) & 0x3) as usize) << 4;
    let lbads = ns[128 + 4 * idx + 2];
    if !(9..=16).contains(&lbads) {
        return None;
    }
    Some((le_u64(ns, 0), le_u64(ns, 8), le_u64(ns, 16), 1u64 << lbads))
}

/// The active namespace id list (Identify CNS 02h): u32 ids, ascending,
/// ended by 0.
pub fn parse_ns_list(b: &[u8]) -> Vec<u32> {
    b.chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .take_while(|&id| id != 0)
        .collect()
}

/// Identify with CNS 02h: active namespace ids above NSID (0: all).
pub fn ns_list_cmd() -> AdminCmd {
    AdminCmd {
        opcode: super::nvme::OPC_IDENTIFY,
        nsid: 0,
        cdw10: 0x02,
        timeout_ms: 10_000,
        ..Default::default()
    }
}

/// Put together what one namespace covers, from the three Identify
/// buffers (any may be missing).
pub fn nvme_capacity(
    ctrl: Option<&[u8]>,
    nsid: Option<u32>,
    ns: Option<&[u8]>,
    list: Option<&[u8]>,
) -> NvmeCapacity {
    let (total, unalloc) = ctrl.map(parse_ctrl_capacity).unwrap_or((None, None));
    let mut c = NvmeCapacity {
        total_bytes: total,
        unallocated_bytes: unalloc,
        namespace_id: nsid,
        ..Default::default()
    };
    if let Some((nsze, ncap, nuse, bs)) = ns.and_then(parse_ns_capacity) {
        c.nsze = Some(nsze);
        c.ncap = Some(ncap);
        c.nuse = Some(nuse);
        c.block_bytes = Some(bs);
        c.namespace_bytes = Some(nsze.saturating_mul(bs));
    }
    if let Some(l) = list {
        c.active_namespaces = parse_ns_list(l);
        c.other_namespaces = c
            .active_namespaces
            .iter()
            .copied()
            .filter(|&i| Some(i) != nsid)
            .collect();
    }
    if let Some(u) = c.unallocated_bytes.filter(|&u| u > 0) {
        c.uncovered.push(format!(
            "{u} bytes of the {} bytes of NVM capacity are in no namespace",
            c.total_bytes.unwrap_or(0)
        ));
    }
    if !c.other_namespaces.is_empty() {
        c.uncovered.push(format!(
            "other namespaces on the controller: {}",
            c.other_namespaces
                .iter()
                .map(|i| format!("nsid {i}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    c
}

/// Read what namespace `f` covers (read-only: three Identify commands).
pub fn probe_nvme(f: &std::fs::File) -> NvmeCapacity {
    use crate::sys::nvme::{admin, namespace_id};
    let mut ctrl = vec![0u8; 4096];
    let mut errors = vec![];
    let ctrl_ok = admin(f, &super::nvme::identify_ctrl_cmd(), Some(&mut ctrl))
        .map_err(|e| errors.push(format!("Identify Controller: {e}")))
        .is_ok();
    let nsid = namespace_id(f)
        .map_err(|e| errors.push(format!("NVME_IOCTL_ID: {e}")))
        .ok();
    let mut ns = vec![0u8; 4096];
    let ns_ok = nsid.is_some_and(|id| {
        admin(f, &super::nvme::identify_ns_cmd(id), Some(&mut ns))
            .map_err(|e| errors.push(format!("Identify Namespace: {e}")))
            .is_ok()
    });
    let mut list = vec![0u8; 4096];
    let list_ok = admin(f, &ns_list_cmd(), Some(&mut list))
        .map_err(|e| errors.push(format!("Identify active namespace list: {e}")))
        .is_ok();
    let mut c = nvme_capacity(
        ctrl_ok.then_some(&ctrl[..]),
        nsid,
        ns_ok.then_some(&ns[..]),
        list_ok.then_some(&list[..]),
    );
    if !errors.is_empty() {
        c.error = Some(errors.join("; "));
    }
    c
}

/// What an erase by `m` reached of an NVMe device, for the certificate.
pub fn nvme_reach(m: Method, format_reaches_all: bool, c: &NvmeCapacity) -> String {
    let ns = c
        .namespace_id
        .map(|i| format!("namespace {i}"))
        .unwrap_or_else(|| "this namespace".into());
    match m {
        Method::NvmeSanitizeCrypto | Method::NvmeSanitizeBlock => {
            "Sanitize: the whole NVM subsystem's media, every namespace and the unallocated capacity".into()
        }
        Method::NvmeFormat | Method::NvmeFormatCrypto if format_reaches_all => {
            "Format NVM: every namespace of the controller (FNA); unallocated capacity holds no user data and is not addressed".into()
        }
        Method::NvmeFormat | Method::NvmeFormatCrypto => format!(
            "Format NVM: {ns} only; other namespaces and unallocated capacity not reached"
        ),
        _ => format!("{ns}'s logical blocks only; other namespaces and unallocated capacity not reached"),
    }
}

/// The inventory's view of one disk, read-only, on the real root: ATA
/// disks (lsblk transport sata, ata or sas) by SG_IO, NVMe namespaces by
/// Identify. `None` where the device answers neither (SAS disks, USB
/// bridges, virtio).
pub fn inventory_probe(
    path: &str,
    transport: Option<&str>,
    size_bytes: u64,
    sector: u64,
) -> Option<HiddenAreas> {
    let t = transport?;
    if !matches!(t, "sata" | "ata" | "sas" | "nvme") {
        return None;
    }
    let f = std::fs::File::open(path).ok()?;
    if t == "nvme" {
        return Some(HiddenAreas::Nvme(probe_nvme(&f)));
    }
    probe_ata(&f, size_bytes / sector.max(1))
        .ok()
        .map(HiddenAreas::Ata)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::sg::Reply;
    use std::cell::{Cell, RefCell};

    fn put(raw: &mut [u8], w: usize, v: u16) {
        raw[w * 2..w * 2 + 2].copy_from_slice(&v.to_le_bytes());
    }

    #[test]
    fn cdbs_match_sat_and_acs() {
        // READ NATIVE MAX ADDRESS EXT: non-data (3) + EXTEND, CK_COND, 27h.
        assert_eq!(
            read_native_max_cdb(true),
            [0x85, 0x07, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x27, 0]
        );
        // READ NATIVE MAX ADDRESS: no EXTEND, F8h.
        assert_eq!(
            read_native_max_cdb(false),
            [0x85, 0x06, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0xF8, 0]
        );
        // GET NATIVE MAX ADDRESS EXT: 78h feature 0000h.
        assert_eq!(
            get_native_max_cdb(),
            [0x85, 0x07, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x78, 0]
        );
        // SET MAX ADDRESS EXT to LBA 0x0000_1D1C_5970 (1 TB - 1), COUNT 0
        // (VV=0: volatile). LBA pairs: 7=31:24 8=7:0 9=39:32 10=15:8
        // 11=47:40 12=23:16.
        assert_eq!(
            set_max_cdb(true, 0x1D1C_5970),
            [0x85, 0x07, 0x20, 0, 0, 0, 0, 0x1D, 0x70, 0, 0x59, 0, 0x1C, 0x40, 0x37, 0]
        );
        // SET MAX ADDRESS (28-bit) to 0x0ABC_DEF0: LBA 27:24 in DEVICE 3:0.
        assert_eq!(
            set_max_cdb(false, 0x0ABC_DEF0),
            [0x85, 0x06, 0x20, 0, 0, 0, 0, 0, 0xF0, 0, 0xDE, 0, 0xBC, 0x4A, 0xF9, 0]
        );
        // SET ACCESSIBLE MAX ADDRESS EXT: feature 0001h, 48-bit LBA.
        assert_eq!(
            set_accessible_max_cdb(0x0102_0304_0506),
            [0x85, 0x07, 0x20, 0, 0x01, 0, 0, 0x03, 0x06, 0x02, 0x05, 0x01, 0x04, 0x40, 0x78, 0]
        );
        // The no-op SET FEATURES keeps each feature's state.
        let id = |la, wc| IdCapacity {
            look_ahead: la,
            write_cache: wc,
            ..Default::default()
        };
        assert_eq!(
            revalidate_cdb(&id(Some(true), None)),
            Some([0x85, 0x06, 0, 0, 0xAA, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0xEF, 0])
        );
        assert_eq!(
            revalidate_cdb(&id(Some(false), Some(true))).unwrap()[4],
            0x55
        );
        assert_eq!(revalidate_cdb(&id(None, Some(true))).unwrap()[4], 0x02);
        assert_eq!(revalidate_cdb(&id(None, Some(false))).unwrap()[4], 0x82);
        assert_eq!(revalidate_cdb(&id(None, None)), None);
        // DCO IDENTIFY: PIO in (4), T_DIR|BYTE_BLOCK|T_LENGTH, feature C2h, B1h.
        assert_eq!(
            dco_identify_cdb(),
            [0x85, 0x08, 0x0E, 0, 0xC2, 0, 1, 0, 0, 0, 0, 0, 0, 0x40, 0xB1, 0]
        );
    }

    /// Descriptor-format sense, RECOVERED ERROR 00h/1Dh, with an ATA
    /// Status Return descriptor carrying `lba` (48-bit layout) and `device`.
    fn sense_with(lba: u64, device: u8, status: u8) -> Vec<u8> {
        let b = |s: u32| (lba >> s) as u8;
        let mut s = vec![0x72, 0x01, 0x00, 0x1D, 0, 0, 0, 14];
        s.extend([
            0x09,
            0x0C,
            0x01,
            0x00,
            0,
            0,
            b(24),
            b(0),
            b(32),
            b(8),
            b(40),
            b(16),
            device,
            status,
        ]);
        s
    }

    /// Fixed-format sense of a 48-bit command (SAT-4 12.2.2.7): LBA 23:0,
    /// LBA UPPER NONZERO (byte 8 bit 5) when LBA 47:24 are not zero.
    fn fixed_sense_with(lba: u64) -> Vec<u8> {
        let mut f = vec![0u8; 18];
        f[0] = 0x70;
        f[2] = 0x01;
        f[4] = 0x50;
        f[5] = 0x40;
        f[7] = 10;
        f[8] = 0x80 | if lba >> 24 != 0 { 0x20 } else { 0 };
        f[9] = lba as u8;
        f[10] = (lba >> 8) as u8;
        f[11] = (lba >> 16) as u8;
        f[13] = 0x1D;
        f
    }

    /// Fixed-format sense hides LBA 47:24 of a big drive's native max: equal
    /// low bits are taken as no HPA, and said to be inferred; different low
    /// bits are a hidden area of unknown size, and the erase fails.
    #[test]
    fn fixed_format_sense_on_a_big_drive() {
        // 16 TB: 31251759104 sectors, well past 2^24.
        let n = 31_251_759_104;
        let mut d = FakeHpa::new(n, n);
        d.fixed_sense = true;
        let (h, r) = restore_before_erase(&d, n, &mut |_| Ok(n));
        assert!(r.is_ok(), "{r:?}");
        let h = h.unwrap();
        assert_eq!((h.native_max_sectors, h.hpa_sectors), (Some(n), Some(0)));
        assert!(h.how.contains("(inferred)"), "{}", h.how);
        let mut d = FakeHpa::new(n, n - 1000);
        d.fixed_sense = true;
        let (h, r) = restore_before_erase(&d, n - 1000, &mut |_| Ok(n));
        let e = format!("{:#}", r.unwrap_err());
        assert!(e.contains("hidden area of unknown size"), "{e}");
        assert_eq!(h.unwrap().hpa_sectors, None);
        assert!(!d.ops().contains(&ATA_SET_MAX_EXT));
    }

    #[test]
    fn native_max_from_sense() {
        let reply = |sense| Reply {
            status: 2,
            sense,
            ..Default::default()
        };
        // 48-bit: 16 TB drive, max LBA 31251759103 (0x7_46C0_4FFF).
        let r = pass_through_result(&reply(sense_with(31_251_759_103, 0x40, 0x50)))
            .unwrap()
            .unwrap();
        assert_eq!(max_lba_from_regs(&r, true), Some(31_251_759_103));
        // 28-bit: max LBA 0x0FFF_FFFE; 27:24 come from DEVICE bits 3:0.
        let r = pass_through_result(&reply(sense_with(0x00FF_FFFE, 0x4F, 0x50)))
            .unwrap()
            .unwrap();
        assert_eq!(max_lba_from_regs(&r, false), Some(0x0FFF_FFFE));
        // Fixed format (SAT-4 12.2.2.7): LBA 23:0 only; DEVICE in byte 5.
        let mut f = vec![0u8; 18];
        f[0] = 0x70;
        f[2] = 0x01;
        f[4] = 0x50;
        f[5] = 0x4A;
        f[7] = 10;
        f[9] = 0x56;
        f[10] = 0x34;
        f[11] = 0x12;
        f[13] = 0x1D;
        let r = pass_through_result(&reply(f.clone())).unwrap().unwrap();
        assert_eq!(max_lba_from_regs(&r, false), Some(0x0A12_3456));
        assert_eq!(max_lba_from_regs(&r, true), Some(0x12_3456));
        // ... but with LBA UPPER NONZERO a 48-bit max is unknown.
        f[8] = 0x20;
        let r = pass_through_result(&reply(f)).unwrap().unwrap();
        assert_eq!(max_lba_from_regs(&r, true), None);
    }

    fn dco_block(max_lba: u64, checksum: bool) -> Vec<u8> {
        let mut b = vec![0u8; 512];
        put(&mut b, 0, 0x0002);
        for i in 0..4 {
            put(&mut b, 3 + i, (max_lba >> (16 * i)) as u16);
        }
        if checksum {
            b[510] = 0xA5;
            let sum = b[..511].iter().fold(0u8, |a, &x| a.wrapping_add(x));
            b[511] = 0u8.wrapping_sub(sum);
        }
        b
    }

    #[test]
    fn dco_identify_parsing() {
        assert_eq!(
            parse_dco(&dco_block(1_953_525_167, true)),
            Ok(1_953_525_167)
        );
        // No integrity word: taken as is.
        assert_eq!(parse_dco(&dco_block(0x0FFF_FFFF, false)), Ok(0x0FFF_FFFF));
        let mut bad = dco_block(1_953_525_167, true);
        bad[6] ^= 1;
        assert!(parse_dco(&bad).unwrap_err().contains("checksum"));
        assert!(parse_dco(&dco_block(0, false)).is_err());
        assert!(parse_dco(&[0u8; 100]).is_err());
    }

    #[test]
    fn identify_capacity_words() {
        let mut raw = vec![0u8; 512];
        put(&mut raw, 60, 0xFFFF);
        put(&mut raw, 61, 0x0FFF);
        // 28-bit only.
        let c = parse_id_capacity(&raw);
        assert_eq!((c.lba48, c.accessible), (false, 0x0FFF_FFFF));
        // 48-bit, HPA, DCO; words 100-103.
        put(&mut raw, 82, 0x4000 | 1 << 10);
        put(&mut raw, 83, 0x4000 | 1 << 10 | 1 << 11);
        put(&mut raw, 100, 0x5970);
        put(&mut raw, 101, 0x1D1C);
        let c = parse_id_capacity(&raw);
        assert!(c.lba48 && c.hpa && c.dco && !c.amac);
        assert_eq!(c.accessible, 0x1D1C_5970);
        // Word 83 not valid (bits 15:14 != 01): nothing from it.
        put(&mut raw, 83, 0xFFFF);
        assert!(!parse_id_capacity(&raw).lba48);
        // ACS-3: AMAC in word 119 bit 8; words 230-233 with word 69 bit 3.
        put(&mut raw, 83, 0x4000 | 1 << 10);
        put(&mut raw, 119, 0x4000 | 1 << 8);
        put(&mut raw, 69, 1 << 3);
        put(&mut raw, 230, 0x1234);
        put(&mut raw, 232, 0x0001);
        let c = parse_id_capacity(&raw);
        assert!(c.amac);
        assert_eq!(c.accessible, 0x0001_0000_1234);
    }

    /// An ATA disk with a settable max address, scripted like the
    /// firmware: IDENTIFY reports the current max, READ NATIVE MAX the
    /// native one, SET MAX (only right after READ NATIVE MAX) changes the
    /// current max unless `refuse_set`.
    struct FakeHpa {
        native: u64,
        current: Cell<u64>,
        lba48: bool,
        hpa: bool,
        amac: bool,
        dco_max: Option<u64>,
        refuse_set: bool,
        refuse_native: bool,
        dco_bad: bool,
        fixed_sense: bool,
        last_op: Cell<u8>,
        log: RefCell<Vec<[u8; 16]>>,
    }

    impl FakeHpa {
        fn new(native: u64, current: u64) -> FakeHpa {
            FakeHpa {
                native,
                current: Cell::new(current),
                lba48: true,
                hpa: true,
                amac: false,
                dco_max: None,
                refuse_set: false,
                refuse_native: false,
                dco_bad: false,
                fixed_sense: false,
                last_op: Cell::new(0),
                log: Default::default(),
            }
        }
        fn ops(&self) -> Vec<u8> {
            self.log.borrow().iter().map(|c| c[14]).collect()
        }
    }

    fn aborted() -> Reply {
        // ABORTED COMMAND with ATA status 51h, error 04h, as libata says it.
        let mut s = sense_with(0, 0x40, 0x51);
        s[1] = 0x0B;
        s[3] = 0;
        s[11] = 0x04;
        Reply {
            status: 2,
            sense: s,
            ..Default::default()
        }
    }

    impl PassThrough for FakeHpa {
        fn send(&self, cdb: &[u8], data: Data<'_>, _ms: u32) -> std::io::Result<Reply> {
            let c: [u8; 16] = cdb.try_into().unwrap();
            self.log.borrow_mut().push(c);
            let op = c[14];
            let prev = self.last_op.replace(op);
            let lba = c[8] as u64
                | (c[10] as u64) << 8
                | (c[12] as u64) << 16
                | (c[7] as u64) << 24
                | (c[9] as u64) << 32
                | (c[11] as u64) << 40;
            let fixed = self.fixed_sense;
            let ok = |lba: u64| Reply {
                status: 2,
                sense: if fixed {
                    fixed_sense_with(lba)
                } else {
                    sense_with(lba, 0x40 | ((lba >> 24) & 0xF) as u8, 0x50)
                },
                ..Default::default()
            };
            Ok(match (op, data) {
                (0xEC, Data::In(b)) => {
                    b.fill(0);
                    put(b, 82, 0x4000 | if self.hpa { 1 << 10 } else { 0 });
                    let w83 = 0x4000
                        | if self.lba48 { 1 << 10 } else { 0 }
                        | if self.dco_max.is_some() { 1 << 11 } else { 0 };
                    put(b, 83, w83);
                    put(b, 119, 0x4000 | if self.amac { 1 << 8 } else { 0 });
                    // Read look-ahead supported (word 82) and on (word 85).
                    b[82 * 2] |= 1 << 6;
                    put(b, 85, 1 << 6);
                    let cur = self.current.get();
                    put(b, 60, cur as u16);
                    put(b, 61, (cur >> 16).min(0x0FFF) as u16);
                    for i in 0..4 {
                        put(b, 100 + i, (cur >> (16 * i)) as u16);
                    }
                    Reply::default()
                }
                (ATA_READ_NATIVE_MAX_EXT | ATA_READ_NATIVE_MAX, _) if !self.refuse_native => {
                    ok(self.native - 1)
                }
                (ATA_ACCESSIBLE_MAX, _) if self.amac && c[4] == 0 => ok(self.native - 1),
                (ATA_ACCESSIBLE_MAX, _) if self.amac && c[4] == 1 && !self.refuse_set => {
                    self.current.set(lba + 1);
                    ok(0)
                }
                (ATA_SET_MAX_EXT, _)
                    if !self.refuse_set && prev == ATA_READ_NATIVE_MAX_EXT && c[6] == 0 =>
                {
                    self.current.set(lba + 1);
                    ok(0)
                }
                (ATA_SET_MAX, _) if !self.refuse_set && prev == ATA_READ_NATIVE_MAX => {
                    self.current
                        .set((lba & 0xFF_FFFF | ((c[13] & 0xF) as u64) << 24) + 1);
                    ok(0)
                }
                (ATA_SET_FEATURES, _) => Reply::default(),
                (ATA_DCO, Data::In(b)) if self.dco_max.is_some() => {
                    b.copy_from_slice(&dco_block(self.dco_max.unwrap() - 1, true));
                    if self.dco_bad {
                        b[6] ^= 1;
                    }
                    Reply::default()
                }
                _ => aborted(),
            })
        }
    }

    #[test]
    fn probe_finds_hpa_and_dco() {
        let mut d = FakeHpa::new(2_000_000, 1_990_000);
        d.dco_max = Some(2_100_000);
        let h = probe_ata(&d, 1_990_000).unwrap();
        assert_eq!(h.native_max_sectors, Some(2_000_000));
        assert_eq!(h.accessible_sectors, 1_990_000);
        assert_eq!(h.hpa_sectors, Some(10_000));
        assert_eq!(h.dco_max_sectors, Some(2_100_000));
        assert_eq!(h.dco_hidden_sectors, Some(100_000));
        assert_eq!(h.dco, "read");
        assert_eq!(h.restored, None);
        assert_eq!(d.ops(), [0xEC, 0x27, 0xB1]);
        // Read-only: nothing changed.
        assert_eq!(d.current.get(), 1_990_000);
        // QEMU's ide-hd: no HPA feature set, READ NATIVE MAX answered.
        let mut q = FakeHpa::new(131_072, 131_072);
        q.hpa = false;
        let h = probe_ata(&q, 131_072).unwrap();
        assert_eq!(h.hpa_sectors, Some(0));
        assert_eq!(h.dco, "not supported");
        // AMAC: GET NATIVE MAX ADDRESS EXT, DCO n/a.
        let mut a = FakeHpa::new(1000, 900);
        a.amac = true;
        a.hpa = false;
        let h = probe_ata(&a, 900).unwrap();
        assert_eq!(
            (h.hpa_sectors, h.dco.as_str()),
            (Some(100), "n/a (Accessible Max Address Configuration)")
        );
        assert_eq!(a.log.borrow()[1][14], 0x78);
        assert_eq!(a.log.borrow()[1][4], 0x00);
    }

    /// The erase's first step on three disks: one with an HPA that lifts,
    /// one whose firmware refuses SET MAX, one without an HPA. Only the
    /// refusing one fails, naming the sectors that would stay unerased;
    /// the others go on.
    #[test]
    fn a_disk_that_refuses_set_max_fails_with_the_sector_count() {
        let good = FakeHpa::new(2_000_000, 1_990_000);
        let mut refuses = FakeHpa::new(2_000_000, 1_990_000);
        refuses.refuse_set = true;
        let plain = FakeHpa::new(2_000_000, 2_000_000);
        let mut outcomes = vec![];
        for d in [&good, &refuses, &plain] {
            // The kernel follows the drive (a SAS HBA's SATL does).
            let mut refresh = |_| Ok(d.current.get());
            outcomes.push(restore_before_erase(d, d.current.get(), &mut refresh));
        }
        let (h, r) = &outcomes[0];
        assert!(r.is_ok(), "{r:?}");
        let h = h.as_ref().unwrap();
        assert_eq!(h.restored, Some(true));
        assert_eq!(h.kernel_sectors, 2_000_000);
        assert!(
            h.how.contains("SET MAX ADDRESS EXT (37h)") && h.how.contains("volatile"),
            "{}",
            h.how
        );
        // READ NATIVE MAX immediately before SET MAX; VV (COUNT bit 0) clear.
        let ops = good.ops();
        assert_eq!(&ops[ops.len() - 4..], [0x27, 0x37, 0xEC, 0xEF]);
        let set = good
            .log
            .borrow()
            .iter()
            .find(|c| c[14] == 0x37)
            .copied()
            .unwrap();
        assert_eq!(set[6] & 1, 0);
        assert_eq!(good.current.get(), 2_000_000);

        let (h, r) = &outcomes[1];
        let e = format!("{:#}", r.as_ref().unwrap_err());
        assert!(
            e.contains("10000 sectors") && e.contains("stay unerased"),
            "{e}"
        );
        assert!(
            e.contains("nothing written") && e.contains("ABORTED COMMAND"),
            "{e}"
        );
        assert_eq!(h.as_ref().unwrap().restored, Some(false));
        assert_eq!(refuses.current.get(), 1_990_000);

        let (h, r) = &outcomes[2];
        assert!(r.is_ok());
        let h = h.as_ref().unwrap();
        assert_eq!((h.hpa_sectors, h.restored), (Some(0), None));
        assert!(!plain.ops().contains(&0x37));
    }

    #[test]
    fn restore_failures_name_the_sectors() {
        // DCO-reduced: fails without SET MAX, DCO RESTORE or FREEZE LOCK.
        let mut d = FakeHpa::new(2_000_000, 2_000_000);
        d.dco_max = Some(2_050_000);
        let (h, r) = restore_before_erase(&d, 2_000_000, &mut |_| Ok(2_000_000));
        let e = format!("{:#}", r.unwrap_err());
        assert!(
            e.contains("DCO-reduced by 50000 sectors")
                && e.contains("50000 sectors would stay unerased"),
            "{e}"
        );
        assert_eq!(h.unwrap().dco_hidden_sectors, Some(50_000));
        assert_eq!(d.ops(), [0xEC, 0x27, 0xB1]);
        // DCO IDENTIFY unreadable: a DCO may hide sectors; fails too.
        d.dco_bad = true;
        let (h, r) = restore_before_erase(&d, 2_000_000, &mut |_| Ok(2_000_000));
        let e = format!("{:#}", r.unwrap_err());
        assert!(e.contains("checksum") && e.contains("unknown"), "{e}");
        assert!(h.unwrap().dco.starts_with("error: "));
        // The drive lifts its HPA but the kernel keeps its old size (libata).
        let d = FakeHpa::new(2_000_000, 1_990_000);
        let (h, r) = restore_before_erase(&d, 1_990_000, &mut |_| Ok(1_990_000));
        let e = format!("{:#}", r.unwrap_err());
        assert!(
            e.contains("10000 sectors would stay unerased") && e.contains("libata.ignore_hpa=1"),
            "{e}"
        );
        assert_eq!(h.unwrap().restored, Some(true));
        // ... after the no-op SET FEATURES that makes libata revalidate:
        // read look-ahead on, as IDENTIFY said.
        let last = *d.log.borrow().last().unwrap();
        assert_eq!((last[14], last[4]), (ATA_SET_FEATURES, 0xAA));
        // 28-bit drive: F8h then F9h with LBA 27:24 in DEVICE.
        let mut d = FakeHpa::new(0x0A00_0000, 0x0900_0000);
        d.lba48 = false;
        let (h, r) = restore_before_erase(&d, 0x0900_0000, &mut |_| Ok(0x0A00_0000));
        assert!(r.is_ok(), "{r:?}");
        assert!(h.unwrap().how.contains("SET MAX ADDRESS (F9h)"));
        assert_eq!(d.current.get(), 0x0A00_0000);
        // AMAC: SET ACCESSIBLE MAX ADDRESS EXT, and the record says permanent.
        let mut d = FakeHpa::new(1000, 900);
        d.amac = true;
        d.hpa = false;
        let (h, r) = restore_before_erase(&d, 900, &mut |_| Ok(1000));
        assert!(r.is_ok(), "{r:?}");
        assert!(h.unwrap().how.contains("permanent"));
        assert_eq!(d.current.get(), 1000);
        // The native max unreadable on a drive with the HPA feature set:
        // whether anything is hidden is unknown, so the disk fails.
        let mut d = FakeHpa::new(1000, 1000);
        d.refuse_native = true;
        let (h, r) = restore_before_erase(&d, 1000, &mut |_| Ok(1000));
        let e = format!("{:#}", r.unwrap_err());
        assert!(e.contains("cannot be read") && e.contains("unknown"), "{e}");
        assert_eq!(h.unwrap().hpa_sectors, None);
        // Without the HPA feature set a refused READ NATIVE MAX means no HPA.
        d.hpa = false;
        let (h, r) = restore_before_erase(&d, 1000, &mut |_| Ok(1000));
        assert!(r.is_ok(), "{r:?}");
        let h = h.unwrap();
        assert_eq!(h.hpa_sectors, Some(0));
        assert!(h.how.contains("no HPA feature set"), "{}", h.how);
    }

    fn ctrl_buf(total: u128, unalloc: u128) -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        b[280..296].copy_from_slice(&total.to_le_bytes());
        b[296..312].copy_from_slice(&unalloc.to_le_bytes());
        b
    }

    fn ns_buf(nsze: u64, lbads: u8) -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        b[0..8].copy_from_slice(&nsze.to_le_bytes());
        b[8..16].copy_from_slice(&nsze.to_le_bytes());
        b[16..24].copy_from_slice(&(nsze / 2).to_le_bytes());
        // FLBAS index 1; LBA format 1 = 4 KiB, format 0 = 512 B.
        b[26] = 1;
        b[128 + 2] = 9;
        b[132 + 2] = lbads;
        b
    }

    fn list_buf(ids: &[u32]) -> Vec<u8> {
        let mut b = vec![0u8; 4096];
        for (i, id) in ids.iter().enumerate() {
            b[i * 4..i * 4 + 4].copy_from_slice(&id.to_le_bytes());
        }
        b
    }

    #[test]
    fn nvme_capacity_parsing() {
        assert_eq!(ns_list_cmd().cdw10, 0x02);
        // One namespace covering the whole 1 TB.
        let c = nvme_capacity(
            Some(&ctrl_buf(1_000_204_886_016, 0)),
            Some(1),
            Some(&ns_buf(244_190_646, 12)),
            Some(&list_buf(&[1])),
        );
        assert_eq!(c.total_bytes, Some(1_000_204_886_016));
        assert_eq!(c.unallocated_bytes, Some(0));
        assert_eq!(c.namespace_bytes, Some(244_190_646 * 4096));
        assert_eq!((c.block_bytes, c.nuse), (Some(4096), Some(122_095_323)));
        assert!(c.uncovered.is_empty() && c.other_namespaces.is_empty());
        // Half the capacity unallocated and a second namespace.
        let c = nvme_capacity(
            Some(&ctrl_buf(2_000_000_000_000, 500_000_000_000)),
            Some(1),
            Some(&ns_buf(1000, 9)),
            Some(&list_buf(&[1, 3])),
        );
        assert_eq!(c.other_namespaces, [3]);
        assert_eq!(c.uncovered.len(), 2, "{:?}", c.uncovered);
        assert!(c.uncovered[0].starts_with("500000000000 bytes"));
        assert!(plan_note(Some(&HiddenAreas::Nvme(c.clone()))).contains("nsid 3"));
        // TNVMCAP not reported: nothing claimed about allocation.
        let c = nvme_capacity(Some(&ctrl_buf(0, 7)), Some(1), None, None);
        assert_eq!((c.total_bytes, c.unallocated_bytes), (None, None));
        assert!(c.uncovered.is_empty());
        // Over 2^64 bytes saturates rather than wraps.
        assert_eq!(
            parse_ctrl_capacity(&ctrl_buf(1u128 << 70, 0)).0,
            Some(u64::MAX)
        );
        assert_eq!(parse_ns_list(&list_buf(&[1, 2, 7])), [1, 2, 7]);
        // What each method reached.
        let c = NvmeCapacity {
            namespace_id: Some(1),
            ..Default::default()
        };
        assert!(nvme_reach(Method::NvmeSanitizeBlock, false, &c).contains("whole NVM subsystem"));
        assert!(nvme_reach(Method::NvmeFormat, false, &c).contains("namespace 1 only"));
        assert!(nvme_reach(Method::NvmeFormat, true, &c).contains("every namespace"));
        assert!(nvme_reach(Method::Random, false, &c).contains("namespace 1's logical blocks only"));
    }

    #[test]
    fn plan_notes() {
        let h = AtaHidden {
            hpa_sectors: Some(10_000),
            dco: "read".into(),
            ..Default::default()
        };
        let n = plan_note(Some(&HiddenAreas::Ata(h.clone())));
        assert!(
            n.contains("HPA 10000 sectors") && n.contains("volatile"),
            "{n}"
        );
        let n = plan_note(Some(&HiddenAreas::Ata(AtaHidden {
            dco_hidden_sectors: Some(5),
            ..h
        })));
        assert!(
            n.contains("DCO hides 5 sectors: the erase will FAIL"),
            "{n}"
        );
        assert_eq!(plan_note(Some(&HiddenAreas::Ata(AtaHidden::default()))), "");
        let h = HiddenAreas::Ata(AtaHidden {
            hpa_sectors: Some(8),
            dco_hidden_sectors: Some(0),
            ..Default::default()
        });
        assert_eq!(h.findings(), ["HPA hides 8 sectors"]);
        assert_eq!(plan_note(None), "");
    }
}
