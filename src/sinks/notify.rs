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
