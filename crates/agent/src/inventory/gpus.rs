//! GPUs: every PCI 3D or other display controller (class 0302, 0380), and
//! the VGA controllers and compute accelerators of NVIDIA, AMD and Intel
//! (0300, 1200; a BMC's VGA is no GPU), with what sysfs says
//! of them (NUMA node, IOMMU group, link, BAR sizes, driver and its
//! version) and, for NVIDIA GPUs, the parsed `nvidia-smi -q -x` report.
//!
//! `is_gpu` is the one definition of "a GPU": the inventory's `gpus`, the
//! health check `gpu` and `speediso.expect.gpu_count` all use it. On the
//! machine `nvidia-smi` is run through `crate::cmd` when it is on PATH; under
//! a fixture root its raw XML is read from `<root>/nvidia-smi-q-x.xml` (the
//! capture convention, fixtures/README.gpu.md). A missing tool is a note.

use super::pci::{PciDevice, PciLink};
use super::sysfs::{link_name, read_trim};
use crate::root::Root;
use serde::Serialize;

const BASE: &str = "/sys/bus/pci/devices";

/// Where a fixture tree keeps the raw output of `nvidia-smi -q -x`.
pub const SMI_CAPTURE: &str = "/nvidia-smi-q-x.xml";

/// Vendors whose processing accelerators (class 1200) count as GPUs:
/// NVIDIA, AMD (ATI), Intel.
const COMPUTE_VENDORS: &[u16] = &[0x10de, 0x1002, 0x8086];

/// Is a PCI function of this vendor and class (base and subclass, `0302`)
/// a GPU? 3D controllers (0302) and other display controllers (0380) of
/// any vendor; VGA controllers (0300) and processing accelerators (1200)
/// of NVIDIA, AMD and Intel. The VGA of a server's BMC (ASPEED, Matrox,
/// Pilot) or of a hypervisor's console is no GPU: counting it would make
/// `speediso.expect.gpu_count=4` fail on every 4-GPU server.
pub fn is_gpu(vendor: u16, class16: u16) -> bool {
    match class16 {
        0x0302 | 0x0380 => true,
        0x0300 | 0x1200 => COMPUTE_VENDORS.contains(&vendor),
        _ => false,
    }
}

fn hex(s: &str) -> Option<u32> {
    u32::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
}

/// The PCI addresses of the GPUs under `root`, sorted, read from sysfs
/// alone (no pci.ids): what `speediso.expect.gpu_count` counts.
pub fn addresses(root: &Root) -> Vec<String> {
    let mut v: Vec<String> = crate::root::dir_names(&root.at(BASE))
        .into_iter()
        .filter(|a| {
            let attr =
                |n: &str| read_trim(&root.at(&format!("{BASE}/{a}/{n}"))).and_then(|s| hex(&s));
            match (attr("vendor"), attr("class")) {
                (Some(v), Some(c)) => is_gpu(v as u16, (c >> 8) as u16),
                _ => false,
            }
        })
        .collect();
    v.sort_by_key(|a| super::pci::addr_key(a));
    v
}

/// The `gpus` section of the inventory.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Gpus {
    pub devices: Vec<Gpu>,
    /// Where the NVIDIA details came from: `nvidia-smi -q -x` on the
    /// machine, the capture file under a fixture root; `null` when none.
    pub nvidia_smi: Option<String>,
    /// Why there are no NVIDIA details (no nvidia-smi, output not XML);
    /// never an error of the inventory.
    pub note: Option<String>,
    /// nvidia-smi ran (or its capture was there) but its output could not
    /// be used: the health check's "unreadable".
    #[serde(skip)]
    pub smi_error: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Gpu {
    /// `0000:18:00.0`.
    pub address: String,
    pub vendor_id: String,
    pub device_id: String,
    /// Names as the `pci` section gives them (pci.ids, lspci's fallbacks).
    pub vendor: String,
    pub device: String,
    pub class_id: String,
    pub numa_node: Option<u32>,
    /// The name of the `iommu_group` link's target (`42`).
    pub iommu_group: Option<String>,
    /// Current and maximum link speed and width.
    pub link: Option<PciLink>,
    /// The memory and I/O regions the device decodes (`resource`).
    pub bars: Vec<Bar>,
    pub driver: Option<String>,
    /// `/sys/module/<driver>/version`; for `nvidia` without it, the version
    /// in the first line of `/proc/driver/nvidia/version`.
    pub driver_version: Option<String>,
    /// The first line of `/proc/driver/nvidia/version` (NVIDIA only).
    pub nvidia_driver: Option<String>,
    /// From `nvidia-smi -q -x`, matched by PCI bus id.
    pub nvidia: Option<smi::NvidiaGpu>,
}

/// One region from the `resource` file.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Bar {
    /// Line number in `resource`: 0-5 the BARs, 6 the expansion ROM.
    pub index: usize,
    pub size_bytes: u64,
    /// `mem` or `io`.
    pub kind: &'static str,
    pub prefetchable: bool,
    /// The kernel's IORESOURCE_* flags as in the file.
    pub flags: String,
}

// IORESOURCE_* (include/linux/ioport.h).
const IORESOURCE_IO: u64 = 0x100;
const IORESOURCE_MEM: u64 = 0x200;
const IORESOURCE_PREFETCH: u64 = 0x2000;

/// Parse a `resource` file: `start end flags` hex lines; a region is one
/// with end > start (unused ones are all zero), size end - start + 1.
/// Lines past the ROM (bridge windows, SR-IOV) are not BARs and are left
/// out.
pub fn parse_resource(text: &str) -> Vec<Bar> {
    text.lines()
        .take(7)
        .enumerate()
        .filter_map(|(index, line)| {
            let mut it = line
                .split_whitespace()
                .map(|x| u64::from_str_radix(x.trim_start_matches("0x"), 16).ok());
            let (Some(Some(start)), Some(Some(end)), Some(Some(flags))) =
                (it.next(), it.next(), it.next())
            else {
                return None;
            };
            if end <= start || flags & (IORESOURCE_IO | IORESOURCE_MEM) == 0 {
                return None;
            }
            Some(Bar {
                index,
                size_bytes: end - start + 1,
                kind: if flags & IORESOURCE_IO != 0 {
                    "io"
                } else {
                    "mem"
                },
                prefetchable: flags & IORESOURCE_PREFETCH != 0,
                flags: format!("{flags:#x}"),
            })
        })
        .collect()
}

/// The version in NVIDIA's `NVRM version: NVIDIA UNIX x86_64 Kernel Module
/// 550.54.15  Tue Mar ...` line: the first word made of digits and dots.
fn nvidia_version(line: &str) -> Option<String> {
    line.split_whitespace()
        .find(|w| w.contains('.') && w.chars().all(|c| c.is_ascii_digit() || c == '.'))
        .map(String::from)
}

/// The GPUs among `pci` (the inventory's PCI list), with their sysfs
/// details and, where there are NVIDIA GPUs, nvidia-smi's.
pub fn collect(root: &Root, pci: &[PciDevice]) -> Gpus {
    let mut out = Gpus::default();
    let nvidia_line = read_trim(&root.at("/proc/driver/nvidia/version"))
        .and_then(|t| t.lines().next().map(|l| l.trim().to_string()));
    for p in pci {
        let (Some(v), Some(c)) = (hex(&p.vendor_id), hex(&p.class_id)) else {
            continue;
        };
        if !is_gpu(v as u16, c as u16) {
            continue;
        }
        let dir = format!("{BASE}/{}", p.address);
        let driver_version = p.driver.as_ref().and_then(|d| {
            read_trim(&root.at(&format!("/sys/module/{d}/version"))).or_else(|| {
                (d == "nvidia")
                    .then(|| nvidia_line.as_deref().and_then(nvidia_version))
                    .flatten()
            })
        });
        out.devices.push(Gpu {
            address: p.address.clone(),
            vendor_id: p.vendor_id.clone(),
            device_id: p.device_id.clone(),
            vendor: p.vendor.clone(),
            device: p.device.clone(),
            class_id: p.class_id.clone(),
            numa_node: p.numa_node,
            iommu_group: link_name(&root.at(&format!("{dir}/iommu_group"))),
            link: p.link.clone(),
            bars: std::fs::read_to_string(root.at(&format!("{dir}/resource")))
                .map(|t| parse_resource(&t))
                .unwrap_or_default(),
            nvidia_driver: (v == 0x10de).then(|| nvidia_line.clone()).flatten(),
            driver: p.driver.clone(),
            driver_version,
            nvidia: None,
        });
    }
    if out.devices.iter().any(|g| g.vendor_id == "10de") {
        add_nvidia_smi(root, &mut out);
    }
    out
}

/// Run nvidia-smi (or read its capture) and attach each GPU's details.
fn add_nvidia_smi(root: &Root, out: &mut Gpus) {
    let (source, xml) = if root.is_system() {
        if !crate::cmd::on_path("nvidia-smi") {
            out.note =
                Some("nvidia-smi is not in this image: no NVIDIA ECC, serial or UUID".into());
            return;
        }
        let source = "nvidia-smi -q -x".to_string();
        match crate::cmd::run(&["nvidia-smi", "-q", "-x"]) {
            Ok(x) => (source, x),
            Err(e) => {
                out.nvidia_smi = Some(source);
                out.note = Some(format!("{e:#}"));
                out.smi_error = true;
                return;
            }
        }
    } else {
        let path = root.at(SMI_CAPTURE);
        match std::fs::read(&path) {
            Ok(b) => (
                SMI_CAPTURE.to_string(),
                String::from_utf8_lossy(&b).into_owned(),
            ),
            Err(_) => {
                out.note = Some(format!(
                    "no {SMI_CAPTURE} in this fixture tree: no NVIDIA ECC, serial or UUID"
                ));
                return;
            }
        }
    };
    out.nvidia_smi = Some(source.clone());
    match smi::parse(&xml) {
        Ok(log) => {
            let mut unmatched = Vec::new();
            for g in log.gpus {
                match out.devices.iter_mut().find(|d| d.address == g.bus_id) {
                    Some(d) => d.nvidia = Some(g),
                    None => unmatched.push(g.bus_id),
                }
            }
            if !unmatched.is_empty() {
                out.note = Some(format!(
                    "{source} names GPUs not found in {BASE}: {}",
                    unmatched.join(", ")
                ));
            }
        }
        Err(why) => {
            out.note = Some(format!("{source}: {why}"));
            out.smi_error = true;
        }
    }
}

/// The parser of `nvidia-smi -q -x` (root `nvidia_smi_log`, DTD
/// `nvsmi_device_v*.dtd`). Pure: text in, typed values out. Element names
/// that changed across driver versions are all accepted.
pub mod smi {
    use roxmltree::{Document, Node, ParsingOptions};
    use serde::Serialize;

    #[derive(Debug, Clone, Default, PartialEq, Serialize)]
    pub struct Log {
        pub driver_version: Option<String>,
        pub cuda_version: Option<String>,
        pub gpus: Vec<NvidiaGpu>,
    }

    #[derive(Debug, Clone, Default, PartialEq, Serialize)]
    pub struct NvidiaGpu {
        /// `pci/pci_bus_id` (or the `id` attribute) as `0000:18:00.0`.
        pub bus_id: String,
        pub product_name: Option<String>,
        pub uuid: Option<String>,
        pub serial: Option<String>,
        pub vbios_version: Option<String>,
        /// `fb_memory_usage/total`, MiB.
        pub memory_total_mib: Option<u64>,
        /// `ecc_mode/current_ecc`: `Enabled`, `Disabled`.
        pub ecc_mode: Option<String>,
        pub ecc_volatile: EccCounts,
        pub ecc_aggregate: EccCounts,
        pub retired_pages: RetiredPages,
        pub remapped_rows: RemappedRows,
        /// `temperature/gpu_temp`, °C.
        pub temperature_c: Option<f64>,
        pub power: Power,
        pub clocks: Clocks,
        /// Clock throttle (event) reasons that are `Active`, by their name
        /// without the `clocks_throttle_reason_`/`clocks_event_reason_`
        /// prefix: `gpu_idle`, `hw_slowdown`, `sw_thermal_slowdown`.
        pub throttle_active: Vec<String>,
        /// NVLink fabric state and status (`fabric/state`, `fabric/status`:
        /// HGX systems with NVSwitch), when the report has them.
        pub nvlink_fabric: Option<String>,
    }

    /// ECC error totals; `null` when not reported (`N/A`, no ECC).
    #[derive(Debug, Clone, Default, PartialEq, Serialize)]
    pub struct EccCounts {
        /// single_bit/total, or the sum of sram_correctable and
        /// dram_correctable.
        pub correctable: Option<u64>,
        /// double_bit/total, or the sum of sram_uncorrectable* and
        /// dram_uncorrectable.
        pub uncorrectable: Option<u64>,
    }

    /// Page retirement (before Ampere).
    #[derive(Debug, Clone, Default, PartialEq, Serialize)]
    pub struct RetiredPages {
        pub single_bit: Option<u64>,
        pub double_bit: Option<u64>,
        /// `pending_retirement` (older: `pending_blacklist`): a reset is
        /// needed to retire them.
        pub pending: Option<bool>,
    }

    /// The row remapper (Ampere and later).
    #[derive(Debug, Clone, Default, PartialEq, Serialize)]
    pub struct RemappedRows {
        pub correctable: Option<u64>,
        pub uncorrectable: Option<u64>,
        /// A remap waits for a reset.
        pub pending: Option<bool>,
        /// A row could not be remapped: the GPU should be replaced.
        pub failure: Option<bool>,
    }

    /// Watts.
    #[derive(Debug, Clone, Default, PartialEq, Serialize)]
    pub struct Power {
        pub limit_w: Option<f64>,
        pub default_limit_w: Option<f64>,
        pub max_limit_w: Option<f64>,
    }

    /// MHz.
    #[derive(Debug, Clone, Default, PartialEq, Serialize)]
    pub struct Clocks {
        pub graphics_mhz: Option<u64>,
        pub mem_mhz: Option<u64>,
        pub max_graphics_mhz: Option<u64>,
        pub max_mem_mhz: Option<u64>,
    }

    /// `00000000:18:00.0` → `0000:18:00.0` (the domain as 4 hex digits,
    /// lowercase, as sysfs names it).
    pub fn normalise_bus_id(id: &str) -> Option<String> {
        let id = id.trim().to_ascii_lowercase();
        let (dom, rest) = id.split_once(':')?;
        let dom = u32::from_str_radix(dom, 16).ok()?;
        let mut parts = rest.split([':', '.']);
        let (Some(b), Some(d), Some(f), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let b = u8::from_str_radix(b, 16).ok()?;
        let d = u8::from_str_radix(d, 16).ok()?;
        let f = u8::from_str_radix(f, 16).ok()?;
        Some(format!("{dom:04x}:{b:02x}:{d:02x}.{f:x}"))
    }

    fn child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
        n.children().find(|c| c.has_tag_name(name))
    }

    /// The trimmed text at `path` (`a/b/c`) below `n`; `None` when absent,
    /// empty or `N/A`.
    fn text<'a>(n: Node<'a, '_>, path: &str) -> Option<&'a str> {
        let mut cur = n;
        for p in path.split('/') {
            cur = child(cur, p)?;
        }
        let t = cur.text()?.trim();
        (!t.is_empty() && t != "N/A").then_some(t)
    }

    fn string(n: Node, path: &str) -> Option<String> {
        text(n, path).map(String::from)
    }

    /// The number at the start of `81559 MiB`, `700.00 W`, `34 C`.
    fn number(n: Node, path: &str) -> Option<f64> {
        text(n, path)?.split_whitespace().next()?.parse().ok()
    }

    fn count(n: Node, path: &str) -> Option<u64> {
        text(n, path)?.split_whitespace().next()?.parse().ok()
    }

    fn yes(n: Node, path: &str) -> Option<bool> {
        match text(n, path)? {
            "Yes" | "yes" => Some(true),
            "No" | "no" => Some(false),
            _ => None,
        }
    }

    /// The first of `paths` that has a value.
    fn first<T>(n: Node, paths: &[&str], f: fn(Node, &str) -> Option<T>) -> Option<T> {
        paths.iter().find_map(|p| f(n, p))
    }

    /// Totals of `ecc_errors/volatile` or `/aggregate`: the old
    /// `single_bit/total`, `double_bit/total`, or the newer flat counters
    /// (`sram_correctable`, `sram_uncorrectable` or its `_parity` and
    /// `_secded` halves, `dram_correctable`, `dram_uncorrectable`) summed.
    fn ecc(n: Option<Node>) -> EccCounts {
        let Some(n) = n else {
            return EccCounts::default();
        };
        let sum = |pred: fn(&str) -> bool| -> Option<u64> {
            let vals: Vec<u64> = n
                .children()
                .filter(|c| c.is_element() && pred(c.tag_name().name()))
                .filter_map(|c| c.text()?.trim().parse().ok())
                .collect();
            (!vals.is_empty()).then(|| vals.iter().sum())
        };
        EccCounts {
            correctable: count(n, "single_bit/total")
                .or_else(|| sum(|t| t.ends_with("_correctable"))),
            uncorrectable: count(n, "double_bit/total").or_else(|| {
                sum(|t| {
                    t.ends_with("_uncorrectable")
                        || t.ends_with("_uncorrectable_parity")
                        || t.ends_with("_uncorrectable_secded")
                })
            }),
        }
    }

    fn gpu(g: Node) -> Result<NvidiaGpu, String> {
        let raw = text(g, "pci/pci_bus_id")
            .or_else(|| g.attribute("id"))
            .ok_or("a <gpu> without pci/pci_bus_id")?;
        let bus_id = normalise_bus_id(raw).ok_or_else(|| format!("{raw:?} is not a PCI bus id"))?;
        let throttle =
            child(g, "clocks_event_reasons").or_else(|| child(g, "clocks_throttle_reasons"));
        let throttle_active = throttle
            .map(|t| {
                t.children()
                    .filter(|c| c.is_element() && c.text().map(str::trim) == Some("Active"))
                    .map(|c| {
                        let n = c.tag_name().name();
                        n.split_once("_reason_").map_or(n, |x| x.1).to_string()
                    })
                    .collect()
            })
            .unwrap_or_default();
        let power = child(g, "gpu_power_readings").or_else(|| child(g, "power_readings"));
        let ecc_errors = child(g, "ecc_errors");
        let fabric = match (text(g, "fabric/state"), text(g, "fabric/status")) {
            (Some(s), Some(t)) => Some(format!("{s} ({t})")),
            (Some(s), None) | (None, Some(s)) => Some(s.to_string()),
            (None, None) => None,
        };
        Ok(NvidiaGpu {
            bus_id,
            product_name: string(g, "product_name"),
            uuid: string(g, "uuid"),
            serial: string(g, "serial"),
            vbios_version: string(g, "vbios_version"),
            memory_total_mib: count(g, "fb_memory_usage/total"),
            ecc_mode: string(g, "ecc_mode/current_ecc"),
            ecc_volatile: ecc(ecc_errors.and_then(|e| child(e, "volatile"))),
            ecc_aggregate: ecc(ecc_errors.and_then(|e| child(e, "aggregate"))),
            retired_pages: RetiredPages {
                single_bit: count(
                    g,
                    "retired_pages/multiple_single_bit_retirement/retired_count",
                ),
                double_bit: count(g, "retired_pages/double_bit_retirement/retired_count"),
                pending: first(
                    g,
                    &[
                        "retired_pages/pending_retirement",
                        "retired_pages/pending_blacklist",
                    ],
                    yes,
                ),
            },
            // The XML's names, and the text report's (`nvidia-smi -q`).
            remapped_rows: RemappedRows {
                correctable: first(
                    g,
                    &[
                        "remapped_rows/remapped_row_corr",
                        "remapped_rows/correctable",
                    ],
                    count,
                ),
                uncorrectable: first(
                    g,
                    &[
                        "remapped_rows/remapped_row_unc",
                        "remapped_rows/uncorrectable",
                    ],
                    count,
                ),
                pending: first(
                    g,
                    &[
                        "remapped_rows/remapped_row_pending",
                        "remapped_rows/pending",
                    ],
                    yes,
                ),
                failure: first(
                    g,
                    &[
                        "remapped_rows/remapped_row_failure",
                        "remapped_rows/remapping_failure_occurred",
                    ],
                    yes,
                ),
            },
            temperature_c: number(g, "temperature/gpu_temp"),
            power: match power {
                Some(p) => Power {
                    limit_w: first(
                        p,
                        &["current_power_limit", "power_limit", "enforced_power_limit"],
                        number,
                    ),
                    default_limit_w: number(p, "default_power_limit"),
                    max_limit_w: number(p, "max_power_limit"),
                },
                None => Power::default(),
            },
            clocks: Clocks {
                graphics_mhz: count(g, "clocks/graphics_clock"),
                mem_mhz: count(g, "clocks/mem_clock"),
                max_graphics_mhz: count(g, "max_clocks/graphics_clock"),
                max_mem_mhz: count(g, "max_clocks/mem_clock"),
            },
            throttle_active,
            nvlink_fabric: fabric,
        })
    }

    /// Parse the whole report. `Err` says why it is not one (not XML, not
    /// `nvidia_smi_log`, a GPU without a bus id); never a panic.
    pub fn parse(xml: &str) -> Result<Log, String> {
        // nvidia-smi writes a DOCTYPE naming its DTD; it is not fetched.
        let opts = ParsingOptions {
            allow_dtd: true,
            ..ParsingOptions::default()
        };
        let doc = Document::parse_with_options(xml, opts).map_err(|e| format!("not XML: {e}"))?;
        let root = doc.root_element();
        if !root.has_tag_name("nvidia_smi_log") {
            return Err(format!(
                "root element <{}> is not <nvidia_smi_log>",
                root.tag_name().name()
            ));
        }
        let gpus = root
            .children()
            .filter(|c| c.has_tag_name("gpu"))
            .map(gpu)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Log {
            driver_version: string(root, "driver_version"),
            cuda_version: string(root, "cuda_version"),
            gpus,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::smi::*;
    use super::*;

    #[test]
    fn which_devices_are_gpus() {
        assert!(is_gpu(0x10de, 0x0302)); // NVIDIA 3D controller
        assert!(!is_gpu(0x1a03, 0x0300)); // the BMC's ASPEED VGA: no GPU
        assert!(!is_gpu(0x1234, 0x0300)); // QEMU's VGA console
        assert!(is_gpu(0x10de, 0x0300)); // an NVIDIA RTX A5500 (VGA class)
        assert!(is_gpu(0x1002, 0x0380)); // a display controller of any vendor
        assert!(is_gpu(0x1002, 0x1200)); // AMD Instinct
        assert!(!is_gpu(0x1da3, 0x1200)); // a processing accelerator of another vendor
        assert!(!is_gpu(0x10de, 0x0403)); // the GPU's HDMI audio function
        assert!(!is_gpu(0x8086, 0x0604));
    }

    #[test]
    fn bars_from_the_resource_file() {
        let text = "0x00000000e2000000 0x00000000e2ffffff 0x0000000000040200\n\
                    0x0000238000000000 0x0000239fffffffff 0x000000000014220c\n\
                    0x0000000000000000 0x0000000000000000 0x0000000000000000\n\
                    0x00000000e1000000 0x00000000e1ffffff 0x000000000014220c\n\
                    0x0000000000000000 0x0000000000000000 0x0000000000000000\n\
                    0x000000000000f000 0x000000000000f07f 0x0000000000040101\n\
                    0x0000000000000000 0x0000000000000000 0x0000000000000000\n\
                    0x00000000e3000000 0x00000000e3ffffff 0x0000000000000200\n";
        let bars = parse_resource(text);
        let got: Vec<(usize, u64, &str, bool)> = bars
            .iter()
            .map(|b| (b.index, b.size_bytes, b.kind, b.prefetchable))
            .collect();
        assert_eq!(
            got,
            [
                (0, 16 << 20, "mem", false),
                (1, 128 << 30, "mem", true),
                (3, 16 << 20, "mem", true),
                (5, 128, "io", false),
            ]
        );
        assert!(parse_resource("garbage\n\u{1}\n").is_empty());
    }

    #[test]
    fn bus_ids() {
        assert_eq!(
            normalise_bus_id("00000000:18:00.0").as_deref(),
            Some("0000:18:00.0")
        );
        assert_eq!(
            normalise_bus_id("00000000:AB:00.0").as_deref(),
            Some("0000:ab:00.0")
        );
        assert_eq!(
            normalise_bus_id("0001:03:00.1").as_deref(),
            Some("0001:03:00.1")
        );
        assert_eq!(normalise_bus_id("18:00.0"), None);
        assert_eq!(normalise_bus_id("x:y:z.w"), None);
    }

    #[test]
    fn nvidia_driver_version_line() {
        assert_eq!(
            nvidia_version("NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024").as_deref(),
            Some("550.54.15")
        );
        assert_eq!(nvidia_version("NVRM version: unknown"), None);
    }

    /// A V100-era report (DTD v10): ECC as single_bit/double_bit with
    /// totals, page retirement with a pending retirement, the older
    /// `clocks_throttle_reasons` and `power_readings`.
    const OLD: &str = r#"<?xml version="1.0" ?>
<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v10.dtd">
<nvidia_smi_log>
	<driver_version>470.82.01</driver_version>
	<cuda_version>11.4</cuda_version>
	<attached_gpus>1</attached_gpus>
	<gpu id="00000000:3B:00.0">
		<product_name>Tesla V100-PCIE-32GB</product_name>
		<serial>0323918012345</serial>
		<uuid>GPU-6a5e7c1d-0000-1111-2222-333344445555</uuid>
		<vbios_version>88.00.98.00.01</vbios_version>
		<pci><pci_bus_id>00000000:3B:00.0</pci_bus_id></pci>
		<clocks_throttle_reasons>
			<clocks_throttle_reason_gpu_idle>Active</clocks_throttle_reason_gpu_idle>
			<clocks_throttle_reason_hw_slowdown>Active</clocks_throttle_reason_hw_slowdown>
			<clocks_throttle_reason_sw_thermal_slowdown>Not Active</clocks_throttle_reason_sw_thermal_slowdown>
		</clocks_throttle_reasons>
		<fb_memory_usage><total>32510 MiB</total><used>0 MiB</used><free>32510 MiB</free></fb_memory_usage>
		<ecc_mode><current_ecc>Enabled</current_ecc><pending_ecc>Enabled</pending_ecc></ecc_mode>
		<ecc_errors>
			<volatile>
				<single_bit><device_memory>3</device_memory><register_file>0</register_file><l1_cache>0</l1_cache><l2_cache>0</l2_cache><texture_memory>N/A</texture_memory><texture_shm>N/A</texture_shm><cbu>N/A</cbu><total>3</total></single_bit>
				<double_bit><device_memory>0</device_memory><register_file>0</register_file><l1_cache>0</l1_cache><l2_cache>0</l2_cache><texture_memory>N/A</texture_memory><texture_shm>N/A</texture_shm><cbu>0</cbu><total>0</total></double_bit>
			</volatile>
			<aggregate>
				<single_bit><device_memory>41</device_memory><total>41</total></single_bit>
				<double_bit><device_memory>1</device_memory><total>1</total></double_bit>
			</aggregate>
		</ecc_errors>
		<retired_pages>
			<multiple_single_bit_retirement><retired_count>2</retired_count><retired_pagelist></retired_pagelist></multiple_single_bit_retirement>
			<double_bit_retirement><retired_count>1</retired_count><retired_pagelist></retired_pagelist></double_bit_retirement>
			<pending_blacklist>Yes</pending_blacklist>
		</retired_pages>
		<remapped_rows>N/A</remapped_rows>
		<temperature><gpu_temp>31 C</gpu_temp></temperature>
		<power_readings><power_draw>25.10 W</power_draw><power_limit>250.00 W</power_limit><default_power_limit>250.00 W</default_power_limit><max_power_limit>250.00 W</max_power_limit></power_readings>
		<clocks><graphics_clock>135 MHz</graphics_clock><mem_clock>877 MHz</mem_clock></clocks>
		<max_clocks><graphics_clock>1380 MHz</graphics_clock><mem_clock>877 MHz</mem_clock></max_clocks>
	</gpu>
</nvidia_smi_log>
"#;

    /// An H100 report (DTD v12): the flat sram/dram counters, the row
    /// remapper, `clocks_event_reasons`, `gpu_power_readings`, fabric.
    const NEW: &str = r#"<?xml version="1.0" ?>
<!DOCTYPE nvidia_smi_log SYSTEM "nvsmi_device_v12.dtd">
<nvidia_smi_log>
	<driver_version>550.54.15</driver_version>
	<cuda_version>12.4</cuda_version>
	<gpu id="00000000:AB:00.0">
		<product_name>NVIDIA H100 80GB HBM3</product_name>
		<serial>1654123000003</serial>
		<uuid>GPU-0b4d6c2e-3f1a-4e5b-8c7d-9e0f1a2b3c4d</uuid>
		<vbios_version>96.00.74.00.01</vbios_version>
		<pci><pci_bus_id>00000000:AB:00.0</pci_bus_id></pci>
		<clocks_event_reasons>
			<clocks_event_reason_gpu_idle>Active</clocks_event_reason_gpu_idle>
			<clocks_event_reason_hw_thermal_slowdown>Active</clocks_event_reason_hw_thermal_slowdown>
			<clocks_event_reason_hw_power_brake_slowdown>Not Active</clocks_event_reason_hw_power_brake_slowdown>
		</clocks_event_reasons>
		<fb_memory_usage><total>81559 MiB</total></fb_memory_usage>
		<ecc_mode><current_ecc>Enabled</current_ecc></ecc_mode>
		<ecc_errors>
			<volatile>
				<sram_correctable>4</sram_correctable>
				<sram_uncorrectable_parity>0</sram_uncorrectable_parity>
				<sram_uncorrectable_secded>0</sram_uncorrectable_secded>
				<dram_correctable>1</dram_correctable>
				<dram_uncorrectable>2</dram_uncorrectable>
			</volatile>
			<aggregate>
				<sram_correctable>4</sram_correctable>
				<sram_uncorrectable>1</sram_uncorrectable>
				<dram_correctable>1</dram_correctable>
				<dram_uncorrectable>2</dram_uncorrectable>
				<sram_threshold_exceeded>No</sram_threshold_exceeded>
			</aggregate>
		</ecc_errors>
		<retired_pages>
			<multiple_single_bit_retirement><retired_count>N/A</retired_count></multiple_single_bit_retirement>
			<double_bit_retirement><retired_count>N/A</retired_count></double_bit_retirement>
			<pending_retirement>N/A</pending_retirement>
		</retired_pages>
		<remapped_rows>
			<remapped_row_corr>0</remapped_row_corr>
			<remapped_row_unc>2</remapped_row_unc>
			<remapped_row_pending>Yes</remapped_row_pending>
			<remapped_row_failure>No</remapped_row_failure>
		</remapped_rows>
		<temperature><gpu_temp>34 C</gpu_temp></temperature>
		<gpu_power_readings><power_draw>71.52 W</power_draw><current_power_limit>700.00 W</current_power_limit><default_power_limit>700.00 W</default_power_limit><max_power_limit>700.00 W</max_power_limit></gpu_power_readings>
		<clocks><graphics_clock>345 MHz</graphics_clock><mem_clock>2619 MHz</mem_clock></clocks>
		<max_clocks><graphics_clock>1980 MHz</graphics_clock><mem_clock>2619 MHz</mem_clock></max_clocks>
		<fabric><state>Completed</state><status>Success</status></fabric>
	</gpu>
</nvidia_smi_log>
"#;

    #[test]
    fn old_ecc_names_and_page_retirement() {
        let log = parse(OLD).unwrap();
        assert_eq!(log.driver_version.as_deref(), Some("470.82.01"));
        let g = &log.gpus[0];
        assert_eq!(g.bus_id, "0000:3b:00.0");
        assert_eq!(g.serial.as_deref(), Some("0323918012345"));
        assert_eq!(g.memory_total_mib, Some(32510));
        assert_eq!(g.ecc_mode.as_deref(), Some("Enabled"));
        assert_eq!(
            g.ecc_volatile,
            EccCounts {
                correctable: Some(3),
                uncorrectable: Some(0)
            }
        );
        assert_eq!(
            g.ecc_aggregate,
            EccCounts {
                correctable: Some(41),
                uncorrectable: Some(1)
            }
        );
        assert_eq!(
            g.retired_pages,
            RetiredPages {
                single_bit: Some(2),
                double_bit: Some(1),
                pending: Some(true)
            }
        );
        assert_eq!(g.remapped_rows, RemappedRows::default());
        assert_eq!(g.throttle_active, ["gpu_idle", "hw_slowdown"]);
        assert_eq!(g.power.limit_w, Some(250.0));
        assert_eq!(g.clocks.max_graphics_mhz, Some(1380));
        assert_eq!(g.temperature_c, Some(31.0));
        assert_eq!(g.nvlink_fabric, None);
    }

    #[test]
    fn new_ecc_names_and_the_row_remapper() {
        let g = &parse(NEW).unwrap().gpus[0];
        assert_eq!(g.bus_id, "0000:ab:00.0");
        assert_eq!(
            g.uuid.as_deref(),
            Some("GPU-0b4d6c2e-3f1a-4e5b-8c7d-9e0f1a2b3c4d")
        );
        assert_eq!(
            g.ecc_volatile,
            EccCounts {
                correctable: Some(5),
                uncorrectable: Some(2)
            }
        );
        assert_eq!(
            g.ecc_aggregate,
            EccCounts {
                correctable: Some(5),
                uncorrectable: Some(3)
            }
        );
        assert_eq!(g.retired_pages, RetiredPages::default());
        assert_eq!(
            g.remapped_rows,
            RemappedRows {
                correctable: Some(0),
                uncorrectable: Some(2),
                pending: Some(true),
                failure: Some(false)
            }
        );
        assert_eq!(g.throttle_active, ["gpu_idle", "hw_thermal_slowdown"]);
        assert_eq!(
            g.power,
            Power {
                limit_w: Some(700.0),
                default_limit_w: Some(700.0),
                max_limit_w: Some(700.0)
            }
        );
        assert_eq!(
            g.clocks,
            Clocks {
                graphics_mhz: Some(345),
                mem_mhz: Some(2619),
                max_graphics_mhz: Some(1980),
                max_mem_mhz: Some(2619)
            }
        );
        assert_eq!(g.nvlink_fabric.as_deref(), Some("Completed (Success)"));
    }

    #[test]
    fn text_report_names_of_the_row_remapper() {
        let xml = "<nvidia_smi_log><gpu id=\"00000000:18:00.0\"><remapped_rows>\
                   <correctable>1</correctable><uncorrectable>0</uncorrectable>\
                   <pending>No</pending><remapping_failure_occurred>Yes</remapping_failure_occurred>\
                   </remapped_rows></gpu></nvidia_smi_log>";
        let g = &parse(xml).unwrap().gpus[0];
        assert_eq!(g.bus_id, "0000:18:00.0");
        assert_eq!(g.remapped_rows.failure, Some(true));
        assert_eq!(g.remapped_rows.correctable, Some(1));
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        for bad in [
            "",
            "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
            "<nvidia_smi_log><gpu>",
            "<html><body>no</body></html>",
            "<nvidia_smi_log><gpu><pci><pci_bus_id>what</pci_bus_id></pci></gpu></nvidia_smi_log>",
            "<nvidia_smi_log><gpu></gpu></nvidia_smi_log>",
            "\u{0}\u{1}<<<>>>",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(!e.is_empty(), "{bad:?}");
        }
        // No GPUs at all is a report, not an error.
        assert_eq!(parse("<nvidia_smi_log/>").unwrap().gpus.len(), 0);
    }
}
