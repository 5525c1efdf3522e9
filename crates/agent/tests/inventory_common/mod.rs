//! Helpers shared by the inventory integration tests: running the built
//! binary, checking for tools, and comparing our PCI list with lspci's.
#![allow(dead_code)]

use serde_json::Value;
use std::path::Path;
use std::process::Command;

pub const BIN: &str = env!("CARGO_BIN_EXE_speediso");

/// Is `tool` installed? Missing: a failure under SPEEDISO_REQUIRE_TOOLS=1
/// (CI), else a skip with a message.
pub fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        missing(&format!("{tool} is not installed"));
    }
    found
}

/// Is `path` there? Same rule as `have`.
pub fn have_file(path: &str) -> bool {
    let found = Path::new(path).exists();
    if !found {
        missing(&format!("{path} is missing"));
    }
    found
}

fn missing(what: &str) {
    speediso_testsupport::missing(&format!(
        "{what}; install the packages in tests/apt/inventory.txt"
    ));
}

/// The pci.ids the system's lspci uses.
pub fn system_pci_ids() -> Option<&'static str> {
    ["/usr/share/hwdata/pci.ids", "/usr/share/misc/pci.ids"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// Run a command; panics with its stderr on failure; returns stdout.
pub fn output(cmd: &mut Command) -> String {
    String::from_utf8(speediso_testsupport::output_ok(cmd).stdout).unwrap()
}

/// `speediso [global args] inventory --json [args]` as JSON.
pub fn inventory(global: &[&str], args: &[&str]) -> Value {
    let text = output(
        Command::new(BIN)
            .args(global)
            .arg("inventory")
            .arg("--json")
            .args(args),
    );
    serde_json::from_str(&text).unwrap()
}

/// `inventory` of the captured tree `root` booted with the kernel command
/// line `cmdline`.
pub fn booted_inventory(root: &Path, cmdline: &str) -> Value {
    inventory(
        &["--root", root.to_str().unwrap(), "--cmdline", cmdline],
        &[],
    )
}

/// MemTotal of the meminfo file `path`, in bytes.
pub fn mem_total_bytes(path: &Path) -> u64 {
    let meminfo = std::fs::read_to_string(path).unwrap();
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or_else(|| panic!("no MemTotal in {}", path.display()))
        .parse()
        .unwrap();
    kib * 1024
}

/// Split one line of `lspci -mm` output into its fields, undoing the
/// shell-style quoting (`"a \"b\""`).
pub fn mm_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == ' ' {
            chars.next();
            continue;
        }
        let mut s = String::new();
        if c == '"' {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => s.extend(chars.next()),
                    '"' => break,
                    c => s.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                s.push(c);
                chars.next();
            }
        }
        out.push(s);
    }
    out
}

/// One device as lspci -mm shows it: slot, class, vendor, device, rev,
/// prog-if, subsystem vendor, subsystem device (empty strings when none).
#[derive(Debug, Clone, PartialEq)]
pub struct MmDevice {
    pub slot: String,
    pub class: String,
    pub vendor: String,
    pub device: String,
    pub rev: Option<String>,
    pub prog_if: Option<String>,
    pub svendor: String,
    pub sdevice: String,
}

pub fn parse_mm(text: &str) -> Vec<MmDevice> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f = mm_fields(l);
            let mut rest: Vec<String> = Vec::new();
            let (mut rev, mut prog_if) = (None, None);
            for x in &f[4..] {
                if let Some(r) = x.strip_prefix("-r") {
                    rev = Some(r.to_string());
                } else if let Some(p) = x.strip_prefix("-p") {
                    prog_if = Some(p.to_string());
                } else {
                    rest.push(x.clone());
                }
            }
            MmDevice {
                slot: f[0].clone(),
                class: f[1].clone(),
                vendor: f[2].clone(),
                device: f[3].clone(),
                rev,
                prog_if,
                svendor: rest.first().cloned().unwrap_or_default(),
                sdevice: rest.get(1).cloned().unwrap_or_default(),
            }
        })
        .collect()
}

/// `Name [1234]` → ("Name", "1234").
pub fn split_id(s: &str) -> (String, String) {
    let i = s.rfind(" [").unwrap_or_else(|| panic!("no [id] in {s:?}"));
    (s[..i].to_string(), s[i + 2..s.len() - 1].to_string())
}

/// `compare_pci` with lspci reading the captured tree `root` (its
/// sys/bus/pci, no hwdb) and the names of `pci_ids`.
pub fn compare_pci_on_tree(ours: &Value, root: &Path, pci_ids: &str) -> usize {
    let sysfs = format!("sysfs.path={}/sys/bus/pci", root.display());
    compare_pci(
        ours,
        &[
            "-A",
            "linux-sysfs",
            "-O",
            &sysfs,
            "-O",
            "hwdb.disable=1",
            "-i",
            pci_ids,
        ],
    )
}

/// Compare our `pci` array with `lspci -mm -D` (names) and `lspci -mm
/// -nn -D` (ids), both run with `lspci_args` (e.g. -i, -O sysfs.path=).
/// Returns the number of devices compared.
pub fn compare_pci(ours: &Value, lspci_args: &[&str]) -> usize {
    let run = |extra: &[&str]| {
        parse_mm(&output(
            Command::new("lspci")
                .args(["-mm", "-D"])
                .args(extra)
                .args(lspci_args),
        ))
    };
    let names = run(&[]);
    let ids = run(&["-nn"]);
    let ours = ours.as_array().expect("pci array");
    let our_addrs: Vec<&str> = ours
        .iter()
        .map(|p| p["address"].as_str().unwrap())
        .collect();
    let their_addrs: Vec<&str> = names.iter().map(|d| d.slot.as_str()).collect();
    assert_eq!(our_addrs, their_addrs, "PCI addresses (in lspci's order)");
    for ((p, n), i) in ours.iter().zip(&names).zip(&ids) {
        let s = |k: &str| p[k].as_str().unwrap_or("").to_string();
        let a = &n.slot;
        assert_eq!(s("subclass"), n.class, "{a} class name");
        assert_eq!(s("vendor"), n.vendor, "{a} vendor");
        assert_eq!(s("device"), n.device, "{a} device");
        assert_eq!(s("subsystem_vendor"), n.svendor, "{a} subsystem vendor");
        assert_eq!(s("subsystem_device"), n.sdevice, "{a} subsystem device");
        assert_eq!(split_id(&i.class).1, s("class_id"), "{a} class id");
        assert_eq!(split_id(&i.vendor).1, s("vendor_id"), "{a} vendor id");
        assert_eq!(split_id(&i.device).1, s("device_id"), "{a} device id");
        if !i.svendor.is_empty() {
            assert_eq!(
                split_id(&i.svendor).1,
                s("subsystem_vendor_id"),
                "{a} sv id"
            );
            assert_eq!(
                split_id(&i.sdevice).1,
                s("subsystem_device_id"),
                "{a} sd id"
            );
        }
        // lspci prints -rXX only for a non-zero revision.
        assert_eq!(
            i.rev.clone().unwrap_or_else(|| "00".into()),
            s("revision"),
            "{a} revision"
        );
        if let Some(pi) = &i.prog_if {
            assert_eq!(pi, &s("prog_if"), "{a} prog-if");
        }
    }
    ours.len()
}
