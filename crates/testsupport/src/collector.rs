//! Shared by the report/collector integration tests: start the real
//! `speediso-collector` binary on 127.0.0.1, kill it by PID, query it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TOKEN: &str = "test-token-0123456789";
pub const HOST_TOKEN: &str = "host-bound-token-42";

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
                format!("# test tokens\n{TOKEN}\nhost=BOUND1 {HOST_TOKEN}\n"),
            )
            .unwrap();
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

    /// GET `path` (a page): its body; panics on an error status.
    pub fn get_text(&self, path: &str) -> String {
        ureq::get(&format!("{}{path}", self.url()))
            .call()
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .into_string()
            .unwrap()
    }

    /// GET `path` (an API call): its JSON body; panics on an error status.
    pub fn get(&self, path: &str) -> serde_json::Value {
        serde_json::from_str(&self.get_text(path)).unwrap()
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
