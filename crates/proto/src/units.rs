//! Units people write: durations in task files, options and flags.

use std::time::Duration;

/// Parse a duration: `"90s"`, `"30m"`, `"4h"`, `"2d"`, `"0"`, or an integer
/// number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last()? {
        (i, 's') => (&s[..i], 1),
        (i, 'm') => (&s[..i], 60),
        (i, 'h') => (&s[..i], 3600),
        (i, 'd') => (&s[..i], 86400),
        _ => (s, 1),
    };
    let n: u64 = num.parse().ok()?;
    n.checked_mul(mult).map(Duration::from_secs)
}
