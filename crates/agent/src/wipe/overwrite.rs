//! Overwrite engine: large aligned O_DIRECT writes, `MAX_DEPTH` in flight
//! through one io_uring per disk (`ring`; threads where io_uring is
//! unavailable), zeros or a keystream (`stream`) that can be regenerated at
//! any offset, bounded retries and a record of the LBA ranges that could
//! not be written.

use super::progress::Tracker;
pub use super::stream::Algorithm;
use super::stream::Keystream;
use crate::sys::iobuf::IoArena;
use anyhow::{Context, Result};
use serde::Serialize;
use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// Largest I/O: what fio's `--bs=1M` peer uses, large enough to keep the
/// device streaming (see `shape_for` for many disks).
pub const CHUNK: usize = 1 << 20;
/// I/Os in flight per disk, however many disks run at once: what fio's
/// `--iodepth=16` peer keeps queued.
pub const MAX_DEPTH: usize = 16;
/// Threaded fallback only: workers that generate the random stream (or
/// compare what was read) while the others' I/Os are in flight, so CPU work
/// never leaves the queue short. (The io_uring engine does that work on
/// the ring's thread between completions.)
pub const SPARE: usize = 2;
/// Smallest I/O size: 16 in flight of 256 KiB keep 4 MiB queued per disk,
/// more than a fast NVMe drive needs to stream (and at or above the
/// `max_sectors_kb` most NVMe and SAS queues split larger requests into).
pub const MIN_CHUNK: usize = 256 << 10;
/// Buffer memory shared by every disk erased or verified at once, until
/// each disk is down to `MIN_CHUNK`-sized I/Os. 48 MiB keeps four disks
/// under the 64 MiB RSS of issue #6.
pub const BUFFER_BUDGET: usize = 48 << 20;

/// How each disk's I/O is shaped when `disks` run at once: always
/// `MAX_DEPTH` in flight; the I/O size shrinks so buffers stay bounded.
///
/// Memory formula (buffers, per run):
///   slots    = MAX_DEPTH + SPARE = 18 per disk at most, each one buffer:
///              io_uring (`ring`): 16 in flight and the spares generated
///              ahead (none with 3-4 rings a disk: 16); the threaded
///              fallback: 16 I/O workers and 2 spares
///   chunk(d) = clamp(pow2_floor(BUFFER_BUDGET / (18 d)), MIN_CHUNK, CHUNK)
///   total(d) <= 18 d chunk(d) <= max(BUFFER_BUDGET, d * 18 * MIN_CHUNK)
/// i.e. 1 MiB I/Os (18 MiB a disk) for 1-2 disks, 512 KiB for 3-5 (4
/// disks: 36 MiB), then 256 KiB: 4.5 MiB a disk, linear (24 disks:
/// 108 MiB). `buffer_bytes` states that bound. Zeros need no per-slot
/// buffer: one 2 MiB buffer serves every disk and ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub depth: usize,
    pub chunk: usize,
    /// io_uring rings (and threads) per disk, `depth` shared among them
    /// (`ring::lanes_for`: the cores each disk has).
    pub lanes: usize,
}

impl Shape {
    /// Buffer bytes one disk holds at most while it is written with the
    /// random stream or verified (either engine).
    pub fn buffer_bytes(&self) -> usize {
        (self.depth + SPARE) * self.chunk
    }
}

/// The shape of each disk's I/O when `disks` are erased in parallel.
pub fn shape_for(disks: usize) -> Shape {
    let per = BUFFER_BUDGET / (disks.max(1) * (MAX_DEPTH + SPARE));
    // Largest power of two not above `per` (I/O sizes stay aligned).
    let pow2 = if per == 0 { 0 } else { 1usize << per.ilog2() };
    Shape {
        depth: MAX_DEPTH,
        chunk: pow2.clamp(MIN_CHUNK, CHUNK),
        lanes: super::ring::lanes_for(disks),
    }
}

/// Buffer bytes of a whole run of `disks` at once (the bound the formula
/// above states).
pub fn buffers_for(disks: usize) -> usize {
    disks * shape_for(disks).buffer_bytes()
}

/// A counting semaphore: at most `depth` I/Os are in flight while more
/// workers prepare (generate, compare) their buffers outside it.
pub struct Slots {
    free: Mutex<usize>,
    cv: std::sync::Condvar,
}

impl Slots {
    pub fn new(n: usize) -> Slots {
        Slots {
            free: Mutex::new(n.max(1)),
            cv: std::sync::Condvar::new(),
        }
    }
    /// Run `f` holding one slot.
    pub fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        {
            let mut n = self.free.lock().unwrap_or_else(|e| e.into_inner());
            while *n == 0 {
                n = self.cv.wait(n).unwrap_or_else(|e| e.into_inner());
            }
            *n -= 1;
        }
        let r = f();
        *self.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.cv.notify_one();
        r
    }
}
/// The ChaCha8 stream's key block (`stream::CHACHA_BLOCK`).
pub const STREAM_BLOCK: u64 = super::stream::CHACHA_BLOCK;
/// Attempts per write before the range is split and recorded as failed.
pub const RETRIES: u32 = 3;
/// Give up on a disk after this many failed ranges: it is dying, and a
/// sector-by-sector crawl over a dead disk would never end.
pub const MAX_FAILED_RANGES: usize = 256;
/// ... or after this many unwritable logical blocks in all: a dead disk
/// would otherwise be crawled block by block, three tries each.
pub const MAX_FAILED_BLOCKS: u64 = 16384;
const ALIGN: usize = 4096;

/// What is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pattern {
    Zero,
    /// The keystream of `alg` for `pass` (see `stream`).
    Stream {
        seed: [u8; 32],
        pass: u32,
        alg: Algorithm,
    },
}

/// A byte buffer whose start is 4 KiB aligned, as O_DIRECT needs. Safe
/// code: an over-allocated Vec and an aligned window into it.
pub struct AlignedBuf {
    v: Vec<u8>,
    off: usize,
    len: usize,
}

impl AlignedBuf {
    pub fn new(len: usize) -> AlignedBuf {
        let v = vec![0u8; len + ALIGN];
        let off = v.as_ptr().align_offset(ALIGN);
        AlignedBuf { v, off, len }
    }
    pub fn as_slice(&self) -> &[u8] {
        &self.v[self.off..self.off + self.len]
    }
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.v[self.off..self.off + self.len]
    }
}

/// Fill `buf` with the stream bytes that belong at device offset `offset`
/// (see `stream`).
pub fn fill_stream(alg: Algorithm, seed: &[u8; 32], pass: u32, offset: u64, buf: &mut [u8]) {
    Keystream::new(alg, seed, pass).fill(offset, buf)
}

/// XOR the stream bytes for `offset` into `buf` (verification: the result
/// is all zeros exactly when `buf` held the stream).
pub fn xor_stream(alg: Algorithm, seed: &[u8; 32], pass: u32, offset: u64, buf: &mut [u8]) {
    Keystream::new(alg, seed, pass).xor(offset, buf)
}

impl Pattern {
    /// Fill `buf` with the pattern's bytes for device offset `offset`.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        match self {
            Pattern::Zero => buf.fill(0),
            Pattern::Stream { seed, pass, alg } => fill_stream(*alg, seed, *pass, offset, buf),
        }
    }
}

/// A range of logical blocks that failed, with what the kernel said.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FailedRange {
    pub lba_start: u64,
    pub lba_count: u64,
    pub byte_offset: u64,
    pub byte_len: u64,
    pub op: String,
    pub error: String,
}

/// Failed ranges, merged when adjacent and of the same kind.
#[derive(Debug, Default)]
pub struct Failures {
    pub ranges: Vec<FailedRange>,
    pub gave_up: bool,
    pub blocks: u64,
}

impl Failures {
    /// Whether the disk has failed badly enough to stop trying.
    pub fn too_many(&self) -> bool {
        self.ranges.len() >= MAX_FAILED_RANGES || self.blocks >= MAX_FAILED_BLOCKS
    }

    pub fn add(&mut self, lbs: u32, off: u64, len: u64, op: &str, error: String) {
        let lbs = lbs as u64;
        self.blocks += len.div_ceil(lbs);
        if let Some(last) = self
            .ranges
            .iter_mut()
            .find(|r| r.op == op && r.error == error && r.byte_offset + r.byte_len == off)
        {
            last.byte_len += len;
            last.lba_count = last.byte_len / lbs;
            return;
        }
        self.ranges.push(FailedRange {
            lba_start: off / lbs,
            lba_count: len.div_ceil(lbs),
            byte_offset: off,
            byte_len: len,
            op: op.to_string(),
            error,
        });
        self.ranges.sort_by_key(|r| r.byte_offset);
    }
}

/// A device opened for an erase, with its geometry from the kernel.
pub struct Target {
    pub file: File,
    pub size: u64,
    pub lbs: u32,
    /// I/Os kept in flight and bytes per I/O (see `shape_for`).
    pub depth: usize,
    pub chunk: usize,
    /// io_uring rings the I/Os are spread over (see `Shape`).
    pub lanes: usize,
}

impl Target {
    pub fn set_shape(&mut self, s: Shape) {
        self.depth = s.depth;
        self.chunk = s.chunk;
        self.lanes = s.lanes;
    }
}

/// Open `path` for erasing: O_DIRECT (no page cache), O_EXCL (the kernel
/// refuses while anything has the device mounted or claimed).
pub fn open_target(path: &Path, real_allowed: bool, write: bool) -> Result<Target> {
    let mut o = std::fs::OpenOptions::new();
    o.read(true).write(write);
    let mut flags = libc::O_DIRECT;
    if write {
        flags |= libc::O_EXCL;
    }
    o.custom_flags(flags);
    let file = o.open(path).with_context(|| {
        format!(
            "opening {} (O_DIRECT{})",
            path.display(),
            if write { ", O_EXCL" } else { "" }
        )
    })?;
    crate::blockdev::guard::check_opened(&file, path, real_allowed, "erased")?;
    let size = crate::sys::blk::size_bytes(&file)
        .with_context(|| format!("BLKGETSIZE64 on {}", path.display()))?;
    let lbs = crate::sys::blk::logical_block_size(&file)
        .with_context(|| format!("BLKSSZGET on {}", path.display()))?;
    Ok(Target {
        file,
        size,
        lbs,
        depth: MAX_DEPTH,
        chunk: CHUNK,
        lanes: 1,
    })
}

/// Write `buf` at `off`, retrying; on persistent failure split into
/// logical blocks and record each block that still fails.
pub(crate) fn write_with_retry(
    t: &Target,
    slots: &Slots,
    buf: &[u8],
    off: u64,
    fails: &Mutex<Failures>,
    abort: &AtomicBool,
) {
    let mut last = None;
    for _ in 0..RETRIES {
        match slots.with(|| write_all_at(&t.file, buf, off)) {
            Ok(()) => return,
            Err(e) => last = Some(e),
        }
    }
    let err = last.map(|e| e.to_string()).unwrap_or_default();
    tracing::debug!(
        "write at {off} ({} bytes) failed: {err}; splitting",
        buf.len()
    );
    let lbs = t.lbs as usize;
    // Split: try 64 KiB pieces first, then blocks inside failing pieces.
    let piece = (64 << 10).max(lbs);
    for (i, p) in buf.chunks(piece).enumerate() {
        if abort.load(Ordering::Relaxed) {
            return;
        }
        let poff = off + (i * piece) as u64;
        if (0..RETRIES).any(|_| write_all_at(&t.file, p, poff).is_ok()) {
            continue;
        }
        for (j, b) in p.chunks(lbs).enumerate() {
            let boff = poff + (j * lbs) as u64;
            let mut e = None;
            for _ in 0..RETRIES {
                match write_all_at(&t.file, b, boff) {
                    Ok(()) => {
                        e = None;
                        break;
                    }
                    Err(x) => e = Some(x),
                }
            }
            if let Some(e) = e {
                let mut f = fails.lock().unwrap_or_else(|e| e.into_inner());
                f.add(t.lbs, boff, b.len() as u64, "write", e.to_string());
                if f.too_many() {
                    f.gave_up = true;
                    abort.store(true, Ordering::Relaxed);
                    return;
                }
            }
        }
    }
}

pub(crate) fn write_all_at(f: &File, mut buf: &[u8], mut off: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match f.write_at(buf, off) {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::WriteZero,
                    "short write (0 bytes)",
                ))
            }
            Ok(n) => {
                buf = &buf[n..];
                off += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One zero buffer for every disk and worker of the process (never
/// written: writes only read it). At least one huge page, so each write is
/// one physically contiguous segment (a 1 MiB mapping gets 4 KiB pages:
/// measured 0.66 of fio's write speed for zeros).
pub(crate) fn zeros() -> std::io::Result<&'static [u8]> {
    static ZEROS: std::sync::OnceLock<IoArena> = std::sync::OnceLock::new();
    if let Some(a) = ZEROS.get() {
        return Ok(&a.as_slice()[..CHUNK]);
    }
    let a = IoArena::new(CHUNK.max(crate::sys::iobuf::HUGE))?;
    Ok(&ZEROS.get_or_init(|| a).as_slice()[..CHUNK])
}

/// Overwrite `[start, end)` of `t` with `pattern`, through io_uring
/// (`ring::write_range`: `t.lanes` rings sharing `t.depth` writes in
/// flight, each in ascending order, the stream generated ahead into spare
/// buffers), or,
/// where io_uring cannot be set up or `SPEEDISO_WIPE_ENGINE=threads`, with
/// `write_range_threads`. Which one ran: `ring::threaded_note`.
pub fn write_range(
    t: &Target,
    start: u64,
    end: u64,
    pattern: Pattern,
    tracker: &Tracker,
    fails: &Mutex<Failures>,
) {
    if super::ring::engine() == super::ring::Engine::Uring {
        match super::ring::write_range(t, start, end, pattern, tracker, fails) {
            Ok(()) => return,
            Err(super::ring::Stopped::Setup(e)) => super::ring::set_unavailable(&e),
            Err(super::ring::Stopped::Broken(rest)) => {
                for (a, b) in rest {
                    write_range_threads(t, a, b, pattern, tracker, fails);
                }
                return;
            }
        }
    }
    write_range_threads(t, start, end, pattern, tracker, fails)
}

/// The threaded engine (the fallback): workers take
/// `t.chunk`-sized pieces in order from a shared counter, so the device
/// sees a near-sequential stream with `t.depth` writes queued. Zeros come
/// from one buffer shared by every disk; the random stream is generated by
/// `t.depth + SPARE` workers into their own buffers, outside the in-flight
/// slots, so generation overlaps the writes and runs on every core. Stream
/// buffers live in one huge-page-backed arena per disk (see `sys::iobuf`),
/// `Shape::buffer_bytes` in all.
pub fn write_range_threads(
    t: &Target,
    start: u64,
    end: u64,
    pattern: Pattern,
    tracker: &Tracker,
    fails: &Mutex<Failures>,
) {
    let next = AtomicU64::new(start);
    let abort = AtomicBool::new(false);
    let slots = Slots::new(t.depth);
    let chunk = t.chunk.clamp(ALIGN, CHUNK);
    let chunks = ((end - start).div_ceil(chunk as u64)).max(1) as usize;
    let workers = match pattern {
        Pattern::Zero => t.depth,
        Pattern::Stream { .. } => t.depth + SPARE,
    }
    .min(chunks);
    let no_memory = |e: std::io::Error| {
        let mut f = fails.lock().unwrap_or_else(|e| e.into_inner());
        f.add(
            t.lbs,
            start,
            0,
            "buffers",
            format!("no memory for I/O buffers: {e}"),
        );
        f.gave_up = true;
    };
    // `own`: this worker's buffer for the random stream; else `zeros`.
    let work = |mut own: Option<&mut [u8]>, zeros: &[u8]| loop {
        if abort.load(Ordering::Relaxed) {
            return;
        }
        let off = next.fetch_add(chunk as u64, Ordering::Relaxed);
        if off >= end {
            return;
        }
        let len = (chunk as u64).min(end - off) as usize;
        let data: &[u8] = match own.as_deref_mut() {
            Some(b) => {
                pattern.fill(off, &mut b[..len]);
                &b[..len]
            }
            None => &zeros[..len],
        };
        write_with_retry(t, &slots, data, off, fails, &abort);
        tracker.add(len as u64);
    };
    let work = &work;
    if pattern == Pattern::Zero {
        let zeros = match zeros() {
            Ok(z) => z,
            Err(e) => return no_memory(e),
        };
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(move || work(None, zeros));
            }
        });
        return;
    }
    let mut arena = match IoArena::new(workers * chunk) {
        Ok(a) => a,
        Err(e) => return no_memory(e),
    };
    std::thread::scope(|s| {
        for b in arena.as_mut_slice().chunks_mut(chunk).take(workers) {
            s.spawn(move || work(Some(b), &[]));
        }
    });
}

/// Flush the device's volatile cache so the data is on the medium.
pub fn flush(t: &Target, fails: &Mutex<Failures>) {
    if let Err(e) = t.file.sync_all() {
        let mut f = fails.lock().unwrap_or_else(|e| e.into_inner());
        f.add(t.lbs, 0, 0, "flush", e.to_string());
    }
}

/// The byte ranges a signature ("quick") wipe clears: the first and last
/// 32 MiB (partition tables, GPT backup, MD 0.90/1.x, LVM labels, ZFS
/// labels, most file system superblocks) and btrfs's mirror superblocks at
/// 64 MiB and 256 GiB.
pub fn quick_ranges(size: u64) -> Vec<(u64, u64)> {
    const EDGE: u64 = 32 << 20;
    let mut r: Vec<(u64, u64)> = vec![(0, EDGE.min(size))];
    for at in [64u64 << 20, 256u64 << 30] {
        if at + (64 << 10) <= size {
            r.push((at, at + (1 << 20)));
        }
    }
    r.push((size.saturating_sub(EDGE), size));
    // Merge overlaps so nothing is written twice.
    r.sort();
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (a, b) in r {
        let b = b.min(size);
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_is_position_independent() {
        let seed = [7u8; 32];
        let mut whole = vec![0u8; 3 * STREAM_BLOCK as usize];
        fill_stream(Algorithm::ChaCha8, &seed, 1, 0, &mut whole);
        // Any window regenerates to the same bytes.
        for (off, len) in [
            (0usize, 100usize),
            (12345, 4096),
            (STREAM_BLOCK as usize - 10, 20),
            (2 * STREAM_BLOCK as usize + 1, 777),
        ] {
            let mut part = vec![0u8; len];
            fill_stream(Algorithm::ChaCha8, &seed, 1, off as u64, &mut part);
            assert_eq!(&part[..], &whole[off..off + len], "offset {off}");
        }
        // Different pass or seed: different stream.
        let mut other = vec![0u8; 64];
        fill_stream(Algorithm::ChaCha8, &seed, 2, 0, &mut other);
        assert_ne!(&other[..], &whole[..64]);
        fill_stream(Algorithm::ChaCha8, &[8u8; 32], 1, 0, &mut other);
        assert_ne!(&other[..], &whole[..64]);
        // Blocks differ from each other (nonce carries the block index).
        assert_ne!(
            &whole[..64],
            &whole[STREAM_BLOCK as usize..STREAM_BLOCK as usize + 64]
        );
    }

    #[test]
    fn chacha8_matches_reference_vector() {
        // ChaCha8, all-zero key and nonce: the first bytes of the keystream
        // (from the eSTREAM/RFC-style test vectors for 8 rounds).
        let mut b = [0u8; 8];
        // Block 0 of pass 0 has the all-zero nonce.
        fill_stream(Algorithm::ChaCha8, &[0u8; 32], 0, 0, &mut b);
        assert_eq!(b, [0x3e, 0x00, 0xef, 0x2f, 0x89, 0x5f, 0x40, 0xd6]);
    }

    #[test]
    fn failures_give_up_on_a_dead_disk() {
        let mut f = Failures::default();
        for i in 0..MAX_FAILED_BLOCKS - 1 {
            f.add(512, i * 512, 512, "write", "EIO".into());
        }
        assert_eq!(f.ranges.len(), 1);
        assert!(!f.too_many());
        f.add(
            512,
            (MAX_FAILED_BLOCKS - 1) * 512,
            512,
            "write",
            "EIO".into(),
        );
        assert!(f.too_many());
    }

    #[test]
    fn slots_bound_what_is_in_flight() {
        let slots = Slots::new(3);
        let now = AtomicU64::new(0);
        let peak = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    for _ in 0..50 {
                        slots.with(|| {
                            let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                            peak.fetch_max(n, Ordering::SeqCst);
                            std::thread::yield_now();
                            now.fetch_sub(1, Ordering::SeqCst);
                        });
                    }
                });
            }
        });
        assert_eq!(now.load(Ordering::SeqCst), 0);
        let peak = peak.load(Ordering::SeqCst);
        assert!((1..=3).contains(&peak), "peak {peak}");
    }

    #[test]
    fn every_disk_keeps_full_depth_within_the_memory_formula() {
        // Full queue depth however many disks run at once.
        for d in [0, 1, 4, 8, 16, 24, 48, 100] {
            assert_eq!(shape_for(d).depth, MAX_DEPTH, "{d} disks");
        }
        // 1 MiB I/Os for one or two disks, then halving down to MIN_CHUNK.
        let chunk = |d| shape_for(d).chunk;
        assert_eq!((chunk(1), chunk(2)), (CHUNK, CHUNK));
        assert_eq!(
            (chunk(3), chunk(4), chunk(5)),
            (CHUNK / 2, CHUNK / 2, CHUNK / 2)
        );
        assert_eq!(
            (chunk(6), chunk(24), chunk(100)),
            (MIN_CHUNK, MIN_CHUNK, MIN_CHUNK)
        );
        // The stated bound: within the budget until MIN_CHUNK, then linear.
        for d in 1..=200 {
            let bound = BUFFER_BUDGET.max(d * (MAX_DEPTH + SPARE) * MIN_CHUNK);
            assert!(buffers_for(d) <= bound, "{d} disks: {}", buffers_for(d));
            assert!(shape_for(d).chunk.is_power_of_two());
        }
        assert_eq!(buffers_for(1), 18 << 20);
        assert_eq!(buffers_for(4), 36 << 20);
        assert_eq!(buffers_for(16), 72 << 20);
        // 24 disks: 108 MiB of buffers, well under the 256 MiB RSS target.
        assert_eq!(buffers_for(24), 108 << 20);
        // Fewer disks never get smaller I/Os.
        for d in 1..100 {
            assert!(shape_for(d).chunk >= shape_for(d + 1).chunk);
        }
    }

    #[test]
    fn failures_merge_adjacent() {
        let mut f = Failures::default();
        f.add(512, 1024, 512, "write", "EIO".into());
        f.add(512, 1536, 512, "write", "EIO".into());
        f.add(512, 4096, 512, "write", "EIO".into());
        assert_eq!(f.ranges.len(), 2);
        assert_eq!((f.ranges[0].lba_start, f.ranges[0].lba_count), (2, 2));
        assert_eq!((f.ranges[1].lba_start, f.ranges[1].lba_count), (8, 1));
    }

    #[test]
    fn quick_ranges_cover_both_ends() {
        let r = quick_ranges(1 << 30);
        assert_eq!(
            r,
            vec![
                (0, 32 << 20),
                (64 << 20, 65 << 20),
                ((1 << 30) - (32 << 20), 1 << 30)
            ]
        );
        // A tiny disk: one range, the whole disk.
        assert_eq!(quick_ranges(10 << 20), vec![(0, 10 << 20)]);
    }
}
