//! CPU thermal throttling: /sys/devices/system/cpu/cpu*/thermal_throttle/
//! core_throttle_count (per CPU) and package_throttle_count (per package;
//! every CPU of a package shows the same count, so it is reported once, by
//! topology/physical_package_id). Counts above the threshold warn. Intel
//! CPUs with the thermal interrupt only; elsewhere the check is skipped.

use super::read::{self, Val};
use super::{Finding, Out, Severity, Thresholds};
use crate::root::Root;
use std::collections::BTreeSet;

const BASE: &str = "/sys/devices/system/cpu";
const CHECK: &str = "throttle";

pub fn check(root: &Root, t: &Thresholds) -> Out {
    let mut out = Out::default();
    let mut cpus = 0;
    let mut packages = BTreeSet::new();
    for (n, cpu) in read::numbered(root, BASE, "cpu") {
        let dir = format!("{BASE}/{cpu}/thermal_throttle");
        if !read::dir_exists(root, &dir) {
            continue;
        }
        cpus += 1;
        let pkg =
            read::num::<u64>(root, &format!("{BASE}/{cpu}/topology/physical_package_id")).ok();
        for (file, component) in [
            ("core_throttle_count", Some(format!("CPU {n}"))),
            (
                "package_throttle_count",
                // One report a package (the first CPU seen of it).
                match pkg {
                    Some(p) if !packages.insert(p) => None,
                    Some(p) => Some(format!("package {p} (CPU {n})")),
                    None => Some(format!("package of CPU {n}")),
                },
            ),
        ] {
            let Some(component) = component else { continue };
            let abs = format!("{dir}/{file}");
            match read::num::<u64>(root, &abs) {
                Val::Ok(c) if c > t.max_throttle_count => out.findings.push(
                    Finding::new(
                        Severity::Warn,
                        CHECK,
                        component,
                        format!(
                            "thermally throttled {c} time(s) ({})",
                            if file.starts_with("core") {
                                "core"
                            } else {
                                "package"
                            }
                        ),
                    )
                    .evidence(format!("{file} = {c}"))
                    .source(abs)
                    .threshold(format!("> {}", t.max_throttle_count)),
                ),
                Val::Ok(_) => {}
                Val::Absent if !read::dir_exists(root, &dir) => {}
                Val::Absent => out
                    .findings
                    .push(Finding::unreadable(CHECK, component, &abs, "missing")),
                Val::NoData => out
                    .findings
                    .push(Finding::unreadable(CHECK, component, &abs, "no data")),
                Val::Bad(why) => out
                    .findings
                    .push(Finding::unreadable(CHECK, component, &abs, &why)),
            }
        }
    }
    if cpus == 0 {
        out.skipped = true;
        out.summary = "no thermal_throttle counters (not an Intel CPU with a thermal interrupt, or a VM): throttling not checked".into();
    } else {
        out.summary = format!(
            "{cpus} CPU(s), {} package(s) with throttle counters",
            packages.len().max(1)
        );
    }
    out
}
