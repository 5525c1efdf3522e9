//! Memory pinning, the page size and streaming stores, for the burn-in
//! memory test: mlock(2) keeps the pages under test resident (so a physical
//! address read from /proc/self/pagemap stays true for the whole test),
//! munlock(2) lets them go; `stream_copy` writes around the caches, so a
//! pattern goes to the DIMMs (and is read back from them), not only to a
//! last-level cache that may be hundreds of MiB, at about twice the speed
//! of plain stores (no read for ownership).
#![allow(unsafe_code)]

/// The size of a page in bytes (4096 on x86-64), from sysconf(_SC_PAGESIZE).
pub fn page_size() -> u64 {
    // SAFETY: sysconf reads a constant of the running system; it takes no
    // pointer and touches no memory of ours.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as u64
    } else {
        4096
    }
}

/// `n` zeroed words from the global allocator without touching them (a
/// large calloc is fresh zero pages from mmap, faulted in on first use), or
/// an error where `vec![0; n]` would abort the process.
pub fn zeroed_words(n: usize) -> std::io::Result<Vec<u64>> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let layout = std::alloc::Layout::array::<u64>(n)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::OutOfMemory, e))?;
    // SAFETY: the layout's size is non-zero (n > 0), as alloc_zeroed requires.
    let p = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<u64>();
    if p.is_null() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::OutOfMemory,
            format!("cannot allocate {} bytes", layout.size()),
        ));
    }
    // SAFETY: `p` comes from the global allocator with the layout of `n`
    // u64s (what Vec<u64> with capacity n frees with), and all n words are
    // initialised: zero bytes are a valid u64.
    Ok(unsafe { Vec::from_raw_parts(p, n, n) })
}

/// Ask the kernel to back `buf` with transparent huge pages
/// (madvise(MADV_HUGEPAGE) over the whole pages inside it): far fewer page
/// faults and TLB misses over a region of most of the machine's memory.
/// Where THP is off ("never") it does nothing; the kernel falls back to
/// small pages when it has no huge ones free.
pub fn advise_huge(buf: &[u64]) -> std::io::Result<()> {
    let page = page_size() as usize;
    let start = buf.as_ptr() as usize;
    let end = start + std::mem::size_of_val(buf);
    let first = start.next_multiple_of(page);
    if first >= end {
        return Ok(());
    }
    let len = (end - first) / page * page;
    // SAFETY: [first, first + len) is whole pages inside `buf`'s memory;
    // MADV_HUGEPAGE changes only how the kernel backs them, never what
    // they hold.
    let rc = unsafe { libc::madvise(first as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Lock `buf`'s pages in memory (faulting them in first). Fails with the
/// kernel's error (EPERM/ENOMEM) when RLIMIT_MEMLOCK is too small and the
/// process lacks CAP_IPC_LOCK.
pub fn mlock(buf: &[u64]) -> std::io::Result<()> {
    // SAFETY: the range is `buf`'s own memory, valid for the call; mlock
    // only changes how the kernel keeps those pages, never their contents.
    let rc = unsafe { libc::mlock(buf.as_ptr().cast(), std::mem::size_of_val(buf)) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Undo `mlock` on the same range (before the memory is freed, so a heap
/// that keeps the pages does not keep them locked).
pub fn munlock(buf: &[u64]) -> std::io::Result<()> {
    // SAFETY: as for mlock: the range is `buf`'s memory and only its
    // residency changes.
    let rc = unsafe { libc::munlock(buf.as_ptr().cast(), std::mem::size_of_val(buf)) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Copy `src` into `dst` (the shorter length) with non-temporal stores:
/// the lines go to memory without being read into or kept in the caches.
/// Call `store_fence` before another thread (or a check) reads `dst`.
#[cfg(target_arch = "x86_64")]
pub fn stream_copy(dst: &mut [u64], src: &[u64]) {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_stream_si128};
    let n = dst.len().min(src.len());
    let mut i = 0;
    // Plain stores up to a 16-byte boundary, which movntdq needs.
    while i < n && !(dst.as_ptr() as usize + i * 8).is_multiple_of(16) {
        dst[i] = src[i];
        i += 1;
    }
    while i + 2 <= n {
        // SAFETY: SSE2 is part of x86_64. src[i..i + 2] and dst[i..i + 2]
        // are in bounds (i + 2 <= n <= both lengths); the load takes any
        // alignment, and dst + i is 16-byte aligned (the loop above, and i
        // steps by two 8-byte words).
        unsafe {
            let v = _mm_loadu_si128(src.as_ptr().add(i).cast::<__m128i>());
            _mm_stream_si128(dst.as_mut_ptr().add(i).cast::<__m128i>(), v);
        }
        i += 2;
    }
    if i < n {
        dst[i] = src[i];
    }
}

/// Elsewhere: a plain copy.
#[cfg(not(target_arch = "x86_64"))]
pub fn stream_copy(dst: &mut [u64], src: &[u64]) {
    let n = dst.len().min(src.len());
    dst[..n].copy_from_slice(&src[..n]);
}

/// Order the streaming stores before any later load or store (sfence).
pub fn store_fence() {
    // SAFETY: SSE is part of x86_64; sfence takes no operands and only
    // orders this thread's stores.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_is_a_power_of_two() {
        let p = page_size();
        assert!(p >= 4096 && p.is_power_of_two(), "{p}");
    }

    #[test]
    fn stream_copy_copies_at_any_alignment() {
        let src: Vec<u64> = (0..1000).map(|i| i * 3 + 1).collect();
        for (at, len) in [(0, 1000), (1, 999), (1, 6), (3, 2), (0, 1), (5, 0)] {
            let mut dst = vec![0u64; 1000];
            stream_copy(&mut dst[at..at + len], &src[..len]);
            store_fence();
            assert_eq!(&dst[at..at + len], &src[..len], "at {at} len {len}");
            assert!(dst[..at].iter().chain(&dst[at + len..]).all(|w| *w == 0));
        }
    }

    #[test]
    fn zeroed_words_are_zero() {
        let v = zeroed_words(1 << 16).unwrap();
        assert_eq!(v.len(), 1 << 16);
        assert!(v.iter().all(|w| *w == 0));
        assert!(zeroed_words(0).unwrap().is_empty());
    }

    #[test]
    fn a_small_buffer_locks_and_unlocks() {
        // 64 KiB fits the default RLIMIT_MEMLOCK (8 MiB) even without root.
        let v = vec![7u64; 8192];
        advise_huge(&v).unwrap();
        advise_huge(&v[1..2]).unwrap();
        mlock(&v).unwrap();
        munlock(&v).unwrap();
        assert!(v.iter().all(|w| *w == 7));
    }
}
