//! The BMC: what it says of itself over the kernel's IPMI device
//! (`sys::ipmi`: Get Device ID, Get Channel Info, Get LAN Configuration
//! Parameters of each 802.3 LAN channel) and what SMBIOS type 38 says of
//! its system interface. The decoders are pure functions over response
//! bytes; a short response or a non-zero completion code becomes a note,
//! never a panic. Every command has a timeout and the whole query a budget,
//! so a silent BMC costs seconds, not the inventory.

use super::smbios;
use crate::root::Root;
use serde::Serialize;
use std::time::{Duration, Instant};

/// How long one command may take (the kernel retries underneath).
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(3);
/// How long all the commands together may take.
pub const BUDGET: Duration = Duration::from_secs(12);
/// Channels Get Channel Info asks about (0x0-0xB: the numbered channels).
const CHANNELS: std::ops::RangeInclusive<u8> = 0..=11;

const NETFN_APP: u8 = 0x06;
const NETFN_TRANSPORT: u8 = 0x0c;
const CMD_GET_DEVICE_ID: u8 = 0x01;
const CMD_GET_CHANNEL_INFO: u8 = 0x42;
const CMD_GET_LAN_CONFIG: u8 = 0x02;
/// Channel medium type 802.3 LAN.
const MEDIUM_LAN: u8 = 0x04;

/// The `bmc` section of the inventory.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Bmc {
    /// The IPMI device the BMC answered on (`/dev/ipmi0`); `null` when
    /// there is none.
    pub device: Option<String>,
    /// Get Device ID, when it answered.
    pub device_id: Option<DeviceId>,
    /// SMBIOS type 38: the system interface the firmware describes.
    pub smbios: Option<smbios::IpmiDevice>,
    /// The BMC's LAN channels and their configuration.
    pub lan: Vec<LanChannel>,
    /// What could not be read, and why.
    pub notes: Vec<String>,
}

/// The answer to Get Device ID (NetFn App, command 0x01).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DeviceId {
    pub device_id: u8,
    pub device_revision: u8,
    /// Major.minor, the minor in BCD as the BMC reports it (`5.27`).
    pub firmware_version: String,
    /// `2.0`, `1.5`.
    pub ipmi_version: String,
    /// The IANA enterprise number of the manufacturer.
    pub manufacturer_id: u32,
    /// Its name, for the numbers known here.
    pub manufacturer: Option<&'static str>,
    pub product_id: u16,
    /// Bit 7 of the firmware revision: an update or self-initialisation
    /// is in progress.
    pub firmware_update_in_progress: bool,
    /// The auxiliary firmware revision bytes, hex, when sent.
    pub aux_firmware_revision: Option<String>,
}

/// One LAN channel and its configuration parameters.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct LanChannel {
    pub channel: u8,
    /// `static`, `dhcp`, `bios` or `other` (parameter 4).
    pub ip_address_source: Option<String>,
    pub ip_address: Option<String>,
    pub subnet_mask: Option<String>,
    pub default_gateway: Option<String>,
    pub mac_address: Option<String>,
    /// The 802.1q VLAN ID when VLAN is enabled; `null` when disabled.
    pub vlan_id: Option<u16>,
}

/// IANA enterprise numbers of common server and BMC makers.
pub fn manufacturer_name(id: u32) -> Option<&'static str> {
    Some(match id {
        0 => "unspecified (0; QEMU's ipmi-bmc-sim default)",
        2 => "IBM",
        11 => "Hewlett-Packard",
        343 => "Intel",
        674 => "Dell",
        2011 => "Huawei",
        7244 => "Quanta",
        10368 => "Fujitsu",
        10876 => "Supermicro",
        19046 => "Lenovo",
        47196 => "Hewlett Packard Enterprise",
        _ => return None,
    })
}

/// A completion code, as the IPMI specification names it.
pub fn completion_code(cc: u8) -> String {
    let name = match cc {
        0x00 => "success",
        0x80 => "parameter not supported",
        0x82 => "channel not present",
        0xc0 => "node busy",
        0xc1 => "invalid command (not supported)",
        0xc2 => "invalid for this LUN",
        0xc3 => "timeout",
        0xc4 => "out of space",
        0xc7 => "request data length invalid",
        0xc9 => "parameter out of range",
        0xcb => "requested data not present",
        0xcc => "invalid data field in request",
        0xce => "response could not be provided",
        0xd1 => "firmware update in progress",
        0xd2 => "BMC initialisation in progress",
        0xd4 => "insufficient privilege",
        0xd5 => "not supported in present state",
        0xff => "unspecified error",
        _ => "",
    };
    if name.is_empty() {
        format!("completion code {cc:#04x}")
    } else {
        format!("completion code {cc:#04x} ({name})")
    }
}

/// The data after a zero completion code; `Err` names the code or the
/// missing bytes (`need`: the least data length the caller reads).
fn ok_data<'a>(what: &str, resp: &'a [u8], need: usize) -> Result<&'a [u8], String> {
    let Some((&cc, data)) = resp.split_first() else {
        return Err(format!("{what}: empty response"));
    };
    if cc != 0 {
        return Err(format!("{what}: {}", completion_code(cc)));
    }
    if data.len() < need {
        return Err(format!(
            "{what}: response of {} data bytes, expected at least {need}",
            data.len()
        ));
    }
    Ok(data)
}

/// Decode a Get Device ID response (completion code first).
pub fn device_id(resp: &[u8]) -> Result<DeviceId, String> {
    let d = ok_data("Get Device ID", resp, 11)?;
    let mfg = u32::from_le_bytes([d[6], d[7], d[8] & 0x0f, 0]);
    Ok(DeviceId {
        device_id: d[0],
        device_revision: d[1] & 0x0f,
        firmware_version: format!("{}.{:02x}", d[2] & 0x7f, d[3]),
        ipmi_version: format!("{}.{}", d[4] & 0x0f, d[4] >> 4),
        manufacturer_id: mfg,
        manufacturer: manufacturer_name(mfg),
        product_id: u16::from_le_bytes([d[9], d[10]]),
        firmware_update_in_progress: d[2] & 0x80 != 0,
        aux_firmware_revision: d.get(11..15).map(hex::encode),
    })
}

/// Decode a Get Channel Info response: the channel number and whether its
/// medium is 802.3 LAN.
pub fn channel_info(resp: &[u8]) -> Result<(u8, bool), String> {
    let d = ok_data("Get Channel Info", resp, 2)?;
    Ok((d[0] & 0x0f, d[1] & 0x7f == MEDIUM_LAN))
}

/// The LAN configuration parameters read, with their selectors.
pub const LAN_PARAMS: &[(u8, &str)] = &[
    (4, "IP address source"),
    (3, "IP address"),
    (6, "subnet mask"),
    (12, "default gateway"),
    (5, "MAC address"),
    (20, "802.1q VLAN ID"),
];

/// Decode a Get LAN Configuration Parameters response for `selector`
/// into `lan`.
pub fn lan_param(lan: &mut LanChannel, selector: u8, resp: &[u8]) -> Result<(), String> {
    let name = LAN_PARAMS
        .iter()
        .find(|(s, _)| *s == selector)
        .map(|(_, n)| *n)
        .unwrap_or("parameter");
    let what = format!("channel {}: LAN parameter {selector} ({name})", lan.channel);
    // Data: the parameter revision, then the parameter.
    let need = 1 + match selector {
        3 | 6 | 12 => 4,
        5 => 6,
        20 => 2,
        _ => 1,
    };
    let d = &ok_data(&what, resp, need)?[1..];
    let ip = |b: &[u8]| format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3]);
    match selector {
        4 => {
            lan.ip_address_source = Some(
                match d[0] & 0x0f {
                    0 => "unspecified",
                    1 => "static",
                    2 => "dhcp",
                    3 => "bios",
                    _ => "other",
                }
                .into(),
            )
        }
        3 => lan.ip_address = Some(ip(d)),
        6 => lan.subnet_mask = Some(ip(d)),
        12 => lan.default_gateway = Some(ip(d)),
        5 => {
            lan.mac_address = Some(
                d[..6]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":"),
            )
        }
        20 => {
            lan.vlan_id = (d[1] & 0x80 != 0).then(|| u16::from_le_bytes([d[0], d[1] & 0x0f]));
        }
        _ => return Err(format!("{what}: not decoded here")),
    }
    Ok(())
}

/// The commands the query sends, so tests can answer them from bytes.
pub trait Transport {
    /// Send a command; the response with its completion code first.
    fn command(&mut self, netfn: u8, cmd: u8, data: &[u8]) -> std::io::Result<Vec<u8>>;
}

impl Transport for crate::sys::ipmi::Device {
    fn command(&mut self, netfn: u8, cmd: u8, data: &[u8]) -> std::io::Result<Vec<u8>> {
        crate::sys::ipmi::Device::command(self, netfn, cmd, data, COMMAND_TIMEOUT)
    }
}

/// Ask the BMC behind `t` who it is and how its LAN channels are set up,
/// within `budget`. What fails becomes a note in `bmc`.
pub fn query(t: &mut dyn Transport, bmc: &mut Bmc, budget: Duration) {
    let start = Instant::now();
    // Err(()) ends the query: a timeout (the BMC is not answering) or the
    // budget spent; the note says which.
    let mut ask = |netfn: u8, cmd: u8, data: &[u8], what: &str, notes: &mut Vec<String>| {
        if start.elapsed() >= budget {
            notes.push(format!(
                "BMC query stopped after {} s before {what}",
                budget.as_secs()
            ));
            return Err(());
        }
        match t.command(netfn, cmd, data) {
            Ok(r) => Ok(r),
            Err(e) => {
                notes.push(format!("{what}: {e}"));
                Err(())
            }
        }
    };
    let notes = &mut bmc.notes;
    let Ok(resp) = ask(NETFN_APP, CMD_GET_DEVICE_ID, &[], "Get Device ID", notes) else {
        return;
    };
    match device_id(&resp) {
        Ok(d) => bmc.device_id = Some(d),
        Err(e) => notes.push(e),
    }
    let mut lan_channels = Vec::new();
    for ch in CHANNELS {
        let what = format!("Get Channel Info (channel {ch})");
        let Ok(resp) = ask(NETFN_APP, CMD_GET_CHANNEL_INFO, &[ch], &what, notes) else {
            return;
        };
        match channel_info(&resp) {
            Ok((_, true)) => lan_channels.push(ch),
            Ok((_, false)) => {}
            // Unsupported: no channel will answer.
            Err(e) if resp.first() == Some(&0xc1) => {
                notes.push(format!("{e}: LAN configuration unknown"));
                return;
            }
            // Not present, or not valid: a channel that does not exist.
            Err(_) => {}
        }
    }
    if lan_channels.is_empty() {
        notes.push(format!(
            "no 802.3 LAN channel among channels {}-{}",
            CHANNELS.start(),
            CHANNELS.end()
        ));
    }
    for ch in lan_channels {
        let mut lan = LanChannel {
            channel: ch,
            ..Default::default()
        };
        for &(sel, name) in LAN_PARAMS {
            let what = format!("Get LAN Configuration Parameters (channel {ch}, {name})");
            let Ok(resp) = ask(
                NETFN_TRANSPORT,
                CMD_GET_LAN_CONFIG,
                &[ch, sel, 0, 0],
                &what,
                notes,
            ) else {
                bmc.lan.push(lan);
                return;
            };
            if let Err(e) = lan_param(&mut lan, sel, &resp) {
                notes.push(e);
            }
        }
        bmc.lan.push(lan);
    }
}

/// SMBIOS type 38 from the tables under `root`, if there is one.
fn smbios_record(root: &Root) -> Option<smbios::IpmiDevice> {
    let dir = root.at("/sys/firmware/dmi/tables");
    let ep = std::fs::read(dir.join("smbios_entry_point")).ok()?;
    let table = std::fs::read(dir.join("DMI")).ok()?;
    let (_, len) = smbios::entry_point(&ep)?;
    let n = if len == 0 {
        table.len()
    } else {
        len.min(table.len())
    };
    smbios::structures(&table[..n])
        .iter()
        .find_map(smbios::ipmi_device)
}

/// The BMC of the machine under `root`. On the running machine, when the
/// firmware describes a BMC (SMBIOS type 38) but the kernel has no
/// `/dev/ipmi0` yet, the IPMI drivers are loaded first (udev usually has).
pub fn collect(root: &Root) -> Bmc {
    let mut bmc = Bmc {
        smbios: smbios_record(root),
        ..Default::default()
    };
    let dev = root.at("/dev/ipmi0");
    if !dev.exists() && bmc.smbios.is_some() && root.is_system() {
        for m in ["ipmi_si", "ipmi_devintf"] {
            if let Err(e) = crate::cmd::run(&["modprobe", "-q", m]) {
                bmc.notes.push(format!("loading {m}: {e:#}"));
            }
        }
        // udev makes the node once the interface registers.
        let until = Instant::now() + Duration::from_secs(3);
        while !dev.exists() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    if !dev.exists() {
        bmc.notes.push(match &bmc.smbios {
            Some(s) => format!(
                "no BMC found (no /dev/ipmi0, though SMBIOS describes a {} interface at {}: the ipmi_si and ipmi_devintf drivers did not bind)",
                s.interface_type, s.base_address
            ),
            None => "no BMC found (no /dev/ipmi0 and no SMBIOS IPMI device record)".into(),
        });
        return bmc;
    }
    match crate::sys::ipmi::Device::open(&dev) {
        Ok(mut d) => {
            bmc.device = Some("/dev/ipmi0".into());
            query(&mut d, &mut bmc, BUDGET);
        }
        Err(e) => bmc
            .notes
            .push(format!("no BMC found (opening /dev/ipmi0: {e})")),
    }
    bmc
}

/// One line for the readable inventory.
pub fn line(b: &Bmc) -> String {
    let mut parts = Vec::new();
    if let Some(d) = &b.device_id {
        parts.push(format!(
            "{} (IANA {}) product {:#06x} device {:#04x} rev {} · firmware {} · IPMI {}",
            d.manufacturer.unwrap_or("unknown maker"),
            d.manufacturer_id,
            d.product_id,
            d.device_id,
            d.device_revision,
            d.firmware_version,
            d.ipmi_version
        ));
    }
    if let Some(s) = &b.smbios {
        parts.push(format!(
            "{} at {}{} (SMBIOS, IPMI {})",
            s.interface_type,
            s.address_space.map(|a| format!("{a} ")).unwrap_or_default(),
            s.base_address,
            s.spec_version
        ));
    }
    for l in &b.lan {
        let o = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        parts.push(format!(
            "LAN channel {}: {} mask {} gw {} ({}) MAC {} VLAN {}",
            l.channel,
            o(&l.ip_address),
            o(&l.subnet_mask),
            o(&l.default_gateway),
            o(&l.ip_address_source),
            o(&l.mac_address),
            l.vlan_id
                .map(|v| v.to_string())
                .unwrap_or_else(|| "off".into())
        ));
    }
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(" · ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// QEMU's ipmi-bmc-sim with device_id=0x51 device_rev=3 fwrev1=5
    /// fwrev2=0x27 mfg_id=10876 product_id=0x1234: its exact bytes.
    const QEMU_DEVICE_ID: &[u8] = &[
        0x00, 0x51, 0x03, 0x05, 0x27, 0x02, 0x07, 0x7c, 0x2a, 0x00, 0x34, 0x12,
    ];

    #[test]
    fn device_id_decoding() {
        let d = device_id(QEMU_DEVICE_ID).unwrap();
        assert_eq!(
            d,
            DeviceId {
                device_id: 0x51,
                device_revision: 3,
                firmware_version: "5.27".into(),
                ipmi_version: "2.0".into(),
                manufacturer_id: 10876,
                manufacturer: Some("Supermicro"),
                product_id: 0x1234,
                firmware_update_in_progress: false,
                aux_firmware_revision: None,
            }
        );
        // A Dell iDRAC-like answer: IPMI 2.0, update bit, aux revision.
        let r = [
            0x00, 0x20, 0x81, 0x84, 0x10, 0x02, 0xdf, 0xa2, 0x02, 0x00, 0x00, 0x01, 0x00, 0x1e,
            0x00, 0x00,
        ];
        let d = device_id(&r).unwrap();
        assert_eq!(d.manufacturer, Some("Dell"));
        assert_eq!(d.device_revision, 1);
        assert_eq!(d.firmware_version, "4.10");
        assert!(d.firmware_update_in_progress);
        assert_eq!(d.aux_firmware_revision.as_deref(), Some("001e0000"));
        // IPMI 1.5 is 0x51.
        let mut r = QEMU_DEVICE_ID.to_vec();
        r[5] = 0x51;
        assert_eq!(device_id(&r).unwrap().ipmi_version, "1.5");
        // Unknown makers keep their number, without a name.
        r[7..10].copy_from_slice(&[0x39, 0x30, 0x00]);
        let d = device_id(&r).unwrap();
        assert_eq!((d.manufacturer_id, d.manufacturer), (12345, None));
    }

    #[test]
    fn short_or_failed_responses_are_errors_not_panics() {
        assert_eq!(device_id(&[]).unwrap_err(), "Get Device ID: empty response");
        let e = device_id(&QEMU_DEVICE_ID[..8]).unwrap_err();
        assert!(e.contains("7 data bytes, expected at least 11"), "{e}");
        let e = device_id(&[0xc1]).unwrap_err();
        assert!(e.contains("0xc1 (invalid command"), "{e}");
        assert!(channel_info(&[0x00, 0x01]).is_err());
        assert!(channel_info(&[0xcc])
            .unwrap_err()
            .contains("invalid data field"));
        let mut lan = LanChannel::default();
        for sel in [3, 4, 5, 6, 12, 20] {
            assert!(lan_param(&mut lan, sel, &[0x00, 0x11]).is_err(), "{sel}");
            assert!(lan_param(&mut lan, sel, &[0x80]).is_err(), "{sel}");
            assert!(lan_param(&mut lan, sel, &[]).is_err(), "{sel}");
        }
        assert_eq!(lan, LanChannel::default());
        let e = lan_param(&mut lan, 3, &[0x80]).unwrap_err();
        assert_eq!(
            e,
            "channel 0: LAN parameter 3 (IP address): completion code 0x80 (parameter not supported)"
        );
        for n in 0..=255u8 {
            let _ = completion_code(n);
            let _ = device_id(&[0, n]);
        }
    }

    #[test]
    fn channel_and_lan_decoding() {
        // Channel 1: 802.3 LAN, IPMB-1.0 protocol, multi-session.
        let r = [0x00, 0x01, 0x04, 0x01, 0x82, 0xf2, 0x1b, 0x00, 0x00, 0x00];
        assert_eq!(channel_info(&r).unwrap(), (1, true));
        // Channel 0: IPMB.
        assert_eq!(channel_info(&[0x00, 0x00, 0x01, 0x01]).unwrap(), (0, false));
        let mut lan = LanChannel {
            channel: 1,
            ..Default::default()
        };
        lan_param(&mut lan, 4, &[0x00, 0x11, 0x02]).unwrap();
        lan_param(&mut lan, 3, &[0x00, 0x11, 10, 1, 2, 3]).unwrap();
        lan_param(&mut lan, 6, &[0x00, 0x11, 255, 255, 255, 0]).unwrap();
        lan_param(&mut lan, 12, &[0x00, 0x11, 10, 1, 2, 254]).unwrap();
        lan_param(
            &mut lan,
            5,
            &[0x00, 0x11, 0x0c, 0xc4, 0x7a, 0x01, 0x02, 0xaf],
        )
        .unwrap();
        lan_param(&mut lan, 20, &[0x00, 0x11, 0x2c, 0x81]).unwrap();
        assert_eq!(
            lan,
            LanChannel {
                channel: 1,
                ip_address_source: Some("dhcp".into()),
                ip_address: Some("10.1.2.3".into()),
                subnet_mask: Some("255.255.255.0".into()),
                default_gateway: Some("10.1.2.254".into()),
                mac_address: Some("0c:c4:7a:01:02:af".into()),
                vlan_id: Some(300),
            }
        );
        // VLAN disabled (bit 15 clear): no VLAN whatever the ID bits say.
        lan_param(&mut lan, 20, &[0x00, 0x11, 0x2c, 0x01]).unwrap();
        assert_eq!(lan.vlan_id, None);
        lan_param(&mut lan, 4, &[0x00, 0x11, 0x01]).unwrap();
        assert_eq!(lan.ip_address_source.as_deref(), Some("static"));
    }

    /// A BMC made of canned responses, keyed by (netfn, cmd, data).
    struct Canned {
        answers: HashMap<(u8, u8, Vec<u8>), Vec<u8>>,
        default: std::io::Result<Vec<u8>>,
        sent: usize,
    }

    impl Transport for Canned {
        fn command(&mut self, netfn: u8, cmd: u8, data: &[u8]) -> std::io::Result<Vec<u8>> {
            self.sent += 1;
            match self.answers.get(&(netfn, cmd, data.to_vec())) {
                Some(r) => Ok(r.clone()),
                None => match &self.default {
                    Ok(r) => Ok(r.clone()),
                    Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
                },
            }
        }
    }

    #[test]
    fn query_reads_the_lan_channel_and_notes_what_is_missing() {
        let mut answers = HashMap::new();
        answers.insert((6, 1, vec![]), QEMU_DEVICE_ID.to_vec());
        answers.insert(
            (6, 0x42, vec![1]),
            vec![0, 1, 4, 1, 0x82, 0xf2, 0x1b, 0, 0, 0],
        );
        answers.insert((6, 0x42, vec![0]), vec![0, 0, 1, 1, 0, 0xf2, 0x1b, 0, 0, 0]);
        answers.insert((0x0c, 2, vec![1, 3, 0, 0]), vec![0, 0x11, 192, 0, 2, 10]);
        answers.insert((0x0c, 2, vec![1, 4, 0, 0]), vec![0, 0x11, 1]);
        let mut t = Canned {
            answers,
            // Channels 2-11 are not there; parameter 20 etc. unsupported.
            default: Ok(vec![0x82]),
            sent: 0,
        };
        let mut b = Bmc::default();
        query(&mut t, &mut b, BUDGET);
        assert_eq!(b.device_id.as_ref().unwrap().firmware_version, "5.27");
        assert_eq!(b.lan.len(), 1);
        assert_eq!(b.lan[0].ip_address.as_deref(), Some("192.0.2.10"));
        assert_eq!(b.lan[0].ip_address_source.as_deref(), Some("static"));
        assert_eq!(b.lan[0].mac_address, None);
        // 1 + 12 channels + 6 parameters.
        assert_eq!(t.sent, 19);
        assert_eq!(b.notes.len(), 4, "{:?}", b.notes);
        assert!(b.notes[0].starts_with("channel 1: LAN parameter 6 (subnet mask)"));
        let l = line(&b);
        assert!(l.starts_with("Supermicro (IANA 10876) product 0x1234 device 0x51 rev 3 · firmware 5.27 · IPMI 2.0"), "{l}");
        assert!(
            l.contains("LAN channel 1: 192.0.2.10 mask - gw - (static) MAC - VLAN off"),
            "{l}"
        );
    }

    #[test]
    fn a_bmc_without_channel_info_is_asked_once() {
        // QEMU 7.2's simulator: Get Device ID only.
        let mut answers = HashMap::new();
        answers.insert((6, 1, vec![]), QEMU_DEVICE_ID.to_vec());
        let mut t = Canned {
            answers,
            default: Ok(vec![0xc1]),
            sent: 0,
        };
        let mut b = Bmc::default();
        query(&mut t, &mut b, BUDGET);
        assert_eq!(t.sent, 2);
        assert!(b.device_id.is_some());
        assert_eq!(
            b.notes,
            ["Get Channel Info: completion code 0xc1 (invalid command (not supported)): LAN configuration unknown"]
        );
    }

    #[test]
    fn a_silent_bmc_ends_the_query_at_the_first_timeout() {
        let mut t = Canned {
            answers: HashMap::new(),
            default: Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no response within 3 s",
            )),
            sent: 0,
        };
        let mut b = Bmc::default();
        query(&mut t, &mut b, BUDGET);
        assert_eq!(t.sent, 1);
        assert_eq!(b.notes, ["Get Device ID: no response within 3 s"]);
        assert_eq!(b.device_id, None);
        // A spent budget stops before the first command.
        let mut b = Bmc::default();
        query(&mut t, &mut b, Duration::ZERO);
        assert_eq!(t.sent, 1);
        assert!(b.notes[0].starts_with("BMC query stopped after 0 s before Get Device ID"));
    }

    #[test]
    fn no_device_is_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let b = collect(&Root::new(dir.path()));
        assert_eq!(
            b.notes,
            ["no BMC found (no /dev/ipmi0 and no SMBIOS IPMI device record)"]
        );
        assert_eq!(b.device, None);
        assert_eq!(line(&b), "none");
    }
}
