//! `bench.net`: network throughput against servers that already exist. An
//! iperf3-compatible client (`iperf`) for `iperf3 -s` servers, and an HTTP(S)
//! download test (`http`) for the mirror the image boots from. Used by the
//! `speedtest` task and by `speediso bench net`.

pub mod http;
pub mod iperf;
pub mod linerate;

use crate::events::{Progress, StepEvents};
use crate::module::{Module, StepContext};
use crate::options::{Kind, Options, Spec};
use anyhow::{anyhow, bail, Result};
use serde_json::{json, Value};
use std::time::Duration;

pub const NAME: &str = "bench.net";

/// `speediso bench net` arguments.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "\
Without --server or --http there is nothing to test. With both, the iperf3
test runs first. --duration also bounds the HTTP download. Exit status: 0
success, 1 the test failed (server busy, refused, timeout, gone mid-test, DNS
failure, HTTP error), 2 bad arguments.")]
pub struct NetArgs {
    /// iperf3 server (`iperf3 -s`) to test against; port 5201 by default.
    #[arg(long, value_name = "HOST[:PORT]")]
    pub server: Option<String>,
    /// Parallel TCP streams per direction (1-128).
    #[arg(long, short = 'P', default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=128))]
    pub streams: u32,
    /// Test length in whole seconds (10, 10s, 1m).
    #[arg(long, short = 't', default_value = "10", value_name = "S",
          value_parser = parse_secs)]
    pub duration: Duration,
    /// The server sends and this machine receives (download), like iperf3 -R.
    #[arg(long, short = 'R', conflicts_with = "bidir")]
    pub reverse: bool,
    /// Send and receive at the same time, like iperf3 --bidir.
    #[arg(long)]
    pub bidir: bool,
    /// Also (or only) time an HTTP(S) download of URL; the body is discarded.
    #[arg(long, value_name = "URL")]
    pub http: Option<String>,
    /// Give up when the server has not answered or moved data for this long
    /// (also bounds DNS and each connect).
    #[arg(long, default_value = "15", value_name = "S", value_parser = parse_secs)]
    pub timeout: Duration,
    /// Fail unless every iperf3 direction carries at least this share
    /// (0-1, e.g. 0.9) of the negotiated speed of the link it leaves by.
    #[arg(long, value_name = "SHARE", value_parser = parse_share)]
    pub line_rate: Option<f64>,
}

/// A share of the link speed: a number above 0 and at most 1.
pub fn parse_share(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(f) if f > 0.0 && f <= 1.0 => Ok(f),
        _ => Err(format!(
            "{s:?} is not a share of the link speed above 0 and at most 1, like 0.9"
        )),
    }
}

fn parse_secs(s: &str) -> Result<Duration, String> {
    match speediso_proto::units::parse_duration(s) {
        Some(d) if d.as_secs() >= 1 && d.as_secs() <= 86_400 => Ok(d),
        _ => Err(format!(
            "{s:?} is not a duration from 1s to 24h like 10, 30s or 2m"
        )),
    }
}

/// What one `bench.net` run does.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    pub iperf: Option<iperf::Config>,
    pub http: Option<http::Config>,
    /// Required share of the link speed (`net.line_rate`), judged on the
    /// iperf3 test.
    pub line_rate: Option<f64>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.iperf.is_none() && self.http.is_none()
    }

    pub fn from_args(a: &NetArgs) -> Result<Plan> {
        let mode = match (a.reverse, a.bidir) {
            (true, _) => iperf::Mode::Reverse,
            (_, true) => iperf::Mode::Bidir,
            _ => iperf::Mode::Forward,
        };
        let mut p = Self::build(
            a.server.as_deref(),
            a.http.as_deref(),
            a.streams,
            a.duration,
            mode,
        )?;
        if let Some(c) = &mut p.iperf {
            c.io_timeout = a.timeout;
            c.connect_timeout = a.timeout.min(c.connect_timeout);
        }
        if let Some(c) = &mut p.http {
            c.io_timeout = a.timeout;
            c.connect_timeout = a.timeout.min(c.connect_timeout);
        }
        p.line_rate = a.line_rate;
        Ok(p)
    }

    /// From the `speediso.net.*` options on the kernel command line.
    pub fn from_options(o: &Options) -> Result<Plan> {
        let streams = match o.get("net.streams") {
            Some(s) => s
                .parse()
                .map_err(|_| anyhow!("speediso.net.streams={s:?} is not a number"))?,
            None => 1,
        };
        let duration = match o.get("net.duration") {
            Some(s) => parse_secs(s).map_err(|e| anyhow!("speediso.net.duration: {e}"))?,
            None => Duration::from_secs(10),
        };
        let mode = match o.get("net.mode") {
            None | Some("forward") => iperf::Mode::Forward,
            Some("reverse") => iperf::Mode::Reverse,
            Some("bidir") => iperf::Mode::Bidir,
            Some(m) => bail!("speediso.net.mode={m:?} is not forward, reverse or bidir"),
        };
        let mut p = Self::build(
            o.get("net.server").filter(|s| !s.is_empty()),
            o.get("net.http").filter(|s| !s.is_empty()),
            streams,
            duration,
            mode,
        )?;
        if let Some(v) = o.get("net.line_rate") {
            p.line_rate = Some(parse_share(v).map_err(|e| anyhow!("speediso.net.line_rate: {e}"))?);
        }
        Ok(p)
    }

    fn build(
        server: Option<&str>,
        url: Option<&str>,
        streams: u32,
        duration: Duration,
        mode: iperf::Mode,
    ) -> Result<Plan> {
        if !(1..=iperf::MAX_STREAMS).contains(&streams) {
            bail!("streams must be 1 to {}, not {streams}", iperf::MAX_STREAMS);
        }
        let iperf = match server {
            Some(s) => {
                let (host, port) = iperf::parse_server(s)?;
                let mut c = iperf::Config::new(host, port);
                c.streams = streams;
                c.duration = duration;
                c.mode = mode;
                Some(c)
            }
            None => None,
        };
        let http = url.map(|u| {
            let mut c = http::Config::new(u.to_string());
            c.max_time = duration;
            c
        });
        Ok(Plan {
            iperf,
            http,
            line_rate: None,
        })
    }
}

/// The line-rate verdict's message when the result `data` failed it.
pub fn line_rate_failed(data: &Value) -> Option<String> {
    let lr = data.get("line_rate")?;
    (lr["verdict"] == "fail")
        .then(|| format!("line rate: {}", lr["message"].as_str().unwrap_or("")))
}

/// Run the plan, emitting progress on `ev`. Both tests run even when the
/// first fails, so one bad server does not hide the other figure; the step
/// fails if either did.
pub fn run(plan: &Plan, root: &crate::root::Root, ev: &StepEvents) -> Result<Value> {
    let mut data = serde_json::Map::new();
    let mut errors = Vec::new();
    if let Some(cfg) = &plan.iperf {
        ev.log(format!(
            "iperf3 {} to {}: {} stream(s), {} s",
            match cfg.mode {
                iperf::Mode::Forward => "upload",
                iperf::Mode::Reverse => "download",
                iperf::Mode::Bidir => "upload+download",
            },
            cfg.server(),
            cfg.streams,
            cfg.duration.as_secs()
        ));
        let total = cfg.duration.as_secs_f64();
        let res = iperf::run(cfg, &mut |iv| {
            let bytes = iv.sent_bytes + iv.received_bytes;
            let secs = iv.end_s - iv.start_s;
            ev.progress(Progress {
                percent: Some((iv.end_s / total * 100.0).min(100.0)),
                bytes: Some(iv.cumulative_bytes),
                rate: Some(if secs > 0.0 { bytes as f64 / secs } else { 0.0 }),
                eta_s: Some((total - iv.end_s).max(0.0)),
                message: Some(format!("iperf3 {}: {:.1} Mbit/s", cfg.server(), iv.mbps)),
                ..Default::default()
            });
        });
        match res {
            Ok(f) => {
                for d in &f.directions {
                    ev.log(format!(
                        "iperf3 {}: sent {:.1} Mbit/s by {}, received {:.1} Mbit/s, retransmits {}",
                        d.direction,
                        d.sent_mbps,
                        d.sender,
                        d.received_mbps,
                        d.retransmits
                            .map(|r| r.to_string())
                            .unwrap_or_else(|| "n/a".into())
                    ));
                }
                if let Value::Object(m) = serde_json::to_value(&f)? {
                    data.extend(m);
                }
                if let Some(required) = plan.line_rate {
                    let iface = f
                        .address
                        .parse::<std::net::SocketAddr>()
                        .map(|a| a.ip())
                        .or_else(|_| f.address.parse::<std::net::IpAddr>())
                        .ok()
                        .and_then(linerate::interface_for);
                    let link = iface.as_deref().and_then(|i| linerate::link_mbps(root, i));
                    let lr = linerate::judge(iface, link, &f, required);
                    match lr.verdict {
                        "pass" => ev.log(format!("line rate: {}", lr.message)),
                        "fail" => ev.warn(format!("line rate FAIL: {}", lr.message)),
                        _ => ev.warn(lr.message.clone()),
                    }
                    data.insert("line_rate".into(), serde_json::to_value(&lr)?);
                }
            }
            Err(e) => errors.push(e),
        }
    }
    if let Some(cfg) = &plan.http {
        ev.log(format!("HTTP download of {}", cfg.url));
        let res = http::run(cfg, &mut |t| {
            ev.progress(Progress {
                percent: t.total.map(|n| t.bytes as f64 / n.max(1) as f64 * 100.0),
                bytes: Some(t.bytes),
                total_bytes: t.total,
                rate: Some(t.rate),
                message: Some(format!("HTTP {:.1} Mbit/s", t.rate * 8.0 / 1e6)),
                ..Default::default()
            });
        });
        match res {
            Ok(f) => {
                ev.log(format!(
                    "HTTP {}: {} bytes at {:.1} Mbit/s, first byte after {:.0} ms, {} redirect(s){}",
                    f.final_url,
                    f.bytes,
                    f.mbps,
                    f.ttfb_ms,
                    f.redirects.len(),
                    if f.complete { "" } else { " (stopped at the time limit)" }
                ));
                data.insert("http".into(), serde_json::to_value(&f)?);
            }
            Err(e) => errors.push(e),
        }
    }
    match errors.len() {
        0 => Ok(Value::Object(data)),
        1 => Err(errors.remove(0)),
        _ => Err(anyhow!(
            "{}",
            errors
                .iter()
                .map(|e| format!("{e:#}"))
                .collect::<Vec<_>>()
                .join("; ")
        )),
    }
}

/// The `bench.net` step of a task.
pub struct NetBench;

impl Module for NetBench {
    type Config = Plan;
    const NAME: &'static str = NAME;
    const OPTIONS: &'static [Spec] = &[
        Spec::cmdline("net.server", Kind::HostPort, "iperf3 server, host[:port]").flag("server"),
        Spec::cmdline(
            "net.http",
            Kind::HttpUrl,
            "URL to time a download from (the mirror)",
        )
        .flag("http"),
        Spec::cmdline(
            "net.streams",
            Kind::Int(1, 128),
            "parallel TCP streams for the network test",
        )
        .flag("streams"),
        Spec::cmdline("net.duration", Kind::Duration, "network test duration").flag("duration"),
        Spec::cmdline(
            "net.line_rate",
            Kind::NonEmpty,
            "fail unless each iperf3 direction carries this share (0-1) of the negotiated link speed",
        )
        .step("line_rate")
        .flag("line-rate"),
        Spec::cmdline(
            "net.mode",
            Kind::Choice(&["forward", "reverse", "bidir"]),
            "iperf3 direction: forward (upload), reverse (download) or bidir (flags --reverse, --bidir)",
        ),
    ];

    fn configure(step: &toml::Table, options: &Options) -> Result<Plan> {
        let mut p = Plan::from_options(options)?;
        if let (None, Some(v)) = (p.line_rate, step.get("line_rate")) {
            let f = match v {
                toml::Value::Float(f) => *f,
                toml::Value::Integer(n) => *n as f64,
                _ => f64::NAN,
            };
            p.line_rate = Some(
                parse_share(&f.to_string())
                    .map_err(|_| anyhow!("bench.net option line_rate = {v}: expected a share above 0 and at most 1, like 0.9"))?,
            );
        }
        Ok(p)
    }

    fn run(ctx: &StepContext<Plan>) -> Result<Value> {
        let plan = ctx.config;
        if plan.is_empty() {
            // Not a failure: most boots have no test server to point at.
            let reason = "no speediso.net.server= or speediso.net.http= on the kernel command line";
            ctx.events.warn(format!("network test skipped: {reason}"));
            return Ok(json!({"skipped": true, "reason": reason}));
        }
        let data = run(plan, ctx.root, &ctx.events)?;
        if let Some(why) = line_rate_failed(&data) {
            // The figures go out as the step's result before it fails.
            ctx.events.emit(crate::events::Body::Result { data });
            bail!("{why}");
        }
        Ok(data)
    }
}

/// `speediso bench net`'s plan from its flags; `Err` is the exit status
/// after the problem was printed (nothing to test, a bad flag).
pub fn cli_plan(args: &NetArgs) -> Result<Plan, i32> {
    match Plan::from_args(args) {
        Ok(p) if p.is_empty() => {
            crate::say!(
                "speediso: bench net: nothing to test; give --server HOST[:PORT] and/or --http URL"
            );
            Err(speediso_proto::exit::USAGE)
        }
        Ok(p) => Ok(p),
        Err(e) => {
            crate::say!("speediso: bench net: {e:#}");
            Err(speediso_proto::exit::USAGE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Options {
        Options::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn plan_from_kernel_options() {
        assert!(Plan::from_options(&opts(&[])).unwrap().is_empty());
        let p = Plan::from_options(&opts(&[
            ("net.server", "iperf.example.net:5202"),
            ("net.streams", "4"),
            ("net.duration", "30s"),
            ("net.mode", "reverse"),
            ("net.http", "https://mirror.example.net/live.img"),
        ]))
        .unwrap();
        let i = p.iperf.unwrap();
        assert_eq!(
            (i.host.as_str(), i.port, i.streams),
            ("iperf.example.net", 5202, 4)
        );
        assert_eq!(i.duration, Duration::from_secs(30));
        assert_eq!(i.mode, iperf::Mode::Reverse);
        let h = p.http.unwrap();
        assert_eq!(h.max_time, Duration::from_secs(30));
        for bad in [
            ("net.streams", "0"),
            ("net.streams", "x"),
            ("net.duration", "0"),
            ("net.mode", "sideways"),
        ] {
            let mut o = vec![("net.server", "h")];
            o.push(bad);
            assert!(Plan::from_options(&opts(&o)).is_err(), "{bad:?}");
        }
    }
}
