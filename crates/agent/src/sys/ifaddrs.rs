//! Interface addresses through getifaddrs(3): the IPv4 addresses of each
//! interface, which neither sysfs nor procfs lists per interface.

#![allow(unsafe_code)]

use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One address of one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfAddr {
    pub interface: String,
    pub addr: IpAddr,
    /// Prefix length from the netmask.
    pub prefix: u8,
}

fn to_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: getifaddrs gives valid sockaddrs whose real type is named by
    // sa_family; we read the matching struct only.
    unsafe {
        match (*sa).sa_family as i32 {
            libc::AF_INET => {
                let s = &*(sa as *const libc::sockaddr_in);
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(s.sin_addr.s_addr))))
            }
            libc::AF_INET6 => {
                let s = &*(sa as *const libc::sockaddr_in6);
                Some(IpAddr::V6(Ipv6Addr::from(s.sin6_addr.s6_addr)))
            }
            _ => None,
        }
    }
}

fn prefix_len(mask: Option<IpAddr>) -> u8 {
    match mask {
        Some(IpAddr::V4(m)) => u32::from(m).count_ones() as u8,
        Some(IpAddr::V6(m)) => u128::from(m).count_ones() as u8,
        None => 0,
    }
}

/// All IPv4 and IPv6 addresses of all interfaces; empty on error.
pub fn addresses() -> Vec<IfAddr> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned.
        let ifa = unsafe { &*cur };
        if let Some(addr) = to_ip(ifa.ifa_addr) {
            // SAFETY: ifa_name is a NUL-terminated string owned by the list.
            let name = unsafe { CStr::from_ptr(ifa.ifa_name) };
            out.push(IfAddr {
                interface: name.to_string_lossy().into_owned(),
                addr,
                prefix: prefix_len(to_ip(ifa.ifa_netmask)),
            });
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: frees the list getifaddrs allocated; nothing points into it now.
    unsafe { libc::freeifaddrs(head) };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_has_127_0_0_1() {
        let a = addresses();
        assert!(
            a.iter().any(|x| x.interface == "lo"
                && x.addr == IpAddr::V4(Ipv4Addr::LOCALHOST)
                && x.prefix == 8),
            "{a:?}"
        );
    }
}
