//! PCIe per device in /sys/bus/pci/devices/*: the AER counters
//! (aer_dev_fatal, aer_dev_nonfatal, aer_dev_correctable: `NAME COUNT`
//! lines ending in `TOTAL_ERR_FATAL`, `TOTAL_ERR_NONFATAL`,
//! `TOTAL_ERR_COR`) and link training (current_link_speed/width against
//! max_link_speed/width). Fatal or non-fatal errors FAIL; correctable ones
//! above the threshold WARN. A link below what both ends support WARNs
//! ("trained at 8.0 GT/s x4 of 16.0 GT/s x16"); the upstream port's own
//! maximum caps what is expected, so a Gen4 card in a Gen3 slot is fine. A
//! display controller below its speed at full width is an info line (GPUs
//! slow their link when idle). The root ports' aer_rootport_total_err_*
//! repeat their devices' counts and are not read.

use super::read::{self, Val};
use super::{Finding, Out, Severity, Thresholds};
use crate::root::Root;

const BASE: &str = "/sys/bus/pci/devices";
const CHECK: &str = "pcie";

/// One AER counter file: the named counts and the total.
#[derive(Debug, Clone, PartialEq)]
pub struct Aer {
    /// Non-zero counts by the kernel's name (`DLP`, `RxErr`).
    pub nonzero: Vec<(String, u64)>,
    /// TOTAL_ERR_*, or the sum when the kernel wrote no total.
    pub total: u64,
}

/// Parse an aer_dev_* file; `Err` quotes the first line that is not
/// `NAME COUNT`.
pub fn parse_aer(text: &str) -> Result<Aer, String> {
    if text.trim().is_empty() {
        return Err("empty".into());
    }
    let mut nonzero = Vec::new();
    let mut sum = 0u64;
    let mut total = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut it = line.split_whitespace();
        let (Some(name), Some(n), None) = (it.next(), it.next(), it.next()) else {
            return Err(format!("line {} is not \"NAME COUNT\"", read::quote(line)));
        };
        let n: u64 = n
            .parse()
            .map_err(|_| format!("line {} is not \"NAME COUNT\"", read::quote(line)))?;
        if name.starts_with("TOTAL_ERR_") {
            total = Some(n);
        } else {
            sum = sum.saturating_add(n);
            if n > 0 {
                nonzero.push((name.to_string(), n));
            }
        }
    }
    Ok(Aer {
        nonzero,
        total: total.unwrap_or(sum),
    })
}

/// `8.0 GT/s PCIe` (or `8 GT/s`) as GT/s; `None` for `Unknown` and
/// anything else.
pub fn parse_speed(s: &str) -> Option<f64> {
    let num = s.split_whitespace().next()?;
    let gt = s.split_whitespace().nth(1)?;
    (gt == "GT/s").then_some(())?;
    num.parse().ok().filter(|v: &f64| *v > 0.0)
}

/// Sort key of a `dddd:bb:dd.f` address.
fn addr_key(a: &str) -> Vec<u32> {
    a.split([':', '.'])
        .map(|x| u32::from_str_radix(x, 16).unwrap_or(u32::MAX))
        .collect()
}

pub fn check(root: &Root, t: &Thresholds) -> Out {
    let mut out = Out::default();
    let mut addrs = crate::root::dir_names(&root.at(BASE));
    addrs.sort_by_key(|a| addr_key(a));
    let (mut with_aer, mut with_link) = (0, 0);
    for a in &addrs {
        let dir = format!("{BASE}/{a}");
        let mut aer_seen = false;
        for (file, what) in [
            ("aer_dev_fatal", "fatal"),
            ("aer_dev_nonfatal", "non-fatal"),
            ("aer_dev_correctable", "correctable"),
        ] {
            let abs = format!("{dir}/{file}");
            let aer = match read::text(root, &abs) {
                Val::Absent => continue,
                Val::NoData => Err("no data".to_string()),
                Val::Bad(why) => Err(why),
                Val::Ok(text) => parse_aer(&text),
            };
            aer_seen = true;
            let aer = match aer {
                Ok(a) => a,
                Err(why) => {
                    out.findings
                        .push(Finding::unreadable(CHECK, a.as_str(), &abs, &why));
                    continue;
                }
            };
            let correctable = file == "aer_dev_correctable";
            let limit = if correctable {
                t.max_aer_correctable
            } else {
                0
            };
            if aer.total <= limit {
                continue;
            }
            let detail: Vec<String> = aer
                .nonzero
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            out.findings.push(
                Finding::new(
                    if correctable {
                        Severity::Warn
                    } else {
                        Severity::Fail
                    },
                    CHECK,
                    a.as_str(),
                    format!("{} {what} PCIe error(s) (AER)", aer.total),
                )
                .evidence(if detail.is_empty() {
                    format!("{file}: total {}", aer.total)
                } else {
                    format!("{file}: total {} ({})", aer.total, detail.join(", "))
                })
                .source(abs)
                .threshold(format!("> {limit}")),
            );
        }
        with_aer += aer_seen as usize;
        if let Some(f) = link(root, &dir, a, &mut with_link) {
            out.findings.push(f);
        }
    }
    if addrs.is_empty() {
        out.skipped = true;
        out.summary = format!("no PCI devices in {BASE}: PCIe not checked");
    } else {
        out.summary = format!(
            "{} PCI device(s), {with_aer} with AER counters, {with_link} with a PCIe link",
            addrs.len()
        );
    }
    out
}

/// A speed/width pair read from `dir`: (GT/s, width, the speed's text).
struct Link {
    speed: Option<(f64, String)>,
    width: Option<u32>,
}

/// The link attributes `prefix`_link_speed/width of `dir` (an absolute
/// path or one already under the root, `rooted`).
fn read_link(
    path: &dyn Fn(&str) -> std::path::PathBuf,
    prefix: &str,
    bad: &mut Vec<(String, String)>,
    dir: &str,
) -> Link {
    let speed = crate::root::read_trim(&path(&format!("{prefix}_link_speed")));
    let width = crate::root::read_trim(&path(&format!("{prefix}_link_width")));
    let speed = speed.and_then(|s| match parse_speed(&s) {
        Some(v) => Some((v, format!("{v:.1} GT/s"))),
        None if s.starts_with("Unknown") => None,
        None => {
            bad.push((
                format!("{dir}/{prefix}_link_speed"),
                format!("{} is not a link speed", read::quote(&s)),
            ));
            None
        }
    });
    let width = width.and_then(|w| match w.parse::<u32>() {
        Ok(0) | Ok(255) => None,
        Ok(n) => Some(n),
        Err(_) => {
            bad.push((
                format!("{dir}/{prefix}_link_width"),
                format!("{} is not a link width", read::quote(&w)),
            ));
            None
        }
    });
    Link { speed, width }
}

fn link(root: &Root, dir: &str, addr: &str, with_link: &mut usize) -> Option<Finding> {
    let mut bad = Vec::new();
    let here = |name: &str| root.at(&format!("{dir}/{name}"));
    let cur = read_link(&here, "current", &mut bad, dir);
    let max = read_link(&here, "max", &mut bad, dir);
    if let Some((abs, why)) = bad.into_iter().next() {
        return Some(Finding::unreadable(CHECK, addr, &abs, &why));
    }
    let (Some(cs), Some(cw), Some(ms), Some(mw)) = (&cur.speed, cur.width, &max.speed, max.width)
    else {
        return None;
    };
    *with_link += 1;
    // The port above caps what the link can reach.
    let (mut es, mut ew) = (ms.clone(), mw);
    let mut capped = Vec::new();
    if let Some(up) = std::fs::canonicalize(root.at(dir))
        .ok()
        .and_then(|p| p.parent().map(|p| p.to_path_buf()))
        .filter(|p| p.join("max_link_speed").exists())
    {
        let upath = |name: &str| up.join(name);
        let mut ignore = Vec::new();
        let port = read_link(&upath, "max", &mut ignore, dir);
        if let Some(ps) = port.speed.filter(|ps| ps.0 < es.0) {
            es = ps;
            capped.push("speed");
        }
        if let Some(pw) = port.width.filter(|&pw| pw < ew) {
            ew = pw;
            capped.push("width");
        }
    }
    if cs.0 >= es.0 && cw >= ew {
        return None;
    }
    let display = read::num::<String>(root, &format!("{dir}/class"))
        .ok()
        .is_some_and(|c| c.trim_start_matches("0x").starts_with("03"));
    let severity = if display && cw >= ew {
        Severity::Info
    } else {
        Severity::Warn
    };
    let of = format!("{} x{ew}", es.1);
    Some(
        Finding::new(
            severity,
            CHECK,
            addr,
            format!(
                "link trained at {} x{cw} of {of}{}",
                cs.1,
                if severity == Severity::Info {
                    " (a display controller slows its link when idle)"
                } else {
                    ""
                }
            ),
        )
        .evidence(format!(
            "current_link_speed = {}, current_link_width = {cw}, max_link_speed = {}, max_link_width = {mw}{}",
            cs.1,
            ms.1,
            if capped.is_empty() {
                String::new()
            } else {
                format!(" (upstream port caps the {})", capped.join(" and "))
            }
        ))
        .source(format!("{dir}/current_link_speed, {dir}/current_link_width"))
        .threshold(format!("at least {of}")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aer_files() {
        let cor = "RxErr 0\nBadTLP 3\nBadDLLP 1\nRollover 0\nTimeout 0\nNonFatalErr 0\n\
                   CorrIntErr 0\nHeaderOF 0\nTOTAL_ERR_COR 4\n";
        assert_eq!(
            parse_aer(cor),
            Ok(Aer {
                nonzero: vec![("BadTLP".into(), 3), ("BadDLLP".into(), 1)],
                total: 4
            })
        );
        // No total line: the sum.
        assert_eq!(parse_aer("DLP 2\nSDES 1\n").unwrap().total, 3);
        assert_eq!(parse_aer("TOTAL_ERR_FATAL 0\n").unwrap().total, 0);
        assert_eq!(
            parse_aer("RxErr 0\n\u{1}junk!\n"),
            Err("line \"\\u{1}junk!\" is not \"NAME COUNT\"".into())
        );
        assert!(parse_aer("RxErr x\n").is_err());
        assert!(parse_aer("RxErr 1 2\n").is_err());
        assert!(parse_aer("").is_err());
    }

    #[test]
    fn link_speeds() {
        assert_eq!(parse_speed("8.0 GT/s PCIe"), Some(8.0));
        assert_eq!(parse_speed("2.5 GT/s"), Some(2.5));
        assert_eq!(parse_speed("16 GT/s"), Some(16.0));
        assert_eq!(parse_speed("Unknown"), None);
        assert_eq!(parse_speed("fast"), None);
    }
}
