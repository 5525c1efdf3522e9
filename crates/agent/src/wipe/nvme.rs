//! NVMe erase commands (NVM Express Base Specification 2.0): Identify
//! Controller capabilities, Sanitize polled through the Sanitize Status
//! log page, and Format NVM with Secure Erase Settings. Encoding here, the
//! ioctl in `sys::nvme`.

use super::method::Method;
use super::overwrite::Target;
use super::progress::Tracker;
use crate::sys::nvme::{admin, namespace_id, AdminCmd, AdminError};
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};

pub const OPC_GET_LOG_PAGE: u8 = 0x02;
pub const OPC_IDENTIFY: u8 = 0x06;
pub const OPC_FORMAT_NVM: u8 = 0x80;
pub const OPC_SANITIZE: u8 = 0x84;
/// Log identifier of the Sanitize Status log.
pub const LID_SANITIZE_STATUS: u8 = 0x81;
/// Give up polling a sanitize after this long.
const SANITIZE_LIMIT: Duration = Duration::from_secs(24 * 3600);
/// Format NVM blocks in the kernel until done; allow hours for big drives.
const FORMAT_TIMEOUT_MS: u32 = 4 * 3600 * 1000;

/// What the controller says it can do (Identify Controller).
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct NvmeCaps {
    /// SANICAP bit 0 (CES): crypto erase sanitize.
    pub sanitize_crypto: bool,
    /// SANICAP bit 1 (BES): block erase sanitize.
    pub sanitize_block: bool,
    /// SANICAP bit 2 (OWS): overwrite sanitize.
    pub sanitize_overwrite: bool,
    /// OACS bit 1: Format NVM supported.
    pub format: bool,
    /// FNA bit 2: cryptographic erase supported as part of a format.
    pub format_crypto: bool,
    /// FNA bit 1: a secure erase applies to all namespaces.
    pub format_erases_all_namespaces: bool,
    /// FNA bit 0: a format (of any kind) of one namespace formats all of
    /// them.
    pub format_all_namespaces: bool,
    /// CMIC (Identify Controller byte 76): bit 0 the NVM subsystem may
    /// have two or more ports, bit 1 two or more controllers.
    pub cmic: u8,
    /// NMIC bit 0 (Identify Namespace byte 30): the namespace may be
    /// attached to two or more controllers at once. Read from the
    /// namespace opened; `None` when that read failed.
    pub nmic_shared: Option<bool>,
    pub model: String,
    pub serial: String,
    pub firmware: String,
}

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn ascii(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_string()
}

/// Identify Controller: CNS=01h in CDW10, 4096 bytes back.
pub fn identify_ctrl_cmd() -> AdminCmd {
    AdminCmd {
        opcode: OPC_IDENTIFY,
        cdw10: 0x01,
        timeout_ms: 10_000,
        ..Default::default()
    }
}

/// Identify Namespace: CNS=00h, NSID = the namespace.
pub fn identify_ns_cmd(nsid: u32) -> AdminCmd {
    AdminCmd {
        opcode: OPC_IDENTIFY,
        nsid,
        cdw10: 0x00,
        timeout_ms: 10_000,
        ..Default::default()
    }
}

impl NvmeCaps {
    /// Why this namespace may be another host's storage too: it may be
    /// attached to several controllers (NMIC bit 0) of a subsystem with
    /// several ports or controllers (CMIC bits 0-1), as a dual-ported
    /// drive shared by two servers, or a namespace of an NVMe array. The
    /// wipe refuses it by default (audit item 4), like a multipath LUN.
    pub fn shared_namespace(&self) -> Option<String> {
        if self.nmic_shared != Some(true) || self.cmic & 0x3 == 0 {
            return None;
        }
        let mut what = Vec::new();
        if self.cmic & 0x1 != 0 {
            what.push("several ports");
        }
        if self.cmic & 0x2 != 0 {
            what.push("several controllers");
        }
        Some(format!(
            "shared storage: NVMe namespace attachable to several controllers (NMIC bit 0) of a subsystem with {} (CMIC={:#04x}), so possibly another host's too",
            what.join(" and "),
            self.cmic
        ))
    }

    /// Whether our secure Format NVM of one namespace reaches the other
    /// namespaces: FNA bit 1 (its secure erase applies to all), or bit 0
    /// (the format itself applies to all; the others lose their data even
    /// where only this namespace is securely erased). NVMe Base 2.0
    /// Identify Controller byte 524 and the Format NVM scope table.
    pub fn format_reaches_all(&self) -> bool {
        self.format_erases_all_namespaces || self.format_all_namespaces
    }
}

/// Decode the fields we use from the 4096-byte Identify Controller data
/// (NVMe Base 2.0 Figure 275): SN 4..24, MN 24..64, FR 64..72, OACS
/// 256..258, SANICAP 328..332, FNA 524 (bit 0 format applies to all
/// namespaces, bit 1 secure erase applies to all namespaces, bit 2 crypto
/// erase supported).
pub fn parse_identify_ctrl(b: &[u8]) -> NvmeCaps {
    let oacs = le16(b, 256);
    let sanicap = le32(b, 328);
    let fna = b[524];
    NvmeCaps {
        sanitize_crypto: sanicap & 0x1 != 0,
        sanitize_block: sanicap & 0x2 != 0,
        sanitize_overwrite: sanicap & 0x4 != 0,
        format: oacs & 0x2 != 0,
        format_crypto: fna & 0x4 != 0,
        format_erases_all_namespaces: fna & 0x2 != 0,
        format_all_namespaces: fna & 0x1 != 0,
        cmic: b[76],
        nmic_shared: None,
        serial: ascii(&b[4..24]),
        model: ascii(&b[24..64]),
        firmware: ascii(&b[64..72]),
    }
}

/// SANACT values of Sanitize CDW10 bits 2:0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SanAct {
    ExitFailureMode = 1,
    BlockErase = 2,
    Overwrite = 3,
    CryptoErase = 4,
}

/// Sanitize: CDW10 = SANACT (2:0) | AUSE (3). AUSE=0 (restricted
/// completion): a failed sanitize can only be left by a successful one,
/// so a half-erased drive never comes back into service unnoticed.
pub fn sanitize_cmd(act: SanAct, ause: bool) -> AdminCmd {
    AdminCmd {
        opcode: OPC_SANITIZE,
        nsid: 0,
        cdw10: act as u32 | (ause as u32) << 3,
        timeout_ms: 60_000,
        ..Default::default()
    }
}

/// Get Log Page for the 512-byte Sanitize Status log: CDW10 = LID (7:0) |
/// NUMDL (31:16) where NUMD is the dword count minus one (127).
pub fn sanitize_log_cmd() -> AdminCmd {
    AdminCmd {
        opcode: OPC_GET_LOG_PAGE,
        nsid: 0xFFFF_FFFF,
        cdw10: LID_SANITIZE_STATUS as u32 | (512 / 4 - 1) << 16,
        timeout_ms: 10_000,
        ..Default::default()
    }
}

/// Sanitize Status log (log page 81h, NVMe Base 2.0 5.16.1.25): SPROG
/// (bytes 0-1, progress in 1/65536), SSTAT (bytes 2-3; bits 2:0 the status
/// of the most recent sanitize) and SCDW10 (bytes 4-7, the CDW10 of the
/// Sanitize command that started it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SanitizeStatus {
    pub progress: u16,
    /// 0 never, 1 completed, 2 in progress, 3 failed, 4 completed with
    /// No-Deallocate.
    pub status: u8,
    pub cdw10: u32,
}

pub fn parse_sanitize_log(b: &[u8]) -> SanitizeStatus {
    SanitizeStatus {
        progress: le16(b, 0),
        status: (le16(b, 2) & 0x7) as u8,
        cdw10: le32(b, 4),
    }
}

/// Format NVM: CDW10 = LBAF low (3:0) | MSET (4) | PI (7:5) | PIL (8) |
/// SES (11:9) | LBAF high (13:12). SES 1 = user data erase, 2 = crypto erase.
pub fn format_cmd(nsid: u32, lbaf: u8, mset: bool, pi: u8, pil: bool, ses: u8) -> AdminCmd {
    let cdw10 = (lbaf as u32 & 0xF)
        | (mset as u32) << 4
        | (pi as u32 & 0x7) << 5
        | (pil as u32) << 8
        | (ses as u32 & 0x7) << 9
        | ((lbaf as u32 >> 4) & 0x3) << 12;
    AdminCmd {
        opcode: OPC_FORMAT_NVM,
        nsid,
        cdw10,
        timeout_ms: FORMAT_TIMEOUT_MS,
        ..Default::default()
    }
}

/// The current format of a namespace from Identify Namespace: FLBAS
/// (byte 26: index 3:0 and 6:5, MSET bit 4) and DPS (byte 29: PI type 2:0,
/// PIP bit 3). A format must keep them, only adding SES.
pub fn current_format(ns: &[u8]) -> (u8, bool, u8, bool) {
    let flbas = ns[26];
    let dps = ns[29];
    let lbaf = (flbas & 0xF) | ((flbas >> 5) & 0x3) << 4;
    (lbaf, flbas & 0x10 != 0, dps & 0x7, dps & 0x8 != 0)
}

/// Read the controller's capabilities (read-only).
pub fn probe(path: &Path) -> Result<NvmeCaps> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut buf = vec![0u8; 4096];
    admin(&f, &identify_ctrl_cmd(), Some(&mut buf))
        .map_err(|e| anyhow!("Identify Controller: {e}"))?;
    let mut caps = parse_identify_ctrl(&buf);
    if let Ok(nsid) = namespace_id(&f) {
        let mut ns = vec![0u8; 4096];
        if admin(&f, &identify_ns_cmd(nsid), Some(&mut ns)).is_ok() {
            caps.nmic_shared = Some(nmic_shared(&ns));
        }
    }
    Ok(caps)
}

/// NMIC bit 0 of the 4096-byte Identify Namespace data (byte 30).
pub fn nmic_shared(ns: &[u8]) -> bool {
    ns.get(30).is_some_and(|b| b & 0x1 != 0)
}

/// The admin queue of a controller: the opened namespace, or a scripted
/// fake in tests (Sanitize cannot run on a loop device).
pub trait Admin {
    fn admin(&self, cmd: &AdminCmd, data: Option<&mut [u8]>) -> Result<u32, AdminError>;
}

impl Admin for std::fs::File {
    fn admin(&self, cmd: &AdminCmd, data: Option<&mut [u8]>) -> Result<u32, AdminError> {
        admin(self, cmd, data)
    }
}

/// Tries of one Sanitize Status read before the disk is given up: a
/// controller busy with a sanitize may fail a log read now and then.
pub const LOG_TRIES: u32 = 5;

fn sanitize_status(dev: &dyn Admin, pause: Duration) -> Result<SanitizeStatus> {
    let mut last = None;
    for i in 0..LOG_TRIES {
        if i > 0 {
            std::thread::sleep(pause);
        }
        let mut buf = vec![0u8; 512];
        match dev.admin(&sanitize_log_cmd(), Some(&mut buf)) {
            Ok(_) => return Ok(parse_sanitize_log(&buf)),
            Err(e) => last = Some(e),
        }
    }
    Err(anyhow!(
        "Get Log Page (Sanitize Status) failed {LOG_TRIES} times: {}",
        last.map(|e| e.to_string()).unwrap_or_default()
    ))
}

/// Poll the Sanitize Status log every `pause` until the sanitize ends:
/// `Ok(status)` with 1 or 4 (completed) or 3 (failed).
fn wait_sanitize(
    dev: &dyn Admin,
    pause: Duration,
    tracker: &Tracker,
    issued: bool,
) -> Result<SanitizeStatus> {
    let start = Instant::now();
    let mut seen_running = !issued;
    loop {
        std::thread::sleep(pause);
        let s = sanitize_status(dev, pause)?;
        match s.status {
            2 => {
                seen_running = true;
                tracker.fraction(s.progress as f64 / 65536.0);
            }
            1 | 3 | 4 => return Ok(s),
            st if !seen_running && start.elapsed() > Duration::from_secs(30) => {
                bail!("sanitize never started (SSTAT={st} after 30 s)")
            }
            st if !issued => bail!("the sanitize in progress vanished (SSTAT={st})"),
            _ => {}
        }
        if start.elapsed() > SANITIZE_LIMIT {
            bail!(
                "sanitize still running after {} h",
                SANITIZE_LIMIT.as_secs() / 3600
            );
        }
    }
}

/// Wait for a sanitize that is already running: the machine rebooted in
/// the middle of one, and the controller carries on after a reset. Called
/// before the verification markers are written (a sanitizing controller
/// aborts writes) and again before ours is issued, so a second Sanitize is
/// never sent on top of a running one. Its end is noted; a failed one
/// leaves the drive in sanitize failure mode, which ours then clears.
pub fn await_running_sanitize(
    dev: &dyn Admin,
    pause: Duration,
    tracker: &Tracker,
    notes: &mut Vec<String>,
) -> Result<()> {
    let before = sanitize_status(dev, pause)?;
    if before.status != 2 {
        return Ok(());
    }
    notes.push(format!(
        "a sanitize was already in progress (SANACT={}, {:.0} % done), started before this run; waiting for it before starting ours",
        before.cdw10 & 0x7,
        before.progress as f64 * 100.0 / 65536.0
    ));
    let end = wait_sanitize(dev, pause, tracker, false)?;
    notes.push(format!(
        "the earlier sanitize ended with SSTAT={}{}",
        end.status,
        if end.status == 3 {
            " (failed: the drive is in sanitize failure mode until ours succeeds)"
        } else {
            " (completed)"
        }
    ));
    Ok(())
}

/// Sanitize with `act`, polling every `pause`: the Sanitize Status log is
/// read first and a running sanitize waited for (`await_running_sanitize`),
/// then ours is issued and polled, each log read tried `LOG_TRIES` times.
pub fn sanitize(
    dev: &dyn Admin,
    act: SanAct,
    pause: Duration,
    tracker: &Tracker,
    notes: &mut Vec<String>,
) -> Result<()> {
    await_running_sanitize(dev, pause, tracker, notes)?;
    dev.admin(&sanitize_cmd(act, false), None)
        .map_err(|e| anyhow!("Sanitize: {e}"))?;
    notes.push(format!(
        "NVMe Sanitize SANACT={} issued; applies to the whole NVM subsystem",
        act as u32
    ));
    let end = wait_sanitize(dev, pause, tracker, true)?;
    if end.status == 3 {
        bail!("the sanitize operation failed (SSTAT=3); the drive stays in sanitize failure mode until a sanitize succeeds");
    }
    tracker.fraction(1.0);
    notes.push(format!(
        "sanitize status log: completed (SSTAT={})",
        end.status
    ));
    Ok(())
}

/// Run `m` on the controller behind `t` and wait for it.
pub fn erase(m: Method, t: &Target, tracker: &Tracker, notes: &mut Vec<String>) -> Result<()> {
    match m {
        Method::NvmeSanitizeCrypto | Method::NvmeSanitizeBlock => {
            let act = if m == Method::NvmeSanitizeCrypto {
                SanAct::CryptoErase
            } else {
                SanAct::BlockErase
            };
            sanitize(&t.file, act, Duration::from_secs(1), tracker, notes)
        }
        Method::NvmeFormatCrypto | Method::NvmeFormat => {
            let nsid = namespace_id(&t.file).context("NVME_IOCTL_ID")?;
            let mut ns = vec![0u8; 4096];
            admin(&t.file, &identify_ns_cmd(nsid), Some(&mut ns))
                .map_err(|e| anyhow!("Identify Namespace: {e}"))?;
            let (lbaf, mset, pi, pil) = current_format(&ns);
            let ses = if m == Method::NvmeFormatCrypto { 2 } else { 1 };
            tracker.fraction(0.0);
            admin(&t.file, &format_cmd(nsid, lbaf, mset, pi, pil, ses), None)
                .map_err(|e| anyhow!("Format NVM: {e}"))?;
            tracker.fraction(1.0);
            notes.push(format!(
                "NVMe Format NVM nsid {nsid} LBAF {lbaf} SES={ses} completed"
            ));
            Ok(())
        }
        _ => bail!("{} is not an NVMe method", m.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_encoding_matches_spec() {
        // Identify Controller: opcode 06h, CNS 01h.
        let c = identify_ctrl_cmd();
        assert_eq!((c.opcode, c.cdw10), (0x06, 0x01));
        // Sanitize crypto erase, restricted: 84h, CDW10 = 4; block erase = 2;
        // AUSE sets bit 3.
        assert_eq!(sanitize_cmd(SanAct::CryptoErase, false).cdw10, 0x4);
        assert_eq!(sanitize_cmd(SanAct::BlockErase, false).cdw10, 0x2);
        assert_eq!(sanitize_cmd(SanAct::BlockErase, true).cdw10, 0xA);
        assert_eq!(sanitize_cmd(SanAct::CryptoErase, false).opcode, 0x84);
        // Get Log Page 02h, LID 81h, NUMDL 127 (512 bytes).
        let l = sanitize_log_cmd();
        assert_eq!((l.opcode, l.cdw10), (0x02, 0x007F_0081));
        // Format NVM 80h: LBAF 1, SES=2 (crypto) → 0x401; SES=1 → 0x201;
        // MSET, PI type 1, PIL and LBAF 17 (high bits) land in their fields.
        assert_eq!(format_cmd(1, 1, false, 0, false, 2).cdw10, 0x401);
        assert_eq!(format_cmd(1, 0, false, 0, false, 1).cdw10, 0x200);
        assert_eq!(
            format_cmd(1, 17, true, 1, true, 1).cdw10,
            0x1 | 0x10 | 0x20 | 0x100 | 0x200 | 0x1000
        );
        assert_eq!(format_cmd(3, 0, false, 0, false, 1).nsid, 3);
    }

    #[test]
    fn identify_controller_fields() {
        let mut b = vec![0u8; 4096];
        b[4..12].copy_from_slice(b"S1234567");
        b[24..34].copy_from_slice(b"QEMU NVMe ");
        b[64..68].copy_from_slice(b"8.2 ");
        b[256] = 0x02 | 0x04; // OACS: Format NVM, Firmware
        b[328] = 0x03; // SANICAP: CES, BES
        b[524] = 0x04; // FNA: crypto erase supported
        let c = parse_identify_ctrl(&b);
        assert!(c.sanitize_crypto && c.sanitize_block && !c.sanitize_overwrite);
        assert!(c.format && c.format_crypto && !c.format_erases_all_namespaces);
        assert_eq!(
            (c.serial.as_str(), c.model.as_str(), c.firmware.as_str()),
            ("S1234567", "QEMU NVMe", "8.2")
        );
        let mut b2 = vec![0u8; 4096];
        b2[331] = 0x80; // only NODMMAS bits: no sanitize action
        let c2 = parse_identify_ctrl(&b2);
        assert!(!c2.sanitize_crypto && !c2.sanitize_block && !c2.format);
    }

    #[test]
    fn shared_namespaces_by_nmic_and_cmic() {
        let mut ns = vec![0u8; 4096];
        assert!(!nmic_shared(&ns));
        ns[30] = 0x01;
        assert!(nmic_shared(&ns));
        let mut b = vec![0u8; 4096];
        // (CMIC, NMIC as read, shared?)
        let table: &[(u8, Option<bool>, Option<&str>)] = &[
            (0x00, Some(false), None),
            // A shareable namespace in a one-port, one-controller
            // subsystem cannot reach another host.
            (0x00, Some(true), None),
            (0x01, Some(false), None),
            (0x01, Some(true), Some("several ports (CMIC=0x01)")),
            (0x02, Some(true), Some("several controllers (CMIC=0x02)")),
            (
                0x03,
                Some(true),
                Some("several ports and several controllers"),
            ),
            // Identify Namespace failed: nothing claimed either way.
            (0x03, None, None),
        ];
        for &(cmic, nmic, want) in table {
            b[76] = cmic;
            let mut c = parse_identify_ctrl(&b);
            assert_eq!(c.cmic, cmic);
            c.nmic_shared = nmic;
            match (c.shared_namespace(), want) {
                (None, None) => {}
                (Some(got), Some(w)) => assert!(got.contains(w), "{got}"),
                (got, w) => panic!("CMIC {cmic:#x} NMIC {nmic:?}: {got:?}, want {w:?}"),
            }
        }
    }

    #[test]
    fn sanitize_log_and_namespace_format() {
        let mut b = vec![0u8; 512];
        b[0..2].copy_from_slice(&0x8000u16.to_le_bytes());
        b[2..4].copy_from_slice(&0x0102u16.to_le_bytes()); // in progress (+GED bit 8)
        b[4..8].copy_from_slice(&0x4u32.to_le_bytes()); // SCDW10: crypto erase
        assert_eq!(
            parse_sanitize_log(&b),
            SanitizeStatus {
                progress: 0x8000,
                status: 2,
                cdw10: 4,
            }
        );
        let mut ns = vec![0u8; 4096];
        ns[26] = 0x21 | 0x10; // LBAF index 1 + high bit (bit 5 → +16), MSET
        ns[29] = 0x09; // PI type 1, PIP
        assert_eq!(current_format(&ns), (17, true, 1, true));
    }

    /// A controller's admin queue, scripted: each Get Log Page (Sanitize
    /// Status) takes the next answer, `None` being a failed read.
    struct FakeCtrl {
        logs: std::cell::RefCell<std::collections::VecDeque<Option<(u8, u16, u32)>>>,
        ops: std::cell::RefCell<Vec<u8>>,
    }

    impl FakeCtrl {
        fn new(logs: &[Option<(u8, u16, u32)>]) -> FakeCtrl {
            FakeCtrl {
                logs: std::cell::RefCell::new(logs.iter().copied().collect()),
                ops: Default::default(),
            }
        }
    }

    impl Admin for FakeCtrl {
        fn admin(&self, cmd: &AdminCmd, data: Option<&mut [u8]>) -> Result<u32, AdminError> {
            self.ops.borrow_mut().push(cmd.opcode);
            if cmd.opcode != OPC_GET_LOG_PAGE {
                return Ok(0);
            }
            assert_eq!(cmd.cdw10 & 0xFF, LID_SANITIZE_STATUS as u32);
            let next = self
                .logs
                .borrow_mut()
                .pop_front()
                .expect("log read not scripted");
            let Some((sstat, sprog, scdw10)) = next else {
                // Status 0x0006: Internal Error.
                return Err(AdminError::Status(0x0006));
            };
            // The 512-byte page: SPROG 0-1, SSTAT 2-3, SCDW10 4-7.
            let b = data.expect("buffer");
            b.fill(0);
            b[0..2].copy_from_slice(&sprog.to_le_bytes());
            b[2..4].copy_from_slice(&(sstat as u16).to_le_bytes());
            b[4..8].copy_from_slice(&scdw10.to_le_bytes());
            Ok(0)
        }
    }

    #[test]
    fn sanitize_reads_the_log_first_waits_and_retries() {
        const LOG: u8 = OPC_GET_LOG_PAGE;
        const SAN: u8 = OPC_SANITIZE;
        let tr = Tracker::new("test".into(), None);
        let z = Duration::ZERO;
        // (log answers, commands sent, Ok or the error's words)
        type Log = Option<(u8, u16, u32)>;
        type Case<'a> = (&'a [Log], &'a [u8], Result<&'a str, &'a str>);
        let table: &[Case] = &[
            // Rebooted mid-sanitize: the failed reads are retried, the
            // running block erase is waited for, and only then is ours
            // sent (never on top of the running one).
            (
                &[
                    None,
                    None,
                    Some((2, 0x8000, 2)),
                    Some((2, 0xE000, 2)),
                    Some((1, 0, 2)),
                    Some((2, 0x100, 4)),
                    Some((1, 0, 4)),
                ],
                &[LOG, LOG, LOG, LOG, LOG, SAN, LOG, LOG],
                Ok("already in progress (SANACT=2, 50 % done)"),
            ),
            // Nothing running: ours is issued; a failed poll is retried.
            (
                &[Some((0, 0, 0)), None, Some((2, 0x100, 4)), Some((1, 0, 4))],
                &[LOG, SAN, LOG, LOG, LOG],
                Ok("SANACT=4 issued"),
            ),
            // The one in progress failed: the drive is in failure mode,
            // ours is issued to leave it.
            (
                &[
                    Some((2, 0, 2)),
                    Some((3, 0, 2)),
                    Some((2, 0, 4)),
                    Some((4, 0, 4)),
                ],
                &[LOG, LOG, SAN, LOG, LOG],
                Ok("in sanitize failure mode until ours succeeds"),
            ),
            // Ours fails.
            (
                &[Some((1, 0, 4)), Some((2, 0, 4)), Some((3, 0, 4))],
                &[LOG, SAN, LOG, LOG],
                Err("sanitize failure mode"),
            ),
            // The log cannot be read at all: given up after LOG_TRIES,
            // before anything is sent.
            (
                &[None, None, None, None, None],
                &[LOG, LOG, LOG, LOG, LOG],
                Err("failed 5 times: NVMe status 0x006"),
            ),
        ];
        for (logs, want_ops, want) in table {
            let c = FakeCtrl::new(logs);
            let mut notes = vec![];
            let r = sanitize(&c, SanAct::CryptoErase, z, &tr, &mut notes);
            assert_eq!(*c.ops.borrow(), *want_ops, "{logs:?}");
            assert!(c.ops.borrow().iter().filter(|&&o| o == SAN).count() <= 1);
            match (r, want) {
                (Ok(()), Ok(w)) => assert!(notes.iter().any(|n| n.contains(w)), "{notes:?}"),
                (Err(e), Err(w)) => assert!(format!("{e:#}").contains(w), "{e:#}"),
                (r, w) => panic!("{logs:?}: got {r:?}, want {w:?}"),
            }
            assert!(c.logs.borrow().is_empty(), "unread answers for {logs:?}");
        }
    }

    #[test]
    fn fna_bits() {
        let mut b = vec![0u8; 4096];
        // (FNA, format applies to all, secure erase applies to all, crypto)
        for (fna, fns, sens, ces) in [
            (0x00u8, false, false, false),
            (0x01, true, false, false),
            (0x02, false, true, false),
            (0x04, false, false, true),
            (0x07, true, true, true),
        ] {
            b[524] = fna;
            let c = parse_identify_ctrl(&b);
            assert_eq!(
                (
                    c.format_all_namespaces,
                    c.format_erases_all_namespaces,
                    c.format_crypto
                ),
                (fns, sens, ces),
                "{fna:#x}"
            );
            assert_eq!(c.format_reaches_all(), fns || sens);
        }
    }
}
