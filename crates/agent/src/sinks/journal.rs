//! Structured journal entries over the journal's native protocol (a
//! datagram of `KEY=value` fields to /run/systemd/journal/socket), with a
//! MESSAGE_ID per event type so `journalctl MESSAGE_ID=...` finds them.
//! Active only under systemd; elsewhere it is never constructed.

use super::describe;
use crate::events::{Body, Event, Sink};
use crate::root::Root;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// MESSAGE_ID for each event type (random 128-bit ids, fixed forever).
pub fn message_id(type_name: &str) -> &'static str {
    match type_name {
        "run_started" => "6c0e0f2a9b5e4a0f8f1f8d3f0a1b2c01",
        "step_started" => "6c0e0f2a9b5e4a0f8f1f8d3f0a1b2c02",
        "progress" => "6c0e0f2a9b5e4a0f8f1f8d3f0a1b2c03",
        "result" => "6c0e0f2a9b5e4a0f8f1f8d3f0a1b2c04",
        "log" => "6c0e0f2a9b5e4a0f8f1f8d3f0a1b2c05",
        "warning" => "6c0e0f2a9b5e4a0f8f1f8d3f0a1b2c06",
        "step_finished" => "6c0e0f2a9b5e4a0f8f1f8d3f0a1b2c07",
        "run_finished" => "6c0e0f2a9b5e4a0f8f1f8d3f0a1b2c08",
        "dispatch_rejected" => "6c0e0f2a9b5e4a0f8f1f8d3f0a1b2c09",
        _ => "6c0e0f2a9b5e4a0f8f1f8d3f0a1b2c00",
    }
}

pub const SOCKET: &str = "/run/systemd/journal/socket";

/// The journal socket, when this process runs under systemd
/// (`INVOCATION_ID` set) and the socket exists: when the journal sink is
/// built.
fn systemd_socket() -> Option<&'static Path> {
    std::env::var_os("INVOCATION_ID")?;
    let p = Path::new(SOCKET);
    p.exists().then_some(p)
}

/// Whether this process runs under systemd with the journal sink active
/// (`Journal::under_systemd`) and its stdout connected to the journal
/// (`JOURNAL_STREAM`, "DEV:INODE", names the stream systemd connected, and
/// fd 1 is still that socket): then what the console sink would print on
/// stdout would reach the journal twice.
pub fn stdout_is_journal() -> bool {
    if systemd_socket().is_none() {
        return false;
    }
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    use std::os::unix::fs::MetadataExt;
    // /proc/self/fd/1 resolves to the socket itself: its st_dev/st_ino.
    std::fs::metadata("/proc/self/fd/1")
        .is_ok_and(|m| names_stream(&stream.to_string_lossy(), m.dev(), m.ino()))
}

/// Whether journald under `root` copies every entry to the console: the
/// kernel command line's `systemd.journald.forward_to_console=` (which
/// wins), else the last `ForwardToConsole=` of journald.conf and its
/// drop-ins (`/etc/systemd/journald.conf.d/*.conf`, in name order).
pub fn forwards_to_console(root: &Root) -> bool {
    let cmdline = crate::cmdline::read(root).unwrap_or_default();
    let mut confs =
        vec![std::fs::read_to_string(root.at("/etc/systemd/journald.conf")).unwrap_or_default()];
    if let Ok(dir) = std::fs::read_dir(root.at("/etc/systemd/journald.conf.d")) {
        let mut names: Vec<PathBuf> = dir
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "conf"))
            .collect();
        names.sort();
        confs.extend(
            names
                .iter()
                .map(|p| std::fs::read_to_string(p).unwrap_or_default()),
        );
    }
    forwarding(&cmdline, &confs)
}

fn yes(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "" | "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// `forwards_to_console` on the texts: the command line, then the
/// configuration files in the order journald reads them.
fn forwarding(cmdline: &str, confs: &[String]) -> bool {
    let mut on = None;
    for w in cmdline.split_whitespace() {
        if w == "systemd.journald.forward_to_console" {
            on = Some(true);
        } else if let Some(v) = w.strip_prefix("systemd.journald.forward_to_console=") {
            on = yes(v).or(on);
        }
    }
    if let Some(on) = on {
        return on;
    }
    let mut conf = false;
    for text in confs {
        for line in text.lines() {
            if let Some(v) = line.trim().strip_prefix("ForwardToConsole=") {
                conf = yes(v).unwrap_or(conf);
            }
        }
    }
    conf
}

/// Does `JOURNAL_STREAM` ("DEV:INODE", decimal) name the file (`dev`, `ino`)?
fn names_stream(stream: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = stream.trim().split_once(':') else {
        return false;
    };
    d.parse::<u64>() == Ok(dev) && i.parse::<u64>() == Ok(ino)
}

pub struct Journal {
    sock: UnixDatagram,
    path: PathBuf,
}

impl Journal {
    /// Connect when running under systemd (`INVOCATION_ID` set) and the
    /// journal socket exists; `None` otherwise.
    pub fn under_systemd() -> Option<Journal> {
        Journal::at(systemd_socket()?)
    }

    pub fn at(path: &Path) -> Option<Journal> {
        let sock = UnixDatagram::unbound().ok()?;
        path.exists().then(|| Journal {
            sock,
            path: path.to_path_buf(),
        })
    }
}

/// Encode one journal field. Values with a newline use the binary form:
/// `KEY\n<u64 LE length><value>\n`.
fn field(buf: &mut Vec<u8>, key: &str, value: &str) {
    buf.extend_from_slice(key.as_bytes());
    if value.contains('\n') {
        buf.push(b'\n');
        buf.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        buf.push(b'=');
    }
    buf.extend_from_slice(value.as_bytes());
    buf.push(b'\n');
}

/// The whole datagram for one event.
pub fn encode(ev: &Event) -> Vec<u8> {
    let priority = match &ev.body {
        Body::Warning { .. } | Body::DispatchRejected { .. } => "4",
        Body::RunFinished { outcome, .. } | Body::StepFinished { outcome, .. }
            if *outcome != crate::events::Outcome::Success =>
        {
            "3"
        }
        Body::Progress { .. } => "7",
        _ => "6",
    };
    let mut buf = Vec::with_capacity(512);
    field(&mut buf, "MESSAGE", &describe(ev));
    field(&mut buf, "MESSAGE_ID", message_id(ev.body.type_name()));
    field(&mut buf, "PRIORITY", priority);
    field(&mut buf, "SYSLOG_IDENTIFIER", "speediso");
    field(&mut buf, "SPEEDISO_RUN_ID", &ev.run_id);
    field(&mut buf, "SPEEDISO_SEQ", &ev.seq.to_string());
    field(&mut buf, "SPEEDISO_TYPE", ev.body.type_name());
    if let Some(t) = &ev.task {
        field(&mut buf, "SPEEDISO_TASK", t);
    }
    if let Some(s) = &ev.step {
        field(&mut buf, "SPEEDISO_STEP", s);
    }
    if let Ok(json) = serde_json::to_string(ev) {
        field(&mut buf, "SPEEDISO_EVENT", &json);
    }
    buf
}

impl Sink for Journal {
    fn event(&mut self, ev: &Event) {
        // Progress is frequent; the console and state file carry it.
        if matches!(ev.body, Body::Progress { .. }) {
            return;
        }
        if let Err(e) = self.sock.send_to(&encode(ev), &self.path) {
            tracing::debug!("journal send failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_names_device_and_inode() {
        assert!(names_stream("64770:123456", 64770, 123456));
        assert!(names_stream("8:1\n", 8, 1));
        assert!(!names_stream("64770:123456", 64770, 123457));
        assert!(!names_stream("64771:123456", 64770, 123456));
        assert!(!names_stream("64770", 64770, 0));
        assert!(!names_stream("", 0, 0));
        assert!(!names_stream("a:b", 0, 0));
    }

    #[test]
    fn console_forwarding_from_the_command_line_and_journald_conf() {
        let c = |s: &str| s.to_string();
        assert!(!forwarding("quiet", &[]));
        assert!(forwarding("a systemd.journald.forward_to_console=1 b", &[]));
        assert!(forwarding("systemd.journald.forward_to_console", &[]));
        assert!(!forwarding(
            "systemd.journald.forward_to_console=0",
            &[c("[Journal]\nForwardToConsole=yes\n")]
        ));
        assert!(forwarding("", &[c("[Journal]\nForwardToConsole=yes\n")]));
        // A later drop-in wins over journald.conf.
        assert!(!forwarding(
            "",
            &[
                c("ForwardToConsole=yes"),
                c("[Journal]\nForwardToConsole=no")
            ]
        ));
        assert!(!forwarding("", &[c("#ForwardToConsole=yes")]));
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        std::fs::create_dir_all(r.join("proc")).unwrap();
        std::fs::create_dir_all(r.join("etc/systemd/journald.conf.d")).unwrap();
        std::fs::write(r.join("proc/cmdline"), "root=live:x quiet\n").unwrap();
        assert!(!forwards_to_console(&Root::new(r)));
        std::fs::write(
            r.join("etc/systemd/journald.conf.d/10-console.conf"),
            "[Journal]\nForwardToConsole=yes\n",
        )
        .unwrap();
        assert!(forwards_to_console(&Root::new(r)));
        std::fs::write(
            r.join("proc/cmdline"),
            "root=live:x systemd.journald.forward_to_console=0\n",
        )
        .unwrap();
        assert!(!forwards_to_console(&Root::new(r)));
    }

    #[test]
    fn outside_systemd_stdout_is_not_the_journal() {
        // cargo test runs without INVOCATION_ID (unless a unit runs it).
        if std::env::var_os("INVOCATION_ID").is_none() {
            assert!(!stdout_is_journal());
        }
    }

    #[test]
    fn binary_field_for_newlines() {
        let mut b = Vec::new();
        field(&mut b, "A", "x");
        field(&mut b, "B", "y\nz");
        let mut want = b"A=x\nB\n".to_vec();
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(b"y\nz\n");
        assert_eq!(b, want);
    }

    #[test]
    fn sends_structured_datagram() {
        use crate::events::{Bus, HostId};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket");
        let server = UnixDatagram::bind(&path).unwrap();
        let j = Journal::at(&path).unwrap();
        let bus = Bus::new(
            Some("inventory".into()),
            HostId::default(),
            vec![Box::new(j)],
        );
        bus.step("inventory").warn("fan 2 stopped");
        let mut buf = vec![0u8; 65536];
        let n = server.recv(&mut buf).unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(
            text.contains("MESSAGE=[inventory] WARNING: fan 2 stopped\n"),
            "{text}"
        );
        assert!(text.contains(&format!("MESSAGE_ID={}\n", message_id("warning"))));
        assert!(text.contains("PRIORITY=4\n"));
        assert!(text.contains("SPEEDISO_TYPE=warning\n"));
        assert!(text.contains(&format!("SPEEDISO_RUN_ID={}\n", bus.run_id())));
        assert!(text.contains("SPEEDISO_EVENT={"));
    }

    #[test]
    fn message_ids_distinct() {
        let types = speediso_proto::events::TYPES;
        let ids: std::collections::BTreeSet<_> = types.iter().map(|t| message_id(t)).collect();
        assert_eq!(ids.len(), types.len());
    }
}
