//! Read-back verification: every byte (full) or a stated fraction of 1 MiB
//! units (sample), compared with what the method must have left: zeros, the
//! regenerated random stream, or, for firmware erases that define no
//! pattern, "not the data that was there before".

use super::overwrite::{AlignedBuf, Failures, Pattern, Slots, Target, CHUNK, RETRIES, SPARE};
use super::Tracker;
use crate::sys::iobuf::IoArena;
use serde::Serialize;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Size of one sampled unit.
pub const UNIT: u64 = 1 << 20;
/// Units read before and after a firmware erase to show the data changed.
pub const SNAPSHOT_UNITS: u64 = 64;

/// `--verify` / `speediso.wipe.verify`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum VerifyMode {
    Full,
    Sample(f64),
    Off,
}

impl VerifyMode {
    pub fn parse(s: &str) -> Option<VerifyMode> {
        match s {
            "full" => Some(VerifyMode::Full),
            "off" => Some(VerifyMode::Off),
            _ => {
                let f: f64 = s.strip_prefix("sample:")?.parse().ok()?;
                (f > 0.0 && f <= 1.0).then_some(VerifyMode::Sample(f))
            }
        }
    }
    pub fn as_string(&self) -> String {
        match self {
            VerifyMode::Full => "full".into(),
            VerifyMode::Off => "off".into(),
            VerifyMode::Sample(f) => format!("sample:{f}"),
        }
    }
}

/// What verification found; goes into the certificate.
#[derive(Debug, Clone, Serialize, Default)]
pub struct VerifyReport {
    /// full, sample or off.
    pub method: String,
    /// What was expected: zeros, the ChaCha8 stream of pass N, or changed data.
    pub expected: String,
    /// Fraction of the device (or of the erased ranges) read back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fraction: Option<f64>,
    pub bytes_read: u64,
    /// passed, failed or skipped.
    pub result: String,
    /// Ranges that did not match, or could not be read.
    pub mismatches: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    pub duration_s: f64,
    pub throughput_bps: f64,
}

/// Deterministic-enough positions for sampling: xorshift seeded from the OS.
struct Xs(u64);
impl Xs {
    fn new() -> Xs {
        let mut b = [0u8; 8];
        let _ = getrandom::getrandom(&mut b);
        Xs(u64::from_le_bytes(b) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The pieces of `ranges` to read under `mode`: all of them, or a sample
/// of 1 MiB units (always including the first and last unit of each range).
pub fn pieces(ranges: &[(u64, u64)], mode: VerifyMode) -> Vec<(u64, u64)> {
    match mode {
        VerifyMode::Off => vec![],
        VerifyMode::Full => {
            let mut v = Vec::new();
            for &(a, b) in ranges {
                let mut o = a;
                while o < b {
                    let e = (o + CHUNK as u64).min(b);
                    v.push((o, e));
                    o = e;
                }
            }
            v
        }
        VerifyMode::Sample(f) => {
            let mut rng = Xs::new();
            let mut v = Vec::new();
            for &(a, b) in ranges {
                let units = (b - a).div_ceil(UNIT);
                let want = ((units as f64 * f).ceil() as u64).clamp(1, units);
                let mut chosen = std::collections::BTreeSet::new();
                chosen.insert(0);
                chosen.insert(units - 1);
                if want >= units {
                    chosen.extend(0..units);
                }
                while (chosen.len() as u64) < want {
                    chosen.insert(rng.next() % units);
                }
                for u in chosen {
                    let s = a + u * UNIT;
                    v.push((s, (s + UNIT).min(b)));
                }
            }
            v
        }
    }
}

fn read_with_retry(t: &Target, buf: &mut [u8], off: u64) -> std::io::Result<()> {
    let mut last = None;
    for _ in 0..RETRIES {
        match read_exact_at(t, buf, off) {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("read failed")))
}

fn read_exact_at(t: &Target, mut buf: &mut [u8], mut off: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match t.file.read_at(buf, off) {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "short read",
                ))
            }
            Ok(n) => {
                buf = &mut buf[n..];
                off += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// All bytes zero? Word-wise so the compiler vectorises it.
pub fn is_zero(b: &[u8]) -> bool {
    b.chunks(4096).all(|c| {
        let words = c.chunks_exact(8);
        let rest = words.remainder().iter().all(|&x| x == 0);
        rest && words.fold(0u64, |acc, w| {
            acc | u64::from_ne_bytes(w.try_into().unwrap_or([1; 8]))
        }) == 0
    })
}

/// The first and last non-zero byte, rounded out to logical blocks.
fn nonzero_span(b: &[u8], lbs: usize) -> Option<(usize, usize)> {
    let first = b.iter().position(|&x| x != 0)?;
    let last = b.iter().rposition(|&x| x != 0)?;
    Some((first / lbs * lbs, (last / lbs + 1) * lbs))
}

/// Read back `ranges` and compare with `pattern`. Mismatches and read
/// errors are recorded in `fails`.
pub fn verify_pattern(
    t: &Target,
    ranges: &[(u64, u64)],
    mode: VerifyMode,
    pattern: Pattern,
    tracker: &Tracker,
    fails: &Mutex<Failures>,
) -> VerifyReport {
    let started = std::time::Instant::now();
    let expected = match pattern {
        Pattern::Zero => "zeros".to_string(),
        Pattern::Stream { pass, .. } => {
            format!("ChaCha8 stream of pass {pass} regenerated from the seed")
        }
    };
    let total: u64 = ranges.iter().map(|(a, b)| b - a).sum();
    if mode == VerifyMode::Off {
        return VerifyReport {
            method: "off".into(),
            expected,
            result: "skipped".into(),
            ..Default::default()
        };
    }
    let list = pieces(ranges, mode);
    let bytes: u64 = list.iter().map(|(a, b)| b - a).sum();
    tracker.phase("verify", bytes);
    let next = AtomicUsize::new(0);
    let bad = std::sync::atomic::AtomicU64::new(0);
    let lbs = t.lbs as usize;
    // `t.depth` reads in flight; the spare workers compare (and regenerate
    // the stream) while the others' reads are queued.
    let slots = Slots::new(t.depth);
    let workers = (t.depth + SPARE).min(list.len().max(1));
    let mut arena = match IoArena::new(workers * CHUNK) {
        Ok(a) => a,
        Err(e) => {
            let mut f = fails.lock().unwrap_or_else(|e| e.into_inner());
            f.add(
                t.lbs,
                0,
                0,
                "buffers",
                format!("no memory for I/O buffers: {e}"),
            );
            bad.fetch_add(1, Ordering::Relaxed);
            return VerifyReport {
                method: mode.as_string(),
                expected,
                result: "failed".into(),
                mismatches: 1,
                note: Some(format!("no memory for I/O buffers: {e}")),
                ..Default::default()
            };
        }
    };
    let work = |got: &mut [u8]| loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(&(a, b)) = list.get(i) else { return };
        let len = (b - a) as usize;
        let g = &mut got[..len];
        if let Err(e) = slots.with(|| read_with_retry(t, g, a)) {
            bad.fetch_add(1, Ordering::Relaxed);
            let mut f = fails.lock().unwrap_or_else(|e| e.into_inner());
            f.add(t.lbs, a, len as u64, "verify-read", e.to_string());
            tracker.add(len as u64);
            continue;
        }
        // XOR the expected stream out in place: what is left must be
        // zeros. No second buffer, half the memory.
        if let Pattern::Stream { seed, pass } = pattern {
            super::overwrite::xor_stream(&seed, pass, a, g);
        }
        if !is_zero(g) {
            bad.fetch_add(1, Ordering::Relaxed);
            let (x, y) = nonzero_span(g, lbs).unwrap_or((0, len));
            let mut f = fails.lock().unwrap_or_else(|e| e.into_inner());
            f.add(
                t.lbs,
                a + x as u64,
                (y - x) as u64,
                "verify",
                format!("data is not {expected}"),
            );
        }
        tracker.add(len as u64);
    };
    let work = &work;
    std::thread::scope(|s| {
        for got in arena.as_mut_slice().chunks_mut(CHUNK).take(workers) {
            s.spawn(move || work(got));
        }
    });
    let secs = started.elapsed().as_secs_f64();
    let mismatches = bad.load(Ordering::Relaxed);
    VerifyReport {
        method: match mode {
            VerifyMode::Full => "full".into(),
            _ => "sample".into(),
        },
        expected,
        fraction: Some(if total == 0 {
            1.0
        } else {
            bytes as f64 / total as f64
        }),
        bytes_read: bytes,
        result: if mismatches == 0 { "passed" } else { "failed" }.into(),
        mismatches,
        note: None,
        duration_s: secs,
        throughput_bps: if secs > 0.0 { bytes as f64 / secs } else { 0.0 },
    }
}

/// One unit read before a firmware erase: where, a hash, and whether it
/// was all zeros (then "unchanged" proves nothing either way).
#[derive(Debug, Clone)]
pub struct Snap {
    pub off: u64,
    pub len: u64,
    pub hash: u64,
    pub zero: bool,
}

fn hash(b: &[u8]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    b.hash(&mut h);
    h.finish()
}

/// Read `SNAPSHOT_UNITS` (or, in full mode, more: one unit per 1/fraction)
/// spread over the device before a firmware erase.
pub fn snapshot(t: &Target, mode: VerifyMode) -> Vec<Snap> {
    let frac = match mode {
        VerifyMode::Off => return vec![],
        VerifyMode::Full => 0.0,
        VerifyMode::Sample(f) => f,
    };
    let units = t.size.div_ceil(UNIT).max(1);
    let want = ((units as f64 * frac).ceil() as u64)
        .max(SNAPSHOT_UNITS)
        .min(units);
    let mut buf = AlignedBuf::new(UNIT as usize);
    (0..want)
        .filter_map(|i| {
            let off = i * units / want * UNIT;
            let len = UNIT.min(t.size - off) as usize;
            let b = &mut buf.as_mut_slice()[..len];
            read_with_retry(t, b, off).ok()?;
            Some(Snap {
                off,
                len: len as u64,
                hash: hash(b),
                zero: b.iter().all(|&x| x == 0),
            })
        })
        .collect()
}

/// After a firmware erase: every snapshot unit must differ from before, or
/// read as zeros where the command defines zeros (block erase, user-data
/// format). Units that were zeros before and still are prove nothing and
/// are counted, not failed.
pub fn verify_changed(
    t: &Target,
    before: &[Snap],
    zeros_ok: bool,
    mode: VerifyMode,
    fails: &Mutex<Failures>,
) -> VerifyReport {
    let started = std::time::Instant::now();
    if mode == VerifyMode::Off {
        return VerifyReport {
            method: "off".into(),
            expected: "changed data".into(),
            result: "skipped".into(),
            ..Default::default()
        };
    }
    let mut buf = AlignedBuf::new(UNIT as usize);
    let (mut bad, mut inconclusive, mut zeros, mut bytes) = (0u64, 0u64, 0u64, 0u64);
    for s in before {
        let b = &mut buf.as_mut_slice()[..s.len as usize];
        if let Err(e) = read_with_retry(t, b, s.off) {
            bad += 1;
            fails.lock().unwrap_or_else(|e| e.into_inner()).add(
                t.lbs,
                s.off,
                s.len,
                "verify-read",
                e.to_string(),
            );
            continue;
        }
        bytes += s.len;
        let is_zero = b.iter().all(|&x| x == 0);
        zeros += is_zero as u64;
        let changed = hash(b) != s.hash;
        if changed && (!is_zero || zeros_ok || !s.zero) {
            continue;
        }
        if s.zero && is_zero {
            inconclusive += 1;
            continue;
        }
        bad += 1;
        fails.lock().unwrap_or_else(|e| e.into_inner()).add(
            t.lbs,
            s.off,
            s.len,
            "verify",
            "data unchanged by the erase".into(),
        );
    }
    let secs = started.elapsed().as_secs_f64();
    VerifyReport {
        method: "sample".into(),
        expected: if zeros_ok { "zeros or changed data".into() } else { "changed data".into() },
        fraction: Some(bytes as f64 / t.size.max(1) as f64),
        bytes_read: bytes,
        result: if bad == 0 { "passed" } else { "failed" }.into(),
        mismatches: bad,
        note: Some(format!(
            "{} units compared with a read before the erase; {zeros} read as zeros after; {inconclusive} were zeros before and after",
            before.len()
        )),
        duration_s: secs,
        throughput_bps: if secs > 0.0 { bytes as f64 / secs } else { 0.0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_modes() {
        assert_eq!(VerifyMode::parse("full"), Some(VerifyMode::Full));
        assert_eq!(
            VerifyMode::parse("sample:0.1"),
            Some(VerifyMode::Sample(0.1))
        );
        assert_eq!(VerifyMode::parse("sample:0"), None);
        assert_eq!(VerifyMode::parse("sample:1.5"), None);
        assert_eq!(VerifyMode::parse("some"), None);
    }

    #[test]
    fn sample_pieces_fraction_and_ends() {
        let size = 100 * UNIT;
        let p = pieces(&[(0, size)], VerifyMode::Sample(0.1));
        assert_eq!(p.len(), 10);
        assert_eq!(p[0], (0, UNIT));
        assert_eq!(*p.last().unwrap(), (99 * UNIT, size));
        let full = pieces(&[(0, size + 512)], VerifyMode::Full);
        assert_eq!(full.iter().map(|(a, b)| b - a).sum::<u64>(), size + 512);
        assert!(pieces(&[(0, size)], VerifyMode::Off).is_empty());
    }

    #[test]
    fn nonzero_span_rounds_to_blocks() {
        let zero = vec![0u8; 4099];
        let mut got = zero.clone();
        got[700] = 1;
        got[1500] = 1;
        assert_eq!(nonzero_span(&got, 512), Some((512, 1536)));
        assert_eq!(nonzero_span(&zero, 512), None);
        assert!(is_zero(&zero));
        assert!(!is_zero(&got));
        got.fill(0);
        got[4098] = 7; // in the tail that is not a whole word
        assert!(!is_zero(&got));
    }

    /// Verification on a plain file (no O_DIRECT needed for the logic):
    /// the stream passes; one flipped byte fails with its block's range.
    #[test]
    fn detects_a_single_corrupted_byte() {
        use crate::wipe::overwrite::{fill_stream, Failures, Pattern, Target};
        use std::os::unix::fs::FileExt;
        let size = 3 * UNIT + 4096;
        let seed = [3u8; 32];
        let f = tempfile::tempfile().unwrap();
        let mut data = vec![0u8; size as usize];
        fill_stream(&seed, 1, 0, &mut data);
        f.write_all_at(&data, 0).unwrap();
        let t = Target {
            file: f,
            size,
            lbs: 512,
            depth: 4,
        };
        let tr = crate::wipe::Tracker::new("test".into(), None);
        let pat = Pattern::Stream { seed, pass: 1 };
        let fails = Mutex::new(Failures::default());
        let ok = verify_pattern(&t, &[(0, size)], VerifyMode::Full, pat, &tr, &fails);
        assert_eq!((ok.result.as_str(), ok.bytes_read), ("passed", size));
        // Wrong pass number: everything mismatches.
        let fails = Mutex::new(Failures::default());
        let wrong = verify_pattern(
            &t,
            &[(0, UNIT)],
            VerifyMode::Full,
            Pattern::Stream { seed, pass: 2 },
            &tr,
            &fails,
        );
        assert_eq!(wrong.result, "failed");
        // One byte flipped at 2 MiB + 1000.
        let at = 2 * UNIT + 1000;
        t.file
            .write_all_at(&[data[at as usize] ^ 0x40], at)
            .unwrap();
        let fails = Mutex::new(Failures::default());
        let bad = verify_pattern(&t, &[(0, size)], VerifyMode::Full, pat, &tr, &fails);
        assert_eq!((bad.result.as_str(), bad.mismatches), ("failed", 1));
        let r = &fails.lock().unwrap().ranges[0];
        assert_eq!(
            (r.lba_start, r.lba_count, r.op.as_str()),
            (at / 512, 1, "verify")
        );
        // A zero expectation on stream data fails too.
        let fails = Mutex::new(Failures::default());
        let z = verify_pattern(
            &t,
            &[(0, size)],
            VerifyMode::Sample(0.5),
            Pattern::Zero,
            &tr,
            &fails,
        );
        assert_eq!(z.result, "failed");
    }
}
