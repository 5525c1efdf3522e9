//! Read-back verification: every byte (full) or a stated fraction of 1 MiB
//! units (sample), compared with what the method must have left: zeros, the
//! regenerated random stream, or, for firmware erases, "no marker stamped
//! before the erase survives it".

use super::overwrite::{AlignedBuf, Failures, Pattern, Target, CHUNK, RETRIES};
use super::progress::Tracker;
use super::readback::{read_pieces, read_with_retry, Flow};
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::sync::Mutex;

/// Size of one sampled unit.
pub const UNIT: u64 = 1 << 20;
/// Units stamped with markers before a firmware erase (at least).
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

impl VerifyReport {
    /// `--verify off`: nothing read back.
    fn skipped(expected: String) -> VerifyReport {
        VerifyReport {
            method: "off".into(),
            expected,
            result: "skipped".into(),
            ..Default::default()
        }
    }
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
        Pattern::Stream { pass, alg, .. } => format!(
            "{} stream of pass {pass} regenerated from the seed",
            alg.name()
        ),
    };
    let total: u64 = ranges.iter().map(|(a, b)| b - a).sum();
    if mode == VerifyMode::Off {
        return VerifyReport::skipped(expected);
    }
    let list = pieces(ranges, mode);
    let bytes: u64 = list.iter().map(|(a, b)| b - a).sum();
    tracker.phase("verify", bytes);
    let bad = std::sync::atomic::AtomicU64::new(0);
    let lbs = t.lbs as usize;
    // `t.depth` reads in flight; the spare workers compare (and regenerate
    // the stream) while the others' reads are queued.
    let checked = read_pieces(t, &list, |a, g, read| {
        let len = g.len();
        if let Err(e) = read {
            bad.fetch_add(1, Ordering::Relaxed);
            let mut f = fails.lock().unwrap_or_else(|e| e.into_inner());
            f.add(t.lbs, a, len as u64, "verify-read", e.to_string());
            tracker.add(len as u64);
            return Flow::Continue;
        }
        // XOR the expected stream out in place: what is left must be
        // zeros. No second buffer, half the memory.
        if let Pattern::Stream { seed, pass, alg } = pattern {
            super::overwrite::xor_stream(alg, &seed, pass, a, g);
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
        Flow::Continue
    });
    if let Err(e) = checked {
        let mut f = fails.lock().unwrap_or_else(|e| e.into_inner());
        f.add(
            t.lbs,
            0,
            0,
            "buffers",
            format!("no memory for I/O buffers: {e}"),
        );
        return VerifyReport {
            method: mode.as_string(),
            expected,
            result: "failed".into(),
            mismatches: 1,
            note: Some(format!("no memory for I/O buffers: {e}")),
            ..Default::default()
        };
    }
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

/// Magic at the start of every marker block; followed by the run's nonce,
/// the block's LBA and its unit's index.
pub const MARKER_MAGIC: &[u8; 16] = b"SPEEDISO-WIPE-MK";
/// Bytes of a marker block that identify it: magic and nonce.
const MARKER_ID: usize = 32;

/// Units stamped with markers before a firmware erase. Every logical block
/// of a unit starts with magic, a per-run random nonce, its own LBA and the
/// unit's index, so neither an old copy of the disk nor a stale cache
/// entry from an earlier run can stand in for it, and any block that still
/// carries it after the erase is named.
#[derive(Debug, Clone, Default)]
pub struct Markers {
    pub nonce: [u8; 16],
    /// (offset, length) of each unit written and read back before the erase.
    pub units: Vec<(u64, u64)>,
    /// Units that could not be written or did not read back: not probes.
    pub not_placed: Vec<(u64, String)>,
}

/// Fill `buf` (one unit at device offset `off`) with marker blocks.
pub fn stamp(buf: &mut [u8], nonce: &[u8; 16], off: u64, unit: u64, lbs: usize) {
    for (i, b) in buf.chunks_mut(lbs).enumerate() {
        let lba = (off + (i * lbs) as u64) / lbs as u64;
        let mut head = [0u8; 48];
        head[..16].copy_from_slice(MARKER_MAGIC);
        head[16..32].copy_from_slice(nonce);
        head[32..40].copy_from_slice(&lba.to_le_bytes());
        head[40..48].copy_from_slice(&unit.to_le_bytes());
        // The header repeated over the whole block: a block the erase only
        // partly changed still shows it.
        for (j, x) in b.iter_mut().enumerate() {
            *x = head[j % head.len()];
        }
    }
}

/// Logical blocks of `buf` (read at device offset `off`) that still carry
/// this run's marker, as merged (first LBA, count) runs.
pub fn surviving(buf: &[u8], nonce: &[u8; 16], off: u64, lbs: usize) -> Vec<(u64, u64)> {
    let mut id = [0u8; MARKER_ID];
    id[..16].copy_from_slice(MARKER_MAGIC);
    id[16..].copy_from_slice(nonce);
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for (i, b) in buf.chunks(lbs).enumerate() {
        if b.len() < MARKER_ID || b[..MARKER_ID] != id {
            continue;
        }
        let lba = (off + (i * lbs) as u64) / lbs as u64;
        match runs.last_mut() {
            Some((s, n)) if *s + *n == lba => *n += 1,
            _ => runs.push((lba, 1)),
        }
    }
    runs
}

/// Units to stamp: `SNAPSHOT_UNITS`, or a fraction of the device in
/// sample mode when that is more, spread evenly (first unit included).
pub fn marker_offsets(size: u64, mode: VerifyMode) -> Vec<(u64, u64)> {
    let frac = match mode {
        VerifyMode::Off => return vec![],
        VerifyMode::Full => 0.0,
        VerifyMode::Sample(f) => f,
    };
    if size == 0 {
        return vec![];
    }
    let units = size.div_ceil(UNIT);
    let want = ((units as f64 * frac).ceil() as u64)
        .max(SNAPSHOT_UNITS)
        .min(units);
    let mut v: Vec<(u64, u64)> = (0..want)
        .map(|i| {
            let off = i * units / want * UNIT;
            (off, UNIT.min(size - off))
        })
        .collect();
    // The last unit too: firmware that skips the end of the LBA range
    // must not pass.
    let last = (units - 1) * UNIT;
    if v.last().is_some_and(|&(o, _)| o != last) {
        v.push((last, size - last));
    }
    v
}

/// Before a firmware erase: stamp the marker units, flush, and read each
/// back, so only markers the device really stored count as probes.
pub fn place_markers(t: &Target, mode: VerifyMode) -> Markers {
    let mut m = Markers::default();
    if getrandom::getrandom(&mut m.nonce).is_err() {
        // Unique per run is what matters, not secrecy.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        m.nonce = (t ^ (std::process::id() as u128) << 96).to_le_bytes();
    }
    let lbs = (t.lbs as usize).max(512);
    let list = marker_offsets(t.size, mode);
    let mut buf = AlignedBuf::new(UNIT as usize);
    let mut written = Vec::new();
    for (i, &(off, len)) in list.iter().enumerate() {
        let b = &mut buf.as_mut_slice()[..len as usize];
        stamp(b, &m.nonce, off, i as u64, lbs);
        let mut r = super::overwrite::write_all_at(&t.file, b, off);
        for _ in 1..RETRIES {
            if r.is_ok() {
                break;
            }
            r = super::overwrite::write_all_at(&t.file, b, off);
        }
        match r {
            Ok(()) => written.push((i, off, len)),
            Err(e) => m
                .not_placed
                .push((off, format!("marker write failed: {e}"))),
        }
    }
    if let Err(e) = t.file.sync_data() {
        for (_, off, _) in written.drain(..) {
            m.not_placed
                .push((off, format!("flush after the markers failed: {e}")));
        }
    }
    for (_, off, len) in written {
        let b = &mut buf.as_mut_slice()[..len as usize];
        match read_with_retry(t, b, off) {
            Err(e) => m
                .not_placed
                .push((off, format!("marker read-back failed: {e}"))),
            Ok(()) => {
                let blocks = len.div_ceil(lbs as u64);
                let kept: u64 = surviving(b, &m.nonce, off, lbs).iter().map(|r| r.1).sum();
                if kept == blocks {
                    m.units.push((off, len));
                } else {
                    m.not_placed.push((
                        off,
                        format!("only {kept} of {blocks} marker blocks read back"),
                    ));
                }
            }
        }
    }
    m
}

/// What reading the marker units back after the erase found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MarkerCounts {
    /// Units placed before the erase.
    pub placed: u64,
    /// Units read after the erase and searched for markers.
    pub compared: u64,
    /// Units with at least one surviving marker block.
    pub survived: u64,
    /// Units that could not be read after the erase (all retries failed).
    pub unreadable: u64,
    /// Units that could not be placed before the erase.
    pub not_placed: u64,
}

/// The verdict on the counts. A surviving marker fails. An unreadable
/// unit fails, except after a cryptographic erase (`indeterminate`), whose
/// content the specifications leave undefined: some drives answer reads
/// of blocks keyed with the old media key with an uncorrectable error.
/// Nothing compared is never a pass.
pub fn marker_verdict(c: &MarkerCounts, indeterminate: bool) -> (bool, String) {
    let mut note = format!(
        "{} units stamped with markers before the erase, {} compared after it; {} with a surviving marker; {} unreadable{}",
        c.placed,
        c.compared,
        c.survived,
        c.unreadable,
        if c.unreadable > 0 && indeterminate {
            " (content after a cryptographic erase is indeterminate; not a failure)"
        } else {
            ""
        }
    );
    if c.not_placed > 0 {
        note.push_str(&format!("; {} units could not be stamped", c.not_placed));
    }
    if c.compared == 0 {
        note.push_str("; nothing was compared, so nothing is proven");
        return (false, note);
    }
    let ok = c.survived == 0 && (c.unreadable == 0 || indeterminate);
    (ok, note)
}

/// After a firmware erase: read every marker unit back. A block that still
/// carries its marker fails naming its LBA; see `marker_verdict` for
/// unreadable units and for nothing compared.
pub fn verify_markers(
    t: &Target,
    m: &Markers,
    indeterminate: bool,
    mode: VerifyMode,
    fails: &Mutex<Failures>,
) -> VerifyReport {
    let started = std::time::Instant::now();
    let expected = "no marker written before the erase survives".to_string();
    if mode == VerifyMode::Off {
        return VerifyReport::skipped(expected);
    }
    let lbs = (t.lbs as usize).max(512);
    let mut buf = AlignedBuf::new(UNIT as usize);
    let mut c = MarkerCounts {
        placed: m.units.len() as u64,
        not_placed: m.not_placed.len() as u64,
        ..Default::default()
    };
    let mut bytes = 0u64;
    let add = |off: u64, len: u64, op: &str, e: String| {
        fails
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add(t.lbs, off, len, op, e)
    };
    for &(off, len) in &m.units {
        let b = &mut buf.as_mut_slice()[..len as usize];
        if let Err(e) = read_with_retry(t, b, off) {
            c.unreadable += 1;
            if !indeterminate {
                add(
                    off,
                    len,
                    "verify-read",
                    format!("unreadable after the erase: {e}"),
                );
            }
            continue;
        }
        c.compared += 1;
        bytes += len;
        let runs = surviving(b, &m.nonce, off, lbs);
        if !runs.is_empty() {
            c.survived += 1;
        }
        for (lba, n) in runs {
            add(
                lba * lbs as u64,
                n * lbs as u64,
                "verify",
                format!("marker written before the erase survived at LBA {lba}"),
            );
        }
    }
    let (ok, note) = marker_verdict(&c, indeterminate);
    let secs = started.elapsed().as_secs_f64();
    VerifyReport {
        method: "markers".into(),
        expected,
        fraction: Some(bytes as f64 / t.size.max(1) as f64),
        bytes_read: bytes,
        result: if ok { "passed" } else { "failed" }.into(),
        mismatches: c.survived + if indeterminate { 0 } else { c.unreadable },
        note: Some(note),
        duration_s: secs,
        throughput_bps: if secs > 0.0 { bytes as f64 / secs } else { 0.0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wipe::stream::Algorithm;

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
        detects_a_single_corrupted_byte_in(Algorithm::Aes128Ctr, Algorithm::ChaCha8);
        detects_a_single_corrupted_byte_in(Algorithm::ChaCha8, Algorithm::Aes128Ctr);
    }

    fn detects_a_single_corrupted_byte_in(alg: Algorithm, other: Algorithm) {
        use crate::wipe::overwrite::{fill_stream, Failures, Pattern, Target};
        use std::os::unix::fs::FileExt;
        // 1 MiB reads (few disks) and the smallest I/O of many disks.
        for chunk in [CHUNK, crate::wipe::overwrite::MIN_CHUNK] {
            let size = 3 * UNIT + 4096;
            let seed = [3u8; 32];
            let f = tempfile::tempfile().unwrap();
            let mut data = vec![0u8; size as usize];
            fill_stream(alg, &seed, 1, 0, &mut data);
            f.write_all_at(&data, 0).unwrap();
            let t = Target {
                file: f,
                size,
                lbs: 512,
                depth: 4,
                chunk,
                lanes: 2,
            };
            let tr = crate::wipe::Tracker::new("test".into(), None);
            let pat = Pattern::Stream { seed, pass: 1, alg };
            let fails = Mutex::new(Failures::default());
            let ok = verify_pattern(&t, &[(0, size)], VerifyMode::Full, pat, &tr, &fails);
            assert_eq!((ok.result.as_str(), ok.bytes_read), ("passed", size));
            // Wrong pass number: everything mismatches.
            let fails = Mutex::new(Failures::default());
            let wrong = verify_pattern(
                &t,
                &[(0, UNIT)],
                VerifyMode::Full,
                Pattern::Stream { seed, pass: 2, alg },
                &tr,
                &fails,
            );
            assert_eq!(wrong.result, "failed");
            // The other algorithm: everything mismatches.
            let fails = Mutex::new(Failures::default());
            let wrong = verify_pattern(
                &t,
                &[(0, UNIT)],
                VerifyMode::Full,
                Pattern::Stream {
                    seed,
                    pass: 1,
                    alg: other,
                },
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

    #[test]
    fn marker_blocks_are_found_by_nonce_and_named_by_lba() {
        let nonce = [9u8; 16];
        let off = 5 * UNIT;
        let mut b = vec![0u8; 8 * 512];
        stamp(&mut b, &nonce, off, 3, 512);
        // Header of block 0: magic, nonce, LBA (little-endian), unit index.
        assert_eq!(&b[..16], MARKER_MAGIC);
        assert_eq!(&b[16..32], &nonce);
        assert_eq!(b[32..40], (off / 512).to_le_bytes());
        assert_eq!(b[40..48], 3u64.to_le_bytes());
        assert_eq!(b[48..64], b[..16]);
        assert_eq!(surviving(&b, &nonce, off, 512), vec![(off / 512, 8)]);
        // Blocks 2 and 3 erased: two runs either side.
        b[1024..2048].fill(0);
        assert_eq!(
            surviving(&b, &nonce, off, 512),
            vec![(off / 512, 2), (off / 512 + 4, 4)]
        );
        // Another run's markers (a different nonce) are not this run's.
        assert!(surviving(&b, &[8u8; 16], off, 512).is_empty());
        // Random-looking data that happens to start with the magic only.
        let mut o = vec![0u8; 512];
        o[..16].copy_from_slice(MARKER_MAGIC);
        assert!(surviving(&o, &nonce, 0, 512).is_empty());
    }

    #[test]
    fn marker_units_cover_first_and_last() {
        let size = 100 * UNIT + 4096;
        let v = marker_offsets(size, VerifyMode::Full);
        assert_eq!(v.len() as u64, SNAPSHOT_UNITS + 1);
        assert_eq!(v[0], (0, UNIT));
        assert_eq!(*v.last().unwrap(), (100 * UNIT, 4096));
        assert_eq!(marker_offsets(size, VerifyMode::Sample(1.0)).len(), 101);
        assert!(marker_offsets(size, VerifyMode::Off).is_empty());
        assert!(marker_offsets(0, VerifyMode::Full).is_empty());
        assert_eq!(marker_offsets(3 * UNIT, VerifyMode::Full).len(), 3);
    }

    #[test]
    fn marker_verdicts() {
        let c = |placed, compared, survived, unreadable| MarkerCounts {
            placed,
            compared,
            survived,
            unreadable,
            not_placed: 0,
        };
        // (counts, crypto erase, passes)
        let table = [
            (c(65, 65, 0, 0), false, true),
            (c(65, 65, 1, 0), false, false),
            (c(65, 65, 1, 0), true, false),
            // Unreadable after a block erase: the content is defined, fail.
            (c(65, 64, 0, 1), false, false),
            // After a crypto erase: indeterminate, counted, not failed.
            (c(65, 64, 0, 1), true, true),
            // Nothing compared is never a pass.
            (c(65, 0, 0, 65), true, false),
            (c(0, 0, 0, 0), false, false),
        ];
        for (counts, crypto, want) in table {
            let (ok, note) = marker_verdict(&counts, crypto);
            assert_eq!(ok, want, "{counts:?} crypto={crypto}: {note}");
        }
        assert!(marker_verdict(&c(0, 0, 0, 0), false)
            .1
            .contains("nothing was compared"));
    }

    /// The marker round trip on a plain file standing in for the disk: an
    /// erase that did nothing fails naming the LBAs (the old comparison
    /// passed it on a disk of zeros: "zeros before and after,
    /// inconclusive"); an erase that zeroed all but one block fails naming
    /// exactly that block; a real erase passes; no markers at all fails.
    #[test]
    fn a_firmware_erase_that_left_a_marker_fails_with_its_lba() {
        use std::os::unix::fs::FileExt;
        let size = 8 * UNIT;
        let f = tempfile::tempfile().unwrap();
        f.set_len(size).unwrap();
        let t = Target {
            file: f,
            size,
            lbs: 512,
            depth: 1,
            chunk: CHUNK,
            lanes: 1,
        };
        let m = place_markers(&t, VerifyMode::Full);
        assert_eq!((m.units.len(), m.not_placed.len()), (8, 0));
        // No-op erase.
        let fails = Mutex::new(Failures::default());
        let r = verify_markers(&t, &m, false, VerifyMode::Full, &fails);
        assert_eq!((r.result.as_str(), r.mismatches), ("failed", 8), "{r:?}");
        let fr = &fails.lock().unwrap().ranges;
        assert_eq!((fr[0].lba_start, fr[0].op.as_str()), (0, "verify"));
        assert!(fr[0].error.contains("survived at LBA 0"), "{}", fr[0].error);
        // Everything zeroed but one block in unit 5.
        let keep = 5 * UNIT + 7 * 512;
        let mut blk = vec![0u8; 512];
        t.file.read_exact_at(&mut blk, keep).unwrap();
        t.file.write_all_at(&vec![0u8; size as usize], 0).unwrap();
        t.file.write_all_at(&blk, keep).unwrap();
        let fails = Mutex::new(Failures::default());
        let r = verify_markers(&t, &m, true, VerifyMode::Full, &fails);
        assert_eq!((r.result.as_str(), r.mismatches), ("failed", 1));
        let fr = &fails.lock().unwrap().ranges;
        assert_eq!(
            (fr.len(), fr[0].lba_start, fr[0].lba_count),
            (1, keep / 512, 1)
        );
        // A complete erase.
        t.file.write_all_at(&[0u8; 512], keep).unwrap();
        let fails = Mutex::new(Failures::default());
        let r = verify_markers(&t, &m, false, VerifyMode::Full, &fails);
        assert_eq!(r.result, "passed", "{r:?}");
        assert_eq!(r.bytes_read, size);
        // Nothing placed: failed, never passed.
        let r = verify_markers(&t, &Markers::default(), false, VerifyMode::Full, &fails);
        assert_eq!(r.result, "failed");
        assert!(r.note.unwrap().contains("nothing was compared"));
    }
}
