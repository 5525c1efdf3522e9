//! Raw packet sockets for the LLDP listener (`inventory::lldp`): an
//! AF_PACKET socket bound to one interface and EtherType 0x88cc that has
//! joined the nearest-bridge group 01:80:c2:00:00:0e (a NIC drops that
//! multicast address unless asked), non-blocking; `poll` waits on several.
//! Needs CAP_NET_RAW. Also `send` for tests that play a neighbour.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

const ETH_P_LLDP: u16 = 0x88cc;
const GROUP: [u8; 6] = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e];

/// A packet socket receiving the LLDP frames of one interface.
pub struct Socket {
    fd: OwnedFd,
    ifindex: i32,
}

fn ifindex(name: &str) -> io::Result<i32> {
    let c = std::ffi::CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad interface name"))?;
    // SAFETY: if_nametoindex reads the NUL-terminated string, which lives
    // for the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(i as i32)
}

impl Socket {
    /// Open, bind to `ifname` for EtherType 0x88cc, join the LLDP group.
    pub fn open(ifname: &str) -> io::Result<Socket> {
        let ifindex = ifindex(ifname)?;
        let proto = ETH_P_LLDP.to_be() as i32;
        // SAFETY: socket(2) with constant arguments; the fd is owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                proto,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = ETH_P_LLDP.to_be();
        sll.sll_ifindex = ifindex;
        // SAFETY: bind reads `len` bytes of `sll`, which is that large and
        // lives for the call; `fd` is open.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: packet_mreq is plain old data; all-zero is valid.
        let mut mr: libc::packet_mreq = unsafe { std::mem::zeroed() };
        mr.mr_ifindex = ifindex;
        mr.mr_type = libc::PACKET_MR_MULTICAST as u16;
        mr.mr_alen = 6;
        mr.mr_address[..6].copy_from_slice(&GROUP);
        // SAFETY: setsockopt reads `len` bytes of `mr`, which is that large
        // and lives for the call; `fd` is open. The membership ends when
        // the socket closes.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                (&mr as *const libc::packet_mreq).cast(),
                std::mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Socket { fd, ifindex })
    }

    /// Open on `ifname` of the network namespace whose file is `netns`
    /// (`/run/netns/NAME`), from a short-lived thread that joins it: the
    /// socket stays in that namespace, this process's threads do not
    /// (tests: a neighbour in a namespace of the test's making).
    pub fn open_in(netns: &std::path::Path, ifname: &str) -> io::Result<Socket> {
        let f = std::fs::File::open(netns)?;
        let ifname = ifname.to_string();
        std::thread::spawn(move || {
            // SAFETY: setns(2) on an open namespace file; it changes only
            // this thread's network namespace, and the thread ends here.
            let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
            Socket::open(&ifname)
        })
        .join()
        .map_err(|_| io::Error::other("the namespace thread panicked"))?
    }

    /// One queued frame into `buf` (truncated to its size): its length,
    /// or `None` when nothing is queued. Frames this host sent itself
    /// (PACKET_OUTGOING) are skipped.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: recvfrom writes at most `buf.len()` bytes into `buf`
            // and at most `len` bytes into `from`, both borrowed mutably
            // for the call; `fd` is open.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(None),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(e),
                };
            }
            if from.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            return Ok(Some(n as usize));
        }
    }

    /// Send one whole Ethernet frame out of the interface (tests: a
    /// neighbour sending frames of its own making).
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
        let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        to.sll_family = libc::AF_PACKET as u16;
        to.sll_protocol = ETH_P_LLDP.to_be();
        to.sll_ifindex = self.ifindex;
        to.sll_halen = 6;
        to.sll_addr[..6].copy_from_slice(&GROUP);
        // SAFETY: sendto reads `frame.len()` bytes of `frame` and the
        // sockaddr_ll of the given size, both live for the call; `fd` is
        // open.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&to as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Wait up to `timeout` for frames on any of `socks`: the indexes of those
/// with frames queued (empty when the time passed).
pub fn poll(socks: &[&Socket], timeout: Duration) -> io::Result<Vec<usize>> {
    let mut fds: Vec<libc::pollfd> = socks
        .iter()
        .map(|s| libc::pollfd {
            fd: s.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    // Round up so a sub-millisecond rest does not spin.
    let ms = timeout.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
    // SAFETY: poll reads and writes `fds.len()` pollfd entries of the
    // vector, borrowed mutably for the call; every fd is open (the sockets
    // are borrowed).
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(Vec::new());
        }
        return Err(e);
    }
    Ok(fds
        .iter()
        .enumerate()
        .filter(|(_, p)| p.revents != 0)
        .map(|(i, _)| i)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_interface_is_an_error() {
        assert!(Socket::open("nosuchif0").is_err());
        assert!(Socket::open("a\0b").is_err());
    }

    #[test]
    fn poll_times_out_empty() {
        assert_eq!(
            poll(&[], Duration::from_millis(1)).unwrap(),
            Vec::<usize>::new()
        );
    }
}
