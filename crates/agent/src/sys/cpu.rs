//! CPU instructions a benchmark must issue exactly as its peer does.
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
}
