//! SCSI generic SG_IO (scsi/sg.h): send one CDB, with ATA commands wrapped
//! in ATA PASS-THROUGH(16). CDB encoding lives in `wipe::ata`.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// `struct sg_io_hdr` from scsi/sg.h.
#[repr(C)]
struct SgIoHdr {
    interface_id: libc::c_int,
    dxfer_direction: libc::c_int,
    cmd_len: libc::c_uchar,
    mx_sb_len: libc::c_uchar,
    iovec_count: libc::c_ushort,
    dxfer_len: libc::c_uint,
    dxferp: *mut libc::c_void,
    cmdp: *const libc::c_uchar,
    sbp: *mut libc::c_uchar,
    timeout: libc::c_uint,
    flags: libc::c_uint,
    pack_id: libc::c_int,
    usr_ptr: *mut libc::c_void,
    status: libc::c_uchar,
    masked_status: libc::c_uchar,
    msg_status: libc::c_uchar,
    sb_len_wr: libc::c_uchar,
    host_status: libc::c_ushort,
    driver_status: libc::c_ushort,
    resid: libc::c_int,
    duration: libc::c_uint,
    info: libc::c_uint,
}

const SG_IO: libc::Ioctl = 0x2285_u32 as libc::Ioctl;
const SG_DXFER_NONE: libc::c_int = -1;
const SG_DXFER_TO_DEV: libc::c_int = -2;
const SG_DXFER_FROM_DEV: libc::c_int = -3;

/// Data phase of a command.
pub enum Data<'a> {
    None,
    In(&'a mut [u8]),
    Out(&'a [u8]),
}

/// What came back: SCSI status, host/driver status and sense bytes.
#[derive(Debug, Clone, Default)]
pub struct Reply {
    pub status: u8,
    pub host_status: u16,
    pub driver_status: u16,
    pub sense: Vec<u8>,
}

/// Send `cdb` through SG_IO with `timeout_ms`. The kernel reads the CDB,
/// transfers the data buffer in the stated direction and writes up to 64
/// sense bytes; all buffers are borrowed for the duration of the call.
pub fn sg_io(f: &File, cdb: &[u8], data: Data<'_>, timeout_ms: u32) -> io::Result<Reply> {
    let mut sense = [0u8; 64];
    let (dir, ptr, len) = match data {
        Data::None => (SG_DXFER_NONE, std::ptr::null_mut(), 0),
        Data::In(b) => (
            SG_DXFER_FROM_DEV,
            b.as_mut_ptr() as *mut libc::c_void,
            b.len(),
        ),
        Data::Out(b) => (SG_DXFER_TO_DEV, b.as_ptr() as *mut libc::c_void, b.len()),
    };
    let mut h = SgIoHdr {
        interface_id: b'S' as libc::c_int,
        dxfer_direction: dir,
        cmd_len: cdb.len() as u8,
        mx_sb_len: sense.len() as u8,
        iovec_count: 0,
        dxfer_len: len as u32,
        dxferp: ptr,
        cmdp: cdb.as_ptr(),
        sbp: sense.as_mut_ptr(),
        timeout: timeout_ms,
        flags: 0,
        pack_id: 0,
        usr_ptr: std::ptr::null_mut(),
        status: 0,
        masked_status: 0,
        msg_status: 0,
        sb_len_wr: 0,
        host_status: 0,
        driver_status: 0,
        resid: 0,
        duration: 0,
        info: 0,
    };
    // SAFETY: every pointer in `h` points into a buffer that outlives the call,
    // with the length stated next to it.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), SG_IO, &mut h as *mut SgIoHdr) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Reply {
        status: h.status,
        host_status: h.host_status,
        driver_status: h.driver_status,
        sense: sense[..h.sb_len_wr as usize].to_vec(),
    })
}
