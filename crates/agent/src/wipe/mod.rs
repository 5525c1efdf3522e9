//! Secure wipe: choose the disks (`select`), pick the strongest method each
//! supports (`nvme`, `ata`, `overwrite`), erase them in parallel with
//! progress, read back (`verify`) and sign a certificate per disk (`cert`).
//! Used by the `wipe` task module and by `speediso wipe`.

pub mod ata;
pub mod cert;
pub mod nvme;
pub mod overwrite;
pub mod select;
pub mod verify;

use crate::blockdev::scan::{Disk, Transport};
use crate::events::{Body, Progress, StepEvents};
use crate::module::{Module, StepContext};
use crate::options::{Kind, Options, Spec};
use crate::root::Root;
use anyhow::{anyhow, bail, Context, Result};
use overwrite::{Failures, Pattern, Target};
use select::{Request, Selection};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};
use verify::{VerifyMode, VerifyReport};

pub const NAME: &str = "wipe";

/// A wipe method, by the names `--method` and `speediso.wipe.method` take
/// (the same list as `plan::WIPE_METHODS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    Auto,
    NvmeSanitizeCrypto,
    NvmeSanitizeBlock,
    NvmeFormatCrypto,
    NvmeFormat,
    AtaSanitizeCrypto,
    AtaSanitizeBlock,
    AtaSanitizeOverwrite,
    AtaSecureErase,
    Discard,
    Zero,
    Random,
    Quick,
}

const ALL_METHODS: &[Method] = &[
    Method::Auto,
    Method::NvmeSanitizeCrypto,
    Method::NvmeSanitizeBlock,
    Method::NvmeFormatCrypto,
    Method::NvmeFormat,
    Method::AtaSanitizeCrypto,
    Method::AtaSanitizeBlock,
    Method::AtaSanitizeOverwrite,
    Method::AtaSecureErase,
    Method::Discard,
    Method::Zero,
    Method::Random,
    Method::Quick,
];

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Auto => "auto",
            Method::NvmeSanitizeCrypto => "nvme-sanitize-crypto",
            Method::NvmeSanitizeBlock => "nvme-sanitize-block",
            Method::NvmeFormatCrypto => "nvme-format-crypto",
            Method::NvmeFormat => "nvme-format",
            Method::AtaSanitizeCrypto => "ata-sanitize-crypto",
            Method::AtaSanitizeBlock => "ata-sanitize-block",
            Method::AtaSanitizeOverwrite => "ata-sanitize-overwrite",
            Method::AtaSecureErase => "ata-secure-erase",
            Method::Discard => "discard",
            Method::Zero => "zero",
            Method::Random => "random",
            Method::Quick => "quick",
        }
    }

    pub fn parse(s: &str) -> Option<Method> {
        ALL_METHODS.iter().copied().find(|m| m.name() == s)
    }

    /// NIST SP 800-88 category.
    pub fn category(self) -> &'static str {
        match self {
            Method::Zero | Method::Random => "Clear",
            Method::Discard | Method::Quick | Method::Auto => "none",
            _ => "Purge",
        }
    }

    /// NIST SP 800-88 technique, in words.
    pub fn technique(self) -> &'static str {
        match self {
            Method::NvmeSanitizeCrypto | Method::AtaSanitizeCrypto | Method::NvmeFormatCrypto => {
                "Cryptographic Erase"
            }
            Method::NvmeSanitizeBlock | Method::AtaSanitizeBlock => "Block Erase",
            Method::NvmeFormat => "User Data Erase (NVMe Format, SES=1)",
            Method::AtaSanitizeOverwrite => "Overwrite (device firmware)",
            Method::AtaSecureErase => "ATA Security Erase Unit",
            Method::Discard => "Discard (TRIM/UNMAP; not a Clear or Purge)",
            Method::Zero => "Overwrite (zeros)",
            Method::Random => "Overwrite (ChaCha8 pseudorandom stream)",
            Method::Quick => "Signature erase only (not a Clear or Purge)",
            Method::Auto => "automatic",
        }
    }

    pub fn is_firmware(self) -> bool {
        !matches!(
            self,
            Method::Zero | Method::Random | Method::Quick | Method::Discard | Method::Auto
        )
    }

    /// Cryptographic erases: the specifications leave what a read returns
    /// afterwards undefined, and some drives fail such reads (see
    /// `verify::marker_verdict`).
    fn content_indeterminate(self) -> bool {
        matches!(
            self,
            Method::NvmeSanitizeCrypto | Method::NvmeFormatCrypto | Method::AtaSanitizeCrypto
        )
    }
}

/// What a disk can do, probed read-only before the plan is shown.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Caps {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nvme: Option<nvme::NvmeCaps>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ata: Option<ata::AtaCaps>,
    /// The queue accepts discards (`queue/discard_max_bytes` > 0).
    pub discard: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe_error: Option<String>,
    /// Other namespaces of the same NVMe controller. Sanitize, and a
    /// format whose secure erase applies to all namespaces, would erase
    /// them too, so those methods are only used on single-namespace
    /// controllers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nvme_siblings: Vec<String>,
    /// The siblings this run does not erase, each with why (excluded,
    /// mounted, not named...). Filled in by `plan`, which knows the
    /// selection; a format that reaches every namespace is refused while
    /// one is listed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nvme_siblings_kept: Vec<String>,
    /// The controller (its sysfs device), so formats that reach every
    /// namespace run one at a time.
    #[serde(skip)]
    pub nvme_controller: Option<PathBuf>,
}

/// Whether `m` on this disk also erases the controller's other namespaces
/// through a format that reaches all of them (FNA bit 0 or 1).
fn format_reaches_siblings(m: Method, caps: &Caps) -> bool {
    matches!(m, Method::NvmeFormat | Method::NvmeFormatCrypto)
        && !caps.nvme_siblings.is_empty()
        && caps.nvme.as_ref().is_some_and(|n| n.format_reaches_all())
}

/// One lock per NVMe controller: two formats that each reach every
/// namespace must not run at once (the second would abort, and reads of
/// the first's markers would fail while it runs).
fn controller_lock(ctrl: &Path) -> std::sync::Arc<Mutex<()>> {
    static LOCKS: std::sync::OnceLock<
        Mutex<std::collections::HashMap<PathBuf, std::sync::Arc<Mutex<()>>>>,
    > = std::sync::OnceLock::new();
    LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(ctrl.to_path_buf())
        .or_default()
        .clone()
}

/// Block devices under `root` whose `device` link resolves to the same
/// controller as `d`'s.
fn controller_siblings(root: &Root, d: &Disk) -> Vec<String> {
    let Ok(mine) = std::fs::canonicalize(d.sys_path.join("device")) else {
        return vec![];
    };
    let mut v: Vec<String> = std::fs::read_dir(root.at("/sys/block"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().to_string())
                .filter(|n| *n != d.name)
                .filter(|n| {
                    std::fs::canonicalize(root.at("/sys/block").join(n).join("device"))
                        .is_ok_and(|p| p == mine)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Probe `d` read-only. Only called for disks that passed selection, and
/// only on the real root: a fixture's /dev names are not this machine's.
pub fn probe(root: &Root, d: &Disk) -> Caps {
    let mut c = Caps {
        discard: std::fs::read_to_string(d.sys_path.join("queue/discard_max_bytes"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0),
        ..Default::default()
    };
    if d.transport == Transport::Nvme {
        c.nvme_siblings = controller_siblings(root, d);
        c.nvme_controller = std::fs::canonicalize(d.sys_path.join("device")).ok();
    }
    if !root.is_system() {
        return c;
    }
    match d.transport {
        Transport::Nvme => match nvme::probe(&d.path) {
            Ok(n) => c.nvme = Some(n),
            Err(e) => c.probe_error = Some(format!("{e:#}")),
        },
        Transport::Ata | Transport::Scsi => match ata::probe(&d.path) {
            Ok(a) => c.ata = Some(a),
            Err(e) => c.probe_error = Some(format!("{e:#}")),
        },
        _ => {}
    }
    c
}

fn fna_words(n: Option<&nvme::NvmeCaps>) -> &'static str {
    match n {
        Some(n) if n.format_erases_all_namespaces => {
            "bit 1: its secure erase applies to all namespaces"
        }
        Some(n) if n.format_all_namespaces => "bit 0: the format applies to all namespaces",
        _ => "per namespace",
    }
}

/// The method for `d`: `requested`, when the disk supports it, or under
/// `auto` the strongest it supports. `Err` says why the request cannot be
/// met on this disk. A format that also erases the controller's other
/// namespaces says so, naming them.
pub fn choose(d: &Disk, caps: &Caps, requested: Method) -> Result<(Method, String), String> {
    let (m, mut why) = choose_method(d, caps, requested)?;
    if format_reaches_siblings(m, caps) {
        why.push_str(&format!(
            "; also erases {} (FNA {}), each itself selected for this wipe",
            caps.nvme_siblings.join(", "),
            fna_words(caps.nvme.as_ref())
        ));
    }
    Ok((m, why))
}

fn choose_method(d: &Disk, caps: &Caps, requested: Method) -> Result<(Method, String), String> {
    let n = caps.nvme.as_ref();
    let a = caps.ata.as_ref();
    let need_nvme = |ok: bool, what: &str| -> Result<(), String> {
        match n {
            None if d.transport != Transport::Nvme => Err("not an NVMe device".into()),
            None => Err(format!(
                "NVMe capabilities could not be read: {}",
                caps.probe_error.as_deref().unwrap_or("not probed")
            )),
            Some(_) if !ok => Err(format!("not supported by this controller ({what})")),
            Some(_) => Ok(()),
        }
    };
    // Sanitize reaches the whole NVM subsystem: only on a controller with
    // no other namespace. A format whose FNA says it reaches every
    // namespace: only when this run erases each of the others too.
    let whole_controller = |m: Method| -> Result<(), String> {
        match m {
            Method::NvmeSanitizeCrypto | Method::NvmeSanitizeBlock
                if !caps.nvme_siblings.is_empty() =>
            {
                Err(format!(
                    "{} would also erase the controller's other namespaces ({}); refusing",
                    m.name(),
                    caps.nvme_siblings.join(", ")
                ))
            }
            Method::NvmeFormat | Method::NvmeFormatCrypto
                if n.is_some_and(|n| n.format_reaches_all())
                    && !caps.nvme_siblings_kept.is_empty() =>
            {
                Err(format!(
                    "{} would also erase {}: the controller's Format NVM reaches every namespace (FNA {}), and this wipe does not erase {}; refusing",
                    m.name(),
                    caps.nvme_siblings_kept.join(", "),
                    fna_words(n),
                    if caps.nvme_siblings_kept.len() == 1 { "it" } else { "them" }
                ))
            }
            _ => Ok(()),
        }
    };
    let need_ata = |ok: bool, what: &str| -> Result<(), String> {
        match a {
            None if !matches!(d.transport, Transport::Ata | Transport::Scsi) => {
                Err("not an ATA/SCSI disk".into())
            }
            None => Err(format!(
                "ATA IDENTIFY failed: {}",
                caps.probe_error.as_deref().unwrap_or("not probed")
            )),
            Some(_) if !ok => Err(format!("not supported by this disk ({what})")),
            Some(_) => Ok(()),
        }
    };
    let asked = |m: Method| (m, format!("requested ({})", m.name()));
    if requested.name().starts_with("nvme-") {
        whole_controller(requested)?;
    }
    match requested {
        Method::Auto => {
            let alone = caps.nvme_siblings.is_empty();
            if let Some(n) = n.filter(|_| alone) {
                if n.sanitize_crypto {
                    return Ok((Method::NvmeSanitizeCrypto, "auto: SANICAP.CES=1".into()));
                }
                if n.sanitize_block {
                    return Ok((Method::NvmeSanitizeBlock, "auto: SANICAP.BES=1".into()));
                }
            }
            if let Some(n) =
                n.filter(|n| !n.format_reaches_all() || caps.nvme_siblings_kept.is_empty())
            {
                if n.format && n.format_crypto {
                    return Ok((
                        Method::NvmeFormatCrypto,
                        "auto: OACS.Format=1, FNA.CES=1".into(),
                    ));
                }
                if n.format {
                    return Ok((
                        Method::NvmeFormat,
                        "auto: OACS.Format=1 (no sanitize, no crypto erase)".into(),
                    ));
                }
            }
            if let Some(a) = a {
                if a.sanitize_crypto {
                    return Ok((
                        Method::AtaSanitizeCrypto,
                        "auto: SANITIZE CRYPTO SCRAMBLE supported".into(),
                    ));
                }
                if a.sanitize_block {
                    return Ok((
                        Method::AtaSanitizeBlock,
                        "auto: SANITIZE BLOCK ERASE supported".into(),
                    ));
                }
            }
            let why = match d.transport {
                Transport::Loop => "auto: loop device, no firmware erase; overwrite",
                Transport::Nvme | Transport::Ata | Transport::Scsi => {
                    "auto: no sanitize or secure format supported; overwrite"
                }
                _ => "auto: no firmware erase reachable on this transport; overwrite",
            };
            Ok((Method::Random, why.into()))
        }
        Method::NvmeSanitizeCrypto => {
            need_nvme(n.is_some_and(|n| n.sanitize_crypto), "SANICAP.CES=0")
                .map(|_| asked(requested))
        }
        Method::NvmeSanitizeBlock => {
            need_nvme(n.is_some_and(|n| n.sanitize_block), "SANICAP.BES=0")
                .map(|_| asked(requested))
        }
        Method::NvmeFormatCrypto => need_nvme(
            n.is_some_and(|n| n.format && n.format_crypto),
            "OACS.Format=0 or FNA.CES=0",
        )
        .map(|_| asked(requested)),
        Method::NvmeFormat => {
            need_nvme(n.is_some_and(|n| n.format), "OACS.Format=0").map(|_| asked(requested))
        }
        Method::AtaSanitizeCrypto => {
            need_ata(a.is_some_and(|a| a.sanitize_crypto), "no CRYPTO SCRAMBLE")
                .map(|_| asked(requested))
        }
        Method::AtaSanitizeBlock => need_ata(a.is_some_and(|a| a.sanitize_block), "no BLOCK ERASE")
            .map(|_| asked(requested)),
        Method::AtaSanitizeOverwrite => {
            need_ata(a.is_some_and(|a| a.sanitize_overwrite), "no OVERWRITE")
                .map(|_| asked(requested))
        }
        Method::AtaSecureErase => {
            need_ata(
                a.is_some_and(|a| a.security.supported),
                "no Security feature set",
            )?;
            let s = &a.expect("checked").security;
            if s.frozen {
                return Err("security is FROZEN (the BIOS froze it at boot): suspend and resume the machine \
                     (rtcwake -m mem -s 10) or hot-plug the disk, then retry"
                    .into());
            }
            if s.locked {
                return Err(
                    "the disk is LOCKED with a password speediso does not know; unlock it first"
                        .into(),
                );
            }
            if s.enabled {
                return Err(
                    "a user password is already set (security enabled); speediso will not guess it"
                        .into(),
                );
            }
            Ok(asked(requested))
        }
        Method::Discard => {
            if caps.discard {
                Ok(asked(requested))
            } else {
                Err("the device does not accept discards (queue/discard_max_bytes=0)".into())
            }
        }
        Method::Zero | Method::Random | Method::Quick => Ok(asked(requested)),
    }
}

/// Where the signing key comes from.
#[derive(Clone)]
pub enum KeySource {
    /// A fresh key for this run: the certificates say `generated`, and
    /// prove only that they were not altered since.
    Generate,
    /// A key file in the image (`speediso.wipe.key=PATH`, `--key`).
    File(PathBuf),
    /// Fetched at boot with the host's token (`speediso.wipe.key=https://`),
    /// kept in memory only.
    Url(crate::report::Config),
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeySource::Generate => write!(f, "Generate"),
            KeySource::File(p) => write!(f, "File({})", p.display()),
            KeySource::Url(c) => write!(f, "Url({})", crate::redact::text(&c.base)),
        }
    }
}

/// NIST SP 800-88 Appendix G fields that come from the operator.
#[derive(Debug, Clone, Default)]
pub struct Attestation {
    pub performed_by: Option<String>,
    pub validated_by: Option<String>,
    pub organization: Option<String>,
    pub asset_tag: Option<String>,
    pub destination: Option<String>,
}

/// Wipe methods, by the names `--method` and `speediso.wipe.method=` take.
pub const METHODS: &[&str] = &[
    "auto",
    "nvme-sanitize-crypto",
    "nvme-sanitize-block",
    "nvme-format-crypto",
    "nvme-format",
    "ata-sanitize-crypto",
    "ata-sanitize-block",
    "ata-sanitize-overwrite",
    "ata-secure-erase",
    "discard",
    "zero",
    "random",
    "quick",
];

/// The `speediso.wipe.*` options and the `speediso wipe` flags.
pub const OPTIONS: &[Spec] = &[
    Spec::cmdline(
        "wipe.method",
        Kind::Choice(METHODS),
        "wipe method; auto picks the strongest the disk supports",
    )
    .flag("method"),
    Spec::cmdline(
        "wipe.verify",
        Kind::Verify,
        "verification after wiping: full, off or sample:FRACTION",
    )
    .flag("verify"),
    select::EXCLUDE,
    select::USB,
    select::REMOTE,
    Spec::cmdline(
        "wipe.blank",
        Kind::Bool,
        "overwrite with zeros after a firmware erase",
    )
    .flag("blank"),
    Spec::cmdline("wipe.passes", Kind::Int(1, 35), "overwrite passes").flag("passes"),
    Spec::cmdline(
        "wipe.key",
        Kind::NonEmpty,
        "Ed25519 key that signs certificates: a path, or an https:// URL fetched with the token and kept in RAM",
    )
    .flag("key"),
    Spec::cmdline(
        "wipe.operator",
        Kind::NonEmpty,
        "certificate: who performs the sanitization (NIST SP 800-88 App. G)",
    ),
    Spec::cmdline(
        "wipe.validator",
        Kind::NonEmpty,
        "certificate: who validates the sanitization",
    ),
    Spec::cmdline(
        "wipe.organization",
        Kind::NonEmpty,
        "certificate: the organisation responsible",
    ),
    Spec::cmdline(
        "wipe.asset_tag",
        Kind::NonEmpty,
        "certificate: the asset tag (default: the chassis asset tag from SMBIOS)",
    ),
    Spec::cmdline(
        "wipe.destination",
        Kind::NonEmpty,
        "certificate: where the media goes next (reuse, resale, recycle, destroy, return)",
    ),
];

/// Settings of one wipe run.
#[derive(Debug, Clone)]
pub struct Config {
    pub method: Method,
    pub verify: VerifyMode,
    pub passes: u32,
    pub blank: bool,
    pub key: KeySource,
    pub attestation: Attestation,
    /// Which disks beyond the default may be picked.
    pub targets: select::Targets,
}

impl Config {
    /// From `speediso.wipe.*` options (validated by the plan already).
    pub fn from_options(o: &Options) -> Result<Config> {
        let method = match o.get("wipe.method") {
            Some(m) => Method::parse(m).ok_or_else(|| anyhow!("unknown wipe method {m:?}"))?,
            None => Method::Auto,
        };
        let verify = match o.get("wipe.verify") {
            Some(v) => {
                VerifyMode::parse(v).ok_or_else(|| anyhow!("bad speediso.wipe.verify {v:?}"))?
            }
            None => VerifyMode::Full,
        };
        Ok(Config {
            method,
            verify,
            passes: o
                .get("wipe.passes")
                .and_then(|p| p.parse().ok())
                .unwrap_or(1),
            blank: o.flag("wipe.blank"),
            key: match crate::report::Config::signing_key(o).map_err(|e| anyhow!(e))? {
                Some(c) => KeySource::Url(c),
                None => o
                    .get("wipe.key")
                    .map_or(KeySource::Generate, |p| KeySource::File(PathBuf::from(p))),
            },
            attestation: Attestation {
                performed_by: o.get("wipe.operator").map(str::to_string),
                validated_by: o.get("wipe.validator").map(str::to_string),
                organization: o.get("wipe.organization").map(str::to_string),
                asset_tag: o.get("wipe.asset_tag").map(str::to_string),
                destination: o.get("wipe.destination").map(str::to_string),
            },
            targets: select::Targets::from_options(o),
        })
    }
}

/// One disk in the plan: what will be done to it and why.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    pub disk: Disk,
    pub method: Method,
    pub category: &'static str,
    pub why: String,
    pub caps: Caps,
}

/// The whole plan: what is erased, how, and what is skipped and why.
#[derive(Debug, Clone, Serialize)]
pub struct WipePlan {
    pub erase: Vec<Planned>,
    pub skipped: Vec<select::Skipped>,
    pub verify: String,
    pub passes: u32,
    pub blank: bool,
}

/// The `siblings` not among the `chosen` disks, each with the reasons
/// selection gave for skipping it, or "not selected for this wipe" (not
/// named by `--device`).
fn siblings_kept(
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
fn shared_namespace_refusal(caps: &Caps, req: &Request) -> Option<String> {
    if req.remote {
        return None;
    }
    let why = caps.nvme.as_ref()?.shared_namespace()?;
    Some(format!("{why}; set speediso.wipe.remote=1 to erase it"))
}

/// Select disks and choose a method for each. Fails when an exclusion
/// names no disk.
pub fn plan(root: &Root, req: &Request, cfg: &Config) -> Result<WipePlan> {
    let Selection {
        eligible,
        mut skipped,
    } = select::select(root, req)?;
    let mut erase = Vec::new();
    let chosen: Vec<String> = eligible.iter().map(|d| d.name.clone()).collect();
    let skipped_by_select = skipped.clone();
    for d in eligible {
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
    Ok(WipePlan {
        erase,
        skipped,
        verify: cfg.verify.as_string(),
        passes: cfg.passes,
        blank: cfg.blank,
    })
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

/// The plan as the lines `--plan` prints.
pub fn describe_plan(p: &WipePlan) -> String {
    let mut s = String::new();
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
            "  {:<14} {:>10}  {:<6} model {:<24} serial {:<20} method {} ({}, {}) — {}\n",
            d.path.display(),
            human_bytes(d.size_bytes),
            format!("{:?}", d.transport).to_lowercase(),
            d.model.as_deref().unwrap_or("-"),
            d.serial.as_deref().unwrap_or("-"),
            e.method.name(),
            e.category,
            e.method.technique(),
            e.why
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
    }
    if p.skipped.iter().any(|k| !k.is_blocking()) {
        s.push_str("skipped (not targets):\n");
    }
    for k in p.skipped.iter().filter(|k| !k.is_blocking()) {
        s.push_str(&format!("  {:<14} {}\n", k.device, k.reasons.join("; ")));
    }
    s
}

/// Live progress of one disk; phases are write passes and verification.
pub struct Tracker {
    device: String,
    events: Option<StepEvents>,
    phase: Mutex<(String, u64, Instant)>,
    done: AtomicU64,
    last: Mutex<Instant>,
    interval: Duration,
}

impl Tracker {
    pub fn new(device: String, events: Option<StepEvents>) -> Tracker {
        Tracker {
            device,
            events,
            phase: Mutex::new((String::new(), 0, Instant::now())),
            done: AtomicU64::new(0),
            last: Mutex::new(Instant::now()),
            interval: Duration::from_secs(2),
        }
    }

    /// Start a phase of `total` bytes.
    pub fn phase(&self, name: &str, total: u64) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) =
            (name.to_string(), total, Instant::now());
        self.done.store(0, Ordering::Relaxed);
        self.emit(None);
    }

    /// `n` more bytes done; emits at most every `interval`.
    pub fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
        let due = match self.last.try_lock() {
            Ok(mut l) if l.elapsed() >= self.interval => {
                *l = Instant::now();
                true
            }
            _ => false,
        };
        if due {
            self.emit(None);
        }
    }

    /// A firmware operation's own progress (0..=1).
    pub fn fraction(&self, f: f64) {
        self.emit(Some(f));
    }

    fn emit(&self, fraction: Option<f64>) {
        let Some(ev) = &self.events else { return };
        let (name, total, start) = self.phase.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let done = self.done.load(Ordering::Relaxed);
        let secs = start.elapsed().as_secs_f64();
        let pct = fraction.unwrap_or(if total > 0 {
            done as f64 / total as f64
        } else {
            0.0
        });
        let rate = (secs > 0.0 && fraction.is_none()).then(|| done as f64 / secs);
        let eta = if pct > 0.0 && pct < 1.0 {
            Some(secs * (1.0 - pct) / pct)
        } else {
            None
        };
        ev.progress(Progress {
            percent: Some((pct * 1000.0).round() / 10.0),
            bytes: fraction.is_none().then_some(done),
            total_bytes: (total > 0).then_some(total),
            rate,
            eta_s: eta,
            message: Some(format!("{} {name}", self.device)),
        });
    }
}

/// What happened to one disk.
#[derive(Debug, Clone, Serialize)]
pub struct DiskOutcome {
    pub device: String,
    pub disk: Disk,
    pub method: Method,
    pub why: String,
    /// wiped or failed.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub failed_ranges: Vec<overwrite::FailedRange>,
    pub passes: u32,
    pub blank: bool,
    /// Hex seed of the random stream (random method), so anyone can
    /// regenerate and check it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
    pub verify: VerifyReport,
    pub started: String,
    pub finished: String,
    pub duration_s: f64,
    pub bytes_written: u64,
    pub write_throughput_bps: f64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// Erase one planned disk. Never panics out: every failure becomes an
/// outcome with `outcome = "failed"`.
pub fn wipe_disk(
    p: &Planned,
    cfg: &Config,
    root: &Root,
    real_allowed: bool,
    parallel: usize,
    events: Option<StepEvents>,
) -> DiskOutcome {
    let tracker = Tracker::new(p.disk.path.display().to_string(), events);
    let started = SystemTime::now();
    let t0 = Instant::now();
    let fails = Mutex::new(Failures::default());
    let mut seed = None;
    let mut notes = Vec::new();
    let mut written = 0u64;
    let mut write_secs = 0f64;
    let res: Result<VerifyReport> = (|| {
        let mut t = overwrite::open_target(&p.disk.path, real_allowed || p.disk.test_target, true)?;
        check_identity(root, &t.file, &p.disk)?;
        t.depth = overwrite::depth_for(parallel);
        if t.size != p.disk.size_bytes {
            notes.push(format!(
                "size from the kernel {} differs from sysfs {}",
                t.size, p.disk.size_bytes
            ));
        }
        let full = [(0, t.size)];
        let mut overwrite_pass = |pattern: Pattern, label: String, ranges: &[(u64, u64)]| {
            let bytes: u64 = ranges.iter().map(|(a, b)| b - a).sum();
            tracker.phase(&label, bytes);
            let w0 = Instant::now();
            for &(a, b) in ranges {
                overwrite::write_range(&t, a, b, pattern, &tracker, &fails);
            }
            overwrite::flush(&t, &fails);
            write_secs += w0.elapsed().as_secs_f64();
            written += bytes;
        };
        let gave_up = || fails.lock().unwrap_or_else(|e| e.into_inner()).gave_up;
        match p.method {
            Method::Zero | Method::Random => {
                let mut last = Pattern::Zero;
                let mut s = [0u8; 32];
                if p.method == Method::Random {
                    getrandom::getrandom(&mut s)
                        .map_err(|e| anyhow!("no randomness for the seed: {e}"))?;
                    seed = Some(hex::encode(s));
                }
                for pass in 1..=cfg.passes {
                    last = if p.method == Method::Random {
                        Pattern::Stream { seed: s, pass }
                    } else {
                        Pattern::Zero
                    };
                    overwrite_pass(last, format!("write pass {pass}/{}", cfg.passes), &full);
                    if gave_up() {
                        bail!("gave up after {} failed ranges or {} unwritable blocks; the disk looks dead", overwrite::MAX_FAILED_RANGES, overwrite::MAX_FAILED_BLOCKS);
                    }
                }
                Ok(verify::verify_pattern(
                    &t, &full, cfg.verify, last, &tracker, &fails,
                ))
            }
            Method::Quick => {
                let ranges = overwrite::quick_ranges(t.size);
                overwrite_pass(Pattern::Zero, "signature erase".into(), &ranges);
                Ok(verify::verify_pattern(
                    &t,
                    &ranges,
                    cfg.verify,
                    Pattern::Zero,
                    &tracker,
                    &fails,
                ))
            }
            m => {
                let ctrl = p
                    .caps
                    .nvme_controller
                    .as_deref()
                    .filter(|_| format_reaches_siblings(m, &p.caps))
                    .map(controller_lock);
                let _one_format_at_a_time = ctrl
                    .as_ref()
                    .map(|l| l.lock().unwrap_or_else(|e| e.into_inner()));
                if format_reaches_siblings(m, &p.caps) {
                    notes.push(format!(
                        "Format NVM reaches every namespace of the controller (FNA {}): also erases {}",
                        fna_words(p.caps.nvme.as_ref()),
                        p.caps.nvme_siblings.join(", ")
                    ));
                }
                if matches!(m, Method::NvmeSanitizeCrypto | Method::NvmeSanitizeBlock) {
                    // A sanitize still running from before a reboot aborts
                    // the marker writes: let it end first.
                    nvme::await_running_sanitize(
                        &t.file,
                        Duration::from_secs(1),
                        &tracker,
                        &mut notes,
                    )
                    .with_context(|| format!("{} on {}", m.name(), p.disk.path.display()))?;
                }
                let markers = verify::place_markers(&t, cfg.verify);
                tracker.phase(m.name(), 0);
                firmware_erase(m, &t, &p.disk, &tracker, &mut notes)?;
                let found = verify::verify_markers(
                    &t,
                    &markers,
                    m.content_indeterminate(),
                    cfg.verify,
                    &fails,
                );
                if cfg.blank {
                    overwrite_pass(Pattern::Zero, "blank (zeros)".into(), &full);
                    let mut z = verify::verify_pattern(
                        &t,
                        &full,
                        cfg.verify,
                        Pattern::Zero,
                        &tracker,
                        &fails,
                    );
                    // The firmware erase is judged before the blank pass
                    // hides what it left.
                    if found.result == "failed" {
                        z.result = "failed".into();
                    }
                    z.note = found.note;
                    return Ok(z);
                }
                Ok(found)
            }
        }
    })();
    let finished = SystemTime::now();
    let failed_ranges = fails.into_inner().unwrap_or_else(|e| e.into_inner()).ranges;
    let (verify, mut error) = match res {
        Ok(v) => (v, None),
        Err(e) => (
            VerifyReport {
                method: "none".into(),
                result: "skipped".into(),
                ..Default::default()
            },
            Some(format!("{e:#}")),
        ),
    };
    if error.is_none() && !failed_ranges.is_empty() {
        let n: u64 = failed_ranges.iter().map(|r| r.lba_count).sum();
        error = Some(format!(
            "{} range(s), {n} logical block(s) failed: {}",
            failed_ranges.len(),
            failed_ranges
                .iter()
                .take(8)
                .map(|r| format!("{} LBA {}+{} ({})", r.op, r.lba_start, r.lba_count, r.error))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if error.is_none() && verify.result == "failed" {
        error = Some(match &verify.note {
            Some(n) => format!("verification failed: {n}"),
            None => format!(
                "verification failed: {} mismatching range(s)",
                verify.mismatches
            ),
        });
    }
    DiskOutcome {
        device: p.disk.path.display().to_string(),
        disk: p.disk.clone(),
        method: p.method,
        why: p.why.clone(),
        outcome: outcome_of(p.method, error.is_some(), &verify).into(),
        error,
        failed_ranges,
        passes: if p.method.is_firmware() {
            1
        } else {
            cfg.passes
        },
        blank: cfg.blank && !matches!(p.method, Method::Zero | Method::Random | Method::Quick),
        seed,
        verify,
        started: crate::events::rfc3339(started),
        finished: crate::events::rfc3339(finished),
        duration_s: t0.elapsed().as_secs_f64(),
        bytes_written: written,
        write_throughput_bps: if write_secs > 0.0 {
            written as f64 / write_secs
        } else {
            0.0
        },
        notes,
    }
}

/// Right after open and before any write: the opened device must still be
/// the planned disk. Its number (fstat's st_rdev) must be the planned
/// `major:minor`, and the disk now at that number must have the planned
/// serial, WWN and (loop devices) backing file. Between plan and open a
/// disk can be pulled and another take its name, or a loop device be
/// re-attached to another file; either fails this disk, untouched.
pub fn check_identity(root: &Root, f: &std::fs::File, d: &Disk) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let path = d.path.display();
    let rdev = f
        .metadata()
        .with_context(|| format!("fstat of {path}"))?
        .rdev();
    let now = format!("{}:{}", libc::major(rdev), libc::minor(rdev));
    if now != d.devno {
        bail!(
            "{path} is now device {now}, not {} as planned: the disk was replaced or renumbered since the plan; nothing written",
            d.devno
        );
    }
    let cur = crate::blockdev::scan::disk_at(root, &now).ok_or_else(|| {
        anyhow!("cannot read /sys/dev/block/{now} to confirm {path} is the planned disk; nothing written")
    })?;
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "none".into());
    for (what, planned, found) in [
        ("serial", &d.serial, &cur.serial),
        ("WWN", &d.wwn, &cur.wwn),
        ("backing file", &d.backing_file, &cur.backing_file),
    ] {
        if planned != found {
            bail!(
                "{path} ({now}) now has {what} {}, not {} as planned: the disk was replaced since the plan; nothing written",
                show(found),
                show(planned)
            );
        }
    }
    Ok(())
}

/// What a certificate may claim. `wiped` only for a Clear or Purge
/// method whose verification ran and passed; a Clear/Purge with
/// verification off (or inconclusive) is `wiped-unverified`; the quick
/// signature wipe and a discard are not sanitization at all and say so.
pub fn outcome_of(method: Method, failed: bool, verify: &VerifyReport) -> &'static str {
    if failed {
        return "failed";
    }
    match method {
        Method::Quick => "signatures-erased",
        Method::Discard => "discarded",
        _ if verify.result == "passed" => "wiped",
        _ => "wiped-unverified",
    }
}

fn firmware_erase(
    m: Method,
    t: &Target,
    d: &Disk,
    tracker: &Tracker,
    notes: &mut Vec<String>,
) -> Result<()> {
    match m {
        Method::NvmeSanitizeCrypto
        | Method::NvmeSanitizeBlock
        | Method::NvmeFormatCrypto
        | Method::NvmeFormat => nvme::erase(m, t, tracker, notes)
            .with_context(|| format!("{} on {}", m.name(), d.path.display())),
        Method::AtaSanitizeCrypto
        | Method::AtaSanitizeBlock
        | Method::AtaSanitizeOverwrite
        | Method::AtaSecureErase => ata::erase(m, t, tracker, notes)
            .with_context(|| format!("{} on {}", m.name(), d.path.display())),
        Method::Discard => {
            match crate::sys::blk::discard(&t.file, 0, t.size, true) {
                Ok(()) => notes.push("BLKSECDISCARD accepted".into()),
                Err(e) => {
                    notes.push(format!("BLKSECDISCARD refused ({e}); using BLKDISCARD"));
                    crate::sys::blk::discard(&t.file, 0, t.size, false)
                        .with_context(|| format!("BLKDISCARD on {}", d.path.display()))?;
                }
            }
            tracker.fraction(1.0);
            Ok(())
        }
        _ => bail!("{} is not a firmware method", m.name()),
    }
}

/// The result of a whole run, as the step's `result` data.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub disks: Vec<DiskOutcome>,
    pub skipped: Vec<select::Skipped>,
    /// The signed certificates themselves, so the report endpoint (the
    /// collector) stores and verifies them.
    pub certificates: Vec<serde_json::Value>,
    /// Where each certificate's JSON was written, same order.
    pub certificate_files: Vec<String>,
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

/// Load the signing key. Runs before anything is erased, so a key that
/// cannot be had stops the wipe with every disk untouched.
pub fn load_key(src: &KeySource) -> Result<cert::Key> {
    match src {
        KeySource::Generate => cert::load_or_generate(None),
        KeySource::File(p) => cert::load_or_generate(Some(p)),
        KeySource::Url(c) => cert::fetch_key(c),
    }
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
    let n = plan.erase.len();
    let done: Vec<(DiskOutcome, serde_json::Value, Result<PathBuf, String>)> =
        std::thread::scope(|s| {
            let hs: Vec<_> = plan
                .erase
                .iter()
                .map(|p| {
                    let ev = events.clone();
                    let (ctx, key, dir) = (&ctx, &key, &dir);
                    s.spawn(move || {
                        let o = wipe_disk(p, cfg, root, real_allowed, n, ev.clone());
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
    Ok(RunResult {
        disks: outcomes,
        skipped: plan.skipped.clone(),
        certificates,
        certificate_files,
        public_key: key.public_hex(),
        key_source: key.source,
        failed,
    })
}

fn wipe_disk_panicked(p: &Planned) -> DiskOutcome {
    let now = crate::events::rfc3339_now();
    DiskOutcome {
        device: p.disk.path.display().to_string(),
        disk: p.disk.clone(),
        method: p.method,
        why: p.why.clone(),
        outcome: "failed".into(),
        error: None,
        failed_ranges: vec![],
        passes: 0,
        blank: false,
        seed: None,
        verify: VerifyReport::default(),
        started: now.clone(),
        finished: now,
        duration_s: 0.0,
        bytes_written: 0,
        write_throughput_bps: 0.0,
        notes: vec![],
    }
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
    use super::*;

    #[test]
    fn a_big_disk_raises_the_time_limit_past_48_hours() {
        let mut d = disk(Transport::Ata);
        d.size_bytes = 16_000_000_000_000;
        d.rotational = true;
        let cfg = Config {
            method: Method::Random,
            verify: VerifyMode::Full,
            passes: 1,
            blank: false,
            key: KeySource::Generate,
            attestation: Attestation::default(),
            targets: Default::default(),
        };
        let plan = |d: Disk, m: Method| WipePlan {
            erase: vec![Planned {
                category: m.category(),
                disk: d,
                method: m,
                why: String::new(),
                caps: Caps::default(),
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
            remote: true,
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
