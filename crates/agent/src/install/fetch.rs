//! The image as served: a `Read` over an http(s) or file URL that hashes
//! every byte it hands out (SHA-256 of the bytes as served) and, when an
//! HTTP connection drops mid-body, reconnects with a Range request for the
//! rest (a bounded number of times). The end-to-end digest still covers
//! every byte, so a bad resume cannot go unnoticed.

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};
use std::io::{self, Read};
use std::time::Duration;

/// Range resumes after dropped connections before giving up.
pub const MAX_RESUMES: u32 = 5;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// A stalled server counts as a dropped connection after this long.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// An open download.
pub struct Source {
    url: String,
    inner: Box<dyn Read + Send>,
    agent: Option<ureq::Agent>,
    /// Bytes handed out (and hashed) so far.
    pub served: u64,
    /// Content-Length (or the file size), when known.
    pub total: Option<u64>,
    /// ETag (or Last-Modified), sent as If-Range on a resume so a changed
    /// file is fetched whole, not spliced.
    validator: Option<String>,
    /// Range requests made after a drop.
    pub resumes: u32,
    /// The last drop's cause, for the result.
    pub drops: Vec<String>,
    hasher: Sha256,
    /// `served`, readable from other threads (progress while borrowed).
    pub counter: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

fn agent() -> Result<ureq::Agent> {
    Ok(crate::http::builder(&crate::http::Trust::System)?
        .redirects(crate::netbench::http::MAX_REDIRECTS as u32)
        .timeout_connect(CONNECT_TIMEOUT)
        .timeout_read(READ_TIMEOUT)
        .build())
}

fn get(
    agent: &ureq::Agent,
    url: &str,
    range_from: Option<(u64, Option<&str>)>,
) -> Result<ureq::Response> {
    let mut req = agent.get(url);
    if let Some((from, validator)) = range_from {
        req = req.set("Range", &format!("bytes={from}-"));
        if let Some(v) = validator {
            req = req.set("If-Range", v);
        }
    }
    match req.call() {
        Ok(r) => Ok(r),
        Err(ureq::Error::Status(code, r)) => bail!("GET {url}: HTTP {code} {}", r.status_text()),
        Err(ureq::Error::Transport(t)) => Err(crate::netbench::http::describe(url, &t)),
    }
}

impl Source {
    /// Open `url` (http://, https:// or file://).
    pub fn open(url: &str) -> Result<Source> {
        let parsed = url::Url::parse(url).map_err(|e| anyhow!("URL {url:?}: {e}"))?;
        let mut s = Source {
            url: url.to_string(),
            inner: Box::new(io::empty()),
            agent: None,
            served: 0,
            total: None,
            validator: None,
            resumes: 0,
            drops: Vec::new(),
            hasher: Sha256::new(),
            counter: Default::default(),
        };
        match parsed.scheme() {
            "file" => {
                let path = parsed
                    .to_file_path()
                    .map_err(|_| anyhow!("URL {url:?}: not a local file path"))?;
                let f = std::fs::File::open(&path)
                    .with_context(|| format!("opening {}", path.display()))?;
                s.total = f.metadata().ok().map(|m| m.len());
                s.inner = Box::new(f);
            }
            "http" | "https" => {
                let agent = agent()?;
                let resp = get(&agent, url, None)?;
                if resp.status() != 200 {
                    bail!("GET {url}: HTTP {} (expected 200)", resp.status());
                }
                s.total = resp.header("content-length").and_then(|v| v.parse().ok());
                s.validator = resp
                    .header("etag")
                    .filter(|v| !v.starts_with("W/"))
                    .or_else(|| resp.header("last-modified"))
                    .map(str::to_string);
                s.inner = Box::new(resp.into_reader());
                s.agent = Some(agent);
            }
            other => bail!("URL {url:?}: scheme {other}: is not supported (http, https, file)"),
        }
        Ok(s)
    }

    /// Hex SHA-256 of every byte served so far (call after reading to EOF).
    pub fn digest(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }

    /// After a drop at `self.served`: ask for the rest with a Range request.
    fn resume(&mut self, why: String) -> io::Result<()> {
        let Some(agent) = self.agent.clone() else {
            return Err(io::Error::other(why));
        };
        self.drops.push(format!("at byte {}: {why}", self.served));
        loop {
            if self.resumes >= MAX_RESUMES {
                return Err(io::Error::other(format!(
                    "download of {} dropped {} times; giving up at byte {} (last: {why})",
                    self.url,
                    self.resumes + 1,
                    self.served
                )));
            }
            self.resumes += 1;
            std::thread::sleep(Duration::from_millis(250 * self.resumes as u64));
            tracing::warn!("{}: resuming at byte {} ({why})", self.url, self.served);
            let resp = match get(
                &agent,
                &self.url,
                Some((self.served, self.validator.as_deref())),
            ) {
                Ok(r) => r,
                Err(e) => {
                    self.drops
                        .push(format!("resume at byte {}: {e:#}", self.served));
                    continue;
                }
            };
            if resp.status() != 206 {
                return Err(io::Error::other(format!(
                    "resuming {} at byte {}: server answered HTTP {} to a Range request (file changed, or ranges unsupported)",
                    self.url,
                    self.served,
                    resp.status()
                )));
            }
            let cr = resp.header("content-range").unwrap_or("").to_string();
            if !cr.starts_with(&format!("bytes {}-", self.served)) {
                return Err(io::Error::other(format!(
                    "resuming {} at byte {}: unexpected Content-Range {cr:?}",
                    self.url, self.served
                )));
            }
            self.inner = Box::new(resp.into_reader());
            return Ok(());
        }
    }
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.inner.read(buf) {
                Ok(0) => match self.total {
                    Some(t) if self.served < t => self.resume(format!(
                        "connection closed after {} of {t} bytes",
                        self.served
                    ))?,
                    _ => return Ok(0),
                },
                Ok(n) => {
                    self.hasher.update(&buf[..n]);
                    self.served += n as u64;
                    self.counter
                        .store(self.served, std::sync::atomic::Ordering::Relaxed);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => self.resume(e.to_string())?,
            }
        }
    }
}
