//! NIC counters: /sys/class/net/*/ of interfaces with a `device` link (not
//! lo, bridges, bonds, VLANs or tunnels): carrier_changes and
//! statistics/{rx_errors, tx_errors, rx_crc_errors} (errors) and
//! {rx_dropped, tx_dropped} (drops), each held to its threshold (WARN
//! above). A link slower than the port could run is not judged: sysfs has
//! the negotiated speed but not the port's supported modes (that needs
//! ethtool's link-mode netlink query), so it is left to a later check.

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
    if nics.is_empty() {
        out.skipped = true;
        out.summary = format!("no NICs with a device in {BASE}: NIC counters not checked");
    } else {
        out.summary = format!("{} NIC(s): {}", nics.len(), nics.join(", "));
    }
    out
}
