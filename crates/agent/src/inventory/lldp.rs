//! LLDP (IEEE 802.1AB) frames decoded into neighbours: the pure part of the
//! passive listener (`listen` below runs it over `sys::lldp` sockets).
//!
//! Decoded: chassis ID (every subtype; a MAC shown as a MAC, a network
//! address as an address), port ID, TTL, port description, system name and
//! description, capabilities, management addresses (IPv4, IPv6, MAC), and
//! the organisational TLVs of IEEE 802.1 (port VLAN ID, VLAN names, link
//! aggregation) and IEEE 802.3 (link aggregation, maximum frame size).
//! A frame that is truncated, has a TLV running past its end or a bad
//! length for its type, or lacks one of the three mandatory TLVs is an
//! `Err` (counted by the listener, never a panic).

use serde::Serialize;
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

/// EtherType of LLDP.
pub const ETHERTYPE: u16 = 0x88cc;
/// The nearest-bridge group address LLDP agents send to.
pub const MULTICAST: [u8; 6] = [0x01, 0x80, 0xc2, 0x00, 0x00, 0x0e];

/// One neighbour: what one LLDP agent said about itself and its port.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Neighbor {
    /// The source MAC of the frame.
    pub source_mac: String,
    pub chassis_id: String,
    /// chassis_component, interface_alias, port_component, mac_address,
    /// network_address, interface_name, local (or `reserved_N`).
    pub chassis_id_subtype: String,
    pub port_id: String,
    /// interface_alias, port_component, mac_address, network_address,
    /// interface_name, agent_circuit_id, local (or `reserved_N`).
    pub port_id_subtype: String,
    /// Seconds the information is valid for (0: the agent shut down).
    pub ttl_s: u16,
    pub port_description: Option<String>,
    pub system_name: Option<String>,
    pub system_description: Option<String>,
    /// System capabilities (bridge, router, station, ...).
    pub capabilities: Vec<&'static str>,
    /// The capabilities that are enabled.
    pub capabilities_enabled: Vec<&'static str>,
    /// IPv4, IPv6 or MAC text; other families as `family N: hex`.
    pub management_addresses: Vec<String>,
    /// IEEE 802.1 port VLAN ID (the untagged VLAN of the switch port).
    pub port_vlan_id: Option<u16>,
    /// IEEE 802.1 VLAN name TLVs.
    pub vlans: Vec<Vlan>,
    /// IEEE 802.1 (or legacy 802.3) link aggregation.
    pub link_aggregation: Option<LinkAggregation>,
    /// IEEE 802.3 maximum frame size in bytes (the port's MTU plus the
    /// Ethernet header and FCS).
    pub max_frame_size: Option<u16>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Vlan {
    pub id: u16,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LinkAggregation {
    pub capable: bool,
    pub enabled: bool,
    /// The aggregated port's ifIndex on the neighbour (0: not aggregated).
    pub port_id: u32,
}

/// What the listener heard on one interface.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Heard {
    /// One per (chassis ID, port ID), the latest frame's.
    pub neighbors: Vec<Neighbor>,
    /// Well-formed LLDP frames heard.
    pub frames: u64,
    /// Frames skipped as malformed (truncated, bad TLV lengths, missing
    /// mandatory TLVs).
    pub malformed_frames: u64,
    /// The reason of the last malformed frame.
    pub last_malformed: Option<String>,
    /// How long the listener listened on this interface, in milliseconds.
    pub listened_ms: u64,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn mac(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Text when printable UTF-8 (trailing NULs dropped), else hex.
fn text(b: &[u8]) -> String {
    let t = b.strip_suffix(&[0]).unwrap_or(b);
    match std::str::from_utf8(t) {
        Ok(s) if !s.chars().any(|c| c.is_control()) => s.to_string(),
        _ => hex(b),
    }
}

/// Strings (descriptions, names) as text, lossy but never hex.
fn string(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    s.trim_end_matches('\0').to_string()
}

/// An IANA address family number and the address.
fn address(family: u8, a: &[u8]) -> String {
    match (family, a.len()) {
        (1, 4) => Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string(),
        (2, 16) => {
            let mut o = [0u8; 16];
            o.copy_from_slice(a);
            Ipv6Addr::from(o).to_string()
        }
        (6, 6) => mac(a),
        _ => format!("family {family}: {}", hex(a)),
    }
}

/// A chassis or port ID's value: `mac_sub` and `net_sub` are the subtypes
/// that carry a MAC and a network address.
fn id_value(sub: u8, v: &[u8], mac_sub: u8, net_sub: u8) -> String {
    if sub == mac_sub && v.len() == 6 {
        mac(v)
    } else if sub == net_sub && !v.is_empty() {
        address(v[0], &v[1..])
    } else {
        text(v)
    }
}

fn chassis_subtype(s: u8) -> String {
    match s {
        1 => "chassis_component".into(),
        2 => "interface_alias".into(),
        3 => "port_component".into(),
        4 => "mac_address".into(),
        5 => "network_address".into(),
        6 => "interface_name".into(),
        7 => "local".into(),
        n => format!("reserved_{n}"),
    }
}

fn port_subtype(s: u8) -> String {
    match s {
        1 => "interface_alias".into(),
        2 => "port_component".into(),
        3 => "mac_address".into(),
        4 => "network_address".into(),
        5 => "interface_name".into(),
        6 => "agent_circuit_id".into(),
        7 => "local".into(),
        n => format!("reserved_{n}"),
    }
}

/// The capability bits of the System Capabilities TLV.
fn capabilities(bits: u16) -> Vec<&'static str> {
    const NAMES: [&str; 11] = [
        "other",
        "repeater",
        "bridge",
        "wlan_access_point",
        "router",
        "telephone",
        "docsis_cable_device",
        "station",
        "c_vlan",
        "s_vlan",
        "two_port_mac_relay",
    ];
    NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect()
}

const OUI_8021: [u8; 3] = [0x00, 0x80, 0xc2];
const OUI_8023: [u8; 3] = [0x00, 0x12, 0x0f];

/// Decode one Ethernet frame (destination, source, an optional 802.1Q tag,
/// EtherType 0x88cc, the LLDPDU).
pub fn parse_frame(frame: &[u8]) -> Result<Neighbor, String> {
    if frame.len() < 14 {
        return Err(format!(
            "frame of {} bytes is shorter than an Ethernet header",
            frame.len()
        ));
    }
    let mut off = 12;
    let mut ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    if ethertype == 0x8100 && frame.len() >= 18 {
        off = 16;
        ethertype = u16::from_be_bytes([frame[16], frame[17]]);
    }
    if ethertype != ETHERTYPE {
        return Err(format!("EtherType {ethertype:#06x} is not LLDP"));
    }
    let mut n = parse_lldpdu(&frame[off + 2..])?;
    n.source_mac = mac(&frame[6..12]);
    Ok(n)
}

/// Decode an LLDPDU (the TLVs after the EtherType).
pub fn parse_lldpdu(mut b: &[u8]) -> Result<Neighbor, String> {
    let mut n = Neighbor::default();
    // The mandatory TLVs seen, in order: chassis ID, port ID, TTL.
    let mut mandatory = 0;
    let mut ended = false;
    while !b.is_empty() {
        if b.len() < 2 {
            return Err("truncated TLV header".into());
        }
        let h = u16::from_be_bytes([b[0], b[1]]);
        let (t, len) = ((h >> 9) as u8, (h & 0x1ff) as usize);
        if b.len() < 2 + len {
            return Err(format!(
                "TLV type {t} of length {len} runs past the frame's end ({} bytes left)",
                b.len() - 2
            ));
        }
        let v = &b[2..2 + len];
        b = &b[2 + len..];
        // The first three TLVs must be chassis ID, port ID, TTL.
        if mandatory < 3 && t != mandatory + 1 {
            return Err(format!(
                "TLV type {t} where mandatory TLV {} was expected",
                ["chassis ID", "port ID", "TTL"][mandatory as usize]
            ));
        }
        match t {
            0 => {
                if len != 0 {
                    return Err(format!("End of LLDPDU TLV of length {len}"));
                }
                ended = true;
                break;
            }
            1 | 2 => {
                if !(2..=256).contains(&len) {
                    return Err(format!(
                        "{} TLV of length {len}",
                        ["chassis ID", "port ID"][t as usize - 1]
                    ));
                }
                if t == 1 {
                    n.chassis_id_subtype = chassis_subtype(v[0]);
                    n.chassis_id = id_value(v[0], &v[1..], 4, 5);
                } else {
                    n.port_id_subtype = port_subtype(v[0]);
                    n.port_id = id_value(v[0], &v[1..], 3, 4);
                }
                mandatory += 1;
            }
            3 => {
                if len < 2 {
                    return Err(format!("TTL TLV of length {len}"));
                }
                n.ttl_s = u16::from_be_bytes([v[0], v[1]]);
                mandatory += 1;
            }
            4 => n.port_description = Some(string(v)),
            5 => n.system_name = Some(string(v)),
            6 => n.system_description = Some(string(v)),
            7 => {
                if len != 4 {
                    return Err(format!("system capabilities TLV of length {len}"));
                }
                n.capabilities = capabilities(u16::from_be_bytes([v[0], v[1]]));
                n.capabilities_enabled = capabilities(u16::from_be_bytes([v[2], v[3]]));
            }
            8 => n.management_addresses.push(management_address(v)?),
            127 => organisational(&mut n, v)?,
            // Reserved types (9..=126) are skipped, as the standard says.
            _ => {}
        }
    }
    if mandatory < 3 {
        return Err(format!(
            "LLDPDU ends before its mandatory {} TLV",
            ["chassis ID", "port ID", "TTL"][mandatory as usize]
        ));
    }
    // Bytes after End are padding (short frames are padded to 60 bytes).
    let _ = ended;
    Ok(n)
}

/// Management Address TLV: string length (1 + address), subtype, address,
/// interface numbering subtype, interface number, OID length, OID.
fn management_address(v: &[u8]) -> Result<String, String> {
    let bad = || {
        format!(
            "management address TLV of length {} is inconsistent",
            v.len()
        )
    };
    let slen = *v.first().ok_or_else(bad)? as usize;
    if !(2..=32).contains(&slen) || v.len() < 1 + slen + 5 + 1 {
        return Err(bad());
    }
    let oid_len = v[1 + slen + 5] as usize;
    if v.len() != 1 + slen + 5 + 1 + oid_len {
        return Err(bad());
    }
    Ok(address(v[1], &v[2..1 + slen]))
}

fn organisational(n: &mut Neighbor, v: &[u8]) -> Result<(), String> {
    if v.len() < 4 {
        return Err(format!("organisational TLV of length {}", v.len()));
    }
    let (oui, sub, d) = ([v[0], v[1], v[2]], v[3], &v[4..]);
    let bad = |what: &str| format!("IEEE {what} TLV of length {}", v.len());
    match (oui, sub) {
        (OUI_8021, 1) => {
            if d.len() != 2 {
                return Err(bad("802.1 port VLAN ID"));
            }
            n.port_vlan_id = Some(u16::from_be_bytes([d[0], d[1]])).filter(|&v| v != 0);
        }
        (OUI_8021, 3) => {
            if d.len() < 3 || d.len() != 3 + d[2] as usize {
                return Err(bad("802.1 VLAN name"));
            }
            n.vlans.push(Vlan {
                id: u16::from_be_bytes([d[0], d[1]]),
                name: string(&d[3..]),
            });
        }
        (OUI_8021, 7) | (OUI_8023, 3) => {
            if d.len() != 5 {
                return Err(bad("link aggregation"));
            }
            // The 802.1 TLV wins over the legacy 802.3 one.
            if sub == 7 || n.link_aggregation.is_none() {
                n.link_aggregation = Some(LinkAggregation {
                    capable: d[0] & 1 != 0,
                    enabled: d[0] & 2 != 0,
                    port_id: u32::from_be_bytes([d[1], d[2], d[3], d[4]]),
                });
            }
        }
        (OUI_8023, 4) => {
            if d.len() != 2 {
                return Err(bad("802.3 maximum frame size"));
            }
            n.max_frame_size = Some(u16::from_be_bytes([d[0], d[1]]));
        }
        _ => {}
    }
    Ok(())
}

impl Heard {
    /// Count one received frame: a neighbour (replacing an earlier one
    /// with the same chassis and port ID) or a malformed frame.
    pub fn add(&mut self, frame: &[u8]) {
        match parse_frame(frame) {
            Ok(n) => {
                self.frames += 1;
                match self
                    .neighbors
                    .iter_mut()
                    .find(|o| o.chassis_id == n.chassis_id && o.port_id == n.port_id)
                {
                    Some(o) => *o = n,
                    None => self.neighbors.push(n),
                }
            }
            Err(e) => {
                self.malformed_frames += 1;
                self.last_malformed = Some(e);
            }
        }
    }
}

/// Listen on `ifaces` until `wait` has passed, or until every one of them
/// has heard a neighbour and `linger` more has passed (so frames sent
/// right behind the first one, and a neighbour's other ports, are heard
/// too). An interface whose socket could not be opened is in the error
/// list with the reason (no CAP_NET_RAW, gone).
pub fn listen(
    ifaces: &[String],
    wait: Duration,
    linger: Duration,
) -> (BTreeMap<String, Heard>, Vec<String>) {
    let start = Instant::now();
    let mut errors = Vec::new();
    let mut socks = Vec::new();
    for i in ifaces {
        match crate::sys::lldp::Socket::open(i) {
            Ok(s) => socks.push((i.clone(), s)),
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => errors.push(format!(
                "LLDP on {i}: {e} (a raw socket needs root or CAP_NET_RAW)"
            )),
            Err(e) => errors.push(format!("LLDP on {i}: {e}")),
        }
    }
    let mut heard: BTreeMap<String, Heard> = socks
        .iter()
        .map(|(i, _)| (i.clone(), Heard::default()))
        .collect();
    let mut all_heard_at: Option<Instant> = None;
    let mut buf = vec![0u8; 9216];
    loop {
        let now = Instant::now();
        let mut end = start + wait;
        if let Some(t) = all_heard_at {
            end = end.min(t + linger);
        }
        if now >= end || socks.is_empty() {
            break;
        }
        let fds: Vec<&crate::sys::lldp::Socket> = socks.iter().map(|(_, s)| s).collect();
        let ready = match crate::sys::lldp::poll(&fds, end - now) {
            Ok(r) => r,
            Err(e) => {
                errors.push(format!("LLDP: poll: {e}"));
                break;
            }
        };
        let mut dead = Vec::new();
        for k in ready {
            let (name, s) = &socks[k];
            // Drain what is queued. A read error (the NIC went away) ends
            // listening there: its results so far stay.
            loop {
                match s.recv(&mut buf) {
                    Ok(Some(len)) => {
                        if let Some(h) = heard.get_mut(name) {
                            h.add(&buf[..len]);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        errors.push(format!("LLDP on {name}: {e}"));
                        dead.push(k);
                        break;
                    }
                }
            }
        }
        for k in dead.into_iter().rev() {
            socks.remove(k);
        }
        if all_heard_at.is_none()
            && socks
                .iter()
                .all(|(n, _)| heard.get(n).is_some_and(|h| !h.neighbors.is_empty()))
        {
            all_heard_at = Some(Instant::now());
        }
    }
    let ms = start.elapsed().as_millis() as u64;
    for h in heard.values_mut() {
        h.listened_ms = ms;
    }
    (heard, errors)
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One TLV: type, value.
    pub fn tlv(t: u8, v: &[u8]) -> Vec<u8> {
        let h = (t as u16) << 9 | v.len() as u16;
        let mut o = h.to_be_bytes().to_vec();
        o.extend_from_slice(v);
        o
    }

    fn org(oui: [u8; 3], sub: u8, d: &[u8]) -> Vec<u8> {
        let mut v = oui.to_vec();
        v.push(sub);
        v.extend_from_slice(d);
        tlv(127, &v)
    }

    /// A switch port as a Cisco or Arista would describe it.
    pub fn switch_frame() -> Vec<u8> {
        let mut f = vec![
            0x01, 0x80, 0xc2, 0, 0, 0x0e, 0x00, 0x1c, 0x73, 0xaa, 0xbb, 0xcc, 0x88, 0xcc,
        ];
        f.extend(tlv(1, &[4, 0x00, 0x1c, 0x73, 0x01, 0x02, 0x03]));
        f.extend(tlv(2, b"\x05Ethernet12"));
        f.extend(tlv(3, &[0, 120]));
        f.extend(tlv(4, b"server r12-07 eth0"));
        f.extend(tlv(5, b"leaf-r12.dc1"));
        f.extend(tlv(6, b"Arista Networks EOS version 4.28"));
        f.extend(tlv(7, &[0, 0x14, 0, 0x04])); // bridge+router, bridge
        let mut m = vec![5, 1, 10, 0, 12, 1, 2, 0, 0, 0, 7, 0];
        f.extend(tlv(8, &m));
        m = vec![17, 2];
        m.extend_from_slice(&"2001:db8::12".parse::<Ipv6Addr>().unwrap().octets());
        m.extend_from_slice(&[1, 0, 0, 0, 0, 0]);
        f.extend(tlv(8, &m));
        f.extend(org(OUI_8021, 1, &[0, 100]));
        f.extend(org(OUI_8021, 3, b"\x00\x64\x05prod1"));
        f.extend(org(OUI_8021, 3, b"\x00\xc8\x04mgmt"));
        f.extend(org(OUI_8021, 7, &[3, 0, 0, 0, 42]));
        f.extend(org(OUI_8023, 4, &[0x24, 0x00])); // 9216
        f.extend(org([0x00, 0x12, 0xbb], 1, &[1, 2, 3])); // LLDP-MED: skipped
        f.extend(tlv(0, &[]));
        f
    }

    #[test]
    fn a_switch_port() {
        let n = parse_frame(&switch_frame()).unwrap();
        assert_eq!(n.source_mac, "00:1c:73:aa:bb:cc");
        assert_eq!(n.chassis_id, "00:1c:73:01:02:03");
        assert_eq!(n.chassis_id_subtype, "mac_address");
        assert_eq!(n.port_id, "Ethernet12");
        assert_eq!(n.port_id_subtype, "interface_name");
        assert_eq!(n.ttl_s, 120);
        assert_eq!(n.port_description.as_deref(), Some("server r12-07 eth0"));
        assert_eq!(n.system_name.as_deref(), Some("leaf-r12.dc1"));
        assert_eq!(
            n.system_description.as_deref(),
            Some("Arista Networks EOS version 4.28")
        );
        assert_eq!(n.capabilities, ["bridge", "router"]);
        assert_eq!(n.capabilities_enabled, ["bridge"]);
        assert_eq!(n.management_addresses, ["10.0.12.1", "2001:db8::12"]);
        assert_eq!(n.port_vlan_id, Some(100));
        assert_eq!(
            n.vlans,
            [
                Vlan {
                    id: 100,
                    name: "prod1".into()
                },
                Vlan {
                    id: 200,
                    name: "mgmt".into()
                }
            ]
        );
        assert_eq!(
            n.link_aggregation,
            Some(LinkAggregation {
                capable: true,
                enabled: true,
                port_id: 42
            })
        );
        assert_eq!(n.max_frame_size, Some(9216));
    }

    #[test]
    fn id_subtypes() {
        let frame = |c: &[u8], p: &[u8]| {
            let mut f = tlv(1, c);
            f.extend(tlv(2, p));
            f.extend(tlv(3, &[0, 30]));
            f
        };
        let n = parse_lldpdu(&frame(&[5, 1, 192, 0, 2, 1], &[3, 2, 0, 0, 0, 0, 1])).unwrap();
        assert_eq!(
            (n.chassis_id.as_str(), n.chassis_id_subtype.as_str()),
            ("192.0.2.1", "network_address")
        );
        assert_eq!(
            (n.port_id.as_str(), n.port_id_subtype.as_str()),
            ("02:00:00:00:00:01", "mac_address")
        );
        let n = parse_lldpdu(&frame(&[7, 0xff, 0xfe], &[7, b'x'])).unwrap();
        assert_eq!(
            (n.chassis_id.as_str(), n.chassis_id_subtype.as_str()),
            ("fffe", "local")
        );
        assert_eq!(
            (n.port_id.as_str(), n.port_id_subtype.as_str()),
            ("x", "local")
        );
        let n = parse_lldpdu(&frame(&[9, b'a'], &[4, 6, 1, 2, 3, 4, 5, 6])).unwrap();
        assert_eq!(n.chassis_id_subtype, "reserved_9");
        assert_eq!(n.port_id, "01:02:03:04:05:06");
        // No End TLV: still fine, the frame just ends.
        assert!(parse_lldpdu(&frame(&[6, b'e'], &[5, b'p'])).is_ok());
    }

    #[test]
    fn legacy_8023_link_aggregation() {
        let mut f = tlv(1, &[7, 1]);
        f.extend(tlv(2, &[7, 1]));
        f.extend(tlv(3, &[0, 1]));
        f.extend(org(OUI_8023, 3, &[1, 0, 0, 0, 0]));
        let n = parse_lldpdu(&f).unwrap();
        assert_eq!(
            n.link_aggregation,
            Some(LinkAggregation {
                capable: true,
                enabled: false,
                port_id: 0
            })
        );
    }

    #[test]
    fn malformed_frames_are_errors() {
        let good = switch_frame();
        // Truncated anywhere inside the mandatory TLVs or inside a TLV.
        // The mandatory TLVs end at byte 40.
        for cut in [0, 10, 13, 14, 15, 16, 20, 25, 30, 36, 39] {
            assert!(parse_frame(&good[..cut]).is_err(), "cut at {cut}");
        }
        assert!(parse_frame(&good[..40]).is_ok());
        assert!(parse_frame(&good[..45]).unwrap_err().contains("runs past"));
        assert!(parse_frame(&good[..good.len() - 3]).is_err());
        // A TLV length past the end.
        let mut f = good.clone();
        f[14 + 1] = 0xff; // chassis ID length 255
        assert!(parse_frame(&f).unwrap_err().contains("runs past"));
        // Mandatory TLVs missing or out of order.
        let mut f = tlv(2, &[7, 1]);
        f.extend(tlv(1, &[7, 1]));
        f.extend(tlv(3, &[0, 1]));
        assert!(parse_lldpdu(&f).unwrap_err().contains("chassis ID"));
        let mut f = tlv(1, &[7, 1]);
        f.extend(tlv(2, &[7, 1]));
        assert!(parse_lldpdu(&f).unwrap_err().contains("TTL"));
        // Bad lengths for the type.
        let mut f = tlv(1, &[7]);
        f.extend(tlv(2, &[7, 1]));
        f.extend(tlv(3, &[0, 1]));
        assert!(parse_lldpdu(&f).is_err());
        let mut base = tlv(1, &[7, 1]);
        base.extend(tlv(2, &[7, 1]));
        base.extend(tlv(3, &[0, 1]));
        for bad in [
            tlv(7, &[0, 1]),
            tlv(8, &[1, 1]),
            tlv(8, &[5, 1, 10, 0, 0, 1, 2, 0, 0, 0, 7, 9]),
            org(OUI_8021, 1, &[0]),
            org(OUI_8021, 3, b"\x00\x64\x09prod1"),
            org(OUI_8023, 4, &[1]),
            tlv(127, &[0, 0x80]),
            tlv(0, &[1]),
        ] {
            let mut f = base.clone();
            f.extend(&bad);
            assert!(parse_lldpdu(&f).is_err(), "{bad:?}");
        }
        assert!(parse_frame(&[0u8; 13]).is_err());
        let mut ip = good.clone();
        ip[12] = 0x08;
        ip[13] = 0x00;
        assert!(parse_frame(&ip).unwrap_err().contains("not LLDP"));
    }

    #[test]
    fn heard_counts_and_dedups() {
        let mut h = Heard::default();
        h.add(&switch_frame());
        h.add(&switch_frame());
        h.add(&switch_frame()[..45]);
        assert_eq!((h.frames, h.malformed_frames, h.neighbors.len()), (2, 1, 1));
        assert!(h.last_malformed.is_some());
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_frame(&b);
            let _ = parse_lldpdu(&b);
        }

        /// A good frame with bytes flipped or cut never panics either.
        #[test]
        fn mangled_frames_never_panic(
            cut in 0usize..400,
            flips in proptest::collection::vec((0usize..400, any::<u8>()), 0..8)
        ) {
            let mut f = switch_frame();
            for (i, x) in flips {
                let k = i % f.len();
                f[k] = x;
            }
            f.truncate(cut.min(f.len()));
            let _ = parse_frame(&f);
        }
    }
}
