//! `speediso inventory` on the machine the tests run on, against the real
//! tools: the PCI list equals `lspci -mm -nn -D` (and `lspci -mm -D` for
//! the names), the disk list equals `lsblk -J -b -d`, the CPU count and
//! model equal lscpu's, total memory equals /proc/meminfo, IPv4 addresses
//! equal `ip -j addr`, NIC driver information, permanent MAC and link
//! modes equal `ethtool -i`, `ethtool -P` and `ethtool IF`.

mod inventory_common;

use inventory_common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn live() -> Value {
    inventory(&[], &[])
}

#[test]
fn pci_equals_lspci() {
    if !have("lspci") {
        return;
    }
    if system_pci_ids().is_none() {
        have_file("/usr/share/misc/pci.ids");
        return;
    }
    let inv = live();
    let n = compare_pci(&inv["pci"], &[]);
    eprintln!("compared {n} PCI functions with lspci");
    // Our one-line form is lspci's terse one (plus the driver).
    let terse = output(Command::new("lspci").arg("-D"));
    let human = output(Command::new(BIN).arg("inventory"));
    for line in terse.lines() {
        assert!(
            human.contains(line),
            "missing lspci line {line:?} in:\n{human}"
        );
    }
}

/// lsblk and we read /sys at slightly different moments; loop devices of
/// concurrently running tests may come and go, so retry a few times.
#[test]
fn disks_equal_lsblk() {
    if !have("lsblk") {
        return;
    }
    let mut last = String::new();
    for _ in 0..5 {
        let inv = live();
        let out = output(Command::new("lsblk").args([
            "-J",
            "-b",
            "-d",
            "-o",
            "NAME,SIZE,MODEL,SERIAL,RO,RM,ROTA,LOG-SEC,PHY-SEC",
        ]));
        let theirs: Value = serde_json::from_str(&out).unwrap();
        let theirs = theirs["blockdevices"].as_array().unwrap().clone();
        let ours = inv["disks"].as_array().unwrap().clone();
        let mut a: Vec<&str> = ours.iter().map(|d| d["name"].as_str().unwrap()).collect();
        let mut b: Vec<&str> = theirs.iter().map(|d| d["name"].as_str().unwrap()).collect();
        a.sort();
        b.sort();
        if a != b {
            last = format!("ours {a:?} lsblk {b:?}");
            std::thread::sleep(std::time::Duration::from_millis(200));
            continue;
        }
        for t in &theirs {
            let name = t["name"].as_str().unwrap();
            let d = ours.iter().find(|d| d["name"] == name).unwrap();
            assert_eq!(d["size_bytes"], t["size"], "{name} size");
            // lsblk prints the attribute untrimmed; we trim it.
            let model = t["model"].as_str().map(|m| m.trim().to_string());
            assert_eq!(
                d["model"].as_str().map(str::to_string),
                model,
                "{name} model"
            );
            match t["serial"].as_str() {
                Some(s) => assert_eq!(d["serial"], s.trim(), "{name} serial"),
                // Without udev lsblk has no serial for virtio-blk, SATA or
                // USB disks; ours must then come from the kernel: the
                // virtio `serial`, the SCSI VPD page 0x80, or the USB
                // device's `serial`.
                None => {
                    if let Some(ours) = d["serial"].as_str() {
                        assert!(
                            serial_in_sysfs(name, ours),
                            "{name}: serial {ours:?} is not in sysfs and lsblk has none"
                        );
                    }
                }
            }
            assert_eq!(d["read_only"], t["ro"], "{name} ro");
            assert_eq!(d["removable"], t["rm"], "{name} rm");
            assert_eq!(d["rotational"], t["rota"], "{name} rota");
            assert_eq!(d["logical_sector_size"], t["log-sec"], "{name} log-sec");
            assert_eq!(d["physical_sector_size"], t["phy-sec"], "{name} phy-sec");
        }
        return;
    }
    panic!("disk names never matched lsblk: {last}");
}

/// Does `serial` appear in one of the sysfs files a disk serial can come
/// from?
fn serial_in_sysfs(name: &str, serial: &str) -> bool {
    let dir = std::path::PathBuf::from(format!("/sys/block/{name}"));
    let mut files = vec![dir.join("serial"), dir.join("device/vpd_pg80")];
    if let Ok(real) = std::fs::canonicalize(dir.join("device")) {
        files.extend(real.ancestors().map(|a| a.join("serial")));
    }
    files
        .iter()
        .any(|f| std::fs::read(f).is_ok_and(|b| String::from_utf8_lossy(&b).contains(serial)))
}

/// lscpu -J: a list of {field, data}, nested under `children` in newer
/// versions.
fn lscpu_field(v: &Value, name: &str) -> Option<String> {
    for e in v.as_array()? {
        if e["field"] == name {
            return e["data"].as_str().map(str::to_string);
        }
        if let Some(x) = e.get("children").and_then(|c| lscpu_field(c, name)) {
            return Some(x);
        }
    }
    None
}

#[test]
fn cpu_equals_lscpu() {
    if !have("lscpu") {
        return;
    }
    let inv = live();
    let l: Value = serde_json::from_str(&output(Command::new("lscpu").arg("-J"))).unwrap();
    let l = &l["lscpu"];
    let cpus: u64 = lscpu_field(l, "CPU(s):").unwrap().parse().unwrap();
    assert_eq!(inv["cpu"]["threads"], cpus);
    assert_eq!(
        inv["cpu"]["model"].as_str(),
        lscpu_field(l, "Model name:").as_deref()
    );
    if let Some(v) = lscpu_field(l, "Vendor ID:") {
        assert_eq!(inv["cpu"]["vendor"], v);
    }
    if let (Some(s), Some(c), Some(t)) = (
        lscpu_field(l, "Socket(s):"),
        lscpu_field(l, "Core(s) per socket:"),
        lscpu_field(l, "Thread(s) per core:"),
    ) {
        let (s, c, t): (u64, u64, u64) =
            (s.parse().unwrap(), c.parse().unwrap(), t.parse().unwrap());
        assert_eq!(inv["cpu"]["sockets"], s);
        assert_eq!(inv["cpu"]["cores"], s * c);
        assert_eq!(inv["cpu"]["threads_per_core"], t);
    }
}

#[test]
fn memory_equals_meminfo() {
    let inv = live();
    let total = mem_total_bytes(Path::new("/proc/meminfo"));
    assert_eq!(inv["memory"]["total_bytes"], total);
    // SMBIOS: present tables give DIMMs or a note; absent ones a note.
    let tables = std::path::Path::new("/sys/firmware/dmi/tables/DMI").exists();
    if !tables {
        assert!(inv["memory"]["note"].as_str().unwrap().contains("SMBIOS"));
    }
}

#[test]
fn ipv4_addresses_equal_ip_addr() {
    if !have("ip") {
        return;
    }
    let inv = live();
    let v: Value = serde_json::from_str(&output(Command::new("ip").args(["-j", "addr"]))).unwrap();
    for nic in inv["nics"].as_array().unwrap() {
        let name = nic["name"].as_str().unwrap();
        let link = v
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["ifname"] == name)
            .unwrap();
        assert_eq!(nic["mac"], link["address"], "{name} mac");
        assert_eq!(nic["mtu"], link["mtu"], "{name} mtu");
        let theirs: Vec<String> = link["addr_info"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["family"] == "inet")
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
            .collect();
        let ours: Vec<String> = nic["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .filter(|a| !a.contains(':'))
            .collect();
        assert_eq!(ours, theirs, "{name} IPv4");
    }
}

#[test]
fn boot_mode_matches_firmware() {
    let inv = live();
    let want = if std::path::Path::new("/sys/firmware/efi").exists() {
        "uefi"
    } else {
        "bios"
    };
    assert_eq!(inv["boot_mode"]["mode"], want);
}

/// `ethtool -i IF` as key → value (empty values as `null`); `None` when
/// ethtool cannot get driver information (loopback).
fn ethtool_i(ns: Option<&str>, ifname: &str) -> Option<serde_json::Map<String, Value>> {
    let mut c = ethtool_cmd(ns);
    let out = c.args(["-i", ifname]).output().unwrap();
    if !out.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                l.split_once(": ")
                    .or_else(|| l.strip_suffix(':').map(|k| (k, "")))
            })
            .map(|(k, v)| {
                let v = v.trim();
                (
                    k.to_string(),
                    if v.is_empty() {
                        Value::Null
                    } else {
                        Value::from(v)
                    },
                )
            })
            .collect(),
    )
}

fn ethtool_cmd(ns: Option<&str>) -> Command {
    match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "ethtool"]);
            c
        }
        None => Command::new("ethtool"),
    }
}

/// The link modes of `ethtool IF`'s "`what` link modes:" lines.
fn ethtool_modes(text: &str, what: &str) -> Vec<String> {
    let key = format!("{what} link modes:");
    let mut modes = Vec::new();
    let mut lines = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with(&key));
    if let Some(first) = lines.next() {
        let rest = first.trim_start().trim_start_matches(&key);
        modes.extend(rest.split_whitespace().map(String::from));
        for l in lines.take_while(|l| !l.contains(':')) {
            modes.extend(l.split_whitespace().map(String::from));
        }
    }
    if modes == ["Not", "reported"] {
        modes.clear();
    }
    modes
}

/// Our NIC fields against `ethtool -i`, `ethtool -P` and `ethtool IF`.
fn compare_ethtool(ns: Option<&str>, nic: &Value) {
    let name = nic["name"].as_str().unwrap();
    match ethtool_i(ns, name) {
        Some(i) => {
            assert_eq!(nic["driver"], i["driver"], "{name} driver");
            assert_eq!(nic["driver_version"], i["version"], "{name} version");
            assert_eq!(
                nic["firmware_version"], i["firmware-version"],
                "{name} firmware"
            );
            assert_eq!(nic["bus_info"], i["bus-info"], "{name} bus info");
        }
        None => {
            assert!(nic["driver_version"].is_null(), "{name}: {nic}");
            assert!(nic["bus_info"].is_null(), "{name}: {nic}");
        }
    }
    let p = ethtool_cmd(ns).args(["-P", name]).output().unwrap();
    let perm = String::from_utf8_lossy(&p.stdout);
    let perm = perm.trim().trim_start_matches("Permanent address:").trim();
    if p.status.success() && perm != "00:00:00:00:00:00" && perm != "not set" {
        assert_eq!(nic["permanent_mac"], perm, "{name} permanent MAC");
    } else {
        assert!(nic["permanent_mac"].is_null(), "{name}: {nic}");
    }
    let out = ethtool_cmd(ns).arg(name).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for (ours, theirs) in [
        ("supported_link_modes", "Supported"),
        ("advertised_link_modes", "Advertised"),
    ] {
        let ours: Vec<String> = nic[ours]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m.as_str().unwrap().to_string())
            .collect();
        assert_eq!(
            ours,
            ethtool_modes(&text, theirs),
            "{name} {theirs}:\n{text}"
        );
    }
}

#[test]
fn ethtool_modes_parse() {
    let t = "Settings for eth0:\n\tSupported ports: [ TP ]\n\
             \tSupported link modes:   10baseT/Half 10baseT/Full\n\
             \t                        1000baseT/Full\n\
             \tSupported pause frame use: No\n\
             \tAdvertised link modes:  Not reported\n";
    assert_eq!(
        ethtool_modes(t, "Supported"),
        ["10baseT/Half", "10baseT/Full", "1000baseT/Full"]
    );
    assert!(ethtool_modes(t, "Advertised").is_empty());
}

/// Driver information, permanent MAC and link modes equal ethtool's: for
/// this machine's NICs, and for a veth pair and loopback in a network
/// namespace of this test's own (listed with `--nic`).
#[test]
fn nic_details_equal_ethtool() {
    if !have("ethtool") {
        return;
    }
    let inv = live();
    for nic in inv["nics"].as_array().unwrap() {
        compare_ethtool(None, nic);
    }
    let ns = format!("sisleth{}", std::process::id());
    let ok = Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        speediso_testsupport::missing("ip netns add failed: network namespaces need root");
        return;
    }
    struct Del(String);
    impl Drop for Del {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let _del = Del(ns.clone());
    let ip = |args: &[&str]| {
        let ok = Command::new("ip")
            .args(["-n", &ns])
            .args(args)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip {args:?}");
    };
    ip(&["link", "add", "ve0", "type", "veth", "peer", "name", "ve1"]);
    ip(&["link", "set", "ve0", "up"]);
    ip(&["link", "set", "ve1", "up"]);
    let text = output(
        Command::new("ip")
            .args(["netns", "exec", &ns, BIN, "--cmdline", ""])
            .args(["inventory", "--json", "--nic", "ve0", "--nic", "lo"]),
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    let nics = v["nics"].as_array().unwrap();
    let names: Vec<&str> = nics.iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["ve0", "lo"]);
    assert_eq!(nics[0]["driver"], "veth");
    for nic in nics {
        compare_ethtool(Some(&ns), nic);
    }
}
