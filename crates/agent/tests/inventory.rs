//! `speediso inventory` on fixture trees (`--root`): a tree captured from a
//! real machine (fixtures/sysroot/), and synthetic sysfs trees with a tiny
//! pci.ids that exercise lspci's naming fallbacks, compared with lspci run
//! on the same tree.

mod inventory_common;

use inventory_common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture(name: &str) -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .join("fixtures/sysroot")
        .join(name)
}

/// Every member of the object `want` has that value in `obj` (which may
/// have more).
#[track_caller]
fn assert_members(obj: &Value, want: Value) {
    for (k, v) in want.as_object().unwrap() {
        assert_eq!(&obj[k], v, "{k} in {obj}");
    }
}

/// The member of the array `list` whose `name` is `name`.
fn named<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {list}"))
}

/// The names of the disks an inventory lists, in its order.
fn disk_names(inv: &Value) -> Vec<&str> {
    let disks = inv["disks"].as_array().unwrap();
    disks.iter().map(|d| d["name"].as_str().unwrap()).collect()
}

fn disk<'a>(inv: &'a Value, name: &str) -> &'a Value {
    named(&inv["disks"], name)
}

const FC: &str = "firecracker-epyc";

/// A QEMU q35 VM (fixtures/qemu-fixture.sh): NVMe, SATA, virtio-blk and
/// USB disks with filesystems, e1000 and virtio NICs, SMBIOS records.
const QEMU: &str = "qemu-q35";

/// Every captured machine.
const FIXTURES: &[&str] = &[FC, QEMU];

/// A Firecracker microVM (KVM, AMD EPYC, virtio disk and NIC, no DMI).
#[test]
fn firecracker_fixture_values() {
    let root = fixture(FC);
    let inv = booted_inventory(&root, "quiet BOOTIF=01-02-FC-00-00-00-01");
    let keys: Vec<&String> = inv.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "bmc",
            "boot_mode",
            "cpu",
            "disks",
            "dmi",
            "gpus",
            "kernel",
            "memory",
            "nics",
            "pci",
            "storage_controllers"
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
            "gpus",
            "cpu",
            "memory",
            "dmi",
            "disks",
            "storage_controllers",
            "nics",
            "bmc",
            "boot_mode",
            "kernel"
        ]
    );
    // No IPMI device and no SMBIOS record in a microVM: a note, not an error.
    assert_eq!(
        inv["bmc"],
        json!({"device": null, "device_id": null, "smbios": null, "lan": [],
               "notes": ["no BMC found (no /dev/ipmi0 and no SMBIOS IPMI device record)"]})
    );

    let pci = inv["pci"].as_array().unwrap();
    assert_eq!(pci.len(), 6);
    let nic = &pci[3];
    assert_members(
        nic,
        json!({
            "address": "0000:00:03.0",
            "vendor_id": "1af4",
            "device_id": "1041",
            "class_id": "0200",
            "revision": "01",
            "driver": "virtio-pci",
            "numa_node": null,
        }),
    );
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
    assert_members(
        cpu,
        json!({
            "model": "AMD EPYC",
            "vendor": "AuthenticAMD",
            "threads": 2,
            "cores": 2,
            "sockets": 1,
            "mhz_max": null,
        }),
    );
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
    assert_eq!(
        mem["total_bytes"],
        mem_total_bytes(&root.join("proc/meminfo"))
    );
    assert_eq!(mem["dimms"], Value::Array(vec![]));
    assert!(mem["note"].as_str().unwrap().contains("no SMBIOS tables"));
    assert!(inv["dmi"]["note"].as_str().unwrap().contains("absent"));
    assert_eq!(inv["dmi"]["system_serial"], Value::Null);

    let names = disk_names(&inv);
    // Unused loop devices are not listed (as lsblk does); zram0 is.
    assert_eq!(names, ["vda", "zram0"]);
    let vda = disk(&inv, "vda");
    assert_eq!(vda["size_bytes"], 274877906944u64);
    assert_members(
        vda,
        json!({
            "serial": "overlayblk",
            "transport": "virtio",
            "rotational": true,
            "logical_sector_size": 512,
            "physical_sector_size": 4096,
            "in_use": true,
        }),
    );
    assert_eq!(vda["mountpoints"], json!(["/"]));
    // No /dev in the tree: the type comes from mountinfo, and says so.
    assert_eq!(vda["fs"]["type"], "ext4");
    assert_eq!(vda["fs"]["source"], "mountinfo");
    assert_eq!(disk(&inv, "zram0")["in_use"], false);

    let nics = inv["nics"].as_array().unwrap();
    assert_eq!(nics.len(), 1, "only NICs with a device: {nics:?}");
    let eth0 = &nics[0];
    assert_members(
        eth0,
        json!({
            "name": "eth0",
            "mac": "02:fc:00:00:00:01",
            "driver": "virtio_net",
            "pci_address": "0000:00:03.0",
            "mtu": 1400,
            "carrier": true,
            "speed_mbps": null,
            "boot": true,
        }),
    );
    // IPv6 from the tree's /proc/net/if_inet6; IPv4 only on the live system.
    assert_eq!(
        eth0["addresses"],
        json!(["fe80::fc:ff:fe00:1/64", "fd00::2/64"])
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
        let n = compare_pci_on_tree(&inv["pci"], &root, ids);
        assert!(n > 0);
    }
}

/// lsblk reads the same captured trees (`--sysroot`): same disks, sizes,
/// models and serials (where lsblk finds one; it prints them untrimmed).
#[test]
fn fixture_disks_equal_lsblk_on_the_tree() {
    if !have("lsblk") {
        return;
    }
    for name in FIXTURES {
        let root = fixture(name);
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
        assert_eq!(
            theirs.len(),
            inv["disks"].as_array().unwrap().len(),
            "{name}"
        );
        let trim = |v: &Value| v.as_str().map(|s| s.trim().to_string());
        for t in theirs {
            let d = disk(&inv, t["name"].as_str().unwrap());
            let n = &d["name"];
            assert_eq!(d["size_bytes"], t["size"], "{name} {n}");
            assert_eq!(trim(&d["model"]), trim(&t["model"]), "{name} {n}");
            assert_eq!(d["read_only"], t["ro"], "{name} {n}");
            assert_eq!(d["removable"], t["rm"], "{name} {n}");
            assert_eq!(d["rotational"], t["rota"], "{name} {n}");
            if !t["serial"].is_null() {
                assert_eq!(trim(&d["serial"]), trim(&t["serial"]), "{name} {n}");
            }
        }
    }
}

fn part<'a>(d: &'a Value, name: &str) -> &'a Value {
    named(&d["partitions"], name)
}

/// The QEMU VM: SMBIOS identity and DIMMs, four kinds of disk with the
/// filesystems made by fixtures/qemu-fixture.sh, NICs, BOOTIF.
#[test]
fn qemu_fixture_values() {
    let root = fixture(QEMU);
    // No --cmdline: the tree's /proc/cmdline has BOOTIF.
    let inv = inventory(&["--root", root.to_str().unwrap()], &[]);
    let dmi = &inv["dmi"];
    assert_members(
        dmi,
        json!({
            "system_vendor": "Speediso",
            "system_product": "Fixture-VM",
            "system_serial": "VM-SERIAL-0001",
            "system_uuid": "5a0e1f2b-3c4d-4e5f-8091-a2b3c4d5e6f7",
            "board_vendor": "SpeedBoard",
            "board_serial": "BOARD-0001",
            "bios_vendor": "SpeedBIOS",
            "bios_version": "1.2.3",
            "bios_date": "01/02/2025",
            "chassis_serial": "CHASSIS-0001",
        }),
    );

    let mem = &inv["memory"];
    assert_eq!(mem["slots"], 1);
    assert_eq!(mem["ecc"], "Multi-bit ECC");
    assert!(mem.get("note").is_none(), "{mem}");
    let dimm = &mem["dimms"][0];
    assert_eq!(dimm["locator"], "DIMM 0");
    assert_eq!(dimm["size_bytes"], 1u64 << 30);
    assert_members(
        dimm,
        json!({
            "type": "RAM",
            "speed_mts": 3200,
            "manufacturer": "Hynix",
            "serial": "DIMMSERIAL1",
            "part_number": "HMA82GR7CJR8N-XN",
            "asset_tag": "DIMMASSET",
        }),
    );
    assert_eq!(mem["installed_bytes"], 1u64 << 30);

    let nvme = disk(&inv, "nvme0n1");
    assert_members(
        nvme,
        json!({
            "transport": "nvme",
            "serial": "NVME0001",
            "model": "QEMU NVMe Ctrl",
            "rotational": false,
            "partition_table": "gpt",
            "in_use": true,
        }),
    );
    let esp = part(nvme, "nvme0n1p1");
    assert_eq!(esp["number"], 1);
    assert_eq!(esp["start_bytes"], 1u64 << 20);
    assert_eq!(esp["size_bytes"], 64u64 << 20);
    assert_eq!(esp["fs"]["type"], "vfat");
    assert_eq!(esp["fs"]["label"], "ESP");
    assert_eq!(esp["fs"]["uuid"], "1234-ABCD");
    assert_eq!(esp["mountpoints"], json!([]));
    // From the GPT in the captured disk head (no udev in that VM).
    assert_eq!(esp["partlabel"], "EFI system");
    assert_eq!(esp["parttype"], "c12a7328-f81f-11d2-ba4b-00a0c93ec93b");
    assert_eq!(esp["partuuid"].as_str().map(str::len), Some(36));
    let rootp = part(nvme, "nvme0n1p2");
    assert_eq!(rootp["fs"]["type"], "ext4");
    assert_eq!(rootp["fs"]["label"], "root");
    assert_eq!(rootp["fs"]["uuid"], "6b3f9a0e-1c2d-4e5f-8a9b-0c1d2e3f4a5b");
    assert_eq!(rootp["fs"]["source"], "probe");
    assert_eq!(rootp["mountpoints"], json!(["/mnt/root"]));

    let sda = disk(&inv, "sda");
    assert_eq!(sda["transport"], "sata");
    assert_eq!(sda["model"], "SpeedDisk-SATA");
    // From the SCSI VPD page: lsblk needs udev for this one.
    assert_eq!(sda["serial"], "SATA0002");
    assert_eq!(sda["partition_table"], "dos");
    let sig = sda["partition_table_uuid"].as_str().unwrap();
    assert_eq!(part(sda, "sda2")["partuuid"], format!("{sig}-02"));
    assert_eq!(part(sda, "sda1")["parttype"], "0x82");
    assert_eq!(sda["in_use"], true);
    let swap = part(sda, "sda1");
    assert_eq!(swap["fs"]["type"], "swap");
    assert_eq!(swap["fs"]["label"], "swp");
    assert_eq!(swap["fs"]["uuid"], "11111111-2222-3333-4444-555555555555");
    assert_eq!(swap["swap"], true);
    assert_eq!(part(sda, "sda2")["fs"]["type"], "ext3");
    assert_eq!(part(sda, "sda2")["swap"], false);

    let usb = disk(&inv, "sdb");
    assert_members(
        usb,
        json!({
            "transport": "usb",
            "removable": true,
            "serial": "USB0004",
            "in_use": false,
        }),
    );
    assert_eq!(usb["fs"]["type"], "vfat");
    assert_eq!(usb["fs"]["label"], "USBSTICK");
    assert_eq!(usb["fs"]["uuid"], "0BAD-F00D");

    let vda = disk(&inv, "vda");
    assert_eq!(vda["transport"], "virtio");
    assert_eq!(vda["serial"], "VIRTIO03");
    assert_eq!(vda["fs"]["type"], "crypto_LUKS");
    assert_eq!(vda["fs"]["label"], "vault");
    assert_eq!(vda["fs"]["uuid"], "0f0e0d0c-0b0a-0908-0706-050403020100");

    let nics = inv["nics"].as_array().unwrap();
    assert_eq!(nics.len(), 2);
    assert_eq!(nics[0]["name"], "eth0");
    assert_eq!(nics[0]["driver"], "e1000");
    assert_eq!(nics[0]["pci_address"], "0000:00:06.0");
    assert_eq!(nics[0]["speed_mbps"], 1000);
    assert_eq!(nics[0]["duplex"], "full");
    assert_eq!(nics[0]["boot"], true);
    assert_eq!(nics[1]["driver"], "virtio_net");
    assert_eq!(nics[1]["pci_address"], "0000:00:07.0");
    assert_eq!(nics[1]["boot"], false);
    assert_eq!(inv["boot_mode"]["mode"], "bios");
    assert_eq!(inv["boot_mode"]["boot_mac"], "52:54:00:12:34:56");
    assert_eq!(inv["kernel"]["release"], "6.1.0-56-amd64");
    assert_eq!(inv["cpu"]["threads"], 2);

    let p = inv["pci"].as_array().unwrap();
    assert_eq!(p.len(), 11);
    let nvme_ctrl = p.iter().find(|x| x["address"] == "0000:00:02.0").unwrap();
    assert_eq!(nvme_ctrl["driver"], "nvme");
    assert_eq!(nvme_ctrl["class_id"], "0108");
    assert_eq!(nvme_ctrl["prog_if"], "02");
}

/// dmidecode decodes the same SMBIOS tables (as a --from-dump file built
/// from the captured entry point and table) to the same DIMM fields.
#[test]
fn qemu_dimms_equal_dmidecode() {
    if !have("dmidecode") {
        return;
    }
    let root = fixture(QEMU);
    let tables = root.join("sys/firmware/dmi/tables");
    let mut ep = std::fs::read(tables.join("smbios_entry_point")).unwrap();
    let table = std::fs::read(tables.join("DMI")).unwrap();
    // A dump file is the entry point with the table moved to offset 32.
    if ep.starts_with(b"_SM3_") {
        ep[0x10..0x18].copy_from_slice(&32u64.to_le_bytes());
        let len = ep[6] as usize;
        ep[5] = 0;
        let sum = ep[..len].iter().fold(0u8, |a, b| a.wrapping_add(*b));
        ep[5] = sum.wrapping_neg();
    } else {
        assert!(ep.starts_with(b"_SM_"));
        ep[0x18..0x1c].copy_from_slice(&32u32.to_le_bytes());
        // Intermediate checksum over the _DMI_ part (0x10..0x1f).
        ep[0x15] = 0;
        let sum = ep[0x10..0x1f].iter().fold(0u8, |a, b| a.wrapping_add(*b));
        ep[0x15] = sum.wrapping_neg();
        let len = ep[5] as usize;
        ep[4] = 0;
        let sum = ep[..len].iter().fold(0u8, |a, b| a.wrapping_add(*b));
        ep[4] = sum.wrapping_neg();
    }
    let mut dump = ep.clone();
    dump.resize(32, 0);
    dump.extend(&table);
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("dmi.bin");
    std::fs::write(&f, dump).unwrap();
    let text = output(
        Command::new("dmidecode")
            .args(["-t", "17", "--from-dump"])
            .arg(&f),
    );
    let field = |k: &str| {
        text.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(k)?
                    .strip_prefix(": ")
                    .map(str::to_string)
            })
            .unwrap_or_else(|| panic!("no {k} in {text}"))
    };
    let inv = inventory(&["--root", root.to_str().unwrap()], &[]);
    let d = &inv["memory"]["dimms"][0];
    assert_eq!(field("Locator"), d["locator"].as_str().unwrap());
    assert_eq!(field("Manufacturer"), d["manufacturer"].as_str().unwrap());
    assert_eq!(field("Serial Number"), d["serial"].as_str().unwrap());
    assert_eq!(field("Part Number"), d["part_number"].as_str().unwrap());
    assert_eq!(field("Type"), d["type"].as_str().unwrap());
    assert_eq!(field("Form Factor"), d["form_factor"].as_str().unwrap());
    assert_eq!(field("Speed"), format!("{} MT/s", d["speed_mts"]));
    let size = d["size_bytes"].as_u64().unwrap();
    assert_eq!(field("Size"), format!("{} GB", size >> 30));
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
        compare_pci_on_tree(&inv["pci"], dir.path(), ids.to_str().unwrap());
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

/// A synthetic /sys/block: which devices are listed (as `lsblk -d`
/// lists them) and what makes a disk "in use".
#[test]
fn synthetic_block_devices_and_usage() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let dev = |name: &str, devno: &str, sectors: u64| {
        let d = r.join("sys/block").join(name);
        std::fs::create_dir_all(d.join("queue")).unwrap();
        std::fs::create_dir_all(d.join("holders")).unwrap();
        std::fs::create_dir_all(d.join("slaves")).unwrap();
        std::fs::write(d.join("dev"), format!("{devno}\n")).unwrap();
        std::fs::write(d.join("size"), format!("{sectors}\n")).unwrap();
        std::fs::write(d.join("ro"), "0\n").unwrap();
        std::fs::write(d.join("removable"), "0\n").unwrap();
        std::fs::write(d.join("queue/rotational"), "0\n").unwrap();
        std::fs::write(d.join("queue/logical_block_size"), "512\n").unwrap();
        std::fs::write(d.join("queue/physical_block_size"), "4096\n").unwrap();
        std::fs::create_dir_all(r.join("sys/dev/block")).unwrap();
        std::os::unix::fs::symlink(
            format!("../../block/{name}"),
            r.join("sys/dev/block").join(devno),
        )
        .unwrap();
        d
    };
    let sda = dev("sda", "8:0", 2048 * 1024);
    let p1 = sda.join("sda1");
    std::fs::create_dir_all(p1.join("holders")).unwrap();
    std::fs::write(p1.join("partition"), "1\n").unwrap();
    std::fs::write(p1.join("start"), "2048\n").unwrap();
    std::fs::write(p1.join("size"), "4096\n").unwrap();
    std::fs::write(p1.join("dev"), "8:1\n").unwrap();
    std::fs::create_dir_all(p1.join("holders/md0")).unwrap();
    let sdb = dev("sdb", "8:16", 4096);
    std::fs::create_dir_all(sdb.join("holders/dm-0")).unwrap();
    dev("sdc", "8:32", 4096);
    let md0 = dev("md0", "9:0", 4000);
    std::fs::create_dir_all(md0.join("slaves/sda1")).unwrap();
    let dm0 = dev("dm-0", "253:0", 4000);
    std::fs::create_dir_all(dm0.join("slaves/sdb")).unwrap();
    dev("ram0", "1:0", 8192);
    // High loop numbers: lsblk asks the host's /dev/loopN for a backing
    // file even with --sysroot, so avoid ones a test on this host may use.
    dev("loop200", "7:200", 0);
    let loop1 = dev("loop201", "7:201", 2048);
    std::fs::create_dir_all(loop1.join("loop")).unwrap();
    std::fs::write(loop1.join("loop/backing_file"), "/tmp/x.img\n").unwrap();
    let hidden = dev("nvme0c0n1", "259:9", 2048);
    std::fs::write(hidden.join("hidden"), "1\n").unwrap();
    dev("sdd", "8:48", 4096);
    std::fs::create_dir_all(r.join("proc/self")).unwrap();
    std::fs::write(
        r.join("proc/self/mountinfo"),
        "20 1 8:32 / /srv rw - xfs /dev/sdc rw\n",
    )
    .unwrap();
    std::fs::write(
        r.join("proc/swaps"),
        "Filename Type Size Used Priority\n/dev/sdd partition 2044 0 -2\n",
    )
    .unwrap();

    let inv = booted_inventory(r, "");
    let names = disk_names(&inv);
    assert_eq!(names, ["loop201", "sda", "sdb", "sdc", "sdd"]);
    assert_eq!(disk(&inv, "loop201")["transport"], "loop");
    let a = disk(&inv, "sda");
    assert_eq!(a["in_use"], true);
    assert_eq!(a["holders"], json!([]));
    assert_eq!(part(a, "sda1")["holders"], json!(["md0"]));
    assert_eq!(part(a, "sda1")["start_bytes"], 2048 * 512);
    assert_eq!(disk(&inv, "sdb")["holders"], json!(["dm-0"]));
    assert_eq!(disk(&inv, "sdb")["in_use"], true);
    assert_eq!(disk(&inv, "sdc")["mountpoints"], json!(["/srv"]));
    assert_eq!(disk(&inv, "sdd")["swap"], true);
    assert_eq!(disk(&inv, "sdd")["in_use"], true);
    assert_eq!(disk(&inv, "sda")["size_bytes"], 1u64 << 30);

    if have("lsblk") {
        let out = output(
            Command::new("lsblk")
                .args(["-J", "-b", "-d", "-o", "NAME,SIZE", "--sysroot"])
                .arg(r),
        );
        let theirs: Value = serde_json::from_str(&out).unwrap();
        let mut theirs: Vec<&str> = theirs["blockdevices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap())
            .collect();
        theirs.sort();
        assert_eq!(theirs, names, "lsblk -d --sysroot lists the same devices");
    }
}

/// An empty root (nothing captured) still gives a document; a UEFI
/// machine with Secure Boot on is reported as such.
#[test]
fn empty_root_and_uefi_secure_boot() {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let inv = booted_inventory(r, "");
    assert_eq!(inv["pci"], json!([]));
    assert_eq!(inv["disks"], json!([]));
    assert_eq!(
        inv["gpus"],
        json!({"devices": [], "nvidia_smi": null, "note": null})
    );
    assert_eq!(inv["boot_mode"]["mode"], "bios");
    assert_eq!(inv["boot_mode"]["secure_boot"], Value::Null);
    let efivars = r.join("sys/firmware/efi/efivars");
    std::fs::create_dir_all(&efivars).unwrap();
    std::fs::write(
        efivars.join("SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"),
        [6, 0, 0, 0, 1],
    )
    .unwrap();
    let inv = booted_inventory(r, "BOOTIF=aa:bb:cc:dd:ee:ff");
    assert_eq!(inv["boot_mode"]["mode"], "uefi");
    assert_eq!(inv["boot_mode"]["secure_boot"], true);
    assert_eq!(inv["boot_mode"]["boot_mac"], "aa:bb:cc:dd:ee:ff");
}

/// The GPU server of fixtures/health/gpu (4 H100 SXM5; nvidia-smi's report
/// written to the documented schema, not captured: fixtures/README.gpu.md):
/// sysfs details and the parsed report, matched by PCI bus id.
#[test]
fn gpu_server_gpus_with_nvidia_smi() {
    let root = speediso_testsupport::repo_path("fixtures/health/gpu");
    let inv = booted_inventory(&root, "");
    let g = &inv["gpus"];
    assert_eq!(g["nvidia_smi"], "/nvidia-smi-q-x.xml");
    assert_eq!(g["note"], Value::Null);
    let devs = g["devices"].as_array().unwrap();
    let addrs: Vec<&str> = devs
        .iter()
        .map(|d| d["address"].as_str().unwrap())
        .collect();
    assert_eq!(
        addrs,
        [
            "0000:18:00.0",
            "0000:2a:00.0",
            "0000:ab:00.0",
            "0000:ba:00.0"
        ]
    );
    for (i, d) in devs.iter().enumerate() {
        let n = i + 1;
        assert_members(
            d,
            json!({"vendor_id": "10de", "device_id": "2330", "class_id": "0302",
                   "driver": "nvidia", "driver_version": "550.54.15",
                   "numa_node": if i < 2 { 0 } else { 1 }}),
        );
        assert_members(
            &d["nvidia"],
            json!({"serial": format!("165412300000{n}"),
                   "uuid": format!("GPU-8a1f0c3e-5b2d-4c7a-9e61-0d3f2b1a7c0{n}"),
                   "product_name": "NVIDIA H100 80GB HBM3",
                   "vbios_version": "96.00.74.00.01",
                   "memory_total_mib": 81559, "ecc_mode": "Enabled",
                   "temperature_c": 34.0,
                   "power": {"limit_w": 700.0, "default_limit_w": 700.0, "max_limit_w": 700.0},
                   "clocks": {"graphics_mhz": 345, "mem_mhz": 2619,
                              "max_graphics_mhz": 1980, "max_mem_mhz": 2619},
                   "nvlink_fabric": "Completed (Success)"}),
        );
        let sizes: Vec<u64> = d["bars"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["size_bytes"].as_u64().unwrap())
            .collect();
        assert_eq!(sizes, [16 << 20, 128 << 30, 32 << 20]);
    }
    assert_eq!(devs[0]["iommu_group"], "30");
    assert_eq!(
        devs[1]["link"],
        json!({"speed": "32.0 GT/s PCIe", "width": 8, "max_speed": "32.0 GT/s PCIe", "max_width": 16})
    );
    assert_eq!(devs[0]["link"]["width"], 16);
    let ab = &devs[2]["nvidia"];
    assert_eq!(
        ab["ecc_volatile"],
        json!({"correctable": 0, "uncorrectable": 2})
    );
    assert_eq!(
        ab["ecc_aggregate"],
        json!({"correctable": 0, "uncorrectable": 2})
    );
    assert_eq!(
        ab["remapped_rows"],
        json!({"correctable": 0, "uncorrectable": 2, "pending": true, "failure": false})
    );
    let ba = &devs[3]["nvidia"];
    assert_eq!(ba["remapped_rows"]["failure"], true);
    assert_eq!(ba["ecc_volatile"]["correctable"], 7);
    assert_eq!(
        ba["throttle_active"],
        json!(["gpu_idle", "hw_thermal_slowdown"])
    );
    assert_eq!(devs[0]["nvidia"]["throttle_active"], json!(["gpu_idle"]));
    assert!(devs[0]["nvidia_driver"]
        .as_str()
        .unwrap()
        .starts_with("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15"));

    // Garbage where the capture should be: a note, the sysfs details kept.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("gpu");
    assert!(Command::new("cp")
        .args(["-a", root.to_str().unwrap(), copy.to_str().unwrap()])
        .status()
        .unwrap()
        .success());
    std::fs::write(copy.join("nvidia-smi-q-x.xml"), "NVIDIA-SMI has failed\n").unwrap();
    let inv = booted_inventory(&copy, "");
    let note = inv["gpus"]["note"].as_str().unwrap();
    assert!(note.starts_with("/nvidia-smi-q-x.xml: not XML"), "{note}");
    assert_eq!(inv["gpus"]["devices"].as_array().unwrap().len(), 4);
    assert_eq!(inv["gpus"]["devices"][0]["nvidia"], Value::Null);
    // No capture at all: a note, not an error.
    std::fs::remove_file(copy.join("nvidia-smi-q-x.xml")).unwrap();
    let inv = booted_inventory(&copy, "");
    assert!(inv["gpus"]["note"]
        .as_str()
        .unwrap()
        .starts_with("no /nvidia-smi-q-x.xml in this fixture tree"));
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
    let text = output(
        Command::new(BIN)
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
            .env_remove("JOURNAL_STREAM"),
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

/// Bad inventory step options reject the plan before anything runs.
#[test]
fn bad_step_options_reject_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("inventory.toml"),
        "name = 'inventory'\ndescription = 'x'\ntime_limit = '10m'\nafter = 'stay'\n\
         [[steps]]\nmodule = 'inventory'\n[steps.options]\ncolour = 1\n",
    )
    .unwrap();
    // `dispatch --dry-run` with `args` is refused: what it printed.
    let refused = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .args(["dispatch", "--dry-run"])
            .env_remove("SPEEDISO")
            .output()
            .unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let tasks = dir.path().to_str().unwrap();
    let text = refused(&["--cmdline", "speediso.task=inventory", "--tasks-dir", tasks]);
    // Refused by the plan's check of declared step keys (issue #14),
    // naming the key, the step, the module's keys and the file.
    assert!(
        text.contains("unknown option 'colour' for module inventory"),
        "{text}"
    );
    assert!(text.contains("known: pci_ids, smart"), "{text}");
    assert!(text.contains("inventory.toml"), "{text}");

    let smart = "speediso.task=inventory speediso.inventory.smart=maybe";
    let text = refused(&["--cmdline", smart]);
    assert!(text.contains("inventory.smart"), "{text}");
}

/// blkid reads the captured device heads (dev/<name> in a fixture) and
/// must find the same type, label and UUID as the inventory does.
#[test]
fn fixture_filesystems_equal_blkid_on_captured_heads() {
    if !have("blkid") {
        return;
    }
    let mut compared = 0;
    for name in FIXTURES {
        let root = fixture(name);
        let devdir = root.join("dev");
        let Ok(rd) = std::fs::read_dir(&devdir) else {
            continue;
        };
        let inv = inventory(&["--root", root.to_str().unwrap()], &[]);
        let mut fs_of = std::collections::BTreeMap::new();
        for d in inv["disks"].as_array().unwrap() {
            fs_of.insert(d["name"].as_str().unwrap().to_string(), d["fs"].clone());
            for p in d["partitions"].as_array().unwrap() {
                fs_of.insert(p["name"].as_str().unwrap().to_string(), p["fs"].clone());
            }
        }
        for e in rd {
            let path = e.unwrap().path();
            let dev = path.file_name().unwrap().to_string_lossy().to_string();
            let out = Command::new("blkid")
                .args(["-p", "-o", "export"])
                .arg(&path)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let get = |k: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
                    .map(|v| v.replace('\\', ""))
            };
            let Some(kind) = get("TYPE") else { continue };
            let ours = &fs_of[&dev];
            assert_eq!(ours["type"].as_str(), Some(kind.as_str()), "{name} {dev}");
            assert_eq!(
                ours["label"].as_str().map(str::to_string),
                get("LABEL"),
                "{name} {dev}"
            );
            assert_eq!(
                ours["uuid"].as_str().map(str::to_string),
                get("UUID"),
                "{name} {dev}"
            );
            compared += 1;
        }
    }
    assert!(
        compared >= 6,
        "only {compared} captured filesystems compared"
    );
}

/// The human form of the QEMU fixture: one screen, compact sections,
/// lspci-style PCI lines.
#[test]
fn qemu_fixture_human_form() {
    let root = fixture(QEMU);
    let mut cmd = Command::new(BIN);
    cmd.args(["--root", root.to_str().unwrap(), "inventory"]);
    if let Some(ids) = system_pci_ids() {
        cmd.args(["--pci-ids", ids]);
    }
    let text = output(&mut cmd);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() <= 40, "more than a screen: {}", lines.len());
    for section in [
        "System ",
        "Board ",
        "Boot ",
        "Kernel ",
        "CPU ",
        "Memory ",
        "PCI (11)",
        "Disks (4)",
        "NICs (2)",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(section)),
            "no {section:?} in\n{text}"
        );
    }
    assert!(
        text.contains("Speediso Fixture-VM (serial VM-SERIAL-0001"),
        "{text}"
    );
    assert!(text.contains("BOOTIF 52:54:00:12:34:56"), "{text}");
    assert!(text.contains("DIMM 0"), "{text}");
    assert!(
        text.contains("Hynix HMA82GR7CJR8N-XN  S/N DIMMSERIAL1"),
        "{text}"
    );
    assert!(text.contains("  0000:00:1f.3 SMBus: "), "{text}");
    assert!(text.contains("[SWAP]"), "{text}");
    assert!(text.contains("/mnt/root"), "{text}");
    assert!(text.contains("(boot)"), "{text}");
}

/// SMBIOS type 38 (IPMI Device Information) in a synthetic table, with no
/// /dev/ipmi0 under the root: the record is decoded and the note says the
/// firmware describes a BMC the kernel has no device for.
#[test]
fn smbios_type_38_without_an_ipmi_device() {
    let dir = tempfile::tempdir().unwrap();
    let tables = dir.path().join("sys/firmware/dmi/tables");
    std::fs::create_dir_all(&tables).unwrap();
    // Type 38, length 0x12: KCS, IPMI 2.0, target 0x20, no NV storage,
    // base address 0xca2 in I/O space (bit 0 set), modifier 0, IRQ 0.
    let mut t = vec![38u8, 0x12, 0x01, 0x26, 0x01, 0x20, 0x20, 0xff];
    t.extend(0xca3u64.to_le_bytes());
    t.extend([0x00, 0x00, 0, 0]);
    t.extend([127, 4, 0xff, 0xfe, 0, 0]);
    let mut ep = b"_SM3_".to_vec();
    ep.extend([0, 0x18, 3, 2, 0, 1, 0]);
    ep.extend((t.len() as u32).to_le_bytes());
    ep.extend(0u64.to_le_bytes());
    std::fs::write(tables.join("smbios_entry_point"), &ep).unwrap();
    std::fs::write(tables.join("DMI"), &t).unwrap();
    let inv = booted_inventory(dir.path(), "");
    assert_eq!(
        inv["bmc"],
        json!({
            "device": null,
            "device_id": null,
            "smbios": {"interface_type": "KCS", "spec_version": "2.0",
                       "base_address": "0xca2", "address_space": "io",
                       "i2c_address": "0x20", "interrupt": null},
            "lan": [],
            "notes": ["no BMC found (no /dev/ipmi0, though SMBIOS describes a KCS interface at 0xca2: the ipmi_si and ipmi_devintf drivers did not bind)"]
        })
    );
    let text = output(Command::new(BIN).args([
        "--root",
        dir.path().to_str().unwrap(),
        "--cmdline",
        "",
        "inventory",
    ]));
    assert!(
        text.contains("\nBMC      KCS at io 0xca2 (SMBIOS, IPMI 2.0)\n"),
        "{text}"
    );
    assert!(
        text.contains("note: BMC: no BMC found (no /dev/ipmi0, though SMBIOS"),
        "{text}"
    );
}
