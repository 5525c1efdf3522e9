//! PCI devices from /sys/bus/pci/devices, named from pci.ids the way
//! `lspci` names them. Only sysfs attributes are read (no config space), so
//! it works without root and on fixture trees.

use super::pciids::PciIds;
use super::sysfs::{link_name, read_trim};
use crate::root::Root;
use serde::Serialize;
use std::path::Path;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PciDevice {
    /// Domain form, as `lspci -D` prints it: `0000:00:03.0`.
    pub address: String,
    /// Ids as 4 (class: 4, prog_if and revision: 2) lowercase hex digits.
    pub vendor_id: String,
    pub device_id: String,
    pub subsystem_vendor_id: Option<String>,
    pub subsystem_device_id: Option<String>,
    /// Base class and subclass (`0200`), as lspci -nn shows it.
    pub class_id: String,
    pub prog_if: String,
    pub revision: String,
    /// Names exactly as lspci prints them, fallbacks included
    /// (`Device 1234`, `Unknown vendor 1234`).
    pub vendor: String,
    pub device: String,
    /// `null` when the device has no subsystem ids (0000 or ffff), where
    /// lspci -mm prints empty strings.
    pub subsystem_vendor: Option<String>,
    pub subsystem_device: Option<String>,
    /// The base class name from pci.ids (`Network controller`).
    pub class: Option<String>,
    /// lspci's class column: the subclass name, else `<class> [xxxx]`,
    /// else `Class xxxx`.
    pub subclass: String,
    /// Programming interface name, when pci.ids has one.
    pub prog_if_name: Option<String>,
    pub driver: Option<String>,
    pub numa_node: Option<u32>,
    pub iommu_group: Option<u32>,
    /// PCIe link, when the device has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<PciLink>,
    /// Whether pci.ids named the vendor and the device (for lspci's terse
    /// pair form); not part of the JSON.
    #[serde(skip)]
    pub named: (bool, bool),
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PciLink {
    /// As the kernel words it, e.g. `8.0 GT/s PCIe`.
    pub speed: Option<String>,
    pub width: Option<u32>,
    pub max_speed: Option<String>,
    pub max_width: Option<u32>,
}

fn hex_attr(dir: &Path, name: &str) -> Option<u32> {
    let s = read_trim(&dir.join(name))?;
    u32::from_str_radix(s.trim_start_matches("0x"), 16).ok()
}

/// Sort key of a `dddd:bb:dd.f` address (the domain may be wider than 4).
pub fn addr_key(a: &str) -> (u32, u32, u32, u32) {
    let mut it = a.split([':', '.']);
    let mut n = || {
        it.next()
            .and_then(|x| u32::from_str_radix(x, 16).ok())
            .unwrap_or(u32::MAX)
    };
    (n(), n(), n(), n())
}

fn link_speed(s: Option<String>) -> Option<String> {
    // "Unknown" (no link) is as good as absent.
    s.filter(|v| !v.starts_with("Unknown"))
}

fn link_width(dir: &Path, name: &str) -> Option<u32> {
    read_trim(&dir.join(name))?
        .parse()
        .ok()
        .filter(|&w: &u32| w > 0 && w != 255)
}

/// All PCI functions under `root`, in lspci's order (domain, bus, slot,
/// function).
pub fn collect(root: &Root, ids: &PciIds) -> Vec<PciDevice> {
    let base = root.at("/sys/bus/pci/devices");
    let Ok(rd) = std::fs::read_dir(&base) else {
        return Vec::new();
    };
    let mut addrs: Vec<String> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    addrs.sort_by_key(|a| addr_key(a));
    addrs
        .into_iter()
        .filter_map(|a| device(&base.join(&a), a, ids))
        .collect()
}

fn device(dir: &Path, address: String, ids: &PciIds) -> Option<PciDevice> {
    let v = hex_attr(dir, "vendor")? as u16;
    let d = hex_attr(dir, "device")? as u16;
    let class24 = hex_attr(dir, "class").unwrap_or(0);
    let class16 = (class24 >> 8) as u16;
    let prog_if = class24 as u8;
    let rev = hex_attr(dir, "revision").unwrap_or(0) as u8;
    let sv = hex_attr(dir, "subsystem_vendor").map(|x| x as u16);
    let sd = hex_attr(dir, "subsystem_device").map(|x| x as u16);
    // lspci shows subsystem names only for a real subsystem vendor.
    let sub = match (sv, sd) {
        (Some(sv), Some(sd)) if sv != 0 && sv != 0xffff => Some((sv, sd)),
        _ => None,
    };
    let (base_class, sub_class) = ((class16 >> 8) as u8, class16 as u8);
    let link = {
        let l = PciLink {
            speed: link_speed(read_trim(&dir.join("current_link_speed"))),
            width: link_width(dir, "current_link_width"),
            max_speed: link_speed(read_trim(&dir.join("max_link_speed"))),
            max_width: link_width(dir, "max_link_width"),
        };
        (l.speed.is_some() || l.width.is_some() || l.max_speed.is_some()).then_some(l)
    };
    Some(PciDevice {
        vendor_id: format!("{v:04x}"),
        device_id: format!("{d:04x}"),
        subsystem_vendor_id: sv.map(|x| format!("{x:04x}")),
        subsystem_device_id: sd.map(|x| format!("{x:04x}")),
        class_id: format!("{class16:04x}"),
        prog_if: format!("{prog_if:02x}"),
        revision: format!("{rev:02x}"),
        vendor: ids.lspci_vendor(v),
        device: ids.lspci_device(v, d),
        subsystem_vendor: sub.map(|(sv, _)| ids.lspci_subsystem_vendor(sv)),
        subsystem_device: sub.map(|(sv, sd)| ids.lspci_subsystem_device(v, d, sv, sd)),
        class: ids.class_name(base_class),
        subclass: ids.lspci_class(class16),
        prog_if_name: ids.prog_if_name(base_class, sub_class, prog_if),
        driver: link_name(&dir.join("driver")),
        numa_node: read_trim(&dir.join("numa_node")).and_then(|s| s.parse().ok()),
        iommu_group: link_name(&dir.join("iommu_group")).and_then(|s| s.parse().ok()),
        link,
        named: (
            ids.vendor_name(v).is_some(),
            ids.device_name(v, d).is_some(),
        ),
        address,
    })
}

/// One line like `lspci -D` prints: `0000:00:03.0 Ethernet controller:
/// Red Hat, Inc. Virtio network device (rev 01)`. The vendor/device pair
/// follows lspci: `V D`, `V Device 1234`, or `Device 1234:5678`.
pub fn lspci_line(p: &PciDevice) -> String {
    let pair = match p.named {
        (true, true) => format!("{} {}", p.vendor, p.device),
        (true, false) => format!("{} Device {}", p.vendor, p.device_id),
        (false, _) => format!("Device {}:{}", p.vendor_id, p.device_id),
    };
    let mut s = format!("{} {}: {}", p.address, p.subclass, pair);
    if p.revision != "00" {
        s.push_str(&format!(" (rev {})", p.revision));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_order_is_numeric() {
        let mut v = vec![
            "10000:00:00.0",
            "0000:0a:00.0",
            "0000:00:1f.3",
            "0000:00:02.0",
        ];
        v.sort_by_key(|a| addr_key(a));
        assert_eq!(
            v,
            [
                "0000:00:02.0",
                "0000:00:1f.3",
                "0000:0a:00.0",
                "10000:00:00.0"
            ]
        );
    }
}
