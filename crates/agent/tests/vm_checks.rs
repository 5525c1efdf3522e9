//! The VM suite's checkers (tests/vm/*.py) on fixed input, so a scenario that
//! runs only once its feature lands compares for real: a matching inventory
//! passes, and each kind of mismatch fails. tests/vm/fixtures/ holds what a
//! VM suite boot of the inventory branch stored and printed (state.json and
//! `lspci -mm -nn -D` from the same QEMU guest), what the collector stored
//! for the lininstall, lininstall-badsum and kexec boots
//! (`*.collector.json`), what guest_wipe_faults.sh left in a guest
//! (`wipe-faults/`), and the guest's state files of the two burnin boots
//! (`burnin-{pass,fail}.state.json`).

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;

const LSPCI: &str = r#"0000:00:00.0 "Host bridge [0600]" "Intel Corporation [8086]" "Device [0d57]" -p00 "" ""
0000:00:03.0 "Ethernet controller [0200]" "Red Hat, Inc. [1af4]" "Virtio 1.0 network device [1041]" -r01 -p00 "Red Hat, Inc. [1af4]" "Virtio 1.0 network device [1041]"
0000:00:04.0 "Non-Volatile memory controller [0108]" "Red Hat, Inc. [1b36]" "QEMU NVM Express Controller [0010]" -r02 -p02 "Red Hat, Inc. [1af4]" "Device [1100]"
"#;

fn inventory() -> Value {
    let pci = |a: &str, cls: &str, v: &str, vid: &str, d: &str, did: &str| {
        json!({"address": a, "class_id": cls, "vendor": v, "vendor_id": vid,
               "device": d, "device_id": did})
    };
    json!({
        "run": {"run_id": "r1"},
        "results": [{"seq": 3, "step": "inventory", "data": {
            "pci": [
                pci("0000:00:00.0", "0600", "Intel Corporation", "8086", "Device 0d57", "0d57"),
                pci("0000:00:03.0", "0200", "Red Hat, Inc.", "1af4", "Virtio 1.0 network device", "1041"),
                pci("0000:00:04.0", "0108", "Red Hat, Inc.", "1b36", "QEMU NVM Express Controller", "0010"),
            ],
            "disks": [
                {"serial": "NVME0001", "transport": "nvme", "command_set": "nvme", "size_bytes": 67108864,
                 "hidden_areas": {"kind": "nvme", "total_bytes": null,
                    "unallocated_bytes": null, "namespace_id": 1,
                    "namespace_bytes": 67108864, "active_namespaces": [1],
                    "other_namespaces": [], "uncovered": []}},
                {"serial": "SATA0002", "transport": "sata", "command_set": "ata", "size_bytes": 67108864,
                 "hidden_areas": {"kind": "ata", "native_max_sectors": 131072,
                    "accessible_sectors": 131072, "kernel_sectors": 131072,
                    "hpa_sectors": 0, "dco_max_sectors": null,
                    "dco_hidden_sectors": null, "dco": "not supported",
                    "restored": null, "how": "READ NATIVE MAX ADDRESS EXT (27h)"}},
                {"serial": "SCSI0004", "transport": "virtio", "command_set": "scsi", "size_bytes": 67108864},
                {"serial": "USB0003", "transport": "usb", "command_set": "usb", "size_bytes": 67108864},
            ],
        }}],
    })
}

fn check(inv: &Value) -> (bool, String) {
    check_with(inv, LSPCI)
}

fn check_with(inv: &Value, lspci: &str) -> (bool, String) {
    check_with_flags(inv, lspci, &[])
}

fn check_with_flags(inv: &Value, lspci: &str, flags: &[&str]) -> (bool, String) {
    let python = if std::path::Path::new("/usr/bin/python3").exists() {
        PathBuf::from("/usr/bin/python3")
    } else {
        PathBuf::from("python3")
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("run.json"), inv.to_string()).unwrap();
    std::fs::write(dir.path().join("lspci.txt"), lspci).unwrap();
    let out = Command::new(python)
        .arg(
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
                .join("tests/vm/check_inventory.py"),
        )
        .arg(dir.path().join("run.json"))
        .arg(dir.path().join("lspci.txt"))
        .args(flags)
        .output()
        .expect("running python3");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn inventory_checker_accepts_a_match() {
    let (ok, err) = check(&inventory());
    assert!(ok, "{err}");
    // The guest's state.json form ({results: {step: data}}) too.
    let state = json!({"results": {"inventory": inventory()["results"][0]["data"]}});
    let (ok, err) = check(&state);
    assert!(ok, "{err}");
}

/// A change to the stored inventory that the checker must notice.
type Mutation = dyn Fn(&mut Value);

#[test]
fn inventory_checker_finds_each_mismatch() {
    let cases: Vec<(&str, Box<Mutation>)> = vec![
        (
            "PCI addresses differ",
            Box::new(|d| {
                d["pci"].as_array_mut().unwrap().pop();
            }),
        ),
        (
            "device_id",
            Box::new(|d| d["pci"][1]["device_id"] = json!("1000")),
        ),
        (
            "device",
            Box::new(|d| d["pci"][0]["device"] = json!("Device")),
        ),
        (
            "no disk with serial USB0003",
            Box::new(|d| {
                d["disks"].as_array_mut().unwrap().pop();
            }),
        ),
        (
            "transport",
            Box::new(|d| d["disks"][1]["transport"] = json!("scsi")),
        ),
        (
            "hpa_sectors 8",
            Box::new(|d| d["disks"][1]["hidden_areas"]["hpa_sectors"] = json!(8)),
        ),
        (
            "native 131080",
            Box::new(|d| d["disks"][1]["hidden_areas"]["native_max_sectors"] = json!(131080)),
        ),
        (
            "no ATA hidden_areas",
            Box::new(|d| {
                d["disks"][1]
                    .as_object_mut()
                    .unwrap()
                    .remove("hidden_areas");
            }),
        ),
        (
            "does not cover the controller",
            Box::new(|d| d["disks"][0]["hidden_areas"]["other_namespaces"] = json!([2])),
        ),
        (
            "unallocated_bytes 4096",
            Box::new(|d| d["disks"][0]["hidden_areas"]["unallocated_bytes"] = json!(4096)),
        ),
        (
            "disk SCSI0004: command_set",
            Box::new(|d| d["disks"][2]["command_set"] = json!("ata")),
        ),
    ];
    for (want, mutate) in cases {
        let mut inv = inventory();
        mutate(&mut inv["results"][0]["data"]);
        let (ok, err) = check(&inv);
        assert!(!ok, "accepted a mismatch ({want})");
        assert!(err.contains(want), "{want}: {err}");
    }
    let (ok, err) = check(&json!({"results": []}));
    assert!(!ok && err.contains("no inventory result"), "{err}");
}

fn fixture(name: &str) -> String {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .join("tests/vm/fixtures")
        .join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn inventory_checker_on_a_real_guest() {
    let state: Value = serde_json::from_str(&fixture("qemu-inventory.state.json")).unwrap();
    let lspci = fixture("qemu.lspci");
    // QEMU's VGA has ids missing from pci.ids: "Vendor [1234]" in lspci -nn.
    assert!(lspci.contains("\"Vendor [1234]\""));
    // Captured with hidden_areas, storage_controllers and the SCSI disk
    // (issue 16); without hidden_areas the checker says so.
    let (ok, err) = check_with(&state, &lspci);
    assert!(ok, "{err}");
    let mut bare = state.clone();
    for d in bare["results"]["inventory"]["disks"]
        .as_array_mut()
        .unwrap()
    {
        d.as_object_mut().unwrap().remove("hidden_areas");
    }
    let (ok, err) = check_with(&bare, &lspci);
    assert!(!ok && err.contains("no NVMe hidden_areas"), "{err}");
    let (ok, err) = check_with_flags(&bare, &lspci, &["--no-hidden-areas"]);
    assert!(ok, "{err}");

    let mut moved = state.clone();
    moved["results"]["inventory"]["pci"][4]["address"] = json!("0000:00:1f.0");
    let (ok, err) = check_with(&moved, &lspci);
    assert!(!ok && err.contains("PCI addresses differ"), "{err}");

    let mut renamed = state;
    renamed["results"]["inventory"]["pci"][4]["vendor"] = json!("Vendor");
    let (ok, err) = check_with(&renamed, &lspci);
    assert!(!ok && err.contains("vendor"), "{err}");
}

fn python() -> PathBuf {
    if std::path::Path::new("/usr/bin/python3").exists() {
        PathBuf::from("/usr/bin/python3")
    } else {
        PathBuf::from("python3")
    }
}

/// Run tests/vm/SCRIPT with ARGS; (success, stderr).
fn run_checker(script: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(python())
        .arg(
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
                .join("tests/vm")
                .join(script),
        )
        .args(args)
        .output()
        .expect("running python3");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// check_install.py MODE on a (mutated) fixture run; (success, stderr).
fn check_install(mode: &str, run: &Value, extra: &[&str]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("run.json");
    std::fs::write(&p, run.to_string()).unwrap();
    let mut args = vec![mode, p.to_str().unwrap()];
    args.extend_from_slice(extra);
    run_checker("check_install.py", &args)
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

/// What the collector stored for the VM suite's lininstall, lininstall-badsum
/// and kexec boots (tests/vm/fixtures/*.collector.json) passes; each kind of
/// wrong run fails with its reason.
#[test]
fn install_checker_on_real_runs() {
    let image = fixture_json("lininstall.collector.json");
    let sum = image["results"][0]["data"]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let ok = |v: &Value, sum: &str| check_install("image", v, &[sum, "NVME0001"]);
    let (pass, err) = ok(&image, &sum);
    assert!(pass, "{err}");
    let (pass, err) = ok(&image, &"0".repeat(64));
    assert!(!pass && err.contains("sha256"), "{err}");
    let cases: Vec<(&str, Box<Mutation>)> = vec![
        (
            "target.serial",
            Box::new(|d| d["results"][0]["data"]["target"]["serial"] = json!("USB0003")),
        ),
        (
            "target.transport",
            Box::new(|d| d["results"][0]["data"]["target"]["transport"] = json!("usb")),
        ),
        (
            "readback_verified",
            Box::new(|d| d["results"][0]["data"]["readback_verified"] = json!(false)),
        ),
        (
            "want success",
            Box::new(|d| d["run"]["outcome"] = json!("failed")),
        ),
        (
            "no run_finished",
            Box::new(|d| {
                d["events"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|e| e["type"] != "run_finished")
            }),
        ),
    ];
    for (want, mutate) in cases {
        let mut v = image.clone();
        mutate(&mut v);
        let (pass, err) = ok(&v, &sum);
        assert!(!pass && err.contains(want), "{want}: {err}");
    }

    let bad = fixture_json("lininstall-badsum.collector.json");
    let (pass, err) = check_install("failed", &bad, &[]);
    assert!(pass, "{err}");
    // The good run is not a failed one.
    let (pass, err) = check_install("failed", &image, &[]);
    assert!(!pass && err.contains("succeeded"), "{err}");
    let mut said_nothing = bad.clone();
    for e in said_nothing["events"].as_array_mut().unwrap() {
        if let Some(m) = e.get_mut("error") {
            *m = json!("failed");
        }
        if let Some(m) = e.get_mut("message") {
            *m = json!("failed");
        }
    }
    let (pass, err) = check_install("failed", &said_nothing, &[]);
    assert!(!pass && err.contains("checksum mismatch"), "{err}");

    let kexec = fixture_json("kexec.collector.json");
    let ksum = kexec["results"][0]["data"]["kernel"]["sha256"]
        .as_str()
        .unwrap()
        .to_string();
    let (pass, err) = check_install("kexec", &kexec, &[&ksum]);
    assert!(pass, "{err}");
    let mut unverified = kexec.clone();
    unverified["results"][0]["data"]["kernel"]["verified"] = json!(false);
    let (pass, err) = check_install("kexec", &unverified, &[&ksum]);
    assert!(!pass && err.contains("unverified"), "{err}");
    let mut not_loaded = kexec;
    not_loaded["results"][0]["data"]["loaded"] = json!(false);
    let (pass, err) = check_install("kexec", &not_loaded, &[&ksum]);
    assert!(!pass && err.contains("no kexec image is loaded"), "{err}");
}

/// A copy of tests/vm/fixtures/wipe-faults.
fn wipe_faults_copy() -> tempfile::TempDir {
    let src = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .join("tests/vm/fixtures/wipe-faults");
    let dir = tempfile::tempdir().unwrap();
    for sub in ["", "a.certs", "b.certs"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        for e in std::fs::read_dir(src.join(sub)).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), dir.path().join(sub).join(e.file_name())).unwrap();
            }
        }
    }
    dir
}

/// A copy of tests/vm/fixtures/wipe-faults (what guest_wipe_faults.sh left
/// in a real guest) with FILE's JSON (or JSON lines) changed by `mutate`.
fn wipe_faults_with(file: &str, mutate: &dyn Fn(&mut Value)) -> (bool, String) {
    let dir = wipe_faults_copy();
    if !file.is_empty() {
        let p = dir.path().join(file);
        let text = std::fs::read_to_string(&p).unwrap();
        let changed = match serde_json::from_str::<Value>(&text) {
            Ok(mut v) => {
                mutate(&mut v);
                v.to_string()
            }
            Err(_) => text
                .lines()
                .map(|l| {
                    let mut v: Value = serde_json::from_str(l).unwrap();
                    mutate(&mut v);
                    v.to_string()
                })
                .collect::<Vec<_>>()
                .join("\n"),
        };
        std::fs::write(&p, changed).unwrap();
    }
    run_checker("check_wipe_faults.py", &[dir.path().to_str().unwrap()])
}

#[test]
fn wipe_faults_checker_on_a_real_guest() {
    let (pass, err) = wipe_faults_with("", &|_| {});
    assert!(pass, "{err}");
    let cert_a = std::fs::read_dir(
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
            .join("tests/vm/fixtures/wipe-faults/a.certs"),
    )
    .unwrap()
    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
    .find(|n| n.ends_with(".json"))
    .unwrap();
    let cases: Vec<(String, Box<Mutation>, &str)> = vec![
        (
            format!("a.certs/{cert_a}"),
            Box::new(|c| c["outcome"] = json!("wiped")),
            "certificate's outcome",
        ),
        (
            format!("a.certs/{cert_a}"),
            Box::new(|c| c["errors"][0]["lba_start"] = json!(0)),
            "certificate's write errors",
        ),
        (
            "a.json".into(),
            Box::new(|e| {
                if e["type"] == "result" {
                    e["data"]["disks"][0]["failed_ranges"][0]["lba_count"] = json!(1);
                }
            }),
            "are not exactly LBA",
        ),
        (
            "a.json".into(),
            Box::new(|e| {
                if e["type"] == "run_finished" {
                    e["outcome"] = json!("success");
                    e["exit_status"] = json!(0);
                }
            }),
            "the run finished success",
        ),
        (
            "b.plan.json".into(),
            Box::new(|p| {
                p["skipped"]
                    .as_array_mut()
                    .unwrap()
                    .retain(|s| !s["reasons"].to_string().contains("held by dm-"))
            }),
            "the held loop device",
        ),
        (
            "b.json".into(),
            Box::new(|e| {
                if e["type"] == "result" {
                    e["data"]["disks"][0]["outcome"] = json!("failed");
                }
            }),
            "outcome 'failed'",
        ),
    ];
    for (file, mutate, want) in cases {
        let (pass, err) = wipe_faults_with(&file, &*mutate);
        assert!(!pass && err.contains(want), "{file}, {want}: {err}");
    }
}

/// Case (d), `burnin scan` of a dm device with an error segment, has no
/// recorded guest output yet: its check is tried on results in the shape
/// crates/agent/tests/burnin_scan.rs asserts (made here, not recorded),
/// the right one and wrong ones.
#[test]
fn wipe_faults_checker_on_the_scan_case() {
    let size: u64 = 64 << 20;
    let scan = |unreadable: Value, read: u64| -> (bool, String) {
        let dir = wipe_faults_copy();
        std::fs::write(
            dir.path().join("d.device"),
            "/dev/mapper/speediso-vm-scan 20000 3000 /dev/loop5\n",
        )
        .unwrap();
        let r = json!({
            "verdict": "fail",
            "disks": [
                {"path": "/dev/mapper/speediso-vm-scan", "size_bytes": size,
                 "bytes_read": read, "unreadable": unreadable, "verdict": "fail"},
                {"path": "/dev/loop5", "size_bytes": size, "bytes_read": size,
                 "unreadable": [], "verdict": "pass"},
            ],
            "skipped": [],
        });
        std::fs::write(dir.path().join("d.json"), r.to_string()).unwrap();
        run_checker("check_wipe_faults.py", &[dir.path().to_str().unwrap()])
    };
    let eio = "Input/output error (os error 5)";
    let (pass, err) = scan(
        json!([{"lba": 20000, "count": 3000, "error": eio}]),
        size - 3000 * 512,
    );
    assert!(pass, "{err}");
    let (pass, err) = scan(
        json!([{"lba": 20000, "count": 2048, "error": eio}]),
        size - 2048 * 512,
    );
    assert!(!pass && err.contains("want exactly"), "{err}");
    let (pass, err) = scan(json!([{"lba": 20000, "count": 3000, "error": eio}]), size);
    assert!(!pass && err.contains("(d) read"), "{err}");
}

/// check_burnin.py WANT on a (mutated) state file; (success, stderr).
fn check_burnin(want: &str, state: &Value) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("state.json");
    std::fs::write(&p, state.to_string()).unwrap();
    run_checker("check_burnin.py", &[p.to_str().unwrap(), want])
}

/// The guest's state files of the VM suite's two burnin boots
/// (tests/vm/fixtures/burnin-{pass,fail}.state.json) pass as what they
/// are, never as the other; each kind of wrong run fails with its reason.
#[test]
fn burnin_checker_on_real_boots() {
    let pass = fixture_json("burnin-pass.state.json");
    let fail = fixture_json("burnin-fail.state.json");
    assert_eq!(check_burnin("pass", &pass), (true, String::new()));
    assert!(check_burnin("fail", &fail).0);
    let (ok, err) = check_burnin("fail", &pass);
    assert!(!ok && err.contains("succeeded"), "{err}");
    let (ok, err) = check_burnin("pass", &fail);
    assert!(!ok && err.contains("outcome"), "{err}");
    // A self-test that did not pass on the SATA disk.
    let mut v = pass.clone();
    for d in v["results"]["burnin.selftest"]["disks"]
        .as_array_mut()
        .unwrap()
    {
        d["outcome"] = "refused".into();
    }
    let (ok, err) = check_burnin("pass", &v);
    assert!(!ok && err.contains("SATA self-test"), "{err}");
    // No comparison with the snapshot.
    let mut v = pass.clone();
    v["results"]["health-after"]["checked"]
        .as_array_mut()
        .unwrap()
        .retain(|c| c["check"] != "change");
    let (ok, err) = check_burnin("pass", &v);
    assert!(!ok && err.contains("did not compare"), "{err}");
    // The failing boot without its NVMe finding.
    let mut v = fail.clone();
    for step in ["health-before", "health-after"] {
        v["results"][step]["findings"]
            .as_array_mut()
            .unwrap()
            .retain(|f| f["check"] != "disk");
    }
    let (ok, err) = check_burnin("fail", &v);
    assert!(!ok && err.contains("NVME0001"), "{err}");
}

/// check_bmc.py on a (mutated) inventory and the guest kernel's sysfs view
/// of the same BMC; (success, stderr).
fn check_bmc(inv: &Value) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("inventory.json");
    std::fs::write(&p, inv.to_string()).unwrap();
    let sysfs = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .join("tests/vm/fixtures/site-access.sysfs-bmc");
    run_checker(
        "check_bmc.py",
        &[p.to_str().unwrap(), sysfs.to_str().unwrap()],
    )
}

/// `speediso inventory --json` from the VM suite's site-access boot (QEMU's
/// ipmi-bmc-sim behind isa-ipmi-kcs; tests/vm/fixtures/site-access.inventory.json,
/// with the guest kernel's /sys/class/ipmi/ipmi0/device/bmc values beside
/// it) passes, in the state file's shape too; each kind of wrong BMC fails
/// with its reason.
#[test]
fn bmc_checker_on_a_real_guest() {
    let inv = fixture_json("site-access.inventory.json");
    let (ok, err) = check_bmc(&inv);
    assert!(ok, "{err}");
    assert!(check_bmc(&json!({"results": {"inventory": inv.clone()}})).0);
    let bad = |f: &dyn Fn(&mut Value), want: &str| {
        let mut v = inv.clone();
        f(&mut v);
        let (ok, err) = check_bmc(&v);
        assert!(!ok && err.contains(want), "{want}: {err}");
    };
    bad(
        &|v| v["bmc"]["device_id"]["firmware_version"] = json!("5.39"),
        "firmware_version",
    );
    bad(
        &|v| v["bmc"]["device_id"]["manufacturer_id"] = json!(0),
        "manufacturer_id",
    );
    // What QEMU was told but does not answer: the kernel's view decides.
    bad(
        &|v| v["bmc"]["device_id"]["device_id"] = json!(81),
        "the kernel's view",
    );
    bad(&|v| v["bmc"]["device_id"] = Value::Null, "no Get Device ID");
    bad(&|v| v["bmc"]["device"] = Value::Null, "want /dev/ipmi0");
    bad(
        &|v| v["bmc"]["smbios"]["base_address"] = json!("0xca8"),
        "base_address",
    );
    bad(&|v| v["bmc"]["smbios"] = Value::Null, "no SMBIOS type 38");
    bad(&|v| v["bmc"]["notes"] = json!([]), "without a note");
    bad(
        &|v| {
            v.as_object_mut().unwrap().remove("bmc");
        },
        "no inventory",
    );
}
