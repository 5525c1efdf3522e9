//! TCP socket statistics from the kernel (`getsockopt(TCP_INFO)`), used by
//! the network benchmark to report retransmits the way iperf3 does.

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// The few `struct tcp_info` fields the benchmark reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TcpInfo {
    /// Segments retransmitted over the connection's life (`tcpi_total_retrans`).
    pub total_retrans: u32,
    /// Smoothed round-trip time in microseconds (`tcpi_rtt`).
    pub rtt_us: u32,
    /// Congestion window in segments (`tcpi_snd_cwnd`).
    pub snd_cwnd: u32,
}

/// Read `TCP_INFO` for a connected TCP socket.
pub fn tcp_info(fd: BorrowedFd<'_>) -> io::Result<TcpInfo> {
    // SAFETY: tcp_info is plain old data, so all-zero is a valid value.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `info`, which is
    // exactly that large, and updates `len`; `fd` is a live socket for the
    // duration of the call because we hold a borrow of it.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // Older kernels fill a shorter struct; the fields we read are in the
    // part every kernel since 2.6 writes, but check rather than assume.
    let needed = std::mem::offset_of!(libc::tcp_info, tcpi_total_retrans) + 4;
    if (len as usize) < needed {
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "kernel returned a short TCP_INFO",
        ));
    }
    Ok(TcpInfo {
        total_retrans: info.tcpi_total_retrans,
        rtt_us: info.tcpi_rtt,
        snd_cwnd: info.tcpi_snd_cwnd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsFd;

    #[test]
    fn tcp_info_on_loopback_connection() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut s, _) = l.accept().unwrap();
        c.write_all(&[7u8; 4096]).unwrap();
        let mut buf = [0u8; 4096];
        s.read_exact(&mut buf).unwrap();
        let info = tcp_info(c.as_fd()).unwrap();
        // Loopback does not lose segments; the window is never zero on a
        // live connection.
        assert_eq!(info.total_retrans, 0);
        assert!(info.snd_cwnd > 0, "{info:?}");
        // A UDP socket is not TCP: the kernel says so.
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(tcp_info(u.as_fd()).is_err());
    }
}
