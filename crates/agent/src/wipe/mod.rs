//! Secure wipe: choose the disks (`select`), pick the strongest method each
//! supports (`nvme`, `ata`, `overwrite`), erase them in parallel with
//! progress, read back (`verify`) and sign a certificate per disk (`cert`).
//! Used by the `wipe` task module and by `speediso wipe`.

pub mod ata;
mod caps;
pub mod cert;
mod choose;
mod config;
mod disk;
pub mod hidden;
mod method;
pub mod nvme;
pub mod overwrite;
mod plan;
pub mod progress;
pub mod readback;
mod residue;
pub mod ring;
pub mod scsi;
pub mod select;
pub mod server_cert;
pub mod stack;
pub mod stream;
pub mod verify;

use crate::events::{Body, StepEvents};
use crate::module::{Module, StepContext};
use crate::options::{Options, Spec};
use crate::root::Root;
use anyhow::{bail, Context, Result};
pub use caps::{probe, Caps};
pub use choose::choose;
pub use config::{load_key, Attestation, Config, KeySource, OPTIONS};
use disk::wipe_disk_panicked;
pub use disk::{check_identity, outcome_of, wipe_disk, DiskOutcome};
pub use method::{Method, METHODS};
pub use plan::{describe_plan, human_bytes, plan, Planned, WipePlan};
pub use progress::Tracker;
use select::Request;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use verify::VerifyMode;

pub const NAME: &str = "wipe";

/// The result of a whole run, as the step's `result` data.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// The stacks stopped before the erase, and any that could not be.
    pub released: Vec<Released>,
    pub disks: Vec<DiskOutcome>,
    pub skipped: Vec<select::Skipped>,
    /// The signed certificates themselves, so the report endpoint (the
    /// collector) stores and verifies them: one per disk in `disks`' order,
    /// then the server's (`server_cert`).
    pub certificates: Vec<serde_json::Value>,
    /// Where each certificate's JSON was written, same order (the server's
    /// certificate, last in `certificates`, is not among them).
    pub certificate_files: Vec<String>,
    /// Where the server's certificate was written.
    pub server_certificate_file: Option<String>,
    pub public_key: String,
    pub key_source: String,
    /// `"/dev/x: why"` for each disk that failed.
    pub failed: Vec<String>,
}

/// A generous upper bound of how long the plan takes, from each disk's
/// size and method at pessimistic rates (disks run in parallel, so the
/// slowest one counts), with half again and an hour of margin. The task's
/// time limit is raised to it, so a 16 TB disk with verification is never
/// cut off by a fixed limit.
pub fn estimate(p: &WipePlan, cfg: &Config) -> Duration {
    let slowest = p
        .erase
        .iter()
        .map(|e| disk_estimate(e, cfg))
        .fold(Duration::ZERO, Duration::max);
    slowest.mul_f64(1.5) + Duration::from_secs(3600)
}

fn disk_estimate(e: &Planned, cfg: &Config) -> Duration {
    // Pessimistic sustained rates, bytes per second.
    let rate = if e.disk.rotational { 60e6 } else { 200e6 };
    let size = e.disk.size_bytes as f64;
    let verify = match cfg.verify {
        VerifyMode::Full => size,
        VerifyMode::Sample(f) => size * f,
        VerifyMode::Off => 0.0,
    };
    let secs = match e.method {
        Method::Zero | Method::Random => (size * f64::from(cfg.passes.max(1)) + verify) / rate,
        Method::Quick => 600.0,
        Method::Discard => 1800.0 + verify / rate,
        // Firmware erases: a block erase or an overwrite inside the drive
        // can take as long as writing it; the markers and the read-back
        // come on top, and so does the blank pass when asked for.
        _ => 3600.0 + (size + verify + if cfg.blank { size } else { 0.0 }) / rate,
    };
    Duration::from_secs_f64(secs)
}

/// One stack the plan released before the erase.
#[derive(Debug, Clone, Serialize)]
pub struct Released {
    /// What it was, top-down: "LVM logical volume vg0/data (dm-0), md
    /// RAID1 /dev/md127 (metadata 1.2) on nvme0n1p1, sda1".
    pub stack: String,
    pub layers: Vec<stack::Layer>,
    pub disks: Vec<String>,
    /// `released` or `failed`.
    pub outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Stop the plan's stacks, each logged with what it was and why it was
/// released. One that cannot be stopped fails its disks, untouched; the
/// others go on.
fn release_stacks(
    plan: &WipePlan,
    root: &Root,
    r: &dyn stack::Releaser,
    events: Option<&StepEvents>,
) -> Vec<Released> {
    plan.release
        .iter()
        .map(|s| {
            let summary = s.summary();
            // As it is now, on the real machine: udev may have added a
            // layer since the plan.
            let now = if root.is_system() {
                stack::refresh(root, s)
            } else {
                Ok(s.clone())
            };
            let res = now.and_then(|n| stack::release(root, &n, r, Duration::from_secs(30)));
            if let Some(ev) = events {
                match &res {
                    Ok(()) => ev.log(format!(
                        "released {summary}: every disk beneath ({}) is erased by this wipe, and nothing mounted, swapped on or held it",
                        s.disks.join(", ")
                    )),
                    Err(e) => ev.warn(format!(
                        "could not release {summary}: {e:#}; its disks ({}) are not erased",
                        s.disks.join(", ")
                    )),
                }
            }
            Released {
                stack: summary,
                layers: s.layers.clone(),
                disks: s.disks.clone(),
                outcome: if res.is_ok() { "released" } else { "failed" },
                error: res.err().map(|e| format!("{e:#}")),
            }
        })
        .collect()
}

/// The outcome of a disk left untouched because its stack stayed.
fn not_erased(p: &Planned, r: &Released) -> DiskOutcome {
    let mut o = wipe_disk_panicked(p);
    o.error = Some(format!(
        "not erased: the stack on it could not be stopped ({}): {}",
        r.stack,
        r.error.as_deref().unwrap_or("")
    ));
    o
}

/// The certificate context of this machine and run.
fn cert_context(root: &Root, run_id: &str, a: &Attestation) -> cert::Issuer {
    let host = crate::host::identify(
        root,
        &crate::cmdline::parse(&crate::cmdline::read(root).unwrap_or_default()),
    );
    let read = |p: &str| {
        std::fs::read_to_string(root.at(p))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    cert::Issuer {
        run_id: run_id.to_string(),
        host,
        performed_by: a.performed_by.clone(),
        validated_by: a.validated_by.clone(),
        organization: a.organization.clone(),
        asset_tag: a
            .asset_tag
            .clone()
            .or_else(|| crate::inventory::dmi::collect(root).chassis_asset_tag),
        destination: a.destination.clone(),
        // "speediso live image, build X" (kickstart %post).
        image_build: read("etc/speediso-build")
            .map(|s| s.rsplit("build ").next().unwrap_or(&s).to_string()),
        kernel: read("proc/sys/kernel/osrelease"),
    }
}

/// One finished disk: its signed certificate, written to `dir` and sent
/// at once as a `result` event of its own, so a disk that is still running
/// (or hangs) delays no other disk's evidence. A failed write loses
/// nothing: the certificate is still in the event stream.
fn certify(
    o: &DiskOutcome,
    ctx: &cert::Issuer,
    key: &cert::Key,
    dir: &Path,
    events: Option<&StepEvents>,
) -> (serde_json::Value, Result<PathBuf, String>) {
    // Masked before signing: the bus leaves signed documents alone.
    let mut body = cert::build(o, ctx, key);
    crate::redact::json(&mut body);
    let signed = cert::sign(body, &key.key);
    let file = cert::write(dir, &signed)
        .map(|(json, _html)| json)
        .map_err(|e| format!("{e:#}"));
    if let Some(ev) = events {
        match &file {
            Ok(p) => ev.log(format!(
                "{}: {} — certificate {}",
                o.device,
                o.outcome,
                p.display()
            )),
            Err(e) => ev.warn(format!(
                "{}: {} — certificate not written ({e}); it is in this run's events",
                o.device, o.outcome
            )),
        }
        ev.emit(Body::Result {
            data: serde_json::json!({
                "disk": o.device,
                "outcome": o.outcome,
                "certificates": [signed.clone()],
                "certificate_file": file.as_ref().ok().map(|p| p.display().to_string()),
            }),
        });
    }
    (signed, file)
}

/// Erase every planned disk in parallel; each disk's signed certificate is
/// written under `run_dir/certs/` and emitted as soon as that disk is
/// done. One disk failing never stops another.
pub fn execute(
    plan: &WipePlan,
    cfg: &Config,
    root: &Root,
    run_dir: &Path,
    run_id: &str,
    events: Option<StepEvents>,
) -> Result<RunResult> {
    if !root.is_system() {
        bail!("--root points at a fixture; refusing to erase anything");
    }
    let key = load_key(&cfg.key).context("loading the certificate signing key; nothing erased")?;
    let mut ctx = cert_context(root, run_id, &cfg.attestation);
    if let Some(ev) = &events {
        // The host the events name, so the collector finds them equal.
        ctx.host = ev.host().clone();
    }
    let dir = run_dir.join("certs");
    if let Err(e) = std::fs::create_dir_all(&dir) {
        // Not fatal: the certificates still go out in the events.
        if let Some(ev) = &events {
            ev.warn(format!("creating {}: {e}", dir.display()));
        }
    }
    let real_allowed = select::real_disks_allowed();
    let released = release_stacks(plan, root, &stack::System, events.as_ref());
    let n = plan.erase.len();
    let done: Vec<(DiskOutcome, serde_json::Value, Result<PathBuf, String>)> =
        std::thread::scope(|s| {
            let hs: Vec<_> = plan
                .erase
                .iter()
                .map(|p| {
                    let ev = events.clone();
                    let (ctx, key, dir) = (&ctx, &key, &dir);
                    let stuck = released
                        .iter()
                        .find(|r| r.error.is_some() && r.disks.contains(&p.disk.name));
                    s.spawn(move || {
                        let o = match stuck {
                            Some(r) => not_erased(p, r),
                            None => wipe_disk(p, cfg, root, real_allowed, n, ev.clone()),
                        };
                        let (c, f) = certify(&o, ctx, key, dir, ev.as_ref());
                        (o, c, f)
                    })
                })
                .collect();
            hs.into_iter()
                .zip(&plan.erase)
                .map(|(h, p)| {
                    h.join().unwrap_or_else(|_| {
                        let mut o = wipe_disk_panicked(p);
                        o.error = Some("the wipe thread panicked".into());
                        let (c, f) = certify(&o, &ctx, &key, &dir, events.as_ref());
                        (o, c, f)
                    })
                })
                .collect()
        });
    let mut outcomes = Vec::new();
    let mut certificates = Vec::new();
    let mut certificate_files = Vec::new();
    let mut failed = Vec::new();
    for (o, c, f) in done {
        if let Some(e) = &o.error {
            failed.push(format!("{}: {e}", o.device));
        }
        match f {
            Ok(p) => certificate_files.push(p.display().to_string()),
            Err(e) => certificate_files.push(format!("not written: {e}")),
        }
        certificates.push(c);
        outcomes.push(o);
    }
    let mut r = RunResult {
        released,
        disks: outcomes,
        skipped: plan.skipped.clone(),
        certificates,
        certificate_files,
        server_certificate_file: None,
        public_key: key.public_hex(),
        key_source: key.source.clone(),
        failed,
    };
    // The server's certificate, over every disk's.
    let dmi = crate::inventory::dmi::collect(root);
    let mut body = server_cert::build(&r, &r.certificates, &ctx, &dmi, &key);
    crate::redact::json(&mut body);
    let signed = cert::sign(body, &key.key);
    match server_cert::write(&dir, &signed) {
        Ok((json, _)) => {
            if let Some(ev) = &events {
                ev.log(format!(
                    "server certificate ({}, {} disk(s)): {}",
                    signed["outcome"].as_str().unwrap_or("?"),
                    r.disks.len(),
                    json.display()
                ));
            }
            r.server_certificate_file = Some(json.display().to_string());
        }
        Err(e) => {
            if let Some(ev) = &events {
                ev.warn(format!(
                    "server certificate not written ({e:#}); it is in this run's result"
                ));
            }
        }
    }
    r.certificates.push(signed);
    Ok(r)
}

/// The `wipe` task module: every eligible disk, methods and verification
/// from `speediso.wipe.*`.
pub struct Wipe;

impl Module for Wipe {
    type Config = Config;
    const NAME: &'static str = NAME;
    const OPTIONS: &'static [Spec] = OPTIONS;
    const DESTRUCTIVE: bool = true;

    fn configure(_step: &toml::Table, options: &Options) -> Result<Config> {
        Config::from_options(options)
    }

    fn run(ctx: &StepContext<Config>) -> Result<serde_json::Value> {
        if !ctx.destructive_allowed {
            bail!("wipe is destructive and this run was not confirmed; nothing erased");
        }
        let cfg = ctx.config;
        let req = Request {
            all: true,
            ..Default::default()
        }
        .with_targets(&cfg.targets)
        .with_env();
        let p = plan(ctx.root, &req, cfg)?;
        for line in describe_plan(&p).lines() {
            ctx.events.log(line.to_string());
        }
        if p.erase.is_empty() {
            ctx.events.emit(Body::Result {
                data: serde_json::to_value(&p)?,
            });
            let also = p
                .blocking_summary()
                .map(|b| format!("; {b}"))
                .unwrap_or_default();
            bail!("no disk is eligible for wiping (see the skipped list){also}");
        }
        let need = estimate(&p, cfg);
        if let Some(until) = ctx.deadline.at_least(need) {
            ctx.events.log(format!(
                "time limit raised to {} from now: {} disk(s), the slowest needs up to {} by its size and method",
                crate::sinks::human_duration(until.saturating_duration_since(Instant::now()).as_secs_f64()),
                p.erase.len(),
                crate::sinks::human_duration(need.as_secs_f64())
            ));
        }
        let run_id = ctx.events.run_id().to_string();
        let r = execute(
            &p,
            cfg,
            ctx.root,
            ctx.run_dir,
            &run_id,
            Some(ctx.events.clone()),
        )?;
        let data = serde_json::to_value(&r)?;
        // The eligible disks are erased first; then a disk that should have
        // been erased and was not fails the step, so a decommission never
        // powers off with it untouched.
        let mut errors = Vec::new();
        if !r.failed.is_empty() {
            errors.push(format!(
                "wipe failed on {} disk(s): {}",
                r.failed.len(),
                r.failed.join("; ")
            ));
        }
        if let Some(b) = p.blocking_summary() {
            errors.push(format!("not erased: {b}"));
        }
        if !errors.is_empty() {
            ctx.events.emit(Body::Result { data });
            bail!("{}", errors.join("; "));
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::method::ALL_METHODS;
    use super::plan::{shared_namespace_refusal, siblings_kept};
    use super::*;
    use crate::blockdev::scan::{Disk, Transport};

    #[test]
    fn a_big_disk_raises_the_time_limit_past_48_hours() {
        let mut d = disk(Transport::Ata);
        d.size_bytes = 16_000_000_000_000;
        d.rotational = true;
        let cfg = Config {
            method: Method::Random,
            verify: VerifyMode::Full,
            passes: 1,
            stream: Default::default(),
            blank: false,
            key: KeySource::Generate,
            attestation: Attestation::default(),
            targets: Default::default(),
        };
        let plan = |d: Disk, m: Method| WipePlan {
            udev: None,
            release: vec![],
            erase: vec![Planned {
                category: m.category(),
                disk: d,
                method: m,
                why: String::new(),
                caps: Caps::default(),
                contents: vec![],
            }],
            skipped: vec![],
            verify: "full".into(),
            passes: 1,
            blank: false,
        };
        let t = estimate(&plan(d.clone(), Method::Random), &cfg);
        assert!(t > Duration::from_secs(48 * 3600), "{t:?}");
        // A 1 TB SSD with a quick wipe stays in hours, not days.
        let mut ssd = disk(Transport::Nvme);
        ssd.size_bytes = 1_000_000_000_000;
        let t = estimate(&plan(ssd, Method::Quick), &cfg);
        assert!(t < Duration::from_secs(3 * 3600), "{t:?}");
    }

    #[test]
    fn an_unassembled_array_with_a_member_not_erased_keeps_the_other() {
        use crate::inventory::identify::Content;
        let member = |at: &str, uuid: &str| Content {
            at: at.into(),
            kind: "linux_raid_member".into(),
            label: Some("host:customer".into()),
            uuid: Some(uuid.into()),
        };
        let planned = |name: &str, contents: Vec<Content>| {
            let mut d = disk(Transport::Nvme);
            d.name = name.into();
            d.path = format!("/dev/{name}").into();
            Planned {
                category: Method::Zero.category(),
                disk: d,
                method: Method::Zero,
                why: String::new(),
                caps: Caps::default(),
                contents,
            }
        };
        let mut erase = vec![
            planned("nvme0n1", vec![member("nvme0n1p1", "a1b2")]),
            planned("nvme1n1", vec![member("nvme1n1", "ffff")]),
            planned("nvme2n1", vec![member("nvme2n1", "ffff")]),
        ];
        let mut sda = disk(Transport::Ata);
        sda.name = "sda".into();
        let mut k = select::Skipped::new(
            "/dev/sda".into(),
            Some(sda),
            vec![(
                select::SkipClass::Policy,
                "excluded by speediso.wipe.exclude (SATA0002)".into(),
            )],
        );
        k.contents = vec![member("sda", "a1b2")];
        let mut skipped = vec![k];
        plan::unassembled_arrays(&mut erase, &mut skipped);
        // Both members of array ffff are erased: nothing moves for it.
        let names: Vec<&str> = erase.iter().map(|p| p.disk.name.as_str()).collect();
        assert_eq!(names, ["nvme1n1", "nvme2n1"]);
        let k = &skipped[1];
        assert!(k.is_blocking());
        assert_eq!(
            k.reasons,
            ["nvme0n1p1 is a member of md array a1b2 (not assembled), which also lies on sda, which is not erased (excluded by speediso.wipe.exclude (SATA0002))"]
        );
        assert_eq!(k.contents.len(), 1);
    }

    #[test]
    fn the_plan_line_names_hidden_areas() {
        let caps = Caps {
            hidden: Some(hidden::HiddenAreas::Ata(hidden::AtaHidden {
                hpa_sectors: Some(2048),
                dco: "not supported".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let p = WipePlan {
            udev: None,
            release: vec![],
            erase: vec![Planned {
                category: Method::Random.category(),
                disk: disk(Transport::Ata),
                method: Method::Random,
                why: "auto".into(),
                caps,
                contents: vec![],
            }],
            skipped: vec![],
            verify: "full".into(),
            passes: 1,
            blank: false,
        };
        let s = describe_plan(&p);
        assert!(
            s.contains(
                "— auto [HPA 2048 sectors: restored before the erase (SET MAX ADDRESS, volatile)]"
            ),
            "{s}"
        );
    }

    #[test]
    fn method_names_match_plan_table() {
        let names: Vec<&str> = ALL_METHODS.iter().map(|m| m.name()).collect();
        assert_eq!(names, METHODS);
        for m in ALL_METHODS {
            assert_eq!(Method::parse(m.name()), Some(*m));
        }
    }

    fn disk(t: Transport) -> Disk {
        Disk {
            name: "x".into(),
            path: "/dev/x".into(),
            size_bytes: 1 << 30,
            logical_block_size: 512,
            transport: t,
            rotational: false,
            vendor: None,
            model: None,
            serial: None,
            wwn: None,
            firmware: None,
            backing_file: None,
            devno: "7:0".into(),
            read_only: false,
            partitions: vec![],
            sys_path: "/nonexistent".into(),
            tran: None,
            logical_sector_size: None,
            physical_sector_size: None,
            removable: false,
            test_target: false,
        }
    }

    #[test]
    fn shared_nvme_namespace_is_refused_unless_remote_allowed() {
        let caps = |cmic, nmic| Caps {
            nvme: Some(nvme::NvmeCaps {
                cmic,
                nmic_shared: nmic,
                ..Default::default()
            }),
            ..Default::default()
        };
        let strict = Request::default();
        let remote = Request {
            targets: select::Targets {
                remote: true,
                ..Default::default()
            },
            ..Default::default()
        };
        let why = shared_namespace_refusal(&caps(0x2, Some(true)), &strict).unwrap();
        assert!(
            why.contains("NMIC") && why.contains("speediso.wipe.remote=1"),
            "{why}"
        );
        assert_eq!(
            shared_namespace_refusal(&caps(0x2, Some(true)), &remote),
            None
        );
        assert_eq!(
            shared_namespace_refusal(&caps(0x0, Some(true)), &strict),
            None
        );
        assert_eq!(
            shared_namespace_refusal(&caps(0x3, Some(false)), &strict),
            None
        );
        assert_eq!(shared_namespace_refusal(&Caps::default(), &strict), None);
    }

    #[test]
    fn auto_prefers_strongest() {
        let nv = |ces, bes, fmt, fce| Caps {
            nvme: Some(nvme::NvmeCaps {
                sanitize_crypto: ces,
                sanitize_block: bes,
                sanitize_overwrite: false,
                format: fmt,
                format_crypto: fce,
                ..Default::default()
            }),
            ..Default::default()
        };
        let d = disk(Transport::Nvme);
        let pick = |c: &Caps| choose(&d, c, Method::Auto).unwrap().0;
        assert_eq!(
            pick(&nv(true, true, true, true)),
            Method::NvmeSanitizeCrypto
        );
        assert_eq!(
            pick(&nv(false, true, true, true)),
            Method::NvmeSanitizeBlock
        );
        assert_eq!(
            pick(&nv(false, false, true, true)),
            Method::NvmeFormatCrypto
        );
        assert_eq!(pick(&nv(false, false, true, false)), Method::NvmeFormat);
        assert_eq!(pick(&nv(false, false, false, false)), Method::Random);
        let lo = disk(Transport::Loop);
        assert_eq!(
            choose(&lo, &Caps::default(), Method::Auto).unwrap().0,
            Method::Random
        );
        let err = choose(&lo, &Caps::default(), Method::NvmeSanitizeCrypto).unwrap_err();
        assert!(err.contains("not an NVMe device"), "{err}");
        let err = choose(&d, &nv(false, true, true, true), Method::NvmeSanitizeCrypto).unwrap_err();
        assert!(err.contains("SANICAP.CES=0"), "{err}");
        assert!(choose(&lo, &Caps::default(), Method::Discard).is_err());
        // A second namespace on the controller: sanitize would erase it too.
        let mut shared = nv(true, true, true, true);
        shared.nvme_siblings = vec!["nvme0n2".into()];
        assert_eq!(pick(&shared), Method::NvmeFormatCrypto);
        let err = choose(&d, &shared, Method::NvmeSanitizeCrypto).unwrap_err();
        assert!(err.contains("other namespaces (nvme0n2)"), "{err}");
        // FNA bit 1 or bit 0: the format reaches nvme0n2 too. Allowed while
        // nvme0n2 is itself erased by this run, and said so; refused,
        // naming it and why, when it is kept.
        for (fns, sens) in [(false, true), (true, false)] {
            if let Some(n) = shared.nvme.as_mut() {
                n.format_erases_all_namespaces = sens;
                n.format_all_namespaces = fns;
            }
            shared.nvme_siblings_kept = vec![];
            let (m, why) = choose(&d, &shared, Method::Auto).unwrap();
            assert_eq!(m, Method::NvmeFormatCrypto);
            assert!(why.contains("also erases nvme0n2 (FNA bit"), "{why}");
            shared.nvme_siblings_kept = vec!["nvme0n2 (excluded by speediso.wipe.exclude)".into()];
            assert_eq!(pick(&shared), Method::Random);
            let err = choose(&d, &shared, Method::NvmeFormat).unwrap_err();
            assert!(
                err.contains("would also erase nvme0n2 (excluded by speediso.wipe.exclude)"),
                "{err}"
            );
        }
        // Alone on its controller: nothing else to name.
        let (_, why) = choose(&d, &nv(false, false, true, true), Method::Auto).unwrap();
        assert!(!why.contains("also erases"), "{why}");
    }

    #[test]
    fn siblings_kept_name_why() {
        let sib: Vec<String> = ["nvme0n2", "nvme0n3", "nvme0n4"].map(String::from).into();
        let chosen = vec!["nvme0n1".to_string(), "nvme0n3".to_string()];
        let skipped = vec![select::Skipped::new(
            "/dev/nvme0n2".into(),
            None,
            vec![(
                select::SkipClass::Policy,
                "excluded by speediso.wipe.exclude".into(),
            )],
        )];
        assert_eq!(
            siblings_kept(&sib, &chosen, &skipped),
            [
                "nvme0n2 (excluded by speediso.wipe.exclude)",
                "nvme0n4 (not selected for this wipe)"
            ]
        );
        assert!(siblings_kept(&sib[1..2], &chosen, &skipped).is_empty());
    }

    #[test]
    fn ata_secure_erase_states() {
        let d = disk(Transport::Ata);
        let with = |frozen, locked, enabled| Caps {
            ata: Some(ata::AtaCaps {
                security: ata::Security {
                    supported: true,
                    frozen,
                    locked,
                    enabled,
                    ..Default::default()
                },
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(
            choose(&d, &with(true, false, false), Method::AtaSecureErase)
                .unwrap_err()
                .contains("FROZEN")
        );
        assert!(choose(&d, &with(false, true, true), Method::AtaSecureErase)
            .unwrap_err()
            .contains("LOCKED"));
        assert!(
            choose(&d, &with(false, false, true), Method::AtaSecureErase)
                .unwrap_err()
                .contains("password")
        );
        assert!(choose(&d, &with(false, false, false), Method::AtaSecureErase).is_ok());
        // Never chosen by auto.
        assert_eq!(
            choose(&d, &with(false, false, false), Method::Auto)
                .unwrap()
                .0,
            Method::Random
        );
    }
}
