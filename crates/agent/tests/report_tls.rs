//! The report sink over HTTPS (rustls) to a TLS endpoint on 127.0.0.1 whose
//! certificate is signed by a test CA: with `speediso.ca=` pinning that CA
//! (URL-safe base64 of the PEM, as on a kernel command line) every event
//! arrives; without it the image's bundle does not trust the endpoint and
//! nothing is sent (the events stay spooled).

use base64::Engine as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use speediso::events::{Bus, HostId};
use speediso::report::Config;
use speediso::sinks::report::Report;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/report");

/// A minimal HTTPS endpoint: answers every POST with 200 and keeps the
/// bodies.
fn tls_endpoint() -> (u16, Arc<Mutex<Vec<String>>>) {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(format!("{FIX}/server.pem"))
            .unwrap()
            .map(|c| c.unwrap())
            .collect();
    let key = PrivateKeyDer::from_pem_file(format!("{FIX}/server.key")).unwrap();
    let cfg = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    );
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let b2 = bodies.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(s) = s else { continue };
            let conn = rustls::ServerConnection::new(cfg.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, s);
            // Serve keep-alive requests until the client goes away.
            let mut r = BufReader::new(&mut tls);
            loop {
                let mut line = String::new();
                match r.read_line(&mut line) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(_) => break, // e.g. the client refused our certificate
                }
                let mut len = 0usize;
                let mut auth = String::new();
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).unwrap();
                    let h = h.trim_end().to_string();
                    if h.is_empty() {
                        break;
                    }
                    let lower = h.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                    if lower.starts_with("authorization:") {
                        auth = h.clone();
                    }
                }
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                assert!(line.starts_with("POST /v1/events "), "{line}");
                assert_eq!(auth, "Authorization: Bearer tls-token-123");
                b2.lock().unwrap().push(String::from_utf8(body).unwrap());
                let reply = r#"{"received":0,"stored":0,"duplicates":0}"#;
                let w = r.get_mut();
                write!(
                    w,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{reply}",
                    reply.len()
                )
                .unwrap();
                w.flush().unwrap();
            }
        }
    });
    (port, bodies)
}

fn config(line: &str) -> Config {
    let (opts, _) = speediso::plan::check_options(&speediso::cmdline::parse(line)).unwrap();
    Config::from_options(&opts).unwrap().unwrap()
}

fn run(cfg: Config, dir: &std::path::Path, n: usize) -> Bus {
    let bus = Bus::new(
        Some("inventory".into()),
        HostId {
            serial: Some("TLS1".into()),
            ..HostId::default()
        },
        vec![Box::new(Report::new(cfg, dir))],
    );
    for i in 0..n {
        bus.step("inventory").log(format!("line {i}"));
    }
    bus.close(Duration::from_secs(3));
    bus
}

#[test]
fn pinned_ca_over_https() {
    let (port, bodies) = tls_endpoint();
    let pem = std::fs::read(format!("{FIX}/ca.pem")).unwrap();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(pem);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(&format!(
        "speediso.report=https://127.0.0.1:{port} speediso.token=tls-token-123 speediso.ca={b64}"
    ));
    let bus = run(cfg, tmp.path(), 25);
    let got: Vec<String> = bodies
        .lock()
        .unwrap()
        .iter()
        .flat_map(|b| b.lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    assert_eq!(got.len(), 25, "every event over TLS");
    for (i, l) in got.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["seq"], i);
        assert_eq!(v["run_id"], bus.run_id());
    }
    assert_eq!(
        std::fs::read_dir(tmp.path().join("spool")).unwrap().count(),
        0
    );
}

#[test]
fn unpinned_untrusted_endpoint_gets_nothing() {
    let (port, bodies) = tls_endpoint();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(&format!(
        "speediso.report=https://127.0.0.1:{port} speediso.token=tls-token-123 speediso.spool.drain=2s"
    ));
    let bus = run(cfg, tmp.path(), 5);
    assert!(
        bodies.lock().unwrap().is_empty(),
        "nothing sent to an untrusted endpoint"
    );
    let spool = tmp
        .path()
        .join("spool")
        .join(format!("{}.ndjson", bus.run_id()));
    assert_eq!(
        speediso::report::spool::undelivered_lines(&spool),
        5,
        "kept for later"
    );
}
