//! The write refusal of every destructive path: whether a device may be
//! written at all, checked before anything is. The disk benchmark's guard
//! (files and loop devices freely, a whole disk only when confirmed, never
//! one in use) and the check on an opened device that the wipe and the
//! install make before their first write (a block device, and a loop
//! device unless real disks may be written here, a policy the caller
//! decides: `wipe::select::real_disks_allowed`).

use crate::root::Root;
use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::fs::File;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Loop devices' block major number (Documentation/admin-guide/devices.txt).
const LOOP_MAJOR: u64 = 7;

/// What the target is, which decides whether writes may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Loop,
    Block,
}

/// Writes were refused; the caller maps this to the "refused" exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refusal {}

/// Linux's dev_t split (glibc's gnu_dev_major/minor).
fn major_minor(rdev: u64) -> (u64, u64) {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    (major, minor)
}

/// Classify `path`: a regular file (or one that does not exist yet), a loop
/// device, or another block device. Anything else is an error.
pub fn classify(root: &Root, path: &Path) -> Result<(Kind, Option<(u64, u64)>)> {
    let md = match std::fs::metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Kind::File, None)),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let ft = md.file_type();
    if ft.is_file() {
        return Ok((Kind::File, None));
    }
    if !ft.is_block_device() {
        bail!(
            "{} is neither a regular file nor a block device",
            path.display()
        );
    }
    let (maj, min) = major_minor(md.rdev());
    let sys = root.at(&format!("/sys/dev/block/{maj}:{min}"));
    let is_loop = maj == LOOP_MAJOR || sys.join("loop").is_dir();
    Ok((
        if is_loop { Kind::Loop } else { Kind::Block },
        Some((maj, min)),
    ))
}

/// Why writing to this block device would hit something in use: mounted,
/// swap or held by LVM/MD/dm (itself or a partition). Empty: not in use.
pub fn busy(root: &Root, path: &Path, dev: (u64, u64)) -> Vec<String> {
    let mut why = Vec::new();
    let sys = root.at(&format!("/sys/dev/block/{}:{}", dev.0, dev.1));
    let name = std::fs::canonicalize(&sys)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
        .unwrap_or_else(|| {
            path.file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default()
        });
    let devno = format!("{}:{}", dev.0, dev.1);
    let used = super::usage::Usage::read(root).of(&sys, &name, &devno);
    if !used.holders.is_empty() {
        why.push("held by another device (LVM, MD or dm)".to_string());
    }
    for (_, m) in &used.mounts {
        why.push(format!("mounted ({} at {})", m.source, m.mountpoint));
    }
    for (_, src) in &used.swaps {
        why.push(format!("used as swap ({src})"));
    }
    why
}

/// May the disk benchmark's write jobs (or `--verify`) run on `path`? Files: yes. Loop devices:
/// unless in use. Other block devices: only when `confirmed` names exactly
/// this device, and never while in use.
pub fn write_guard(
    root: &Root,
    path: &Path,
    kind: Kind,
    dev: Option<(u64, u64)>,
    confirmed: Option<&Path>,
) -> Result<(), Refusal> {
    let busy = dev.map(|d| busy(root, path, d)).unwrap_or_default();
    match kind {
        Kind::File => Ok(()),
        Kind::Loop | Kind::Block if !busy.is_empty() => Err(Refusal(format!(
            "refusing write tests on {}: it is {}",
            path.display(),
            busy.join(", ")
        ))),
        Kind::Loop => Ok(()),
        Kind::Block => {
            let same = confirmed.is_some_and(|c| {
                c == path
                    || matches!(
                        (std::fs::canonicalize(c), std::fs::canonicalize(path)),
                        (Ok(a), Ok(b)) if a == b
                    )
            });
            if same {
                Ok(())
            } else {
                Err(Refusal(format!(
                    "refusing write tests on {}: it is a whole block device, not a loop \
                     device or a file, and writing would destroy its data. Read tests \
                     (--mode read) are safe; to overwrite it anyway, name it with \
                     --confirm-destroy {}",
                    path.display(),
                    path.display()
                )))
            }
        }
    }
}

/// Refuse anything but a loop device unless `real_allowed`; `done` says
/// what the caller does to a disk (`erased`, `written`). Checked on the
/// opened file, so a symlink swapped under us cannot redirect the write.
pub fn check_opened(file: &File, path: &Path, real_allowed: bool, done: &str) -> Result<()> {
    let md = file.metadata()?;
    if !md.file_type().is_block_device() {
        bail!("{} is not a block device", path.display());
    }
    let major = major_minor(md.rdev()).0;
    if major != LOOP_MAJOR && !real_allowed {
        bail!(
            "{} is not a loop device (major {major}) and real disks may only be {done} from the booted live image; refusing",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_split_like_glibc() {
        assert_eq!(major_minor(0x0801), (8, 1));
        assert_eq!(major_minor(0x0700), (7, 0));
        assert_eq!(major_minor((259 << 8) | 5), (259, 5));
    }

    #[test]
    fn guard_refuses_unconfirmed_block_device_and_busy_loop() {
        let root = tempfile::tempdir().unwrap();
        let r = &Root::new(root.path());
        std::fs::create_dir_all(r.at("/sys/dev/block/8:0/holders")).unwrap();
        std::fs::create_dir_all(r.at("/sys/dev/block/7:3/loop")).unwrap();
        std::fs::create_dir_all(r.at("/proc/self")).unwrap();
        std::fs::write(
            r.at("/proc/self/mountinfo"),
            "36 22 7:3 / /mnt rw,relatime - ext4 /dev/loop3 rw\n",
        )
        .unwrap();
        let sda = Path::new("/dev/sda");
        let err = write_guard(r, sda, Kind::Block, Some((8, 0)), None).unwrap_err();
        assert!(err.0.contains("whole block device"), "{err}");
        assert!(err.0.contains("--confirm-destroy /dev/sda"), "{err}");
        assert!(write_guard(
            r,
            sda,
            Kind::Block,
            Some((8, 0)),
            Some(Path::new("/dev/sdb"))
        )
        .is_err());
        assert!(write_guard(r, sda, Kind::Block, Some((8, 0)), Some(sda)).is_ok());
        let loop3 = Path::new("/dev/loop3");
        let err = write_guard(r, loop3, Kind::Loop, Some((7, 3)), None).unwrap_err();
        assert!(err.0.contains("mounted"), "{err}");
        assert!(write_guard(r, Path::new("/tmp/f"), Kind::File, None, None).is_ok());
    }

    #[test]
    fn an_opened_file_or_real_disk_is_refused_unless_allowed() {
        let t = tempfile::NamedTempFile::new().unwrap();
        let e = check_opened(t.as_file(), t.path(), true, "erased").unwrap_err();
        assert!(e.to_string().ends_with("is not a block device"), "{e}");
        // /dev/null is a character device: refused the same way.
        let null = File::open("/dev/null").unwrap();
        assert!(check_opened(&null, Path::new("/dev/null"), true, "written").is_err());
    }

    #[test]
    fn a_busy_partition_makes_its_disk_busy() {
        let root = tempfile::tempdir().unwrap();
        let r = &Root::new(root.path());
        let files = [
            ("sdb1/partition", "1\n"),
            ("sdb1/dev", "8:17\n"),
            ("sdb1/holders/md0", ""),
        ];
        crate::blockdev::scan::tests::disk(r, "virtual/block", "sdb", &files);
        std::fs::create_dir_all(r.at("/sys/dev/block")).unwrap();
        let sdb = std::fs::canonicalize(r.at("/sys/block/sdb")).unwrap();
        std::os::unix::fs::symlink(sdb, r.at("/sys/dev/block/8:16")).unwrap();
        std::fs::create_dir_all(r.at("/proc")).unwrap();
        std::fs::write(
            r.at("/proc/swaps"),
            "Filename Type\n/dev/sdb1 partition 1 0 -2\n",
        )
        .unwrap();
        let why = busy(r, Path::new("/dev/sdb"), (8, 16));
        assert_eq!(
            why,
            [
                "held by another device (LVM, MD or dm)",
                "used as swap (/dev/sdb1)"
            ]
        );
        assert!(busy(r, Path::new("/dev/sdc"), (8, 32)).is_empty());
    }

    #[test]
    fn a_loop_device_may_be_written_where_real_disks_may_not() {
        use speediso_testsupport::loops::{ready, Loop};
        if !ready("blockdev guard", &["losetup"]) {
            return;
        }
        let l = Loop::new(1 << 20, 0);
        let dev = Path::new(&l.dev);
        let f = File::open(dev).unwrap();
        check_opened(&f, dev, false, "written").unwrap();
        let (kind, num) = classify(&Root::system(), dev).unwrap();
        assert_eq!(kind, Kind::Loop);
        let (maj, min) = num.unwrap();
        assert_eq!(maj, LOOP_MAJOR);
        let d = crate::blockdev::scan::disk_at(&Root::system(), &format!("{maj}:{min}")).unwrap();
        assert!(d.is_loop(), "{d:?}");
        assert_eq!(d.size_bytes, 1 << 20);
        let file = std::fs::canonicalize(&l.file).unwrap();
        assert_eq!(d.backing_file.as_deref(), file.to_str());
        assert!(busy(&Root::system(), dev, (maj, min)).is_empty());
    }
}
