//! sd_notify `STATUS=` lines, so `systemctl status speediso@<task>` shows
//! what the task is doing right now. Speaks the protocol directly (a
//! datagram to `$NOTIFY_SOCKET`, which may be an abstract socket).

use super::describe;
use crate::events::{Event, Sink};
use std::os::unix::net::{SocketAddr, UnixDatagram};

pub struct Notify {
    sock: UnixDatagram,
    addr: SocketAddr,
}

impl Notify {
    /// From `$NOTIFY_SOCKET`; `None` when not under a unit that listens.
    pub fn from_env() -> Option<Notify> {
        let path = std::env::var("NOTIFY_SOCKET").ok()?;
        let addr = match path.strip_prefix('@') {
            Some(name) => {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(name.as_bytes()).ok()?
            }
            None => SocketAddr::from_pathname(&path).ok()?,
        };
        let sock = UnixDatagram::unbound().ok()?;
        Some(Notify { sock, addr })
    }

    pub fn send(&self, msg: &str) {
        let _ = self.sock.send_to_addr(msg.as_bytes(), &self.addr);
    }
}

impl Sink for Notify {
    fn event(&mut self, ev: &Event) {
        // STATUS= is one line; keep it short.
        let mut status: String = describe(ev).replace('\n', " ");
        if status.len() > 200 {
            let mut cut = 200;
            while !status.is_char_boundary(cut) {
                cut -= 1;
            }
            status.truncate(cut);
        }
        self.send(&format!("STATUS={status}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Bus, HostId};

    #[test]
    fn status_lines_reach_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let n = Notify {
            sock: UnixDatagram::unbound().unwrap(),
            addr: SocketAddr::from_pathname(&path).unwrap(),
        };
        let bus = Bus::new(Some("wipe".into()), HostId::default(), vec![Box::new(n)]);
        bus.step("wipe").log("x".repeat(500));
        let mut buf = vec![0u8; 4096];
        let len = server.recv(&mut buf).unwrap();
        let msg = std::str::from_utf8(&buf[..len]).unwrap();
        assert!(msg.starts_with("STATUS=[wipe] xxx"), "{msg}");
        assert_eq!(msg.len(), "STATUS=".len() + 200);
    }
}
