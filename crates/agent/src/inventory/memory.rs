//! Memory: the kernel's total (/proc/meminfo) and the installed modules
//! from SMBIOS type 17, read from /sys/firmware/dmi/tables (root only on
//! most kernels). When the tables are absent, `dimms` is empty and `note`
//! says why.

use super::smbios::{self, Dimm};
use crate::root::Root;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Memory {
    /// MemTotal from /proc/meminfo, in bytes.
    pub total_bytes: Option<u64>,
    /// Populated memory devices.
    pub dimms: Vec<Dimm>,
    /// Memory device slots SMBIOS describes, populated or not.
    pub slots: Option<usize>,
    /// Sum of the populated DIMMs' sizes.
    pub installed_bytes: Option<u64>,
    pub ecc: Option<String>,
    pub smbios_version: Option<String>,
    /// Locators of the slots SMBIOS lists as empty (for `health`'s
    /// expected DIMM count; not part of the inventory document).
    #[serde(skip)]
    pub empty_slots: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `MemTotal` in bytes from the text of /proc/meminfo.
pub fn mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub fn collect(root: &Root) -> Memory {
    let mut m = Memory {
        total_bytes: std::fs::read_to_string(root.at("/proc/meminfo"))
            .ok()
            .and_then(|t| mem_total(&t)),
        ..Default::default()
    };
    let dir = root.at("/sys/firmware/dmi/tables");
    let (ep, table) = match (
        std::fs::read(dir.join("smbios_entry_point")),
        std::fs::read(dir.join("DMI")),
    ) {
        (Ok(ep), Ok(t)) => (ep, t),
        (Err(e), _) | (_, Err(e)) => {
            m.note = Some(if e.kind() == std::io::ErrorKind::NotFound {
                "no SMBIOS tables (/sys/firmware/dmi/tables absent): DIMMs unknown".into()
            } else {
                format!("cannot read SMBIOS tables in /sys/firmware/dmi/tables: {e}")
            });
            return m;
        }
    };
    let Some((ver, len)) = smbios::entry_point(&ep) else {
        m.note = Some("SMBIOS entry point not recognised: DIMMs unknown".into());
        return m;
    };
    m.smbios_version = Some(format!("{}.{}", ver.major, ver.minor));
    // The entry point gives the table's (for 3.x: maximum) length.
    let n = if len == 0 {
        table.len()
    } else {
        len.min(table.len())
    };
    let table = &table[..n];
    let structs = smbios::structures(table);
    let all: Vec<Dimm> = structs.iter().filter_map(smbios::dimm).collect();
    m.slots = Some(all.len());
    m.ecc = structs.iter().find_map(smbios::ecc);
    let (dimms, empty): (Vec<Dimm>, Vec<Dimm>) =
        all.into_iter().partition(|d| d.size_bytes.is_some());
    m.dimms = dimms;
    m.empty_slots = empty
        .into_iter()
        .map(|d| d.locator.unwrap_or_else(|| "?".into()))
        .collect();
    m.installed_bytes = Some(m.dimms.iter().filter_map(|d| d.size_bytes).sum());
    if m.slots == Some(0) {
        m.note = Some("SMBIOS has no memory device (type 17) entries".into());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_total() {
        assert_eq!(
            mem_total("MemTotal:       24668920 kB\nMemFree: 1 kB\n"),
            Some(24668920 * 1024)
        );
        assert_eq!(mem_total("MemFree: 1 kB\n"), None);
    }
}
