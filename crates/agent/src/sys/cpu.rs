//! CPU instructions a benchmark must issue exactly as its peer does, and
//! the CPU affinity of the calling thread (burn-in workers pin themselves).
#![allow(unsafe_code)]

/// `a % b` with a full 64-bit `div`, as gcc emits for sysbench's
/// `unsigned long long` prime test. LLVM would add a 32-bit fast path when
/// both operands fit in 32 bits, which makes the "same" loop up to about
/// 1.3x faster on some CPUs and events/s no longer comparable.
#[inline]
pub fn rem_u64(a: u64, b: u64) -> u64 {
    assert!(b != 0, "division by zero");
    #[cfg(target_arch = "x86_64")]
    {
        let rem: u64;
        // SAFETY: `div r64` divides rdx:rax by the register; with rdx = 0
        // and b != 0 the quotient fits, so it cannot fault. It touches no
        // memory and only the named registers (and flags).
        unsafe {
            std::arch::asm!(
                "div {d}",
                d = in(reg) b,
                inout("rax") a => _,
                inout("rdx") 0u64 => rem,
                options(pure, nomem, nostack),
            );
        }
        rem
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        a % b
    }
}

/// The CPUs the calling thread may run on (`sched_getaffinity`), ascending.
pub fn allowed_cpus() -> std::io::Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain bits; all zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is this thread; the kernel writes at most
    // size_of::<cpu_set_t>() bytes into `set`, which we own.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let max = 8 * std::mem::size_of_val(&set);
    // SAFETY: CPU_ISSET reads bit `c` of `set`, and c < the set's bits.
    Ok((0..max)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect())
}

/// Pin the calling thread to `cpu` (`sched_setaffinity`); an error when
/// the CPU does not exist or is not allowed to this process.
pub fn pin_to(cpu: usize) -> std::io::Result<()> {
    // SAFETY: as above, an empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= 8 * std::mem::size_of_val(&set) {
        return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: CPU_SET writes bit `cpu` of `set`; cpu is in range (checked).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; the kernel only reads `set`.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rem_matches_operator() {
        for (a, b) in [
            (10u64, 3u64),
            (9999, 97),
            (u64::MAX, 7),
            (5, 1 << 40),
            (0, 5),
        ] {
            assert_eq!(rem_u64(a, b), a % b, "{a} % {b}");
        }
    }

    #[test]
    fn a_thread_pins_to_an_allowed_cpu_only() {
        let cpus = allowed_cpus().unwrap();
        assert!(!cpus.is_empty());
        let last = *cpus.last().unwrap();
        std::thread::spawn(move || {
            pin_to(last).unwrap();
            assert_eq!(allowed_cpus().unwrap(), vec![last]);
            assert!(pin_to(1 << 20).is_err());
        })
        .join()
        .unwrap();
    }
}
