//! Advisory whole-file locks (flock(2)), dropped by the kernel when the
//! descriptor closes, even when the holder dies, so no stale lock is left.
//! Used by the report spool (a live run's spool is never replayed or deleted
//! by another process) and by speediso-repo (one publish at a time).
#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::AsRawFd;

/// Try to take an exclusive lock without waiting. `Ok(false)` when another
/// open file description holds it. The lock lasts as long as `file` is open.
pub fn try_lock_exclusive(file: &File) -> std::io::Result<bool> {
    // SAFETY: flock takes a valid open fd (borrowed from `file` for the
    // duration of the call) and an operation flag; it touches no memory.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_open_cannot_lock() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let a = File::open(f.path()).unwrap();
        let b = File::open(f.path()).unwrap();
        assert!(try_lock_exclusive(&a).unwrap());
        assert!(!try_lock_exclusive(&b).unwrap());
        drop(a);
        assert!(try_lock_exclusive(&b).unwrap());
    }
}
