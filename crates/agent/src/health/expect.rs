//! Expected hardware (`speediso.expect.*`): what was ordered against what
//! booted, each a FAIL naming both. CPU threads: present logical CPUs, as
//! the inventory counts them. Memory: MemTotal from /proc/meminfo, which is
//! below the installed size by what firmware and the kernel keep (about 2%
//! on a large server, 5% on a small VM), so it passes from 5% + 0.5 GiB
//! below the expected size up to the expected size itself (MemTotal never
//! exceeds what is installed: more is the wrong machine). Disks: whole
//! disks in /sys/block except loop, ram, zram, optical (sr), dm, md, nbd
//! and removable ones (a USB stick an engineer plugged in). NICs: those
//! with a device behind them (`nics::physical`). DIMMs: populated SMBIOS
//! memory devices, naming the empty slots. Disk size: every counted disk
//! at least the size in GB. NIC speed: every NIC with carrier negotiated
//! at least the speed (an unknown speed is below it; no link at all
//! fails). GPUs: as the inventory's `gpus` counts them
//! (`inventory::gpus::is_gpu`: class 0302/0380, NVIDIA/AMD/Intel 0300/1200).

use super::{Finding, Out, Severity};
use crate::root::Root;

const CHECK: &str = "expect";
const GIB: f64 = (1u64 << 30) as f64;

/// Is `name` (in /sys/block) a disk that counts?
pub fn counts_as_disk(name: &str, removable: bool) -> bool {
    const VIRTUAL: &[&str] = &["loop", "ram", "zram", "sr", "dm-", "md", "nbd", "fd"];
    !removable && !VIRTUAL.iter().any(|p| name.starts_with(p))
}

/// Does MemTotal (`found` bytes) match `expected` GiB installed?
pub fn memory_ok(expected_gib: u64, found_bytes: u64) -> bool {
    let want = expected_gib as f64 * GIB;
    let low = want * 0.95 - 0.5 * GIB;
    (found_bytes as f64) >= low && (found_bytes as f64) <= want
}

/// The whole disks that count.
pub fn counted_disks(root: &Root) -> Vec<crate::blockdev::scan::Disk> {
    crate::blockdev::scan::disks(root)
        .into_iter()
        .filter(|d| counts_as_disk(&d.name, d.removable))
        .collect()
}

/// The whole disks that count, by name.
fn disk_names(root: &Root) -> Vec<String> {
    counted_disks(root).into_iter().map(|d| d.name).collect()
}

pub fn check(root: &Root, e: &super::Expect) -> Out {
    let mut out = Out::default();
    let mut done = Vec::new();
    let fail = |component: &str, what: String, evidence: String, source: &str, thr: String| {
        Finding::new(Severity::Fail, CHECK, component, what)
            .evidence(evidence)
            .source(source)
            .threshold(thr)
    };
    if let Some(want) = e.cpu_threads {
        let found = crate::inventory::cpu::collect(root).threads as u64;
        done.push(format!("CPU threads {found}"));
        if found != want {
            out.findings.push(fail(
                "CPU",
                format!("expected {want} CPU threads, found {found}"),
                format!("{found} present logical CPUs"),
                "/sys/devices/system/cpu/present",
                format!("= {want} (speediso.expect.cpu_threads)"),
            ));
        }
    }
    if let Some(want) = e.memory_gib {
        let abs = "/proc/meminfo";
        match std::fs::read_to_string(root.at(abs))
            .ok()
            .and_then(|t| crate::inventory::memory::mem_total(&t))
        {
            Some(found) => {
                let gib = found as f64 / GIB;
                done.push(format!("memory {gib:.1} GiB"));
                if !memory_ok(want, found) {
                    out.findings.push(fail(
                        "memory",
                        format!("expected {want} GiB of memory, found {gib:.1} GiB"),
                        format!("MemTotal = {} kB", found / 1024),
                        abs,
                        format!(
                            "{:.1} to {want} GiB (speediso.expect.memory_gib={want}, less 5% + 0.5 GiB the kernel and firmware keep)",
                            want as f64 * 0.95 - 0.5
                        ),
                    ));
                }
            }
            None => out.findings.push(Finding::unreadable(
                CHECK,
                "memory",
                abs,
                "no MemTotal line: memory size not known",
            )),
        }
    }
    // Counted devices: (expected, what, how to list them, where from, key).
    // A list is read only when its count is expected.
    type Lister = fn(&Root) -> Vec<String>;
    let counted: [(Option<u64>, &str, Lister, &str, &str); 3] = [
        (
            e.disk_count,
            "disks",
            disk_names,
            "/sys/block",
            "disk_count",
        ),
        (
            e.nic_count,
            "NICs",
            super::nics::physical,
            "/sys/class/net",
            "nic_count",
        ),
        (
            e.gpu_count,
            "GPUs",
            crate::inventory::gpus::addresses,
            "/sys/bus/pci/devices/*/class, vendor",
            "gpu_count",
        ),
    ];
    for (want, what, list, source, key) in counted {
        let Some(want) = want else { continue };
        let names = list(root);
        let found = names.len() as u64;
        done.push(format!("{found} {what}"));
        if found != want {
            out.findings.push(fail(
                what,
                format!("expected {want} {what}, found {found}"),
                if names.is_empty() {
                    format!("no {what}")
                } else {
                    names.join(", ")
                },
                source,
                format!("= {want} (speediso.expect.{key})"),
            ));
        }
    }
    if let Some(want) = e.dimm_count {
        let m = crate::inventory::memory::collect(root);
        match m.note.filter(|_| m.smbios_version.is_none()) {
            Some(why) => out.findings.push(Finding::unreadable(
                CHECK,
                "DIMMs",
                "/sys/firmware/dmi/tables/DMI",
                &why,
            )),
            None => {
                let found = m.dimms.len() as u64;
                done.push(format!("{found} DIMMs"));
                if found != want {
                    let names: Vec<String> = m
                        .dimms
                        .iter()
                        .map(|d| d.locator.clone().unwrap_or_else(|| "?".into()))
                        .collect();
                    out.findings.push(fail(
                        "DIMMs",
                        format!(
                            "expected {want} DIMMs, found {found}{}",
                            m.slots
                                .map(|s| format!(" in {s} slots"))
                                .unwrap_or_default()
                        ),
                        format!(
                            "populated: {}; empty: {}",
                            names.join(", "),
                            if m.empty_slots.is_empty() {
                                "none".to_string()
                            } else {
                                m.empty_slots.join(", ")
                            }
                        ),
                        "/sys/firmware/dmi/tables/DMI (SMBIOS type 17)",
                        format!("= {want} (speediso.expect.dimm_count)"),
                    ));
                }
            }
        }
    }
    if let Some(want) = e.disk_min_gb {
        let disks = counted_disks(root);
        done.push(format!("{} disk sizes", disks.len()));
        for d in disks.iter().filter(|d| d.size_bytes < want * 1_000_000_000) {
            out.findings.push(fail(
                &super::disks::component(d),
                format!(
                    "disk {} is {:.1} GB, smaller than the expected {want} GB",
                    d.name,
                    d.size_bytes as f64 / 1e9
                ),
                format!("size = {} sectors", d.size_bytes / 512),
                &format!("/sys/block/{}/size", d.name),
                format!(">= {want} GB (speediso.expect.disk_min_gb)"),
            ));
        }
    }
    if let Some(want) = e.nic_speed_mbps {
        let mut linked = 0;
        for n in super::nics::physical(root) {
            let dir = format!("/sys/class/net/{n}");
            if super::read::num::<u64>(root, &format!("{dir}/carrier")).ok() != Some(1) {
                continue;
            }
            linked += 1;
            let abs = format!("{dir}/speed");
            // -1 (unknown, as virtual NICs say) is below any expectation.
            let speed = super::read::num::<i64>(root, &abs).ok().unwrap_or(-1);
            if speed < want as i64 {
                out.findings.push(fail(
                    &n,
                    format!(
                        "{n} linked at {}, below the expected {want} Mb/s",
                        if speed < 0 {
                            "an unknown speed".to_string()
                        } else {
                            format!("{speed} Mb/s")
                        }
                    ),
                    format!("speed = {speed}"),
                    &abs,
                    format!(">= {want} Mb/s (speediso.expect.nic_speed_mbps)"),
                ));
            }
        }
        done.push(format!("{linked} NIC links"));
        if linked == 0 {
            out.findings.push(fail(
                "NICs",
                format!("no NIC has a link; expected at least one at {want} Mb/s"),
                "carrier = 0 on every NIC".into(),
                "/sys/class/net/*/carrier",
                format!(">= {want} Mb/s (speediso.expect.nic_speed_mbps)"),
            ));
        }
    }
    if done.is_empty() {
        out.skipped = true;
        out.summary = "nothing expected (no speediso.expect.* given)".into();
    } else {
        out.summary = format!("compared: {}", done.join(", "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_tolerance() {
        let gib = 1u64 << 30;
        // A 512 GiB server shows about 503.5 GiB.
        assert!(memory_ok(512, 503 * gib + gib / 2));
        // One 32 GiB DIMM missing.
        assert!(!memory_ok(512, 480 * gib));
        // A 2 GiB VM shows about 1.9 GiB.
        assert!(memory_ok(2, 1946 << 20));
        assert!(!memory_ok(2, gib));
        // More than ordered: the wrong machine.
        assert!(!memory_ok(256, 503 * gib));
        assert!(memory_ok(4, 4 * gib));
    }

    #[test]
    fn disks_that_count() {
        assert!(counts_as_disk("nvme0n1", false));
        assert!(counts_as_disk("sda", false));
        for n in ["loop0", "ram0", "zram0", "sr0", "dm-0", "md127", "nbd0"] {
            assert!(!counts_as_disk(n, false), "{n}");
        }
        assert!(!counts_as_disk("sdb", true));
    }
}
