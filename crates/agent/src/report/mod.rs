//! Delivery of the event stream to the report endpoint: configuration from
//! `speediso.report=`/`token=`/`ca=`/`insecure=`/`spool.drain=`, checked at
//! plan time; the on-disk spool (`spool`); the retry policy (`retry`). The
//! sink itself is `sinks::report`.

pub mod foreman;
pub mod retry;
pub mod spool;

use crate::options::Options;
use anyhow::{bail, Context, Result};
use base64::Engine as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::time::Duration;

/// The validated report configuration. `Debug` masks the token.
#[derive(Clone, PartialEq)]
pub struct Config {
    /// Base URL as given, without a trailing slash.
    pub base: String,
    pub token: Option<String>,
    /// PEM of the pinned CA bundle (`speediso.ca=`).
    pub ca_pem: Option<Vec<u8>>,
    pub https: bool,
    /// `speediso.spool.drain=`: how long close waits for the spool.
    pub drain: Option<Duration>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("base", &crate::redact::text(&self.base))
            .field("token", &self.token.as_ref().map(|_| crate::redact::MASK))
            .field("ca_pem", &self.ca_pem.as_ref().map(|p| p.len()))
            .field("https", &self.https)
            .field("drain", &self.drain)
            .finish()
    }
}

impl Config {
    /// `Ok(None)` when no report endpoint is configured; `Err` says which
    /// option is wrong and why.
    pub fn from_options(opts: &Options) -> Result<Option<Config>, String> {
        Self::endpoint(opts, "report")
    }

    /// `speediso.foreman=`: same transport rules (https, pinned CA, http
    /// only to loopback or with insecure=1); credentials in the URL.
    pub fn foreman(opts: &Options) -> Result<Option<Config>, String> {
        Ok(Self::endpoint(opts, "foreman")?.map(|c| Config { token: None, ..c }))
    }

    fn endpoint(opts: &Options, key: &str) -> Result<Option<Config>, String> {
        let Some(url) = opts.get(key) else {
            return Ok(None);
        };
        let base = url.trim_end_matches('/').to_string();
        let https = base.starts_with("https://");
        if !https {
            let host = url_host(&base).unwrap_or_default();
            if !is_loopback(&host) && !opts.flag("insecure") {
                return Err(format!(
                    "speediso.{key}={url} is plain http:// to {host}, which is not loopback: \
                     events and the token would travel unencrypted; use https:// or add \
                     speediso.insecure=1"
                ));
            }
        }
        let ca_pem = match opts.get("ca") {
            None => None,
            Some(v) => {
                let pem = load_ca(v).map_err(|e| format!("speediso.ca={}: {e:#}", short(v)))?;
                Some(pem)
            }
        };
        Ok(Some(Config {
            base,
            token: opts.get("token").map(str::to_string),
            ca_pem,
            https,
            drain: opts
                .get("spool.drain")
                .and_then(speediso_proto::units::parse_duration),
        }))
    }

    /// `speediso.wipe.key=https://...`: the signing key fetched at boot
    /// with the host's token, over TLS with the report's trust (pinned CA,
    /// else the image's bundle). Plain http only to loopback, whatever
    /// `insecure=` says: a signing key never travels in the clear.
    /// `Ok(None)` when the key is a path (or not set).
    pub fn signing_key(opts: &Options) -> Result<Option<Config>, String> {
        let Some(url) = opts.get("wipe.key") else {
            return Ok(None);
        };
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Ok(None);
        }
        if url.contains('?') || url.contains('#') {
            return Err(format!(
                "speediso.wipe.key={}: no query or fragment: the URL is published in every certificate (signer.source); the host's token authenticates the request",
                crate::redact::text(url)
            ));
        }
        let base = url.to_string();
        let https = base.starts_with("https://");
        let host = url_host(&base).unwrap_or_default();
        if !https && !is_loopback(&host) {
            return Err(format!(
                "speediso.wipe.key={} is plain http:// to {host}: a signing key is fetched only over https:// (or from loopback)",
                crate::redact::text(url)
            ));
        }
        let mut cfg = Self::endpoint(opts, "wipe.key")
            .map_err(|_| format!("speediso.wipe.key={}: bad URL", crate::redact::text(url)))?
            .expect("wipe.key is set");
        cfg.base = base;
        cfg.https = https;
        Ok(Some(cfg))
    }

    pub fn events_url(&self) -> String {
        format!("{}/v1/events", self.base)
    }

    /// The HTTP agent, with the agent's one trust policy (`crate::http`):
    /// the pinned CA alone, else the built-in roots and the image's bundle.
    pub fn agent(&self) -> Result<ureq::Agent> {
        Ok(crate::http::builder(&self.trust())?
            .timeout_connect(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .build())
    }

    pub fn trust(&self) -> crate::http::Trust {
        crate::http::Trust::from_pinned(self.ca_pem.as_deref())
    }
}

/// Plan-time check of the report options (called from `plan::build`).
pub fn check_options(opts: &Options) -> Result<(), String> {
    Config::from_options(opts)?;
    Config::foreman(opts).map(|_| ())
}

fn short(v: &str) -> String {
    if v.chars().count() > 40 {
        format!("{}…", v.chars().take(40).collect::<String>())
    } else {
        v.to_string()
    }
}

/// `speediso.ca=`: an absolute path to a PEM bundle, or the PEM itself as
/// URL-safe base64 (padding optional). Returns PEM with at least one
/// certificate.
pub fn load_ca(v: &str) -> Result<Vec<u8>> {
    let pem = if v.starts_with('/') {
        std::fs::read(v).with_context(|| format!("reading {v}"))?
    } else {
        let t = v.trim_end_matches('=');
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(t)
            .context("neither an absolute path nor URL-safe base64")?
    };
    let n = CertificateDer::pem_slice_iter(&pem)
        .filter(|c| c.is_ok())
        .count();
    if n == 0 {
        bail!("no PEM certificate in it");
    }
    Ok(pem)
}

/// The host part of an http(s) URL (brackets removed for IPv6).
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let auth = rest.split(['/', '?', '#']).next()?;
    let auth = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
    let host = if let Some(r) = auth.strip_prefix('[') {
        r.split_once(']')?.0
    } else {
        auth.rsplit_once(':').map_or(auth, |(h, _)| h)
    };
    Some(host.to_ascii_lowercase())
}

pub fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::parse;
    use crate::plan::check_options as plan_options;

    fn cfg(line: &str) -> Result<Option<Config>, String> {
        Config::from_options(&plan_options(&parse(line)).unwrap().0)
    }

    #[test]
    fn http_only_to_loopback_or_insecure() {
        for ok in [
            "speediso.report=http://127.0.0.1:9000",
            "speediso.report=http://[::1]:9000/",
            "speediso.report=http://localhost/x",
            "speediso.report=http://10.0.0.5:8080 speediso.insecure=1",
            "speediso.report=https://collector.example.com",
        ] {
            assert!(cfg(ok).unwrap().is_some(), "{ok}");
        }
        let err = cfg("speediso.report=http://10.0.0.5:8080").unwrap_err();
        assert!(err.contains("speediso.insecure=1"), "{err}");
        assert!(err.contains("10.0.0.5"), "{err}");
        assert!(cfg("speediso.report=http://127.0.0.1.evil.com")
            .unwrap_err()
            .contains("not loopback"));
        assert_eq!(cfg("speediso.token=x").unwrap(), None);
        let c = cfg("speediso.report=https://c.example/ speediso.token=T speediso.spool.drain=2m")
            .unwrap()
            .unwrap();
        assert_eq!(c.events_url(), "https://c.example/v1/events");
        assert_eq!(c.token.as_deref(), Some("T"));
        assert_eq!(c.drain, Some(Duration::from_secs(120)));
    }

    const PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBijCCATGgAwIBAgIUfmlWHyFPcdCRshBqwuXKtMgnJQIwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQc3BlZWRpc28tdGVzdC1DQTAeFw0yNjExMjYwMDMxMzVaFw0z
NjExMjMwMDMxMzVaMBsxGTAXBgNVBAMMEHNwZWVkaXNvLXRlc3QtQ0EwWTATBgcq
hkjOPQIBBggqhkjOPQMBBwNCAAR46Sbfyo+RHkmPONb6D8IYJK/6smER7RQExOkx
zABIWQst4Vy1mA2y025Bzlr6acPp/6KKmKepsHvmb4MC/oL/o1MwUTAdBgNVHQ4E
FgQUzfBx2OXcTbqmecWVMl3HQb/L+CQwHwYDVR0jBBgwFoAUzfBx2OXcTbqmecWV
Ml3HQb/L+CQwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiApJcPI
/CfvhGOCrmOV6TBUzReKeDXAaL5G88VDTYi5FAIgJ4oRVV1c7YkJPz/v8tTmtjEw
YXfjSPhx13vrr/vFtqQ=
-----END CERTIFICATE-----
";

    #[test]
    fn ca_option_forms() {
        let b64 = base64::engine::general_purpose::URL_SAFE.encode(PEM);
        assert_eq!(load_ca(&b64).unwrap(), PEM.as_bytes());
        assert_eq!(load_ca(b64.trim_end_matches('=')).unwrap(), PEM.as_bytes());
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), PEM).unwrap();
        assert_eq!(load_ca(f.path().to_str().unwrap()).unwrap(), PEM.as_bytes());
        let e = load_ca("not*base64").unwrap_err();
        assert!(format!("{e:#}").contains("base64"), "{e:#}");
        let nocert = base64::engine::general_purpose::URL_SAFE.encode("hello");
        assert!(format!("{:#}", load_ca(&nocert).unwrap_err()).contains("no PEM"));
        assert!(crate::http::tls(&crate::http::Trust::Pinned(PEM.as_bytes().to_vec())).is_ok());
        let e = load_ca("/nonexistent/ca.pem").unwrap_err();
        assert!(format!("{e:#}").contains("/nonexistent/ca.pem"));
        let err = cfg("speediso.report=https://x speediso.ca=/nonexistent/ca.pem").unwrap_err();
        assert!(err.starts_with("speediso.ca=/nonexistent"), "{err}");
    }

    #[test]
    fn hosts() {
        assert_eq!(url_host("http://u:p@Host:80/x").as_deref(), Some("host"));
        assert_eq!(url_host("http://[::1]:80").as_deref(), Some("::1"));
        assert!(is_loopback("127.0.0.2"));
        assert!(!is_loopback("10.0.0.1"));
    }
}
