//! The VM suite's checkers (tests/vm/*.py) on fixed input, so a scenario that
//! runs only once its feature lands compares for real: a matching inventory
//! passes, and each kind of mismatch fails. tests/vm/fixtures/ holds what a
//! VM suite boot of the inventory branch stored and printed (state.json and
//! `lspci -mm -nn -D` from the same QEMU guest).

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
                {"serial": "NVME0001", "transport": "nvme"},
                {"serial": "SATA0002", "transport": "sata"},
                {"serial": "USB0003", "transport": "usb"},
            ],
        }}],
    })
}

fn check(inv: &Value) -> (bool, String) {
    check_with(inv, LSPCI)
}

fn check_with(inv: &Value, lspci: &str) -> (bool, String) {
    let python = if std::path::Path::new("/usr/bin/python3").exists() {
        PathBuf::from("/usr/bin/python3")
    } else {
        PathBuf::from("python3")
    };
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("run.json"), inv.to_string()).unwrap();
    std::fs::write(dir.path().join("lspci.txt"), lspci).unwrap();
    let out = Command::new(python)
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vm/check_inventory.py"))
        .arg(dir.path().join("run.json"))
        .arg(dir.path().join("lspci.txt"))
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
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
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
    let (ok, err) = check_with(&state, &lspci);
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
