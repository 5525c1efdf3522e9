//! Hardware inventory: one document with what lspci, lscpu, lsblk, blkid
//! and dmidecode would say, read straight from /sys, /proc, /dev and the
//! SMBIOS tables under a root directory (so fixture trees can stand in for
//! a machine). `collect` builds it; `render` prints the human form; the
//! `inventory` step module returns it as the step's result.
//!
//! Each area has its own file; none of them runs a tool except the optional
//! SMART query (`smart`). The LLDP listener (`lldp`) runs in a thread of its
//! own for the whole collection, for up to `Config::lldp_wait`.

pub mod bmc;
pub mod cpu;
pub mod disks;
pub mod dmi;
pub mod fsprobe;
pub mod gpus;
pub mod identify;
pub mod lldp;
pub mod memory;
pub mod nics;
pub mod pci;
pub mod pciids;
pub mod smart;
pub mod smbios;
pub mod storage;
pub mod sysfs;

use crate::cmdline::Cmdline;
use crate::module::{Module, StepContext};
use crate::options::{Kind, Options, Spec};
use crate::root::Root;
use anyhow::{bail, Result};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// The module name, as tasks/*.toml write it.
pub const NAME: &str = "inventory";

/// The whole inventory document. Field order is the JSON key order.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub pci: Vec<pci::PciDevice>,
    /// Display, 3D and compute devices with their details (`gpus.rs`).
    pub gpus: gpus::Gpus,
    pub cpu: cpu::Cpu,
    pub memory: memory::Memory,
    pub dmi: dmi::Dmi,
    pub disks: Vec<disks::DiskRecord>,
    /// PCI storage controllers with their mode and the disks behind them
    /// (drives or RAID logical volumes).
    pub storage_controllers: Vec<storage::StorageController>,
    pub nics: Vec<nics::Nic>,
    /// The BMC over IPMI and SMBIOS type 38 (`bmc.rs`); its `notes` say
    /// what could not be read ("no BMC found (...)" on a machine without).
    pub bmc: bmc::Bmc,
    pub boot_mode: BootMode,
    pub kernel: Kernel,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BootMode {
    /// `uefi` when /sys/firmware/efi exists, else `bios`.
    pub mode: &'static str,
    /// The MAC of BOOTIF= on the kernel command line, when present.
    pub boot_mac: Option<String>,
    /// UEFI Secure Boot state, when the firmware variable is readable.
    pub secure_boot: Option<bool>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Kernel {
    pub release: Option<String>,
    pub version: Option<String>,
    pub arch: &'static str,
    pub cmdline: Option<String>,
}

/// What to collect and from where.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// pci.ids to use instead of the usual locations.
    pub pci_ids: Option<PathBuf>,
    /// Ask smartctl for SMART health (live system only).
    pub smart: bool,
    /// Listen for LLDP neighbours on every NIC with carrier for up to this
    /// long (live system only); zero: not at all. Ends as soon as every
    /// such NIC has heard one.
    pub lldp_wait: Duration,
    /// Virtual interfaces (veth, bond, bridge) to list as NICs too.
    pub extra_nics: Vec<String>,
}

/// The default of `speediso.lldp.wait`: one 30 s LLDP interval and some.
pub const LLDP_WAIT_DEFAULT: Duration = Duration::from_secs(35);

/// After every NIC has heard a neighbour, listen this much longer for the
/// frames right behind (a second neighbour on the same link).
const LLDP_LINGER: Duration = Duration::from_millis(200);

/// SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c: 4 attribute bytes,
/// then one byte 0 or 1.
fn secure_boot(root: &Root) -> Option<bool> {
    let p = root.at("/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c");
    let b = std::fs::read(p).ok()?;
    b.get(4).map(|&v| v == 1)
}

/// Collect the inventory of the machine whose /proc, /sys and /dev are
/// under `root`.
pub fn collect(root: &Root, cmdline: &Cmdline, opts: &Config) -> Result<(Report, Vec<String>)> {
    let mut notes = Vec::new();
    // The LLDP listener runs alongside everything else, joined at the end.
    let lldp = (!opts.lldp_wait.is_zero() && root.is_system()).then(|| {
        let ifaces = nics::with_carrier(root, &opts.extra_nics);
        let wait = opts.lldp_wait;
        let n = ifaces.len();
        (
            n,
            std::thread::spawn(move || lldp::listen(&ifaces, wait, LLDP_LINGER)),
        )
    });
    // pci.ids parsing, disk probing and the BMC's answers are
    // independent; overlap them (a slow BMC then costs no extra time).
    let (ids, disks, bmc) = std::thread::scope(|s| {
        let ids = s.spawn(|| pciids::PciIds::load(opts.pci_ids.as_deref()));
        let bmc = s.spawn(|| bmc::collect(root));
        let disks = disks::collect(root, disks::Opts { smart: opts.smart });
        (
            ids.join().expect("pci.ids thread panicked"),
            disks,
            bmc.join().expect("BMC thread panicked"),
        )
    });
    let ids = ids?;
    if ids.is_empty() {
        notes.push(format!(
            "no pci.ids found ({}): PCI names are numeric fallbacks",
            pciids::DEFAULT_PATHS.join(", ")
        ));
    }
    let boot_mac = crate::host::bootif_mac(cmdline);
    let memory = memory::collect(root);
    if let Some(n) = &memory.note {
        notes.push(n.clone());
    }
    let efi = root.at("/sys/firmware/efi").exists();
    let pci = pci::collect(root, &ids);
    let gpus = gpus::collect(root, &pci);
    let storage_controllers = storage::collect(root, &pci, &crate::blockdev::scan::disks(root));
    if let Some(n) = &gpus.note {
        notes.push(format!("GPUs: {n}"));
    }
    notes.extend(bmc.notes.iter().map(|n| format!("BMC: {n}")));
    let mut nics = nics::collect(root, boot_mac.as_deref(), &opts.extra_nics);
    if let Some((n, t)) = lldp {
        let (mut heard, errors) = t.join().expect("LLDP listener thread panicked");
        notes.extend(errors);
        if n == 0 {
            notes.push("LLDP: no NIC has carrier, nothing to listen on".into());
        }
        for nic in &mut nics {
            nic.lldp = heard.remove(&nic.name);
        }
    }
    let inv = Report {
        pci,
        gpus,
        cpu: cpu::collect(root),
        memory,
        dmi: dmi::collect(root),
        disks,
        storage_controllers,
        nics,
        bmc,
        boot_mode: BootMode {
            mode: if efi { "uefi" } else { "bios" },
            secure_boot: if efi { secure_boot(root) } else { None },
            boot_mac,
        },
        kernel: Kernel {
            release: sysfs::read_trim(&root.at("/proc/sys/kernel/osrelease")),
            version: sysfs::read_trim(&root.at("/proc/sys/kernel/version")),
            arch: std::env::consts::ARCH,
            // Masked: the line carries the report token and credentials.
            cmdline: sysfs::read_trim(&root.at("/proc/cmdline"))
                .map(|l| crate::redact::cmdline(&l)),
        },
    };
    Ok((inv, notes))
}

/// The `inventory` step module (registered in `tasks::module_for`).
pub struct Inventory;

/// A wait given as a step option: seconds, or a duration string.
fn step_wait(v: &toml::Value) -> Option<Duration> {
    match v {
        toml::Value::Integer(n) => u64::try_from(*n).ok().map(Duration::from_secs),
        toml::Value::String(s) => speediso_proto::units::parse_duration(s),
        _ => None,
    }
}

fn step_opts(step: &toml::Table, options: &Options) -> Result<Config> {
    let mut o = Config {
        // The step listens by default: a booted machine has the time.
        // Values were validated against the spec (Kind::Duration).
        lldp_wait: options
            .get("lldp.wait")
            .and_then(speediso_proto::units::parse_duration)
            .unwrap_or(LLDP_WAIT_DEFAULT),
        extra_nics: Vec::new(),
        pci_ids: options.get("inventory.pci_ids").map(PathBuf::from),
        smart: options
            .get("inventory.smart")
            .map(|v| !matches!(v, "0" | "false" | "no" | "off"))
            .unwrap_or(true),
    };
    for (k, v) in step {
        match (k.as_str(), v) {
            ("pci_ids", toml::Value::String(s)) => o.pci_ids = Some(PathBuf::from(s)),
            ("smart", toml::Value::Boolean(b)) => o.smart = *b,
            ("lldp_wait", v) => {
                o.lldp_wait = step_wait(v).ok_or_else(|| {
                    anyhow::anyhow!(
                        "inventory option lldp_wait = {v} is not a wait: expected seconds \
                         (0 turns LLDP off) or a duration like 35s or 2m"
                    )
                })?
            }
            ("pci_ids", _) => bail!("inventory option pci_ids must be a path string"),
            ("smart", _) => bail!("inventory option smart must be true or false"),
            (k, _) => bail!("unknown inventory option '{k}'; known: pci_ids, smart, lldp_wait"),
        }
    }
    Ok(o)
}

impl Module for Inventory {
    type Config = Config;
    const NAME: &'static str = NAME;
    const OPTIONS: &'static [Spec] = &[
        Spec::cmdline(
            "inventory.pci_ids",
            Kind::NonEmpty,
            "pci.ids file for PCI names (default: /usr/share/hwdata, /usr/share/misc)",
        )
        .step("pci_ids")
        .flag("pci-ids"),
        Spec::cmdline(
            "inventory.smart",
            Kind::Bool,
            "ask smartctl for disk SMART health in the inventory step (default on)",
        )
        .step("smart")
        .flag("smart"),
        Spec::cmdline(
            "lldp.wait",
            Kind::Duration,
            "listen for LLDP neighbours on every NIC with carrier for up to this long \
             (seconds, or 35s, 2m; 0 turns LLDP off; default 35, one 30 s LLDP interval); \
             ends as soon as every such NIC has heard one",
        )
        .step("lldp_wait")
        .flag("lldp-wait"),
    ];

    fn configure(step: &toml::Table, options: &Options) -> Result<Config> {
        step_opts(step, options)
    }

    fn run(ctx: &StepContext<Config>) -> Result<serde_json::Value> {
        let line = crate::cmdline::read(ctx.root).unwrap_or_default();
        let (inv, notes) = collect(ctx.root, &crate::cmdline::parse(&line), ctx.config)?;
        for n in notes {
            ctx.events.log(n);
        }
        ctx.events.log(summary(&inv));
        // Where the machine is cabled, for whoever watches the console.
        for n in &inv.nics {
            for line in n.lldp.iter().flat_map(lldp_lines) {
                ctx.events.log(format!("{}: {line}", n.name));
            }
        }
        Ok(serde_json::to_value(&inv)?)
    }
}

/// `1.5 GiB`, binary units like lsblk's human sizes.
pub fn human_bytes(n: u64) -> String {
    const U: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < U.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else if v >= 100.0 || (v - v.round()).abs() < 0.05 {
        format!("{:.0} {}", v, U[i])
    } else {
        format!("{:.1} {}", v, U[i])
    }
}

fn or_dash(s: &Option<String>) -> &str {
    s.as_deref().unwrap_or("-")
}

/// One line for the step log: the main figures.
pub fn summary(inv: &Report) -> String {
    format!(
        "{} PCI devices, {} ({} threads), {} RAM, {} disks, {} NICs, {} boot",
        inv.pci.len(),
        or_dash(&inv.cpu.model),
        inv.cpu.threads,
        inv.memory
            .total_bytes
            .map(human_bytes)
            .unwrap_or_else(|| "?".into()),
        inv.disks.len(),
        inv.nics.len(),
        inv.boot_mode.mode
    )
}

/// The human form: compact sections that fit a screen.
pub fn render(inv: &Report, notes: &[String]) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let d = &inv.dmi;
    let _ = writeln!(
        o,
        "System   {} {} (serial {}, uuid {})",
        or_dash(&d.system_vendor),
        or_dash(&d.system_product),
        or_dash(&d.system_serial),
        or_dash(&d.system_uuid)
    );
    let _ = writeln!(
        o,
        "Board    {} {} · BIOS {} {} ({}) · chassis {}",
        or_dash(&d.board_vendor),
        or_dash(&d.board_name),
        or_dash(&d.bios_vendor),
        or_dash(&d.bios_version),
        or_dash(&d.bios_date),
        or_dash(&d.chassis_type)
    );
    let _ = writeln!(
        o,
        "Boot     {}{} · BOOTIF {}",
        inv.boot_mode.mode,
        match inv.boot_mode.secure_boot {
            Some(true) => " (secure boot on)",
            Some(false) => " (secure boot off)",
            None => "",
        },
        or_dash(&inv.boot_mode.boot_mac)
    );
    let _ = writeln!(o, "BMC      {}", bmc::line(&inv.bmc));
    let _ = writeln!(
        o,
        "Kernel   {} {}",
        or_dash(&inv.kernel.release),
        inv.kernel.arch
    );
    let c = &inv.cpu;
    let caches: Vec<String> = c
        .caches
        .iter()
        .map(|k| format!("{} {}", k.name, human_bytes(k.total_bytes)))
        .collect();
    let _ =
        writeln!(
        o,
        "CPU      {} · {} socket(s), {} cores, {} threads · {} MHz (max {}) · {} · {} NUMA node(s)",
        or_dash(&c.model),
        c.sockets,
        c.cores,
        c.threads,
        c.mhz.map(|m| format!("{m:.0}")).unwrap_or_else(|| "-".into()),
        c.mhz_max
            .map(|m| format!("{m:.0}"))
            .unwrap_or_else(|| "-".into()),
        if caches.is_empty() {
            "caches -".to_string()
        } else {
            caches.join(", ")
        },
        c.numa_nodes.len().max(1)
    );
    let m = &inv.memory;
    let _ = writeln!(
        o,
        "Memory   {} usable · {} DIMM(s) in {} slot(s){}{}",
        m.total_bytes.map(human_bytes).unwrap_or_else(|| "-".into()),
        m.dimms.len(),
        m.slots.map(|s| s.to_string()).unwrap_or_else(|| "?".into()),
        m.ecc
            .as_ref()
            .map(|e| format!(" · {e}"))
            .unwrap_or_default(),
        m.note
            .as_ref()
            .map(|n| format!(" · {n}"))
            .unwrap_or_default()
    );
    for dimm in &m.dimms {
        let _ = writeln!(
            o,
            "  {:<12} {:>8} {} {} MT/s  {} {}  S/N {}",
            or_dash(&dimm.locator),
            dimm.size_bytes.map(human_bytes).unwrap_or_default(),
            or_dash(&dimm.kind),
            dimm.configured_speed_mts
                .or(dimm.speed_mts)
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".into()),
            or_dash(&dimm.manufacturer),
            or_dash(&dimm.part_number),
            or_dash(&dimm.serial)
        );
    }
    let _ = writeln!(o, "PCI ({})", inv.pci.len());
    for p in &inv.pci {
        let mut line = pci::lspci_line(p);
        if let Some(dr) = &p.driver {
            let _ = write!(line, " [{dr}]");
        }
        if let Some(l) = &p.link {
            if let (Some(s), Some(w)) = (&l.speed, l.width) {
                let _ = write!(line, " {s} x{w}");
            }
        }
        let _ = writeln!(o, "  {line}");
    }
    if !inv.gpus.devices.is_empty() {
        let _ = writeln!(o, "GPUs ({})", inv.gpus.devices.len());
    }
    for g in &inv.gpus.devices {
        let n = g.nvidia.as_ref();
        let link = g
            .link
            .as_ref()
            .and_then(|l| Some(format!(" x{} of x{}", l.width?, l.max_width?)))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "  {} {}{} numa {} · {} {} · S/N {} · {}",
            g.address,
            n.and_then(|n| n.product_name.clone())
                .unwrap_or_else(|| format!("{} {}", g.vendor, g.device)),
            link,
            g.numa_node
                .map(|x| x.to_string())
                .unwrap_or_else(|| "-".into()),
            or_dash(&g.driver),
            or_dash(&g.driver_version),
            n.map(|n| or_dash(&n.serial)).unwrap_or("-"),
            n.map(|n| or_dash(&n.uuid)).unwrap_or("-"),
        );
    }
    let _ = writeln!(o, "Disks ({})", inv.disks.len());
    for dk in &inv.disks {
        let kind = if dk.rotational { "rot" } else { "ssd" };
        let mut flags = Vec::new();
        if dk.removable {
            flags.push("removable".to_string());
        }
        if dk.read_only {
            flags.push("ro".to_string());
        }
        if dk.in_use {
            let mut why: Vec<String> = dk.mountpoints.clone();
            if dk.swap {
                why.push("swap".into());
            }
            why.extend(dk.holders.iter().map(|h| format!("held by {h}")));
            flags.push(if why.is_empty() {
                "in use (partitions)".into()
            } else {
                format!("in use: {}", why.join(", "))
            });
        }
        if let Some(h) = &dk.hidden_areas {
            flags.extend(h.findings());
        }
        let _ = writeln!(
            o,
            "  {:<10} {:>9}  {:<6} {}  {}  S/N {}{}{}{}",
            dk.name,
            human_bytes(dk.size_bytes),
            dk.transport.as_deref().unwrap_or("-"),
            kind,
            or_dash(&dk.model),
            or_dash(&dk.serial),
            dk.fs
                .as_ref()
                .map(|f| format!("  {}", fs_text(f)))
                .unwrap_or_default(),
            dk.partition_table
                .as_ref()
                .map(|t| format!("  {t}"))
                .unwrap_or_default(),
            if flags.is_empty() {
                String::new()
            } else {
                format!("  [{}]", flags.join("; "))
            }
        );
        for p in &dk.partitions {
            let mut use_ = p.mountpoints.clone();
            if p.swap {
                use_.push("[SWAP]".into());
            }
            use_.extend(p.holders.iter().map(|h| format!("held by {h}")));
            let _ = writeln!(
                o,
                "    {:<10} {:>9}  {}{}",
                p.name,
                human_bytes(p.size_bytes),
                p.fs.as_ref().map(fs_text).unwrap_or_else(|| "-".into()),
                if use_.is_empty() {
                    String::new()
                } else {
                    format!("  {}", use_.join(", "))
                }
            );
        }
    }
    let _ = writeln!(o, "Storage controllers ({})", inv.storage_controllers.len());
    for c in &inv.storage_controllers {
        let disks: Vec<String> = c
            .disks
            .iter()
            .map(|d| match d.kind {
                "logical_volume" => format!("{} (logical volume)", d.name),
                _ => d.name.clone(),
            })
            .chain(
                c.physical_drives
                    .iter()
                    .map(|p| format!("{} {}", p.device_type, or_dash(&p.serial))),
            )
            .collect();
        let _ = writeln!(
            o,
            "  {}  {:<5} {}  {} {}  {}",
            c.address,
            c.mode,
            c.driver.as_deref().unwrap_or("-"),
            c.vendor,
            c.device,
            if disks.is_empty() {
                "-".to_string()
            } else {
                disks.join(", ")
            }
        );
    }
    let _ = writeln!(o, "NICs ({})", inv.nics.len());
    for n in &inv.nics {
        let _ = writeln!(
            o,
            "  {:<10} {}  {:<12} {:<12} {} {} mtu {}{}{}",
            n.name,
            or_dash(&n.mac),
            or_dash(&n.driver),
            or_dash(&n.pci_address),
            or_dash(&n.operstate),
            n.speed_mbps
                .map(|s| format!("{s} Mb/s"))
                .unwrap_or_else(|| "speed -".into()),
            n.mtu.map(|m| m.to_string()).unwrap_or_else(|| "-".into()),
            if n.boot { " (boot)" } else { "" },
            if n.addresses.is_empty() {
                String::new()
            } else {
                format!("  {}", n.addresses.join(" "))
            }
        );
        if n.driver_version.is_some() || n.firmware_version.is_some() {
            let _ = writeln!(
                o,
                "    driver {} {} · firmware {} · bus {}{}",
                or_dash(&n.driver),
                or_dash(&n.driver_version),
                or_dash(&n.firmware_version),
                or_dash(&n.bus_info),
                n.permanent_mac
                    .as_ref()
                    .filter(|p| Some(*p) != n.mac.as_ref())
                    .map(|p| format!(" · permanent MAC {p}"))
                    .unwrap_or_default()
            );
        }
        if !n.advertised_link_modes.is_empty() || !n.supported_link_modes.is_empty() {
            let _ = writeln!(
                o,
                "    link modes {} (supported {})",
                n.advertised_link_modes.join(" "),
                n.supported_link_modes.join(" ")
            );
        }
        if let Some(l) = &n.lldp {
            for line in lldp_lines(l) {
                let _ = writeln!(o, "    {line}");
            }
        }
    }
    for n in notes {
        let _ = writeln!(o, "note: {n}");
    }
    o
}

/// What the LLDP listener heard on one NIC, a line per neighbour.
pub fn lldp_lines(l: &lldp::Heard) -> Vec<String> {
    let mut lines: Vec<String> = l
        .neighbors
        .iter()
        .map(|nb| {
            let mut s = format!(
                "LLDP neighbour {} port {}",
                nb.system_name.as_deref().unwrap_or(&nb.chassis_id),
                nb.port_id
            );
            if let Some(d) = nb.port_description.as_ref().filter(|d| **d != nb.port_id) {
                s.push_str(&format!(" ({d})"));
            }
            if let Some(v) = nb.port_vlan_id {
                s.push_str(&format!(" · VLAN {v}"));
            }
            let names: Vec<String> = nb
                .vlans
                .iter()
                .map(|v| format!("{} {}", v.id, v.name))
                .collect();
            if !names.is_empty() {
                s.push_str(&format!(" · VLANs {}", names.join(", ")));
            }
            if !nb.management_addresses.is_empty() {
                s.push_str(&format!(" · mgmt {}", nb.management_addresses.join(" ")));
            }
            if let Some(a) = nb.link_aggregation.as_ref().filter(|a| a.enabled) {
                s.push_str(&format!(" · aggregated (port {})", a.port_id));
            }
            if let Some(m) = nb.max_frame_size {
                s.push_str(&format!(" · max frame {m}"));
            }
            s
        })
        .collect();
    if l.neighbors.is_empty() {
        lines.push(format!(
            "LLDP no neighbour heard in {:.1} s",
            l.listened_ms as f64 / 1000.0
        ));
    }
    if l.malformed_frames > 0 {
        lines.push(format!(
            "LLDP {} malformed frame(s) skipped (last: {})",
            l.malformed_frames,
            l.last_malformed.as_deref().unwrap_or("-")
        ));
    }
    lines
}

fn fs_text(f: &fsprobe::FsInfo) -> String {
    let mut s = f.kind.clone();
    if let Some(l) = &f.label {
        s.push_str(&format!(" \"{l}\""));
    }
    if let Some(u) = &f.uuid {
        s.push_str(&format!(" {u}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(256 << 30), "256 GiB");
        assert_eq!(human_bytes(1536 << 20), "1.5 GiB");
        assert_eq!(human_bytes(4000787030016), "3.6 TiB");
    }

    #[test]
    fn step_options() {
        let o = Options::default();
        let t: toml::Table = toml::from_str("smart = false\npci_ids = '/x'").unwrap();
        let s = step_opts(&t, &o).unwrap();
        assert!(!s.smart);
        assert_eq!(s.lldp_wait, LLDP_WAIT_DEFAULT);
        assert_eq!(s.pci_ids.as_deref(), Some(std::path::Path::new("/x")));
        assert!(step_opts(&toml::Table::new(), &o).unwrap().smart);
        let bad: toml::Table = toml::from_str("colour = 1").unwrap();
        assert!(step_opts(&bad, &o)
            .unwrap_err()
            .to_string()
            .contains("unknown inventory option 'colour'"));
        let o = Options::from_pairs([("lldp.wait", "0")]);
        assert!(step_opts(&toml::Table::new(), &o)
            .unwrap()
            .lldp_wait
            .is_zero());
        let o = Options::from_pairs([("lldp.wait", "2m")]);
        assert_eq!(
            step_opts(&toml::Table::new(), &o).unwrap().lldp_wait,
            Duration::from_secs(120)
        );
        let t: toml::Table = toml::from_str("lldp_wait = 5").unwrap();
        assert_eq!(step_opts(&t, &o).unwrap().lldp_wait, Duration::from_secs(5));
        let t: toml::Table = toml::from_str("lldp_wait = '10s'").unwrap();
        assert_eq!(
            step_opts(&t, &o).unwrap().lldp_wait,
            Duration::from_secs(10)
        );
        for bad in ["lldp_wait = -1", "lldp_wait = 'soon'", "lldp_wait = true"] {
            let t: toml::Table = toml::from_str(bad).unwrap();
            let e = step_opts(&t, &o).unwrap_err().to_string();
            assert!(e.contains("lldp_wait") && e.contains("not a wait"), "{e}");
        }
        let spec = crate::options::by_key(Inventory::OPTIONS, "lldp.wait").unwrap();
        assert!(spec.check("35").is_ok() && spec.check("0").is_ok());
        assert!(spec.check("soon").is_err());
    }

    #[test]
    fn lldp_render() {
        let mut h = lldp::Heard::default();
        h.add(&lldp::tests::switch_frame());
        h.add(&[0u8; 20]);
        let l = lldp_lines(&h);
        assert_eq!(
            l[0],
            "LLDP neighbour leaf-r12.dc1 port Ethernet12 (server r12-07 eth0) · VLAN 100 \
             · VLANs 100 prod1, 200 mgmt · mgmt 10.0.12.1 2001:db8::12 · aggregated (port 42) \
             · max frame 9216"
        );
        assert!(
            l[1].starts_with("LLDP 1 malformed frame(s) skipped (last: "),
            "{}",
            l[1]
        );
        let l = lldp_lines(&lldp::Heard {
            listened_ms: 1500,
            ..Default::default()
        });
        assert_eq!(l, ["LLDP no neighbour heard in 1.5 s"]);
    }
}
