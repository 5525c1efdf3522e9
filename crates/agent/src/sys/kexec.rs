//! kexec_file_load(2) and an anonymous in-memory file to hold what it loads.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};

/// An anonymous memory-backed file (memfd_create), closed on exec.
pub fn memfd(name: &str) -> io::Result<File> {
    let c = CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a valid NUL-terminated string for the call's duration.
    let fd = unsafe { libc::memfd_create(c.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned to us and is owned by nothing else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Load `kernel` and `initrd` with the command line `cmdline` for a later
/// `kexec -e` (systemd's kexec.target). Needs CAP_SYS_BOOT; under Secure
/// Boot lockdown the kernel must be signed.
pub fn file_load(kernel: &File, initrd: &File, cmdline: &str) -> io::Result<()> {
    let c = CString::new(cmdline).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let len = c.as_bytes_with_nul().len();
    // SAFETY: the fds are open for the call; the kernel reads `len` bytes
    // (the string and its NUL) from `c`, which outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kexec_file_load,
            kernel.as_raw_fd(),
            initrd.as_raw_fd(),
            len as libc::c_ulong,
            c.as_ptr(),
            0 as libc::c_ulong,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
