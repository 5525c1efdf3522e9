//! Small helpers for reading sysfs and procfs attributes. Every caller
//! passes a path already under the inventory's root.

pub use crate::root::{dir_names, read_trim};
use std::path::Path;

pub fn read_u64(path: &Path) -> Option<u64> {
    read_trim(path)?.parse().ok()
}

/// Last component of a symlink's target (a driver or group name).
pub fn link_name(path: &Path) -> Option<String> {
    let t = std::fs::read_link(path).ok()?;
    Some(t.file_name()?.to_string_lossy().into_owned())
}

/// Parse a kernel CPU list such as `0-3,8,10-11` into CPU numbers.
pub fn parse_cpu_list(s: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(a) = part.parse() {
                    out.push(a);
                }
            }
        }
    }
    out
}

/// Natural order for device names: runs of digits compare as numbers, so
/// `nvme2n1 < nvme10n1`.
pub fn natural_key(s: &str) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut num: Option<u64> = None;
    for c in s.chars() {
        if let Some(d) = c.to_digit(10) {
            num = Some(num.unwrap_or(0).saturating_mul(10).saturating_add(d as u64));
        } else {
            if let Some(n) = num.take() {
                out.push((std::mem::take(&mut text), n));
            }
            text.push(c);
        }
    }
    out.push((text, num.unwrap_or(0)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,8,10-11\n"), [0, 1, 2, 3, 8, 10, 11]);
        assert_eq!(parse_cpu_list("0"), [0]);
        assert_eq!(parse_cpu_list(""), Vec::<u32>::new());
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["nvme10n1", "sdb", "nvme2n1", "sda", "vda"];
        v.sort_by_key(|s| natural_key(s));
        assert_eq!(v, ["nvme2n1", "nvme10n1", "sda", "sdb", "vda"]);
    }
}
