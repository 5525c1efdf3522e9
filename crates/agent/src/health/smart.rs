//! Disk health logs read natively: the NVMe SMART / Health Information log
//! (log page 02h) and Device Self-test log (06h) through the admin
//! passthrough, and ATA SMART (READ DATA, READ THRESHOLDS, the SMART
//! self-test log) through SG_IO ATA PASS-THROUGH(16). Command encoding and
//! parsing here; the ioctls are `sys::nvme` and `sys::sg`. `smartctl` is
//! never needed.
//!
//! On a machine the device node is opened read-only. Under a fixture root
//! (`Root::is_system` false) the same bytes come from captured files beside
//! the node, `<root>/dev/<name>.<log>` (`nvme-log-02`, `nvme-log-06`,
//! `nvme-id-ctrl`, `ata-smart-data`, `ata-smart-thresholds`,
//! `ata-log-06`): what `nvme get-log --raw-binary` or an SG_IO capture
//! writes. A missing capture reads as a device that rejected the command.

use crate::root::Root;
use crate::sys::nvme::{admin, AdminCmd};
use crate::sys::sg::{sg_io, Data};
use crate::wipe::ata::{ata16, pass_through_result, Protocol};
use serde::Serialize;
use std::fs::File;
use std::path::PathBuf;

/// Get Log Page, Identify, Device Self-test (NVMe Base 2.0 Figure 28).
pub const OPC_GET_LOG_PAGE: u8 = 0x02;
pub const OPC_IDENTIFY: u8 = 0x06;
pub const OPC_SELF_TEST: u8 = 0x14;
pub const LID_SMART: u8 = 0x02;
pub const LID_SELF_TEST: u8 = 0x06;
pub const SMART_LOG_LEN: usize = 512;
pub const SELF_TEST_LOG_LEN: usize = 564;

/// The ATA SMART command and its subcommands (ACS-3 7.48): the FEATURE
/// register selects, LBA 23:8 must hold the C24Fh signature.
pub const ATA_SMART: u8 = 0xB0;
pub const SMART_READ_DATA: u8 = 0xD0;
pub const SMART_READ_THRESHOLDS: u8 = 0xD1;
pub const SMART_EXECUTE_OFFLINE: u8 = 0xD4;
pub const SMART_READ_LOG: u8 = 0xD5;
const SMART_SIGNATURE: u64 = 0xC2_4F00;

/// Where a disk's logs come from.
pub enum Logs {
    Device { file: File, path: String },
    Capture { prefix: PathBuf, path: String },
}

impl Logs {
    /// The device `/dev/NAME` under `root`: opened read-only on a machine,
    /// its captured logs under a fixture root.
    pub fn open(root: &Root, name: &str) -> Result<Logs, String> {
        let path = format!("/dev/{name}");
        if root.is_system() {
            File::open(&path)
                .map(|file| Logs::Device {
                    file,
                    path: path.clone(),
                })
                .map_err(|e| format!("opening {path}: {e}"))
        } else {
            Ok(Logs::Capture {
                prefix: root.at(&path),
                path,
            })
        }
    }

    /// The node's path as it is on the machine.
    pub fn path(&self) -> &str {
        match self {
            Logs::Device { path, .. } | Logs::Capture { path, .. } => path,
        }
    }

    fn capture(&self, what: &str, len: usize) -> Result<Vec<u8>, String> {
        let Logs::Capture { prefix, .. } = self else {
            unreachable!("only for captures")
        };
        let mut p = prefix.clone().into_os_string();
        p.push(format!(".{what}"));
        match std::fs::read(&p) {
            Ok(b) if b.len() >= len => Ok(b),
            Ok(b) => Err(format!("{} bytes back, want {len}", b.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err("the device rejected the command (no capture)".into())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// An NVMe admin command that reads `len` bytes.
    fn nvme_read(&self, cmd: &AdminCmd, what: &str, len: usize) -> Result<Vec<u8>, String> {
        match self {
            Logs::Device { file, .. } => {
                let mut buf = vec![0u8; len];
                admin(file, cmd, Some(&mut buf)).map_err(|e| e.to_string())?;
                Ok(buf)
            }
            Logs::Capture { .. } => self.capture(what, len),
        }
    }

    /// NVMe Get Log Page `lid` for the whole controller (NSID FFFFFFFFh).
    pub fn nvme_log(&self, lid: u8, len: usize) -> Result<Vec<u8>, String> {
        self.nvme_read(&log_cmd(lid, len), &format!("nvme-log-{lid:02x}"), len)
            .map_err(|e| format!("Get Log Page {lid:02X}h: {e}"))
    }

    /// NVMe Identify Controller (4096 bytes).
    pub fn nvme_identify(&self) -> Result<Vec<u8>, String> {
        let cmd = AdminCmd {
            opcode: OPC_IDENTIFY,
            cdw10: 0x01,
            timeout_ms: 10_000,
            ..Default::default()
        };
        self.nvme_read(&cmd, "nvme-id-ctrl", 4096)
            .map_err(|e| format!("Identify Controller: {e}"))
    }

    /// Start (or abort, `code` 0xF) an NVMe Device Self-test on every
    /// namespace. Never on a capture.
    pub fn nvme_self_test(&self, code: u8) -> Result<(), String> {
        let Logs::Device { file, .. } = self else {
            return Err("a fixture tree cannot run a self-test".into());
        };
        let cmd = AdminCmd {
            opcode: OPC_SELF_TEST,
            nsid: 0xFFFF_FFFF,
            cdw10: code as u32 & 0xF,
            timeout_ms: 10_000,
            ..Default::default()
        };
        admin(file, &cmd, None)
            .map(|_| ())
            .map_err(|e| format!("Device Self-test: {e}"))
    }

    /// One 512-byte ATA SMART read: READ DATA, READ THRESHOLDS, or READ
    /// LOG of `log` (one sector).
    pub fn ata_smart(&self, feature: u8, log: u8) -> Result<Vec<u8>, String> {
        let (what, name) = match feature {
            SMART_READ_DATA => ("SMART READ DATA", "ata-smart-data".to_string()),
            SMART_READ_THRESHOLDS => ("SMART READ THRESHOLDS", "ata-smart-thresholds".into()),
            _ => ("SMART READ LOG", format!("ata-log-{log:02x}")),
        };
        let r = match self {
            Logs::Device { file, .. } => {
                let cdb = ata16(
                    Protocol::PioIn,
                    false,
                    false,
                    feature as u16,
                    1,
                    SMART_SIGNATURE | log as u64,
                    ATA_SMART,
                );
                let mut buf = vec![0u8; 512];
                sg_io(file, &cdb, Data::In(&mut buf), 15_000)
                    .map_err(|e| format!("SG_IO: {e}"))
                    .and_then(|r| pass_through_result(&r).map_err(|e| e.to_string()))
                    .map(|_| buf)
            }
            Logs::Capture { .. } => self.capture(&name, 512),
        };
        r.map_err(|e| format!("{what}: {e}"))
    }

    /// SMART EXECUTE OFF-LINE IMMEDIATE with subroutine `sub` (1 short,
    /// 2 extended self-test in off-line mode, 0x7F abort). Never on a
    /// capture.
    pub fn ata_self_test(&self, sub: u8) -> Result<(), String> {
        let Logs::Device { file, .. } = self else {
            return Err("a fixture tree cannot run a self-test".into());
        };
        let cdb = ata16(
            Protocol::NonData,
            false,
            false,
            SMART_EXECUTE_OFFLINE as u16,
            0,
            SMART_SIGNATURE | sub as u64,
            ATA_SMART,
        );
        sg_io(file, &cdb, Data::None, 15_000)
            .map_err(|e| format!("SG_IO: {e}"))
            .and_then(|r| pass_through_result(&r).map_err(|e| e.to_string()))
            .map(|_| ())
            .map_err(|e| format!("SMART EXECUTE OFF-LINE IMMEDIATE: {e}"))
    }
}

/// Get Log Page: CDW10 = LID (7:0) | NUMDL (31:16), NUMD the dword count
/// minus one; NSID FFFFFFFFh asks for the controller as a whole.
pub fn log_cmd(lid: u8, len: usize) -> AdminCmd {
    AdminCmd {
        opcode: OPC_GET_LOG_PAGE,
        nsid: 0xFFFF_FFFF,
        cdw10: lid as u32 | ((len / 4 - 1) as u32) << 16,
        timeout_ms: 10_000,
        ..Default::default()
    }
}

fn le_u64(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

/// A 128-bit counter, saturated to 64 bits (no drive gets near).
fn le_u128_sat(b: &[u8], o: usize) -> u64 {
    if b[o + 8..o + 16].iter().any(|&x| x != 0) {
        u64::MAX
    } else {
        le_u64(b, o)
    }
}

/// The SMART / Health Information log (NVMe Base 2.0 Figure 207).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NvmeHealth {
    /// Byte 0: bit 0 spare below threshold, 1 temperature, 2 reliability
    /// degraded, 3 read-only, 4 volatile backup failed, 5 PMR read-only.
    pub critical_warning: u8,
    /// Bytes 1-2, kelvin converted to °C.
    pub temperature_c: i32,
    pub available_spare: u8,
    pub available_spare_threshold: u8,
    pub percentage_used: u8,
    pub data_units_read: u64,
    pub data_units_written: u64,
    pub power_on_hours: u64,
    pub unsafe_shutdowns: u64,
    /// Unrecovered data integrity errors.
    pub media_errors: u64,
    pub error_log_entries: u64,
}

pub fn parse_nvme_health(b: &[u8]) -> NvmeHealth {
    NvmeHealth {
        critical_warning: b[0],
        temperature_c: u16::from_le_bytes([b[1], b[2]]) as i32 - 273,
        available_spare: b[3],
        available_spare_threshold: b[4],
        percentage_used: b[5],
        data_units_read: le_u128_sat(b, 32),
        data_units_written: le_u128_sat(b, 48),
        power_on_hours: le_u128_sat(b, 128),
        unsafe_shutdowns: le_u128_sat(b, 144),
        media_errors: le_u128_sat(b, 160),
        error_log_entries: le_u128_sat(b, 176),
    }
}

/// The critical warning bits set in `w`, in words.
pub fn critical_warning_words(w: u8) -> Vec<&'static str> {
    const BITS: [&str; 6] = [
        "available spare below threshold",
        "temperature outside its thresholds",
        "reliability degraded by media or internal errors",
        "media placed in read-only mode",
        "volatile memory backup failed",
        "persistent memory region read-only",
    ];
    BITS.iter()
        .enumerate()
        .filter(|(i, _)| w & (1 << i) != 0)
        .map(|(_, s)| *s)
        .chain((w & 0xC0 != 0).then_some("reserved bits set"))
        .collect()
}

/// WCTEMP and CCTEMP of Identify Controller (bytes 266-267, 268-269, in
/// kelvin), in °C; `None` where the controller reports 0.
pub fn nvme_temp_thresholds(id_ctrl: &[u8]) -> (Option<i32>, Option<i32>) {
    let k = |o: usize| {
        id_ctrl
            .get(o..o + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .filter(|&v| v != 0)
            .map(|v| v as i32 - 273)
    };
    (k(266), k(268))
}

/// OACS bit 4 of Identify Controller: Device Self-test supported.
pub fn nvme_self_test_supported(id_ctrl: &[u8]) -> bool {
    id_ctrl.get(256).is_some_and(|b| b & 0x10 != 0)
}

/// One self-test as a log records it, NVMe or ATA alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SelfTestEntry {
    /// `short`, `extended`, `conveyance`, `vendor` or the raw code.
    pub kind: String,
    /// `passed`, `aborted`, `failed` or `in progress`.
    pub outcome: &'static str,
    /// The device's own words for the result.
    pub result: String,
    pub power_on_hours: Option<u64>,
    pub failing_lba: Option<u64>,
}

/// The Device Self-test log (NVMe Base 2.0 Figure 211/212): the operation
/// running now (byte 0 bits 3:0) and its percent done (byte 1), then 20
/// result descriptors of 28 bytes, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NvmeSelfTests {
    /// Running now, with percent done.
    pub running: Option<(String, u8)>,
    pub newest: Option<SelfTestEntry>,
}

fn nvme_test_kind(code: u8) -> String {
    match code {
        1 => "short".into(),
        2 => "extended".into(),
        0xE => "vendor".into(),
        c => format!("code {c:#x}"),
    }
}

pub fn parse_nvme_self_tests(b: &[u8]) -> NvmeSelfTests {
    let running = match b[0] & 0xF {
        0 => None,
        c => Some((nvme_test_kind(c), b[1] & 0x7F)),
    };
    let d = &b[4..32];
    let result = d[0] & 0xF;
    let newest = (result != 0xF).then(|| {
        let (outcome, words) = match result {
            0 => ("passed", "completed without error"),
            1 => ("aborted", "aborted by a Device Self-test command"),
            2 => ("aborted", "aborted by a controller reset"),
            3 => ("aborted", "aborted by a namespace removal"),
            4 => ("aborted", "aborted by a Format NVM command"),
            5 => ("failed", "fatal or unknown test error"),
            6 => ("failed", "completed with a failed segment (unknown which)"),
            7 => ("failed", "completed with one or more failed segments"),
            8 => ("aborted", "aborted for an unknown reason"),
            9 => ("aborted", "aborted by a sanitize operation"),
            _ => ("aborted", "reserved result code"),
        };
        let valid = d[2];
        SelfTestEntry {
            kind: nvme_test_kind(d[0] >> 4),
            outcome,
            result: if result == 7 {
                format!("{words} (segment {})", d[1])
            } else {
                words.into()
            },
            power_on_hours: Some(le_u64(d, 4)),
            failing_lba: (valid & 0x2 != 0 && matches!(result, 5..=7)).then(|| le_u64(d, 16)),
        }
    });
    NvmeSelfTests { running, newest }
}

/// One ATA SMART attribute with its threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AtaAttr {
    pub id: u8,
    pub name: &'static str,
    /// Flags bit 0: pre-failure (at threshold means failure soon).
    pub prefailure: bool,
    pub value: u8,
    pub worst: u8,
    /// 0 where the thresholds sector has none.
    pub threshold: u8,
    /// The 48-bit raw value.
    pub raw: u64,
}

/// Names of the attributes judged or shown (the common vendor meanings).
pub fn attr_name(id: u8) -> &'static str {
    match id {
        1 => "Raw_Read_Error_Rate",
        5 => "Reallocated_Sector_Ct",
        9 => "Power_On_Hours",
        10 => "Spin_Retry_Count",
        12 => "Power_Cycle_Count",
        184 => "End-to-End_Error",
        187 => "Reported_Uncorrect",
        188 => "Command_Timeout",
        190 => "Airflow_Temperature_Cel",
        194 => "Temperature_Celsius",
        196 => "Reallocated_Event_Count",
        197 => "Current_Pending_Sector",
        198 => "Offline_Uncorrectable",
        199 => "UDMA_CRC_Error_Count",
        _ => "",
    }
}

/// Attributes from the SMART READ DATA and READ THRESHOLDS sectors: 30
/// 12-byte entries from byte 2 (id, flags 2 bytes, value, worst, raw 6
/// bytes); the thresholds sector has (id, threshold) at the same places.
pub fn parse_ata_attrs(data: &[u8], thresholds: Option<&[u8]>) -> Vec<AtaAttr> {
    let mut v = Vec::new();
    for i in 0..30 {
        let e = &data[2 + i * 12..2 + (i + 1) * 12];
        if e[0] == 0 {
            continue;
        }
        let threshold = thresholds
            .and_then(|t| {
                (0..30)
                    .map(|j| &t[2 + j * 12..2 + j * 12 + 2])
                    .find(|x| x[0] == e[0])
            })
            .map(|x| x[1])
            .unwrap_or(0);
        let mut raw = [0u8; 8];
        raw[..6].copy_from_slice(&e[5..11]);
        v.push(AtaAttr {
            id: e[0],
            name: attr_name(e[0]),
            prefailure: e[1] & 0x1 != 0,
            value: e[3],
            worst: e[4],
            threshold,
            raw: u64::from_le_bytes(raw),
        });
    }
    v
}

/// SMART READ DATA byte 363: the self-test execution status (bits 7:4, as
/// the log's status codes) and, while one runs (15), the tenths left.
pub fn ata_self_test_status(data: &[u8]) -> (u8, u8) {
    (data[363] >> 4, data[363] & 0xF)
}

/// An ATA self-test status code (ACS-3 Table 131) in words.
pub fn ata_status_words(code: u8) -> (&'static str, &'static str) {
    match code {
        0 => ("passed", "completed without error"),
        1 => ("aborted", "aborted by the host"),
        2 => ("aborted", "interrupted by a reset"),
        3 => ("failed", "fatal error or unknown test error"),
        4 => ("failed", "failed, element unknown"),
        5 => ("failed", "failed in its electrical element"),
        6 => ("failed", "failed in its servo or seek element"),
        7 => ("failed", "failed in its read element"),
        8 => ("failed", "failed: suspected handling damage"),
        15 => ("in progress", "in progress"),
        _ => ("aborted", "reserved status code"),
    }
}

fn ata_test_kind(sub: u8) -> String {
    match sub {
        0 => "off-line".into(),
        1 | 0x81 => "short".into(),
        2 | 0x82 => "extended".into(),
        3 | 0x83 => "conveyance".into(),
        4 | 0x84 => "selective".into(),
        s => format!("code {s:#x}"),
    }
}

/// The SMART self-test log (log 06h, ACS-3 A.19): 21 descriptors of 24
/// bytes from byte 2 in a ring, byte 508 the index (1-based) of the newest,
/// 0 when none was ever run.
pub fn parse_ata_self_test_log(b: &[u8]) -> Option<SelfTestEntry> {
    let idx = b[508] as usize;
    if idx == 0 || idx > 21 {
        return None;
    }
    let d = &b[2 + (idx - 1) * 24..2 + idx * 24];
    let (outcome, words) = ata_status_words(d[1] >> 4);
    let lba = u32::from_le_bytes([d[5], d[6], d[7], d[8]]) as u64;
    Some(SelfTestEntry {
        kind: ata_test_kind(d[0]),
        outcome,
        result: words.into(),
        power_on_hours: Some(u16::from_le_bytes([d[2], d[3]]) as u64),
        failing_lba: (outcome == "failed" && lba != 0xFFFF_FFFF && lba != 0).then_some(lba),
    })
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A SMART / Health log with these values (what make.py writes too).
    pub fn nvme_log(warn: u8, temp_k: u16, spare: u8, used: u8, media: u64) -> Vec<u8> {
        let mut b = vec![0u8; SMART_LOG_LEN];
        b[0] = warn;
        b[1..3].copy_from_slice(&temp_k.to_le_bytes());
        b[3] = spare;
        b[4] = 10;
        b[5] = used;
        b[128..136].copy_from_slice(&1234u64.to_le_bytes());
        b[160..168].copy_from_slice(&media.to_le_bytes());
        b
    }

    #[test]
    fn nvme_health_fields_and_warning_words() {
        let h = parse_nvme_health(&nvme_log(0x05, 318, 5, 7, 3));
        assert_eq!(h.critical_warning, 5);
        assert_eq!(h.temperature_c, 45);
        assert_eq!(h.available_spare, 5);
        assert_eq!(h.available_spare_threshold, 10);
        assert_eq!(h.percentage_used, 7);
        assert_eq!(h.power_on_hours, 1234);
        assert_eq!(h.media_errors, 3);
        assert_eq!(
            critical_warning_words(0x05),
            [
                "available spare below threshold",
                "reliability degraded by media or internal errors"
            ]
        );
        let mut b = nvme_log(0, 300, 100, 0, 1);
        b[170] = 1; // above 64 bits
        assert_eq!(parse_nvme_health(&b).media_errors, u64::MAX);
    }

    #[test]
    fn log_page_dwords() {
        let c = log_cmd(LID_SMART, 512);
        assert_eq!(c.cdw10, 0x02 | 127 << 16);
        assert_eq!(c.nsid, 0xFFFF_FFFF);
        assert_eq!(log_cmd(LID_SELF_TEST, 564).cdw10, 0x06 | 140 << 16);
    }

    #[test]
    fn nvme_self_test_log() {
        let mut b = vec![0u8; SELF_TEST_LOG_LEN];
        b[0] = 2;
        b[1] = 40;
        b[4] = 0x17; // short, failed segments
        b[5] = 3;
        b[6] = 0x2; // FLBA valid
        b[20..28].copy_from_slice(&4096u64.to_le_bytes());
        let t = parse_nvme_self_tests(&b);
        assert_eq!(t.running, Some(("extended".into(), 40)));
        let e = t.newest.unwrap();
        assert_eq!((e.kind.as_str(), e.outcome), ("short", "failed"));
        assert_eq!(e.failing_lba, Some(4096));
        assert!(e.result.contains("segment 3"));
        let mut b = vec![0u8; SELF_TEST_LOG_LEN];
        b[4] = 0x0F; // entry not used
        assert_eq!(parse_nvme_self_tests(&b).newest, None);
    }

    /// A SMART READ DATA sector with attributes (id, flags, value, worst,
    /// raw) and the matching thresholds sector.
    pub fn ata_data(attrs: &[(u8, u8, u8, u8, u64)], thr: &[(u8, u8)]) -> (Vec<u8>, Vec<u8>) {
        let mut d = vec![0u8; 512];
        let mut t = vec![0u8; 512];
        for (i, &(id, flags, value, worst, raw)) in attrs.iter().enumerate() {
            let e = &mut d[2 + i * 12..2 + (i + 1) * 12];
            e[0] = id;
            e[1] = flags;
            e[3] = value;
            e[4] = worst;
            e[5..11].copy_from_slice(&raw.to_le_bytes()[..6]);
        }
        for (i, &(id, th)) in thr.iter().enumerate() {
            t[2 + i * 12] = id;
            t[2 + i * 12 + 1] = th;
        }
        (d, t)
    }

    #[test]
    fn ata_attributes_with_thresholds() {
        let (d, t) = ata_data(
            &[(5, 0x33, 90, 90, 12), (194, 0x22, 64, 50, 36)],
            &[(194, 0), (5, 36)],
        );
        let a = parse_ata_attrs(&d, Some(&t));
        assert_eq!(a.len(), 2);
        assert_eq!(
            a[0],
            AtaAttr {
                id: 5,
                name: "Reallocated_Sector_Ct",
                prefailure: true,
                value: 90,
                worst: 90,
                threshold: 36,
                raw: 12
            }
        );
        assert!(!a[1].prefailure);
        assert_eq!(a[1].raw, 36);
    }

    #[test]
    fn ata_self_test_log_newest_entry() {
        let mut b = vec![0u8; 512];
        assert_eq!(parse_ata_self_test_log(&b), None);
        // Two entries; the index points at the second.
        b[2] = 1;
        b[3] = 0x00;
        b[26] = 2;
        b[27] = 0x73; // read failure, 30% left
        b[28..30].copy_from_slice(&700u16.to_le_bytes());
        b[31..35].copy_from_slice(&123456u32.to_le_bytes());
        b[508] = 2;
        let e = parse_ata_self_test_log(&b).unwrap();
        assert_eq!(e.kind, "extended");
        assert_eq!(e.outcome, "failed");
        assert_eq!(e.result, "failed in its read element");
        assert_eq!(e.power_on_hours, Some(700));
        assert_eq!(e.failing_lba, Some(123456));
        b[508] = 1;
        assert_eq!(parse_ata_self_test_log(&b).unwrap().outcome, "passed");
    }
}
