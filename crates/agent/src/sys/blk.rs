//! Block device ioctls (linux/fs.h): size, logical block size, discard.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

// _IOR(0x12, 114, size_t)
const BLKGETSIZE64: libc::Ioctl = 0x8008_1272_u32 as libc::Ioctl;
// _IO(0x12, 104)
const BLKSSZGET: libc::Ioctl = 0x1268_u32 as libc::Ioctl;
// _IO(0x12, 119)
const BLKDISCARD: libc::Ioctl = 0x1277_u32 as libc::Ioctl;
// _IO(0x12, 125)
const BLKSECDISCARD: libc::Ioctl = 0x127d_u32 as libc::Ioctl;

/// Size of the block device in bytes.
pub fn size_bytes(f: &File) -> io::Result<u64> {
    let mut size: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer we pass.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), BLKGETSIZE64, &mut size as *mut u64) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(size)
}

/// Logical block size in bytes (the unit of O_DIRECT alignment and LBAs).
pub fn logical_block_size(f: &File) -> io::Result<u32> {
    let mut sz: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int through the pointer we pass.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), BLKSSZGET, &mut sz as *mut libc::c_int) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sz as u32)
}

/// Discard (secure = BLKSECDISCARD) the byte range `[start, start+len)`.
/// The kernel expects a pointer to two u64: start and length, both
/// multiples of the logical block size. The fd must be open for writing.
pub fn discard(f: &File, start: u64, len: u64, secure: bool) -> io::Result<()> {
    let range: [u64; 2] = [start, len];
    let req = if secure { BLKSECDISCARD } else { BLKDISCARD };
    // SAFETY: the kernel reads two u64 from the pointer; `range` outlives the call.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), req, range.as_ptr()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

// _IO(0x12, 95)
const BLKRRPART: libc::Ioctl = 0x125f_u32 as libc::Ioctl;

/// Ask the kernel to re-read the partition table (the fd must be the whole
/// disk). Loop devices without partition scanning answer EINVAL.
pub fn reread_partitions(f: &File) -> io::Result<()> {
    // SAFETY: BLKRRPART takes no argument.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), BLKRRPART, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
