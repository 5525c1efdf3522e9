//! `speediso wipe --plan` against a fixture /sys, /proc and /dev tree
//! (`--root`): every safety rule names the disk and the reason. Runs as
//! any user; nothing is opened for writing (and `--root` refuses erasing).

use serde_json::Value;
use speediso_testsupport::skipped;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_speediso");

fn w(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A disk at `sys/devices/<devpath>/block/<name>`, linked from sys/block.
fn disk(root: &Path, devpath: &str, name: &str, devno: &str, sectors: u64, attrs: &[(&str, &str)]) {
    let real = format!("sys/devices/{devpath}/block/{name}");
    w(root, &format!("{real}/size"), &format!("{sectors}\n"));
    w(root, &format!("{real}/dev"), &format!("{devno}\n"));
    w(root, &format!("{real}/ro"), "0\n");
    w(root, &format!("{real}/queue/logical_block_size"), "512\n");
    w(root, &format!("{real}/queue/rotational"), "0\n");
    std::fs::create_dir_all(root.join(format!("{real}/holders"))).unwrap();
    for (k, v) in attrs {
        w(root, &format!("{real}/{k}"), v);
    }
    std::fs::create_dir_all(root.join("sys/block")).unwrap();
    std::os::unix::fs::symlink(
        format!("../devices/{devpath}/block/{name}"),
        root.join("sys/block").join(name),
    )
    .unwrap();
}

fn part(root: &Path, disk_real: &str, name: &str, devno: &str) {
    w(
        root,
        &format!("sys/devices/{disk_real}/{name}/partition"),
        "1\n",
    );
    w(
        root,
        &format!("sys/devices/{disk_real}/{name}/dev"),
        &format!("{devno}\n"),
    );
}

fn vpd80(serial: &str) -> String {
    // 4-byte header, then the ASCII serial (the fixture writes it as text).
    format!("\u{0}\u{0}\u{0}{}{serial}", char::from(serial.len() as u8))
}

#[test]
fn plan_names_every_skip_reason() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    let ata = "pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0";
    disk(
        r,
        ata,
        "sda",
        "8:0",
        2000,
        &[
            ("device/model", "BOOT DISK\n"),
            ("device/vpd_pg80", &vpd80("SERA")),
        ],
    );
    part(r, &format!("{ata}/block/sda"), "sda1", "8:1");
    disk(
        r,
        "pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host6/target6:0:0/6:0:0:0",
        "sdb",
        "8:16",
        2000,
        &[("device/model", "USB STICK\n")],
    );
    disk(
        r,
        "pci0000:00/0000:00:1f.2/ata2/host1/target1:0:0/1:0:0:0",
        "sdc",
        "8:32",
        2000,
        &[],
    );
    w(
        r,
        "sys/devices/pci0000:00/0000:00:1f.2/ata2/host1/target1:0:0/1:0:0:0/block/sdc/ro",
        "1\n",
    );
    disk(
        r,
        "pci0000:00/0000:00:1d.0/nvme/nvme0",
        "nvme0n1",
        "259:0",
        4000,
        &[
            ("device/serial", "NV0\n"),
            ("wwid", "eui.0025385b71b0b1c2\n"),
        ],
    );
    w(
        r,
        "sys/devices/pci0000:00/0000:00:1d.0/nvme/nvme0/block/nvme0n1/holders/dm-0",
        "",
    );
    disk(
        r,
        "pci0000:00/0000:00:1d.1/nvme/nvme1",
        "nvme1n1",
        "259:1",
        0,
        &[("device/serial", "NV1\n")],
    );
    let sdd = "pci0000:00/0000:00:1f.2/ata3/host2/target2:0:0/2:0:0:0";
    disk(r, sdd, "sdd", "8:48", 2000, &[]);
    part(r, &format!("{sdd}/block/sdd"), "sdd2", "8:50");
    let sde = "pci0000:00/0000:00:1f.2/ata4/host3/target3:0:0/3:0:0:0";
    disk(r, sde, "sde", "8:64", 2000, &[]);
    part(r, &format!("{sde}/block/sde"), "sde1", "8:65");
    disk(
        r,
        "pci0000:00/0000:00:1f.2/ata5/host4/target4:0:0/4:0:0:0",
        "sdf",
        "8:80",
        2000,
        &[("device/vpd_pg80", &vpd80("SERF"))],
    );
    disk(
        r,
        "pci0000:00/0000:00:1d.2/nvme/nvme2",
        "nvme2n1",
        "259:2",
        8000,
        &[("device/serial", "NV2\n"), ("device/model", "GOOD NVME\n")],
    );
    // Two namespaces of one controller: device links point at the controller.
    let c3 = "pci0000:00/0000:00:1d.3/nvme/nvme3";
    for (n, devno) in [("nvme3n1", "259:5"), ("nvme3n2", "259:6")] {
        disk(r, c3, n, devno, 8000, &[]);
        std::os::unix::fs::symlink(
            "../..",
            r.join(format!("sys/devices/{c3}/block/{n}/device")),
        )
        .unwrap();
    }
    w(r, &format!("sys/devices/{c3}/serial"), "NV3\n");
    disk(r, "virtual", "dm-0", "253:0", 4000, &[]);
    disk(r, "virtual", "loop0", "7:0", 0, &[]);
    w(r, "proc/self/mountinfo", "22 1 254:0 / / rw - overlay overlay rw\n36 22 8:1 / /boot rw,relatime - ext4 /dev/sda1 rw\n");
    w(
        r,
        "proc/swaps",
        "Filename\tType\tSize\tUsed\tPriority\n/dev/sdd2   partition\t1000\t0\t-2\n",
    );
    w(
        r,
        "proc/cmdline",
        "root=live:CDLABEL=SPEEDISO rd.live.image\n",
    );
    std::fs::create_dir_all(r.join("dev/disk/by-label")).unwrap();
    std::os::unix::fs::symlink("../../sde1", r.join("dev/disk/by-label/SPEEDISO")).unwrap();

    let run = |extra: &str, args: &[&str]| -> Value {
        let o = Command::new(BIN)
            .args([
                "--root",
                r.to_str().unwrap(),
                "--cmdline",
                &format!("root=live:CDLABEL=SPEEDISO {extra}"),
            ])
            .args(["wipe", "--plan", "--json"])
            .args(args)
            .env("SPEEDISO_WIPE_ALLOW_REAL", "1")
            .env_remove("SPEEDISO_WIPE_TEST_ALLOW")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let p = run("speediso.wipe.exclude=SERF", &["--all"]);
    let reasons = |p: &Value, dev: &str| -> String {
        skipped(p, dev)
            .map(|s| s["reasons"].to_string())
            .unwrap_or_default()
    };
    let want = [
        ("/dev/sda", "partition sda1 mounted at /boot"),
        ("/dev/sdb", "USB disk"),
        ("/dev/sdc", "read-only"),
        ("/dev/nvme0n1", "nvme0n1 is held by dm-0"),
        ("/dev/nvme1n1", "zero size"),
        ("/dev/sdd", "swap (/dev/sdd2)"),
        (
            "/dev/sde",
            "live medium or root file system (root=live:CDLABEL=SPEEDISO)",
        ),
        ("/dev/sdf", "excluded by speediso.wipe.exclude (SERF)"),
        ("/dev/dm-0", "not a disk"),
        ("/dev/loop0", "loop device without a backing file"),
    ];
    for (dev, why) in want {
        let got = reasons(&p, dev);
        assert!(got.contains(why), "{dev}: want {why:?}, got {got}");
    }
    // Operator choices and non-disks are policy skips; the rest would
    // fail a wipe task.
    let class = |dev: &str| -> String {
        skipped(&p, dev)
            .map(|s| s["class"].as_str().unwrap_or("none").to_string())
            .unwrap_or_default()
    };
    for dev in [
        "/dev/sdb",
        "/dev/sde",
        "/dev/sdf",
        "/dev/dm-0",
        "/dev/loop0",
    ] {
        assert_eq!(class(dev), "policy", "{dev}");
    }
    for dev in [
        "/dev/sda",
        "/dev/sdc",
        "/dev/nvme0n1",
        "/dev/nvme1n1",
        "/dev/sdd",
    ] {
        assert_eq!(class(dev), "blocking", "{dev}");
    }
    let erase: Vec<&str> = p["erase"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["disk"]["path"].as_str().unwrap())
        .collect();
    assert_eq!(erase, vec!["/dev/nvme2n1", "/dev/nvme3n1", "/dev/nvme3n2"]);
    // Both namespaces read their serial from the shared controller.
    assert_eq!(p["erase"][1]["disk"]["serial"], "NV3");
    assert_eq!(
        p["erase"][1]["caps"]["nvme_siblings"],
        serde_json::json!(["nvme3n2"])
    );
    let p3 = run(
        "",
        &[
            "--device",
            "/dev/nvme3n1",
            "--method",
            "nvme-sanitize-crypto",
        ],
    );
    assert!(
        reasons(&p3, "/dev/nvme3n1").contains("other namespaces (nvme3n2)"),
        "{p3}"
    );
    assert_eq!(p["erase"][0]["disk"]["serial"], "NV2");
    // Not probed under a fixture root: auto falls back to overwrite.
    assert_eq!(p["erase"][0]["method"], "random");
    // The SATA serial comes from VPD page 80h.
    let sda = skipped(&p, "/dev/sda").unwrap();
    assert_eq!(sda["disk"]["serial"], "SERA");
    assert_eq!(sda["disk"]["transport"], "ata");

    // USB allowed on request; exclusion by WWN and by path; a partition
    // named explicitly is refused as not whole.
    let p = run(
        "speediso.wipe.usb=1 speediso.wipe.exclude=eui.0025385B71B0B1C2,/dev/sdc",
        &["--all"],
    );
    assert!(
        !reasons(&p, "/dev/sdb").contains("USB"),
        "{}",
        reasons(&p, "/dev/sdb")
    );
    assert!(reasons(&p, "/dev/nvme0n1").contains("excluded"));
    assert!(reasons(&p, "/dev/sdc").contains("excluded"));
    let p = run("", &["--device", "/dev/sda1", "--device", "/dev/nvme2n1"]);
    assert!(reasons(&p, "/dev/sda1").contains("partition sda1 of /dev/sda, not a whole disk"));
    assert_eq!(p["erase"].as_array().unwrap().len(), 1);
    // A method the disk cannot do is a reason, not a silent fallback.
    let p = run(
        "",
        &["--device", "/dev/nvme2n1", "--method", "ata-secure-erase"],
    );
    assert!(
        reasons(&p, "/dev/nvme2n1").contains("not an ATA/SCSI disk"),
        "{p}"
    );
    assert_eq!(p["skipped"][0]["class"], "blocking", "{p}");
}

#[test]
fn real_disks_need_the_live_image_or_the_vm_switch() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    disk(
        r,
        "pci0000:00/0000:00:1d.2/nvme/nvme2",
        "nvme2n1",
        "259:2",
        8000,
        &[("device/serial", "NV2\n")],
    );
    let o = Command::new(BIN)
        .args([
            "--root",
            r.to_str().unwrap(),
            "--cmdline",
            "quiet",
            "wipe",
            "--plan",
            "--json",
            "--all",
        ])
        .env_remove("SPEEDISO_WIPE_ALLOW_REAL")
        .env_remove("SPEEDISO_WIPE_TEST_ALLOW")
        .output()
        .unwrap();
    let p: Value = serde_json::from_slice(&o.stdout).unwrap();
    // This machine's real /proc/cmdline decides, never --cmdline; test
    // machines do not boot with root=live:.
    let live = std::fs::read_to_string("/proc/cmdline")
        .unwrap_or_default()
        .contains("root=live:");
    if !live {
        assert!(p["erase"].as_array().unwrap().is_empty());
        assert!(p["skipped"][0]["reasons"]
            .to_string()
            .contains("not the booted live image"));
    }
    // Erasing with a fixture root is refused outright.
    let o = Command::new(BIN)
        .args([
            "--root",
            r.to_str().unwrap(),
            "--cmdline",
            "quiet",
            "wipe",
            "--all",
            "--confirm",
            "NV2",
        ])
        .env("SPEEDISO_WIPE_ALLOW_REAL", "1")
        .env("SPEEDISO_RUN_DIR", r.join("run"))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("fixture"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `wipe --plan` with a fixture root and extra kernel options.
fn plan_run(root: &Path, cmdline: &str, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(["--root", root.to_str().unwrap(), "--cmdline", cmdline])
        .args(["wipe", "--plan"])
        .args(args)
        .env("SPEEDISO_WIPE_ALLOW_REAL", "1")
        .env_remove("SPEEDISO_WIPE_TEST_ALLOW")
        .output()
        .unwrap()
}

/// A sparse `sectors`-sector /dev file under the fixture root with `bytes`
/// written at each offset (what the signature probe reads).
fn dev_image(root: &Path, name: &str, sectors: u64, at: &[(u64, &[u8])]) {
    use std::os::unix::fs::FileExt;
    std::fs::create_dir_all(root.join("dev")).unwrap();
    let f = std::fs::File::create(root.join("dev").join(name)).unwrap();
    f.set_len(sectors * 512).unwrap();
    for (off, b) in at {
        f.write_all_at(b, *off).unwrap();
    }
}

/// Remote, shared, cluster and local disks side by side.
fn remote_and_shared_tree(r: &Path) {
    let local = "pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0";
    disk(
        r,
        local,
        "sda",
        "8:0",
        8192,
        &[("device/vpd_pg80", &vpd80("SERA"))],
    );
    // FC: the LUN sits below the HBA's remote port.
    disk(
        r,
        "pci0000:00/0000:00:03.0/0000:05:00.0/host3/rport-3:0-0/target3:0:0/3:0:0:0",
        "sdb",
        "8:16",
        8192,
        &[],
    );
    // iSCSI: below the session.
    disk(
        r,
        "platform/host4/session1/target4:0:0/4:0:0:0",
        "sdc",
        "8:32",
        8192,
        &[],
    );
    w(
        r,
        "sys/class/iscsi_session/session1/targetname",
        "iqn.2001-05.com.example:array.lun1\n",
    );
    // Two paths (two SAS ports) to one LUN: the same WWID twice.
    for (i, n, devno) in [(5, "sdd", "8:48"), (6, "sde", "8:64")] {
        disk(
            r,
            &format!("pci0000:00/0000:00:02.0/0000:03:00.0/host{i}/port-{i}:0/end_device-{i}:0/target{i}:0:0/{i}:0:0:0"),
            n,
            devno,
            8192,
            &[("device/wwid", "naa.5000c500a1b2c3d4\n")],
        );
    }
    // VMFS datastore, Ceph BlueStore OSD, GPFS NSD partition type.
    for (i, n, devno) in [(1, "sdf", "8:80"), (2, "sdg", "8:96"), (3, "sdj", "8:144")] {
        disk(
            r,
            &format!(
                "pci0000:00/0000:00:1f.2/ata{}/host1{i}/target1{i}:0:0/1{i}:0:0:0",
                i + 1
            ),
            n,
            devno,
            8192,
            &[],
        );
    }
    dev_image(r, "sdf", 8192, &[(2 << 20, &0x2fab_f15eu32.to_le_bytes())]);
    dev_image(
        r,
        "sdg",
        8192,
        &[(
            0,
            b"bluestore block device\n0a1b2c3d-0000-4000-8000-00000000c0de\n",
        )],
    );
    let mut gpt = vec![0u8; 92];
    gpt[..8].copy_from_slice(b"EFI PART");
    gpt[72..80].copy_from_slice(&2u64.to_le_bytes());
    gpt[80..84].copy_from_slice(&1u32.to_le_bytes());
    gpt[84..88].copy_from_slice(&128u32.to_le_bytes());
    // 37AFFC90-EF7D-4E96-91C3-2D7AE055B174, the first three fields little-endian.
    let mut entry = vec![
        0x90, 0xfc, 0xaf, 0x37, 0x7d, 0xef, 0x96, 0x4e, 0x91, 0xc3, 0x2d, 0x7a, 0xe0, 0x55, 0xb1,
        0x74,
    ];
    entry.extend([0x11; 16]);
    entry.extend(2048u64.to_le_bytes());
    dev_image(r, "sdj", 8192, &[(512, &gpt), (1024, &entry)]);
    // Read-only and excluded local disks.
    disk(
        r,
        "pci0000:00/0000:00:1f.2/ata5/host15/target15:0:0/15:0:0:0",
        "sdh",
        "8:112",
        8192,
        &[("ro", "1\n")],
    );
    disk(
        r,
        "pci0000:00/0000:00:1f.2/ata6/host16/target16:0:0/16:0:0:0",
        "sdi",
        "8:128",
        8192,
        &[("device/vpd_pg80", &vpd80("SERI"))],
    );
    // NVMe over TCP: the namespace's controller says transport=tcp.
    let c1 = "virtual/nvme-fabrics/ctl/nvme1";
    disk(r, c1, "nvme1n1", "259:1", 8192, &[]);
    std::os::unix::fs::symlink(
        "../..",
        r.join(format!("sys/devices/{c1}/block/nvme1n1/device")),
    )
    .unwrap();
    w(r, &format!("sys/devices/{c1}/transport"), "tcp\n");
    w(
        r,
        &format!("sys/devices/{c1}/subsysnqn"),
        "nqn.2014-08.org.example:array1\n",
    );
    std::fs::create_dir_all(r.join("sys/class/nvme")).unwrap();
    std::os::unix::fs::symlink(
        format!("../../devices/{c1}"),
        r.join("sys/class/nvme/nvme1"),
    )
    .unwrap();
    // A native-multipath namespace head with paths through two controllers.
    disk(
        r,
        "virtual/nvme-subsystem/nvme-subsys2",
        "nvme2n1",
        "259:2",
        8192,
        &[("multipath/nvme2c2n1", ""), ("multipath/nvme2c3n1", "")],
    );
    // A local PCIe NVMe namespace.
    let c4 = "pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme4";
    disk(r, c4, "nvme4n1", "259:4", 8192, &[]);
    std::os::unix::fs::symlink(
        "../..",
        r.join(format!("sys/devices/{c4}/block/nvme4n1/device")),
    )
    .unwrap();
    w(r, &format!("sys/devices/{c4}/transport"), "pcie\n");
    w(r, &format!("sys/devices/{c4}/serial"), "NV4\n");
    // A path held by a dm-multipath map.
    disk(
        r,
        "pci0000:00/0000:00:1f.2/ata7/host17/target17:0:0/17:0:0:0",
        "sdk",
        "8:160",
        8192,
        &[("holders/dm-1", "")],
    );
    disk(
        r,
        "virtual",
        "dm-1",
        "253:1",
        8192,
        &[("dm/uuid", "mpath-3600a098038303053453f463045727a51\n")],
    );
    // A read-only loop device with a file behind it (the live image's
    // squashfs, say): not a disk of this machine.
    disk(
        r,
        "virtual",
        "loop5",
        "7:5",
        8192,
        &[
            (
                "loop/backing_file",
                "/run/initramfs/live/LiveOS/squashfs.img\n",
            ),
            ("ro", "1\n"),
        ],
    );
    w(
        r,
        "proc/self/mountinfo",
        "22 1 0:30 / / rw - overlay overlay rw\n",
    );
}

#[test]
fn plan_refuses_remote_and_shared_storage_and_classes_every_skip() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    remote_and_shared_tree(r);
    let o = plan_run(r, "speediso.wipe.exclude=SERI", &["--all", "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let p: Value = serde_json::from_slice(&o.stdout).unwrap();
    let skip = |dev: &str| -> (String, String) {
        skipped(&p, dev)
            .map(|s| {
                (
                    s["class"].as_str().unwrap().to_string(),
                    s["reasons"].to_string(),
                )
            })
            .unwrap_or_else(|| panic!("{dev} not skipped: {p}"))
    };
    let want = [
        ("/dev/sdb", "policy", "Fibre Channel LUN (remote port rport-3:0-0"),
        ("/dev/sdc", "policy", "iSCSI LUN (session1, target iqn.2001-05.com.example:array.lun1)"),
        ("/dev/nvme1n1", "policy", "NVMe over Fabrics (controller nvme1 transport=tcp, subsystem nqn.2014-08.org.example:array1)"),
        ("/dev/nvme2n1", "blocking", "reachable through 2 controllers (nvme2, nvme3)"),
        ("/dev/sdd", "blocking", "one of 2 paths to the same LUN (wwid naa.5000c500a1b2c3d4: /dev/sdd, /dev/sde)"),
        ("/dev/sde", "blocking", "one of 2 paths"),
        ("/dev/sdf", "blocking", "/dev/sdf carries VMFS (VMFS file system magic 0x2fabf15e at 2 MiB)"),
        ("/dev/sdg", "blocking", "/dev/sdg carries ceph_bluestore"),
        ("/dev/sdj", "blocking", "partition 1 of /dev/sdj has GPT type 37affc90-ef7d-4e96-91c3-2d7ae055b174 (IBM GPFS"),
        ("/dev/sdh", "blocking", "read-only"),
        ("/dev/sdi", "policy", "excluded by speediso.wipe.exclude (SERI)"),
        ("/dev/loop5", "policy", "loop device not named"),
        ("/dev/sdk", "blocking", "a path of dm-multipath device dm-1 (dm uuid mpath-3600a098038303053453f463045727a51)"),
    ];
    for (dev, class, why) in want {
        let (c, reasons) = skip(dev);
        assert_eq!(c, class, "{dev}: {reasons}");
        assert!(reasons.contains(why), "{dev}: want {why:?}, got {reasons}");
    }
    for dev in ["/dev/sdb", "/dev/sdf", "/dev/nvme2n1"] {
        assert!(skip(dev).1.contains("speediso.wipe.remote=1"), "{dev}");
    }
    let erase = |p: &Value| -> Vec<String> {
        let mut v: Vec<String> = p["erase"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["disk"]["path"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(erase(&p), vec!["/dev/nvme4n1", "/dev/sda"]);

    // The human plan says the run will fail, and because of which disks.
    let o = plan_run(r, "speediso.wipe.exclude=SERI", &["--all"]);
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    let fail = text
        .find("the run will FAIL")
        .unwrap_or_else(|| panic!("{text}"));
    let sdh = text.find("/dev/sdh").unwrap();
    let policy = text.find("skipped (not targets)").unwrap();
    let sdb = text.find("/dev/sdb").unwrap();
    assert!(fail < sdh && sdh < policy && policy < sdb, "{text}");

    // Named explicitly, a loop device is a target like any disk.
    let o = plan_run(r, "", &["--device", "/dev/loop5", "--json"]);
    let p: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(p["skipped"][0]["class"], "blocking", "{p}");

    // The operator's opt-in lifts the remote and shared refusals only.
    let o = plan_run(
        r,
        "speediso.wipe.exclude=SERI speediso.wipe.remote=1",
        &["--all", "--json"],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let p: Value = serde_json::from_slice(&o.stdout).unwrap();
    let mut want: Vec<String> = [
        "sda", "sdb", "sdc", "sdd", "sde", "sdf", "sdg", "sdj", "nvme1n1", "nvme2n1", "nvme4n1",
    ]
    .iter()
    .map(|n| format!("/dev/{n}"))
    .collect();
    want.sort();
    assert_eq!(erase(&p), want);
}

#[test]
fn an_exclusion_that_names_no_disk_rejects_the_plan() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    remote_and_shared_tree(r);
    let o = plan_run(
        r,
        "speediso.wipe.exclude=SERI,SERX,/dev/sdz",
        &["--all", "--json"],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(o.stdout.is_empty(), "no plan is printed");
    assert!(err.contains(r#""SERX", "/dev/sdz" match no disk"#), "{err}");
    // The message lists the disks, with what an exclusion can name.
    assert!(err.contains("/dev/sda (serial SERA)"), "{err}");
    assert!(err.contains("/dev/sdd (wwn naa.5000c500a1b2c3d4)"), "{err}");
    assert!(!err.contains("SERI\""), "{err}");
}

/// Audit (low): BMC virtual media are never wiped, not even with
/// speediso.wipe.usb=1; removable media that do not sit on USB are
/// treated like USB disks.
#[test]
fn bmc_virtual_media_and_removable_media_are_not_targets() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    // iDRAC's virtual floppy, on the BMC's internal USB hub.
    disk(
        r,
        "pci0000:00/0000:00:14.0/usb1/1-4/1-4:1.0/host7/target7:0:0/7:0:0:0",
        "sdv",
        "8:80",
        2880,
        &[
            ("device/vendor", "iDRAC   \n"),
            ("device/model", "Virtual Floppy  \n"),
            ("removable", "1\n"),
        ],
    );
    // A card reader on a SATA/PCI bridge: not under /usb, but removable.
    disk(
        r,
        "pci0000:00/0000:00:1c.0/0000:03:00.0/host8/target8:0:0/8:0:0:0",
        "sdr",
        "8:96",
        4096,
        &[
            ("device/vendor", "Generic \n"),
            ("device/model", "SD/MMC CRW      \n"),
            ("removable", "1\n"),
        ],
    );
    // An ordinary disk, the control.
    disk(
        r,
        "pci0000:00/0000:00:1f.2/ata2/host1/target1:0:0/1:0:0:0",
        "sda",
        "8:0",
        8192,
        &[("device/model", "DATA DISK\n"), ("removable", "0\n")],
    );
    for line in ["quiet", "speediso.wipe.usb=1"] {
        let o = plan_run(r, line, &["--all", "--json"]);
        let p: Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
        let erase: Vec<&str> = p["erase"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["disk"]["path"].as_str().unwrap())
            .collect();
        let skip = |dev: &str| skipped(&p, dev).cloned();
        let v = skip("/dev/sdv").unwrap_or_else(|| panic!("{line}: sdv erased: {p}"));
        assert!(
            v["reasons"]
                .to_string()
                .contains("BMC virtual media (iDRAC Virtual Floppy)"),
            "{v}"
        );
        assert_eq!(v["class"], "policy");
        assert!(erase.contains(&"/dev/sda"), "{line}: {p}");
        if line == "quiet" {
            let c = skip("/dev/sdr").unwrap_or_else(|| panic!("card reader erased: {p}"));
            assert!(c["reasons"].to_string().contains("removable media"), "{c}");
            assert_eq!(c["class"], "policy");
        } else {
            assert!(
                erase.contains(&"/dev/sdr"),
                "{line}: wipe.usb=1 includes removable media: {p}"
            );
        }
    }
}

/// A customer's stack (issue 16): GPT partition nvme0n1p1 and the whole
/// SATA disk sda under md127 (RAID1, metadata 1.0), LVM custvg/data on it.
fn customer_stack_tree(r: &Path) {
    let nv = "pci0000:00/0000:00:04.0/nvme/nvme0/nvme0n1";
    disk(
        r,
        "pci0000:00/0000:00:04.0/nvme/nvme0",
        "nvme0n1",
        "259:0",
        131072,
        &[
            ("device/serial", "NVME0001\n"),
            ("device/model", "QEMU NVMe Ctrl\n"),
        ],
    );
    let nv_real = format!("{}/block/nvme0n1", nv.trim_end_matches("/nvme0n1"));
    part(r, &nv_real, "nvme0n1p1", "259:1");
    let ata = "pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0";
    disk(
        r,
        ata,
        "sda",
        "8:0",
        131072,
        &[("device/vpd_pg80", &vpd80("SATA0002"))],
    );
    disk(
        r,
        "virtual",
        "md127",
        "9:127",
        130000,
        &[("md/level", "raid1\n"), ("md/metadata_version", "1.0\n")],
    );
    disk(
        r,
        "virtual",
        "dm-0",
        "253:0",
        120000,
        &[("dm/name", "custvg-data\n"), ("dm/uuid", "LVM-0123\n")],
    );
    let mk = |p: String| std::fs::create_dir_all(r.join(p)).unwrap();
    mk(format!("sys/devices/{nv_real}/nvme0n1p1/holders/md127"));
    mk(format!("sys/devices/{ata}/block/sda/holders/md127"));
    mk("sys/devices/virtual/block/md127/slaves/nvme0n1p1".into());
    mk("sys/devices/virtual/block/md127/slaves/sda".into());
    mk("sys/devices/virtual/block/md127/holders/dm-0".into());
    mk("sys/devices/virtual/block/dm-0/slaves/md127".into());
}

#[test]
fn plan_releases_a_customer_stack_or_says_why_it_is_left_alone() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    customer_stack_tree(r);
    let stack = "LVM logical volume custvg/data (dm-0), md RAID1 /dev/md127 (metadata 1.0) on nvme0n1p1, sda";
    // Every member erased: the stack is released first, both disks erased.
    let o = plan_run(r, "root=live:CDLABEL=SPEEDISO", &["--all"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        text.contains("will release first (1 stack(s)")
            && text.contains(&format!("  stop {stack}\n")),
        "{text}"
    );
    assert!(text.contains("will erase (2 disk(s)"), "{text}");
    let o = plan_run(r, "root=live:CDLABEL=SPEEDISO", &["--all", "--json"]);
    let p: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        p["release"][0]["disks"],
        serde_json::json!(["nvme0n1", "sda"])
    );
    let names: Vec<&str> = p["release"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["dm-0", "md127"]);
    // Its layers are released, not "skipped".
    assert!(skipped(&p, "/dev/md127").is_none() && skipped(&p, "/dev/dm-0").is_none());
    // One member excluded by serial: nothing is released, the other
    // member is a blocking skip that says why, and the plan fails.
    let o = plan_run(
        r,
        "root=live:CDLABEL=SPEEDISO speediso.wipe.exclude=SATA0002",
        &["--all", "--json"],
    );
    let p: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(p["release"], serde_json::json!([]));
    assert_eq!(p["erase"], serde_json::json!([]));
    let nv = skipped(&p, "/dev/nvme0n1").expect("nvme0n1 skipped");
    assert_eq!(nv["class"], "blocking");
    assert_eq!(
        nv["reasons"][1],
        format!("member of {stack}, which is left alone: it also lies on sda, which is not erased (excluded by speediso.wipe.exclude (SATA0002))")
    );
    let sa = skipped(&p, "/dev/sda").expect("sda skipped");
    assert_eq!(sa["class"], "policy");
    // Mounted: left alone, saying where.
    w(
        r,
        "proc/self/mountinfo",
        "40 1 253:0 / /srv rw - ext4 /dev/mapper/custvg-data rw\n",
    );
    let o = plan_run(r, "root=live:CDLABEL=SPEEDISO", &["--all"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(!text.contains("will release first"), "{text}");
    assert!(
        text.contains(
            "which is left alone: LVM logical volume custvg/data (dm-0) is mounted at /srv"
        ),
        "{text}"
    );
}

/// `--plan` says what is on each disk it would erase: the partition
/// table, and per partition its file system, read from the fixture's
/// /dev images by the own probe (a fixture root never runs blkid).
#[test]
fn plan_shows_what_is_on_each_disk() {
    use speediso_testsupport::have_tool;
    let hint = "install tests/apt/inventory.txt";
    if !have_tool("sfdisk", hint) || !have_tool("mkfs.ext4", hint) {
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let r = t.path();
    let ata = "pci0000:00/0000:00:1f.2/ata1/host0/target0:0:0/0:0:0:0";
    disk(
        r,
        ata,
        "sda",
        "8:0",
        32768,
        &[("device/model", "DATA DISK\n")],
    );
    part(r, &format!("{ata}/block/sda"), "sda1", "8:1");
    // A disk left alone (excluded) shows what it carries as well.
    disk(
        r,
        "pci0000:00/0000:00:1f.2/ata2/host1/target1:0:0/1:0:0:0",
        "sdb",
        "8:16",
        16384,
        &[("device/vpd_pg80", &vpd80("KEEP1"))],
    );
    w(
        r,
        "proc/self/mountinfo",
        "22 1 254:0 / / rw - overlay overlay rw\n",
    );
    w(r, "proc/swaps", "Filename\tType\tSize\tUsed\tPriority\n");
    w(
        r,
        "proc/cmdline",
        "root=live:CDLABEL=SPEEDISO rd.live.image\n",
    );
    std::fs::create_dir_all(r.join("dev")).unwrap();
    let sda = r.join("dev/sda");
    speediso_testsupport::sized_file(&sda, 16 << 20);
    speediso_testsupport::sfdisk(
        &sda,
        "label: gpt\nlabel-id: 0A1B2C3D-4E5F-4061-8293-A4B5C6D7E8F9\nstart=2048, size=20480, type=L\n",
    );
    let sda1 = r.join("dev/sda1");
    speediso_testsupport::sized_file(&sda1, 10 << 20);
    speediso_testsupport::output_ok(
        Command::new("mkfs.ext4")
            .args([
                "-q",
                "-F",
                "-L",
                "customer",
                "-U",
                "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
            ])
            .arg(&sda1),
    );
    let sdb = r.join("dev/sdb");
    speediso_testsupport::sized_file(&sdb, 8 << 20);
    speediso_testsupport::output_ok(
        Command::new("mkswap")
            .args(["-L", "keep", "-U", "0b9ec5b4-2b6a-4a34-9dc4-1d2f9ee6d1a7"])
            .arg(&sdb),
    );
    let run = |json: bool| {
        let o = Command::new(BIN)
            .args([
                "--root",
                r.to_str().unwrap(),
                "--cmdline",
                "root=live:CDLABEL=SPEEDISO speediso.wipe.exclude=KEEP1",
            ])
            .args(["wipe", "--plan", "--all"])
            .args(if json { &["--json"][..] } else { &[][..] })
            .env("SPEEDISO_WIPE_ALLOW_REAL", "1")
            .env_remove("SPEEDISO_WIPE_TEST_ALLOW")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let p: Value = serde_json::from_str(&run(true)).unwrap();
    let e = p["erase"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["disk"]["name"] == "sda")
        .unwrap_or_else(|| panic!("sda not planned: {p}"));
    assert_eq!(
        e["contents"],
        serde_json::json!([
            {"where": "disk", "type": "gpt", "label": null, "uuid": "0a1b2c3d-4e5f-4061-8293-a4b5c6d7e8f9"},
            {"where": "sda1", "type": "ext4", "label": "customer", "uuid": "1b4e28ba-2fa1-11d2-883f-0016d3cca427"},
        ])
    );
    assert_eq!(
        skipped(&p, "/dev/sdb").unwrap()["contents"],
        serde_json::json!([{"where": "disk", "type": "swap", "label": "keep",
            "uuid": "0b9ec5b4-2b6a-4a34-9dc4-1d2f9ee6d1a7"}])
    );
    let text = run(false);
    assert!(
        text.contains("on it: disk swap \"keep\" 0b9ec5b4-2b6a-4a34-9dc4-1d2f9ee6d1a7"),
        "{text}"
    );
    assert!(
        text.contains(
            "on it: disk gpt 0a1b2c3d-4e5f-4061-8293-a4b5c6d7e8f9; sda1 ext4 \"customer\" 1b4e28ba-2fa1-11d2-883f-0016d3cca427"
        ),
        "{text}"
    );
}
