//! The root every /proc, /sys, /dev and /run path is read under: `/` on a
//! machine, a fixture tree in tests (`--root`). A leaf: modules import it,
//! it imports nothing of the crate. `Root::at` is the one way to a rooted
//! path (`scripts/check-crates.sh` refuses a path joined by hand), and
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
