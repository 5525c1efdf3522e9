//! The choice of method for one disk: the one requested when the disk
//! supports it, else the strongest it does, each with the reason.

use super::caps::{fna_words, format_reaches_siblings, native_scsi, Caps};
use super::method::Method;
use crate::blockdev::scan::{Disk, Transport};
use anyhow::Result;

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

pub(super) fn choose_method(
    d: &Disk,
    caps: &Caps,
    requested: Method,
) -> Result<(Method, String), String> {
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
            None if native_scsi(d) => {
                Err("a native SCSI disk, no ATA behind it (see scsi-sanitize-*)".into())
            }
            None => Err(format!(
                "ATA IDENTIFY failed: {}",
                caps.probe_error.as_deref().unwrap_or("not probed")
            )),
            Some(_) if !ok => Err(format!("not supported by this disk ({what})")),
            Some(_) => Ok(()),
        }
    };
    let s = caps.scsi.as_ref();
    let need_scsi = |ok: bool, what: &str| -> Result<(), String> {
        match s {
            None if !native_scsi(d) => Err("not a native SCSI disk".into()),
            None => Err(format!(
                "REPORT SUPPORTED OPERATION CODES could not be read: {}",
                caps.probe_error.as_deref().unwrap_or("not probed")
            )),
            Some(s) if !ok => Err(format!("not supported by this disk ({what}; {})", s.probe)),
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
            if let Some(s) = s {
                for (ok, m, what) in [
                    (
                        s.sanitize_crypto,
                        Method::ScsiSanitizeCrypto,
                        "CRYPTOGRAPHIC ERASE",
                    ),
                    (s.sanitize_block, Method::ScsiSanitizeBlock, "BLOCK ERASE"),
                    // Unlike a host overwrite, the drive's own reaches its
                    // spare and reallocated blocks (NIST SP 800-88 Purge).
                    (
                        s.sanitize_overwrite,
                        Method::ScsiSanitizeOverwrite,
                        "OVERWRITE",
                    ),
                ] {
                    if ok {
                        return Ok((
                            m,
                            format!("auto: SCSI SANITIZE {what} supported ({})", s.probe),
                        ));
                    }
                }
                return Ok((Method::Random, format!("auto: {}; overwrite", s.probe)));
            }
            if let (true, Some(e)) = (native_scsi(d), &caps.probe_error) {
                return Ok((
                    Method::Random,
                    format!(
                        "auto: REPORT SUPPORTED OPERATION CODES could not be read ({e}); overwrite"
                    ),
                ));
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
        Method::ScsiSanitizeCrypto => need_scsi(
            s.is_some_and(|s| s.sanitize_crypto),
            "no CRYPTOGRAPHIC ERASE",
        )
        .map(|_| asked(requested)),
        Method::ScsiSanitizeBlock => {
            need_scsi(s.is_some_and(|s| s.sanitize_block), "no BLOCK ERASE")
                .map(|_| asked(requested))
        }
        Method::ScsiSanitizeOverwrite => {
            need_scsi(s.is_some_and(|s| s.sanitize_overwrite), "no OVERWRITE")
                .map(|_| asked(requested))
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
