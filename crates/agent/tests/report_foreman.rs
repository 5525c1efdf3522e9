//! Foreman facts upload against a stand-in Foreman on 127.0.0.1 that
//! fails the first request: the inventory result arrives as
//! `POST /api/v2/discovered_hosts/facts` with `{"facts": {...}}`, basic auth
//! from the URL, retried after the failure; nothing fails the run.

use base64::Engine as _;
use speediso::events::{Body, Bus, HostId};
use speediso::report::retry::RetryPolicy;
use speediso::sinks::foreman::Foreman;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::time::Duration;

struct Request {
    line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Answer `statuses` in turn, one request per connection; return what came.
fn fake_foreman(statuses: Vec<u16>) -> (u16, std::thread::JoinHandle<Vec<Request>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let mut got = Vec::new();
        for status in statuses {
            let (s, _) = l.accept().unwrap();
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            let mut headers = Vec::new();
            loop {
                let mut h = String::new();
                r.read_line(&mut h).unwrap();
                let h = h.trim_end();
                if h.is_empty() {
                    break;
                }
                let (k, v) = h.split_once(':').unwrap();
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
            let len: usize = headers
                .iter()
                .find(|(k, _)| k == "content-length")
                .map(|(_, v)| v.parse().unwrap())
                .unwrap_or(0);
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            let reply = if status == 201 {
                r#"{"id":7,"name":"macb02628aabb01"}"#
            } else {
                r#"{"error":"busy"}"#
            };
            write!(
                &s,
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            )
            .unwrap();
            got.push(Request {
                line: line.trim().to_string(),
                headers,
                body,
            });
        }
        got
    });
    (port, h)
}

#[test]
fn inventory_uploaded_as_discovery_facts_after_a_failure() {
    let (port, server) = fake_foreman(vec![503, 201]);
    let policy = RetryPolicy {
        initial: Duration::from_millis(50),
        cap: Duration::from_millis(100),
        jitter: 0.0,
        deadline: Some(Duration::from_secs(20)),
    };
    let agent = ureq::AgentBuilder::new().build();
    let sink = Foreman::new(
        &format!("http://admin:secret@127.0.0.1:{port}/"),
        agent,
        policy,
    );
    let bus = Bus::new(
        Some("inventory".into()),
        HostId {
            boot_mac: Some("b0:26:28:aa:bb:01".into()),
            ..HostId::default()
        },
        vec![Box::new(sink)],
    );
    let inv = serde_json::json!({
        "cpu": {"model": "Intel(R) Xeon(R) Gold 6230", "sockets": 2, "threads": 80},
        "dmi": {"system_serial": "CZJ9470ABC", "system_vendor": "HPE"},
        "nics": [{"name": "ens1f0", "mac": "b0:26:28:aa:bb:01", "addresses": ["192.0.2.15/24"], "boot": true}],
        "disks": [{"name": "sda", "size_bytes": 480103981056u64}],
        "kernel": {"arch": "x86_64"}
    });
    // Other steps' results are not inventories.
    bus.step("bench.cpu").emit(Body::Result {
        data: serde_json::json!({"events_per_second": 1}),
    });
    bus.step("inventory").emit(Body::Result { data: inv });
    bus.close(Duration::from_secs(20));
    let got = server.join().unwrap();
    assert_eq!(got.len(), 2, "one failure, one retry");
    for r in &got {
        assert_eq!(r.line, "POST /api/v2/discovered_hosts/facts HTTP/1.1");
        let auth = r
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.as_str());
        let want = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("admin:secret")
        );
        assert_eq!(auth, Some(want.as_str()));
    }
    let body: serde_json::Value = serde_json::from_slice(&got[1].body).unwrap();
    let f = &body["facts"];
    assert_eq!(f["discovery_bootif"], "b0:26:28:aa:bb:01");
    assert_eq!(f["discovery_bootip"], "192.0.2.15");
    assert_eq!(f["serialnumber"], "CZJ9470ABC");
    assert_eq!(f["processorcount"], "80");
    assert_eq!(f["blockdevice_sda_size"], "480103981056");
    assert!(
        f.as_object().unwrap().values().all(|v| v.is_string()),
        "facts are strings"
    );
}

/// A whole run: the inventory's facts go up as soon as the inventory
/// result passes, and once more at `run_finished` with what the later
/// steps found, in the fact names `report::foreman` documents.
#[test]
fn later_steps_results_reach_foreman_at_run_end() {
    let (port, server) = fake_foreman(vec![201, 201]);
    let sink = Foreman::new(
        &format!("http://127.0.0.1:{port}"),
        ureq::AgentBuilder::new().build(),
        speediso::sinks::foreman::POLICY,
    );
    let bus = Bus::new(
        Some("burnin".into()),
        HostId {
            boot_mac: Some("b0:26:28:aa:bb:01".into()),
            ..HostId::default()
        },
        vec![Box::new(sink)],
    );
    let finished = |step: &str, outcome| {
        bus.step(step).emit(Body::StepFinished {
            outcome,
            duration_ms: 5,
            error: None,
        })
    };
    use speediso::events::Outcome;
    bus.step("inventory").emit(Body::StepStarted {
        module: "inventory".into(),
    });
    bus.step("inventory").emit(Body::Result {
        data: serde_json::json!({
            "dmi": {"system_serial": "CZJ9470ABC"},
            "nics": [{"name": "ens1f0", "mac": "b0:26:28:aa:bb:01", "boot": true,
                      "driver": "ice", "driver_version": "1.12.7", "firmware_version": "4.40 0x8001c967 1.3534.0",
                      "bus_info": "0000:17:00.0",
                      "lldp": {"frames": 2, "malformed_frames": 1, "neighbors": [{
                          "chassis_id": "70:b3:d5:00:11:22", "port_id": "Ethernet12",
                          "system_name": "leaf-r12.dc1", "port_vlan_id": 100,
                          "management_addresses": ["10.0.12.1"]}]}}],
            "bmc": {"device_id": {"manufacturer": "Supermicro", "firmware_version": "5.27"},
                    "lan": [{"channel": 1, "ip_address_source": "static", "ip_address": "10.1.2.3",
                             "mac_address": "3c:ec:ef:00:00:01"}]},
        }),
    });
    finished("inventory", Outcome::Success);
    bus.step("health-after").emit(Body::StepStarted {
        module: "health".into(),
    });
    bus.step("health-after").emit(Body::Result {
        data: serde_json::json!({
            "verdict": "fail",
            "counts": {"fail": 1, "warn": 2, "info": 0},
            "findings": [
                {"severity": "fail", "check": "disk", "component": "nvme0n1 (S4EWNX0R123456)",
                 "message": "critical warning: spare below threshold"},
                {"severity": "warn", "check": "nic", "component": "ens1f0", "message": "12 drops"}
            ]
        }),
    });
    finished("health-after", Outcome::Failed);
    bus.step("bench.cpu").emit(Body::StepStarted {
        module: "bench.cpu".into(),
    });
    bus.step("bench.cpu").emit(Body::Result {
        data: serde_json::json!({"events_per_second": {"single": 1234.5, "all": 40000}, "model": "x"}),
    });
    bus.step("wipe").emit(Body::StepStarted {
        module: "wipe".into(),
    });
    bus.step("wipe").emit(Body::Result {
        data: serde_json::json!({
            "disks": [
                {"device": "/dev/nvme0n1", "method": "nvme-sanitize-crypto", "outcome": "wiped"},
                {"device": "/dev/sda", "method": "overwrite", "outcome": "failed"}
            ],
            "certificates": [{"id": "c-1"}, {"id": "c-2"}, {"id": "s-9"}],
            "failed": ["/dev/sda: write error at 4096"]
        }),
    });
    finished("wipe", Outcome::Failed);
    let run = bus.emit(
        None,
        Body::RunFinished {
            outcome: Outcome::Failed,
            exit_status: 1,
            duration_ms: 99,
            error: None,
        },
    );
    bus.close(Duration::from_secs(20));
    let got = server.join().unwrap();
    assert_eq!(got.len(), 2, "the inventory's upload, then the run's");
    let first: serde_json::Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(first["facts"]["serialnumber"], "CZJ9470ABC");
    assert_eq!(
        first["facts"]["lldp_neighbor_sysname_ens1f0"],
        "leaf-r12.dc1"
    );
    assert_eq!(first["facts"]["ipmi_ipaddress"], "10.1.2.3");
    assert!(first["facts"].get("speediso_outcome").is_none());
    let body: serde_json::Value = serde_json::from_slice(&got[1].body).unwrap();
    let f = body["facts"].as_object().unwrap();
    let want = [
        ("serialnumber", "CZJ9470ABC"),
        ("discovery_bootif", "b0:26:28:aa:bb:01"),
        ("lldp_neighbor_sysname_ens1f0", "leaf-r12.dc1"),
        ("lldp_neighbor_portid_ens1f0", "Ethernet12"),
        ("lldp_neighbor_chassisid_ens1f0", "70:b3:d5:00:11:22"),
        ("lldp_neighbor_pvid_ens1f0", "100"),
        ("lldp_neighbor_mngaddr_ipv4_ens1f0", "10.0.12.1"),
        ("nic_driver_ens1f0", "ice"),
        ("nic_firmware_version_ens1f0", "4.40 0x8001c967 1.3534.0"),
        ("ipmi_ipaddress", "10.1.2.3"),
        ("ipmi_ipaddress_source", "Static Address"),
        ("ipmi_macaddress", "3c:ec:ef:00:00:01"),
        ("ipmi_manufacturer", "Supermicro"),
        ("ipmi_firmware_version", "5.27"),
        ("speediso_task", "burnin"),
        ("speediso_run_id", run.run_id.as_str()),
        ("speediso_outcome", "failed"),
        ("speediso_step_inventory_outcome", "success"),
        ("speediso_step_health_after_outcome", "failed"),
        ("speediso_health_verdict", "fail"),
        ("speediso_health_after_verdict", "fail"),
        ("speediso_health_fail_count", "1"),
        ("speediso_health_warn_count", "2"),
        (
            "speediso_health_failing",
            "nvme0n1 (S4EWNX0R123456): critical warning: spare below threshold",
        ),
        ("speediso_bench_cpu_events_per_second_all", "40000"),
        ("speediso_bench_cpu_events_per_second_single", "1234.5"),
        ("speediso_wipe_outcome", "failed"),
        ("speediso_wipe_disks_wiped", "1"),
        ("speediso_wipe_disks_failed", "1"),
        ("speediso_wipe_certificate_ids", "c-1,c-2,s-9"),
        ("speediso_wipe_server_certificate_id", "s-9"),
        ("speediso_wipe_nvme0n1_outcome", "wiped"),
        ("speediso_wipe_nvme0n1_method", "nvme-sanitize-crypto"),
        ("speediso_wipe_nvme0n1_certificate_id", "c-1"),
        ("speediso_wipe_sda_certificate_id", "c-2"),
        ("speediso_wipe_sda_outcome", "failed"),
    ];
    for (k, v) in want {
        assert_eq!(f.get(k).and_then(|v| v.as_str()), Some(v), "{k}");
    }
    assert!(f.get("speediso_finished_at").is_some());
    assert!(
        f.keys().all(|k| k
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')),
        "fact names are [a-z0-9_]: {:?}",
        f.keys().collect::<Vec<_>>()
    );
}
