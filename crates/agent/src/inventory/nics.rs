//! Physical network interfaces (those with a `device` link in
//! /sys/class/net, plus the virtual ones asked for by name): MAC, driver,
//! PCI address, link state and addresses. IPv6 addresses come from
//! /proc/net/if_inet6 (under the root); IPv4 ones from getifaddrs, and the
//! ethtool driver information (driver version, firmware, bus info), the
//! permanent MAC and the link modes from the SIOCETHTOOL ioctl, so only on
//! the live system (`--root /`). The LLDP neighbours (`lldp`) are filled
//! in by `inventory::collect` from the listener.

use super::sysfs::{dir_names, link_name, natural_key, read_trim, read_u64};
use crate::root::Root;
use serde::Serialize;

#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Nic {
    pub name: String,
    pub mac: Option<String>,
    /// The factory MAC (ETHTOOL_GPERMADDR; for a bond slave, its
    /// bonding_slave/perm_hwaddr), when the device has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permanent_mac: Option<String>,
    pub driver: Option<String>,
    /// What `ethtool -i` says: the driver's version, the firmware version
    /// and the bus address (live system only; `null` when empty).
    pub driver_version: Option<String>,
    pub firmware_version: Option<String>,
    pub bus_info: Option<String>,
    pub pci_address: Option<String>,
    /// `null` when the driver does not say (no link, virtual NICs).
    pub speed_mbps: Option<u64>,
    pub duplex: Option<String>,
    pub carrier: Option<bool>,
    pub operstate: Option<String>,
    pub mtu: Option<u32>,
    /// `addr/prefix`, IPv4 first.
    pub addresses: Vec<String>,
    /// True when this is the NIC the machine PXE-booted from (BOOTIF).
    pub boot: bool,
    /// The link modes the NIC supports and advertises, named as `ethtool`
    /// names them ("25000baseCR/Full"); empty when the driver has no link
    /// settings (virtual NICs) or not on the live system.
    pub supported_link_modes: Vec<String>,
    pub advertised_link_modes: Vec<String>,
    /// What the LLDP listener heard on this NIC; `null` when it did not
    /// listen here (LLDP off, no carrier, not the live system).
    pub lldp: Option<super::lldp::Heard>,
}

/// The interfaces `collect` lists: those with a device, then `extra`
/// (virtual ones asked for by name) that exist, without repeats.
pub fn names(root: &Root, extra: &[String]) -> Vec<String> {
    let net = root.at("/sys/class/net");
    let mut names: Vec<String> = dir_names(&net)
        .into_iter()
        .filter(|n| net.join(n).join("device").exists())
        .collect();
    names.sort_by_key(|n| natural_key(n));
    for e in extra {
        if !names.contains(e) && net.join(e).exists() {
            names.push(e.clone());
        }
    }
    names
}

/// The interfaces of `names` with carrier now (the LLDP listener's).
pub fn with_carrier(root: &Root, extra: &[String]) -> Vec<String> {
    let net = root.at("/sys/class/net");
    names(root, extra)
        .into_iter()
        .filter(|n| read_u64(&net.join(n).join("carrier")) == Some(1))
        .collect()
}

/// Is `s` a PCI address like `0000:00:03.0`?
fn is_pci_address(s: &str) -> bool {
    let p: Vec<&str> = s.split([':', '.']).collect();
    p.len() == 4
        && p.iter()
            .all(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_hexdigit()))
        && p[1].len() == 2
        && p[2].len() == 2
        && p[3].len() == 1
}

/// IPv6 addresses per interface from /proc/net/if_inet6.
fn inet6(text: &str, ifname: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.len() < 6 || f[5] != ifname || f[0].len() != 32 {
                return None;
            }
            let v = u128::from_str_radix(f[0], 16).ok()?;
            let prefix = u8::from_str_radix(f[2], 16).ok()?;
            Some(format!("{}/{prefix}", std::net::Ipv6Addr::from(v)))
        })
        .collect()
}

/// The NICs under `root`, and the virtual interfaces named in `extra`.
pub fn collect(root: &Root, boot_mac: Option<&str>, extra: &[String]) -> Vec<Nic> {
    let net = root.at("/sys/class/net");
    let if_inet6 = std::fs::read_to_string(root.at("/proc/net/if_inet6")).unwrap_or_default();
    let v4 = if root.is_system() {
        crate::sys::ifaddrs::addresses()
    } else {
        Vec::new()
    };
    let live = root.is_system();
    names(root, extra)
        .into_iter()
        .map(|name| {
            let d = net.join(&name);
            let dev = d.join("device");
            let pci_address = std::fs::canonicalize(&dev).ok().and_then(|p| {
                p.ancestors()
                    .filter_map(|a| a.file_name())
                    .map(|n| n.to_string_lossy().into_owned())
                    .find(|n| is_pci_address(n))
            });
            let mac = read_trim(&d.join("address")).map(|m| m.to_ascii_lowercase());
            let mut addresses: Vec<String> = v4
                .iter()
                .filter(|a| a.interface == name && a.addr.is_ipv4())
                .map(|a| format!("{}/{}", a.addr, a.prefix))
                .collect();
            addresses.extend(inet6(&if_inet6, &name));
            use crate::sys::ethtool;
            let info = live
                .then(|| ethtool::driver_info(&name).ok())
                .flatten()
                .unwrap_or_default();
            let links = live
                .then(|| ethtool::link_settings(&name).ok())
                .flatten()
                .unwrap_or_default();
            Nic {
                // A bond slave's current MAC is the bond's; the ioctl and
                // the bonding file both give the slave's own.
                permanent_mac: read_trim(&d.join("bonding_slave/perm_hwaddr"))
                    .or_else(|| {
                        live.then(|| ethtool::permanent_mac(&name).ok().flatten())
                            .flatten()
                    })
                    .map(|m| m.to_ascii_lowercase()),
                driver_version: info.version,
                firmware_version: info.firmware_version,
                bus_info: info.bus_info,
                supported_link_modes: ethtool::mode_names(&links.supported),
                advertised_link_modes: ethtool::mode_names(&links.advertising),
                lldp: None,
                boot: boot_mac.is_some_and(|b| Some(b) == mac.as_deref()),
                mac,
                // sysfs names the driver of a device; a virtual NIC has
                // none there, but ethtool knows (veth, bridge).
                driver: link_name(&dev.join("driver")).or(info.driver),
                pci_address,
                // -1 (unknown) does not parse as u64.
                speed_mbps: read_u64(&d.join("speed")).filter(|&s| s > 0 && s < u32::MAX as u64),
                duplex: read_trim(&d.join("duplex")).filter(|x| x != "unknown"),
                carrier: read_u64(&d.join("carrier")).map(|c| c == 1),
                operstate: read_trim(&d.join("operstate")),
                mtu: read_trim(&d.join("mtu")).and_then(|m| m.parse().ok()),
                addresses,
                name,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_address_shape() {
        assert!(is_pci_address("0000:00:03.0"));
        assert!(is_pci_address("10000:e1:00.1"));
        assert!(!is_pci_address("virtio2"));
        assert!(!is_pci_address("pci0000:00"));
    }

    /// Physical NICs in natural order, then the asked-for virtual ones
    /// that exist; carrier from the `carrier` file.
    #[test]
    fn names_and_carrier() {
        let d = tempfile::tempdir().unwrap();
        let net = d.path().join("sys/class/net");
        for (n, dev, carrier) in [
            ("eth10", true, "1"),
            ("eth2", true, "0"),
            ("veth0", false, "1"),
            ("lo", false, "1"),
        ] {
            std::fs::create_dir_all(net.join(n)).unwrap();
            if dev {
                std::fs::create_dir(net.join(n).join("device")).unwrap();
            }
            std::fs::write(net.join(n).join("carrier"), carrier).unwrap();
        }
        let root = Root::new(d.path());
        assert_eq!(names(&root, &[]), ["eth2", "eth10"]);
        let extra = ["veth0".to_string(), "eth2".into(), "gone0".into()];
        assert_eq!(names(&root, &extra), ["eth2", "eth10", "veth0"]);
        assert_eq!(with_carrier(&root, &extra), ["eth10", "veth0"]);
        let nics = collect(&root, None, &extra);
        assert_eq!(nics.len(), 3);
        assert!(nics
            .iter()
            .all(|n| n.lldp.is_none() && n.driver_version.is_none()));
    }

    #[test]
    fn if_inet6_lines() {
        let t = "fe8000000000000000fc00fffe000001 04 40 20 80     eth0\n\
                 00000000000000000000000000000001 01 80 10 80       lo\n";
        assert_eq!(inet6(t, "eth0"), ["fe80::fc:ff:fe00:1/64"]);
        assert_eq!(inet6(t, "lo"), ["::1/128"]);
    }
}
