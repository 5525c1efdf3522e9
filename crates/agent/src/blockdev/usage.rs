//! What uses a block device: its mounts (`/proc/self/mountinfo`) and swap
//! areas (`/proc/swaps`), read under the root. One parser for each, so a
//! mount point or a swap file with a space (`\040`) or a non-ASCII name is
//! read the same way by every caller.

use crate::root::Root;

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
}
