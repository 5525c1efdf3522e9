//! Foreman discovery facts: the inventory result mapped to the flat,
//! Facter-style facts Foreman's discovery plugin takes at
//! `POST /api/v2/discovered_hosts/facts` (`{"facts": {...}}`), so a host
//! booted with speediso shows up as a discovered host in the Foreman that
//! already runs the boot. Credentials go in the URL
//! (`speediso.foreman=https://user:password@foreman.example.com`).
//!
//! Mapping (inventory field → fact):
//!
//! | fact | inventory |
//! |---|---|
//! | `discovery_bootif`, `macaddress` | `boot_mode.boot_mac`, else the NIC with `boot`, else the first NIC's MAC |
//! | `discovery_bootip`, `ipaddress` | first IPv4 of that NIC |
//! | `interfaces` | NIC names, comma-separated |
//! | `macaddress_<nic>`, `ipaddress_<nic>`, `netmask_<nic>`, `mtu_<nic>`, `speed_<nic>` | per NIC |
//! | `manufacturer`, `productname`, `serialnumber`, `uuid` | `dmi.system_vendor/product/serial/uuid` |
//! | `boardmanufacturer`, `boardproductname`, `boardserialnumber` | `dmi.board_*` |
//! | `bios_vendor`, `bios_version`, `bios_release_date` | `dmi.bios_*` |
//! | `processorcount`, `physicalprocessorcount`, `processor0` | `cpu.threads`, `cpu.sockets`, `cpu.model` |
//! | `memorysize_mb`, `memorysize` | `memory.total_bytes` |
//! | `blockdevices`, `blockdevice_<d>_size/_model/_vendor` | `disks[]` |
//! | `architecture`, `hardwaremodel`, `kernelrelease` | `kernel.arch`, `kernel.release` |
//! | `discovery_version` | `speediso <version>` |

use serde_json::Value;
use std::collections::BTreeMap;

pub const FACTS_PATH: &str = "/api/v2/discovered_hosts/facts";

fn s(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// IPv4 prefix length as a dotted netmask.
fn netmask(prefix: u32) -> String {
    let m: u32 = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix.min(32))
    };
    std::net::Ipv4Addr::from(m).to_string()
}

/// The facts for an inventory result; `boot_mac` from the event's host
/// id is the fallback for the boot interface.
pub fn facts(inv: &Value, boot_mac: Option<&str>) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            f.insert(k.to_string(), v);
        }
    };
    let dmi = &inv["dmi"];
    for (fact, field) in [
        ("manufacturer", "system_vendor"),
        ("productname", "system_product"),
        ("serialnumber", "system_serial"),
        ("uuid", "system_uuid"),
        ("boardmanufacturer", "board_vendor"),
        ("boardproductname", "board_name"),
        ("boardserialnumber", "board_serial"),
        ("bios_vendor", "bios_vendor"),
        ("bios_version", "bios_version"),
        ("bios_release_date", "bios_date"),
    ] {
        put(fact, s(&dmi[field]));
    }
    let cpu = &inv["cpu"];
    put("processorcount", s(&cpu["threads"]));
    put("physicalprocessorcount", s(&cpu["sockets"]));
    put("processor0", s(&cpu["model"]));
    if let Some(b) = inv["memory"]["total_bytes"].as_u64() {
        put(
            "memorysize_mb",
            Some(format!("{:.2}", b as f64 / 1048576.0)),
        );
        put(
            "memorysize",
            Some(format!("{:.2} GB", b as f64 / 1073741824.0)),
        );
    }
    let nics = inv["nics"].as_array().cloned().unwrap_or_default();
    let names: Vec<String> = nics.iter().filter_map(|n| s(&n["name"])).collect();
    if !names.is_empty() {
        put("interfaces", Some(names.join(",")));
    }
    for n in &nics {
        let Some(name) = s(&n["name"]) else { continue };
        put(&format!("macaddress_{name}"), s(&n["mac"]));
        put(&format!("mtu_{name}"), s(&n["mtu"]));
        put(&format!("speed_{name}"), s(&n["speed_mbps"]));
        let v4 = n["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find(|a| {
                a.split('/')
                    .next()
                    .is_some_and(|ip| ip.parse::<std::net::Ipv4Addr>().is_ok())
            });
        if let Some(a) = v4 {
            let (ip, prefix) = a.split_once('/').unwrap_or((a, "32"));
            put(&format!("ipaddress_{name}"), Some(ip.to_string()));
            if let Ok(p) = prefix.parse() {
                put(&format!("netmask_{name}"), Some(netmask(p)));
            }
        }
    }
    let norm = |m: &str| m.to_ascii_lowercase();
    let boot = s(&inv["boot_mode"]["boot_mac"])
        .or_else(|| {
            nics.iter()
                .find(|n| n["boot"] == true)
                .and_then(|n| s(&n["mac"]))
        })
        .or_else(|| boot_mac.map(str::to_string))
        .or_else(|| nics.iter().find_map(|n| s(&n["mac"])))
        .map(|m| norm(&m));
    if let Some(mac) = &boot {
        put("discovery_bootif", Some(mac.clone()));
        put("macaddress", Some(mac.clone()));
        let nic = nics
            .iter()
            .find(|n| s(&n["mac"]).is_some_and(|m| norm(&m) == *mac));
        if let Some(name) = nic.and_then(|n| s(&n["name"])) {
            if let Some(ip) = f.get(&format!("ipaddress_{name}")).cloned() {
                f.insert("discovery_bootip".into(), ip.clone());
                f.insert("ipaddress".into(), ip);
            }
        }
    }
    let disks = inv["disks"].as_array().cloned().unwrap_or_default();
    let dnames: Vec<String> = disks.iter().filter_map(|d| s(&d["name"])).collect();
    if !dnames.is_empty() {
        f.insert("blockdevices".into(), dnames.join(","));
    }
    for d in &disks {
        let Some(name) = s(&d["name"]) else { continue };
        for (suffix, field) in [
            ("size", "size_bytes"),
            ("model", "model"),
            ("vendor", "vendor"),
        ] {
            if let Some(v) = s(&d[field]) {
                f.insert(format!("blockdevice_{name}_{suffix}"), v);
            }
        }
    }
    if let Some(a) = s(&inv["kernel"]["arch"]) {
        f.insert("architecture".into(), a.clone());
        f.insert("hardwaremodel".into(), a);
    }
    if let Some(r) = s(&inv["kernel"]["release"]) {
        f.insert("kernelrelease".into(), r);
    }
    f.insert(
        "discovery_version".into(),
        concat!("speediso ", env!("CARGO_PKG_VERSION")).into(),
    );
    f
}

/// The request body Foreman takes.
pub fn body(facts: &BTreeMap<String, String>) -> Value {
    serde_json::json!({ "facts": facts })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_an_inventory() {
        let inv = serde_json::json!({
            "cpu": {"model": "AMD EPYC 7302 16-Core Processor", "sockets": 2, "threads": 64},
            "memory": {"total_bytes": 68719476736u64},
            "dmi": {"system_vendor": "Dell Inc.", "system_product": "PowerEdge R6525",
                    "system_serial": "CZ123", "system_uuid": "4c4c4544-0031", "bios_version": "2.1.3"},
            "disks": [{"name": "nvme0n1", "size_bytes": 960197124096u64, "model": "SAMSUNG MZQL2960"}],
            "nics": [
                {"name": "eno1", "mac": "B0:26:28:AA:BB:01", "mtu": 1500, "speed_mbps": 25000,
                 "addresses": ["fe80::1/64", "10.20.30.40/24"], "boot": true},
                {"name": "eno2", "mac": "b0:26:28:aa:bb:02", "addresses": [], "boot": false}
            ],
            "boot_mode": {"mode": "uefi", "boot_mac": null},
            "kernel": {"arch": "x86_64", "release": "6.1.0"}
        });
        let f = facts(&inv, None);
        let want = [
            ("discovery_bootif", "b0:26:28:aa:bb:01"),
            ("macaddress", "b0:26:28:aa:bb:01"),
            ("discovery_bootip", "10.20.30.40"),
            ("ipaddress_eno1", "10.20.30.40"),
            ("netmask_eno1", "255.255.255.0"),
            ("interfaces", "eno1,eno2"),
            ("macaddress_eno2", "b0:26:28:aa:bb:02"),
            ("speed_eno1", "25000"),
            ("manufacturer", "Dell Inc."),
            ("productname", "PowerEdge R6525"),
            ("serialnumber", "CZ123"),
            ("processorcount", "64"),
            ("physicalprocessorcount", "2"),
            ("processor0", "AMD EPYC 7302 16-Core Processor"),
            ("memorysize_mb", "65536.00"),
            ("memorysize", "64.00 GB"),
            ("blockdevices", "nvme0n1"),
            ("blockdevice_nvme0n1_size", "960197124096"),
            ("blockdevice_nvme0n1_model", "SAMSUNG MZQL2960"),
            ("architecture", "x86_64"),
            ("kernelrelease", "6.1.0"),
        ];
        for (k, v) in want {
            assert_eq!(f.get(k).map(String::as_str), Some(v), "{k}");
        }
        assert!(!f.contains_key("ipaddress_eno2"));
        // No inventory NIC marked: the host id's boot MAC.
        let f = facts(&serde_json::json!({}), Some("52:54:00:12:34:56"));
        assert_eq!(f["discovery_bootif"], "52:54:00:12:34:56");
        assert_eq!(netmask(0), "0.0.0.0");
        assert_eq!(netmask(32), "255.255.255.255");
    }
}
