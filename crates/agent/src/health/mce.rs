//! Machine checks the kernel logged since boot, from the kernel log.
//!
//! The x86 MCE sysfs files (/sys/devices/system/machinecheck/machinecheck*/
//! bank*) are bank control masks, not counts, so the records are read from
//! the log instead: `<root>/dev/kmsg`, opened non-blocking and read record
//! by record until EAGAIN (one read is one record; EPIPE means records were
//! overwritten, and reading goes on). A fixture tree holds a plain file
//! there, in the same `prio,seq,usec,flags;message` form or as `dmesg`
//! text: the same reader reads it to its end. A log file such as
//! /var/log/kern.log is not used: the live image has none. Records that the
//! ring buffer already overwrote (a chatty boot on a large machine) are not
//! seen; `mcelog`/rasdaemon are the answer to that, not here.
//!
//! Matched: `mce: [Hardware Error]: CPU n: Machine Check: x Bank b: STATUS`
//! (FAIL when MCi_STATUS has UC, bit 61, set: uncorrected; else WARN),
//! `mce: [Hardware Error]: Machine check: ...` (the kernel's words for a
//! fatal condition: FAIL), and `Machine check events logged` (corrected
//! errors the kernel reported: WARN).

use super::{Finding, Out, Severity};
use crate::root::Root;
use std::io::Read;

const ABS: &str = "/dev/kmsg";
const CHECK: &str = "mce";
/// Records shown one by one; the rest are counted in one finding.
const SHOWN: usize = 10;
/// Read at most this much log.
const MAX_BYTES: usize = 64 << 20;

/// One machine check line of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub severity: Severity,
    pub cpu: Option<u32>,
    pub message: String,
    /// The log line, without the kmsg prefix.
    pub line: String,
}

pub fn check(root: &Root) -> Out {
    let (banks, n_banks) = bank_counters(root);
    let mut out = log_check(root);
    if n_banks > 0 {
        out.skipped = false;
        out.summary
            .push_str(&format!("; {n_banks} AMD threshold bank counter(s)"));
    }
    out.findings.extend(banks);
    out
}

/// AMD's per-bank corrected error counters:
/// `/sys/devices/system/machinecheck/machinecheckCPU/threshold_bankN/BLOCK/
/// error_count` (each bank is shared by the CPUs of its scope, so a count
/// is reported once per bank and block). Any count is a WARN: corrected
/// errors the hardware counted in that bank. Intel exposes no counters
/// there (its `bankN` files are control masks).
fn bank_counters(root: &Root) -> (Vec<Finding>, usize) {
    const DIR: &str = "/sys/devices/system/machinecheck";
    let mut seen = std::collections::BTreeMap::new();
    for (_, cpu) in super::read::numbered(root, DIR, "machinecheck") {
        for (_, bank) in super::read::numbered(root, &format!("{DIR}/{cpu}"), "threshold_bank") {
            let bdir = format!("{DIR}/{cpu}/{bank}");
            for block in crate::root::dir_names(&root.at(&bdir)) {
                let abs = format!("{bdir}/{block}/error_count");
                if !root.at(&abs).exists() {
                    continue;
                }
                seen.entry(format!("{bank}/{block}"))
                    .or_insert((abs.clone(), super::read::num::<u64>(root, &abs)));
            }
        }
    }
    let mut v = Vec::new();
    for (name, (abs, val)) in &seen {
        match val {
            super::read::Val::Ok(0) | super::read::Val::Absent | super::read::Val::NoData => {}
            super::read::Val::Ok(n) => v.push(
                Finding::new(
                    Severity::Warn,
                    CHECK,
                    format!("MCA {name}"),
                    format!("{n} corrected error(s) counted in machine check {name}"),
                )
                .evidence(format!("error_count = {n}"))
                .source(abs.clone())
                .threshold("0"),
            ),
            super::read::Val::Bad(why) => {
                v.push(Finding::unreadable(CHECK, format!("MCA {name}"), abs, why))
            }
        }
    }
    (v, seen.len())
}

fn log_check(root: &Root) -> Out {
    let mut out = Out::default();
    let text = match read_log(root) {
        Ok(Some(t)) => t,
        Ok(None) => {
            out.skipped = true;
            out.summary = format!("no kernel log at {ABS}: machine checks not checked");
            out.findings.push(
                Finding::new(
                    Severity::Info,
                    CHECK,
                    "kernel log",
                    "no kernel log to read: machine checks are not checked",
                )
                .source(ABS),
            );
            return out;
        }
        Err(why) => {
            out.summary = format!("kernel log unreadable: {why}");
            out.findings
                .push(Finding::unreadable(CHECK, "kernel log", ABS, &why));
            return out;
        }
    };
    let records = parse(&text);
    let lines = text.lines().count();
    out.summary = format!(
        "kernel log: {lines} line(s), {} machine check line(s)",
        records.len()
    );
    for r in records.iter().take(SHOWN) {
        let component = r
            .cpu
            .map(|c| format!("CPU {c}"))
            .unwrap_or_else(|| "kernel log".into());
        out.findings.push(
            Finding::new(r.severity, CHECK, component, &r.message)
                .evidence(&r.line)
                .source(ABS)
                .threshold(
                    "an uncorrected machine check (MCi_STATUS.UC) fails; a corrected one warns",
                ),
        );
    }
    if records.len() > SHOWN {
        let rest = &records[SHOWN..];
        let worst = rest
            .iter()
            .map(|r| r.severity)
            .max()
            .unwrap_or(Severity::Warn);
        out.findings.push(
            Finding::new(
                worst,
                CHECK,
                "kernel log",
                format!("{} more machine check line(s)", rest.len()),
            )
            .evidence(&rest[rest.len() - 1].line)
            .source(ABS),
        );
    }
    out
}

/// The log's text; `None` when there is none under the root.
fn read_log(root: &Root) -> Result<Option<String>, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(root.at(ABS))
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open: {e}")),
    };
    let mut all = Vec::new();
    // /dev/kmsg returns one record per read and wants room for the
    // largest (about 8 KiB with its dictionary).
    let mut buf = vec![0u8; 16 << 10];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                all.extend_from_slice(&buf[..n]);
                if all.len() > MAX_BYTES {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // Records overwritten since the last read: go on with the next.
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {}
            Err(e) => return Err(format!("cannot read: {e}")),
        }
    }
    Ok(Some(String::from_utf8_lossy(&all).into_owned()))
}

/// The message of one log line: without the kmsg `prio,seq,usec,flags;`
/// prefix or dmesg's `[   12.345678] ` timestamp. `None` for kmsg's
/// continuation lines (` KEY=value`).
pub fn message(line: &str) -> Option<&str> {
    if line.starts_with(' ') {
        return None;
    }
    if let Some((head, rest)) = line.split_once(';') {
        let fields: Vec<&str> = head.split(',').collect();
        if fields.len() >= 3 && fields[..3].iter().all(|f| f.parse::<u64>().is_ok()) {
            return Some(rest);
        }
    }
    if let Some(rest) = line.strip_prefix('[') {
        if let Some((ts, msg)) = rest.split_once(']') {
            if ts.trim().parse::<f64>().is_ok() {
                return Some(msg.trim_start());
            }
        }
    }
    Some(line)
}

/// The machine check records in a kernel log.
pub fn parse(text: &str) -> Vec<Record> {
    let mut v = Vec::new();
    for line in text.lines() {
        let Some(msg) = message(line) else { continue };
        let msg = msg.trim_end();
        let hw = msg
            .find("mce: [Hardware Error]:")
            .map(|i| msg[i + "mce: [Hardware Error]:".len()..].trim());
        let rec = |severity, message: String| Record {
            severity,
            cpu: cpu_of(msg),
            message,
            line: msg.to_string(),
        };
        if msg.contains("Machine check events logged") {
            v.push(rec(
                Severity::Warn,
                "the kernel logged corrected machine check events".into(),
            ));
            continue;
        }
        let Some(hw) = hw else { continue };
        if let Some(status) = bank_status(hw) {
            let bank = hw
                .split("Bank ")
                .nth(1)
                .and_then(|b| b.split(':').next())
                .unwrap_or("?");
            // MCi_STATUS: VAL is bit 63, UC (uncorrected) bit 61.
            let uc = status & (1 << 61) != 0;
            v.push(rec(
                if uc { Severity::Fail } else { Severity::Warn },
                format!(
                    "{} machine check in bank {bank} (MCi_STATUS {status:#018x})",
                    if uc { "uncorrected" } else { "corrected" }
                ),
            ));
        } else if let Some(why) = hw.strip_prefix("Machine check:") {
            v.push(rec(
                Severity::Fail,
                format!("fatal machine check: {}", why.trim()),
            ));
        }
    }
    v
}

/// `CPU 3` or `CPU3` in a line.
fn cpu_of(msg: &str) -> Option<u32> {
    let i = msg.find("CPU")?;
    let rest = msg[i + 3..].trim_start();
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// The hex MCi_STATUS after `Bank N: ` in a `Machine Check:` record.
fn bank_status(hw: &str) -> Option<u64> {
    if !hw.contains("Machine Check") {
        return None;
    }
    let after = hw.split("Bank ").nth(1)?;
    let hex = after.split_once(':')?.1.split_whitespace().next()?;
    u64::from_str_radix(hex.trim_start_matches("0x"), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kmsg_and_dmesg_prefixes() {
        assert_eq!(message("6,339,5140900,-;hello"), Some("hello"));
        assert_eq!(message("4,12,99,c,more;x;y"), Some("x;y"));
        assert_eq!(message(" SUBSYSTEM=pci"), None);
        assert_eq!(message("[   12.345678] hello"), Some("hello"));
        assert_eq!(message("plain; text"), Some("plain; text"));
    }

    #[test]
    fn records_and_their_severity() {
        let log = "\
6,1,100,-;Linux version 6.1.0
3,2,200,-;mce: [Hardware Error]: CPU 2: Machine Check: 0 Bank 7: 8c00004000010090
3,3,201,-;mce: [Hardware Error]: TSC 0 ADDR 1234567000 MISC 0 SYND 0
3,4,300,-;mce: [Hardware Error]: CPU 5: Machine Check: 0 Bank 5: be00000000800400
 SUBSYSTEM=cpu
[  400.000001] mce: [Hardware Error]: Machine check events logged
0,5,500,-;mce: [Hardware Error]: Machine check: Processor context corrupt
4,6,600,-;mce: CPU3: Core temperature above threshold, cpu clock throttled
";
        let r = parse(log);
        let got: Vec<(Severity, Option<u32>, &str)> = r
            .iter()
            .map(|r| (r.severity, r.cpu, r.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    Severity::Warn,
                    Some(2),
                    "corrected machine check in bank 7 (MCi_STATUS 0x8c00004000010090)"
                ),
                (
                    Severity::Fail,
                    Some(5),
                    "uncorrected machine check in bank 5 (MCi_STATUS 0xbe00000000800400)"
                ),
                (
                    Severity::Warn,
                    None,
                    "the kernel logged corrected machine check events"
                ),
                (
                    Severity::Fail,
                    None,
                    "fatal machine check: Processor context corrupt"
                ),
            ]
        );
        assert_eq!(
            r[0].line,
            "mce: [Hardware Error]: CPU 2: Machine Check: 0 Bank 7: 8c00004000010090"
        );
        assert!(
            parse("garbage\n\u{0}\n;;;\nmce: [Hardware Error]: CPU x: Machine Check: Bank :")
                .is_empty()
        );
    }
}
