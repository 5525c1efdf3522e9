//! What is on a block device, as `blkid -p` says: on the running machine
//! the image's own `blkid -p -o export` (util-linux, in every live image;
//! it knows some 80 formats), otherwise, or when blkid is missing or finds
//! no type, the pure-Rust probes of `fsprobe` (about 30 formats, tested
//! against blkid). Each answer records who gave it (`source`). Also the
//! small "what was on the disk" list the wipe plan and certificate carry.

use super::fsprobe::{self, FsInfo};
use crate::blockdev::scan::Disk;
use crate::root::Root;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

/// `blkid -o export` text as a map; values unescaped (blkid escapes
/// spaces, quotes and backslashes with a backslash).
pub fn parse_export(text: &str) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let mut s = String::with_capacity(v.len());
        let mut esc = false;
        for c in v.chars() {
            if !esc && c == '\\' {
                esc = true;
                continue;
            }
            esc = false;
            s.push(c);
        }
        m.insert(k.to_string(), s);
    }
    m
}

/// blkid's answer as an `FsInfo`, when it names a TYPE.
pub fn from_export(m: &BTreeMap<String, String>) -> Option<FsInfo> {
    let get = |k: &str| m.get(k).filter(|v| !v.is_empty()).cloned();
    Some(FsInfo {
        kind: get("TYPE")?,
        label: get("LABEL"),
        uuid: get("UUID"),
        version: get("VERSION"),
        source: "blkid",
    })
}

/// Ask the image's blkid about `dev` (low-level probe, no cache). `None`
/// when blkid is not there, fails, finds nothing, or finds several
/// signatures it will not choose between (exit 8): then the own probe
/// answers.
fn ask_blkid(dev: &Path) -> Option<FsInfo> {
    if !crate::cmd::on_path("blkid") {
        return None;
    }
    let dev = dev.to_str()?;
    let out = crate::cmd::output(&["blkid", "-p", "-o", "export", dev]).ok()?;
    if !out.status.success() {
        tracing::debug!(dev, status = %out.status, "blkid -p found no single type");
        return None;
    }
    from_export(&parse_export(&out.stdout))
}

/// What is on the device `/dev/<name>` under `root`, of `size` bytes:
/// blkid's answer on the running machine, else the own probe's. An error
/// only when the device cannot be opened for the probe.
pub fn identify(root: &Root, name: &str, size: u64) -> std::io::Result<Option<FsInfo>> {
    let path = root.at(&format!("/dev/{name}"));
    if root.is_system() {
        if let Some(f) = ask_blkid(&path) {
            return Ok(Some(f));
        }
    }
    let f = std::fs::File::open(&path)?;
    let size = if size > 0 { size } else { f.metadata()?.len() };
    Ok(if size > 0 {
        fsprobe::probe_file(&f, size)
    } else {
        None
    })
}

/// One thing found on a disk before it is erased, for the wipe plan and
/// the certificate: `where` is `disk` (the whole device: its partition
/// table, or a file system or volume on it) or a partition's name.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Content {
    #[serde(rename = "where")]
    pub at: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub label: Option<String>,
    pub uuid: Option<String>,
}

impl Content {
    fn of(at: &str, f: FsInfo) -> Content {
        Content {
            at: at.to_string(),
            kind: f.kind,
            label: f.label,
            uuid: f.uuid,
        }
    }

    /// `sda1 ext4 "root" 1b4e…` for plan lines and the certificate page.
    pub fn text(&self) -> String {
        let mut s = format!("{} {}", self.at, self.kind);
        if let Some(l) = &self.label {
            s.push_str(&format!(" \"{l}\""));
        }
        if let Some(u) = &self.uuid {
            s.push_str(&format!(" {u}"));
        }
        s
    }
}

/// Everything `identify` finds on the disk `d`: its partition table
/// (`gpt`/`dos` with the table's id), what is on the whole disk when it
/// has no partitions, and what is on each partition. Unreadable devices
/// are left out (the plan says so elsewhere); sizes from sysfs.
pub fn contents(root: &Root, d: &Disk) -> Vec<Content> {
    let mut v = Vec::new();
    let disk = root.at(&format!("/dev/{}", d.name));
    if let Ok(f) = std::fs::File::open(&disk) {
        let sector = d.logical_block_size.max(512) as u64;
        if let Some(t) = fsprobe::partitions(&mut fsprobe::reader(&f), sector) {
            v.push(Content {
                at: "disk".into(),
                kind: t.kind.to_string(),
                label: None,
                uuid: t.uuid,
            });
        }
    }
    if d.partitions.is_empty() {
        if let Ok(Some(f)) = identify(root, &d.name, d.size_bytes) {
            v.push(Content::of("disk", f));
        }
    }
    for p in &d.partitions {
        let size = crate::root::read_trim(&d.sys_path.join(p).join("size"))
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
            * 512;
        if let Ok(Some(f)) = identify(root, p, size) {
            v.push(Content::of(p, f));
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_text_unescaped() {
        let m = parse_export(
            "DEVNAME=/dev/sdb1\nLABEL=my\\ data\\\"x\nUUID=1234-ABCD\nVERSION=FAT32\nTYPE=vfat\nUSAGE=filesystem\n",
        );
        let f = from_export(&m).unwrap();
        assert_eq!(f.kind, "vfat");
        assert_eq!(f.label.as_deref(), Some("my data\"x"));
        assert_eq!(f.uuid.as_deref(), Some("1234-ABCD"));
        assert_eq!(f.version.as_deref(), Some("FAT32"));
        assert_eq!(f.source, "blkid");
        // A bare partition table: no TYPE, no answer.
        assert_eq!(from_export(&parse_export("PTTYPE=gpt\nPTUUID=x\n")), None);
    }

    #[test]
    fn fixture_roots_use_the_own_probe() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        std::fs::create_dir_all(root.at("/dev")).unwrap();
        let mut v = vec![0u8; 1 << 20];
        v[4086..4096].copy_from_slice(b"SWAPSPACE2");
        v[1024..1028].copy_from_slice(&1u32.to_le_bytes());
        std::fs::write(root.at("/dev/vdz"), &v).unwrap();
        let f = identify(&root, "vdz", 0).unwrap().unwrap();
        assert_eq!((f.kind.as_str(), f.source), ("swap", "probe"));
        assert_eq!(f.version.as_deref(), Some("1"));
        assert!(identify(&root, "vdy", 0).is_err());
    }

    #[test]
    fn content_text() {
        let c = Content {
            at: "sda1".into(),
            kind: "ext4".into(),
            label: Some("root".into()),
            uuid: Some("u".into()),
        };
        assert_eq!(c.text(), "sda1 ext4 \"root\" u");
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            serde_json::json!({"where": "sda1", "type": "ext4", "label": "root", "uuid": "u"})
        );
    }
}
