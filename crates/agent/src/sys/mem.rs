//! Memory pinning and the page size, for the burn-in memory test: mlock(2)
//! keeps the pages under test resident (so a physical address read from
//! /proc/self/pagemap stays true for the whole test), munlock(2) lets them go.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_is_a_power_of_two() {
        let p = page_size();
        assert!(p >= 4096 && p.is_power_of_two(), "{p}");
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
        mlock(&v).unwrap();
        munlock(&v).unwrap();
        assert!(v.iter().all(|w| *w == 7));
    }
}
