//! I/O buffer memory for O_DIRECT: one anonymous mapping, its usable window
//! aligned to 2 MiB and marked `MADV_HUGEPAGE`.
//!
//! Why not a Vec per buffer: a direct I/O's pages are pinned and handed to
//! the device as a scatter list, one segment per physically contiguous run.
//! Separate 1 MiB heap buffers are 256 scattered 4 KiB pages each, so every
//! 1 MiB I/O becomes a long scatter list (and, past the queue's
//! max_segments, several requests). Huge pages make it one or two segments,
//! which is what fio's single big buffer gets where transparent huge pages
//! are on. Measured on the lent server: reads at queue depth 16 ran at 0.6-0.7
//! of fio's with per-buffer allocations.
#![allow(unsafe_code)]

use std::io;
use std::ptr::NonNull;

/// Huge page size on x86-64 and arm64 (4 KiB base pages).
pub const HUGE: usize = 2 << 20;

/// Zeroed memory for I/O buffers, freed on drop.
pub struct IoArena {
    map: NonNull<u8>,
    map_len: usize,
    off: usize,
    len: usize,
}

// Plain memory owned by this value; shared access is read-only.
unsafe impl Send for IoArena {}
unsafe impl Sync for IoArena {}

impl IoArena {
    /// `len` zeroed bytes (at least one page), page aligned; from 2 MiB up,
    /// starting on a 2 MiB boundary and backed by huge pages where the
    /// kernel has them (size such arenas in whole 2 MiB: a huge page is
    /// resident as a whole once touched).
    pub fn new(len: usize) -> io::Result<IoArena> {
        let len = len.max(4096).next_multiple_of(4096);
        let huge = len >= HUGE;
        let map_len = if huge { len + HUGE } else { len };
        // SAFETY: a fresh private anonymous mapping; no existing memory is
        // touched. Checked for MAP_FAILED below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let map = NonNull::new(p.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        let off = if huge {
            map.as_ptr().align_offset(HUGE)
        } else {
            0
        };
        if huge {
            // SAFETY: off < HUGE, so the window lies inside the mapping.
            let window = unsafe { map.as_ptr().add(off) };
            // Advice only: without transparent huge pages this fails or
            // does nothing, and the buffer still works.
            // SAFETY: the range is inside our own mapping.
            let _ = unsafe { libc::madvise(window.cast(), len, libc::MADV_HUGEPAGE) };
        }
        Ok(IoArena {
            map,
            map_len,
            off,
            len,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Start of the window, for I/O submitted to the kernel by pointer.
    pub fn as_ptr(&self) -> *mut u8 {
        // SAFETY: off is inside the mapping (see new).
        unsafe { self.map.as_ptr().add(self.off) }
    }

    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: len bytes from the window start are mapped, readable and
        // initialised (anonymous memory is zero-filled).
        unsafe { std::slice::from_raw_parts(self.as_ptr(), self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and &mut self gives exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.as_ptr(), self.len) }
    }
}

impl Drop for IoArena {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in new.
        unsafe { libc::munmap(self.map.as_ptr().cast(), self.map_len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_zeroed_and_writable() {
        let mut a = IoArena::new(3 << 20).unwrap();
        assert_eq!(IoArena::new(8192).unwrap().as_ptr() as usize % 4096, 0);
        assert_eq!(a.as_ptr() as usize % HUGE, 0);
        assert_eq!(a.len(), 3 << 20);
        assert!(a.as_slice().iter().all(|&b| b == 0));
        a.as_mut_slice()[12345] = 7;
        assert_eq!(a.as_slice()[12345], 7);
        // Rounded up to whole pages.
        assert_eq!(IoArena::new(10).unwrap().len(), 4096);
    }
}
