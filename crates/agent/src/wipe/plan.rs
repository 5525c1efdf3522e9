//! The wipe plan: which disks are erased, how and why, which are skipped
//! and why, and how `--plan` prints it.

use super::caps::{probe, Caps};
use super::choose::choose;
use super::config::Config;
use super::method::Method;
use super::select;
use super::select::{Request, Selection};
use crate::blockdev::scan::Disk;
use crate::inventory::identify::{self, Content};
use crate::root::Root;
use anyhow::Result;
use serde::Serialize;

/// One disk in the plan: what will be done to it and why.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    pub disk: Disk,
    pub method: Method,
    pub category: &'static str,
    pub why: String,
    pub caps: Caps,
    /// What is on the disk before the erase (partition table, file
    /// systems, RAID/LVM/crypto members), for `--plan` and the
    /// certificate's `contents_before`.
    pub contents: Vec<Content>,
}

/// The whole plan: what is erased, how, and what is skipped and why.
#[derive(Debug, Clone, Serialize)]
pub struct WipePlan {
    /// Set when udev's event queue did not empty in time before selection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udev: Option<String>,
    /// Stacks (md, LVM, dm, bcache) on the erased disks, stopped before
    /// the erase.
    pub release: Vec<super::stack::Stack>,
    pub erase: Vec<Planned>,
    pub skipped: Vec<select::Skipped>,
    pub verify: String,
    pub passes: u32,
    pub blank: bool,
}

/// The `siblings` not among the `chosen` disks, each with the reasons
/// selection gave for skipping it, or "not selected for this wipe" (not
/// named by `--device`).
pub(super) fn siblings_kept(
    siblings: &[String],
    chosen: &[String],
    skipped: &[select::Skipped],
) -> Vec<String> {
    siblings
        .iter()
        .filter(|n| !chosen.contains(n))
        .map(|n| {
            let why = skipped
                .iter()
                .find(|k| {
                    k.disk.as_ref().is_some_and(|d| &d.name == n) || k.device == format!("/dev/{n}")
                })
                .map(|k| k.reasons.join("; "))
                .unwrap_or_else(|| "not selected for this wipe".into());
            format!("{n} ({why})")
        })
        .collect()
}

/// Why a probed disk is refused as an NVMe namespace another host may
/// share (NMIC/CMIC, audit item 4), unless `speediso.wipe.remote=1`.
/// Selection cannot see this (it needs the admin passthrough), so it is
/// checked once the disk is probed.
pub(super) fn shared_namespace_refusal(caps: &Caps, req: &Request) -> Option<String> {
    if req.targets.remote {
        return None;
    }
    let why = caps.nvme.as_ref()?.shared_namespace()?;
    Some(format!("{why}; set speediso.wipe.remote=1 to erase it"))
}

/// How long the plan waits for udev's queue.
const UDEV_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Why a RAID controller's logical volume is not erased: always without
/// `speediso.wipe.logical_volumes=1` (overwriting it says nothing about
/// the drives' spare areas, and its certificate would name a volume as the
/// sanitized media); with it, a firmware method (which the controller
/// does not pass to the drives).
pub(super) fn logical_volume_refusal(
    lv: Option<&crate::blockdev::controller::LogicalVolume>,
    req: &Request,
    method: Method,
) -> Option<String> {
    let lv = lv?;
    if !req.targets.logical_volumes {
        return Some(format!(
            "a logical volume of RAID controller {} ({}), not a drive: erasing it cannot reach the physical drives behind it, so it is never certified as sanitized media; put the controller in HBA/JBOD mode to erase the drives, or set speediso.wipe.logical_volumes=1 to overwrite the volume with a certificate that says logical only",
            lv.controller.describe(),
            lv.evidence
        ));
    }
    (method.is_firmware() && method != Method::Auto).then(|| {
        format!(
            "method {}: a logical volume of {} ({}) takes no firmware erase; only zero, random or quick",
            method.name(),
            lv.controller.describe(),
            lv.evidence
        )
    })
}

/// Select disks and choose a method for each. Fails when an exclusion
/// names no disk.
pub fn plan(root: &Root, req: &Request, cfg: &Config) -> Result<WipePlan> {
    // md arrays and LVM volume groups udev is still assembling at boot
    // must be in the plan: wait for its queue first.
    let udev = crate::blockdev::udev::settle(root, UDEV_LIMIT).err().map(|l| {
        format!(
            "udev still had events queued after {} s: a stack it had yet to assemble may be missing from this plan",
            l.as_secs()
        )
    });
    let Selection {
        eligible,
        mut skipped,
        release,
    } = select::select(root, req)?;
    let mut erase = Vec::new();
    let chosen: Vec<String> = eligible.iter().map(|d| d.name.clone()).collect();
    let skipped_by_select = skipped.clone();
    for d in eligible {
        let volume = crate::blockdev::controller::logical_volume(root, &d);
        if let Some(why) = logical_volume_refusal(volume.as_ref(), req, cfg.method) {
            skipped.push(select::Skipped::new(
                d.path.display().to_string(),
                Some(d),
                vec![(select::SkipClass::Blocking, why)],
            ));
            continue;
        }
        if let Some(lv) = volume {
            // Firmware erases end at the controller: only an overwrite
            // through it, certified as logical.
            let method = if cfg.method == Method::Auto {
                Method::Random
            } else {
                cfg.method
            };
            let why = format!(
                "{}: a logical volume of {} ({}); overwritten through the controller, the drives behind it are not reached (speediso.wipe.logical_volumes=1)",
                if cfg.method == Method::Auto { "auto" } else { "requested" },
                lv.controller.describe(),
                lv.evidence
            );
            erase.push(Planned {
                category: super::cert::category(method, true),
                contents: identify::contents(root, &d),
                disk: d,
                method,
                why,
                caps: Caps {
                    logical_volume: Some(lv),
                    ..Default::default()
                },
            });
            continue;
        }
        let mut caps = probe(root, &d);
        caps.nvme_siblings_kept = siblings_kept(&caps.nvme_siblings, &chosen, &skipped_by_select);
        if let Some(why) = shared_namespace_refusal(&caps, req) {
            skipped.push(select::Skipped::new(
                d.path.display().to_string(),
                Some(d),
                vec![(select::SkipClass::Blocking, why)],
            ));
            continue;
        }
        match choose(&d, &caps, cfg.method) {
            Ok((method, why)) => erase.push(Planned {
                category: method.category(),
                contents: identify::contents(root, &d),
                disk: d,
                method,
                why,
                caps,
            }),
            Err(why) => skipped.push(select::Skipped::new(
                d.path.display().to_string(),
                Some(d),
                vec![(
                    select::SkipClass::Blocking,
                    format!("method {}: {why}", cfg.method.name()),
                )],
            )),
        }
    }
    // What is on the disks left alone too (read only), so the plan shows
    // what each disk carries, erased or not; the md members among them
    // keep their arrays' other members (`unassembled_arrays`).
    for k in skipped.iter_mut() {
        if let Some(d) = &k.disk {
            k.contents = identify::contents(root, d);
        }
    }
    unassembled_arrays(&mut erase, &mut skipped);
    // A stack is released only when every disk beneath it is still
    // erased (the method probe may have refused one since selection).
    let erased: Vec<&str> = erase
        .iter()
        .map(|p: &Planned| p.disk.name.as_str())
        .collect();
    let (release, kept): (Vec<_>, Vec<_>) = release
        .into_iter()
        .partition(|s| s.disks.iter().all(|d| erased.contains(&d.as_str())));
    for s in kept {
        let why = format!(
            "member of {}, which is left alone: not every disk beneath it is erased",
            s.summary()
        );
        let (moved, stay): (Vec<Planned>, Vec<Planned>) = std::mem::take(&mut erase)
            .into_iter()
            .partition(|p| s.disks.contains(&p.disk.name));
        erase = stay;
        for p in moved {
            let mut k = select::Skipped::new(
                p.disk.path.display().to_string(),
                Some(p.disk),
                vec![(select::SkipClass::Blocking, why.clone())],
            );
            k.contents = p.contents;
            skipped.push(k);
        }
    }
    // The layers of a released stack are not disks left alone: they are
    // stopped, and said so under `release`.
    skipped.retain(|k| {
        !k.disk.as_ref().is_some_and(|d| {
            release
                .iter()
                .any(|s| s.layers.iter().any(|l| l.name == d.name))
        })
    });
    Ok(WipePlan {
        udev,
        release,
        erase,
        skipped,
        verify: cfg.verify.as_string(),
        passes: cfg.passes,
        blank: cfg.blank,
    })
}

/// An md array nobody assembled (no mdadm in the image, or udev had not
/// got to it) is a stack too, known by its members' signatures (the
/// array UUID blkid gives each `linux_raid_member`): a disk to erase
/// holding a member of an array that also lies on a disk this wipe does
/// not erase is left alone, as an assembled one would be, so a RAID1
/// with one member excluded never loses the other member.
pub(super) fn unassembled_arrays(erase: &mut Vec<Planned>, skipped: &mut Vec<select::Skipped>) {
    use std::collections::BTreeMap;
    let md = |c: &Content| {
        (c.kind == "linux_raid_member")
            .then(|| c.uuid.clone())
            .flatten()
    };
    // Array UUID → the skipped disks with a member, and their reasons.
    let mut kept: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for k in skipped.iter() {
        let name = k
            .disk
            .as_ref()
            .map(|d| d.name.clone())
            .unwrap_or_else(|| k.device.clone());
        for c in &k.contents {
            if let Some(u) = md(c) {
                kept.entry(u).or_default().push(format!(
                    "{name}, which is not erased ({})",
                    k.reasons.join("; ")
                ));
            }
        }
    }
    let mut moved = Vec::new();
    erase.retain(|p| {
        let why: Vec<String> = p
            .contents
            .iter()
            .filter_map(|c| {
                let u = md(c)?;
                let others = kept.get(&u)?;
                Some(format!(
                    "{} is a member of md array {u} (not assembled), which also lies on {}",
                    c.at,
                    others.join(" and ")
                ))
            })
            .collect();
        if why.is_empty() {
            true
        } else {
            moved.push((p.clone(), why));
            false
        }
    });
    for (p, why) in moved {
        let mut k = select::Skipped::new(
            p.disk.path.display().to_string(),
            Some(p.disk),
            why.into_iter()
                .map(|w| (select::SkipClass::Blocking, w))
                .collect(),
        );
        k.contents = p.contents;
        skipped.push(k);
    }
}

impl WipePlan {
    /// Skipped disks that make the run fail (see `select::SkipClass`).
    pub fn blocking(&self) -> Vec<&select::Skipped> {
        self.skipped.iter().filter(|k| k.is_blocking()).collect()
    }

    /// `"/dev/x: why; why"` for each blocking skip, or `None`.
    pub fn blocking_summary(&self) -> Option<String> {
        let b = self.blocking();
        (!b.is_empty()).then(|| {
            format!(
                "{} disk(s) that should be erased cannot be: {}",
                b.len(),
                b.iter()
                    .map(|k| format!("{}: {}", k.device, k.reasons.join("; ")))
                    .collect::<Vec<_>>()
                    .join(" | ")
            )
        })
    }
}

pub fn human_bytes(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// `disk gpt 1234abcd; sda1 ext4 "root" 1b4e…` or `no signature found`.
pub fn contents_text(c: &[Content]) -> String {
    if c.is_empty() {
        return "no signature found".into();
    }
    c.iter().map(Content::text).collect::<Vec<_>>().join("; ")
}

/// The "on it:" line of a skipped disk, when something was found on it.
fn skipped_contents(s: &mut String, k: &select::Skipped) {
    if !k.contents.is_empty() {
        s.push_str(&format!(
            "  {:<14} on it: {}\n",
            "",
            contents_text(&k.contents)
        ));
    }
}

/// The plan as the lines `--plan` prints.
pub fn describe_plan(p: &WipePlan) -> String {
    let mut s = String::new();
    if let Some(w) = &p.udev {
        s.push_str(&format!("WARNING: {w}\n"));
    }
    if !p.release.is_empty() {
        s.push_str(&format!(
            "will release first ({} stack(s) on the disks to erase; every disk beneath is erased and nothing mounts, swaps on or holds them):\n",
            p.release.len()
        ));
    }
    for r in &p.release {
        s.push_str(&format!("  stop {}\n", r.summary()));
    }
    if p.erase.is_empty() {
        s.push_str("will erase: nothing\n");
    } else {
        s.push_str(&format!(
            "will erase ({} disk(s); verify {}, passes {}{}):\n",
            p.erase.len(),
            p.verify,
            p.passes,
            if p.blank {
                ", blank after firmware erase"
            } else {
                ""
            }
        ));
    }
    for e in &p.erase {
        let d = &e.disk;
        s.push_str(&format!(
            "  {:<14} {:>10}  {:<6} model {:<24} serial {:<20} method {} ({}, {}) — {}{}\n",
            d.path.display(),
            human_bytes(d.size_bytes),
            format!("{:?}", d.transport).to_lowercase(),
            d.model.as_deref().unwrap_or("-"),
            d.serial.as_deref().unwrap_or("-"),
            e.method.name(),
            e.category,
            e.method.technique(),
            e.why,
            super::hidden::plan_note(e.caps.hidden.as_ref())
        ));
        s.push_str(&format!(
            "  {:<14} on it: {}\n",
            "",
            contents_text(&e.contents)
        ));
    }
    let blocking = p.blocking();
    if !blocking.is_empty() {
        s.push_str(&format!(
            "NOT ERASED, and the run will FAIL because of them ({} disk(s); fix them, or exclude them with speediso.wipe.exclude):\n",
            blocking.len()
        ));
    }
    for k in &blocking {
        s.push_str(&format!("  {:<14} {}\n", k.device, k.reasons.join("; ")));
        skipped_contents(&mut s, k);
    }
    if p.skipped.iter().any(|k| !k.is_blocking()) {
        s.push_str("skipped (not targets):\n");
    }
    for k in p.skipped.iter().filter(|k| !k.is_blocking()) {
        s.push_str(&format!("  {:<14} {}\n", k.device, k.reasons.join("; ")));
        skipped_contents(&mut s, k);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::config::{Attestation, KeySource};
    use super::super::{cert, disk, verify::VerifyMode};
    use super::*;

    fn cfg(logical_volumes: bool) -> (Config, Request) {
        let targets = select::Targets {
            logical_volumes,
            ..Default::default()
        };
        let cfg = Config {
            method: Method::Auto,
            verify: VerifyMode::Full,
            passes: 1,
            stream: Default::default(),
            blank: false,
            key: KeySource::Generate,
            attestation: Attestation::default(),
            targets: targets.clone(),
        };
        let req = Request {
            all: true,
            real_allowed: true,
            targets,
            ..Default::default()
        };
        (cfg, req)
    }

    /// The certificate `p` would get once erased and verified.
    fn certificate(p: &Planned) -> serde_json::Value {
        let mut o = disk::wipe_disk_panicked(p);
        o.outcome = "wiped".into();
        o.verify.result = "passed".into();
        let key = cert::load_or_generate(None).unwrap();
        cert::build(&o, &cert::Issuer::default(), &key)
    }

    #[test]
    fn a_raid_logical_volume_gets_no_media_certificate() {
        let t = tempfile::tempdir().unwrap();
        let r = &Root::new(t.path());
        crate::blockdev::controller::tests::megaraid_host(r);
        // By default: the volume is refused, naming the controller; the
        // JBOD drive on the same controller and the SATA disk are disks.
        let (c, req) = cfg(false);
        let p = plan(r, &req, &c).unwrap();
        let names: Vec<&str> = p.erase.iter().map(|e| e.disk.name.as_str()).collect();
        assert_eq!(names, ["sdb", "sdc"]);
        let k = p.skipped.iter().find(|k| k.device == "/dev/sda").unwrap();
        assert!(k.is_blocking());
        let why = k.reasons.join("; ");
        assert!(
            why.contains(
                "a logical volume of RAID controller megaraid_sas (host0, PCI 0000:03:00.0)"
            ) && why.contains("PERC H730 Mini")
                && why.contains("speediso.wipe.logical_volumes=1"),
            "{why}"
        );
        assert!(p.blocking_summary().unwrap().contains("/dev/sda"));
        let sdb = certificate(&p.erase[0]);
        assert_eq!(sdb["media"]["serial"], serde_json::Value::Null);
        assert_eq!(sdb["sanitization"]["physical_media_reached"], true);
        assert_eq!(sdb["sanitization"]["category"], "Clear");
        assert_eq!(sdb["sanitization"]["controller"], serde_json::Value::Null);

        // With the option: overwritten, and certified as logical only.
        let (c, req) = cfg(true);
        let p = plan(r, &req, &c).unwrap();
        assert!(p.blocking().is_empty(), "{:?}", p.skipped);
        let sda = p.erase.iter().find(|e| e.disk.name == "sda").unwrap();
        assert_eq!(sda.method, Method::Random);
        assert_eq!(sda.category, "Clear (logical)");
        assert!(sda.why.contains("not reached"), "{}", sda.why);
        let v = certificate(sda);
        let s = &v["sanitization"];
        assert_eq!(s["category"], "Clear (logical)");
        assert_eq!(s["physical_media_reached"], false);
        assert_eq!(s["controller"]["driver"], "megaraid_sas");
        assert_eq!(s["controller"]["pci_address"], "0000:03:00.0");
        assert_eq!(s["controller"]["scsi_address"], "0:2:0:0");
        // A firmware method on a volume is refused even then.
        let (mut c, req) = cfg(true);
        c.method = Method::ScsiSanitizeCrypto;
        let p = plan(r, &req, &c).unwrap();
        let k = p.skipped.iter().find(|k| k.device == "/dev/sda").unwrap();
        assert!(
            k.reasons[0].contains("takes no firmware erase"),
            "{:?}",
            k.reasons
        );
    }
}
