//! CPU time this process has used (getrusage(RUSAGE_SELF)), for the report
//! benchmark's per-event cost.
#![allow(unsafe_code)]

use std::time::Duration;

/// (user, system) CPU time of the whole process, all threads.
pub fn self_cpu() -> (Duration, Duration) {
    // SAFETY: getrusage writes one `rusage` into the zeroed struct we own;
    // RUSAGE_SELF is always valid, so it cannot fail.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    (tv(ru.ru_utime), tv(ru.ru_stime))
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_time_advances() {
        let (u0, s0) = super::self_cpu();
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let (u1, s1) = super::self_cpu();
        assert!(u1 + s1 > u0 + s0);
    }
}
