//! SMBIOS table parsing: the entry point (`_SM_` 2.x or `_SM3_` 3.x) and the
//! structure table the kernel exports in /sys/firmware/dmi/tables, and the
//! decoding of type 17 (Memory Device), type 16 (Physical Memory Array)
//! and type 38 (IPMI Device Information).
//! Pure functions over bytes; offsets are those of DMTF DSP0134.

use serde::Serialize;

/// SMBIOS version from the entry point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub major: u8,
    pub minor: u8,
}

/// Parse the entry point: the version, and the table length it declares.
pub fn entry_point(ep: &[u8]) -> Option<(Version, usize)> {
    if ep.len() >= 0x18 && &ep[..5] == b"_SM3_" {
        let len = u32::from_le_bytes(ep[0x0c..0x10].try_into().ok()?) as usize;
        return Some((
            Version {
                major: ep[7],
                minor: ep[8],
            },
            len,
        ));
    }
    if ep.len() >= 0x1f && &ep[..4] == b"_SM_" {
        let len = u16::from_le_bytes([ep[0x16], ep[0x17]]) as usize;
        return Some((
            Version {
                major: ep[6],
                minor: ep[7],
            },
            len,
        ));
    }
    None
}

/// One structure: its formatted area and its strings.
#[derive(Debug, Clone)]
pub struct Structure<'a> {
    pub kind: u8,
    pub handle: u16,
    pub data: &'a [u8],
    pub strings: Vec<&'a [u8]>,
}

impl Structure<'_> {
    pub fn byte(&self, off: usize) -> Option<u8> {
        self.data.get(off).copied()
    }
    pub fn word(&self, off: usize) -> Option<u16> {
        Some(u16::from_le_bytes([
            *self.data.get(off)?,
            *self.data.get(off + 1)?,
        ]))
    }
    pub fn dword(&self, off: usize) -> Option<u32> {
        Some(u32::from_le_bytes(
            self.data.get(off..off + 4)?.try_into().ok()?,
        ))
    }
    /// The string a byte at `off` points to (1-based; 0 is "none"),
    /// trimmed; `None` when empty.
    pub fn string(&self, off: usize) -> Option<String> {
        let i = self.byte(off)? as usize;
        let s = self.strings.get(i.checked_sub(1)?)?;
        let s = String::from_utf8_lossy(s).trim().to_string();
        (!s.is_empty()).then_some(s)
    }
}

/// Split a structure table into structures, stopping at type 127 (end of
/// table) or at the first truncated structure.
pub fn structures(table: &[u8]) -> Vec<Structure<'_>> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 4 <= table.len() {
        let kind = table[pos];
        let len = table[pos + 1] as usize;
        if len < 4 || pos + len > table.len() {
            break;
        }
        let handle = u16::from_le_bytes([table[pos + 2], table[pos + 3]]);
        let data = &table[pos..pos + len];
        // The string set ends with two NULs (just two when there are none).
        let mut p = pos + len;
        let mut strings = Vec::new();
        loop {
            let Some(nul) = table[p..].iter().position(|&b| b == 0) else {
                return out;
            };
            if nul == 0 {
                p += 1;
                if strings.is_empty() {
                    // An empty set is "\0\0".
                    if table.get(p) == Some(&0) {
                        p += 1;
                    }
                }
                break;
            }
            strings.push(&table[p..p + nul]);
            p += nul + 1;
        }
        out.push(Structure {
            kind,
            handle,
            data,
            strings,
        });
        if kind == 127 {
            break;
        }
        pos = p;
    }
    out
}

/// One memory device (slot), from a type 17 structure.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Dimm {
    pub locator: Option<String>,
    pub bank_locator: Option<String>,
    /// `null` for an empty slot or an unknown size.
    pub size_bytes: Option<u64>,
    /// DDR4, DDR5, ... (memory type).
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub form_factor: Option<String>,
    /// Maximum rated speed, MT/s.
    pub speed_mts: Option<u32>,
    /// Speed it is configured to run at, MT/s.
    pub configured_speed_mts: Option<u32>,
    pub manufacturer: Option<String>,
    pub serial: Option<String>,
    pub part_number: Option<String>,
    pub asset_tag: Option<String>,
    pub rank: Option<u8>,
    /// Bits; `total_width` > `data_width` means ECC bits.
    pub data_width: Option<u16>,
    pub total_width: Option<u16>,
}

const MEMORY_TYPES: &[&str] = &[
    "Other",
    "Unknown",
    "DRAM",
    "EDRAM",
    "VRAM",
    "SRAM",
    "RAM",
    "ROM",
    "Flash",
    "EEPROM",
    "FEPROM",
    "EPROM",
    "CDRAM",
    "3DRAM",
    "SDRAM",
    "SGRAM",
    "RDRAM",
    "DDR",
    "DDR2",
    "DDR2 FB-DIMM",
    "Reserved",
    "Reserved",
    "Reserved",
    "DDR3",
    "FBD2",
    "DDR4",
    "LPDDR",
    "LPDDR2",
    "LPDDR3",
    "LPDDR4",
    "Logical non-volatile device",
    "HBM",
    "HBM2",
    "DDR5",
    "LPDDR5",
    "HBM3",
];

const FORM_FACTORS: &[&str] = &[
    "Other",
    "Unknown",
    "SIMM",
    "SIP",
    "Chip",
    "DIP",
    "ZIP",
    "Proprietary Card",
    "DIMM",
    "TSOP",
    "Row Of Chips",
    "RIMM",
    "SODIMM",
    "SRIMM",
    "FB-DIMM",
    "Die",
];

fn table_name(t: &[&str], v: u8) -> Option<String> {
    let s = t.get((v as usize).checked_sub(1)?)?;
    Some(s.to_string())
}

/// Memory strings firmware uses for "nothing here".
fn real(s: Option<String>) -> Option<String> {
    let s = s?;
    let l = s.to_ascii_lowercase();
    let junk = [
        "not specified",
        "unknown",
        "none",
        "n/a",
        "no dimm",
        "not installed",
        "empty",
        "0000000000000000",
        "00000000",
    ];
    (!junk.contains(&l.as_str()) && !l.starts_with("[empty]")).then_some(s)
}

/// Decode a type 17 structure. `None` if it is not one.
pub fn dimm(s: &Structure) -> Option<Dimm> {
    if s.kind != 17 || s.data.len() < 0x15 {
        return None;
    }
    let size = match s.word(0x0c)? {
        0 | 0xffff => None,
        0x7fff => s
            .dword(0x1c)
            .map(|mb| (mb & 0x7fff_ffff) as u64 * 1024 * 1024),
        w if w & 0x8000 != 0 => Some((w & 0x7fff) as u64 * 1024),
        w => Some(w as u64 * 1024 * 1024),
    };
    // A speed of 0xffff means "see the 32-bit extended field" (3.3+).
    let speed = |off: usize, ext: usize| -> Option<u32> {
        match s.word(off)? {
            0 => None,
            0xffff => s.dword(ext).filter(|&v| v != 0).map(|v| v & 0x7fff_ffff),
            v => Some(v as u32),
        }
    };
    let width = |off| s.word(off).filter(|&w| w != 0 && w != 0xffff);
    Some(Dimm {
        locator: s.string(0x10),
        bank_locator: s.string(0x11),
        size_bytes: size,
        kind: s.byte(0x12).and_then(|t| table_name(MEMORY_TYPES, t)),
        form_factor: s.byte(0x0e).and_then(|t| table_name(FORM_FACTORS, t)),
        speed_mts: speed(0x15, 0x54),
        configured_speed_mts: speed(0x20, 0x58),
        manufacturer: real(s.string(0x17)),
        serial: real(s.string(0x18)),
        part_number: real(s.string(0x1a)),
        asset_tag: real(s.string(0x19)),
        rank: s.byte(0x1b).map(|r| r & 0x0f).filter(|&r| r != 0),
        data_width: width(0x0a),
        total_width: width(0x08),
    })
}

/// Error correction of a type 16 (Physical Memory Array) structure used
/// for system memory (location/use aside, any array reports it).
pub fn ecc(s: &Structure) -> Option<String> {
    if s.kind != 16 || s.byte(0x05)? != 0x03 {
        return None;
    }
    let names = [
        "Other",
        "Unknown",
        "None",
        "Parity",
        "Single-bit ECC",
        "Multi-bit ECC",
        "CRC",
    ];
    table_name(&names, s.byte(0x06)?)
}

/// What SMBIOS type 38 (IPMI Device Information) says of the BMC's
/// system interface.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct IpmiDevice {
    /// KCS, SMIC, BT or SSIF (`unknown (N)` otherwise).
    pub interface_type: String,
    /// The IPMI specification revision the BMC implements, e.g. `2.0`.
    pub spec_version: String,
    /// The interface's base address, hex (`0xca2`); for SSIF the SMBus
    /// address.
    pub base_address: String,
    /// `io` or `memory` (`null` for SSIF, which has no address space).
    pub address_space: Option<&'static str>,
    /// The BMC's I2C target address on the IPMB, hex.
    pub i2c_address: String,
    /// The interrupt, when the interface has one.
    pub interrupt: Option<u8>,
}

/// Decode a type 38 structure. `None` if it is not one or is too short.
pub fn ipmi_device(s: &Structure) -> Option<IpmiDevice> {
    if s.kind != 38 || s.data.len() < 0x10 {
        return None;
    }
    let kind = s.byte(0x04)?;
    let interface_type = match kind {
        1 => "KCS".to_string(),
        2 => "SMIC".to_string(),
        3 => "BT".to_string(),
        4 => "SSIF".to_string(),
        n => format!("unknown ({n})"),
    };
    let rev = s.byte(0x05)?;
    let raw = u64::from_le_bytes(s.data.get(0x08..0x10)?.try_into().ok()?);
    // Byte 0x10 (2.3+): bit 4 is the address's least significant bit.
    let modifier = s.byte(0x10);
    let (base, space) = if kind == 4 {
        (raw, None)
    } else {
        let lsb = modifier.map(|m| ((m >> 4) & 1) as u64).unwrap_or(0);
        let space = if raw & 1 == 1 { "io" } else { "memory" };
        ((raw & !1) | lsb, Some(space))
    };
    Some(IpmiDevice {
        interface_type,
        spec_version: format!("{}.{}", rev >> 4, rev & 0x0f),
        base_address: format!("{base:#x}"),
        address_space: space,
        i2c_address: format!("{:#04x}", s.byte(0x06)?),
        interrupt: s.byte(0x11).filter(|&i| i != 0),
    })
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// Build one structure: formatted area (type, len, handle included) then
    /// strings.
    pub fn structure(kind: u8, handle: u16, body: &[u8], strings: &[&str]) -> Vec<u8> {
        let mut v = vec![kind, (4 + body.len()) as u8];
        v.extend(handle.to_le_bytes());
        v.extend(body);
        if strings.is_empty() {
            v.extend([0, 0]);
        } else {
            for s in strings {
                v.extend(s.as_bytes());
                v.push(0);
            }
            v.push(0);
        }
        v
    }

    /// A type 17 body (bytes 0x04..0x5c) for a DIMM.
    pub fn type17(size_word: u16, ext_mb: u32, mem_type: u8, speed: u16, cfg: u16) -> Vec<u8> {
        let mut b = vec![0u8; 0x5c - 4];
        let mut put = |off: usize, bytes: &[u8]| {
            b[off - 4..off - 4 + bytes.len()].copy_from_slice(bytes);
        };
        put(0x04, &0x1000u16.to_le_bytes());
        put(0x06, &0xfffeu16.to_le_bytes());
        put(0x08, &72u16.to_le_bytes());
        put(0x0a, &64u16.to_le_bytes());
        put(0x0c, &size_word.to_le_bytes());
        put(0x0e, &[0x09]); // DIMM
        put(0x10, &[1, 2]); // locator, bank locator strings
        put(0x12, &[mem_type]);
        put(0x15, &speed.to_le_bytes());
        put(0x17, &[3, 4, 0, 5]); // manufacturer, serial, asset (none), part
        put(0x1b, &[2]); // rank 2
        put(0x1c, &ext_mb.to_le_bytes());
        put(0x20, &cfg.to_le_bytes());
        b
    }

    #[test]
    fn entry_points() {
        let mut ep3 = vec![0u8; 0x18];
        ep3[..5].copy_from_slice(b"_SM3_");
        ep3[7] = 3;
        ep3[8] = 4;
        ep3[0x0c..0x10].copy_from_slice(&1234u32.to_le_bytes());
        assert_eq!(
            entry_point(&ep3),
            Some((Version { major: 3, minor: 4 }, 1234))
        );
        let mut ep2 = vec![0u8; 0x1f];
        ep2[..4].copy_from_slice(b"_SM_");
        ep2[6] = 2;
        ep2[7] = 8;
        ep2[0x16..0x18].copy_from_slice(&300u16.to_le_bytes());
        assert_eq!(
            entry_point(&ep2),
            Some((Version { major: 2, minor: 8 }, 300))
        );
        assert_eq!(entry_point(b"junk"), None);
    }

    #[test]
    fn type17_decoding() {
        let mut t = Vec::new();
        t.extend(structure(0, 0, &[1, 2], &["Vendor", "1.0"]));
        t.extend(structure(
            17,
            0x11,
            &type17(0x7fff, 65536, 0x22, 0xffff, 4800),
            &[
                "DIMM A1",
                "P0 CHANNEL A",
                "Samsung",
                "  S123  ",
                "M321R8GA0BB0-CQK",
            ],
        ));
        // 16 GiB in MB, DDR4 3200.
        t.extend(structure(
            17,
            0x12,
            &type17(16384, 0, 0x1a, 3200, 2933),
            &["DIMM B1", "BANK 1", "Micron", "ABC", "Part"],
        ));
        // Empty slot.
        t.extend(structure(
            17,
            0x13,
            &type17(0, 0, 0x02, 0, 0),
            &["DIMM C1", "BANK 2", "NO DIMM", "NO DIMM", "NO DIMM"],
        ));
        // 512 KiB in KB units.
        t.extend(structure(
            17,
            0x14,
            &type17(0x8200, 0, 0x18, 1600, 0),
            &["X", "Y", "Z", "S", "P"],
        ));
        t.extend(structure(127, 0xffff, &[], &[]));
        let s = structures(&t);
        assert_eq!(s.len(), 6);
        let d: Vec<Dimm> = s.iter().filter_map(dimm).collect();
        assert_eq!(d.len(), 4);
        assert_eq!(d[0].locator.as_deref(), Some("DIMM A1"));
        assert_eq!(d[0].bank_locator.as_deref(), Some("P0 CHANNEL A"));
        assert_eq!(d[0].size_bytes, Some(64 << 30));
        assert_eq!(d[0].kind.as_deref(), Some("DDR5"));
        // speed 0xffff → extended field, which is 0 here → unknown.
        assert_eq!(d[0].speed_mts, None);
        assert_eq!(d[0].configured_speed_mts, Some(4800));
        assert_eq!(d[0].serial.as_deref(), Some("S123"));
        assert_eq!(d[0].part_number.as_deref(), Some("M321R8GA0BB0-CQK"));
        assert_eq!(d[0].asset_tag, None);
        assert_eq!(d[0].rank, Some(2));
        assert_eq!(d[0].form_factor.as_deref(), Some("DIMM"));
        assert_eq!((d[0].data_width, d[0].total_width), (Some(64), Some(72)));
        assert_eq!(d[1].size_bytes, Some(16 << 30));
        assert_eq!(d[1].kind.as_deref(), Some("DDR4"));
        assert_eq!(d[1].speed_mts, Some(3200));
        assert_eq!(d[2].size_bytes, None);
        assert_eq!(d[2].manufacturer, None);
        assert_eq!(d[3].size_bytes, Some(512 * 1024));
        assert_eq!(d[3].kind.as_deref(), Some("DDR3"));
    }

    #[test]
    fn type38_decoding() {
        // QEMU's isa-ipmi-kcs: KCS at I/O 0xca2, IPMI 2.0, target 0x20.
        let mut body = vec![0x01, 0x20, 0x20, 0xff];
        body.extend(0xca3u64.to_le_bytes());
        body.extend([0x00, 0x05]);
        let t = structure(38, 0x2600, &body, &[]);
        let st = structures(&t);
        let d = ipmi_device(&st[0]).unwrap();
        assert_eq!(
            d,
            IpmiDevice {
                interface_type: "KCS".into(),
                spec_version: "2.0".into(),
                base_address: "0xca2".into(),
                address_space: Some("io"),
                i2c_address: "0x20".into(),
                interrupt: Some(5),
            }
        );
        // Bit 4 of the modifier is the address's low bit; memory space.
        let mut body = vec![0x03, 0x15, 0x20, 0xff];
        body.extend(0xfed4_0000u64.to_le_bytes());
        body.extend([0x10, 0x00]);
        let d = ipmi_device(&structures(&structure(38, 1, &body, &[]))[0]).unwrap();
        assert_eq!(d.interface_type, "BT");
        assert_eq!(d.spec_version, "1.5");
        assert_eq!(d.base_address, "0xfed40001");
        assert_eq!(d.address_space, Some("memory"));
        assert_eq!(d.interrupt, None);
        // SSIF: an SMBus address, no address space; an old 0x10-byte record.
        let mut body = vec![0x04, 0x20, 0x20, 0xff];
        body.extend(0x10u64.to_le_bytes());
        let d = ipmi_device(&structures(&structure(38, 1, &body, &[]))[0]).unwrap();
        assert_eq!((d.base_address.as_str(), d.address_space), ("0x10", None));
        // Short, or another type: nothing, no panic.
        let short = structure(38, 1, &[0x01, 0x20], &[]);
        assert_eq!(ipmi_device(&structures(&short)[0]), None);
        let other = structure(17, 1, &body, &[]);
        assert_eq!(ipmi_device(&structures(&other)[0]), None);
    }

    #[test]
    fn truncated_table_stops() {
        let mut t = structure(17, 1, &type17(1024, 0, 0x1a, 0, 0), &["A"]);
        t.truncate(t.len() - 1);
        assert!(structures(&t).is_empty());
        assert!(structures(&[17, 2]).is_empty());
    }
}
