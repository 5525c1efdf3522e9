//! The wipe's options (`speediso.wipe.*`, the `speediso wipe` flags) and
//! its typed settings: method, verification, passes, signing key,
//! attestation, which disks may be picked.

use super::method::{Method, METHODS};
use super::verify::VerifyMode;
use super::{cert, select};
use crate::options::{Kind, Options, Spec};
use anyhow::{anyhow, Result};
use std::path::PathBuf;

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
    select::LOGICAL_VOLUMES,
    Spec::cmdline(
        "wipe.blank",
        Kind::Bool,
        "overwrite with zeros after a firmware erase",
    )
    .flag("blank"),
    Spec::cmdline("wipe.passes", Kind::Int(1, 35), "overwrite passes").flag("passes"),
    Spec::cmdline(
        super::stream::OPTION,
        Kind::Choice(super::stream::CHOICES),
        "random pattern: auto (AES-128-CTR where the CPU has AES instructions, else ChaCha8), aes or chacha8; any machine can verify either",
    )
    .flag("stream"),
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
    /// Keystream of the random method (`speediso.wipe.stream`).
    pub stream: super::stream::Choice,
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
            stream: match o.get(super::stream::OPTION) {
                Some(v) => super::stream::Choice::parse(v)
                    .ok_or_else(|| anyhow!("bad speediso.{} {v:?}", super::stream::OPTION))?,
                None => super::stream::Choice::Auto,
            },
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

/// Load the signing key. Runs before anything is erased, so a key that
/// cannot be had stops the wipe with every disk untouched.
pub fn load_key(src: &KeySource) -> Result<cert::Key> {
    match src {
        KeySource::Generate => cert::load_or_generate(None),
        KeySource::File(p) => cert::load_or_generate(Some(p)),
        KeySource::Url(c) => cert::fetch_key(c),
    }
}
