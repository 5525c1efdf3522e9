//! The kernel's IPMI device interface (`/dev/ipmi0`, linux/ipmi.h): one
//! request to the local BMC over the system interface and its response,
//! with a deadline so a BMC that never answers cannot hang the caller.
//! What the bytes mean is `inventory::bmc`; this file only moves them.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// `struct ipmi_msg`: net function, command, and the data (the response's
/// first byte is the completion code).
#[repr(C)]
struct IpmiMsg {
    netfn: u8,
    cmd: u8,
    data_len: u16,
    data: *mut u8,
}

/// `struct ipmi_req` (IPMICTL_SEND_COMMAND).
#[repr(C)]
struct IpmiReq {
    addr: *mut u8,
    addr_len: libc::c_uint,
    msgid: libc::c_long,
    msg: IpmiMsg,
}

/// `struct ipmi_recv` (IPMICTL_RECEIVE_MSG_TRUNC).
#[repr(C)]
struct IpmiRecv {
    recv_type: libc::c_int,
    addr: *mut u8,
    addr_len: libc::c_uint,
    msgid: libc::c_long,
    msg: IpmiMsg,
}

/// `struct ipmi_system_interface_addr`: the local BMC.
#[repr(C)]
struct SystemInterfaceAddr {
    addr_type: libc::c_int,
    channel: libc::c_short,
    lun: libc::c_uchar,
}

const IPMI_SYSTEM_INTERFACE_ADDR_TYPE: libc::c_int = 0x0c;
const IPMI_BMC_CHANNEL: libc::c_short = 0x0f;
/// `recv_type` of a response to one of our commands.
const IPMI_RESPONSE_RECV_TYPE: libc::c_int = 1;
/// IPMI_MAX_MSG_LENGTH: no response is longer.
const MAX_MSG: usize = 272;
/// IPMI_MAX_ADDR_SIZE: room for any `struct ipmi_addr` the kernel returns.
const MAX_ADDR: usize = 32;

/// The `_IOC` encoding of linux/ioctl.h (dir 2 = read, 3 = read|write).
const fn ioc(dir: u32, nr: u32, size: usize) -> libc::Ioctl {
    ((dir << 30) | ((size as u32) << 16) | ((b'i' as u32) << 8) | nr) as libc::Ioctl
}
// _IOWR('i', 11, struct ipmi_recv)
const IPMICTL_RECEIVE_MSG_TRUNC: libc::Ioctl = ioc(3, 11, std::mem::size_of::<IpmiRecv>());
// _IOR('i', 13, struct ipmi_req)
const IPMICTL_SEND_COMMAND: libc::Ioctl = ioc(2, 13, std::mem::size_of::<IpmiReq>());

#[cfg(target_pointer_width = "64")]
const _: () = {
    assert!(std::mem::size_of::<IpmiReq>() == 40);
    assert!(std::mem::size_of::<IpmiRecv>() == 48);
    assert!(IPMICTL_SEND_COMMAND as u32 == 0x8028_690d);
    assert!(IPMICTL_RECEIVE_MSG_TRUNC as u32 == 0xc030_690b);
};

/// An open IPMI device.
pub struct Device {
    fd: OwnedFd,
    next_id: libc::c_long,
}

impl Device {
    /// Open the device (`/dev/ipmi0` on a machine).
    pub fn open(path: &Path) -> io::Result<Device> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        Ok(Device {
            fd: f.into(),
            next_id: 1,
        })
    }

    /// Send `netfn`/`cmd` with `data` to the BMC and wait at most
    /// `timeout` for its response: the response data, completion code
    /// first. `TimedOut` when nothing came back in time.
    pub fn command(
        &mut self,
        netfn: u8,
        cmd: u8,
        data: &[u8],
        timeout: Duration,
    ) -> io::Result<Vec<u8>> {
        let msgid = self.next_id;
        self.next_id += 1;
        let mut addr = SystemInterfaceAddr {
            addr_type: IPMI_SYSTEM_INTERFACE_ADDR_TYPE,
            channel: IPMI_BMC_CHANNEL,
            lun: 0,
        };
        let mut body = data.to_vec();
        let mut req = IpmiReq {
            addr: &mut addr as *mut SystemInterfaceAddr as *mut u8,
            addr_len: std::mem::size_of::<SystemInterfaceAddr>() as libc::c_uint,
            msgid,
            msg: IpmiMsg {
                netfn,
                cmd,
                data_len: u16::try_from(body.len())
                    .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "request too long"))?,
                data: body.as_mut_ptr(),
            },
        };
        // SAFETY: IPMICTL_SEND_COMMAND reads the ipmi_req, the address it
        // points to (addr_len bytes: our system-interface address) and
        // data_len bytes of request data; all three live on this stack
        // frame or in `body` for the duration of the call.
        let rc = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                IPMICTL_SEND_COMMAND,
                &mut req as *mut IpmiReq,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || !self.readable(left)? {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no response within {} s", timeout.as_secs_f32()),
                ));
            }
            match self.receive()? {
                Some((id, kind, resp)) if id == msgid && kind == IPMI_RESPONSE_RECV_TYPE => {
                    return Ok(resp)
                }
                // A late answer to an earlier, timed-out request, or an
                // event: not ours, keep waiting.
                _ => continue,
            }
        }
    }

    /// Wait up to `wait` for a message to be queued for us.
    fn readable(&self, wait: Duration) -> io::Result<bool> {
        let mut p = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = wait.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
        // SAFETY: poll(2) on one pollfd we own, for at most `ms`.
        let rc = unsafe { libc::poll(&mut p, 1, ms) };
        match rc {
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
            0 => Ok(false),
            _ => Ok(true),
        }
    }

    /// Take one queued message: (msgid, recv_type, data). `None` when the
    /// queue was empty after all.
    fn receive(&self) -> io::Result<Option<(libc::c_long, libc::c_int, Vec<u8>)>> {
        let mut addr = [0u8; MAX_ADDR];
        let mut data = vec![0u8; MAX_MSG];
        let mut recv = IpmiRecv {
            recv_type: 0,
            addr: addr.as_mut_ptr(),
            addr_len: MAX_ADDR as libc::c_uint,
            msgid: 0,
            msg: IpmiMsg {
                netfn: 0,
                cmd: 0,
                data_len: MAX_MSG as u16,
                data: data.as_mut_ptr(),
            },
        };
        // SAFETY: IPMICTL_RECEIVE_MSG_TRUNC writes the ipmi_recv, at most
        // addr_len bytes at `addr` and at most data_len bytes at `data`
        // (truncating a longer message), and sets data_len to what it
        // wrote; both buffers are this large and outlive the call.
        let rc = unsafe {
            libc::ioctl(
                self.fd.as_raw_fd(),
                IPMICTL_RECEIVE_MSG_TRUNC,
                &mut recv as *mut IpmiRecv,
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EAGAIN) => return Ok(None),
                // Truncated to our buffer, which holds the largest message.
                Some(libc::EMSGSIZE) => {}
                _ => return Err(e),
            }
        }
        data.truncate((recv.msg.data_len as usize).min(MAX_MSG));
        Ok(Some((recv.msgid, recv.recv_type, data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_that_is_not_ipmi_is_an_error_not_a_hang() {
        // /dev/null accepts the open but not the ioctl.
        let mut d = Device::open(Path::new("/dev/null")).unwrap();
        let e = d
            .command(0x06, 0x01, &[], Duration::from_millis(50))
            .unwrap_err();
        assert_ne!(e.kind(), io::ErrorKind::TimedOut, "{e}");
    }
}
