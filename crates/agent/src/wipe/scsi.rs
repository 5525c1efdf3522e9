//! Native SCSI (SAS) disks: which SANITIZE service actions the device
//! server has, from REPORT SUPPORTED OPERATION CODES (SPC-5 6.36), and the
//! SANITIZE command itself (SBC-4 5.30) with IMMED set, polled with
//! REQUEST SENSE (SPC-5 6.39) for its progress. ATA disks behind a SAT
//! layer are `ata`'s; this module only speaks SCSI.

use super::ata::{parse_scsi_sense, PassThrough, Sense};
use super::method::Method;
use super::progress::Tracker;
use crate::sys::sg::{Data, Reply};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::path::Path;
use std::time::{Duration, Instant};

pub const MAINTENANCE_IN: u8 = 0xA3;
/// MAINTENANCE IN service action REPORT SUPPORTED OPERATION CODES.
pub const SA_REPORT_SUPPORTED_OPCODES: u8 = 0x0C;
pub const SANITIZE: u8 = 0x48;
pub const REQUEST_SENSE: u8 = 0x03;
/// SANITIZE service actions (SBC-4 table 117).
pub const SA_OVERWRITE: u8 = 0x01;
pub const SA_BLOCK_ERASE: u8 = 0x02;
pub const SA_CRYPTO_ERASE: u8 = 0x03;
/// EXIT FAILURE MODE: not sent. SANITIZE goes out with AUSE=0, so after a
/// failed sanitize the device refuses it and only a SANITIZE that
/// completes restores access to the medium: a disk whose erase failed
/// cannot be read back half-erased and taken for a clean one.
pub const SA_EXIT_FAILURE_MODE: u8 = 0x1F;

const SANITIZE_LIMIT: Duration = Duration::from_secs(48 * 3600);

/// What REPORT SUPPORTED OPERATION CODES said about SANITIZE.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ScsiCaps {
    pub sanitize_overwrite: bool,
    pub sanitize_block: bool,
    pub sanitize_crypto: bool,
    /// What the probe found, in words (the plan's and certificate's why).
    pub probe: String,
}

impl ScsiCaps {
    pub fn any(&self) -> bool {
        self.sanitize_overwrite || self.sanitize_block || self.sanitize_crypto
    }
}

/// REPORT SUPPORTED OPERATION CODES with REPORTING OPTIONS 02h: one
/// command, `opcode` with service action `sa` (SPC-5 table 254). Byte 1:
/// service action 0Ch; byte 2: RCTD (7) = 0, REPORTING OPTIONS (2:0);
/// 3: REQUESTED OPERATION CODE; 4-5: REQUESTED SERVICE ACTION; 6-9:
/// ALLOCATION LENGTH.
pub fn rsoc_cdb(opcode: u8, sa: u16, alloc: u32) -> [u8; 12] {
    let mut c = [0u8; 12];
    c[0] = MAINTENANCE_IN;
    c[1] = SA_REPORT_SUPPORTED_OPCODES;
    c[2] = 0x02;
    c[3] = opcode;
    c[4..6].copy_from_slice(&sa.to_be_bytes());
    c[6..10].copy_from_slice(&alloc.to_be_bytes());
    c
}

/// The one_command parameter data's SUPPORT field (byte 1, bits 2:0):
/// 011b supported as the standard says, 101b supported in a vendor
/// specific manner; 001b not supported, 000b not known now.
pub fn rsoc_supported(data: &[u8]) -> Option<bool> {
    match data.get(1)? & 0x07 {
        0b011 | 0b101 => Some(true),
        0b001 => Some(false),
        _ => None,
    }
}

/// SANITIZE (SBC-4 5.30): byte 1 = IMMED (7) | ZNR (6) | AUSE (5) |
/// SERVICE ACTION (4:0); bytes 7-8 PARAMETER LIST LENGTH. IMMED=1: the
/// command returns at once and REQUEST SENSE reports the progress.
pub fn sanitize_cdb(sa: u8, ause: bool, param_len: u16) -> [u8; 10] {
    let mut c = [0u8; 10];
    c[0] = SANITIZE;
    c[1] = 0x80 | (ause as u8) << 5 | (sa & 0x1F);
    c[7..9].copy_from_slice(&param_len.to_be_bytes());
    c
}

/// The OVERWRITE parameter list (SBC-4 5.30.3.3): byte 0 INVERT (7) |
/// TEST (6:5) | OVERWRITE COUNT (4:0); bytes 2-3 INITIALIZATION PATTERN
/// LENGTH; then the pattern. One pass of a 4-byte zero pattern, not
/// inverted: the verification markers must then read as zeros or gone.
pub fn overwrite_params(passes: u8) -> Vec<u8> {
    let pattern = [0u8; 4];
    let mut p = vec![passes.clamp(1, 31), 0];
    p.extend_from_slice(&(pattern.len() as u16).to_be_bytes());
    p.extend_from_slice(&pattern);
    p
}

/// REQUEST SENSE (SPC-5 6.39): DESC (byte 1 bit 0) = 0 asks for fixed
/// format; a device may answer with descriptor format anyway, and both
/// are parsed.
pub fn request_sense_cdb(alloc: u8) -> [u8; 6] {
    [REQUEST_SENSE, 0, 0, 0, alloc, 0]
}

/// The service action and what a method is called in SBC-4.
pub fn service_action(m: Method) -> Option<(u8, &'static str)> {
    match m {
        Method::ScsiSanitizeOverwrite => Some((SA_OVERWRITE, "OVERWRITE")),
        Method::ScsiSanitizeBlock => Some((SA_BLOCK_ERASE, "BLOCK ERASE")),
        Method::ScsiSanitizeCrypto => Some((SA_CRYPTO_ERASE, "CRYPTOGRAPHIC ERASE")),
        _ => None,
    }
}

/// ASC/ASCQ pairs a reason names, in SPC-5's words.
fn asc_words(asc: u8, ascq: u8) -> &'static str {
    match (asc, ascq) {
        (0x20, 0x00) => "INVALID COMMAND OPERATION CODE",
        (0x24, 0x00) => "INVALID FIELD IN CDB",
        (0x26, 0x00) => "INVALID FIELD IN PARAMETER LIST",
        (0x04, 0x1B) => "LOGICAL UNIT NOT READY, SANITIZE IN PROGRESS",
        (0x31, 0x03) => "SANITIZE COMMAND FAILED",
        (0x29, _) => "POWER ON, RESET, OR BUS DEVICE RESET OCCURRED",
        (0x27, _) => "WRITE PROTECTED",
        _ => "",
    }
}

/// "ILLEGAL REQUEST, ASC 20h/00h (INVALID COMMAND OPERATION CODE)".
pub fn describe(s: &Sense) -> String {
    let w = asc_words(s.asc, s.ascq);
    format!(
        "{}, ASC {:02X}h/{:02X}h{}",
        super::ata::sense_key_name(s.key),
        s.asc,
        s.ascq,
        if w.is_empty() {
            String::new()
        } else {
            format!(" ({w})")
        }
    )
}

/// How a command sent through SG_IO ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Good,
    Check(Sense),
    /// CHECK CONDITION without sense, another SCSI status, or a
    /// host/driver error: in words.
    Failed(String),
}

pub fn outcome(r: &Reply) -> Outcome {
    if r.host_status != 0 || (r.driver_status & 0xF) != 0 && r.sense.is_empty() {
        return Outcome::Failed(format!(
            "host status {:#x}, driver status {:#x}",
            r.host_status, r.driver_status
        ));
    }
    match r.status {
        0 => Outcome::Good,
        2 => match parse_scsi_sense(&r.sense) {
            Some(s) => Outcome::Check(s),
            None => Outcome::Failed(format!(
                "CHECK CONDITION with undecodable sense {}",
                hex::encode(&r.sense)
            )),
        },
        s => Outcome::Failed(format!("SCSI status {s:#x}")),
    }
}

/// Ask about each SANITIZE service action. ILLEGAL REQUEST to the first
/// question means the device server has no REPORT SUPPORTED OPERATION
/// CODES (or no SANITIZE): no SANITIZE, and the probe says why.
pub fn probe_with(pt: &dyn PassThrough) -> Result<ScsiCaps> {
    let mut c = ScsiCaps::default();
    let mut found = Vec::new();
    for (sa, name) in [
        (SA_CRYPTO_ERASE, "CRYPTOGRAPHIC ERASE"),
        (SA_BLOCK_ERASE, "BLOCK ERASE"),
        (SA_OVERWRITE, "OVERWRITE"),
    ] {
        let mut buf = vec![0u8; 64];
        let r = pt
            .send(
                &rsoc_cdb(SANITIZE, sa.into(), buf.len() as u32),
                Data::In(&mut buf),
                10_000,
            )
            .context("SG_IO REPORT SUPPORTED OPERATION CODES")?;
        let yes = match outcome(&r) {
            Outcome::Good => rsoc_supported(&buf) == Some(true),
            Outcome::Check(s) if s.key == 0x5 => {
                c.probe = format!(
                    "no SANITIZE: REPORT SUPPORTED OPERATION CODES for SANITIZE {name} refused ({})",
                    describe(&s)
                );
                return Ok(c);
            }
            Outcome::Check(s) => {
                bail!("REPORT SUPPORTED OPERATION CODES: {}", describe(&s))
            }
            Outcome::Failed(why) => bail!("REPORT SUPPORTED OPERATION CODES: {why}"),
        };
        match sa {
            SA_CRYPTO_ERASE => c.sanitize_crypto = yes,
            SA_BLOCK_ERASE => c.sanitize_block = yes,
            _ => c.sanitize_overwrite = yes,
        }
        if yes {
            found.push(name);
        }
    }
    c.probe = if found.is_empty() {
        "REPORT SUPPORTED OPERATION CODES: no SANITIZE service action supported".into()
    } else {
        format!(
            "REPORT SUPPORTED OPERATION CODES: SANITIZE {} supported",
            found.join(", ")
        )
    };
    Ok(c)
}

/// Probe the disk at `path` (read-only).
pub fn probe(path: &Path) -> Result<ScsiCaps> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    probe_with(&f)
}

/// Where a sanitize stands, from REQUEST SENSE's data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Poll {
    /// NOT READY, 04h/1Bh; the fraction when SKSV gives a progress.
    Running(Option<f64>),
    /// NO SENSE (or RECOVERED ERROR): the sanitize is over.
    Done,
    /// 31h/03h, SANITIZE COMMAND FAILED (MEDIUM ERROR).
    Failed(Sense),
    /// UNIT ATTENTION: ask again.
    Again,
    Other(Sense),
}

/// Read REQUEST SENSE data (fixed or descriptor format).
pub fn poll_state(sense: &[u8]) -> Option<Poll> {
    let s = parse_scsi_sense(sense)?;
    Some(match (s.key, s.asc, s.ascq) {
        (0x2, 0x04, 0x1B) => Poll::Running(s.progress.map(|p| p as f64 / 65536.0)),
        (_, 0x31, 0x03) => Poll::Failed(s),
        (0x0 | 0x1, _, _) => Poll::Done,
        (0x6, _, _) => Poll::Again,
        _ => Poll::Other(s),
    })
}

/// REQUEST SENSE once: its data, trimmed to the length it states.
fn request_sense(pt: &dyn PassThrough) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; 252];
    let r = pt
        .send(&request_sense_cdb(252), Data::In(&mut buf), 10_000)
        .context("SG_IO REQUEST SENSE")?;
    match outcome(&r) {
        Outcome::Good => {}
        Outcome::Check(s) => bail!("REQUEST SENSE: {}", describe(&s)),
        Outcome::Failed(why) => bail!("REQUEST SENSE: {why}"),
    }
    let n = (8 + usize::from(buf[7])).min(buf.len());
    buf.truncate(n);
    Ok(buf)
}

/// Poll REQUEST SENSE every `pause` while a sanitize runs. `Ok(true)` when
/// one ran and completed, `Ok(false)` when none was running.
fn wait(pt: &dyn PassThrough, pause: Duration, tracker: &Tracker, issued: bool) -> Result<bool> {
    let start = Instant::now();
    let mut odd = 0;
    let mut ran = false;
    loop {
        let data = request_sense(pt)?;
        match poll_state(&data) {
            Some(Poll::Running(p)) => {
                ran = true;
                if let Some(p) = p {
                    tracker.fraction(p);
                }
            }
            Some(Poll::Done) => return Ok(ran || issued),
            Some(Poll::Failed(s)) => bail!(
                "the SANITIZE command failed ({}); the drive stays in sanitize failure mode (AUSE=0: EXIT FAILURE MODE is refused) until a SANITIZE completes, so the medium cannot be read until then",
                describe(&s)
            ),
            Some(Poll::Again) => {}
            // Before ours: any other state means none is running.
            Some(Poll::Other(_)) if !issued && !ran => return Ok(false),
            Some(Poll::Other(s)) => {
                odd += 1;
                if odd > 10 {
                    bail!("unexpected REQUEST SENSE while sanitizing: {}", describe(&s));
                }
            }
            None if data.iter().all(|&b| b == 0) => return Ok(ran || issued),
            None => bail!("REQUEST SENSE: undecodable data {}", hex::encode(&data)),
        }
        if start.elapsed() > SANITIZE_LIMIT {
            bail!(
                "sanitize still running after {} h",
                SANITIZE_LIMIT.as_secs() / 3600
            );
        }
        std::thread::sleep(pause);
    }
}

/// A sanitize still running from before a reboot (the device carries on
/// after a reset) aborts the verification markers' writes: wait for it
/// first. Noted when there was one.
pub fn await_running(
    pt: &dyn PassThrough,
    pause: Duration,
    tracker: &Tracker,
    notes: &mut Vec<String>,
) -> Result<()> {
    if wait(pt, pause, tracker, false)? {
        notes.push("a SANITIZE was already in progress (started before this run); waited for it to complete".into());
    }
    Ok(())
}

/// SANITIZE by `m`, IMMED=1 and AUSE=0, then REQUEST SENSE every `pause`
/// until it completes or fails.
pub fn sanitize(
    pt: &dyn PassThrough,
    m: Method,
    pause: Duration,
    tracker: &Tracker,
    notes: &mut Vec<String>,
) -> Result<()> {
    let Some((sa, name)) = service_action(m) else {
        bail!("{} is not a SCSI SANITIZE method", m.name());
    };
    let params = if sa == SA_OVERWRITE {
        overwrite_params(1)
    } else {
        vec![]
    };
    let cdb = sanitize_cdb(sa, false, params.len() as u16);
    let data = if params.is_empty() {
        Data::None
    } else {
        Data::Out(&params)
    };
    tracker.fraction(0.0);
    let r = pt.send(&cdb, data, 60_000).context("SG_IO SANITIZE")?;
    match outcome(&r) {
        Outcome::Good => {}
        Outcome::Check(s) => bail!("SANITIZE {name} refused: {}", describe(&s)),
        Outcome::Failed(why) => bail!("SANITIZE {name}: {why}"),
    }
    notes.push(format!(
        "SCSI SANITIZE {name} issued (IMMED=1, AUSE=0{})",
        if sa == SA_OVERWRITE {
            ", one pass of zeros"
        } else {
            ""
        }
    ));
    wait(pt, pause, tracker, true)?;
    tracker.fraction(1.0);
    notes.push("REQUEST SENSE: SANITIZE completed".into());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn cdbs_match_the_standards() {
        // RSOC: A3h, SA 0Ch, REPORTING OPTIONS 02h, opcode 48h, SA 0003h,
        // allocation length 64.
        assert_eq!(
            rsoc_cdb(SANITIZE, 3, 64),
            [0xA3, 0x0C, 0x02, 0x48, 0x00, 0x03, 0, 0, 0, 64, 0, 0]
        );
        // SANITIZE BLOCK ERASE, IMMED, no parameter list.
        assert_eq!(
            sanitize_cdb(SA_BLOCK_ERASE, false, 0),
            [0x48, 0x82, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        // CRYPTOGRAPHIC ERASE with AUSE.
        assert_eq!(
            sanitize_cdb(SA_CRYPTO_ERASE, true, 0)[1],
            0x80 | 0x20 | 0x03
        );
        // OVERWRITE with its 8-byte parameter list.
        assert_eq!(
            sanitize_cdb(SA_OVERWRITE, false, 8),
            [0x48, 0x81, 0, 0, 0, 0, 0, 0x00, 0x08, 0]
        );
        assert_eq!(overwrite_params(1), [0x01, 0, 0x00, 0x04, 0, 0, 0, 0]);
        assert_eq!(overwrite_params(0)[0], 1);
        assert_eq!(overwrite_params(99)[0], 31);
        assert_eq!(request_sense_cdb(252), [0x03, 0, 0, 0, 252, 0]);
        assert_eq!(
            service_action(Method::ScsiSanitizeCrypto),
            Some((0x03, "CRYPTOGRAPHIC ERASE"))
        );
        assert_eq!(service_action(Method::AtaSanitizeBlock), None);
    }

    #[test]
    fn rsoc_support_field() {
        assert_eq!(rsoc_supported(&[0, 0b011, 0, 10]), Some(true));
        assert_eq!(rsoc_supported(&[0, 0b101, 0, 10]), Some(true));
        // CTDP set does not matter.
        assert_eq!(rsoc_supported(&[0, 0x80 | 0b011]), Some(true));
        assert_eq!(rsoc_supported(&[0, 0b001]), Some(false));
        assert_eq!(rsoc_supported(&[0, 0b000]), None);
        assert_eq!(rsoc_supported(&[0]), None);
    }

    /// Fixed-format sense (SPC-5 4.4.3) with the sense-key-specific
    /// progress indication when given.
    fn fixed(key: u8, asc: u8, ascq: u8, progress: Option<u16>) -> Vec<u8> {
        let mut s = vec![0u8; 18];
        s[0] = 0x70;
        s[2] = key;
        s[7] = 10;
        s[12] = asc;
        s[13] = ascq;
        if let Some(p) = progress {
            s[15] = 0x80;
            s[16..18].copy_from_slice(&p.to_be_bytes());
        }
        s
    }

    /// Descriptor-format sense (SPC-5 4.4.2) with a sense key specific
    /// descriptor (02h) carrying the progress.
    fn desc(key: u8, asc: u8, ascq: u8, progress: Option<u16>) -> Vec<u8> {
        let mut s = vec![0x72, key, asc, ascq, 0, 0, 0, 0];
        if let Some(p) = progress {
            let [hi, lo] = p.to_be_bytes();
            s.extend([0x02, 0x06, 0, 0, 0x80, hi, lo, 0]);
        }
        s[7] = (s.len() - 8) as u8;
        s
    }

    #[test]
    fn sense_and_progress_in_both_formats() {
        type Row = (&'static str, Vec<u8>, Option<Poll>);
        let failed = |key| Sense {
            key,
            asc: 0x31,
            ascq: 0x03,
            progress: None,
        };
        let table: Vec<Row> = vec![
            (
                "fixed, in progress, 50 %",
                fixed(0x2, 0x04, 0x1B, Some(0x8000)),
                Some(Poll::Running(Some(0.5))),
            ),
            (
                "descriptor, in progress, 25 %",
                desc(0x2, 0x04, 0x1B, Some(0x4000)),
                Some(Poll::Running(Some(0.25))),
            ),
            (
                "fixed, in progress, no SKSV",
                fixed(0x2, 0x04, 0x1B, None),
                Some(Poll::Running(None)),
            ),
            (
                "fixed, MEDIUM ERROR, SANITIZE COMMAND FAILED",
                fixed(0x3, 0x31, 0x03, None),
                Some(Poll::Failed(failed(0x3))),
            ),
            (
                "descriptor, MEDIUM ERROR, SANITIZE COMMAND FAILED",
                desc(0x3, 0x31, 0x03, None),
                Some(Poll::Failed(failed(0x3))),
            ),
            (
                "fixed, NO SENSE: done",
                fixed(0x0, 0, 0, None),
                Some(Poll::Done),
            ),
            (
                "descriptor, NO SENSE: done",
                desc(0x0, 0, 0, None),
                Some(Poll::Done),
            ),
            (
                "UNIT ATTENTION after a reset",
                fixed(0x6, 0x29, 0x00, None),
                Some(Poll::Again),
            ),
            ("no sense data at all", vec![], None),
        ];
        for (what, s, want) in table {
            assert_eq!(poll_state(&s), want, "{what}");
        }
        let s = parse_scsi_sense(&fixed(0x5, 0x20, 0x00, None)).unwrap();
        assert_eq!(
            describe(&s),
            "ILLEGAL REQUEST, ASC 20h/00h (INVALID COMMAND OPERATION CODE)"
        );
    }

    /// A SAS disk behind SG_IO, scripted: RSOC answers (`None` = ILLEGAL
    /// REQUEST, INVALID COMMAND OPERATION CODE), the SANITIZE reply, and
    /// the REQUEST SENSE answers in order.
    struct FakeSas {
        rsoc: Option<[u8; 3]>,
        sanitize: Reply,
        senses: RefCell<Vec<Vec<u8>>>,
        log: RefCell<Vec<Vec<u8>>>,
    }

    impl FakeSas {
        fn new(senses: Vec<Vec<u8>>) -> FakeSas {
            FakeSas {
                rsoc: Some([0b011, 0b011, 0b011]),
                sanitize: Reply::default(),
                senses: RefCell::new(senses),
                log: Default::default(),
            }
        }
        fn ops(&self) -> Vec<u8> {
            self.log.borrow().iter().map(|c| c[0]).collect()
        }
    }

    impl PassThrough for FakeSas {
        fn send(&self, cdb: &[u8], data: Data<'_>, _ms: u32) -> std::io::Result<Reply> {
            self.log.borrow_mut().push(cdb.to_vec());
            let check = |s: Vec<u8>| Reply {
                status: 2,
                sense: s,
                ..Default::default()
            };
            match (cdb[0], data) {
                (MAINTENANCE_IN, Data::In(b)) => match self.rsoc {
                    None => Ok(check(fixed(0x5, 0x20, 0, None))),
                    Some(sup) => {
                        b.fill(0);
                        b[1] = sup[usize::from(cdb[5]) - 1];
                        Ok(Reply::default())
                    }
                },
                (SANITIZE, d) => {
                    if cdb[1] & 0x1F == SA_OVERWRITE {
                        assert!(matches!(d, Data::Out(p) if p == overwrite_params(1).as_slice()));
                    } else {
                        assert!(matches!(d, Data::None));
                    }
                    Ok(self.sanitize.clone())
                }
                (REQUEST_SENSE, Data::In(b)) => {
                    let s = self.senses.borrow_mut().remove(0);
                    b.fill(0);
                    b[..s.len()].copy_from_slice(&s);
                    Ok(Reply::default())
                }
                (op, _) => panic!("unexpected opcode {op:#x}"),
            }
        }
    }

    #[test]
    fn probe_reads_each_service_action() {
        let mut d = FakeSas::new(vec![]);
        d.rsoc = Some([0b001, 0b001, 0b011]);
        let c = probe_with(&d).unwrap();
        assert!(c.sanitize_crypto && !c.sanitize_block && !c.sanitize_overwrite);
        assert_eq!(
            c.probe,
            "REPORT SUPPORTED OPERATION CODES: SANITIZE CRYPTOGRAPHIC ERASE supported"
        );
        assert_eq!(d.ops(), [MAINTENANCE_IN; 3]);
        d.rsoc = Some([0b001; 3]);
        assert!(!probe_with(&d).unwrap().any());
        // No RSOC (QEMU's scsi-hd): ILLEGAL REQUEST, no SANITIZE, one try.
        let d = FakeSas {
            rsoc: None,
            ..FakeSas::new(vec![])
        };
        let c = probe_with(&d).unwrap();
        assert!(!c.any());
        assert!(
            c.probe.contains("refused (ILLEGAL REQUEST, ASC 20h/00h"),
            "{}",
            c.probe
        );
        assert_eq!(d.ops(), [MAINTENANCE_IN]);
    }

    #[test]
    fn sanitize_polls_with_progress_until_done() {
        let tr = Tracker::new("test".into(), None);
        let d = FakeSas::new(vec![
            fixed(0x2, 0x04, 0x1B, Some(0x1000)),
            desc(0x2, 0x04, 0x1B, Some(0xC000)),
            fixed(0x6, 0x29, 0, None),
            fixed(0x0, 0, 0, None),
        ]);
        let mut notes = vec![];
        sanitize(
            &d,
            Method::ScsiSanitizeOverwrite,
            Duration::ZERO,
            &tr,
            &mut notes,
        )
        .unwrap();
        assert_eq!(
            d.ops(),
            [
                SANITIZE,
                REQUEST_SENSE,
                REQUEST_SENSE,
                REQUEST_SENSE,
                REQUEST_SENSE
            ]
        );
        assert_eq!(d.log.borrow()[0][1], 0x81, "IMMED, AUSE=0, OVERWRITE");
        assert!(notes[0].contains("OVERWRITE issued"), "{notes:?}");
        assert!(d.senses.borrow().is_empty());
    }

    #[test]
    fn a_sanitize_failing_midway_fails_with_the_reason() {
        let tr = Tracker::new("test".into(), None);
        let d = FakeSas::new(vec![
            fixed(0x2, 0x04, 0x1B, Some(0x2000)),
            fixed(0x2, 0x04, 0x1B, Some(0x8000)),
            fixed(0x3, 0x31, 0x03, None),
        ]);
        let mut notes = vec![];
        let e = sanitize(
            &d,
            Method::ScsiSanitizeBlock,
            Duration::ZERO,
            &tr,
            &mut notes,
        )
        .unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.contains("MEDIUM ERROR, ASC 31h/03h (SANITIZE COMMAND FAILED)"),
            "{e}"
        );
        assert!(e.contains("sanitize failure mode"), "{e}");
        assert!(!notes.iter().any(|n| n.contains("completed")), "{notes:?}");
        // What the disk's outcome and certificate then say: failed, with
        // this error, whatever a read-back would have found.
        let v = super::super::verify::VerifyReport {
            result: "passed".into(),
            ..Default::default()
        };
        assert_eq!(
            super::super::disk::outcome_of(Method::ScsiSanitizeBlock, true, &v),
            "failed"
        );
        // Refused outright: CHECK CONDITION on the SANITIZE itself.
        let mut d = FakeSas::new(vec![]);
        d.sanitize = Reply {
            status: 2,
            sense: fixed(0x5, 0x24, 0, None),
            ..Default::default()
        };
        let e = sanitize(
            &d,
            Method::ScsiSanitizeCrypto,
            Duration::ZERO,
            &tr,
            &mut vec![],
        )
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("CRYPTOGRAPHIC ERASE refused: ILLEGAL REQUEST, ASC 24h/00h"),
            "{e:#}"
        );
        assert_eq!(d.ops(), [SANITIZE]);
    }

    #[test]
    fn a_sanitize_running_from_before_is_waited_for() {
        let tr = Tracker::new("test".into(), None);
        let d = FakeSas::new(vec![
            fixed(0x2, 0x04, 0x1B, Some(0x8000)),
            fixed(0x0, 0, 0, None),
        ]);
        let mut notes = vec![];
        await_running(&d, Duration::ZERO, &tr, &mut notes).unwrap();
        assert!(notes[0].contains("already in progress"), "{notes:?}");
        // Nothing running (NO SENSE, or another NOT READY): no wait.
        for s in [fixed(0x0, 0, 0, None), fixed(0x2, 0x04, 0x02, None)] {
            let d = FakeSas::new(vec![s]);
            let mut notes = vec![];
            await_running(&d, Duration::ZERO, &tr, &mut notes).unwrap();
            assert!(notes.is_empty());
            assert_eq!(d.ops(), [REQUEST_SENSE]);
        }
    }

    #[test]
    fn auto_ranks_scsi_sanitize_and_says_why_not() {
        use super::super::caps::{native_scsi, Caps};
        use super::super::choose::choose;
        use crate::blockdev::scan;
        use crate::root::Root;
        let t = tempfile::tempdir().unwrap();
        let r = &Root::new(t.path());
        let at = "pci0000:00/0000:00:05.0/virtio2/host2/target2:0:0/2:0:0:0/block";
        let files = [
            ("device/vendor", "QEMU    \n"),
            ("device/model", "QEMU HARDDISK\n"),
        ];
        scan::tests::disk(r, at, "sda", &files);
        let d = scan::read(r, "sda");
        assert!(native_scsi(&d));
        let caps = |c, b, o| Caps {
            scsi: Some(ScsiCaps {
                sanitize_crypto: c,
                sanitize_block: b,
                sanitize_overwrite: o,
                probe: "the probe's words".into(),
            }),
            ..Default::default()
        };
        let pick = |c: &Caps, m| choose(&d, c, m);
        use Method::*;
        assert_eq!(
            pick(&caps(true, true, true), Auto).unwrap().0,
            ScsiSanitizeCrypto
        );
        assert_eq!(
            pick(&caps(false, true, true), Auto).unwrap().0,
            ScsiSanitizeBlock
        );
        let (m, why) = pick(&caps(false, false, true), Auto).unwrap();
        assert_eq!(m, ScsiSanitizeOverwrite);
        assert!(why.contains("SANITIZE OVERWRITE supported"), "{why}");
        let (m, why) = pick(&caps(false, false, false), Auto).unwrap();
        assert_eq!(
            (m, why.as_str()),
            (Random, "auto: the probe's words; overwrite")
        );
        let e = pick(&caps(true, false, false), ScsiSanitizeBlock).unwrap_err();
        assert!(e.contains("no BLOCK ERASE"), "{e}");
        assert_eq!(
            pick(&caps(true, false, false), ScsiSanitizeCrypto)
                .unwrap()
                .0,
            ScsiSanitizeCrypto
        );
        let e = pick(&Caps::default(), AtaSanitizeBlock).unwrap_err();
        assert!(e.contains("native SCSI disk"), "{e}");
        assert_eq!(Method::ScsiSanitizeCrypto.category(), "Purge");
        assert!(Method::ScsiSanitizeCrypto.content_indeterminate());
        // An ATA disk behind a SAS HBA (SAT: vendor "ATA") is ATA's.
        let sat = [("device/vendor", "ATA     \n"), ("dev", "8:16\n")];
        scan::tests::disk(r, at.replace("2:0:0:0", "2:0:1:0").as_str(), "sdb", &sat);
        assert!(!native_scsi(&scan::read(r, "sdb")));
        let e = pick(&Caps::default(), ScsiSanitizeBlock);
        assert!(e.unwrap_err().contains("could not be read"));
    }
}
