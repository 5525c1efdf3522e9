//! Kexec handoff: fetch the installer kernel and initrd into memory
//! (checksums optional), load them with kexec_file_load, and leave the
//! jump to systemd: the dispatcher's after=reboot becomes kexec.target when
//! a kernel is loaded, so the report spool drains during shutdown first.

use super::fetch::Source;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::io::{Seek, SeekFrom};

/// What was loaded.
#[derive(Debug, Clone, Serialize)]
pub struct Loaded {
    pub mode: &'static str,
    pub kernel: Fetched,
    pub initrd: Fetched,
    pub append: String,
    /// Whether /sys/kernel/kexec_loaded says 1 after loading.
    pub loaded: bool,
    pub next: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Fetched {
    pub url: String,
    pub bytes: u64,
    pub sha256: String,
    /// Whether an expected checksum was given and matched.
    pub verified: bool,
}

/// Whether a kexec kernel is loaded (the running kernel says so).
pub fn loaded() -> bool {
    std::fs::read_to_string("/sys/kernel/kexec_loaded").is_ok_and(|s| s.trim() == "1")
}

/// Download `url` into an anonymous memory file, checking `sha256` when given.
pub fn fetch_to_memory(
    url: &str,
    sha256: Option<&str>,
    name: &str,
) -> Result<(std::fs::File, Fetched)> {
    let mut src = Source::open(url)?;
    let mut f = crate::sys::kexec::memfd(name).context("memfd_create")?;
    let bytes = std::io::copy(&mut src, &mut f).with_context(|| format!("downloading {url}"))?;
    let digest = src.digest();
    if let Some(want) = sha256 {
        if !want.eq_ignore_ascii_case(&digest) {
            bail!("{name} {url}: SHA-256 mismatch: expected {want}, got {digest}");
        }
    }
    f.seek(SeekFrom::Start(0))?;
    Ok((
        f,
        Fetched {
            url: url.to_string(),
            bytes,
            sha256: digest,
            verified: sha256.is_some(),
        },
    ))
}

/// Fetch and load. Nothing is executed here.
pub fn load(cfg: &super::Config) -> Result<Loaded> {
    let (Some(k), Some(i)) = (&cfg.kernel, &cfg.initrd) else {
        bail!("kexec mode needs both a kernel and an initrd URL");
    };
    let (kf, kernel) = fetch_to_memory(k, cfg.kernel_sha256.as_deref(), "kernel")?;
    let (inf, initrd) = fetch_to_memory(i, cfg.initrd_sha256.as_deref(), "initrd")?;
    let append = cfg.append.clone().unwrap_or_default();
    crate::sys::kexec::file_load(&kf, &inf, &append).context(
        "kexec_file_load (needs CAP_SYS_BOOT; under Secure Boot lockdown the kernel must be signed)",
    )?;
    Ok(Loaded {
        mode: "kexec",
        kernel,
        initrd,
        append,
        loaded: loaded(),
        next: "systemctl kexec (kexec.target) after the report spool drained",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn fetch_to_memory_checks_and_keeps_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("vmlinuz");
        std::fs::write(&p, b"kernel bytes").unwrap();
        let url = format!("file://{}", p.display());
        let sum = "3ad9bb0a0c1ec2bd2b0ab6e4ac6b0e4d0e0f7b0a0c1ec2bd2b0ab6e4ac6b0e4d";
        let e = fetch_to_memory(&url, Some(sum), "kernel")
            .unwrap_err()
            .to_string();
        assert!(e.contains("SHA-256 mismatch"), "{e}");
        let (mut f, got) = fetch_to_memory(&url, None, "kernel").unwrap();
        assert_eq!(got.bytes, 12);
        assert!(!got.verified);
        let (_, again) = fetch_to_memory(&url, Some(&got.sha256), "kernel").unwrap();
        assert!(again.verified);
        let mut back = Vec::new();
        f.read_to_end(&mut back).unwrap();
        assert_eq!(back, b"kernel bytes");
    }
}
