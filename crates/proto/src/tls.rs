//! Whom a TLS client trusts, once for every client of the project: the
//! agent's report endpoint, Foreman, signing key, download test and install
//! images (through its `http::builder`), and the collector's connection to
//! PostgreSQL. See the agent's `http` module for the policy in words.

use anyhow::{bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::sync::Arc;

/// CA bundles, in the order they are looked for: the Fedora/CentOS livecd
/// this image is built from first, then Debian's.
pub const CA_BUNDLES: &[&str] = &[
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/certs/ca-certificates.crt",
];

/// Whom a client trusts.
#[derive(Clone, PartialEq, Eq)]
pub enum Trust {
    /// Exactly these PEM certificates.
    Pinned(Vec<u8>),
    /// The built-in roots plus the image's bundle.
    System,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trust::Pinned(p) => write!(f, "Pinned({} bytes of PEM)", p.len()),
            Trust::System => write!(f, "System"),
        }
    }
}

impl Trust {
    /// Pinned when `pem` is given, else the system's.
    pub fn from_pinned(pem: Option<&[u8]>) -> Trust {
        pem.map_or(Trust::System, |p| Trust::Pinned(p.to_vec()))
    }
}

/// A rustls client configuration for `trust`.
pub fn tls(trust: &Trust) -> Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    match trust {
        Trust::Pinned(pem) => {
            for c in CertificateDer::pem_slice_iter(pem) {
                let c = c.context("parsing PEM certificate")?;
                // Bundles carry the odd certificate rustls rejects; skip those.
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                bail!("no usable CA certificate");
            }
        }
        Trust::System => {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let (path, required) = match std::env::var_os("SSL_CERT_FILE") {
                Some(p) => (Some(std::path::PathBuf::from(p)), true),
                None => (
                    CA_BUNDLES
                        .iter()
                        .map(std::path::PathBuf::from)
                        .find(|p| p.exists()),
                    false,
                ),
            };
            if let Some(path) = path {
                let certs: Result<Vec<CertificateDer>, _> =
                    CertificateDer::pem_file_iter(&path).and_then(|it| it.collect());
                match certs {
                    Ok(certs) => {
                        let (added, bad) = roots.add_parsable_certificates(certs);
                        tracing::debug!(
                            "{}: {added} CA certificates ({bad} unusable)",
                            path.display()
                        );
                    }
                    Err(e) if required => {
                        bail!("reading SSL_CERT_FILE {}: {e}", path.display())
                    }
                    Err(e) => tracing::warn!("ignoring CA bundle {}: {e}", path.display()),
                }
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_needs_a_certificate() {
        assert!(tls(&Trust::Pinned(b"not pem".to_vec()))
            .unwrap_err()
            .to_string()
            .contains("no usable CA"));
        assert!(tls(&Trust::System).is_ok());
        assert_eq!(Trust::from_pinned(None), Trust::System);
    }
}
