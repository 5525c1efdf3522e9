//! Structured journal entries over the journal's native protocol (a
//! datagram of `KEY=value` fields to /run/systemd/journal/socket), with a
//! MESSAGE_ID per event type so `journalctl MESSAGE_ID=...` finds them.
//! Active only under systemd; elsewhere it is never constructed.

use super::describe;
use crate::events::{Body, Event, Sink};
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

pub struct Journal {
    sock: UnixDatagram,
    path: PathBuf,
}

impl Journal {
    /// Connect when running under systemd (`INVOCATION_ID` set) and the
    /// journal socket exists; `None` otherwise.
    pub fn under_systemd() -> Option<Journal> {
        std::env::var_os("INVOCATION_ID")?;
        Journal::at(Path::new(SOCKET))
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
        let types = [
            "run_started",
            "step_started",
            "progress",
            "result",
            "log",
            "warning",
            "step_finished",
            "run_finished",
            "dispatch_rejected",
        ];
        let ids: std::collections::BTreeSet<_> = types.iter().map(|t| message_id(t)).collect();
        assert_eq!(ids.len(), types.len());
    }
}
