//! HTTP(S) download throughput: fetch one URL (the mirror the image came
//! from, typically), follow redirects, discard the body, and report time to
//! first byte and the transfer rate. TLS is rustls (through ureq).

use anyhow::{anyhow, bail, Result};
use serde::Serialize;
use std::io::{self, Read};
use std::time::{Duration, Instant};

/// Redirects followed before giving up (curl's and browsers' order of size).
pub const MAX_REDIRECTS: usize = 10;
const BUF: usize = 256 * 1024;

/// What to fetch.
#[derive(Debug, Clone)]
pub struct Config {
    pub url: String,
    /// Stop reading after this long: a speed test, not a mirror copy.
    pub max_time: Duration,
    pub connect_timeout: Duration,
    /// Bound on each wait for the server (headers, or the next body bytes).
    pub io_timeout: Duration,
}

impl Config {
    pub fn new(url: String) -> Config {
        Config {
            url,
            max_time: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(15),
        }
    }
}

/// Progress while the body streams in.
#[derive(Debug, Clone)]
pub struct Tick {
    pub bytes: u64,
    pub total: Option<u64>,
    pub elapsed_s: f64,
    /// Rate over the last interval, bytes per second.
    pub rate: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Figures {
    pub url: String,
    /// Where the body came from after redirects.
    pub final_url: String,
    /// Each URL that answered with a redirect, in order.
    pub redirects: Vec<String>,
    pub status: u16,
    /// Content-Length, when the server sent one.
    pub content_length: Option<u64>,
    pub bytes: u64,
    /// False when `max_time` cut the download short.
    pub complete: bool,
    /// Request sent to response headers received, final URL.
    pub ttfb_ms: f64,
    /// Time spent on redirect hops before the final request.
    pub redirect_ms: f64,
    /// Body transfer time (headers received to last byte).
    pub transfer_s: f64,
    /// Body rate: bytes over `transfer_s`.
    pub mbps: f64,
    /// Whole-request rate: bytes over everything from the first request.
    pub total_mbps: f64,
}

fn mbps(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        bytes as f64 * 8.0 / secs / 1e6
    } else {
        0.0
    }
}

fn agent(cfg: &Config) -> Result<ureq::Agent> {
    Ok(crate::http::builder(&crate::http::Trust::System)?
        // Redirects are followed here, so each hop is timed and reported.
        .redirects(0)
        .timeout_connect(cfg.connect_timeout)
        .timeout_read(cfg.io_timeout)
        .timeout_write(cfg.io_timeout)
        .build())
}

/// Words for a transport error: DNS, refused, timeout, TLS.
pub(crate) fn describe(url: &str, e: &ureq::Transport) -> anyhow::Error {
    let what = match e.kind() {
        ureq::ErrorKind::Dns => "DNS failure",
        ureq::ErrorKind::ConnectionFailed => "connection failed",
        ureq::ErrorKind::Io => "I/O error (timeout or connection lost)",
        ureq::ErrorKind::InvalidUrl | ureq::ErrorKind::UnknownScheme => "bad URL",
        ureq::ErrorKind::TooManyRedirects => "too many redirects",
        ureq::ErrorKind::BadStatus | ureq::ErrorKind::BadHeader => "malformed HTTP response",
        _ => "request failed",
    };
    // ureq's own Display repeats the URL; say it once, then the cause chain
    // (for TLS, rustls's reason such as UnknownIssuer).
    let mut detail: Vec<String> = e.message().map(str::to_string).into_iter().collect();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        detail.push(s.to_string());
        src = s.source();
    }
    anyhow!("GET {url}: {what}: {}", detail.join(": "))
}

/// Download `cfg.url`, calling `on_tick` about once a second.
pub fn run(cfg: &Config, on_tick: &mut dyn FnMut(&Tick)) -> Result<Figures> {
    let agent = agent(cfg)?;
    let t0 = Instant::now();
    let mut url = url::Url::parse(&cfg.url).map_err(|e| anyhow!("URL {:?}: {e}", cfg.url))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("URL {:?}: only http:// and https:// are supported", cfg.url);
    }
    let mut redirects = Vec::new();
    let (resp, ttfb, redirect_time) = loop {
        let hop = Instant::now();
        let resp = match agent.request_url("GET", &url).call() {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => bail!(
                "GET {url}: HTTP {code} {}{}",
                r.status_text(),
                if redirects.is_empty() {
                    String::new()
                } else {
                    format!(" (after {} redirect(s))", redirects.len())
                }
            ),
            Err(ureq::Error::Transport(t)) => return Err(describe(url.as_str(), &t)),
        };
        let ttfb = hop.elapsed();
        if !(300..400).contains(&resp.status()) {
            break (resp, ttfb, hop.duration_since(t0));
        }
        let loc = resp.header("location").ok_or_else(|| {
            anyhow!(
                "GET {url}: HTTP {} redirect without a Location header",
                resp.status()
            )
        })?;
        let next = url
            .join(loc)
            .map_err(|e| anyhow!("GET {url}: bad redirect Location {loc:?}: {e}"))?;
        redirects.push(url.to_string());
        if redirects.len() > MAX_REDIRECTS {
            bail!("GET {}: more than {MAX_REDIRECTS} redirects", cfg.url);
        }
        url = next;
    };
    let status = resp.status();
    let content_length = resp.header("content-length").and_then(|v| v.parse().ok());
    let final_url = url.to_string();
    let mut body = resp.into_reader();
    let start = Instant::now();
    let deadline = start + cfg.max_time;
    let mut buf = vec![0u8; BUF];
    let mut bytes = 0u64;
    let mut complete = true;
    let mut last = (start, 0u64);
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => bail!(
                "GET {final_url}: body read failed after {bytes} bytes: {}",
                match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut =>
                        format!("timeout (no data for {}s)", cfg.io_timeout.as_secs()),
                    _ => e.to_string(),
                }
            ),
        };
        bytes += n as u64;
        let now = Instant::now();
        if now.duration_since(last.0) >= Duration::from_secs(1) {
            on_tick(&Tick {
                bytes,
                total: content_length,
                elapsed_s: now.duration_since(start).as_secs_f64(),
                rate: (bytes - last.1) as f64 / now.duration_since(last.0).as_secs_f64(),
            });
            last = (now, bytes);
        }
        if now >= deadline {
            complete = false;
            break;
        }
    }
    let end = Instant::now();
    if complete {
        if let Some(len) = content_length {
            if bytes < len {
                bail!("GET {final_url}: body ended after {bytes} of {len} bytes");
            }
        }
    }
    let transfer_s = end.duration_since(start).as_secs_f64();
    Ok(Figures {
        url: cfg.url.clone(),
        final_url,
        redirects,
        status,
        content_length,
        bytes,
        complete,
        ttfb_ms: ttfb.as_secs_f64() * 1000.0,
        redirect_ms: redirect_time.as_secs_f64() * 1000.0,
        transfer_s,
        mbps: mbps(bytes, transfer_s),
        total_mbps: mbps(bytes, end.duration_since(t0).as_secs_f64()),
    })
}
