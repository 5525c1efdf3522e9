//! Shared by the tests that erase or write block devices (wipe, install,
//! bench): the root-and-tools gate and loop devices over temp files that the
//! test itself creates, checks and detaches. No other block device is ever
//! opened for writing.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Root and `tools`, or skip (fail under SPEEDISO_REQUIRE_TOOLS=1). `what`
/// names the test group in the message. The pseudo-tool "device-mapper" asks
/// for a kernel with dm; without one the test skips loudly, and in CI only
/// when `SPEEDISO_DM_IN_VM=1` says the VM suite runs those cases instead.
pub fn ready(what: &str, tools: &[&str]) -> bool {
    let mut missing: Vec<String> = Vec::new();
    // Root check: /dev/loop-control opens read-write only for root.
    if std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")
        .is_err()
    {
        missing.push("root (to open /dev/loop-control)".into());
    }
    for t in tools {
        if *t == "device-mapper" {
            let dm = std::fs::read_to_string("/proc/misc").unwrap_or_default();
            if !dm.contains("device-mapper") {
                // No package can give this kernel dm. Under
                // SPEEDISO_REQUIRE_TOOLS=1 the skip is allowed only when
                // the caller promises the VM suite runs these cases in its
                // guest (scripts/test.sh sets SPEEDISO_DM_IN_VM=1 and then
                // runs wipe-faults, which fails rather than skips in CI).
                let why = "this kernel has no device-mapper (/proc/misc); the VM suite's wipe-faults scenario runs these cases in a guest that has it";
                if crate::required() && std::env::var("SPEEDISO_DM_IN_VM").as_deref() != Ok("1") {
                    panic!("{why}, and SPEEDISO_DM_IN_VM=1 does not say it will run (SPEEDISO_REQUIRE_TOOLS=1)");
                }
                eprintln!("SKIP: {why}");
                return false;
            }
            continue;
        }
        if !crate::on_path(t) {
            missing.push(format!("tool {t}"));
        }
    }
    missing.is_empty() || crate::missing(&format!("{what} needs: {}", missing.join(", ")))
}

/// Run `argv`, panic with its stderr unless it succeeds; trimmed stdout.
pub fn sh(argv: &[&str]) -> String {
    let o = Command::new(argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("running {argv:?}: {e}"));
    assert!(
        o.status.success(),
        "{argv:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// A loop device over a file this test made; detached on drop (and the
/// temp directory, when it owns one, removed after).
pub struct Loop {
    pub dev: String,
    pub file: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Loop {
    /// A new `size`-byte temp file, every byte `fill` (sparse for 0).
    pub fn new(size: u64, fill: u8) -> Loop {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("disk.img");
        if fill == 0 {
            crate::sized_file(&file, size);
        } else {
            std::fs::write(&file, vec![fill; size as usize]).unwrap();
        }
        let mut l = Loop::over(&file);
        l._dir = Some(dir);
        l
    }

    /// Like `new`, attached read-only (`losetup -r`: the kernel's ro=1).
    pub fn read_only(size: u64, fill: u8) -> Loop {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("disk.img");
        std::fs::write(&file, vec![fill; size as usize]).unwrap();
        let mut l = Loop::attach(&file, &["-r"]);
        l._dir = Some(dir);
        l
    }

    /// Attach an existing file the test created.
    pub fn over(file: &Path) -> Loop {
        Loop::attach(file, &[])
    }

    fn attach(file: &Path, flags: &[&str]) -> Loop {
        let mut argv = vec!["losetup"];
        argv.extend(flags);
        argv.extend(["--find", "--show", file.to_str().unwrap()]);
        let dev = sh(&argv);
        // The target must be a loop device, and the one we just created.
        assert!(dev.starts_with("/dev/loop"), "losetup gave {dev}");
        let back = sh(&["losetup", "--noheadings", "-O", "BACK-FILE", &dev]);
        // Compared resolved: the temp dir may sit behind a symlink.
        let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        assert_eq!(canon(Path::new(&back)), canon(file), "{dev} is not ours");
        Loop {
            dev,
            file: file.to_path_buf(),
            _dir: None,
        }
    }

    pub fn size(&self) -> u64 {
        std::fs::metadata(&self.file).unwrap().len()
    }

    /// The raw bytes, read from the backing file.
    pub fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.file).unwrap()
    }

    /// `len` bytes at `off`, read through the device.
    pub fn read(&self, off: u64, len: usize) -> Vec<u8> {
        let f = std::fs::File::open(&self.dev).unwrap();
        let mut b = vec![0u8; len];
        f.read_exact_at(&mut b, off).unwrap();
        b
    }
}

/// A device-mapper device this test made (`dmsetup create` from a table,
/// usually over its own loop devices); removed on drop, so declare it
/// after the loop devices beneath it (dropped first).
pub struct Dm(pub String);

impl Dm {
    /// `dmsetup create NAME` with `table` (one target a line) on stdin;
    /// panics when dmsetup fails.
    pub fn create(name: &str, table: &str) -> Dm {
        use std::io::Write;
        let ok = Command::new("dmsetup")
            .args(["create", name])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                c.stdin.take().unwrap().write_all(table.as_bytes())?;
                c.wait()
            })
            .unwrap_or_else(|e| panic!("running dmsetup create {name}: {e}"));
        assert!(
            ok.success(),
            "dmsetup create {name} failed; table:\n{table}"
        );
        Dm(name.to_string())
    }

    /// `/dev/mapper/NAME`.
    pub fn path(&self) -> String {
        format!("/dev/mapper/{}", self.0)
    }
}

impl Drop for Dm {
    fn drop(&mut self) {
        let _ = Command::new("dmsetup")
            .args(["remove", "--retry", &self.0])
            .status();
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
    }
}
