//! pci.ids lookups that give the same names `lspci` prints.
//!
//! The file (~1.4 MB) is read once and indexed in one pass over its bytes:
//! only the offsets of top-level blocks (vendors, classes, generic subsystem
//! blocks) are recorded. Device, subsystem, subclass and prog-if names are
//! found on demand by scanning the one small block they live in.
//!
//! The parsing rules follow the pci.ids format as pciutils reads it: a line
//! ends at `\n` or `\r`; one trailing blank is dropped; lines that are empty
//! or start (after blanks) with `#` are skipped; nesting is the count of
//! leading tabs; `C xx` opens a class block, `S xxxx` a generic subsystem
//! block, any other `X ` (capital letter, space) a block that is skipped;
//! a name is what follows the id and its separating blanks. The fallbacks
//! (`Device 1234`, `Unknown vendor 1234`, `Class ff00`, a base-class name with
//! `[xxxx]`) are the ones lspci prints.

use anyhow::{Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where distributions install pci.ids, in the order lspci's packages use.
pub const DEFAULT_PATHS: &[&str] = &[
    "/usr/share/hwdata/pci.ids",
    "/usr/share/misc/pci.ids",
    "/usr/share/pci.ids",
];

/// An indexed pci.ids. Lookups return `None` where lspci would fall back.
#[derive(Debug, Default)]
pub struct PciIds {
    text: Vec<u8>,
    /// vendor id → byte range of its nested lines (after the vendor line).
    vendors: HashMap<u16, Block>,
    /// class id → byte range of its nested lines.
    classes: HashMap<u8, Block>,
    /// generic subsystem vendor (`S xxxx`) → byte range of its lines.
    gen_subsys: HashMap<u16, Block>,
    /// The file that was read, for the report.
    pub path: Option<PathBuf>,
}

/// A top-level entry: its name and the range of its nested lines.
#[derive(Debug, Clone, Copy)]
struct Block {
    name: (usize, usize),
    body: (usize, usize),
}

/// One meaningful line: nesting depth and the text after the tabs, with the
/// trailing blank already dropped.
struct Line<'a> {
    nest: usize,
    text: &'a [u8],
    /// Offset of the first byte after this line's terminator.
    end: usize,
    /// Offset of `text` in the file.
    start: usize,
}

/// The line `bytes[start..end]` (without its `\n`), if meaningful. Like
/// pciutils, a `\r` ends the line's text and one trailing blank is
/// dropped.
fn line_at(bytes: &[u8], start: usize, end: usize) -> Option<Line<'_>> {
    let mut line = &bytes[start..end];
    if let Some(cr) = memchr::memchr(b'\r', line) {
        line = &line[..cr];
    }
    if let Some(&last) = line.last() {
        if last == b' ' || last == b'\t' {
            line = &line[..line.len() - 1];
        }
    }
    let first = line.iter().position(|&c| c != b' ' && c != b'\t')?;
    if line[first] == b'#' {
        return None;
    }
    let nest = line.iter().take_while(|&&c| c == b'\t').count();
    Some(Line {
        nest,
        text: &line[nest..],
        end: (end + 1).min(bytes.len()),
        start: start + nest,
    })
}

/// Iterate the meaningful lines of `bytes[from..to]`.
fn lines(bytes: &[u8], from: usize, to: usize) -> impl Iterator<Item = Line<'_>> {
    let mut pos = from;
    std::iter::from_fn(move || {
        while pos < to {
            let start = pos;
            let end = memchr::memchr(b'\n', &bytes[start..to]).map_or(to, |i| start + i);
            pos = end + 1;
            if let Some(l) = line_at(bytes, start, end) {
                return Some(l);
            }
        }
        None
    })
}

fn hex(s: &[u8]) -> Option<u32> {
    if s.is_empty() {
        return None;
    }
    let mut v = 0u32;
    for &c in s {
        v = (v << 4) | (c as char).to_digit(16)?;
    }
    Some(v)
}

fn is_blank(c: Option<&u8>) -> bool {
    matches!(c, Some(b' ') | Some(b'\t'))
}

/// Parse `<id of n hex digits><blank>+<name>`; returns (id, name offset in
/// `text`).
fn id_and_name(text: &[u8], n: usize) -> Option<(u32, usize)> {
    if text.len() <= n || !is_blank(text.get(n)) {
        return None;
    }
    let id = hex(&text[..n])?;
    let mut i = n;
    while is_blank(text.get(i)) {
        i += 1;
    }
    (i < text.len()).then_some((id, i))
}

impl PciIds {
    /// Read and index the first file that exists: `explicit` when given
    /// (an error if it cannot be read), else the usual locations. pci.ids
    /// is data of this system's packages, not of the inspected machine, so
    /// it is not looked up under the `--root` of a fixture tree.
    pub fn load(explicit: Option<&Path>) -> Result<PciIds> {
        if let Some(p) = explicit {
            let text = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            let mut ids = PciIds::parse(text);
            ids.path = Some(p.to_path_buf());
            return Ok(ids);
        }
        for p in DEFAULT_PATHS {
            if let Ok(text) = std::fs::read(p) {
                let mut ids = PciIds::parse(text);
                ids.path = Some(PathBuf::from(p));
                return Ok(ids);
            }
        }
        Ok(PciIds::default())
    }

    /// Index `text` (the whole file). Malformed lines are skipped rather
    /// than failing the inventory; the first of duplicate entries wins.
    pub fn parse(text: Vec<u8>) -> PciIds {
        #[derive(Clone, Copy)]
        enum Cur {
            None,
            Vendor(u16),
            Class(u8),
            GenSub(u16),
        }
        let mut ids = PciIds {
            text: Vec::new(),
            ..Default::default()
        };
        let mut cur = Cur::None;
        let mut cur_name = (0, 0);
        let mut body_start = 0;
        let close = |ids: &mut PciIds, cur: Cur, name, start, end| {
            let b = Block {
                name,
                body: (start, end),
            };
            match cur {
                Cur::None => {}
                Cur::Vendor(v) => {
                    ids.vendors.entry(v).or_insert(b);
                }
                Cur::Class(c) => {
                    ids.classes.entry(c).or_insert(b);
                }
                Cur::GenSub(v) => {
                    ids.gen_subsys.entry(v).or_insert(b);
                }
            }
        };
        // Nested lines (most of the file) start with a tab: skip them after
        // one byte; only top-level lines are parsed.
        let starts = std::iter::once(0).chain(memchr::memchr_iter(b'\n', &text).map(|i| i + 1));
        for start in starts {
            if start >= text.len() || text[start] == b'\t' {
                continue;
            }
            let end = memchr::memchr(b'\n', &text[start..]).map_or(text.len(), |i| start + i);
            let Some(line) = line_at(&text, start, end) else {
                continue;
            };
            if line.nest != 0 {
                continue;
            }
            close(&mut ids, cur, cur_name, body_start, line.start);
            body_start = line.end;
            let t = line.text;
            cur = Cur::None;
            if t.len() >= 2 && t[0] == b'C' && t[1] == b' ' {
                if let Some((id, n)) = id_and_name(&t[2..], 2) {
                    cur = Cur::Class(id as u8);
                    cur_name = (line.start + 2 + n, line.start + t.len());
                }
            } else if t.len() >= 2 && t[0] == b'S' && t[1] == b' ' {
                if t.len() == 6 {
                    if let Some(id) = hex(&t[2..6]) {
                        cur = Cur::GenSub(id as u16);
                        cur_name = (0, 0);
                    }
                }
            } else if t.len() >= 2 && t[0].is_ascii_uppercase() && t[1] == b' ' {
                // A block pciutils does not know: skipped with its lines.
            } else if let Some((id, n)) = id_and_name(t, 4) {
                cur = Cur::Vendor(id as u16);
                cur_name = (line.start + n, line.start + t.len());
            }
        }
        close(&mut ids, cur, cur_name, body_start, text.len());
        ids.text = text;
        ids
    }

    /// True when no pci.ids was found: every name is a fallback.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    fn str_at(&self, (a, b): (usize, usize)) -> String {
        String::from_utf8_lossy(&self.text[a..b]).into_owned()
    }

    /// Find a nested entry in `block`: at `nest`, with an id of `n` hex
    /// digits equal to `id`, under the `parent` entry at nest-1 (when given).
    fn find(
        &self,
        block: Block,
        parent: Option<(usize, usize, u32)>,
        nest: usize,
        n: usize,
        id: u32,
    ) -> Option<String> {
        let mut in_parent = parent.is_none();
        for l in lines(&self.text, block.body.0, block.body.1) {
            if let Some((pnest, pn, pid)) = parent {
                if l.nest == pnest {
                    if in_parent {
                        // Left the parent's block without a match.
                        return None;
                    }
                    in_parent = id_and_name(l.text, pn).is_some_and(|(v, _)| v == pid);
                    continue;
                }
            }
            if in_parent && l.nest == nest {
                if let Some((v, off)) = id_and_name(l.text, n) {
                    if v == id {
                        return Some(self.str_at((l.start + off, l.start + l.text.len())));
                    }
                }
            }
        }
        None
    }

    fn find_sub(&self, block: Block, dev: u16, sv: u16, sd: u16) -> Option<String> {
        let mut in_dev = false;
        for l in lines(&self.text, block.body.0, block.body.1) {
            if l.nest == 1 {
                if in_dev {
                    return None;
                }
                in_dev = id_and_name(l.text, 4).is_some_and(|(v, _)| v == dev as u32);
            } else if in_dev && l.nest == 2 {
                let t = l.text;
                if t.len() > 10 && is_blank(t.get(4)) && is_blank(t.get(9)) {
                    let (Some(a), Some(b)) = (hex(&t[..4]), hex(&t[5..9])) else {
                        continue;
                    };
                    if a == sv as u32 && b == sd as u32 {
                        let mut i = 10;
                        while is_blank(t.get(i)) {
                            i += 1;
                        }
                        if i < t.len() {
                            return Some(self.str_at((l.start + i, l.start + t.len())));
                        }
                    }
                }
            }
        }
        None
    }

    pub fn vendor_name(&self, v: u16) -> Option<String> {
        self.vendors.get(&v).map(|b| self.str_at(b.name))
    }

    pub fn device_name(&self, v: u16, d: u16) -> Option<String> {
        let b = *self.vendors.get(&v)?;
        self.find(b, None, 1, 4, d as u32)
    }

    /// The subsystem name as lspci finds it: the entry under the device,
    /// else a generic subsystem entry, else the device's own name when the
    /// subsystem ids equal the device ids.
    pub fn subsystem_name(&self, v: u16, d: u16, sv: u16, sd: u16) -> Option<String> {
        let per_device = if v > 0 && d > 0 {
            self.vendors
                .get(&v)
                .and_then(|b| self.find_sub(*b, d, sv, sd))
        } else {
            None
        };
        per_device
            .or_else(|| {
                let b = *self.gen_subsys.get(&sv)?;
                self.find(b, None, 1, 4, sd as u32)
            })
            .or_else(|| {
                if v == sv && d == sd {
                    self.device_name(v, d)
                } else {
                    None
                }
            })
    }

    pub fn class_name(&self, c: u8) -> Option<String> {
        self.classes.get(&c).map(|b| self.str_at(b.name))
    }

    pub fn subclass_name(&self, c: u8, s: u8) -> Option<String> {
        let b = *self.classes.get(&c)?;
        self.find(b, None, 1, 2, s as u32)
    }

    pub fn prog_if_name(&self, c: u8, s: u8, p: u8) -> Option<String> {
        let b = *self.classes.get(&c)?;
        self.find(b, Some((1, 2, s as u32)), 2, 2, p as u32)
    }

    // The strings lspci prints (without -n), fallbacks included.

    /// lspci's vendor column: the name, or `Vendor 1234`.
    pub fn lspci_vendor(&self, v: u16) -> String {
        self.vendor_name(v)
            .unwrap_or_else(|| format!("Vendor {v:04x}"))
    }

    /// lspci's device column: the name, or `Device 1234`.
    pub fn lspci_device(&self, v: u16, d: u16) -> String {
        self.device_name(v, d)
            .unwrap_or_else(|| format!("Device {d:04x}"))
    }

    /// lspci's subsystem vendor column: the name, or `Unknown vendor 1234`.
    pub fn lspci_subsystem_vendor(&self, sv: u16) -> String {
        self.vendor_name(sv)
            .unwrap_or_else(|| format!("Unknown vendor {sv:04x}"))
    }

    /// lspci's subsystem device column: the name, or `Device 1234`.
    pub fn lspci_subsystem_device(&self, v: u16, d: u16, sv: u16, sd: u16) -> String {
        self.subsystem_name(v, d, sv, sd)
            .unwrap_or_else(|| format!("Device {sd:04x}"))
    }

    /// lspci's class column for a 16-bit class (base << 8 | sub): the
    /// subclass name; else the base class name followed by ` [xxxx]`; else
    /// `Class xxxx`.
    pub fn lspci_class(&self, class16: u16) -> String {
        let (c, s) = ((class16 >> 8) as u8, class16 as u8);
        if let Some(n) = self.subclass_name(c, s) {
            return n;
        }
        match self.class_name(c) {
            Some(n) => format!("{n} [{class16:04x}]"),
            None => format!("Class {class16:04x}"),
        }
    }

    /// lspci's terse `vendor device` pair: `V D`, `V Device 1234` or
    /// `Device 1234:5678`.
    pub fn lspci_pair(&self, v: u16, d: u16) -> String {
        match (self.vendor_name(v), self.device_name(v, d)) {
            (Some(vn), Some(dn)) => format!("{vn} {dn}"),
            (Some(vn), None) => format!("{vn} Device {d:04x}"),
            (None, _) => format!("Device {v:04x}:{d:04x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
# comment line
#\tanother
1234  Acme Corp
\t0001  Widget
\t\t1234 0001  Widget (own subsystem)
\t\t5678 00aa  Widget for Other
\t0002  Gadget\x20
\t# comment inside
\t0003\tTabbed name
5678  Other Inc.\r
\t00ff  Thing\r
X 12  Unknown block
\t0001  skipped
S 5678
\t0bbb  Generic sub
C 01  Mass storage controller
\t06  SATA controller
\t\t01  AHCI 1.0
\t08  Non-Volatile memory controller
\t\t02  NVM Express
C 06  Bridge
\t00  Host bridge
C ff  Unassigned class
";

    fn ids() -> PciIds {
        PciIds::parse(SAMPLE.as_bytes().to_vec())
    }

    #[test]
    fn names_and_fallbacks() {
        let ids = ids();
        let t = [
            (ids.lspci_vendor(0x1234), "Acme Corp"),
            (ids.lspci_vendor(0x9999), "Vendor 9999"),
            (ids.lspci_device(0x1234, 1), "Widget"),
            (ids.lspci_device(0x1234, 2), "Gadget"),
            (ids.lspci_device(0x1234, 3), "Tabbed name"),
            (ids.lspci_device(0x1234, 9), "Device 0009"),
            (ids.lspci_device(0x9999, 1), "Device 0001"),
            (ids.lspci_device(0x5678, 0xff), "Thing"),
            (ids.lspci_subsystem_vendor(0x5678), "Other Inc."),
            (ids.lspci_subsystem_vendor(0xabcd), "Unknown vendor abcd"),
            (
                ids.lspci_subsystem_device(0x1234, 1, 0x1234, 1),
                "Widget (own subsystem)",
            ),
            (
                ids.lspci_subsystem_device(0x1234, 1, 0x5678, 0xaa),
                "Widget for Other",
            ),
            // Not under the device: the generic S block.
            (
                ids.lspci_subsystem_device(0x1234, 1, 0x5678, 0xbbb),
                "Generic sub",
            ),
            // Subsystem equals device: the device's name.
            (ids.lspci_subsystem_device(0x1234, 2, 0x1234, 2), "Gadget"),
            // Entries under another device do not match.
            (
                ids.lspci_subsystem_device(0x1234, 2, 0x5678, 0xaa),
                "Device 00aa",
            ),
            (ids.lspci_class(0x0106), "SATA controller"),
            (ids.lspci_class(0x0600), "Host bridge"),
            (ids.lspci_class(0x0680), "Bridge [0680]"),
            (ids.lspci_class(0xffff), "Unassigned class [ffff]"),
            (ids.lspci_class(0x1234), "Class 1234"),
            (ids.lspci_pair(0x1234, 1), "Acme Corp Widget"),
            (ids.lspci_pair(0x1234, 7), "Acme Corp Device 0007"),
            (ids.lspci_pair(0x4444, 7), "Device 4444:0007"),
        ];
        for (got, want) in t {
            assert_eq!(got, want);
        }
        assert_eq!(ids.prog_if_name(1, 6, 1).as_deref(), Some("AHCI 1.0"));
        assert_eq!(ids.prog_if_name(1, 8, 2).as_deref(), Some("NVM Express"));
        assert_eq!(ids.prog_if_name(1, 8, 1), None);
        assert_eq!(ids.prog_if_name(1, 6, 2), None);
        // The unknown X block and its lines are not a vendor 0001.
        assert_eq!(ids.device_name(0x5678, 1), None);
    }

    #[test]
    fn carriage_return_ends_the_text() {
        // pciutils reads to the newline and cuts at the first CR.
        let ids = PciIds::parse(b"1234  Acme\r\tjunk\n\t0001  W\rx\n".to_vec());
        assert_eq!(ids.vendor_name(0x1234).as_deref(), Some("Acme"));
        assert_eq!(ids.device_name(0x1234, 1).as_deref(), Some("W"));
    }

    #[test]
    fn real_pci_ids_if_installed() {
        let Ok(text) = std::fs::read("/usr/share/misc/pci.ids") else {
            return;
        };
        let t = std::time::Instant::now();
        let ids = PciIds::parse(text);
        crate::say!("indexed pci.ids in {:?}", t.elapsed());
        assert_eq!(
            ids.vendor_name(0x8086).as_deref(),
            Some("Intel Corporation")
        );
        assert_eq!(ids.vendor_name(0x1af4).as_deref(), Some("Red Hat, Inc."));
        assert_eq!(ids.lspci_class(0x0200), "Ethernet controller");
        assert_eq!(ids.lspci_class(0x0108), "Non-Volatile memory controller");
        assert_eq!(
            ids.prog_if_name(0x01, 0x08, 0x02).as_deref(),
            Some("NVM Express")
        );
        // The last vendor block ends at the class section.
        assert!(ids.vendors.len() > 2000, "{}", ids.vendors.len());
        assert!(ids.classes.len() > 15);
    }

    #[test]
    fn empty_file_gives_fallbacks() {
        let ids = PciIds::default();
        assert!(ids.is_empty());
        assert_eq!(ids.lspci_vendor(0x8086), "Vendor 8086");
        assert_eq!(ids.lspci_class(0x0200), "Class 0200");
    }
}
