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
//! | `lldp_neighbor_sysname_<nic>`, `lldp_neighbor_chassisid_<nic>`, `lldp_neighbor_portid_<nic>`, `lldp_neighbor_portdescr_<nic>`, `lldp_neighbor_pvid_<nic>`, `lldp_neighbor_mtu_<nic>`, `lldp_neighbor_mngaddr_ipv4_<nic>`, `lldp_neighbor_mngaddr_ipv6_<nic>` | `nics[].lldp.neighbors[0]` (the names of the `lldp` Facter facts Foreman Discovery reports) |
//! | `nic_driver_<nic>`, `nic_driver_version_<nic>`, `nic_firmware_version_<nic>`, `nic_bus_info_<nic>` | `nics[]` (ethtool driver info) |
//! | `ipmi_ipaddress`, `ipmi_ipaddress_source`, `ipmi_subnet_mask`, `ipmi_gateway`, `ipmi_macaddress`, `ipmi_vlan_id` | `bmc.lan[]`, the first LAN channel (ipmitool's words for the source, as the `ipmi` Facter facts Foreman reads) |
//! | `ipmi<channel>_ipaddress`, ... | every LAN channel |
//! | `ipmi_manufacturer`, `ipmi_firmware_version`, `ipmi_version`, `ipmi_product_id` | `bmc.device_id` |
//!
//! Later steps add facts under `speediso_` (`run_facts`), so the operator
//! sees on the host in Foreman what the boot found, not only what it has:
//!
//! | fact | from |
//! |---|---|
//! | `speediso_task`, `speediso_run_id`, `speediso_outcome`, `speediso_finished_at` | the run (`run_finished`) |
//! | `speediso_step_<step>_outcome` | every step's `step_finished` |
//! | `speediso_health_verdict`, `speediso_health_fail_count`, `speediso_health_warn_count`, `speediso_health_failing` | the last `health` step (`speediso_<step>_verdict` for each) |
//! | `speediso_<step>_verdict` | any result with a `verdict` (burn-in parts) |
//! | `speediso_<step>_<figure>` | every number in a `bench.*` result (`speediso_bench_cpu_events_per_second_all`) |
//! | `speediso_wipe_outcome`, `speediso_wipe_disks_wiped`, `speediso_wipe_disks_failed`, `speediso_wipe_certificate_ids`, `speediso_wipe_server_certificate_id`, `speediso_wipe_<disk>_outcome/_method/_certificate_id` | the `wipe` result |

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
        for (fact, field) in [
            ("nic_driver", "driver"),
            ("nic_driver_version", "driver_version"),
            ("nic_firmware_version", "firmware_version"),
            ("nic_bus_info", "bus_info"),
        ] {
            put(&format!("{fact}_{name}"), s(&n[field]));
        }
        if let Some(nb) = n["lldp"]["neighbors"].as_array().and_then(|a| a.first()) {
            for (fact, field) in [
                ("sysname", "system_name"),
                ("chassisid", "chassis_id"),
                ("portid", "port_id"),
                ("portdescr", "port_description"),
                ("pvid", "port_vlan_id"),
                ("mtu", "max_frame_size"),
            ] {
                put(&format!("lldp_neighbor_{fact}_{name}"), s(&nb[field]));
            }
            let addrs: Vec<&str> = nb["management_addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            let v4 = addrs
                .iter()
                .find(|a| a.parse::<std::net::Ipv4Addr>().is_ok());
            let v6 = addrs
                .iter()
                .find(|a| a.parse::<std::net::Ipv6Addr>().is_ok());
            put(
                &format!("lldp_neighbor_mngaddr_ipv4_{name}"),
                v4.map(|a| a.to_string()),
            );
            put(
                &format!("lldp_neighbor_mngaddr_ipv6_{name}"),
                v6.map(|a| a.to_string()),
            );
        }
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
    bmc_facts(&inv["bmc"], &mut f);
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

/// The BMC's facts in the names the `ipmi` Facter facts use (Foreman
/// makes the host's BMC interface from `ipmi_ipaddress` and
/// `ipmi_macaddress`).
fn bmc_facts(bmc: &Value, f: &mut BTreeMap<String, String>) {
    let id = &bmc["device_id"];
    for (fact, field) in [
        ("ipmi_manufacturer", "manufacturer"),
        ("ipmi_firmware_version", "firmware_version"),
        ("ipmi_version", "ipmi_version"),
        ("ipmi_product_id", "product_id"),
    ] {
        if let Some(v) = s(&id[field]) {
            f.insert(fact.into(), v);
        }
    }
    let mut lan: Vec<&Value> = bmc["lan"].as_array().into_iter().flatten().collect();
    lan.sort_by_key(|c| c["channel"].as_u64().unwrap_or(u64::MAX));
    for (i, c) in lan.iter().enumerate() {
        let Some(ch) = c["channel"].as_u64() else {
            continue;
        };
        let source = c["ip_address_source"].as_str().map(|v| {
            match v {
                "static" => "Static Address",
                "dhcp" => "DHCP Address",
                "bios" => "BIOS Assigned Address",
                "other" => "Other",
                _ => "Unspecified",
            }
            .to_string()
        });
        let vals = [
            ("ipaddress", s(&c["ip_address"])),
            ("ipaddress_source", source),
            ("subnet_mask", s(&c["subnet_mask"])),
            ("gateway", s(&c["default_gateway"])),
            (
                "macaddress",
                s(&c["mac_address"]).map(|m| m.to_ascii_lowercase()),
            ),
            ("vlan_id", s(&c["vlan_id"])),
        ];
        for (k, v) in vals {
            let Some(v) = v else { continue };
            if i == 0 {
                f.insert(format!("ipmi_{k}"), v.clone());
            }
            f.insert(format!("ipmi{ch}_{k}"), v);
        }
    }
}

/// A fact name Foreman and Facter accept: lower case, `[a-z0-9_]`.
pub fn fact_name(parts: &[&str]) -> String {
    let mut out = String::new();
    for p in parts.iter().filter(|p| !p.is_empty()) {
        if !out.is_empty() {
            out.push('_');
        }
        out.extend(p.chars().map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        }));
    }
    out
}

/// The longest value a free-text fact gets (findings, reasons): Foreman
/// keeps facts in a string column, and a fact page of kilobytes helps no one.
const TEXT_MAX: usize = 500;

fn clip(s: String) -> String {
    if s.len() <= TEXT_MAX {
        return s;
    }
    let mut end = TEXT_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// Every number in `v` (nested objects, depth 3), path parts joined by `_`.
fn numbers(prefix: &str, v: &Value, depth: u32, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Number(n) => {
            out.insert(prefix.to_string(), n.to_string());
        }
        Value::Object(m) if depth < 3 => {
            for (k, v) in m {
                numbers(&fact_name(&[prefix, k]), v, depth + 1, out);
            }
        }
        _ => {}
    }
}

/// The facts one step's result adds (`module` is the step's module,
/// `step` its id: they differ where a task runs a module twice, like
/// burn-in's `health-before` and `health-after`).
pub fn result_facts(module: &str, step: &str, data: &Value) -> BTreeMap<String, String> {
    let mut f = BTreeMap::new();
    let base = fact_name(&["speediso", step]);
    if let Some(v) = data["verdict"].as_str() {
        f.insert(format!("{base}_verdict"), v.to_string());
    }
    if module == "health" {
        let Some(v) = data["verdict"].as_str() else {
            return f;
        };
        f.insert("speediso_health_verdict".into(), v.to_string());
        for k in ["fail", "warn"] {
            if let Some(n) = data["counts"][k].as_u64() {
                f.insert(format!("speediso_health_{k}_count"), n.to_string());
            }
        }
        let failing: Vec<String> = data["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|x| x["severity"] == "fail")
            .map(|x| {
                let c = x["component"].as_str().unwrap_or("");
                let m = x["message"].as_str().unwrap_or("");
                if c.is_empty() {
                    m.to_string()
                } else {
                    format!("{c}: {m}")
                }
            })
            .collect();
        f.insert("speediso_health_failing".into(), clip(failing.join("; ")));
    } else if module.starts_with("bench.") {
        numbers(&base, data, 0, &mut f);
    } else if module == "wipe" {
        let Some(disks) = data["disks"].as_array() else {
            return f;
        };
        let certs = data["certificates"].as_array().cloned().unwrap_or_default();
        let wiped = disks.iter().filter(|d| d["outcome"] == "wiped").count();
        let failed = disks.len() - wiped;
        let outcome = if failed == 0 && data["failed"].as_array().is_none_or(|a| a.is_empty()) {
            "wiped"
        } else {
            "failed"
        };
        f.insert("speediso_wipe_outcome".into(), outcome.into());
        f.insert("speediso_wipe_disks_wiped".into(), wiped.to_string());
        f.insert("speediso_wipe_disks_failed".into(), failed.to_string());
        // One certificate per disk in `disks`' order, then the server's.
        let ids: Vec<String> = certs.iter().filter_map(|c| s(&c["id"])).collect();
        if !ids.is_empty() {
            f.insert("speediso_wipe_certificate_ids".into(), ids.join(","));
        }
        if certs.len() == disks.len() + 1 {
            if let Some(id) = certs.last().and_then(|c| s(&c["id"])) {
                f.insert("speediso_wipe_server_certificate_id".into(), id);
            }
        }
        for (i, d) in disks.iter().enumerate() {
            let dev = s(&d["device"]).unwrap_or_default();
            let name = dev.rsplit('/').next().unwrap_or(&dev);
            let key = fact_name(&["speediso_wipe", name]);
            if let Some(o) = s(&d["outcome"]) {
                f.insert(format!("{key}_outcome"), o);
            }
            if let Some(m) = s(&d["method"]) {
                f.insert(format!("{key}_method"), m);
            }
            if let Some(id) = certs.get(i).and_then(|c| s(&c["id"])) {
                f.insert(format!("{key}_certificate_id"), id);
            }
        }
    }
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
                 "addresses": ["fe80::1/64", "10.20.30.40/24"], "boot": true,
                 "driver": "bnxt_en", "driver_version": "6.1.0", "firmware_version": "223.0.161.0/pkg 22.31.13.70",
                 "bus_info": "0000:41:00.0",
                 "lldp": {"frames": 3, "malformed_frames": 0, "neighbors": [{
                     "chassis_id": "70:b3:d5:00:11:22", "port_id": "Ethernet12", "system_name": "leaf-r12.dc1",
                     "port_description": "server r12-07 eth0", "port_vlan_id": 100, "max_frame_size": 9216,
                     "management_addresses": ["2001:db8::12", "10.0.12.1"]}]}},
                {"name": "eno2", "mac": "b0:26:28:aa:bb:02", "addresses": [], "boot": false}
            ],
            "boot_mode": {"mode": "uefi", "boot_mac": null},
            "kernel": {"arch": "x86_64", "release": "6.1.0"},
            "bmc": {
                "device_id": {"manufacturer": "Dell", "firmware_version": "7.10", "ipmi_version": "2.0", "product_id": 256},
                "lan": [
                    {"channel": 8, "ip_address_source": "static", "ip_address": "10.9.9.9"},
                    {"channel": 1, "ip_address_source": "dhcp", "ip_address": "10.0.5.17",
                     "subnet_mask": "255.255.255.0", "default_gateway": "10.0.5.1",
                     "mac_address": "D0:94:66:AA:00:01", "vlan_id": null}
                ]
            }
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
            ("nic_driver_eno1", "bnxt_en"),
            ("nic_driver_version_eno1", "6.1.0"),
            ("nic_firmware_version_eno1", "223.0.161.0/pkg 22.31.13.70"),
            ("nic_bus_info_eno1", "0000:41:00.0"),
            ("lldp_neighbor_sysname_eno1", "leaf-r12.dc1"),
            ("lldp_neighbor_chassisid_eno1", "70:b3:d5:00:11:22"),
            ("lldp_neighbor_portid_eno1", "Ethernet12"),
            ("lldp_neighbor_portdescr_eno1", "server r12-07 eth0"),
            ("lldp_neighbor_pvid_eno1", "100"),
            ("lldp_neighbor_mtu_eno1", "9216"),
            ("lldp_neighbor_mngaddr_ipv4_eno1", "10.0.12.1"),
            ("lldp_neighbor_mngaddr_ipv6_eno1", "2001:db8::12"),
            ("ipmi_ipaddress", "10.0.5.17"),
            ("ipmi_ipaddress_source", "DHCP Address"),
            ("ipmi_subnet_mask", "255.255.255.0"),
            ("ipmi_gateway", "10.0.5.1"),
            ("ipmi_macaddress", "d0:94:66:aa:00:01"),
            ("ipmi1_ipaddress", "10.0.5.17"),
            ("ipmi8_ipaddress", "10.9.9.9"),
            ("ipmi8_ipaddress_source", "Static Address"),
            ("ipmi_manufacturer", "Dell"),
            ("ipmi_firmware_version", "7.10"),
            ("ipmi_version", "2.0"),
            ("ipmi_product_id", "256"),
        ];
        for (k, v) in want {
            assert_eq!(f.get(k).map(String::as_str), Some(v), "{k}");
        }
        assert!(!f.contains_key("ipaddress_eno2"));
        assert!(!f.contains_key("ipmi_vlan_id"), "VLAN off: no fact");
        assert!(!f
            .keys()
            .any(|k| k.ends_with("_eno2") && k.starts_with("lldp")));
        // No inventory NIC marked: the host id's boot MAC.
        let f = facts(&serde_json::json!({}), Some("52:54:00:12:34:56"));
        assert_eq!(f["discovery_bootif"], "52:54:00:12:34:56");
        assert_eq!(netmask(0), "0.0.0.0");
        assert_eq!(netmask(32), "255.255.255.255");
    }

    #[test]
    fn fact_names_and_long_text() {
        assert_eq!(
            fact_name(&["speediso", "health-after"]),
            "speediso_health_after"
        );
        assert_eq!(
            fact_name(&["speediso", "", "bench.disk"]),
            "speediso_bench_disk"
        );
        // Clipped on a character boundary, never mid-UTF-8.
        let long = "\u{e9}".repeat(TEXT_MAX);
        let c = clip(long);
        assert!(c.ends_with("...") && c.len() <= TEXT_MAX + 3);
        // Garbage results add nothing and never panic.
        for v in [
            serde_json::json!(null),
            serde_json::json!([1, 2]),
            serde_json::json!("x"),
        ] {
            for m in ["health", "bench.cpu", "wipe", "burnin.cpu"] {
                let f = result_facts(m, m, &v);
                assert!(f.is_empty(), "{m}: {f:?}");
            }
        }
    }
}
