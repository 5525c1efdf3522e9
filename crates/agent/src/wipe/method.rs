//! The wipe methods: their names, their NIST SP 800-88 categories and
//! what each does to a disk.

use serde::Serialize;

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
    ScsiSanitizeCrypto,
    ScsiSanitizeBlock,
    ScsiSanitizeOverwrite,
    Discard,
    Zero,
    Random,
    Quick,
}

pub(super) const ALL_METHODS: &[Method] = &[
    Method::Auto,
    Method::NvmeSanitizeCrypto,
    Method::NvmeSanitizeBlock,
    Method::NvmeFormatCrypto,
    Method::NvmeFormat,
    Method::AtaSanitizeCrypto,
    Method::AtaSanitizeBlock,
    Method::AtaSanitizeOverwrite,
    Method::AtaSecureErase,
    Method::ScsiSanitizeCrypto,
    Method::ScsiSanitizeBlock,
    Method::ScsiSanitizeOverwrite,
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
            Method::ScsiSanitizeCrypto => "scsi-sanitize-crypto",
            Method::ScsiSanitizeBlock => "scsi-sanitize-block",
            Method::ScsiSanitizeOverwrite => "scsi-sanitize-overwrite",
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
            Method::NvmeSanitizeCrypto
            | Method::AtaSanitizeCrypto
            | Method::NvmeFormatCrypto
            | Method::ScsiSanitizeCrypto => "Cryptographic Erase",
            Method::NvmeSanitizeBlock | Method::AtaSanitizeBlock | Method::ScsiSanitizeBlock => {
                "Block Erase"
            }
            Method::NvmeFormat => "User Data Erase (NVMe Format, SES=1)",
            Method::AtaSanitizeOverwrite | Method::ScsiSanitizeOverwrite => {
                "Overwrite (device firmware)"
            }
            Method::AtaSecureErase => "ATA Security Erase Unit",
            Method::Discard => "Discard (TRIM/UNMAP; not a Clear or Purge)",
            Method::Zero => "Overwrite (zeros)",
            Method::Random => "Overwrite (pseudorandom stream: AES-128-CTR or ChaCha8)",
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
    pub(super) fn content_indeterminate(self) -> bool {
        matches!(
            self,
            Method::NvmeSanitizeCrypto
                | Method::NvmeFormatCrypto
                | Method::AtaSanitizeCrypto
                | Method::ScsiSanitizeCrypto
        )
    }
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
    "scsi-sanitize-crypto",
    "scsi-sanitize-block",
    "scsi-sanitize-overwrite",
    "discard",
    "zero",
    "random",
    "quick",
];
