//! NVMe admin command passthrough (linux/nvme_ioctl.h). Command encoding
//! lives in `wipe::nvme`; this file only moves bytes to the kernel.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// `struct nvme_passthru_cmd` (a.k.a. nvme_admin_cmd), 72 bytes.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct PassthruCmd {
    opcode: u8,
    flags: u8,
    rsvd1: u16,
    nsid: u32,
    cdw2: u32,
    cdw3: u32,
    metadata: u64,
    addr: u64,
    metadata_len: u32,
    data_len: u32,
    cdw10: u32,
    cdw11: u32,
    cdw12: u32,
    cdw13: u32,
    cdw14: u32,
    cdw15: u32,
    timeout_ms: u32,
    result: u32,
}

const _: () = assert!(std::mem::size_of::<PassthruCmd>() == 72);

// _IOWR('N', 0x41, struct nvme_admin_cmd)
const NVME_IOCTL_ADMIN_CMD: libc::Ioctl = 0xC048_4E41_u32 as libc::Ioctl;
// _IO('N', 0x40): the namespace id of a namespace block device.
const NVME_IOCTL_ID: libc::Ioctl = 0x4E40_u32 as libc::Ioctl;

/// One admin command: opcode, namespace, command dwords 10-15.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AdminCmd {
    pub opcode: u8,
    pub nsid: u32,
    pub cdw10: u32,
    pub cdw11: u32,
    pub cdw12: u32,
    pub cdw13: u32,
    pub cdw14: u32,
    pub cdw15: u32,
    pub timeout_ms: u32,
}

/// A command that failed at the device: the NVMe status field.
#[derive(Debug)]
pub enum AdminError {
    Os(io::Error),
    /// Status code (SCT << 8 | SC) as the kernel returns it.
    Status(u16),
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminError::Os(e) => write!(f, "{e}"),
            AdminError::Status(s) => write!(
                f,
                "NVMe status 0x{s:03x} (type {}, code 0x{:02x})",
                (s >> 8) & 0x7,
                s & 0xff
            ),
        }
    }
}

impl std::error::Error for AdminError {}

/// Send `cmd` to the controller behind `f` (a namespace or controller
/// node). `data` is the buffer the command reads or fills (data transfer
/// direction is implied by the opcode); the kernel maps it for DMA.
/// Returns completion dword 0.
pub fn admin(f: &File, cmd: &AdminCmd, data: Option<&mut [u8]>) -> Result<u32, AdminError> {
    let (addr, len) = match data {
        Some(d) => (d.as_mut_ptr() as u64, d.len() as u32),
        None => (0, 0),
    };
    let mut c = PassthruCmd {
        opcode: cmd.opcode,
        nsid: cmd.nsid,
        addr,
        data_len: len,
        cdw10: cmd.cdw10,
        cdw11: cmd.cdw11,
        cdw12: cmd.cdw12,
        cdw13: cmd.cdw13,
        cdw14: cmd.cdw14,
        cdw15: cmd.cdw15,
        timeout_ms: cmd.timeout_ms,
        ..Default::default()
    };
    // SAFETY: the kernel reads and writes one PassthruCmd and transfers at
    // most data_len bytes at addr, which points into `data`, borrowed
    // mutably for the whole call.
    let rc = unsafe {
        libc::ioctl(
            f.as_raw_fd(),
            NVME_IOCTL_ADMIN_CMD,
            &mut c as *mut PassthruCmd,
        )
    };
    if rc < 0 {
        return Err(AdminError::Os(io::Error::last_os_error()));
    }
    if rc > 0 {
        return Err(AdminError::Status(rc as u16));
    }
    Ok(c.result)
}

/// The namespace id of the namespace block device `f`.
pub fn namespace_id(f: &File) -> io::Result<u32> {
    // SAFETY: NVME_IOCTL_ID takes no argument and returns the id.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), NVME_IOCTL_ID) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as u32)
}
