//! OS install handoff. Image mode streams a disk image (raw, .gz, .xz,
//! .zst) from http(s)/file onto the target disk with O_DIRECT writes,
//! checks the SHA-256 of the bytes as served, reads the written range back
//! and re-reads the partition table; any failure after writing began
//! clears the partition tables. Kexec mode loads an installer kernel for
//! systemd's kexec.target.
//!
//! Target safety is the wipe module's: `wipe::select` decides which disks
//! may be written at all (mounted, holders, live medium, read-only, real
//! disks only in the live image or with SPEEDISO_WIPE_ALLOW_REAL=1, the
//! SPEEDISO_WIPE_TEST_ALLOW list), and honours its options: disks named
//! by `speediso.wipe.exclude` (an entry naming no disk is an error), and
//! remote and shared storage only with `speediso.wipe.remote`. USB disks
//! are never a target, whatever `speediso.wipe.usb` says. Every device
//! opened for writing passes `blockdev::guard::check_opened` first.

pub mod decompress;
pub mod fetch;
pub mod kexec;
pub mod write;

use crate::blockdev::scan::Disk;
use crate::events::{Progress, StepEvents};
use crate::module::{Module, StepContext};
use crate::options::{Kind, Options, Spec};
use crate::root::Root;
use crate::wipe::select::{self, Request, Skipped, Targets};
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::io::{BufRead, BufReader};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub const NAME: &str = "install";

/// Which disk to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSel {
    Path(String),
    Serial(String),
    Wwn(String),
    /// The smallest eligible disk (USB disks are never eligible here).
    Smallest,
}

impl TargetSel {
    pub fn parse(s: &str) -> Result<TargetSel> {
        let s = s.trim();
        if let Some(v) = s.strip_prefix("serial=").filter(|v| !v.is_empty()) {
            Ok(TargetSel::Serial(v.into()))
        } else if let Some(v) = s.strip_prefix("wwn=").filter(|v| !v.is_empty()) {
            Ok(TargetSel::Wwn(v.into()))
        } else if s == "smallest" {
            Ok(TargetSel::Smallest)
        } else if s.starts_with("/dev/") {
            Ok(TargetSel::Path(s.into()))
        } else {
            bail!("install target {s:?}: expected a /dev path, serial=SERIAL, wwn=WWN or smallest")
        }
    }
}

/// The `speediso.install.*` options and the `speediso install` flags.
pub const OPTIONS: &[Spec] = &[
    Spec::cmdline(
        "install.image",
        Kind::FetchUrl,
        "disk image to write (raw, .gz, .xz, .zst)",
    )
    .flag("image"),
    Spec::cmdline(
        "install.sha256",
        Kind::Sha256,
        "SHA-256 of the image as served",
    )
    .flag("sha256"),
    Spec::cmdline(
        "install.target",
        Kind::NonEmpty,
        "target disk: a path, serial=, wwn= or smallest",
    )
    .flag("target"),
    Spec::cmdline(
        "install.kernel",
        Kind::FetchUrl,
        "installer kernel to kexec",
    )
    .flag("kernel"),
    Spec::cmdline(
        "install.initrd",
        Kind::FetchUrl,
        "installer initrd to kexec",
    )
    .flag("initrd"),
    Spec::cmdline(
        "install.append",
        Kind::Text,
        "installer kernel command line",
    )
    .flag("append"),
    Spec::cmdline(
        "install.kernel_sha256",
        Kind::Sha256,
        "SHA-256 of the installer kernel (optional)",
    )
    .flag("kernel-sha256"),
    Spec::cmdline(
        "install.initrd_sha256",
        Kind::Sha256,
        "SHA-256 of the installer initrd (optional)",
    )
    .flag("initrd-sha256"),
    Spec::cmdline(
        "install.insecure",
        Kind::Bool,
        "allow an image without sha256",
    )
    .flag("insecure"),
    select::EXCLUDE,
    select::USB,
    select::REMOTE,
];

/// `speediso.install.*` (and the wipe's target rules), validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub image: Option<String>,
    pub sha256: Option<String>,
    /// The target disk as named; `None`: the smallest eligible disk.
    pub target: Option<TargetSel>,
    pub insecure: bool,
    pub kernel: Option<String>,
    pub initrd: Option<String>,
    pub append: Option<String>,
    pub kernel_sha256: Option<String>,
    pub initrd_sha256: Option<String>,
    /// Exclusions and remote storage, as for a wipe (USB never).
    pub targets: select::Targets,
}

impl Config {
    /// From the options, checked (`check`).
    pub fn from_options(o: &Options) -> Result<Config> {
        let c = Config::read(o)?;
        c.check()?;
        Ok(c)
    }

    /// From the options, not yet checked as a whole: a command line's
    /// flags override fields before `check`.
    pub fn read(o: &Options) -> Result<Config> {
        let s = |k: &str| o.get(k).map(str::to_string);
        let target = s("install.target");
        Ok(Config {
            image: s("install.image"),
            sha256: s("install.sha256").map(|v| v.to_ascii_lowercase()),
            insecure: o.flag("install.insecure"),
            kernel: s("install.kernel"),
            initrd: s("install.initrd"),
            append: s("install.append"),
            kernel_sha256: s("install.kernel_sha256").map(|v| v.to_ascii_lowercase()),
            initrd_sha256: s("install.initrd_sha256").map(|v| v.to_ascii_lowercase()),
            targets: select::Targets::from_options(o),
            target: target.as_deref().map(TargetSel::parse).transpose()?,
        })
    }

    /// The one mode the settings describe, with what it needs.
    pub fn check(&self) -> Result<()> {
        let c = self;
        let p = "speediso.install.";
        match (&c.image, &c.kernel) {
            (None, None) => bail!("install: set {p}image= (disk image mode) or {p}kernel= with {p}initrd= (kexec mode)"),
            (Some(_), Some(_)) => bail!("install: {p}image= and {p}kernel= exclude each other; choose one mode"),
            (Some(_), None) => {
                if c.sha256.is_none() && !c.insecure {
                    bail!("install: {p}image= needs {p}sha256= (or {p}insecure=1 to write an unverified image)");
                }
                for (k, v) in [
                    ("initrd", c.initrd.is_some()),
                    ("append", c.append.is_some()),
                    ("kernel_sha256", c.kernel_sha256.is_some()),
                    ("initrd_sha256", c.initrd_sha256.is_some()),
                ] {
                    if v {
                        bail!("install: {p}{k}= belongs to kexec mode, not to {p}image=");
                    }
                }
            }
            (None, Some(_)) => {
                if c.initrd.is_none() {
                    bail!("install: {p}kernel= needs {p}initrd=");
                }
                // An unverified kernel runs with full control of the
                // machine: the checksums are required unless waived.
                for (k, v) in [
                    ("kernel_sha256", c.kernel_sha256.is_some()),
                    ("initrd_sha256", c.initrd_sha256.is_some()),
                ] {
                    if !v && !c.insecure {
                        bail!("install: {p}kernel= needs {p}{k}= (or {p}insecure=1 to boot an unverified installer)");
                    }
                }
                if c.sha256.is_some() {
                    bail!("install: {p}sha256= is the image's; in kexec mode use {p}kernel_sha256= and {p}initrd_sha256=");
                }
                if c.target.is_some() {
                    bail!("install: {p}target= has no meaning in kexec mode (the installer picks its disk)");
                }
            }
        }
        if c.initrd.is_some() && c.kernel.is_none() {
            bail!("install: {p}initrd= needs {p}kernel=");
        }
        Ok(())
    }
}

fn why_not(skipped: &[Skipped]) -> String {
    skipped
        .iter()
        .map(|s| format!("{}: {}", s.device, s.reasons.join("; ")))
        .collect::<Vec<_>>()
        .join(" | ")
}

/// The one disk `sel` names, if the wipe safety rules (and the
/// exclusions and remote-storage choice in `targets`) allow writing it;
/// `None` names the smallest eligible disk.
pub fn resolve_target(root: &Root, sel: Option<&TargetSel>, targets: &Targets) -> Result<Disk> {
    let sel = sel.unwrap_or(&TargetSel::Smallest);
    if let TargetSel::Path(p) = sel {
        let s = select::select(
            root,
            &Request {
                devices: vec![p.clone()],
                ..Default::default()
            }
            .with_targets(targets)
            .with_env()
            .no_usb(),
        )?;
        return match s.eligible.into_iter().next() {
            Some(d) => Ok(d),
            None => bail!("refusing to write {p}: {}", why_not(&s.skipped)),
        };
    }
    let s = select::select(
        root,
        &Request {
            all: true,
            ..Default::default()
        }
        .with_targets(targets)
        .with_env()
        .no_usb(),
    )?;
    let found: Vec<Disk> = match sel {
        TargetSel::Serial(v) | TargetSel::Wwn(v) => s
            .eligible
            .iter()
            .filter(|d| {
                let by = match sel {
                    TargetSel::Serial(_) => {
                        d.serial.as_deref().is_some_and(|x| x.trim() == v.trim())
                    }
                    _ => d.wwn.is_some() && select::matches_exclude(d, root, v),
                };
                by
            })
            .cloned()
            .collect(),
        _ => s
            .eligible
            .iter()
            .min_by_key(|d| d.size_bytes)
            .cloned()
            .into_iter()
            .collect(),
    };
    match found.len() {
        1 => Ok(found.into_iter().next().expect("one")),
        0 => bail!(
            "no eligible disk matches target {sel:?} (eligible: {}; skipped: {})",
            s.eligible
                .iter()
                .map(|d| d.path.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            why_not(&s.skipped)
        ),
        n => bail!("target {sel:?} matches {n} disks; name one by path"),
    }
}

/// A successful image install.
#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    pub mode: &'static str,
    pub installed: bool,
    pub image: String,
    pub format: decompress::Format,
    /// SHA-256 of the bytes as served.
    pub sha256: String,
    /// Whether `sha256` was checked against an expected value.
    pub checksum_verified: bool,
    /// Every written byte was read back from the device (O_DIRECT) and
    /// compared with the image.
    pub readback_verified: bool,
    pub bytes_served: u64,
    pub bytes_written: u64,
    /// Range requests made after dropped connections.
    pub resumes: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drops: Vec<String>,
    /// The disk written, named briefly (path, transport, size, ids).
    #[serde(serialize_with = "crate::blockdev::scan::serialize_brief")]
    pub target: Disk,
    /// BLKRRPART: "ok", or why not (loop devices without partscan say EINVAL).
    pub partition_table_reread: String,
    pub duration_s: f64,
    /// Download, decompression, writing and read-back (overlapped).
    pub write_s: f64,
    /// Written bytes over the whole duration (download, write and verify).
    pub mb_per_s: f64,
}

/// Progress every this often.
const TICK: Duration = Duration::from_secs(1);

struct Ticker<'a> {
    events: Option<&'a StepEvents>,
    start: Instant,
    last: Instant,
    phase: &'static str,
}

impl Ticker<'_> {
    /// At most one event per `TICK`, except the `last` one of a phase.
    fn tick(&mut self, done: u64, fraction: Option<f64>, total: Option<u64>, last: bool) {
        let Some(ev) = self.events else { return };
        if !last && self.last.elapsed() < TICK {
            return;
        }
        self.last = Instant::now();
        let secs = self.start.elapsed().as_secs_f64();
        let rate = (secs > 0.0).then(|| done as f64 / secs);
        let eta = fraction
            .filter(|f| *f > 0.0 && *f < 1.0)
            .map(|f| secs * (1.0 - f) / f);
        ev.progress(Progress {
            percent: fraction.map(|f| (f * 1000.0).round() / 10.0),
            bytes: Some(done),
            total_bytes: total,
            rate,
            eta_s: eta,
            message: Some(self.phase.to_string()),
        });
    }
}

/// Did `--confirm` name `disk`? A disk with a serial is confirmed by its
/// serial only: after a renumbering a path names another disk, a serial
/// never does. A disk without one is confirmed by its path.
pub fn confirmed(disk: &Disk, confirm: Option<&str>) -> bool {
    confirm == Some(disk.confirm_name().as_str())
}

/// Write `cfg.image` to `disk`. The caller has checked confirmation.
pub fn install_image(cfg: &Config, disk: &Disk, events: Option<&StepEvents>) -> Result<Installed> {
    let url = cfg.image.as_deref().context("no image URL")?;
    let t0 = Instant::now();
    let mut src = fetch::Source::open(url)?;
    // The selection allowed this disk; the opened device must be one it
    // could have allowed (a swapped symlink, a renumbered disk).
    let real_allowed = select::real_disks_allowed() || disk.test_target;
    let target = write::Target::open(&disk.path, real_allowed)?;
    if let Some(ev) = events {
        ev.log(format!(
            "writing {url} ({}) to {} ({} bytes, {})",
            src.total
                .map(|t| format!("{t} bytes"))
                .unwrap_or_else(|| "size unknown".into()),
            disk.path.display(),
            target.size,
            disk.confirm_name()
        ));
    }
    // From here on the disk may hold part of an image.
    let mut phases = 0.0;
    let outcome = (|| -> Result<(decompress::Format, write::Written)> {
        let counter = src.counter.clone();
        let total = src.total;
        let mut br = BufReader::with_capacity(write::CHUNK, &mut src);
        let head = br.fill_buf().context("reading the image")?;
        let head = head[..head.len().min(8)].to_vec();
        let fmt = decompress::detect(url, &head)?;
        let tw = Instant::now();
        let mut tk = Ticker {
            events,
            start: tw,
            last: tw,
            phase: "writing and verifying",
        };
        let written = {
            let mut dec = decompress::decoder(fmt, &mut br)?;
            write::stream(&mut *dec, &target, &mut |done| {
                let served = counter.load(Ordering::Relaxed);
                let f = total.filter(|t| *t > 0).map(|t| served as f64 / t as f64);
                tk.tick(
                    done,
                    f,
                    if fmt == decompress::Format::Raw {
                        total
                    } else {
                        None
                    },
                    false,
                );
            })
            .with_context(|| format!("decompressing ({fmt:?}) and writing"))?
        };
        // Whatever the decoder left unread still belongs to the checksum.
        std::io::copy(&mut br, &mut std::io::sink()).context("reading the image's end")?;
        drop(br);
        tk.tick(written.bytes, Some(1.0), Some(written.bytes), true);
        phases = tw.elapsed().as_secs_f64();
        let got = src.digest();
        if let Some(want) = &cfg.sha256 {
            if *want != got {
                bail!(
                    "checksum mismatch: {url} served {} bytes with SHA-256 {got}, expected {want}",
                    src.served
                );
            }
        }
        if written.bytes == 0 {
            bail!("{url}: the image is empty");
        }
        // The digest matched: only now does the disk get its first MiB.
        let written = written.commit(&target)?;
        Ok((fmt, written))
    })();
    drop(target);
    let (format, written) = match outcome {
        Ok(x) => x,
        Err(e) => {
            let cleared = match write::clear_partition_tables(&disk.path, real_allowed) {
                Ok(()) => "partition tables cleared (first and last MiB zeroed)".to_string(),
                Err(c) => format!("clearing the partition tables ALSO FAILED: {c:#}"),
            };
            bail!(
                "install to {} failed: {e:#}; {cleared}; nothing installed",
                disk.path.display()
            );
        }
    };
    let reread = match write::reread(&disk.path) {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("not re-read: {e}"),
    };
    // The result line on the console is a summary that leaves nested and
    // late fields out: say what was installed where in one line.
    if let Some(ev) = events {
        ev.log(format!(
            "installed {url}: {} bytes written to {} (model {}, serial {}) and read back; sha256 {} of the image as served{}",
            written.bytes,
            disk.path.display(),
            disk.model.as_deref().unwrap_or("unknown"),
            disk.serial.as_deref().unwrap_or("none"),
            src.digest(),
            if cfg.sha256.is_some() {
                ", matches speediso.install.sha256"
            } else {
                ", NOT checked (speediso.install.insecure=1)"
            }
        ));
    }
    let secs = t0.elapsed().as_secs_f64();
    Ok(Installed {
        mode: "image",
        installed: true,
        image: url.to_string(),
        format,
        sha256: src.digest(),
        checksum_verified: cfg.sha256.is_some(),
        readback_verified: written.verified,
        bytes_served: src.served,
        bytes_written: written.bytes,
        resumes: src.resumes,
        drops: src.drops.clone(),
        target: disk.clone(),
        partition_table_reread: reread,
        duration_s: secs,
        write_s: phases,
        mb_per_s: if secs > 0.0 {
            written.bytes as f64 / secs / 1e6
        } else {
            0.0
        },
    })
}

/// The `install` task module.
pub struct Install;

impl Module for Install {
    type Config = Config;
    /// Image mode writes a disk, so a task with this step must be marked
    /// destructive; kexec mode only loads a kernel, which `run` does
    /// before it asks whether writing was confirmed.
    const DESTRUCTIVE: bool = true;
    const NAME: &'static str = NAME;
    const OPTIONS: &'static [Spec] = OPTIONS;

    fn configure(_step: &toml::Table, options: &Options) -> Result<Config> {
        Config::from_options(options)
    }

    fn run(ctx: &StepContext<Config>) -> Result<serde_json::Value> {
        let cfg = ctx.config;
        if cfg.kernel.is_some() {
            let l = kexec::load(cfg)?;
            ctx.events
                .log(format!("installer kernel loaded; {}", l.next));
            return Ok(serde_json::to_value(&l)?);
        }
        if !ctx.destructive_allowed {
            bail!("install is destructive and this run was not confirmed; nothing written");
        }
        let disk = resolve_target(ctx.root, cfg.target.as_ref(), &cfg.targets)?;
        let r = install_image(cfg, &disk, Some(&ctx.events))?;
        Ok(serde_json::to_value(&r)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Options {
        Options::from_pairs(pairs.iter().map(|(k, v)| (format!("install.{k}"), *v)))
    }

    const SUM: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn a_disk_with_a_serial_is_confirmed_by_its_serial_only() {
        use crate::blockdev::scan::Transport;
        let mut d = Disk {
            name: "nvme0n1".into(),
            path: "/dev/nvme0n1".into(),
            size_bytes: 1 << 30,
            logical_block_size: 512,
            transport: Transport::Nvme,
            rotational: false,
            vendor: None,
            model: None,
            serial: Some("S4EW1".into()),
            wwn: None,
            firmware: None,
            backing_file: None,
            devno: "259:0".into(),
            read_only: false,
            partitions: vec![],
            sys_path: "/sys/block/nvme0n1".into(),
            tran: None,
            logical_sector_size: None,
            physical_sector_size: None,
            removable: false,
            test_target: false,
        };
        // The result names the target briefly: path, transport, size and
        // the identifiers it has.
        #[derive(Serialize)]
        struct R {
            #[serde(serialize_with = "crate::blockdev::scan::serialize_brief")]
            target: Disk,
        }
        assert_eq!(
            serde_json::to_value(R { target: d.clone() }).unwrap()["target"],
            serde_json::json!({"path": "/dev/nvme0n1", "transport": "nvme", "size_bytes": 1u64 << 30, "serial": "S4EW1"})
        );
        assert!(confirmed(&d, Some("S4EW1")));
        assert!(!confirmed(&d, Some("/dev/nvme0n1")));
        assert!(!confirmed(&d, None));
        d.serial = None;
        assert!(confirmed(&d, Some("/dev/nvme0n1")));
    }

    #[test]
    fn config_rules() {
        let ok: &[&[(&str, &str)]] = &[
            &[("image", "http://x/a.zst"), ("sha256", SUM)],
            &[
                ("image", "http://x/a"),
                ("insecure", "1"),
                ("target", "serial=S1"),
            ],
            &[
                ("kernel", "http://x/k"),
                ("initrd", "http://x/i"),
                ("append", "inst.ks=http://f/ks"),
                ("kernel_sha256", SUM),
                ("initrd_sha256", SUM),
            ],
            // Waived explicitly.
            &[
                ("kernel", "http://x/k"),
                ("initrd", "http://x/i"),
                ("insecure", "1"),
            ],
        ];
        for o in ok {
            Config::from_options(&opts(o)).unwrap_or_else(|e| panic!("{o:?}: {e}"));
        }
        let bad: &[(&[(&str, &str)], &str)] = &[
            (&[], "set speediso.install.image="),
            (&[("image", "http://x/a")], "needs speediso.install.sha256="),
            (
                &[("image", "http://x/a"), ("insecure", "0")],
                "needs speediso.install.sha256=",
            ),
            (
                &[
                    ("image", "http://x/a"),
                    ("sha256", SUM),
                    ("kernel", "http://k"),
                ],
                "exclude each other",
            ),
            (
                &[("kernel", "http://x/k")],
                "needs speediso.install.initrd=",
            ),
            // Unverified kexec is refused unless waived (audit item 13).
            (
                &[("kernel", "http://x/k"), ("initrd", "http://x/i")],
                "needs speediso.install.kernel_sha256=",
            ),
            (
                &[
                    ("kernel", "http://x/k"),
                    ("initrd", "http://x/i"),
                    ("kernel_sha256", SUM),
                ],
                "needs speediso.install.initrd_sha256=",
            ),
            (&[("initrd", "http://x/i")], "set speediso.install.image="),
            (
                &[("kernel", "k"), ("initrd", "i"), ("sha256", SUM)],
                "kernel_sha256",
            ),
            (
                &[
                    ("kernel", "k"),
                    ("initrd", "i"),
                    ("insecure", "1"),
                    ("target", "smallest"),
                ],
                "no meaning in kexec",
            ),
            (
                &[("image", "i"), ("sha256", SUM), ("append", "x")],
                "belongs to kexec",
            ),
            (
                &[("image", "i"), ("sha256", SUM), ("target", "sda")],
                "expected a /dev path",
            ),
        ];
        for (o, want) in bad {
            let e = Config::from_options(&opts(o)).unwrap_err().to_string();
            assert!(e.contains(want), "{o:?}: {e}");
        }
    }

    #[test]
    fn target_selectors() {
        assert_eq!(TargetSel::parse("smallest").unwrap(), TargetSel::Smallest);
        assert_eq!(
            TargetSel::parse("serial=ABC").unwrap(),
            TargetSel::Serial("ABC".into())
        );
        assert_eq!(
            TargetSel::parse("wwn=eui.1").unwrap(),
            TargetSel::Wwn("eui.1".into())
        );
        assert_eq!(
            TargetSel::parse("/dev/nvme0n1").unwrap(),
            TargetSel::Path("/dev/nvme0n1".into())
        );
        assert!(TargetSel::parse("serial=").is_err());
        assert!(TargetSel::parse("nvme0n1").is_err());
    }
}
