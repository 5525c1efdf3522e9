//! `speediso inventory` on the machine the tests run on, against the real
//! tools: the PCI list equals `lspci -mm -nn -D` (and `lspci -mm -D` for
//! the names), the disk list equals `lsblk -J -b -d`, the CPU count and
//! model equal lscpu's, total memory equals /proc/meminfo, IPv4 addresses
//! equal `ip -j addr`.

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
