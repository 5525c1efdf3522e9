//! The collector's own HTTPS: a PEM certificate chain and key
//! (`--tls-cert`, `--tls-key`) on rustls with ring, re-read on SIGHUP (new
//! connections get the new pair; a pair that does not load, or whose key
//! does not match its certificate, is reported and the old one kept), and
//! the rule that plain HTTP is served only on a loopback address unless
//! `--insecure-plain-http` says otherwise.
//!
//! The listener accepts TCP connections and runs each handshake in its own
//! task (bounded by a timeout), so one slow client does not hold up the
//! others, and hands finished TLS streams to `axum::serve`.

use anyhow::{bail, Context, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

/// A handshake that takes longer is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Refuse plain HTTP on an address other hosts can reach, unless asked.
/// `listen` is what was configured (`0.0.0.0:8470`, `[::1]:0`,
/// `localhost:8470`): every address it resolves to must be loopback.
pub fn check_plain_http(listen: &str, tls: bool, insecure_plain_http: bool) -> Result<()> {
    if tls || insecure_plain_http {
        return Ok(());
    }
    let addrs: Vec<SocketAddr> = listen
        .to_socket_addrs()
        .with_context(|| format!("--listen {listen}: not an address"))?
        .collect();
    if addrs.is_empty() || addrs.iter().any(|a| !a.ip().is_loopback()) {
        bail!(
            "--listen {listen} is not a loopback address, and plain HTTP there would send \
             passwords, tokens and every host's inventory in clear: give --tls-cert FILE \
             --tls-key FILE, or --insecure-plain-http when a TLS proxy in front of the \
             collector terminates TLS"
        );
    }
    Ok(())
}

/// The certificate and key files, and the configuration built from them.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<ServerConfig>>,
}

/// A server configuration from a PEM chain and key, checked to match.
pub fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading --tls-cert {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("--tls-cert {}: not a PEM certificate chain", cert.display()))?;
    if certs.is_empty() {
        bail!("--tls-cert {}: no CERTIFICATE block in it", cert.display());
    }
    let key_der = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("--tls-key {}: no PEM private key in it", key.display()))?;
    // with_single_cert refuses a key that does not match the certificate.
    let mut cfg =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(certs, key_der)
            .with_context(|| {
                format!(
                    "--tls-key {} with --tls-cert {}: unusable, or not the certificate's key",
                    key.display(),
                    cert.display()
                )
            })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

impl Tls {
    pub fn load(cert: &Path, key: &Path) -> Result<Tls> {
        Ok(Tls {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            current: RwLock::new(load(cert, key)?),
        })
    }

    /// SIGHUP: the files again; on error the old pair stays. Returns what
    /// happened, in words.
    pub fn reload(&self) -> String {
        let m = match load(&self.cert, &self.key) {
            Ok(c) => {
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = c;
                format!("reloaded the TLS certificate from {}", self.cert.display())
            }
            Err(e) => format!("keeping the old TLS certificate: {e:#}"),
        };
        eprintln!("speediso-collector: {m}");
        m
    }

    fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        )
    }
}

/// TLS connections, handshakes done, for `axum::serve`.
pub struct TlsListener {
    rx: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, tls: Arc<Tls>) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (sock, peer) = match tcp.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors and the like: wait, retry.
                        tracing::warn!("accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let acceptor = tls.acceptor();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
                        Ok(Ok(s)) => {
                            let _ = tx.send((s, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!("TLS handshake with {peer}: {e}"),
                        Err(_) => tracing::debug!("TLS handshake with {peer}: timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { rx, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept task never ends while the listener lives.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_on_loopback() {
        check_plain_http("127.0.0.1:0", false, false).unwrap();
        check_plain_http("[::1]:0", false, false).unwrap();
        check_plain_http("localhost:0", false, false).unwrap();
        let e = check_plain_http("0.0.0.0:8470", false, false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--tls-cert") && e.contains("--insecure-plain-http"),
            "{e}"
        );
        assert!(check_plain_http("[::]:8470", false, false).is_err());
        assert!(check_plain_http("192.0.2.1:8470", false, false).is_err());
        check_plain_http("0.0.0.0:8470", false, true).unwrap();
        check_plain_http("0.0.0.0:8470", true, false).unwrap();
    }
}
