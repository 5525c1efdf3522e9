//! Shared by the report/collector integration tests: start the real
//! `speediso-collector` binary on 127.0.0.1, kill it by PID, query it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "test-token-0123456789";
pub const HOST_TOKEN: &str = "host-bound-token-42";
/// API tokens with a role (`role=viewer`, `role=admin` in the tokens
/// file): reads need one of these (or a login); agent tokens read nothing.
pub const VIEWER_TOKEN: &str = "viewer-token-0123456789";
pub const ADMIN_TOKEN: &str = "admin-token-0123456789";
/// Users in the `--users` file every test collector gets.
pub const VIEWER_USER: (&str, &str) = ("viewer", "viewer-password-1");
pub const ADMIN_USER: (&str, &str) = ("admin", "admin-password-1");

pub struct Collector {
    child: Option<Child>,
    pub port: u16,
    pub dir: PathBuf,
    /// `--db`: the SQLite file under `dir`, or a postgres:// URL.
    pub db: String,
    extra: Vec<String>,
}

impl Collector {
    /// Start a collector with its database and tokens under `dir`, on a
    /// free port (or `port`).
    pub fn start(dir: &Path, port: Option<u16>, extra: &[&str]) -> Collector {
        let db = dir.join("c.db").to_str().unwrap().to_string();
        Self::start_with_db(dir, port, &db, extra)
    }

    pub fn start_with_db(dir: &Path, port: Option<u16>, db: &str, extra: &[&str]) -> Collector {
        std::fs::create_dir_all(dir).unwrap();
        let tokens = dir.join("tokens");
        if !tokens.exists() {
            std::fs::write(
                &tokens,
                format!(
                    "# test tokens\n{TOKEN}\nhost=BOUND1 {HOST_TOKEN}\nrole=viewer {VIEWER_TOKEN}\nrole=admin {ADMIN_TOKEN}\n"
                ),
            )
            .unwrap();
        }
        let users = dir.join("users");
        if !users.exists() {
            let mut text = String::from("# test users\n");
            for (name, role, pw) in [
                (VIEWER_USER.0, "viewer", VIEWER_USER.1),
                (ADMIN_USER.0, "admin", ADMIN_USER.1),
            ] {
                text.push_str(&hash_password(name, role, pw));
                text.push('\n');
            }
            std::fs::write(&users, text).unwrap();
        }
        let mut c = Collector {
            child: None,
            port: port.unwrap_or(0),
            dir: dir.to_path_buf(),
            db: db.to_string(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        c.spawn();
        c
    }

    fn spawn(&mut self) {
        // The port may be briefly in TIME_WAIT reuse trouble after a kill;
        // retry binding for a few seconds.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut child = Command::new(crate::bin("speediso-collector"))
                .args(["serve", "--listen"])
                .arg(format!("127.0.0.1:{}", self.port))
                .arg("--db")
                .arg(&self.db)
                .arg("--tokens")
                .arg(self.dir.join("tokens"))
                .arg("--users")
                .arg(self.dir.join("users"))
                .args(&self.extra)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("starting speediso-collector");
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            if let Some(addr) = line
                .trim()
                .strip_prefix("speediso-collector: listening on ")
            {
                self.port = addr.rsplit(':').next().unwrap().parse().unwrap();
                self.child = Some(child);
                return;
            }
            let _ = child.wait();
            assert!(
                Instant::now() < deadline,
                "collector did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait; returns whether it exited successfully.
    pub fn terminate(&mut self) -> bool {
        let Some(mut c) = self.child.take() else {
            return false;
        };
        let st = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        c.wait().unwrap().success()
    }

    /// Send SIGHUP (reload the tokens file).
    pub fn hup(&self) {
        let st = Command::new("kill")
            .args(["-HUP", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
    }

    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "still running");
        self.spawn();
    }

    /// GET `path` (a page) as a viewer: its body; panics on an error status.
    pub fn get_text(&self, path: &str) -> String {
        ureq::get(&format!("{}{path}", self.url()))
            .set("Authorization", &format!("Bearer {VIEWER_TOKEN}"))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .into_string()
            .unwrap()
    }

    /// GET `path` (an API call): its JSON body; panics on an error status.
    pub fn get(&self, path: &str) -> serde_json::Value {
        serde_json::from_str(&self.get_text(path)).unwrap()
    }

    /// A request with `token` (or none), without following redirects:
    /// (status, headers as `name: value` lines in lower case, body).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (u16, String, String) {
        let agent = ureq::AgentBuilder::new().redirects(0).build();
        let mut req = agent.request(method, &format!("{}{path}", self.url()));
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let r = match body {
            Some(b) => req.send_string(b),
            None => req.call(),
        };
        let r = match r {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let mut h = String::new();
        for name in r.headers_names() {
            for v in r.all(&name) {
                h.push_str(&format!("{}: {v}\n", name.to_ascii_lowercase()));
            }
        }
        (r.status(), h, r.into_string().unwrap())
    }

    /// Log in through the form as a browser would (GET /login for the
    /// CSRF cookie and field, POST it back); the session cookie's value.
    pub fn login(&self, user: &str, password: &str) -> String {
        let (st, h, body) = self.request("GET", "/login", &[], None);
        assert_eq!(st, 200, "{body}");
        let csrf = header_cookie(&h, "speediso_login_csrf").expect("login CSRF cookie");
        assert!(body.contains(&csrf), "the form carries the CSRF token");
        let form = format!(
            "user={user}&password={}&csrf={csrf}&next=%2F",
            password.replace('&', "%26")
        );
        let (st, h, body) = self.request(
            "POST",
            "/login",
            &[
                ("Cookie", &format!("speediso_login_csrf={csrf}")),
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Origin", &self.url()),
            ],
            Some(&form),
        );
        assert_eq!(st, 303, "login as {user}: {body}");
        header_cookie(&h, "speediso_session").expect("session cookie")
    }

    /// POST a raw body; returns (status, body text).
    pub fn post(&self, token: Option<&str>, body: &str) -> (u16, String) {
        let mut req = ureq::post(&format!("{}/v1/events", self.url()));
        if let Some(t) = token {
            req = req.set("Authorization", &format!("Bearer {t}"));
        }
        match req.send_string(body) {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap()),
            Err(e) => panic!("POST: {e}"),
        }
    }

    /// The stored lines of a run, in seq order, exactly as received.
    pub fn stored_lines(&self, run_id: &str) -> Vec<String> {
        let c = rusqlite::Connection::open(self.dir.join("c.db")).unwrap();
        let mut s = c
            .prepare("SELECT body FROM events WHERE run_id = ?1 ORDER BY seq")
            .unwrap();
        let rows = s.query_map([run_id], |r| r.get(0)).unwrap();
        rows.map(|r| r.unwrap()).collect()
    }

    /// (stored events, distinct seqs, max seq) of a run, straight from the
    /// database file.
    pub fn stored(&self, run_id: &str) -> (i64, i64, i64) {
        let c = rusqlite::Connection::open(self.dir.join("c.db")).unwrap();
        c.query_row(
            "SELECT count(*), count(DISTINCT seq), coalesce(max(seq), -1) FROM events WHERE run_id = ?1",
            [run_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback HTTP proxy in front of `collector_port` that adds `Cookie:
/// speediso_session=<session>` to every request, for a headless browser
/// that cannot fill in the login form (`--dump-dom`, `--screenshot`): the
/// session is a real one from [`Collector::login`]. Returns its port; it
/// lives as long as the test process.
pub fn session_proxy(collector_port: u16, session: &str) -> u16 {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let cookie = format!("Cookie: speediso_session={session}\r\nConnection: close\r\n");
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut client) = conn else { continue };
            let cookie = cookie.clone();
            std::thread::spawn(move || {
                // The request head (GETs only: no body to forward).
                let mut head = Vec::new();
                let mut b = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match client.read(&mut b) {
                        Ok(1) => head.push(b[0]),
                        _ => return,
                    }
                }
                let head = String::from_utf8_lossy(&head);
                let (first, rest) = head.split_once("\r\n").unwrap_or((&head, ""));
                let rest: String = rest
                    .split("\r\n")
                    .filter(|h| {
                        let h = h.to_ascii_lowercase();
                        !h.starts_with("cookie:") && !h.starts_with("connection:")
                    })
                    .map(|h| format!("{h}\r\n"))
                    .collect();
                let Ok(mut up) = TcpStream::connect(("127.0.0.1", collector_port)) else {
                    return;
                };
                let req = format!("{first}\r\n{cookie}{}", rest.trim_end_matches("\r\n"));
                let _ = up.write_all(format!("{req}\r\n\r\n").as_bytes());
                let _ = std::io::copy(&mut up, &mut client);
            });
        }
    });
    port
}

/// The value of cookie `name` in `set-cookie:` lines of
/// [`Collector::request`]'s headers.
pub fn header_cookie(headers: &str, name: &str) -> Option<String> {
    headers
        .lines()
        .filter_map(|l| l.strip_prefix("set-cookie: "))
        .filter_map(|c| c.split(';').next()?.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A users-file line from the real `speediso-collector hash-password`.
pub fn hash_password(name: &str, role: &str, password: &str) -> String {
    use std::io::Write;
    let mut c = Command::new(crate::bin("speediso-collector"))
        .args(["hash-password", "--user", name, "--role", role])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("speediso-collector hash-password");
    writeln!(c.stdin.take().unwrap(), "{password}").unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(out.status.success(), "hash-password failed");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// One event line as the agent would send it.
pub fn event_line(run_id: &str, seq: u64, serial: &str, kind_and_fields: &str) -> String {
    format!(
        r#"{{"v":1,"run_id":"{run_id}","seq":{seq},"ts":"2026-01-01T00:00:00.000Z","host":{{"serial":"{serial}"}},"task":"t","step":"s",{kind_and_fields}}}"#
    )
}

pub fn log_line(run_id: &str, seq: u64, serial: &str) -> String {
    event_line(
        run_id,
        seq,
        serial,
        r#""type":"log","level":"info","message":"hello""#,
    )
}
