//! Stopping the block-device stacks a customer's OS leaves on its disks:
//! device-mapper (LVM, dm-crypt, plain dm) through /dev/mapper/control,
//! md arrays through STOP_ARRAY. What `dmsetup remove` and `mdadm --stop`
//! do, without needing either in the image.
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// `struct dm_ioctl` of linux/dm-ioctl.h (interface version 4).
#[repr(C)]
struct DmIoctl {
    version: [u32; 3],
    data_size: u32,
    data_start: u32,
    target_count: u32,
    open_count: i32,
    flags: u32,
    event_nr: u32,
    padding: u32,
    dev: u64,
    name: [u8; 128],
    uuid: [u8; 129],
    data: [u8; 7],
}

const DM_IOCTL: u32 = 0xfd;
const _: () = assert!(std::mem::size_of::<DmIoctl>() == 312);

/// `_IOWR(0xfd, nr, struct dm_ioctl)`.
const fn dm_iowr(nr: u32) -> libc::Ioctl {
    ((3u32 << 30) | ((std::mem::size_of::<DmIoctl>() as u32) << 16) | (DM_IOCTL << 8) | nr)
        as libc::Ioctl
}
const DM_DEV_REMOVE: libc::Ioctl = dm_iowr(4);
const DM_DEV_STATUS: libc::Ioctl = dm_iowr(7);

/// The kernel's encoding of a device number in `dm_ioctl.dev`
/// (huge_encode_dev: minor's low byte, major, minor's high bits).
fn huge_encode(major: u32, minor: u32) -> u64 {
    u64::from((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12))
}

fn dm_call(ctl: &File, req: libc::Ioctl, major: u32, minor: u32) -> io::Result<DmIoctl> {
    let mut d = DmIoctl {
        version: [4, 0, 0],
        data_size: std::mem::size_of::<DmIoctl>() as u32,
        data_start: std::mem::size_of::<DmIoctl>() as u32,
        target_count: 0,
        open_count: 0,
        flags: 0,
        event_nr: 0,
        padding: 0,
        // No name and no uuid: the kernel finds the device by number.
        dev: huge_encode(major, minor),
        name: [0; 128],
        uuid: [0; 129],
        data: [0; 7],
    };
    // SAFETY: the kernel reads and writes at most data_size (the struct's
    // own size) bytes through the pointer, which points at `d`.
    let rc = unsafe { libc::ioctl(ctl.as_raw_fd(), req, &mut d as *mut DmIoctl) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(d)
}

fn control(dev: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(dev.join("mapper/control"))
}

/// How many times the device-mapper device `major:minor` is open (a
/// mount, a holder above it, a process). `dev` is the /dev directory.
pub fn dm_open_count(dev: &Path, major: u32, minor: u32) -> io::Result<i32> {
    Ok(dm_call(&control(dev)?, DM_DEV_STATUS, major, minor)?.open_count)
}

/// Remove the device-mapper device `major:minor` (its table and node):
/// `dmsetup remove`. EBUSY while it is open.
pub fn dm_remove(dev: &Path, major: u32, minor: u32) -> io::Result<()> {
    dm_call(&control(dev)?, DM_DEV_REMOVE, major, minor).map(|_| ())
}

// _IO(MD_MAJOR = 9, 0x32)
const STOP_ARRAY: libc::Ioctl = 0x932 as libc::Ioctl;

/// Stop the md array whose node is `node` (`mdadm --stop`). EBUSY while
/// anything else has it open.
pub fn md_stop(node: &Path) -> io::Result<()> {
    // O_EXCL: the kernel refuses when it is mounted or held; mdadm does the same.
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EXCL)
        .open(node)?;
    // SAFETY: STOP_ARRAY takes no argument.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), STOP_ARRAY, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    // libc::Ioctl is u64 on glibc and c_int on musl.
    #[allow(clippy::unnecessary_cast)]
    fn ioctl_numbers_are_the_kernels() {
        // DM_DEV_REMOVE_CMD = 4, DM_DEV_STATUS_CMD = 7; 312-byte struct.
        assert_eq!(DM_DEV_REMOVE as u64 & 0xffff_ffff, 0xc138_fd04);
        assert_eq!(DM_DEV_STATUS as u64 & 0xffff_ffff, 0xc138_fd07);
        assert_eq!(STOP_ARRAY as u64 & 0xffff_ffff, 0x932);
    }

    #[test]
    fn device_numbers_are_huge_encoded() {
        assert_eq!(huge_encode(253, 0), 0xfd00);
        assert_eq!(huge_encode(253, 3), 0xfd03);
        // Minor 300: low byte 0x2c, high bits shifted past the major.
        assert_eq!(huge_encode(253, 300), 0x2c | (253 << 8) | (0x100 << 12));
    }
}
