//! ECC memory errors from EDAC: /sys/devices/system/edac/mc/mc*/, per DIMM
//! (`dimm*/` or `rank*/`: dimm_ce_count, dimm_ue_count, dimm_label,
//! dimm_location) where the driver gives them, else per chip-select row
//! (`csrow*/`: ce_count, ue_count, ch*_dimm_label), else per controller.
//! Errors the driver could not place on a DIMM are the controller's
//! ce_noinfo_count and ue_noinfo_count. Uncorrected: FAIL; corrected above
//! the threshold: WARN. No EDAC at all is an info line: memory ECC is not
//! checked, which is not a PASS for it.

use super::read::{self, Val};
use super::{Finding, Out, Severity, Thresholds};
use crate::root::Root;

const BASE: &str = "/sys/devices/system/edac/mc";
const CHECK: &str = "edac";

/// One place errors are counted: a DIMM, a csrow or a whole controller.
struct Unit {
    component: String,
    dir: String,
    ce: &'static str,
    ue: &'static str,
}

pub fn check(root: &Root, t: &Thresholds) -> Out {
    let mut out = Out::default();
    let mcs = read::numbered(root, BASE, "mc");
    if mcs.is_empty() {
        out.skipped = true;
        out.summary = format!("no EDAC memory controller in {BASE}: ECC errors not checked");
        out.findings.push(
            Finding::new(
                Severity::Info,
                CHECK,
                "memory",
                "no EDAC memory controller: ECC error counts are not available (no ECC, no EDAC \
                 driver for this platform, or a VM), so memory errors are not checked",
            )
            .source(BASE),
        );
        return out;
    }
    let mut dimms = 0;
    for (_, mc) in &mcs {
        let dir = format!("{BASE}/{mc}");
        let mut units = Vec::new();
        for (_, d) in read::numbered(root, &dir, "dimm")
            .into_iter()
            .chain(read::numbered(root, &dir, "rank"))
        {
            let ddir = format!("{dir}/{d}");
            let label = label(root, &format!("{ddir}/dimm_label"));
            let location = read::text(root, &format!("{ddir}/dimm_location"))
                .ok()
                .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
                .filter(|s| !s.is_empty());
            units.push(Unit {
                component: component(label.as_deref(), mc, &d, location.as_deref()),
                dir: ddir,
                ce: "dimm_ce_count",
                ue: "dimm_ue_count",
            });
        }
        if units.is_empty() {
            for (_, row) in read::numbered(root, &dir, "csrow") {
                let rdir = format!("{dir}/{row}");
                let labels: Vec<String> = crate::root::dir_names(&root.at(&rdir))
                    .into_iter()
                    .filter(|n| n.starts_with("ch") && n.ends_with("_dimm_label"))
                    .filter_map(|n| label(root, &format!("{rdir}/{n}")))
                    .collect();
                let l = (!labels.is_empty()).then(|| labels.join(", "));
                units.push(Unit {
                    component: component(l.as_deref(), mc, &row, None),
                    dir: rdir,
                    ce: "ce_count",
                    ue: "ue_count",
                });
            }
        }
        dimms += units.len();
        if units.is_empty() {
            units.push(Unit {
                component: mc.clone(),
                dir: dir.clone(),
                ce: "ce_count",
                ue: "ue_count",
            });
        } else {
            // Errors the driver could not place on a DIMM.
            units.push(Unit {
                component: format!("{mc} (not placed on a DIMM)"),
                dir: dir.clone(),
                ce: "ce_noinfo_count",
                ue: "ue_noinfo_count",
            });
        }
        for u in &units {
            judge(root, u, t, &mut out.findings);
        }
    }
    out.summary = format!(
        "{} memory controller(s), {dimms} DIMM/csrow counter(s)",
        mcs.len()
    );
    out
}

/// A label as the kernel gives it; the default `mc#0...` labels are kept
/// (they still say where), empty ones are `None`.
fn label(root: &Root, abs: &str) -> Option<String> {
    read::text(root, abs)
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

fn component(label: Option<&str>, mc: &str, unit: &str, location: Option<&str>) -> String {
    match (label, location) {
        (Some(l), _) => format!("{l} ({mc}/{unit})"),
        (None, Some(loc)) => format!("{mc}/{unit} ({loc})"),
        (None, None) => format!("{mc}/{unit}"),
    }
}

fn judge(root: &Root, u: &Unit, t: &Thresholds, findings: &mut Vec<Finding>) {
    for (file, uncorrected) in [(u.ue, true), (u.ce, false)] {
        let abs = format!("{}/{file}", u.dir);
        match read::num::<u64>(root, &abs) {
            Val::Ok(n) if uncorrected && n > 0 => findings.push(
                Finding::new(
                    Severity::Fail,
                    CHECK,
                    &u.component,
                    format!("{n} uncorrected memory error(s)"),
                )
                .evidence(format!("{file} = {n}"))
                .source(abs)
                .threshold("> 0"),
            ),
            Val::Ok(n) if !uncorrected && n > t.max_corrected_errors => findings.push(
                Finding::new(
                    Severity::Warn,
                    CHECK,
                    &u.component,
                    format!("{n} corrected memory error(s)"),
                )
                .evidence(format!("{file} = {n}"))
                .source(abs)
                .threshold(format!("> {}", t.max_corrected_errors)),
            ),
            Val::Ok(_) => {}
            // The noinfo counters are optional; a DIMM that went away is fine.
            Val::Absent if file.contains("noinfo") || !read::dir_exists(root, &u.dir) => {}
            Val::Absent => findings.push(Finding::unreadable(CHECK, &u.component, &abs, "missing")),
            Val::NoData => findings.push(Finding::unreadable(CHECK, &u.component, &abs, "no data")),
            Val::Bad(why) => findings.push(Finding::unreadable(CHECK, &u.component, &abs, &why)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(dir: &str) -> Unit {
        Unit {
            component: "DIMM_A1 (mc0/dimm0)".into(),
            dir: dir.into(),
            ce: "dimm_ce_count",
            ue: "dimm_ue_count",
        }
    }

    /// A DIMM whose directory vanished mid-read is skipped; one whose
    /// directory is there but whose counter is not is reported.
    #[test]
    fn vanished_and_missing_counters() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        let dir = "/sys/devices/system/edac/mc/mc0/dimm0";
        let mut f = Vec::new();
        judge(&root, &unit(dir), &Thresholds::default(), &mut f);
        assert!(f.is_empty(), "{f:?}");
        std::fs::create_dir_all(root.at(dir)).unwrap();
        std::fs::write(root.at(&format!("{dir}/dimm_ce_count")), "2\n").unwrap();
        judge(&root, &unit(dir), &Thresholds::default(), &mut f);
        let got: Vec<(Severity, &str, &str)> = f
            .iter()
            .map(|f| (f.severity, f.message.as_str(), f.evidence.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (Severity::Warn, "unreadable", "missing"),
                (
                    Severity::Warn,
                    "2 corrected memory error(s)",
                    "dimm_ce_count = 2"
                ),
            ]
        );
    }
}
