//! The line-rate verdict of `bench.net` (`speediso.net.line_rate=`, a
//! step's `line_rate`): did every direction of the iperf3 test carry at
//! least the stated share of the negotiated link speed of the interface
//! the test went out of? The interface is the one holding the local
//! address the kernel picks for the server (a connected UDP socket, which
//! sends nothing); its speed is `/sys/class/net/IF/speed` under the root.
//! A link without a known speed (-1, virtual NICs, loopback) gets
//! `unknown`, said as a warning, never a pass.

use super::iperf::Figures;
use crate::root::Root;
use serde::Serialize;
use std::net::{IpAddr, SocketAddr, UdpSocket};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LineRate {
    /// pass, fail or unknown.
    pub verdict: &'static str,
    pub interface: Option<String>,
    /// Negotiated speed, Mb/s.
    pub link_mbps: Option<u64>,
    /// The slowest direction's received rate, Mb/s.
    pub achieved_mbps: f64,
    /// achieved / link.
    pub share: Option<f64>,
    pub required_share: f64,
    /// One line for a person.
    pub message: String,
}

/// The local interface a connection to `server` leaves by.
pub fn interface_for(server: IpAddr) -> Option<String> {
    let bind: SocketAddr = match server {
        IpAddr::V4(_) => "0.0.0.0:0".parse().ok()?,
        IpAddr::V6(_) => "[::]:0".parse().ok()?,
    };
    let s = UdpSocket::bind(bind).ok()?;
    s.connect(SocketAddr::new(server, 9)).ok()?;
    let local = s.local_addr().ok()?.ip();
    crate::sys::ifaddrs::addresses()
        .into_iter()
        .find(|a| a.addr == local)
        .map(|a| a.interface)
}

/// The link speed of `iface` in Mb/s; `None` when unknown (-1, missing).
pub fn link_mbps(root: &Root, iface: &str) -> Option<u64> {
    let p = root.at(&format!("/sys/class/net/{iface}/speed"));
    let v: i64 = std::fs::read_to_string(p).ok()?.trim().parse().ok()?;
    (v > 0).then_some(v as u64)
}

/// Judge `f` against `required` (0 < required <= 1) of the link speed.
pub fn judge(iface: Option<String>, link: Option<u64>, f: &Figures, required: f64) -> LineRate {
    let achieved = f
        .directions
        .iter()
        .map(|d| d.received_mbps)
        .fold(f64::INFINITY, f64::min);
    let achieved = if achieved.is_finite() {
        achieved
    } else {
        f.received_mbps
    };
    let round = |x: f64| (x * 1000.0).round() / 1000.0;
    let mut r = LineRate {
        verdict: "unknown",
        interface: iface.clone(),
        link_mbps: link,
        achieved_mbps: (achieved * 10.0).round() / 10.0,
        share: None,
        required_share: required,
        message: String::new(),
    };
    let Some(name) = iface else {
        r.message = format!(
            "line rate not judged: no local interface holds the address used to reach {}",
            f.address
        );
        return r;
    };
    let Some(link) = link else {
        r.message =
            format!("line rate not judged: {name} has no known link speed (virtual or down)");
        return r;
    };
    let share = achieved / link as f64;
    r.share = Some(round(share));
    r.verdict = if share >= required { "pass" } else { "fail" };
    r.message = format!(
        "{achieved:.1} Mb/s is {:.1}% of {name}'s {link} Mb/s link; {} {:.0}%",
        share * 100.0,
        if share >= required {
            "at least"
        } else {
            "below the required"
        },
        required * 100.0
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netbench::iperf::{DirectionFigures, Mode};

    fn figures(rx: &[f64]) -> Figures {
        Figures {
            server: "s".into(),
            address: "10.0.0.1:5201".into(),
            mode: Mode::Forward,
            reverse: false,
            bidir: rx.len() > 1,
            streams: 1,
            duration_s: 10.0,
            measured_s: 10.0,
            sent_bytes: 0,
            sent_mbps: 0.0,
            received_bytes: 0,
            received_mbps: rx.iter().sum(),
            retransmits: None,
            directions: rx
                .iter()
                .map(|&m| DirectionFigures {
                    direction: "upload",
                    sender: "client",
                    sent_bytes: 0,
                    sent_mbps: m,
                    received_bytes: 0,
                    received_mbps: m,
                    retransmits: None,
                })
                .collect(),
            per_stream: vec![],
            intervals: vec![],
            client_cpu_percent: None,
            server_cpu_percent: None,
            congestion: None,
        }
    }

    #[test]
    fn the_slowest_direction_against_the_share() {
        let r = judge(Some("eno1".into()), Some(10_000), &figures(&[9_400.0]), 0.9);
        assert_eq!((r.verdict, r.share), ("pass", Some(0.94)));
        let r = judge(
            Some("eno1".into()),
            Some(10_000),
            &figures(&[9_400.0, 6_000.0]),
            0.9,
        );
        assert_eq!((r.verdict, r.achieved_mbps), ("fail", 6000.0));
        assert!(
            r.message.contains("below the required 90%"),
            "{}",
            r.message
        );
        let r = judge(Some("lo".into()), None, &figures(&[40_000.0]), 0.9);
        assert_eq!(r.verdict, "unknown");
        let r = judge(None, None, &figures(&[1.0]), 0.9);
        assert_eq!(r.verdict, "unknown");
    }

    #[test]
    fn loopback_is_found_and_has_no_speed() {
        let lo = interface_for("127.0.0.1".parse().unwrap());
        assert_eq!(lo.as_deref(), Some("lo"));
        assert_eq!(link_mbps(&Root::system(), "lo"), None);
    }
}
