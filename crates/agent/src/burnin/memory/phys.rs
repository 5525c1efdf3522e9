//! Where a bad word is in hardware: its physical address from
//! /proc/self/pagemap, and which DIMM's EDAC error counters rose during the
//! test. Both read under the `Root`; both say plainly when the kernel does
//! not tell (no root, no EDAC driver) instead of guessing.

use crate::root::Root;
use serde::Serialize;
use std::fs::File;
use std::os::unix::fs::FileExt;

pub const PAGEMAP: &str = "/proc/self/pagemap";
pub const EDAC: &str = "/sys/devices/system/edac/mc";

/// The physical address of virtual address `vaddr` of this process, from
/// its pagemap entry (one little-endian u64 per page: bit 63 present, bits
/// 0-54 the page frame number). `Err` says why it cannot be given.
pub fn physical_address(pagemap: &File, vaddr: u64, page_size: u64) -> Result<u64, String> {
    let mut entry = [0u8; 8];
    pagemap
        .read_exact_at(&mut entry, vaddr / page_size * 8)
        .map_err(|e| format!("reading {PAGEMAP}: {e}"))?;
    decode(u64::from_le_bytes(entry), vaddr, page_size)
}

/// The physical address in a pagemap entry, or why there is none.
pub fn decode(entry: u64, vaddr: u64, page_size: u64) -> Result<u64, String> {
    if entry >> 63 & 1 == 0 {
        return Err(if entry >> 62 & 1 == 1 {
            "the page is swapped out".into()
        } else {
            "the page is not present".into()
        });
    }
    let pfn = entry & ((1 << 55) - 1);
    if pfn == 0 {
        return Err(format!(
            "{PAGEMAP} hides page frame numbers without CAP_SYS_ADMIN (run as root)"
        ));
    }
    Ok(pfn * page_size + vaddr % page_size)
}

/// Open this process's pagemap under `root`.
pub fn open_pagemap(root: &Root) -> Result<File, String> {
    let path = root.at(PAGEMAP);
    File::open(&path).map_err(|e| format!("opening {}: {e}", path.display()))
}

/// One DIMM's EDAC error counts at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DimmCount {
    /// `dimm_label` when the driver gives one, with `mc0/dimm1`.
    pub dimm: String,
    pub ce: Option<u64>,
    pub ue: Option<u64>,
}

/// The EDAC per-DIMM counters (`mc*/dimm*` or `mc*/rank*`), in order;
/// empty when there is no EDAC driver.
pub fn edac_snapshot(root: &Root) -> Vec<DimmCount> {
    let mut out = Vec::new();
    for mc in numbered(root, EDAC, "mc") {
        let mcdir = format!("{EDAC}/{mc}");
        let units: Vec<String> = numbered(root, &mcdir, "dimm")
            .into_iter()
            .chain(numbered(root, &mcdir, "rank"))
            .collect();
        for d in units {
            let dir = format!("{mcdir}/{d}");
            let read = |f: &str| crate::root::read_trim(&root.at(&format!("{dir}/{f}")));
            let place = format!("{mc}/{d}");
            let dimm = match read("dimm_label") {
                Some(l) if l != place => format!("{l} ({place})"),
                _ => place,
            };
            out.push(DimmCount {
                dimm,
                ce: read("dimm_ce_count").and_then(|s| s.parse().ok()),
                ue: read("dimm_ue_count").and_then(|s| s.parse().ok()),
            });
        }
    }
    out
}

/// `<prefix><n>` entries of a directory under the root, by number.
fn numbered(root: &Root, abs: &str, prefix: &str) -> Vec<String> {
    let mut v: Vec<(u64, String)> = crate::root::dir_names(&root.at(abs))
        .into_iter()
        .filter_map(|n| Some((n.strip_prefix(prefix)?.parse().ok()?, n)))
        .collect();
    v.sort();
    v.into_iter().map(|(_, n)| n).collect()
}

/// A DIMM whose counters rose between two snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DimmRise {
    pub dimm: String,
    pub ce_before: Option<u64>,
    pub ce_after: Option<u64>,
    pub ue_before: Option<u64>,
    pub ue_after: Option<u64>,
}

/// The DIMMs whose corrected or uncorrected count rose from `before` to
/// `after` (matched by name).
pub fn rises(before: &[DimmCount], after: &[DimmCount]) -> Vec<DimmRise> {
    let up = |a: Option<u64>, b: Option<u64>| matches!((a, b), (Some(a), Some(b)) if b > a);
    after
        .iter()
        .filter_map(|a| {
            let b = before.iter().find(|b| b.dimm == a.dimm)?;
            (up(b.ce, a.ce) || up(b.ue, a.ue)).then(|| DimmRise {
                dimm: a.dimm.clone(),
                ce_before: b.ce,
                ce_after: a.ce,
                ue_before: b.ue,
                ue_after: a.ue,
            })
        })
        .collect()
}

/// What the kernel says about where the errors are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DimmReport {
    /// DIMMs with EDAC counters (0: no EDAC driver, or no per-DIMM counts).
    pub edac_dimms: usize,
    /// DIMMs whose counters rose during the test.
    pub rose: Vec<DimmRise>,
    /// One line for people: the likely DIMM, or why none is named.
    pub note: String,
}

/// Judge the EDAC snapshots taken before and after a test that found
/// `mismatches` bad words.
pub fn dimm_report(before: &[DimmCount], after: &[DimmCount], mismatches: u64) -> DimmReport {
    let rose = rises(before, after);
    let names = || {
        rose.iter()
            .map(|r| r.dimm.clone())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let note = match (after.is_empty(), rose.is_empty(), mismatches > 0) {
        (true, _, true) => format!(
            "the kernel gave no DIMM mapping: no EDAC per-DIMM counters in {EDAC} \
             (no ECC, no EDAC driver for this platform, or a VM)"
        ),
        (false, true, true) => "the kernel gave no DIMM mapping: no EDAC counter rose during \
                                the test (the errors were not seen by ECC)"
            .into(),
        (_, false, true) => format!(
            "likely DIMM: {} (EDAC error counters rose during the test)",
            names()
        ),
        (_, false, false) => format!(
            "ECC corrected errors during the test on: {} (EDAC counters rose)",
            names()
        ),
        (true, _, false) => "no EDAC per-DIMM counters".into(),
        (false, true, false) => "no EDAC counter rose during the test".into(),
    };
    DimmReport {
        edac_dimms: after.len(),
        rose,
        note,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pagemap_entries_decode() {
        let present = 1u64 << 63;
        assert_eq!(
            decode(present | 0x1234, 0x7f00_0000_0abc, 4096),
            Ok(0x1234abc)
        );
        let e = decode(present, 0x1000, 4096).unwrap_err();
        assert!(e.contains("CAP_SYS_ADMIN"), "{e}");
        assert!(decode(0, 0, 4096).unwrap_err().contains("not present"));
        assert!(decode(1 << 62, 0, 4096).unwrap_err().contains("swapped"));
        // Flag bits 55-62 are not part of the frame number.
        assert_eq!(
            decode(present | 1 << 55 | 1 << 61 | 2, 5, 4096),
            Ok(8192 + 5)
        );
    }

    /// Our own pagemap: as root, a touched page has a frame; otherwise the
    /// reason names the capability.
    #[test]
    fn own_pagemap_gives_an_address_or_a_reason() {
        let v = vec![1u64; 1024];
        let f = open_pagemap(&Root::system()).unwrap();
        let page = crate::sys::mem::page_size();
        let addr = v.as_ptr() as u64;
        match physical_address(&f, addr, page) {
            Ok(pa) => assert_eq!(pa % page, addr % page),
            Err(why) => assert!(why.contains("CAP_SYS_ADMIN"), "{why}"),
        }
        let missing = open_pagemap(&Root::new("/nonexistent")).unwrap_err();
        assert!(
            missing.contains("/nonexistent/proc/self/pagemap"),
            "{missing}"
        );
    }

    fn dimm(tree: &std::path::Path, d: &str, label: &str, ce: u64, ue: u64) {
        let dir = Root::new(tree).at(&format!("/sys/devices/system/edac/mc/{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("dimm_label"), format!("{label}\n")).unwrap();
        std::fs::write(dir.join("dimm_ce_count"), format!("{ce}\n")).unwrap();
        std::fs::write(dir.join("dimm_ue_count"), format!("{ue}\n")).unwrap();
    }

    #[test]
    fn the_dimm_whose_counters_rose_is_named() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path());
        assert!(edac_snapshot(&root).is_empty());
        let none = dimm_report(&[], &[], 3);
        assert!(none.note.contains("no DIMM mapping"), "{}", none.note);
        dimm(
            t.path(),
            "mc0/dimm0",
            "CPU_SrcID#0_Ha#0_Chan#0_DIMM#0",
            0,
            0,
        );
        dimm(t.path(), "mc0/dimm1", "mc#0csrow#0channel#1", 2, 0);
        dimm(t.path(), "mc1/dimm10", "P2-DIMMA1", 0, 0);
        let before = edac_snapshot(&root);
        assert_eq!(
            before.iter().map(|d| d.dimm.as_str()).collect::<Vec<_>>(),
            [
                "CPU_SrcID#0_Ha#0_Chan#0_DIMM#0 (mc0/dimm0)",
                "mc#0csrow#0channel#1 (mc0/dimm1)",
                "P2-DIMMA1 (mc1/dimm10)"
            ]
        );
        let quiet = dimm_report(&before, &before, 1);
        assert!(
            quiet.note.contains("no EDAC counter rose"),
            "{}",
            quiet.note
        );
        dimm(t.path(), "mc1/dimm10", "P2-DIMMA1", 0, 1);
        let after = edac_snapshot(&root);
        let r = dimm_report(&before, &after, 1);
        assert_eq!(r.edac_dimms, 3);
        assert_eq!(
            r.rose,
            vec![DimmRise {
                dimm: "P2-DIMMA1 (mc1/dimm10)".into(),
                ce_before: Some(0),
                ce_after: Some(0),
                ue_before: Some(0),
                ue_after: Some(1),
            }]
        );
        assert_eq!(
            r.note,
            "likely DIMM: P2-DIMMA1 (mc1/dimm10) (EDAC error counters rose during the test)"
        );
        assert!(dimm_report(&before, &after, 0).note.contains("corrected"));
    }
}
