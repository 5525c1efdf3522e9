//! A throwaway PostgreSQL server for the collector's tests: initdb +
//! pg_ctl from the Debian `postgresql` package, on 127.0.0.1 and a free
//! port, socket and data in a temporary directory.

use speediso_testsupport::{free_port, output_ok};
use std::path::PathBuf;
use std::process::Command;

/// A PostgreSQL server in a temporary directory; stopped on drop.
pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    pub port: u16,
    as_root: bool,
    _tmp: tempfile::TempDir,
}

fn pg_bin() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    if let Some(d) = dirs.pop() {
        return Some(d);
    }
    speediso_testsupport::missing(
        "PostgreSQL server binaries (initdb) not found (apt-get install postgresql; see tests/apt/report.txt)",
    );
    None
}

impl Postgres {
    pub fn cmd(&self, tool: &str) -> Command {
        // PostgreSQL refuses to run as root: run its tools as `postgres`.
        if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(self.bin.join(tool));
            c
        } else {
            Command::new(self.bin.join(tool))
        }
    }

    pub fn start() -> Option<Postgres> {
        Self::start_with("")
    }

    /// With extra server options (`-c name=value ...`).
    pub fn start_with(opts: &str) -> Option<Postgres> {
        let bin = pg_bin()?;
        let tmp = tempfile::tempdir().unwrap();
        let as_root = Command::new("id").arg("-u").output().unwrap().stdout == b"0\n";
        if as_root {
            let st = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(tmp.path())
                .status()
                .unwrap();
            assert!(st.success());
        }
        let port = free_port();
        let pg = Postgres {
            bin,
            data: tmp.path().join("data"),
            port,
            as_root,
            _tmp: tmp,
        };
        output_ok(
            pg.cmd("initdb")
                .args(["-A", "trust", "-U", "speediso", "-E", "UTF8", "-D"])
                .arg(&pg.data),
        );
        pg.pg_start(opts);
        Some(pg)
    }

    /// `pg_ctl start` on the existing cluster (same port), waiting until
    /// it accepts connections.
    pub fn pg_start(&self, opts: &str) {
        let sock = self._tmp.path();
        let out = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=on {opts}",
                self.port,
                sock.display()
            ))
            .args(["-w", "-t", "60", "-l"])
            .arg(sock.join("log"))
            .arg("start")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(sock.join("log")).unwrap_or_default()
        );
    }

    /// `pg_ctl stop -m fast`: connections are closed, the server exits.
    pub fn pg_stop(&self) {
        let out = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-m", "fast", "stop"])
            .output()
            .unwrap();
        assert!(out.status.success(), "pg_ctl stop: {out:?}");
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._tmp.path().join("log")).unwrap_or_default()
    }

    pub fn url(&self) -> String {
        format!("postgresql://speediso@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self
            .cmd("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}
