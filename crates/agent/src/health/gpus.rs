//! GPUs (`inventory::gpus`, the same list `speediso.expect.gpu_count`
//! counts): a link trained below its width (FAIL; a link slower at full
//! width is `pcie`'s info line, as GPUs slow idle links), and from
//! nvidia-smi's report uncorrectable ECC errors (FAIL), correctable ones
//! above `max_gpu_correctable` (WARN), a row-remap failure (FAIL), a
//! pending remap or page retirement (WARN: needs a reset) and clocks held
//! down by power brake, HW slowdown or thermal slowdown at idle (WARN).
//! nvidia-smi is the one tool the health check runs (on the machine only;
//! a fixture tree holds its capture); without it ECC is an info line.

use super::{Finding, Out, Severity, Thresholds};
use crate::inventory::gpus::{self, Gpu};
use crate::root::Root;

const CHECK: &str = "gpu";

/// Throttle (clock event) reasons that mean power or heat trouble when the
/// GPU is idle, by nvidia-smi's name without its prefix.
const BAD_THROTTLE: &[&str] = &[
    "hw_slowdown",
    "hw_thermal_slowdown",
    "hw_power_brake_slowdown",
    "sw_thermal_slowdown",
];

/// `0000:18:00.0 (serial 1654…, GPU-…)`: the address plus what names the
/// board itself.
pub fn component(g: &Gpu) -> String {
    let ids: Vec<String> = g
        .nvidia
        .iter()
        .flat_map(|n| {
            [
                n.serial.as_ref().map(|s| format!("serial {s}")),
                n.uuid.clone(),
            ]
        })
        .flatten()
        .collect();
    if ids.is_empty() {
        g.address.clone()
    } else {
        format!("{} ({})", g.address, ids.join(", "))
    }
}

pub fn check(root: &Root, t: &Thresholds) -> Out {
    let mut out = Out::default();
    // Names are not judged: the numeric fallbacks do.
    let pci = crate::inventory::pci::collect(root, &crate::inventory::pciids::PciIds::default());
    let found = gpus::collect(root, &pci);
    if found.devices.is_empty() {
        out.skipped = true;
        out.summary = "no GPUs (PCI class 03xx, or 1200 from NVIDIA, AMD, Intel)".into();
        return out;
    }
    let mut with_smi = 0;
    for g in &found.devices {
        let name = component(g);
        if let Some(f) = link_width(root, g, &name) {
            out.findings.push(f);
        }
        if let Some(n) = &g.nvidia {
            with_smi += 1;
            nvidia(n, &name, t, &found, &mut out.findings);
        }
    }
    if let Some(note) = &found.note {
        let source = found.nvidia_smi.clone().unwrap_or_else(|| {
            if root.is_system() {
                "nvidia-smi -q -x".into()
            } else {
                gpus::SMI_CAPTURE.into()
            }
        });
        out.findings.push(if found.smi_error {
            Finding::unreadable(CHECK, "nvidia-smi", &source, note)
        } else {
            Finding::new(
                Severity::Info,
                CHECK,
                "nvidia-smi",
                "NVIDIA ECC, row remapping and throttling not checked",
            )
            .evidence(note.clone())
            .source(source)
        });
    }
    out.summary = format!(
        "{} GPU(s), {with_smi} with nvidia-smi's report",
        found.devices.len()
    );
    out
}

/// The width the link should have: the device's maximum, capped by the
/// upstream port's (the parent directory in /sys/devices).
fn link_width(root: &Root, g: &Gpu, name: &str) -> Option<Finding> {
    let l = g.link.as_ref()?;
    let (cur, max) = (l.width?, l.max_width?);
    let dir = format!("/sys/bus/pci/devices/{}", g.address);
    let port = std::fs::canonicalize(root.at(&dir))
        .ok()
        .and_then(|p| p.parent().map(|p| p.join("max_link_width")))
        .and_then(|p| crate::root::read_trim(&p))
        .and_then(|w| w.parse::<u32>().ok())
        .filter(|&w| w > 0 && w != 255);
    let want = port.map_or(max, |p| p.min(max));
    (cur < want).then(|| {
        Finding::new(
            Severity::Fail,
            CHECK,
            name,
            format!("link trained at x{cur} of x{want}"),
        )
        .evidence(format!(
            "current_link_width = {cur}, max_link_width = {max}{}",
            port.map(|p| format!(", upstream port max_link_width = {p}"))
                .unwrap_or_default()
        ))
        .source(format!("{dir}/current_link_width"))
        .threshold(format!("x{want}"))
    })
}

fn nvidia(
    n: &gpus::smi::NvidiaGpu,
    name: &str,
    t: &Thresholds,
    found: &gpus::Gpus,
    f: &mut Vec<Finding>,
) {
    let src = found.nvidia_smi.clone().unwrap_or_default();
    let finding = |sev, msg: String, ev: String, thr: String| {
        Finding::new(sev, CHECK, name, msg)
            .evidence(ev)
            .source(src.clone())
            .threshold(thr)
    };
    let (v, a) = (&n.ecc_volatile, &n.ecc_aggregate);
    let ecc_ev = |what: &str, vol: Option<u64>, agg: Option<u64>| {
        let s = |x: Option<u64>| x.map_or("n/a".to_string(), |x| x.to_string());
        format!(
            "ecc_errors {what}: volatile {}, aggregate {}",
            s(vol),
            s(agg)
        )
    };
    let unc = v.uncorrectable.max(a.uncorrectable).unwrap_or(0);
    if unc > 0 {
        f.push(finding(
            Severity::Fail,
            format!("{unc} uncorrectable (double-bit) ECC error(s)"),
            ecc_ev("uncorrectable", v.uncorrectable, a.uncorrectable),
            "> 0".into(),
        ));
    }
    let cor = v.correctable.max(a.correctable).unwrap_or(0);
    if cor > t.max_gpu_correctable {
        f.push(finding(
            Severity::Warn,
            format!("{cor} correctable (single-bit) ECC error(s)"),
            ecc_ev("correctable", v.correctable, a.correctable),
            format!("> {} (max_gpu_correctable)", t.max_gpu_correctable),
        ));
    }
    let r = &n.remapped_rows;
    if r.failure == Some(true) {
        f.push(finding(
            Severity::Fail,
            "row remapping failed: a memory row could not be remapped (replace the GPU)".into(),
            format!(
                "remapped_rows: failure Yes, uncorrectable {}, correctable {}",
                r.uncorrectable.map_or("n/a".into(), |x| x.to_string()),
                r.correctable.map_or("n/a".into(), |x| x.to_string())
            ),
            "failure = No".into(),
        ));
    }
    if r.pending == Some(true) {
        f.push(finding(
            Severity::Warn,
            "a row remap is pending: reset the GPU to apply it".into(),
            "remapped_rows: pending Yes".into(),
            "pending = No".into(),
        ));
    }
    if n.retired_pages.pending == Some(true) {
        f.push(finding(
            Severity::Warn,
            "a page retirement is pending: reset the GPU to apply it".into(),
            format!(
                "retired_pages: pending Yes, single-bit {}, double-bit {}",
                n.retired_pages
                    .single_bit
                    .map_or("n/a".into(), |x| x.to_string()),
                n.retired_pages
                    .double_bit
                    .map_or("n/a".into(), |x| x.to_string())
            ),
            "pending = No".into(),
        ));
    }
    let bad: Vec<&str> = n
        .throttle_active
        .iter()
        .map(String::as_str)
        .filter(|r| BAD_THROTTLE.contains(r))
        .collect();
    if !bad.is_empty() {
        f.push(finding(
            Severity::Warn,
            format!("clocks held down at idle: {}", bad.join(", ")),
            format!(
                "active clock throttle reasons: {}",
                n.throttle_active.join(", ")
            ),
            format!("none of {}", BAD_THROTTLE.join(", ")),
        ));
    }
}
