//! The root every /proc, /sys, /dev and /run path is read under: `/` on a
//! machine, a fixture tree in tests (`--root`). A leaf: modules import it,
//! it imports nothing of the crate, so no module reaches up into the CLI
//! layer for it.

use std::path::{Path, PathBuf};

/// `root` joined with the absolute path `abs` (`/dev/sda` under
/// `fixtures/x` is `fixtures/x/dev/sda`).
pub fn under_root(root: &Path, abs: &str) -> PathBuf {
    root.join(abs.trim_start_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_absolute_paths_under_the_root() {
        assert_eq!(
            under_root(Path::new("/"), "/dev/sda"),
            PathBuf::from("/dev/sda")
        );
        assert_eq!(
            under_root(Path::new("fx"), "/sys/block"),
            PathBuf::from("fx/sys/block")
        );
        assert_eq!(under_root(Path::new("fx"), "run"), PathBuf::from("fx/run"));
    }
}
