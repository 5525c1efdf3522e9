//! What uses a block device: its mounts (`/proc/self/mountinfo`), swap
//! areas (`/proc/swaps`) and holders (dm, md, LVM, bcache), the loop
//! devices whose backing file it holds, and the device a `root=` argument
//! names, read under the root. One parser for each, so a mount point or a
//! swap file with a space (`\040`) or a non-ASCII name is read the same way
//! by the wipe selection, the inventory and the disk benchmark's guard;
//! what each makes of a use (a refusal, a report field) is theirs.

use super::scan::dev_name;
use crate::root::{dir_names, read_trim, Root};
use std::path::Path;

/// Where dracut's dmsquash-live mounts the live medium.
pub const LIVE_MEDIUM: &str = "/run/initramfs/live";

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// `MAJOR:MINOR` of the mounted device (`0:N` for virtual ones).
    pub devno: String,
    /// Where it is mounted, unescaped.
    pub mountpoint: String,
    /// File system type (`ext4`, `overlay`, ...).
    pub fstype: String,
    /// The mount source (`/dev/sda1`, `proc`, ...), unescaped.
    pub source: String,
}

/// Undo the octal escapes (`\040` for a space, `\011`, `\012`, `\134`) the
/// kernel writes in mountinfo and swaps. The bytes are decoded as UTF-8
/// (lossily), so an escaped multi-byte name comes out whole.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') as u32 * 64
                + (b[i + 2] - b'0') as u32 * 8
                + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse mountinfo: `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] -
/// FSTYPE SOURCE SUPEROPTS`. Lines without the `-` separator or too short
/// are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(' ').collect();
            let sep = f.iter().position(|x| *x == "-")?;
            if sep < 5 {
                return None;
            }
            Some(Mount {
                devno: f[2].to_string(),
                mountpoint: unescape(f[4]),
                fstype: f.get(sep + 1)?.to_string(),
                source: unescape(f.get(sep + 2)?),
            })
        })
        .collect()
}

/// The mounts under `root` (none when mountinfo cannot be read).
pub fn mounts(root: &Root) -> Vec<Mount> {
    std::fs::read_to_string(root.at("/proc/self/mountinfo"))
        .map(|t| parse_mountinfo(&t))
        .unwrap_or_default()
}

/// The swap areas of /proc/swaps (files or devices), unescaped; the header
/// line is skipped.
pub fn parse_swaps(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .map(unescape)
        .collect()
}

/// The swap areas under `root`.
pub fn swaps(root: &Root) -> Vec<String> {
    std::fs::read_to_string(root.at("/proc/swaps"))
        .map(|t| parse_swaps(&t))
        .unwrap_or_default()
}

/// The mounts and swap areas under a root, read once, each `/dev/` source
/// resolved to the kernel name it names.
#[derive(Debug, Default)]
pub struct Usage {
    pub mounts: Vec<Mount>,
    pub swaps: Vec<String>,
    /// The kernel name behind each mount's source (`None`: not a /dev path).
    mount_devs: Vec<Option<String>>,
    swap_devs: Vec<Option<String>>,
}

/// Who uses one block device or its partitions, in mountinfo's and
/// /proc/swaps' order. Each entry names the disk or the partition used.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DiskUse {
    pub mounts: Vec<(String, Mount)>,
    /// The swap area as /proc/swaps names it.
    pub swaps: Vec<(String, String)>,
    /// Only devices that have holders; the holders sorted.
    pub holders: Vec<(String, Vec<String>)>,
}

impl DiskUse {
    pub fn is_empty(&self) -> bool {
        self.mounts.is_empty() && self.swaps.is_empty() && self.holders.is_empty()
    }

    /// Where `name` (the disk or one partition) is mounted, sorted, once each.
    pub fn mountpoints(&self, name: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .mounts
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, m)| m.mountpoint.clone())
            .collect();
        v.sort();
        v.dedup();
        v
    }

    pub fn swap(&self, name: &str) -> bool {
        self.swaps.iter().any(|(n, _)| n == name)
    }

    pub fn holders(&self, name: &str) -> Vec<String> {
        self.holders
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, h)| h.clone())
            .unwrap_or_default()
    }
}

/// One device a use may name: kernel name, `/dev` path, `major:minor`.
struct Member {
    name: String,
    path: String,
    devno: String,
    sys: std::path::PathBuf,
}

impl Usage {
    pub fn read(root: &Root) -> Usage {
        Usage::new(root, mounts(root), swaps(root))
    }

    /// Parsed mountinfo and swaps, sources resolved under `root`.
    pub fn parse(root: &Root, mountinfo: &str, swaps: &str) -> Usage {
        Usage::new(root, parse_mountinfo(mountinfo), parse_swaps(swaps))
    }

    fn new(root: &Root, mounts: Vec<Mount>, swaps: Vec<String>) -> Usage {
        let resolve = |src: &str| src.starts_with("/dev/").then(|| dev_name(root, src));
        Usage {
            mount_devs: mounts.iter().map(|m| resolve(&m.source)).collect(),
            swap_devs: swaps.iter().map(|s| resolve(s)).collect(),
            mounts,
            swaps,
        }
    }

    /// Who uses the device whose sysfs directory is `sys` (kernel name
    /// `name`, number `devno`) or a partition of it. A mount is the
    /// device's when its number is the device's, or its source is the
    /// device's /dev path or a /dev path that leads to it; a swap area
    /// likewise by its path.
    pub fn of(&self, sys: &Path, name: &str, devno: &str) -> DiskUse {
        let member = |name: &str, devno: String, sys: std::path::PathBuf| Member {
            path: format!("/dev/{}", name.replace('!', "/")),
            name: name.to_string(),
            devno,
            sys,
        };
        let mut members = vec![member(name, devno.to_string(), sys.to_path_buf())];
        for p in dir_names(sys) {
            let dir = sys.join(&p);
            if dir.join("partition").exists() {
                members.push(member(
                    &p,
                    read_trim(&dir.join("dev")).unwrap_or_default(),
                    dir,
                ));
            }
        }
        let names = |src: &str, dev: &Option<String>, m: &Member| {
            src == m.path || dev.as_deref() == Some(m.name.as_str())
        };
        let mut u = DiskUse::default();
        for (mt, dev) in self.mounts.iter().zip(&self.mount_devs) {
            let by_number = |m: &&Member| !m.devno.is_empty() && m.devno == mt.devno;
            if let Some(m) = members
                .iter()
                .find(by_number)
                .or_else(|| members.iter().find(|m| names(&mt.source, dev, m)))
            {
                u.mounts.push((m.name.clone(), mt.clone()));
            }
        }
        for (src, dev) in self.swaps.iter().zip(&self.swap_devs) {
            if let Some(m) = members.iter().find(|m| names(src, dev, m)) {
                u.swaps.push((m.name.clone(), src.clone()));
            }
        }
        for m in &members {
            let hs = dir_names(&m.sys.join("holders"));
            if !hs.is_empty() {
                u.holders.push((m.name.clone(), hs));
            }
        }
        u
    }

    /// The mount a loop device's backing file lives on: the longest mount
    /// point that is a directory above it.
    pub fn backing_mount(&self, file: &str) -> Option<&Mount> {
        self.mounts
            .iter()
            .filter(|m| {
                file.starts_with(&m.mountpoint)
                    && (m.mountpoint == "/" || file[m.mountpoint.len()..].starts_with('/'))
            })
            .max_by_key(|m| m.mountpoint.len())
    }
}

/// The kernel name of the local device a `root=` value names
/// (`live:CDLABEL=x`, `LABEL=`, `UUID=`, `PARTUUID=`, `PARTLABEL=`, a /dev
/// path), through `root`'s /dev/disk links; `None` for anything else
/// (nfs, a link that is not there).
pub fn root_arg_device(root: &Root, v: &str) -> Option<String> {
    let v = v.strip_prefix("live:").unwrap_or(v);
    let link = |dir: &str, val: &str| format!("/dev/disk/{dir}/{val}");
    let path = if let Some(x) = v
        .strip_prefix("CDLABEL=")
        .or_else(|| v.strip_prefix("LABEL="))
    {
        link("by-label", x)
    } else if let Some(x) = v.strip_prefix("UUID=") {
        link("by-uuid", x)
    } else if let Some(x) = v.strip_prefix("PARTUUID=") {
        link("by-partuuid", x)
    } else if let Some(x) = v.strip_prefix("PARTLABEL=") {
        link("by-partlabel", x)
    } else if v.starts_with("/dev/") {
        v.to_string()
    } else {
        return None;
    };
    let under = root.at(&path);
    if !under.exists() && std::fs::symlink_metadata(&under).is_err() {
        return None;
    }
    Some(dev_name(root, &path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines_with_optional_fields_and_escapes() {
        let t = "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
                 30 22 7:3 / /mnt/my\\040dir rw - ext4 /dev/loop3 rw\n\
                 31 22 0:5 / /proc rw - proc proc rw\n\
                 32 22 8:17 / /srv/caf\\303\\251 rw shared:2 master:1 - xfs /dev/sdb1 rw\n\
                 garbage line\n\
                 33 22 8:1 / /x rw -\n";
        let m = parse_mountinfo(t);
        assert_eq!(m.len(), 4, "{m:?}");
        assert_eq!(m[0].devno, "254:0");
        assert_eq!(m[0].source, "/dev/vda");
        assert_eq!(m[0].fstype, "ext4");
        assert_eq!(m[1].mountpoint, "/mnt/my dir");
        assert_eq!(m[2].source, "proc");
        // Two optional fields before the separator; an escaped UTF-8 name.
        assert_eq!(m[3].mountpoint, "/srv/café");
        assert_eq!(m[3].fstype, "xfs");
        assert_eq!(m[3].source, "/dev/sdb1");
    }

    #[test]
    fn swaps_skip_the_header_and_unescape() {
        let t = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
                 /dev/sda3                               partition\t8388604\t\t0\t\t-2\n\
                 /swap\\040file                           file\t\t1048572\t\t0\t\t-3\n";
        assert_eq!(parse_swaps(t), vec!["/dev/sda3", "/swap file"]);
        assert!(parse_swaps("Filename Type Size Used Priority\n").is_empty());
    }

    #[test]
    fn unescape_leaves_other_backslashes() {
        assert_eq!(unescape("a\\134b"), "a\\b");
        assert_eq!(unescape("a\\9b"), "a\\9b");
        assert_eq!(unescape("end\\04"), "end\\04");
    }

    /// A disk `sda` (8:0) with partitions sda1 (8:1) and sda2 (8:2) under
    /// a tempdir root, sda2 held by dm-0.
    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        let sda = Root::new(t.path()).at("/sys/block/sda");
        for (p, dev) in [("sda1", "8:1"), ("sda2", "8:2")] {
            std::fs::create_dir_all(sda.join(p)).unwrap();
            std::fs::write(sda.join(p).join("partition"), "1\n").unwrap();
            std::fs::write(sda.join(p).join("dev"), dev).unwrap();
        }
        std::fs::create_dir_all(sda.join("sda2/holders/dm-0")).unwrap();
        std::fs::create_dir_all(sda.join("holders")).unwrap();
        std::fs::create_dir_all(Root::new(t.path()).at("/dev/mapper")).unwrap();
        std::os::unix::fs::symlink("../sda1", Root::new(t.path()).at("/dev/mapper/boot")).unwrap();
        t
    }

    #[test]
    fn a_disk_is_used_through_its_number_its_path_or_a_link() {
        let t = tree();
        let r = &Root::new(t.path());
        let mi = "20 1 8:1 / /boot rw - ext4 /dev/sda1 rw\n\
                  21 1 0:45 / /srv rw - btrfs /dev/sda2 rw\n\
                  22 1 0:46 / /mnt rw - ext4 /dev/mapper/boot rw\n\
                  23 1 8:16 / /other rw - ext4 /dev/sdb rw\n\
                  24 1 0:47 / /n rw - ext4 /dev/sda10 rw\n";
        let sw = "Filename Type Size Used Priority\n/dev/sda /x 1 0 -2\n/swapfile file 1 0 -3\n";
        let u = Usage::parse(r, mi, sw).of(&r.at("/sys/block/sda"), "sda", "8:0");
        let names: Vec<(&str, &str)> = u
            .mounts
            .iter()
            .map(|(n, m)| (n.as_str(), m.mountpoint.as_str()))
            .collect();
        assert_eq!(
            names,
            [("sda1", "/boot"), ("sda2", "/srv"), ("sda1", "/mnt")]
        );
        assert_eq!(u.mountpoints("sda1"), ["/boot", "/mnt"]);
        assert!(u.mountpoints("sda").is_empty());
        assert_eq!(u.swaps, [("sda".to_string(), "/dev/sda".to_string())]);
        assert!(u.swap("sda") && !u.swap("sda1"));
        assert_eq!(u.holders, [("sda2".to_string(), vec!["dm-0".to_string()])]);
        assert_eq!(u.holders("sda2"), ["dm-0"]);
        assert!(!u.is_empty());
        // Nothing of it names another disk.
        let other = Usage::parse(r, mi, sw).of(&r.at("/sys/block/sdc"), "sdc", "8:32");
        assert!(other.is_empty(), "{other:?}");
    }

    #[test]
    fn backing_files_live_on_the_longest_mount_above_them() {
        let t = tempfile::tempdir().unwrap();
        let mi = "1 0 254:0 / / rw - ext4 /dev/vda rw\n\
                  2 1 8:1 / /srv rw - ext4 /dev/sda1 rw\n\
                  3 1 8:17 / /srv/img rw - ext4 /dev/sdb1 rw\n";
        let u = Usage::parse(&Root::new(t.path()), mi, "");
        let on = |f: &str| u.backing_mount(f).map(|m| m.devno.as_str());
        assert_eq!(on("/srv/img/a.img"), Some("8:17"));
        assert_eq!(on("/srv/imgs/a.img"), Some("8:1"));
        assert_eq!(on("/home/a.img"), Some("254:0"));
        assert_eq!(
            Usage::parse(&Root::new(t.path()), "", "").backing_mount("/a"),
            None
        );
    }

    #[test]
    fn root_arguments_name_local_devices_through_their_links() {
        let t = tempfile::tempdir().unwrap();
        let r = &Root::new(t.path());
        let by_label = r.at("/dev/disk/by-label");
        std::fs::create_dir_all(&by_label).unwrap();
        std::os::unix::fs::symlink("../../sr0", by_label.join("LIVE")).unwrap();
        assert_eq!(
            root_arg_device(r, "live:CDLABEL=LIVE").as_deref(),
            Some("sr0")
        );
        assert_eq!(root_arg_device(r, "LABEL=NOPE"), None);
        assert_eq!(root_arg_device(r, "nfs:10.0.0.1:/x"), None);
    }
}
