//! Crash-safe file system steps: copy to a temp name then fsync and rename,
//! switch a symlink by renaming a temp link over it, fsync directories
//! after renames, and the repository lock. Also the test-only crash points.

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Environment variable that makes the binary abort at a named step, so
/// tests can check what a crash at that point leaves behind.
pub const CRASH_ENV: &str = "SPEEDISO_REPO_CRASH_AT";

/// Every crash point, in the order a publish reaches them.
pub const CRASH_POINTS: &[&str] = &[
    "copy",      // half of the first file written to its temp name
    "staged",    // all files fsync'd in the staging directory, no manifest
    "manifest",  // manifest written, staging directory not yet renamed
    "build-dir", // build directory in place under its number, links untouched
    "switch",    // temp `current` link created, not yet renamed over the old
    "switched",  // `current` renamed: the new build is live; root links not checked
    "linked",    // root links in place, nothing pruned
    "prune",     // the first pruned build moved aside, not yet deleted
];

/// Check the crash variable once at start-up, so a typo in a test fails
/// loudly instead of silently never crashing.
pub fn check_crash_env() -> Result<()> {
    if let Ok(v) = std::env::var(CRASH_ENV) {
        if !CRASH_POINTS.contains(&v.as_str()) {
            bail!(
                "{CRASH_ENV}={v:?} is not a crash point; known: {}",
                CRASH_POINTS.join(", ")
            );
        }
    }
    Ok(())
}

/// Whether the crash variable names this step.
pub fn crash_armed(step: &str) -> bool {
    debug_assert!(CRASH_POINTS.contains(&step), "unknown crash point {step}");
    std::env::var(CRASH_ENV).as_deref() == Ok(step)
}

/// Abort the process here if the crash variable names this step. abort()
/// runs no destructors and flushes nothing, like a kill -9 or a power cut
/// (minus the loss of unsynced data, which fsync covers).
pub fn crash_point(step: &str) {
    if crash_armed(step) {
        eprintln!("speediso-repo: {CRASH_ENV}={step}: aborting here");
        std::process::abort();
    }
}

/// fsync a directory, making the renames and unlinks inside it durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("fsync of directory {}", dir.display()))
}

/// A unique temp name next to `final_name` in `dir`, hidden so that
/// listings, `verify` and web clients never mistake it for a real file.
pub fn temp_path(dir: &Path, final_name: &str) -> PathBuf {
    dir.join(format!(".{final_name}.tmp.{}", std::process::id()))
}

/// Copy `src` to `dir/name` through a temp name: write, fsync, rename.
/// Returns the size and the SHA-256 (hex) of what was written.
pub fn copy_atomic(
    src: &Path,
    dir: &Path,
    name: &str,
    crash_midway: bool,
) -> Result<(u64, String)> {
    let mut input = File::open(src).with_context(|| format!("opening {}", src.display()))?;
    let total = input
        .metadata()
        .with_context(|| format!("reading size of {}", src.display()))?
        .len();
    through_temp(dir, name, |out, tmp| {
        hash_chunks(&mut input, src, |chunk, written| {
            if crash_midway && written + chunk.len() as u64 >= total / 2 && crash_armed("copy") {
                // Leave exactly half the file under its temp name, then die.
                let half = (total / 2 - written) as usize;
                out.write_all(&chunk[..half]).ok();
                crash_point("copy");
            }
            out.write_all(chunk)
                .with_context(|| format!("writing {}", tmp.display()))
        })
    })
}

/// Write `bytes` to `dir/name` through a temp name: write, fsync, rename.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    through_temp(dir, name, |f, tmp| {
        f.write_all(bytes)
            .with_context(|| format!("writing {}", tmp.display()))
    })
}

/// Make `dir/name` through a temp name: `fill` writes the new file (its
/// temp path given for messages), which is then fsync'd and renamed into
/// place. A failure or crash before the rename leaves only the temp file.
fn through_temp<T>(
    dir: &Path,
    name: &str,
    fill: impl FnOnce(&mut File, &Path) -> Result<T>,
) -> Result<T> {
    let tmp = temp_path(dir, name);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    let made = fill(&mut f, &tmp)?;
    f.sync_all()
        .with_context(|| format!("fsync of {}", tmp.display()))?;
    drop(f);
    let dest = dir.join(name);
    fs::rename(&tmp, &dest)
        .with_context(|| format!("renaming {} to {}", tmp.display(), dest.display()))?;
    Ok(made)
}

/// Make `dir/name` a symlink to `target`, atomically: readers see either the
/// old link or the new one, never no link. Does nothing when it already
/// points there. Returns whether it changed. The caller fsyncs `dir`.
pub fn set_symlink(dir: &Path, name: &str, target: &str, crash_at: Option<&str>) -> Result<bool> {
    let path = dir.join(name);
    if fs::read_link(&path).ok().as_deref() == Some(Path::new(target)) {
        return Ok(false);
    }
    let tmp = temp_path(dir, name);
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing stale {}", tmp.display())),
    }
    std::os::unix::fs::symlink(target, &tmp)
        .with_context(|| format!("creating link {} -> {target}", tmp.display()))?;
    if let Some(step) = crash_at {
        crash_point(step);
    }
    // rename(2) replaces the old link in one step; unlink + symlink would
    // leave a moment with no link at all.
    fs::rename(&tmp, &path)
        .with_context(|| format!("renaming {} over {}", tmp.display(), path.display()))?;
    Ok(true)
}

/// Remove `dir/name` if present; the caller fsyncs `dir`.
pub fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

/// SHA-256 of a file, hex.
pub fn sha256_file(path: &Path) -> Result<(u64, String)> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    hash_chunks(&mut f, path, |_, _| Ok(()))
}

/// Read the file `path` to its end in 1 MiB chunks, each passed to `each`
/// with its offset: the size and the SHA-256 (hex) of all of it.
fn hash_chunks(
    input: &mut File,
    path: &Path,
    mut each: impl FnMut(&[u8], u64) -> Result<()>,
) -> Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        hasher.update(&buf[..n]);
        each(&buf[..n], size)?;
        size += n as u64;
    }
    Ok((size, hex(&hasher.finalize())))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The repository lock: an flock on `<root>/.speediso-repo.lock`, held for
/// the whole of a publish or rollback so two of them never interleave.
/// The kernel releases it when the process exits, crash included.
pub struct RepoLock {
    _file: File,
}

/// Name of the lock file in the repository root.
pub const LOCK_FILE: &str = ".speediso-repo.lock";

impl RepoLock {
    /// Take the lock, waiting up to `timeout` for another holder.
    pub fn acquire(root: &Path, timeout: Duration) -> Result<RepoLock> {
        let path = root.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        let start = Instant::now();
        loop {
            // flock(2) on Linux, as the agent's spool lock: dropped by the
            // kernel when the holder dies, so no stale lock is left.
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("locking {}", path.display()))
                }
            }
            if start.elapsed() >= timeout {
                let mut holder = String::new();
                let _ = File::open(&path).and_then(|mut f| f.read_to_string(&mut holder));
                bail!(
                    "another speediso-repo holds {} ({}); gave up after {:.1}s (--lock-timeout)",
                    path.display(),
                    holder_text(&holder),
                    timeout.as_secs_f64()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // Who holds it, for the message another process prints.
        file.set_len(0).ok();
        let _ = writeln!(file, "pid {}", std::process::id());
        Ok(RepoLock { _file: file })
    }
}

fn holder_text(s: &str) -> String {
    let s = s.trim();
    if s.is_empty() {
        "holder unknown".to_string()
    } else {
        s.to_string()
    }
}
