//! `bench net --line-rate`: a real `iperf3 -s` in one network namespace,
//! the agent in another, joined by a veth pair (the kernel says 10000 Mb/s
//! for veth) whose sending side a `tbf` qdisc holds to 50 Mbit/s. Asking
//! for 90% of the link fails naming the interface, its speed and the share;
//! asking for 0.1% passes. The namespaces are this test's own and are
//! removed whatever happens; no packet leaves them.

use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_speediso");

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two namespaces joined by a veth pair; removed on drop.
struct Link {
    client: String,
    server: String,
    dev: String,
}

impl Drop for Link {
    fn drop(&mut self) {
        ip(&["netns", "del", &self.client]);
        ip(&["netns", "del", &self.server]);
    }
}

impl Link {
    fn new() -> Option<Link> {
        // Unique per test (they run in parallel) and short (IFNAMSIZ).
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = std::process::id() % 10_000 * 10 + n % 10;
        let l = Link {
            client: format!("sislrc{id}"),
            server: format!("sislrs{id}"),
            dev: format!("lra{id}"),
        };
        if !ip(&["netns", "add", &l.client]) {
            speediso_testsupport::missing("ip netns add failed: network namespaces need root");
            return None;
        }
        let peer = format!("lrb{}", id);
        sh(&["ip", "netns", "add", &l.server]);
        sh(&[
            "ip", "link", "add", &l.dev, "type", "veth", "peer", "name", &peer,
        ]);
        sh(&["ip", "link", "set", &l.dev, "netns", &l.client]);
        sh(&["ip", "link", "set", &peer, "netns", &l.server]);
        sh(&[
            "ip",
            "-n",
            &l.client,
            "addr",
            "add",
            "10.201.5.1/24",
            "dev",
            &l.dev,
        ]);
        sh(&[
            "ip",
            "-n",
            &l.server,
            "addr",
            "add",
            "10.201.5.2/24",
            "dev",
            &peer,
        ]);
        for (ns, d) in [(&l.client, &l.dev), (&l.server, &peer)] {
            sh(&["ip", "-n", ns, "link", "set", d, "up"]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        sh(&[
            "tc", "-n", &l.client, "qdisc", "add", "dev", &l.dev, "root", "tbf", "rate", "50mbit",
            "burst", "64kb", "latency", "50ms",
        ]);
        Some(l)
    }

    /// `bench net` to a one-off `iperf3 -s` in the server namespace.
    fn bench(&self, share: &str) -> (i32, Value, String) {
        let mut srv = Command::new("ip")
            .args(["netns", "exec", &self.server, "iperf3", "-s", "-1"])
            .args(["-B", "10.201.5.2", "-p", "5201"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("iperf3 -s");
        std::thread::sleep(Duration::from_millis(500));
        let out = Command::new("ip")
            .args(["netns", "exec", &self.client, BIN])
            .args([
                "bench",
                "net",
                "--server",
                "10.201.5.2:5201",
                "--duration",
                "2",
            ])
            .args(["--line-rate", share, "--json"])
            .env_remove("SPEEDISO")
            .env("SPEEDISO_RUN_DIR", tempfile::tempdir().unwrap().path())
            .output()
            .unwrap();
        let t = Instant::now();
        while srv.try_wait().unwrap().is_none() && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = srv.kill();
        let _ = srv.wait();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let v: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)));
        (
            out.status.code().unwrap(),
            v,
            String::from_utf8_lossy(&out.stderr).into(),
        )
    }
}

#[test]
fn below_the_share_of_the_link_fails_and_above_passes() {
    let ok = Command::new("iperf3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok && !speediso_testsupport::missing("iperf3 is required (tests/apt/net.txt)") {
        return;
    }
    let Some(link) = Link::new() else { return };
    let (rc, v, err) = link.bench("0.9");
    let lr = &v["line_rate"];
    assert_eq!(rc, 1, "{v:#} {err}");
    assert_eq!(lr["verdict"], "fail", "{lr}");
    assert_eq!(lr["interface"], link.dev.as_str());
    assert_eq!(lr["link_mbps"], 10000);
    let got = lr["achieved_mbps"].as_f64().unwrap();
    assert!(got > 20.0 && got < 60.0, "tbf holds it to 50 Mbit/s: {got}");
    assert!(
        lr["message"]
            .as_str()
            .unwrap()
            .contains("below the required 90%"),
        "{lr}"
    );
    assert!(err.contains("line rate"), "{err}");
    let (rc, v, err) = link.bench("0.001");
    assert_eq!(rc, 0, "{v:#} {err}");
    assert_eq!(v["line_rate"]["verdict"], "pass");
}

#[test]
fn a_bad_share_is_refused_naming_it() {
    let out = Command::new(BIN)
        .args([
            "bench",
            "net",
            "--server",
            "127.0.0.1:9",
            "--line-rate",
            "1.5",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"1.5\"") && err.contains("share"), "{err}");
    let out = Command::new(BIN)
        .args([
            "--cmdline",
            "speediso.task=speedtest speediso.net.line_rate=lots",
        ])
        .args(["dispatch", "--dry-run", "--json"])
        .env_remove("SPEEDISO")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("net.line_rate") && text.contains("lots"),
        "{text}"
    );
}

/// ETHTOOL_GLINKSETTINGS on a real interface: the veth in the client
/// namespace, asked from inside it (this test binary re-run there). veth
/// says 10000 Mb/s and lists no link modes; the answer must match what
/// sysfs says in that namespace.
#[test]
fn ethtool_link_settings_of_a_veth() {
    let Some(link) = Link::new() else { return };
    let out = Command::new("ip")
        .args(["netns", "exec", &link.client])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "ethtool_in_namespace",
            "--ignored",
            "--nocapture",
        ])
        .env("SPEEDISO_ETHTOOL_DEV", &link.dev)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sysfs = Command::new("ip")
        .args(["netns", "exec", &link.client, "cat"])
        .arg(format!("/sys/class/net/{}/speed", link.dev))
        .output()
        .unwrap();
    let sysfs = String::from_utf8_lossy(&sysfs.stdout).trim().to_string();
    assert_eq!(sysfs, "10000");
    assert!(
        text.contains(&format!("ETHTOOL speed=Some({sysfs}) max_supported=None")),
        "{text}"
    );
}

/// Run by `ethtool_link_settings_of_a_veth` inside the namespace.
#[test]
#[ignore = "run inside a network namespace by ethtool_link_settings_of_a_veth"]
fn ethtool_in_namespace() {
    use speediso::sys::ethtool;
    let dev = std::env::var("SPEEDISO_ETHTOOL_DEV").unwrap();
    let s = ethtool::link_settings(&dev).unwrap();
    println!(
        "ETHTOOL speed={:?} max_supported={:?}",
        s.speed,
        ethtool::max_mbps(&s.supported)
    );
}
