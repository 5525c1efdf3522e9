//! The root every /proc, /sys, /dev and /run path is read under: `/` on a
//! machine, a fixture tree in tests (`--root`), and the readers of sysfs
//! attributes and directories under it (`read_attr` knows firmware's
//! placeholder values). A leaf: modules import it, it imports nothing of
//! the crate. `Root::at` is the one way to a rooted path
//! (`scripts/check-crates.sh` refuses a path joined by hand), and
//! `Root::is_system` the one test for "this is the real machine", which
//! every destructive or tool-running path asks before it acts.

use std::path::{Path, PathBuf};

/// Where the machine's /proc, /sys, /dev and /run are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root(PathBuf);

impl Root {
    /// A fixture tree (or `/`).
    pub fn new(path: impl Into<PathBuf>) -> Root {
        Root(path.into())
    }

    /// The running machine: `/`.
    pub fn system() -> Root {
        Root(PathBuf::from("/"))
    }

    /// Is this the running machine (not a fixture)?
    pub fn is_system(&self) -> bool {
        self.0 == Path::new("/")
    }

    /// The absolute path `abs` under this root (`/dev/sda` under
    /// `fixtures/x` is `fixtures/x/dev/sda`).
    pub fn at(&self, abs: &str) -> PathBuf {
        self.0.join(abs.trim_start_matches('/'))
    }

    /// The root directory itself.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

/// The attribute's text, trimmed; `None` when absent, unreadable or empty.
pub fn read_trim(path: &Path) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_string())
}

/// Sorted entry names of a directory; empty when it does not exist.
pub fn dir_names(path: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(path)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Values firmware vendors put in DMI fields that mean "not set".
const PLACEHOLDERS: &[&str] = &[
    "",
    "0",
    "none",
    "n/a",
    "na",
    "not specified",
    "not applicable",
    "default string",
    "to be filled by o.e.m.",
    "system serial number",
    "0123456789",
    "03000200-0400-0500-0006-000700080009",
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
];

/// A trimmed sysfs attribute, or `None` when absent or a placeholder.
pub fn read_attr(path: &Path) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let s = s.trim();
    (!PLACEHOLDERS.contains(&s.to_ascii_lowercase().as_str())).then(|| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_absolute_paths_under_the_root() {
        assert_eq!(Root::system().at("/dev/sda"), PathBuf::from("/dev/sda"));
        assert_eq!(
            Root::new("fx").at("/sys/block"),
            PathBuf::from("fx/sys/block")
        );
        assert_eq!(Root::new("fx").at("run"), PathBuf::from("fx/run"));
        assert!(Root::system().is_system());
        assert!(Root::new("/").is_system());
        assert!(!Root::new("fx").is_system());
    }
}
