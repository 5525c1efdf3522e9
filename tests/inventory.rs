//! `speediso inventory` on fixture trees (`--root`): a tree captured from a
//! real machine (fixtures/sysroot/), and synthetic sysfs trees with a tiny
//! pci.ids that exercise lspci's naming fallbacks, compared with lspci run
//! on the same tree.

mod inventory_common;

use inventory_common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/sysroot")
        .join(name)
}

fn disk<'a>(inv: &'a Value, name: &str) -> &'a Value {
    inv["disks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no disk {name}"))
}

const FC: &str = "firecracker-epyc";

/// Every captured machine.
const FIXTURES: &[&str] = &[FC];

/// A Firecracker microVM (KVM, AMD EPYC, virtio disk and NIC, no DMI).
#[test]
fn firecracker_fixture_values() {
    let root = fixture(FC);
    let inv = inventory(
        &[
            "--root",
            root.to_str().unwrap(),
            "--cmdline",
            "quiet BOOTIF=01-02-FC-00-00-00-01",
        ],
        &[],
    );
    let keys: Vec<&String> = inv.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "boot_mode",
            "cpu",
            "disks",
            "dmi",
            "kernel",
            "memory",
            "nics",
            "pci"
        ]
    );
    // And in this order in the document itself.
    let text = output(Command::new(BIN).args([
        "--root",
        root.to_str().unwrap(),
        "--cmdline",
        "",
        "inventory",
        "--json",
    ]));
    let top: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("  \"")?.split('"').next())
        .collect();
    assert_eq!(
        top,
        [
            "pci",
            "cpu",
            "memory",
            "dmi",
            "disks",
            "nics",
            "boot_mode",
            "kernel"
        ]
    );

    let pci = inv["pci"].as_array().unwrap();
    assert_eq!(pci.len(), 6);
    let nic = &pci[3];
    assert_eq!(nic["address"], "0000:00:03.0");
    assert_eq!(nic["vendor_id"], "1af4");
    assert_eq!(nic["device_id"], "1041");
    assert_eq!(nic["class_id"], "0200");
    assert_eq!(nic["revision"], "01");
    assert_eq!(nic["driver"], "virtio-pci");
    assert_eq!(nic["numa_node"], Value::Null);
    let host_bridge = &pci[0];
    assert_eq!(host_bridge["vendor_id"], "8086");
    assert_eq!(host_bridge["subsystem_vendor"], Value::Null);
    if let Some(ids) = system_pci_ids() {
        // Names from the system's pci.ids, the same one lspci reads.
        let inv = inventory(&["--root", root.to_str().unwrap()], &["--pci-ids", ids]);
        let p = &inv["pci"];
        assert_eq!(p[3]["vendor"], "Red Hat, Inc.");
        assert_eq!(p[3]["device"], "Virtio 1.0 network device");
        assert_eq!(p[3]["class"], "Network controller");
        assert_eq!(p[3]["subclass"], "Ethernet controller");
        assert_eq!(p[0]["vendor"], "Intel Corporation");
        // 8086:0d57 is not in pci.ids: lspci's fallback.
        assert_eq!(p[0]["device"], "Device 0d57");
        assert_eq!(p[1]["subclass"], "Unassigned class [ffff]");
    } else {
        have_file("/usr/share/misc/pci.ids");
    }

    let cpu = &inv["cpu"];
    assert_eq!(cpu["model"], "AMD EPYC");
    assert_eq!(cpu["vendor"], "AuthenticAMD");
    assert_eq!(cpu["threads"], 2);
    assert_eq!(cpu["cores"], 2);
    assert_eq!(cpu["sockets"], 1);
    assert_eq!(cpu["mhz_max"], Value::Null);
    assert!(cpu["flags"]
        .as_array()
        .unwrap()
        .contains(&Value::from("avx512f")));
    let l3 = cpu["caches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "L3")
        .unwrap();
    assert_eq!(l3["total_bytes"], 32u64 << 20);
    assert_eq!(l3["instances"], 1);
    assert_eq!(cpu["numa_nodes"][0]["cpus"], "0-1");

    let mem = &inv["memory"];
    let meminfo = std::fs::read_to_string(root.join("proc/meminfo")).unwrap();
    let kb: u64 = meminfo
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(mem["total_bytes"], kb * 1024);
    assert_eq!(mem["dimms"], Value::Array(vec![]));
    assert!(mem["note"].as_str().unwrap().contains("no SMBIOS tables"));
    assert!(inv["dmi"]["note"].as_str().unwrap().contains("absent"));
    assert_eq!(inv["dmi"]["system_serial"], Value::Null);

    let names: Vec<&str> = inv["disks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    // Unused loop devices are not listed (as lsblk does); zram0 is.
    assert_eq!(names, ["vda", "zram0"]);
    let vda = disk(&inv, "vda");
    assert_eq!(vda["size_bytes"], 274877906944u64);
    assert_eq!(vda["serial"], "overlayblk");
    assert_eq!(vda["transport"], "virtio");
    assert_eq!(vda["rotational"], true);
    assert_eq!(vda["logical_sector_size"], 512);
    assert_eq!(vda["physical_sector_size"], 4096);
    assert_eq!(vda["in_use"], true);
    assert_eq!(vda["mountpoints"], serde_json::json!(["/"]));
    // No /dev in the tree: the type comes from mountinfo, and says so.
    assert_eq!(vda["fs"]["type"], "ext4");
    assert_eq!(vda["fs"]["source"], "mountinfo");
    assert_eq!(disk(&inv, "zram0")["in_use"], false);

    let nics = inv["nics"].as_array().unwrap();
    assert_eq!(nics.len(), 1, "only NICs with a device: {nics:?}");
    let eth0 = &nics[0];
    assert_eq!(eth0["name"], "eth0");
    assert_eq!(eth0["mac"], "02:fc:00:00:00:01");
    assert_eq!(eth0["driver"], "virtio_net");
    assert_eq!(eth0["pci_address"], "0000:00:03.0");
    assert_eq!(eth0["mtu"], 1400);
    assert_eq!(eth0["carrier"], true);
    assert_eq!(eth0["speed_mbps"], Value::Null);
    assert_eq!(eth0["boot"], true);
    // IPv6 from the tree's /proc/net/if_inet6; IPv4 only on the live system.
    assert_eq!(
        eth0["addresses"],
        serde_json::json!(["fe80::fc:ff:fe00:1/64", "fd00::2/64"])
    );

    assert_eq!(inv["boot_mode"]["mode"], "bios");
    assert_eq!(inv["boot_mode"]["boot_mac"], "02:fc:00:00:00:01");
    assert_eq!(inv["kernel"]["release"], "6.18.44-fc-v669");
}

/// lspci reads the same captured tree (its sysfs backend, the captured
/// config space) and must print the same list.
#[test]
fn fixture_pci_equals_lspci_on_the_tree() {
    if !have("lspci") {
        return;
    }
    let Some(ids) = system_pci_ids() else {
        have_file("/usr/share/misc/pci.ids");
        return;
    };
    for name in FIXTURES {
        let root = fixture(name);
        let inv = inventory(&["--root", root.to_str().unwrap()], &["--pci-ids", ids]);
        let sysfs = format!("sysfs.path={}/sys/bus/pci", root.display());
        let n = compare_pci(
            &inv["pci"],
            &[
                "-A",
                "linux-sysfs",
                "-O",
                &sysfs,
                "-O",
                "hwdb.disable=1",
                "-i",
                ids,
            ],
        );
        assert!(n > 0);
    }
}

/// lsblk reads the same captured tree (`--sysroot`): same disks, sizes,
/// models and serials (where lsblk finds one).
#[test]
fn fixture_disks_equal_lsblk_on_the_tree() {
    if !have("lsblk") {
        return;
    }
    let root = fixture(FC);
    let inv = inventory(&["--root", root.to_str().unwrap()], &[]);
    let out = output(
        Command::new("lsblk")
            .args([
                "-J",
                "-b",
                "-d",
                "-o",
                "NAME,SIZE,MODEL,SERIAL,RO,RM,ROTA",
                "--sysroot",
            ])
            .arg(&root),
    );
    let theirs: Value = serde_json::from_str(&out).unwrap();
    let theirs = theirs["blockdevices"].as_array().unwrap();
    assert_eq!(theirs.len(), inv["disks"].as_array().unwrap().len());
    for t in theirs {
        let d = disk(&inv, t["name"].as_str().unwrap());
        assert_eq!(d["size_bytes"], t["size"]);
        assert_eq!(d["model"], t["model"]);
        assert_eq!(d["read_only"], t["ro"]);
        assert_eq!(d["removable"], t["rm"]);
        assert_eq!(d["rotational"], t["rota"]);
        if !t["serial"].is_null() {
            assert_eq!(d["serial"], t["serial"]);
        }
    }
}

// --- synthetic trees: lspci's naming rules -------------------------------

const TINY_IDS: &str = "\
# A tiny pci.ids for the fallback rules.
1234  Acme Corp
\t0001  Widget
\t\t1234 0001  Widget Own Subsys
\t\t5678 00aa  Widget for Other
\t0002  Gadget
5678  Other Inc.
S 5678
\t0bbb  Generic Sub
C 01  Mass storage controller
\t06  SATA controller
\t\t01  AHCI 1.0
C 02  Network controller
\t00  Ethernet controller
C ff  Unassigned class
";

struct Dev {
    addr: &'static str,
    vendor: u16,
    device: u16,
    sv: u16,
    sd: u16,
    class: u32,
    rev: u8,
}

/// Write a PCI function as sysfs shows it: attributes plus a 64-byte
/// config space header (type 0), which is what lspci reads.
fn write_dev(root: &Path, d: &Dev) {
    let dir = root.join("sys/bus/pci/devices").join(d.addr);
    std::fs::create_dir_all(&dir).unwrap();
    let w = |n: &str, v: String| std::fs::write(dir.join(n), v + "\n").unwrap();
    w("vendor", format!("0x{:04x}", d.vendor));
    w("device", format!("0x{:04x}", d.device));
    w("subsystem_vendor", format!("0x{:04x}", d.sv));
    w("subsystem_device", format!("0x{:04x}", d.sd));
    w("class", format!("0x{:06x}", d.class));
    w("revision", format!("0x{:02x}", d.rev));
    w("numa_node", "-1".into());
    let mut cfg = [0u8; 64];
    cfg[0..2].copy_from_slice(&d.vendor.to_le_bytes());
    cfg[2..4].copy_from_slice(&d.device.to_le_bytes());
    cfg[8] = d.rev;
    cfg[9] = d.class as u8;
    cfg[10] = (d.class >> 8) as u8;
    cfg[11] = (d.class >> 16) as u8;
    cfg[0x2c..0x2e].copy_from_slice(&d.sv.to_le_bytes());
    cfg[0x2e..0x30].copy_from_slice(&d.sd.to_le_bytes());
    std::fs::write(dir.join("config"), cfg).unwrap();
}

const DEVS: &[Dev] = &[
    // Known everything, subsystem entry under the device.
    Dev {
        addr: "0000:00:1f.2",
        vendor: 0x1234,
        device: 0x0001,
        sv: 0x1234,
        sd: 0x0001,
        class: 0x010601,
        rev: 2,
    },
    // Subsystem of another vendor, listed under the device.
    Dev {
        addr: "0000:00:02.0",
        vendor: 0x1234,
        device: 0x0001,
        sv: 0x5678,
        sd: 0x00aa,
        class: 0x020000,
        rev: 0,
    },
    // Unknown subclass of a known class; subsystem == device → device name.
    Dev {
        addr: "0000:00:03.0",
        vendor: 0x1234,
        device: 0x0002,
        sv: 0x1234,
        sd: 0x0002,
        class: 0x028000,
        rev: 1,
    },
    // Unknown device, unknown subsystem vendor, unknown class.
    Dev {
        addr: "0000:00:04.0",
        vendor: 0x1234,
        device: 0x0009,
        sv: 0x9999,
        sd: 0x0001,
        class: 0x123400,
        rev: 0,
    },
    // Unknown vendor, no subsystem.
    Dev {
        addr: "0000:0a:00.0",
        vendor: 0x4444,
        device: 0x0007,
        sv: 0x0000,
        sd: 0x0000,
        class: 0xff0000,
        rev: 0,
    },
    // Subsystem found only in the generic `S` block.
    Dev {
        addr: "0000:00:05.0",
        vendor: 0x1234,
        device: 0x0002,
        sv: 0x5678,
        sd: 0x0bbb,
        class: 0x010601,
        rev: 0,
    },
    // Subsystem vendor ffff: none; another domain.
    Dev {
        addr: "0001:00:00.0",
        vendor: 0x5678,
        device: 0x00ff,
        sv: 0xffff,
        sd: 0xffff,
        class: 0x020000,
        rev: 0,
    },
];

fn synthetic() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for d in DEVS {
        write_dev(dir.path(), d);
    }
    let ids = dir.path().join("tiny.ids");
    std::fs::write(&ids, TINY_IDS).unwrap();
    (dir, ids)
}

#[test]
fn synthetic_tree_lspci_fallbacks() {
    let (dir, ids) = synthetic();
    let inv = inventory(
        &["--root", dir.path().to_str().unwrap(), "--cmdline", ""],
        &["--pci-ids", ids.to_str().unwrap()],
    );
    let p = inv["pci"].as_array().unwrap();
    let by = |a: &str| p.iter().find(|x| x["address"] == a).unwrap();
    let addrs: Vec<&str> = p.iter().map(|x| x["address"].as_str().unwrap()).collect();
    assert_eq!(
        addrs,
        [
            "0000:00:02.0",
            "0000:00:03.0",
            "0000:00:04.0",
            "0000:00:05.0",
            "0000:00:1f.2",
            "0000:0a:00.0",
            "0001:00:00.0"
        ]
    );
    let want = [
        (
            "0000:00:1f.2",
            [
                "SATA controller",
                "Acme Corp",
                "Widget",
                "Acme Corp",
                "Widget Own Subsys",
            ],
        ),
        (
            "0000:00:02.0",
            [
                "Ethernet controller",
                "Acme Corp",
                "Widget",
                "Other Inc.",
                "Widget for Other",
            ],
        ),
        (
            "0000:00:03.0",
            [
                "Network controller [0280]",
                "Acme Corp",
                "Gadget",
                "Acme Corp",
                "Gadget",
            ],
        ),
        (
            "0000:00:04.0",
            [
                "Class 1234",
                "Acme Corp",
                "Device 0009",
                "Unknown vendor 9999",
                "Device 0001",
            ],
        ),
        (
            "0000:0a:00.0",
            [
                "Unassigned class [ff00]",
                "Vendor 4444",
                "Device 0007",
                "",
                "",
            ],
        ),
        (
            "0000:00:05.0",
            [
                "SATA controller",
                "Acme Corp",
                "Gadget",
                "Other Inc.",
                "Generic Sub",
            ],
        ),
        (
            "0001:00:00.0",
            ["Ethernet controller", "Other Inc.", "Device 00ff", "", ""],
        ),
    ];
    for (a, [class, v, d, sv, sd]) in want {
        let x = by(a);
        let s = |k: &str| x[k].as_str().unwrap_or("").to_string();
        assert_eq!(
            [
                s("subclass"),
                s("vendor"),
                s("device"),
                s("subsystem_vendor"),
                s("subsystem_device")
            ],
            [class, v, d, sv, sd],
            "{a}"
        );
    }
    assert_eq!(by("0000:00:1f.2")["prog_if_name"], "AHCI 1.0");
    assert_eq!(by("0000:00:1f.2")["class"], "Mass storage controller");
    assert_eq!(by("0000:00:04.0")["class"], Value::Null);

    // lspci on the same tree, with the same pci.ids, agrees field by field.
    if have("lspci") {
        let sysfs = format!("sysfs.path={}/sys/bus/pci", dir.path().display());
        compare_pci(
            &inv["pci"],
            &[
                "-A",
                "linux-sysfs",
                "-O",
                &sysfs,
                "-O",
                "hwdb.disable=1",
                "-i",
                ids.to_str().unwrap(),
            ],
        );
    }

    // The human form prints lspci's terse lines.
    let text = output(
        Command::new(BIN)
            .args(["--root", dir.path().to_str().unwrap(), "--cmdline", ""])
            .args(["inventory", "--pci-ids"])
            .arg(&ids),
    );
    assert!(
        text.contains("0000:00:1f.2 SATA controller: Acme Corp Widget (rev 02)"),
        "{text}"
    );
    assert!(
        text.contains("0000:00:04.0 Class 1234: Acme Corp Device 0009\n"),
        "{text}"
    );
    assert!(
        text.contains("0000:0a:00.0 Unassigned class [ff00]: Device 4444:0007\n"),
        "{text}"
    );
}

#[test]
fn missing_pci_ids_file_is_an_error_naming_it() {
    let out = Command::new(BIN)
        .args(["--root", "/nonexistent", "--cmdline", "", "inventory"])
        .args(["--pci-ids", "/nonexistent/pci.ids"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/pci.ids"));
}

/// The `inventory` task runs the step, whose result event carries the
/// same document.
#[test]
fn inventory_task_emits_result_event() {
    let root = fixture(FC);
    let run_dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "--root",
            root.to_str().unwrap(),
            "--cmdline",
            "quiet",
            "--run-dir",
        ])
        .arg(run_dir.path())
        .args(["run", "inventory", "--json"])
        .env_remove("SPEEDISO")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let result = events
        .iter()
        .find(|e| e["type"] == "result")
        .unwrap_or_else(|| panic!("no result event in {text}"));
    assert_eq!(result["step"], "inventory");
    let data = &result["data"];
    assert_eq!(data["cpu"]["model"], "AMD EPYC");
    assert_eq!(data["disks"][0]["name"], "vda");
    assert_eq!(data["pci"].as_array().unwrap().len(), 6);
    // The DIMM note is logged for the person reading the console.
    assert!(events
        .iter()
        .any(|e| e["type"] == "log" && e["message"].as_str().unwrap_or("").contains("SMBIOS")));
    let finished = events.iter().find(|e| e["type"] == "run_finished").unwrap();
    assert_eq!(finished["exit_status"], 0);
}
