//! LLDP against a real speaker: `lldpd` in one network namespace on one
//! end of a veth pair (system name, port alias and, as custom TLVs, the
//! IEEE 802.1 port VLAN ID and a VLAN name: this kernel may have no VLAN or
//! bridge-VLAN support to make lldpd find them itself), `speediso
//! inventory --lldp` in a second namespace on the other end, so no NIC of
//! the host is involved. Before lldpd starts, the test sends truncated
//! frames and frames with bad TLV lengths from the speaker's namespace
//! with a raw socket: speediso counts them and still reports lldpd. What
//! lldpd advertises is read back from lldpd itself (`lldpcli show
//! interfaces`, and a receive-only lldpd on the listening end). The
//! namespaces and lldpd are this test's own and go whatever happens.

use serde_json::Value;
use speediso::inventory::lldp::MULTICAST;
use speediso::sys::lldp::Socket;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_speediso");

fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two namespaces joined by a veth pair, and the lldpd daemons started in
/// them; all removed on drop (the daemons killed by their PID).
struct Setup {
    id: u32,
    speaker: String,
    listener: String,
    /// The speaker's end and the listener's end.
    s_if: String,
    l_if: String,
    dir: tempfile::TempDir,
    daemons: Vec<Child>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        for d in &mut self.daemons {
            let _ = d.kill();
            let _ = d.wait();
        }
        for ns in [&self.speaker, &self.listener] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

impl Setup {
    fn new() -> Option<Setup> {
        if !speediso_testsupport::have_tool("lldpd", "install lldpd (tests/apt/inventory.txt)") {
            return None;
        }
        // Unique per test (they run in parallel) and short (IFNAMSIZ).
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = std::process::id() % 10_000 * 10 + n % 10;
        let s = Setup {
            id,
            speaker: format!("sislldps{id}"),
            listener: format!("sislldpl{id}"),
            s_if: format!("llds{id}"),
            l_if: format!("lldl{id}"),
            dir: tempfile::tempdir().unwrap(),
            daemons: Vec::new(),
        };
        let ok = Command::new("ip")
            .args(["netns", "add", &s.speaker])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|x| x.success());
        if !ok {
            speediso_testsupport::missing("ip netns add failed: network namespaces need root");
            return None;
        }
        sh(&["ip", "netns", "add", &s.listener]);
        sh(&[
            "ip", "link", "add", &s.s_if, "type", "veth", "peer", "name", &s.l_if,
        ]);
        sh(&["ip", "link", "set", &s.s_if, "netns", &s.speaker]);
        sh(&["ip", "link", "set", &s.l_if, "netns", &s.listener]);
        // lldpd advertises the interface's alias as the port description.
        sh(&[
            "ip",
            "-n",
            &s.speaker,
            "link",
            "set",
            &s.s_if,
            "alias",
            "uplink r12-07",
        ]);
        for (ns, d) in [(&s.speaker, &s.s_if), (&s.listener, &s.l_if)] {
            sh(&["ip", "-n", ns, "link", "set", d, "up"]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        Some(s)
    }

    fn sock(&self, who: &str) -> String {
        self.dir
            .path()
            .join(format!("{who}.sock"))
            .to_string_lossy()
            .into_owned()
    }

    /// lldpd speaking on the speaker's end, every second, configured from
    /// a file lldpd applies before its first frame.
    fn start_speaker(&mut self) {
        let conf = self.dir.path().join("speaker.conf");
        std::fs::write(
            &conf,
            format!(
                "configure system hostname speaker-{id}\n\
                 configure lldp tx-interval 1\n\
                 configure lldp portidsubtype ifname\n\
                 configure ports {p} lldp custom-tlv oui 00,80,c2 subtype 1 oui-info 00,64\n\
                 configure ports {p} lldp custom-tlv add oui 00,80,c2 subtype 3 \
                 oui-info 00,64,05,70,72,6f,64,31\n",
                id = self.id,
                p = self.s_if
            ),
        )
        .unwrap();
        let sock = self.sock("speaker");
        self.daemon(
            &self.speaker.clone(),
            &["-u", &sock, "-O"],
            &conf,
            &self.s_if.clone(),
        );
    }

    fn daemon(&mut self, ns: &str, args: &[&str], conf: &std::path::Path, iface: &str) {
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "lldpd", "-d"])
            .args(args)
            .arg(conf)
            .args(["-I", iface])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("lldpd");
        self.daemons.push(child);
    }

    /// `lldpcli show WHAT` as JSON, retried while lldpd is starting (its
    /// control socket not there yet).
    fn lldpcli(&self, ns: &str, sock: &str, what: &[&str]) -> Value {
        let t = Instant::now();
        loop {
            let out = Command::new("ip")
                .args([
                    "netns", "exec", ns, "lldpcli", "-u", sock, "-f", "json", "show",
                ])
                .args(what)
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            if out.status.success() {
                return serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "lldpcli {what:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Is a packet socket for EtherType 0x88cc open in the listener's
    /// namespace (speediso listening)?
    fn listening(&self) -> bool {
        let t = sh(&[
            "ip",
            "netns",
            "exec",
            &self.listener,
            "cat",
            "/proc/net/packet",
        ]);
        t.lines()
            .skip(1)
            .any(|l| l.split_whitespace().nth(3) == Some("88cc"))
    }

    /// `speediso inventory --json --lldp-wait WAIT --nic L_IF` in the
    /// listener's namespace, started.
    fn inventory(&self, wait: &str) -> Child {
        Command::new("ip")
            .args(["netns", "exec", &self.listener, BIN, "--cmdline", ""])
            .args([
                "inventory",
                "--json",
                "--lldp-wait",
                wait,
                "--nic",
                &self.l_if,
            ])
            .env_remove("SPEEDISO")
            .env("SPEEDISO_RUN_DIR", self.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// The listener's NIC in the inventory of a finished `inventory` child.
fn nic(child: Child, name: &str) -> Value {
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(&text).unwrap();
    v["nics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == name)
        .unwrap_or_else(|| panic!("no NIC {name}: {:#}", v["nics"]))
        .clone()
}

/// An LLDP frame from `src`: the TLVs as given.
fn frame(src: &[u8; 6], tlvs: &[u8]) -> Vec<u8> {
    let mut f = MULTICAST.to_vec();
    f.extend_from_slice(src);
    f.extend_from_slice(&[0x88, 0xcc]);
    f.extend_from_slice(tlvs);
    f
}

#[test]
fn lldpd_is_heard_and_bad_frames_are_counted() {
    let Some(mut s) = Setup::new() else { return };
    let started = Instant::now();
    let child = s.inventory("30");
    let t = Instant::now();
    while !s.listening() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "speediso never opened its LLDP socket"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The bad frames, from the speaker's end, before lldpd says anything.
    let raw = Socket::open_in(
        &std::path::Path::new("/run/netns").join(&s.speaker),
        &s.s_if,
    )
    .unwrap();
    let src = [0x02, 0, 0, 0, 0, 0x99];
    // Chassis ID TLV (type 1) claiming 200 bytes in a 20-byte frame.
    let bad_length = frame(&src, &[0x02, 200, 4, 1, 2, 3, 4, 5, 6]);
    // Cut inside the port ID TLV.
    let truncated = frame(
        &src,
        &[0x02, 0x07, 4, 2, 0, 0, 0, 0, 1, 0x04, 0x05, 5, b'e'],
    );
    // Chassis and port ID, no TTL.
    let no_ttl = frame(
        &src,
        &[0x02, 0x02, 7, b'c', 0x04, 0x02, 7, b'p', 0x00, 0x00],
    );
    for f in [&bad_length, &truncated, &no_ttl] {
        raw.send(f).unwrap();
    }
    // Give the listener the frames before the good one arrives.
    std::thread::sleep(Duration::from_millis(200));
    s.start_speaker();
    let lldp_started = Instant::now();
    let n = nic(child, &s.l_if);
    let heard_after = lldp_started.elapsed();
    let l = &n["lldp"];
    assert_eq!(l["malformed_frames"], 3, "{l:#}");
    assert!(
        l["last_malformed"].as_str().unwrap().contains("TTL"),
        "{l:#}"
    );
    assert!(l["frames"].as_u64().unwrap() >= 1, "{l:#}");
    assert_eq!(l["neighbors"].as_array().unwrap().len(), 1, "{l:#}");
    let nb = &l["neighbors"][0];
    // What lldpd says it advertises on the speaker's end.
    let me = s.lldpcli(&s.speaker, &s.sock("speaker"), &["interfaces"]);
    let port = &me["lldp"]["interface"][&s.s_if];
    let (name, chassis) = port["chassis"].as_object().unwrap().iter().next().unwrap();
    assert_eq!(name, &format!("speaker-{}", s.id));
    assert_eq!(nb["system_name"], name.as_str());
    assert_eq!(chassis["id"]["type"], "mac");
    assert_eq!(nb["chassis_id_subtype"], "mac_address");
    assert_eq!(nb["chassis_id"], chassis["id"]["value"]);
    assert_eq!(nb["system_description"], chassis["descr"]);
    assert_eq!(port["port"]["id"]["type"], "ifname");
    assert_eq!(nb["port_id_subtype"], "interface_name");
    assert_eq!(nb["port_id"], port["port"]["id"]["value"]);
    assert_eq!(nb["port_id"], s.s_if.as_str());
    assert_eq!(nb["port_description"], port["port"]["descr"]);
    assert_eq!(nb["port_description"], "uplink r12-07");
    assert_eq!(
        nb["ttl_s"].as_u64().unwrap().to_string(),
        port["ttl"]["ttl"].as_str().unwrap()
    );
    assert!(
        nb["management_addresses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == &chassis["mgmt-ip"]),
        "{nb:#} {chassis:#}"
    );
    assert_eq!(nb["port_vlan_id"], 100);
    assert_eq!(
        nb["vlans"],
        serde_json::json!([{"id": 100, "name": "prod1"}])
    );
    // It returned on hearing lldpd, not after the 30 s wait.
    assert!(
        heard_after < Duration::from_secs(10),
        "took {heard_after:?} after lldpd started"
    );
    assert!(l["listened_ms"].as_u64().unwrap() < 20_000, "{l:#}");

    // The VLAN as lldpd itself decodes the frames: a receive-only lldpd
    // on the listener's end.
    let conf = s.dir.path().join("listener.conf");
    std::fs::write(&conf, "").unwrap();
    let sock = s.sock("listener");
    s.daemon(
        &s.listener.clone(),
        &["-r", "-u", &sock, "-O"],
        &conf,
        &s.l_if.clone(),
    );
    let t = Instant::now();
    let heard = loop {
        let v = s.lldpcli(&s.listener, &sock, &["neighbors", "details"]);
        let i = v["lldp"]["interface"][&s.l_if].clone();
        if !i.is_null() {
            break i;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "lldpd heard nothing: {v:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(heard["vlan"]["vlan-id"], "100", "{heard:#}");
    assert_eq!(heard["vlan"]["pvid"], true);
    assert_eq!(heard["vlan"]["value"], "prod1");
    assert_eq!(heard["port"]["id"]["value"], nb["port_id"]);
    assert!(heard["chassis"][name].is_object(), "{heard:#}");

    // No neighbour: the wait is kept, and says so.
    for d in &mut s.daemons {
        let _ = d.kill();
        let _ = d.wait();
    }
    s.daemons.clear();
    let t = Instant::now();
    let n = nic(s.inventory("1"), &s.l_if);
    let took = t.elapsed();
    assert_eq!(n["lldp"]["neighbors"], serde_json::json!([]), "{n:#}");
    assert_eq!(n["lldp"]["malformed_frames"], 0);
    let ms = n["lldp"]["listened_ms"].as_u64().unwrap();
    assert!((1000..3000).contains(&ms), "{ms}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    eprintln!(
        "heard lldpd {heard_after:?} after it started; whole test {:?}",
        started.elapsed()
    );
}

#[test]
fn without_lldp_nothing_listens_and_bad_waits_are_refused() {
    let Some(s) = Setup::new() else { return };
    // No --lldp: no listener, `lldp` is null, the veth is still listed
    // with what ethtool says about it.
    let child = Command::new("ip")
        .args(["netns", "exec", &s.listener, BIN, "--cmdline", ""])
        .args(["inventory", "--json", "--nic", &s.l_if])
        .env_remove("SPEEDISO")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let n = nic(child, &s.l_if);
    assert!(n["lldp"].is_null(), "{n:#}");
    assert_eq!(n["driver"], "veth");
    // The readable form says the neighbour per NIC; a bad wait is refused
    // naming the value; so is a bad speediso.lldp.wait, naming the key.
    let out = Command::new(BIN)
        .args(["inventory", "--lldp-wait", "soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("soon") && err.contains("--lldp-wait"), "{err}");
    let out = Command::new(BIN)
        .args([
            "--cmdline",
            "speediso.lldp.wait=soon",
            "inventory",
            "--lldp",
        ])
        .env_remove("SPEEDISO")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("lldp.wait") && err.contains("soon"), "{err}");
}

#[test]
fn readable_output_names_the_neighbour() {
    let Some(mut s) = Setup::new() else { return };
    s.start_speaker();
    let out = Command::new("ip")
        .args(["netns", "exec", &s.listener, BIN, "--cmdline", ""])
        .args(["inventory", "--lldp", "--nic", &s.l_if])
        .env_remove("SPEEDISO")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let want = format!(
        "LLDP neighbour speaker-{} port {} (uplink r12-07) · VLAN 100 · VLANs 100 prod1 · mgmt ",
        s.id, s.s_if
    );
    assert!(text.contains(&want), "{want}\n{text}");
}
