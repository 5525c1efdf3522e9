//! NIC counters: /sys/class/net/*/ of interfaces with a `device` link (not
//! lo, bridges, bonds, VLANs or tunnels): carrier_changes and
//! statistics/{rx_errors, tx_errors, rx_crc_errors} (errors) and
//! {rx_dropped, tx_dropped} (drops), each held to its threshold (WARN
//! above). A link negotiated below the fastest mode the port supports is a
//! WARN (a wrong cable, optic or switch port): the negotiated speed from
//! sysfs, the supported and partner modes from ethtool's link settings
//! (`sys::ethtool`), so on the machine only: a fixture tree has no driver
//! to ask, and its links are not judged.

use super::read::{self, Val};
use super::{Finding, Out, Severity, Thresholds};
use crate::root::Root;

const BASE: &str = "/sys/class/net";
const CHECK: &str = "nic";

/// The physical NICs' names, naturally ordered.
pub fn physical(root: &Root) -> Vec<String> {
    let mut v: Vec<String> = crate::root::dir_names(&root.at(BASE))
        .into_iter()
        .filter(|n| n != "lo" && root.at(&format!("{BASE}/{n}/device")).exists())
        .collect();
    v.sort_by_key(|n| crate::inventory::sysfs::natural_key(n));
    v
}

pub fn check(root: &Root, t: &Thresholds) -> Out {
    let mut out = Out::default();
    let nics = physical(root);
    for n in &nics {
        let dir = format!("{BASE}/{n}");
        let counters = [
            (
                "carrier_changes",
                t.max_carrier_changes,
                "link state change(s)",
            ),
            ("statistics/rx_errors", t.max_nic_errors, "receive error(s)"),
            (
                "statistics/tx_errors",
                t.max_nic_errors,
                "transmit error(s)",
            ),
            (
                "statistics/rx_crc_errors",
                t.max_nic_errors,
                "CRC error(s) received",
            ),
            (
                "statistics/rx_dropped",
                t.max_nic_drops,
                "received frame(s) dropped",
            ),
            (
                "statistics/tx_dropped",
                t.max_nic_drops,
                "frame(s) to send dropped",
            ),
        ];
        for (file, limit, what) in counters {
            let abs = format!("{dir}/{file}");
            match read::num::<u64>(root, &abs) {
                Val::Ok(c) if c > limit => out.findings.push(
                    Finding::new(Severity::Warn, CHECK, n.as_str(), format!("{c} {what}"))
                        .evidence(format!("{file} = {c}"))
                        .source(abs)
                        .threshold(format!("> {limit}")),
                ),
                Val::Ok(_) => {}
                Val::Absent if !read::dir_exists(root, &dir) => {}
                Val::Absent => {
                    out.findings
                        .push(Finding::unreadable(CHECK, n.as_str(), &abs, "missing"))
                }
                Val::NoData => {
                    out.findings
                        .push(Finding::unreadable(CHECK, n.as_str(), &abs, "no data"))
                }
                Val::Bad(why) => {
                    out.findings
                        .push(Finding::unreadable(CHECK, n.as_str(), &abs, &why))
                }
            }
        }
    }
    let mut judged = 0;
    if root.is_system() {
        for n in &nics {
            if let Some(f) = slow_link(root, n) {
                out.findings.push(f);
            }
            judged += 1;
        }
    }
    if nics.is_empty() {
        out.skipped = true;
        out.summary = format!("no NICs with a device in {BASE}: NIC counters not checked");
    } else {
        out.summary = format!("{} NIC(s): {}", nics.len(), nics.join(", "));
        if judged > 0 {
            out.summary
                .push_str(&format!("; link speeds against the ports' modes: {judged}"));
        }
    }
    out
}

/// A NIC with carrier whose negotiated speed is below the fastest link
/// mode its port supports, naming what the partner advertised.
fn slow_link(root: &Root, n: &str) -> Option<Finding> {
    let dir = format!("{BASE}/{n}");
    if read::num::<u64>(root, &format!("{dir}/carrier")).ok() != Some(1) {
        return None;
    }
    let abs = format!("{dir}/speed");
    let speed = read::num::<i64>(root, &abs).ok().filter(|&s| s > 0)? as u64;
    let ls = crate::sys::ethtool::link_settings(n).ok()?;
    let max = crate::sys::ethtool::max_mbps(&ls.supported)? as u64;
    if speed >= max {
        return None;
    }
    let partner = match crate::sys::ethtool::max_mbps(&ls.lp_advertising) {
        Some(p) => format!("; the link partner advertises up to {p} Mb/s"),
        None => String::new(),
    };
    Some(
        Finding::new(
            Severity::Warn,
            CHECK,
            n,
            format!("linked at {speed} Mb/s; the port supports {max} Mb/s"),
        )
        .evidence(format!("speed = {speed}{partner}"))
        .source(format!("{abs}, ETHTOOL_GLINKSETTINGS"))
        .threshold(format!(">= {max} Mb/s")),
    )
}
