//! Access control and TLS of the real collector binary on 127.0.0.1:
//! every route in `auth::ROUTES` refuses a caller without a credential and
//! an agent token; viewer vs admin; the login form, its session cookie,
//! CSRF and rate limit; SIGHUP reloads; HTTPS with a certificate made by
//! the real `openssl` and reloaded on SIGHUP; plain HTTP refused off
//! loopback.

use speediso_collector::auth::{Access, Role, ROUTES};
use speediso_testsupport::collector::*;
use std::path::Path;
use std::process::{Command, Stdio};

/// A route's pattern with its `{params}` filled in.
fn concrete(pattern: &str) -> String {
    pattern
        .replace("{run_id}", "r-1")
        .replace("{id}", "c-1")
        .replace("{key}", "S1")
}

fn bearer(t: &str) -> (String, String) {
    ("Authorization".into(), format!("Bearer {t}"))
}

fn req(c: &Collector, method: &str, path: &str, h: &[(String, String)]) -> (u16, String, String) {
    let h: Vec<(&str, &str)> = h.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let body = (method == "POST").then_some("");
    c.request(method, path, &h, body)
}

#[test]
fn every_route_refuses_strangers_and_agent_tokens() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Collector::start(&tmp.path().join("c"), None, &[]);
    // Some data, so that a refusal is not just "nothing there".
    let body = format!("{}\n", log_line("r-1", 0, "S1"));
    assert_eq!(c.post(Some(TOKEN), &body).0, 200);
    let mut protected = 0;
    for (method, pattern, access) in ROUTES {
        let path = concrete(pattern);
        let what = format!("{method} {path}");
        let (st, h, b) = req(&c, method, &path, &[]);
        match access {
            Access::Public => {
                // POST /login and /logout refuse a form without its CSRF
                // token (403), but never ask for a credential.
                assert!(
                    st != 401 && (st != 403 || *method == "POST"),
                    "{what} is public: {st} {b}"
                );
                continue;
            }
            Access::Agent => {
                assert_eq!(st, 401, "{what} without a token: {b}");
                for t in [VIEWER_TOKEN, ADMIN_TOKEN] {
                    let (st, _, b) = req(&c, method, &path, &[bearer(t)]);
                    assert_eq!(st, 403, "{what} with a role token: {b}");
                }
                continue;
            }
            Access::Role(need) => {
                protected += 1;
                if path.starts_with("/v1/") {
                    assert_eq!(st, 401, "{what} without a credential: {b}");
                    assert!(h.contains("www-authenticate: Bearer"), "{what}: {h}");
                } else {
                    assert_eq!(st, 303, "{what} without a credential: {b}");
                    let next = path.replace('/', "%2F");
                    assert!(
                        h.contains(&format!("location: /login?next={next}\n")),
                        "{what}: {h}"
                    );
                }
                for t in [TOKEN, HOST_TOKEN] {
                    let (st, _, b) = req(&c, method, &path, &[bearer(t)]);
                    assert_eq!(st, 403, "{what} with agent token {t}: {b}");
                }
                let (st, _, b) = req(&c, method, &path, &[bearer("no-such-token-123")]);
                assert_eq!(st, 401, "{what} with an unknown token: {b}");
                // A forged or stale session cookie is no credential.
                let cookie = (
                    "Cookie".to_string(),
                    format!("speediso_session={}", "ab".repeat(32)),
                );
                let (st, _, b) = req(&c, method, &path, &[cookie]);
                assert!(
                    st == 401 || st == 303,
                    "{what} with a made-up session: {st} {b}"
                );
                let (st, _, b) = req(&c, method, &path, &[bearer(ADMIN_TOKEN)]);
                assert!(st != 401 && st != 403, "{what} as admin: {st} {b}");
                let (st, _, b) = req(&c, method, &path, &[bearer(VIEWER_TOKEN)]);
                if *need == Role::Admin {
                    assert_eq!(st, 403, "{what} as viewer: {b}");
                } else {
                    assert!(st != 401 && st != 403, "{what} as viewer: {st} {b}");
                }
            }
        }
    }
    assert!(protected >= 10, "only {protected} protected routes?");
    // /healthz needs nothing.
    let (st, _, b) = req(&c, "GET", "/healthz", &[]);
    assert_eq!((st, b.as_str()), (200, "ok\n"));
}

#[test]
fn viewer_reads_admin_also_administers() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Collector::start(&tmp.path().join("c"), None, &[]);
    let v = c.login(VIEWER_USER.0, VIEWER_USER.1);
    let a = c.login(ADMIN_USER.0, ADMIN_USER.1);
    let cookie = |s: &str| ("Cookie".to_string(), format!("speediso_session={s}"));
    let origin = ("Origin".to_string(), c.url());
    let (st, _, b) = req(&c, "GET", "/v1/whoami", &[cookie(&v)]);
    assert_eq!(st, 200);
    assert!(
        b.contains("\"role\":\"viewer\"") && b.contains("\"user\":\"viewer\""),
        "{b}"
    );
    let (st, _, b) = req(&c, "GET", "/v1/hosts", &[cookie(&v)]);
    assert_eq!(st, 200, "{b}");
    // Admin only: the session list and a reload.
    let (st, _, b) = req(&c, "GET", "/v1/admin/sessions", &[cookie(&v)]);
    assert_eq!(st, 403, "{b}");
    let (st, _, b) = req(
        &c,
        "POST",
        "/v1/admin/reload",
        &[cookie(&v), origin.clone()],
    );
    assert_eq!(st, 403, "{b}");
    let (st, _, b) = req(&c, "GET", "/v1/admin/sessions", &[cookie(&a)]);
    assert_eq!(st, 200, "{b}");
    let s: serde_json::Value = serde_json::from_str(&b).unwrap();
    let users: Vec<&str> = s
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["user"].as_str().unwrap())
        .collect();
    assert_eq!(users, ["admin", "viewer"], "{b}");
    assert!(
        !b.contains(&v) && !b.contains(&a),
        "session ids never shown: {b}"
    );
    let (st, _, b) = req(&c, "POST", "/v1/admin/reload", &[cookie(&a), origin]);
    assert_eq!(st, 200, "{b}");
    assert!(b.contains("reloaded 2 user(s)"), "{b}");
    // A cookie-authenticated POST from another origin (CSRF) is refused.
    let evil = ("Origin".to_string(), "http://evil.example".to_string());
    let (st, _, b) = req(&c, "POST", "/v1/admin/reload", &[cookie(&a), evil]);
    assert_eq!(st, 403, "{b}");
    let (st, _, b) = req(&c, "POST", "/v1/admin/reload", &[cookie(&a)]);
    assert_eq!(st, 403, "no Origin, no Referer: {b}");
}

#[test]
fn login_cookie_logout_and_redirects() {
    let tmp = tempfile::tempdir().unwrap();
    let c = Collector::start(&tmp.path().join("c"), None, &[]);
    // The form, and the cookie of a successful login.
    let (st, h, form) = c.request("GET", "/login?next=%2Fruns%2Fr-1", &[], None);
    assert_eq!(st, 200);
    assert!(form.contains("value=\"/runs/r-1\""), "{form}");
    let csrf = header_cookie(&h, "speediso_login_csrf").unwrap();
    let post = |form: &str, cookie: &str, origin: &str| {
        c.request(
            "POST",
            "/login",
            &[
                ("Cookie", cookie),
                ("Origin", origin),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            Some(form),
        )
    };
    let ck = format!("speediso_login_csrf={csrf}");
    let good = format!(
        "user={}&password={}&csrf={csrf}&next=%2Fruns%2Fr-1",
        VIEWER_USER.0, VIEWER_USER.1
    );
    let (st, h, b) = post(&good, &ck, &c.url());
    assert_eq!(st, 303, "{b}");
    assert!(h.contains("location: /runs/r-1\n"), "{h}");
    let set = h
        .lines()
        .find(|l| l.starts_with("set-cookie: speediso_session="))
        .unwrap();
    let id = header_cookie(&h, "speediso_session").unwrap();
    assert_eq!(id.len(), 64, "256 bits as hex: {set}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    for attr in [
        "; HttpOnly",
        "; SameSite=Lax",
        "; Path=/",
        "; Max-Age=43200",
    ] {
        assert!(set.contains(attr), "{attr} in {set}");
    }
    assert!(
        !set.contains("Secure"),
        "plain HTTP on loopback: no Secure: {set}"
    );
    let (st, _, page) = c.request(
        "GET",
        "/",
        &[("Cookie", &format!("speediso_session={id}"))],
        None,
    );
    assert_eq!(st, 200, "{page}");

    // No open redirect: `next` elsewhere lands on /.
    for next in [
        "https%3A%2F%2Fevil.example%2F",
        "%2F%2Fevil.example",
        "%2F%5Cevil.example",
    ] {
        let (_, h, form) = c.request("GET", "/login", &[], None);
        let csrf = header_cookie(&h, "speediso_login_csrf").unwrap();
        assert!(!form.contains("evil"));
        let f = format!(
            "user={}&password={}&csrf={csrf}&next={next}",
            VIEWER_USER.0, VIEWER_USER.1
        );
        let (st, h, b) = post(&f, &format!("speediso_login_csrf={csrf}"), &c.url());
        assert_eq!(st, 303, "{b}");
        assert!(h.contains("location: /\n"), "next={next}: {h}");
    }

    // Login CSRF: without the cookie, with another token, or from another
    // origin, the right password logs nobody in.
    let (st, h, _) = post(&good, "", &c.url());
    assert_eq!(st, 403);
    assert!(header_cookie(&h, "speediso_session").is_none());
    let (st, _, _) = post(&good, "speediso_login_csrf=00ff", &c.url());
    assert_eq!(st, 403);
    let (st, _, _) = post(&good, &ck, "http://evil.example");
    assert_eq!(st, 403);

    // Logout needs the session's form token; then the cookie is dead.
    let session = format!("speediso_session={id}");
    let (_, _, page) = c.request("GET", "/v1/whoami", &[("Cookie", &session)], None);
    assert!(page.contains("viewer"), "{page}");
    let (st, _, _) = c.request(
        "POST",
        "/logout",
        &[("Cookie", &session), ("Origin", &c.url())],
        Some("csrf=wrong"),
    );
    assert_eq!(st, 403);
    let (st, _, _) = c.request("GET", "/v1/whoami", &[("Cookie", &session)], None);
    assert_eq!(st, 200, "a refused logout leaves the session");
    let who: serde_json::Value = serde_json::from_str(&page).unwrap();
    let token = who["csrf"].as_str().unwrap();
    assert_eq!(token.len(), 64);
    let (st, _, _) = c.request(
        "POST",
        "/logout",
        &[("Cookie", &session), ("Origin", "http://evil.example")],
        Some(&format!("csrf={token}")),
    );
    assert_eq!(st, 403, "the right token from another origin");
    let (st, h, _) = c.request(
        "POST",
        "/logout",
        &[("Cookie", &session), ("Origin", &c.url())],
        Some(&format!("csrf={token}")),
    );
    assert_eq!(st, 303);
    assert!(h.contains("location: /login\n"), "{h}");
    assert!(
        h.contains("set-cookie: speediso_session=; "),
        "cookie cleared: {h}"
    );
    let (st, _, _) = c.request("GET", "/v1/whoami", &[("Cookie", &session)], None);
    assert_eq!(st, 401, "the session is gone on the server");
    let (st, h, _) = c.request("GET", "/runs/r-1?x=1", &[("Cookie", &session)], None);
    assert_eq!(st, 303);
    assert!(
        h.contains("location: /login?next=%2Fruns%2Fr-1%3Fx%3D1\n"),
        "{h}"
    );
}

#[test]
fn failed_logins_are_limited_and_logged_without_the_password() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    // Started by hand to read its log.
    let c = Collector::start(&dir, None, &[]);
    let port = c.port;
    drop(c);
    let log = tmp.path().join("log");
    let mut child = Command::new(speediso_testsupport::bin("speediso-collector"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--db")
        .arg(dir.join("c.db"))
        .arg("--tokens")
        .arg(dir.join("tokens"))
        .arg("--users")
        .arg(dir.join("users"))
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert!(line.contains("listening on"), "{line}");
    let url = format!("http://127.0.0.1:{port}");
    let attempt = |user: &str, pw: &str| -> (u16, String) {
        let agent = ureq::AgentBuilder::new().redirects(0).build();
        let r = agent.get(&format!("{url}/login")).call().unwrap();
        let csrf = r
            .all("set-cookie")
            .iter()
            .find_map(|c| c.strip_prefix("speediso_login_csrf="))
            .and_then(|c| c.split(';').next())
            .unwrap()
            .to_string();
        let r = agent
            .post(&format!("{url}/login"))
            .set("Cookie", &format!("speediso_login_csrf={csrf}"))
            .set("Origin", &url)
            .send_form(&[
                ("user", user),
                ("password", pw),
                ("csrf", &csrf),
                ("next", "/"),
            ]);
        match r {
            Ok(r) => (
                r.status(),
                r.header("retry-after").unwrap_or("").to_string(),
            ),
            Err(ureq::Error::Status(s, r)) => {
                (s, r.header("retry-after").unwrap_or("").to_string())
            }
            Err(e) => panic!("{e}"),
        }
    };
    for i in 0..5 {
        let (st, _) = attempt(ADMIN_USER.0, &format!("Wrong-Guess-{i}"));
        assert_eq!(st, 401, "attempt {i}");
    }
    let (st, retry) = attempt(ADMIN_USER.0, "Wrong-Guess-5");
    assert_eq!(st, 429);
    let secs: u64 = retry.parse().unwrap();
    assert!((1..=60).contains(&secs), "Retry-After: {retry}");
    // Even the right password waits: the limit is before the check.
    assert_eq!(attempt(ADMIN_USER.0, ADMIN_USER.1).0, 429);
    // The same address is limited for other names too.
    assert_eq!(attempt(VIEWER_USER.0, VIEWER_USER.1).0, 429);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("login failed for user \"admin\" from 127.0.0.1"),
        "{text}"
    );
    assert!(text.contains("too many failed attempts"), "{text}");
    assert!(
        !text.contains("Wrong-Guess"),
        "a password in the log:\n{text}"
    );
    assert!(
        !text.contains(ADMIN_USER.1),
        "a password in the log:\n{text}"
    );
}

#[test]
fn sighup_reloads_users_and_keeps_a_broken_file_out() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("c");
    let c = Collector::start(&dir, None, &[]);
    let users = dir.join("users");
    let old = std::fs::read_to_string(&users).unwrap();
    // A broken file: the old users stay.
    std::fs::write(&users, format!("{old}\nbroken line\n")).unwrap();
    c.hup();
    std::thread::sleep(std::time::Duration::from_millis(500));
    c.login(VIEWER_USER.0, VIEWER_USER.1);
    // A new user, and the viewer removed.
    let line = hash_password("auditor", "viewer", "auditor-pass-9");
    let admin_line = old.lines().find(|l| l.starts_with("admin ")).unwrap();
    std::fs::write(&users, format!("{admin_line}\n{line}\n")).unwrap();
    c.hup();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, h, _) = c.request("GET", "/login", &[], None);
        let csrf = header_cookie(&h, "speediso_login_csrf").unwrap();
        let (st, _, _) = c.request(
            "POST",
            "/login",
            &[
                ("Cookie", &format!("speediso_login_csrf={csrf}")),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            Some(&format!("user=auditor&password=auditor-pass-9&csrf={csrf}")),
        );
        if st == 303 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "auditor never got in: {st}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let (_, h, _) = c.request("GET", "/login", &[], None);
    let csrf = header_cookie(&h, "speediso_login_csrf").unwrap();
    let (st, _, _) = c.request(
        "POST",
        "/login",
        &[
            ("Cookie", &format!("speediso_login_csrf={csrf}")),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some(&format!(
            "user={}&password={}&csrf={csrf}",
            VIEWER_USER.0, VIEWER_USER.1
        )),
    );
    assert_eq!(st, 401, "a removed user cannot log in");
}

fn openssl_cert(dir: &Path, name: &str) {
    speediso_testsupport::openssl_self_signed(
        dir,
        name,
        &["subjectAltName=DNS:localhost,IP:127.0.0.1"],
    );
}

/// curl over HTTPS trusting only `ca`: (exit status, body, stderr).
fn curl(ca: &Path, url: &str, args: &[&str]) -> (i32, String, String) {
    let o = Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

#[test]
fn tls_serves_and_reloads_its_certificate() {
    for tool in ["openssl", "curl"] {
        if Command::new(tool).arg("--version").output().is_err()
            && Command::new(tool).arg("version").output().is_err()
        {
            speediso_testsupport::missing(&format!("{tool} not found"));
            return;
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let certs = tmp.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    openssl_cert(&certs, "one");
    openssl_cert(&certs, "two");
    openssl_cert(&certs, "three");
    let cert = certs.join("serve.pem");
    let key = certs.join("serve.key");
    std::fs::copy(certs.join("one.pem"), &cert).unwrap();
    std::fs::copy(certs.join("one.key"), &key).unwrap();
    let c = Collector::start(
        &tmp.path().join("c"),
        None,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let url = format!("https://localhost:{}", c.port);
    let (rc, body, err) = curl(&certs.join("one.pem"), &format!("{url}/healthz"), &[]);
    assert_eq!((rc, body.as_str()), (0, "ok\n"), "{err}");
    // Reads still need a credential over TLS.
    let (rc, body, _) = curl(
        &certs.join("one.pem"),
        &format!("{url}/v1/hosts"),
        &["-w", "%{http_code}"],
    );
    assert_eq!(rc, 0);
    assert!(body.ends_with("401"), "{body}");
    let auth = format!("Authorization: Bearer {VIEWER_TOKEN}");
    let (rc, body, _) = curl(
        &certs.join("one.pem"),
        &format!("{url}/v1/hosts"),
        &["-H", &auth],
    );
    assert_eq!((rc, body.as_str()), (0, "[]"));
    // The session cookie is Secure under TLS.
    let (rc, head, _) = curl(
        &certs.join("one.pem"),
        &format!("{url}/login"),
        &["-D", "-", "-o", "/dev/null"],
    );
    assert_eq!(rc, 0);
    assert!(
        head.to_ascii_lowercase()
            .contains("set-cookie: speediso_login_csrf=")
            && head.contains("; Secure"),
        "{head}"
    );
    // Plain HTTP to the TLS port is no way in.
    let o = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            &format!("http://127.0.0.1:{}/healthz", c.port),
        ])
        .output()
        .unwrap();
    assert!(!o.status.success() || !String::from_utf8_lossy(&o.stdout).contains("ok"));
    // A client that does not trust the certificate is refused.
    let (rc, _, _) = curl(&certs.join("two.pem"), &format!("{url}/healthz"), &[]);
    assert_ne!(rc, 0, "certificate one is not two");

    // SIGHUP with the second pair: new connections get it.
    std::fs::copy(certs.join("two.pem"), &cert).unwrap();
    std::fs::copy(certs.join("two.key"), &key).unwrap();
    c.hup();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while curl(&certs.join("two.pem"), &format!("{url}/healthz"), &[]).0 != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "certificate two never served"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_ne!(
        curl(&certs.join("one.pem"), &format!("{url}/healthz"), &[]).0,
        0
    );

    // A key that is not the certificate's: logged, the old pair kept.
    std::fs::copy(certs.join("three.pem"), &cert).unwrap();
    std::fs::copy(certs.join("one.key"), &key).unwrap();
    c.hup();
    std::thread::sleep(std::time::Duration::from_millis(800));
    let (rc, body, err) = curl(&certs.join("two.pem"), &format!("{url}/healthz"), &[]);
    assert_eq!(
        (rc, body.as_str()),
        (0, "ok\n"),
        "the old pair still serves: {err}"
    );
    // Nor does a bad pair at startup start anything.
    let o = Command::new(speediso_testsupport::bin("speediso-collector"))
        .args(["serve", "--listen", "127.0.0.1:0", "--tokens"])
        .arg(c.dir.join("tokens"))
        .arg("--db")
        .arg(tmp.path().join("other.db"))
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--tls-key") && err.contains("serve.key"),
        "{err}"
    );
}

#[test]
fn plain_http_off_loopback_needs_the_flag() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("tokens"), "agent-token-123\n").unwrap();
    let o = Command::new(speediso_testsupport::bin("speediso-collector"))
        .args(["serve", "--listen", "0.0.0.0:0", "--tokens"])
        .arg(tmp.path().join("tokens"))
        .arg("--db")
        .arg(tmp.path().join("c.db"))
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--listen 0.0.0.0:0 is not a loopback address")
            && err.contains("--insecure-plain-http"),
        "{err}"
    );
    assert!(!String::from_utf8_lossy(&o.stdout).contains("listening"));
    assert!(
        !tmp.path().join("c.db").exists(),
        "refused before anything was created"
    );
}
