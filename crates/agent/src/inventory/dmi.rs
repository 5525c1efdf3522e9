//! System, board, BIOS and chassis identity from /sys/class/dmi/id (the
//! kernel's decoding of SMBIOS types 0-3). Firmware placeholders such as
//! "To be filled by O.E.M." become `null`, as in the event `host` field.

use crate::root::{read_attr, Root};
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Dmi {
    pub system_vendor: Option<String>,
    pub system_product: Option<String>,
    pub system_version: Option<String>,
    pub system_serial: Option<String>,
    pub system_uuid: Option<String>,
    pub system_sku: Option<String>,
    pub system_family: Option<String>,
    pub board_vendor: Option<String>,
    pub board_name: Option<String>,
    pub board_version: Option<String>,
    pub board_serial: Option<String>,
    pub bios_vendor: Option<String>,
    pub bios_version: Option<String>,
    pub bios_date: Option<String>,
    pub chassis_vendor: Option<String>,
    pub chassis_type: Option<String>,
    pub chassis_serial: Option<String>,
    pub chassis_asset_tag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// SMBIOS chassis types (DSP0134 7.4.1), 1-based.
const CHASSIS: &[&str] = &[
    "Other",
    "Unknown",
    "Desktop",
    "Low Profile Desktop",
    "Pizza Box",
    "Mini Tower",
    "Tower",
    "Portable",
    "Laptop",
    "Notebook",
    "Hand Held",
    "Docking Station",
    "All in One",
    "Sub Notebook",
    "Space-saving",
    "Lunch Box",
    "Main Server Chassis",
    "Expansion Chassis",
    "Sub Chassis",
    "Bus Expansion Chassis",
    "Peripheral Chassis",
    "RAID Chassis",
    "Rack Mount Chassis",
    "Sealed-case PC",
    "Multi-system",
    "CompactPCI",
    "AdvancedTCA",
    "Blade",
    "Blade Enclosure",
    "Tablet",
    "Convertible",
    "Detachable",
    "IoT Gateway",
    "Embedded PC",
    "Mini PC",
    "Stick PC",
];

pub fn chassis_name(code: u32) -> Option<String> {
    // Bit 7 is the "chassis lock present" flag.
    let i = (code & 0x7f) as usize;
    CHASSIS.get(i.checked_sub(1)?).map(|s| s.to_string())
}

pub fn collect(root: &Root) -> Dmi {
    let d = root.at("/sys/class/dmi/id");
    if !d.exists() {
        return Dmi {
            note: Some("no DMI data (/sys/class/dmi/id absent)".into()),
            ..Default::default()
        };
    }
    let a = |n: &str| read_attr(&d.join(n));
    Dmi {
        system_vendor: a("sys_vendor"),
        system_product: a("product_name"),
        system_version: a("product_version"),
        system_serial: a("product_serial"),
        system_uuid: a("product_uuid").map(|u| u.to_ascii_lowercase()),
        system_sku: a("product_sku"),
        system_family: a("product_family"),
        board_vendor: a("board_vendor"),
        board_name: a("board_name"),
        board_version: a("board_version"),
        board_serial: a("board_serial"),
        bios_vendor: a("bios_vendor"),
        bios_version: a("bios_version"),
        bios_date: a("bios_date"),
        chassis_vendor: a("chassis_vendor"),
        chassis_type: a("chassis_type")
            .and_then(|t| t.parse().ok())
            .and_then(chassis_name),
        chassis_serial: a("chassis_serial"),
        chassis_asset_tag: a("chassis_asset_tag"),
        note: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chassis() {
        assert_eq!(chassis_name(23).as_deref(), Some("Rack Mount Chassis"));
        assert_eq!(chassis_name(1).as_deref(), Some("Other"));
        assert_eq!(
            chassis_name(0x80 | 17).as_deref(),
            Some("Main Server Chassis")
        );
        assert_eq!(chassis_name(0), None);
        assert_eq!(chassis_name(99), None);
    }
}
