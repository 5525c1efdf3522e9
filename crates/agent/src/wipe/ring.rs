//! The io_uring engine of the overwrite and the read-back (verification,
//! surface scan): each disk is driven by `t.lanes` rings
//! (`sys::uring::Queue`), one thread each, sharing the disk's `t.depth`
//! I/Os in flight; chunk k goes to ring k % lanes, and each ring sends its
//! chunks in ascending offset order. Each ring has `spare` buffers beyond
//! its I/Os in flight: a write's next chunks are generated ahead, and sent
//! the moment a write completes; a read's successor is sent before the
//! completed read is compared (`readback::read_pieces`). So the device
//! never waits on the stream generator or the compare: measured on the
//! 2-CPU development VM, one disk's random overwrite went from 0.88-0.90
//! of fio write (generated after the completion) to 0.98.
//!
//! Why: the thread-per-I/O engine this replaces (`overwrite::
//! write_range_threads`, `readback::read_pieces_threads`, 16 I/O threads
//! and 2 spares per disk) let 16 preads race, so requests reached the
//! device out of order, and paid a thread handoff per I/O (288 threads at
//! 16 disks). Why lanes (`lanes_for`: the cores each disk has, at most
//! 4) and not one ring per disk with everything inline: measured on the
//! 2-CPU development VM (benches/wipe.sh, loop devices with direct I/O),
//! one ring thread that regenerates and compares what it reads verified
//! one disk at 0.67 of fio read (2.25 GB/s, CPU bound), two rings 0.92-1.00;
//! with 4 or 16 disks there is one ring per disk and the disks' threads
//! spread the CPU work over the cores. A pool of compare workers fed by one
//! ring would keep strict order but needs the slots' buffers handed
//! between threads; the lanes keep the order near-ascending (2-4 streams)
//! with no handoff at all.
//!
//! Errors keep the threaded engine's semantics exactly: a failed or short
//! completion is redone by the same synchronous code (`write_with_retry`:
//! `RETRIES` tries, then split and record failed LBA ranges, give up after
//! `MAX_FAILED_RANGES`/`MAX_FAILED_BLOCKS`; `read_with_retry` for reads).
//! Where io_uring cannot be set up (a kernel before 5.1, seccomp, a
//! container that forbids it) the threaded engine runs instead, the log
//! says so once and the certificate carries a note (`threaded_note`);
//! `SPEEDISO_WIPE_ENGINE=threads` forces the threaded engine (tests, and a
//! way out should a kernel's io_uring misbehave).

use super::overwrite::{write_with_retry, zeros, Failures, Pattern, Slots, Target, CHUNK, SPARE};
use super::progress::Tracker;
use super::readback::{read_with_retry, Flow};
use crate::sys::uring::{Completion, Queue, ALIGN};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

/// Environment variable that picks the engine: `uring` (default) or
/// `threads`.
pub const ENGINE_ENV: &str = "SPEEDISO_WIPE_ENGINE";

/// Which engine runs the I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Uring,
    Threads,
}

static UNAVAILABLE: OnceLock<String> = OnceLock::new();

fn forced_threads() -> bool {
    std::env::var(ENGINE_ENV).is_ok_and(|v| v == "threads")
}

/// The engine to use now: io_uring unless forced off or found unusable.
pub fn engine() -> Engine {
    if forced_threads() || UNAVAILABLE.get().is_some() {
        Engine::Threads
    } else {
        Engine::Uring
    }
}

/// Remember that io_uring could not be set up (logged once); every later
/// run uses the threaded engine.
pub fn set_unavailable(e: &io::Error) {
    let mut first = false;
    UNAVAILABLE.get_or_init(|| {
        first = true;
        e.to_string()
    });
    if first {
        tracing::warn!("io_uring unavailable ({e}): wipe I/O falls back to one thread per I/O");
    }
}

/// For the certificate: why the threaded engine ran, if it did.
pub fn threaded_note() -> Option<String> {
    if forced_threads() {
        return Some(format!(
            "I/O engine: threads ({ENGINE_ENV}=threads), not io_uring"
        ));
    }
    UNAVAILABLE
        .get()
        .map(|r| format!("I/O engine: threads, io_uring unavailable ({r})"))
}

/// Most rings (and threads) one disk is driven by.
pub const MAX_LANES: usize = 4;

/// Rings per disk when `disks` are erased (or verified, or scanned) at
/// once: the cores each disk has to itself (at least 1, at most
/// `MAX_LANES`, and at least 4 I/Os in flight per ring). One ring thread
/// compares what it reads at about 2.2 GB/s here (the stream regenerated
/// and XORed out, then checked for zeros), below what one fast disk
/// reads; with a core per ring that work runs in parallel while the
/// device still sees `MAX_DEPTH` I/Os in near-ascending order.
pub fn lanes_for(disks: usize) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (cpus / disks.max(1)).clamp(1, MAX_LANES.min(super::overwrite::MAX_DEPTH / 4))
}

/// Why a ring run did not finish.
pub enum Stopped {
    /// The ring could not be set up: nothing was done.
    Setup(io::Error),
    /// Some rings failed (to set up, or mid-run in io_uring_enter itself,
    /// not an I/O; logged where it happened): the pieces they left, for the
    /// threaded engine.
    Broken(Vec<(u64, u64)>),
}

fn wait(q: &mut Queue, done: &mut Vec<Completion>) -> io::Result<()> {
    done.clear();
    q.wait(1, done)
}

/// Run `lane(i, pieces)` for each of `lanes` interleaved shares of
/// `pieces` (piece k to lane k % lanes), each on its own thread (the
/// calling one for a single lane); combine what they left undone.
fn run_lanes<F>(lanes: usize, pieces: &[(u64, u64)], lane: F) -> Result<(), Stopped>
where
    F: Fn(&[(u64, u64)]) -> Result<(), Stopped> + Sync,
{
    let lanes = lanes.clamp(1, pieces.len().max(1));
    if lanes == 1 {
        return lane(pieces);
    }
    let shares: Vec<Vec<(u64, u64)>> = (0..lanes)
        .map(|j| pieces.iter().skip(j).step_by(lanes).copied().collect())
        .collect();
    let lane = &lane;
    let results: Vec<Result<(), Stopped>> = std::thread::scope(|s| {
        let hs: Vec<_> = shares.iter().map(|sh| s.spawn(move || lane(sh))).collect();
        hs.into_iter()
            .map(|h| {
                // A panic (a caller's `each`) goes on up, as it would
                // have on the calling thread.
                h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
            })
            .collect()
    });
    let mut rest = Vec::new();
    let mut setup = None;
    let mut ran = false;
    for (r, share) in results.into_iter().zip(&shares) {
        match r {
            Ok(()) => ran = true,
            Err(Stopped::Setup(e)) => {
                rest.extend_from_slice(share);
                setup = Some(e);
            }
            Err(Stopped::Broken(left)) => {
                ran = true;
                rest.extend(left);
            }
        }
    }
    match setup {
        Some(e) if !ran => return Err(Stopped::Setup(e)),
        Some(e) => tracing::warn!(
            "an io_uring ring could not be set up ({e}); the threaded engine does its pieces"
        ),
        None => {}
    }
    if rest.is_empty() {
        return Ok(());
    }
    rest.sort();
    Err(Stopped::Broken(rest))
}

/// `[start, end)` in `chunk`-sized pieces (the last one shorter).
pub(super) fn chunks(start: u64, end: u64, chunk: u64) -> Vec<(u64, u64)> {
    (start..end)
        .step_by(chunk as usize)
        .map(|o| (o, (o + chunk).min(end)))
        .collect()
}

/// Overwrite `[start, end)` of `t` with `pattern` through `t.lanes` rings
/// of `t.depth / t.lanes` slots (see the module docs). Zeros are sent from
/// the process's one zero buffer; the stream is generated into slots of
/// `t.chunk` bytes.
pub fn write_range(
    t: &Target,
    start: u64,
    end: u64,
    pattern: Pattern,
    tracker: &Tracker,
    fails: &Mutex<Failures>,
) -> Result<(), Stopped> {
    let chunk = t.chunk.clamp(ALIGN, CHUNK);
    let pieces = chunks(start, end, chunk as u64);
    let lanes = t.lanes.clamp(1, t.depth.max(1));
    let abort = AtomicBool::new(false);
    let zero: &'static [u8] = match pattern {
        Pattern::Zero => zeros().map_err(Stopped::Setup)?,
        Pattern::Stream { .. } => &[],
    };
    run_lanes(lanes, &pieces, |share| {
        let depth = (t.depth.max(1) / lanes).max(1);
        write_lane(
            t, share, depth, chunk, pattern, zero, tracker, fails, &abort,
        )
    })
}

#[allow(clippy::too_many_arguments)]
fn write_lane(
    t: &Target,
    list: &[(u64, u64)],
    depth: usize,
    chunk: usize,
    pattern: Pattern,
    zero: &'static [u8],
    tracker: &Tracker,
    fails: &Mutex<Failures>,
    abort: &AtomicBool,
) -> Result<(), Stopped> {
    let depth = depth.min(list.len().max(1));
    let file = t.file.try_clone().map_err(Stopped::Setup)?;
    // The stream's slots: `depth` in flight and `spare` generated ahead,
    // sent the moment a write completes (zeros need nothing generated).
    let (q, slots) = match pattern {
        Pattern::Zero => (Queue::with_source(file, depth, &zero[..chunk]), depth),
        Pattern::Stream { .. } => {
            let n = depth + spare(t.lanes);
            (Queue::new(file, n, chunk), n)
        }
    };
    let mut q = q.map_err(Stopped::Setup)?;
    let one = Slots::new(1);
    // Index into `list` of each slot's write.
    let mut at = vec![0usize; slots];
    let mut free: Vec<usize> = (0..slots).rev().collect();
    // Slots filled and not sent yet, in ascending offset order.
    let mut ready = std::collections::VecDeque::with_capacity(slots);
    let mut done = Vec::with_capacity(slots);
    let mut next = 0usize;
    loop {
        // Send what is ready while fewer than `depth` are in flight.
        while q.in_flight() < depth {
            let Some(s) = ready.pop_front() else { break };
            let (a, b) = list[at[s]];
            let sent = q
                .push_write_len(s, a, (b - a) as usize)
                .and_then(|()| q.submit());
            if let Err(e) = sent {
                // `s` is neither free nor done: `broken` hands it on.
                return Err(broken(&mut q, e, list, &at, &free, next));
            }
        }
        // Fill the next chunk into a free slot: sent at once while the
        // queue has room, else kept ready for the next completion, so the
        // device never waits for the stream to be generated.
        if next < list.len() && !abort.load(Ordering::Relaxed) {
            if let Some(s) = free.pop() {
                let (a, b) = list[next];
                if let Some(buf) = q.buf_mut(s) {
                    pattern.fill(a, &mut buf[..(b - a) as usize]);
                }
                at[s] = next;
                next += 1;
                ready.push_back(s);
                continue;
            }
        }
        // Nothing in flight means nothing ready either (it would have
        // been sent above).
        if q.in_flight() == 0 {
            return Ok(());
        }
        if let Err(e) = wait(&mut q, &mut done) {
            return Err(broken(&mut q, e, list, &at, &free, next));
        }
        for c in done.drain(..) {
            let (off, end) = list[at[c.slot]];
            let len = (end - off) as usize;
            if !matches!(c.result, Ok(n) if n == len) {
                // The threaded engine's retries and split, for this range.
                let data = q.buf(c.slot).map(|b| &b[..len]).unwrap_or(&[]);
                write_with_retry(t, &one, data, off, fails, abort);
            }
            tracker.add(len as u64);
            free.push(c.slot);
        }
    }
}

/// Buffers a ring keeps beyond its I/Os in flight (generated ahead for
/// writes; for reads, the next read is sent before the last one is
/// compared): the threaded engine's `SPARE` per disk, split over its
/// rings, none with more than `SPARE` rings (one core or more each per
/// disk: the generation keeps up inline). So a disk never holds more than
/// `MAX_DEPTH + SPARE` buffers, the bound `Shape` states.
fn spare(lanes: usize) -> usize {
    if lanes <= SPARE {
        SPARE / lanes.max(1)
    } else {
        0
    }
}

/// After a ring failed mid-run: the pieces not finished (every I/O still
/// in flight, whose outcome is unknown, and everything not sent yet;
/// writing or reading a piece twice is harmless, handing a read piece over
/// twice is not, and never happens: those in flight were not handed).
fn broken(
    q: &mut Queue,
    e: io::Error,
    list: &[(u64, u64)],
    at: &[usize],
    free: &[usize],
    next: usize,
) -> Stopped {
    let _ = q.drain();
    let mut rest: Vec<(u64, u64)> = (0..at.len())
        .filter(|s| !free.contains(s))
        .map(|s| list[at[s]])
        .collect();
    rest.sort();
    rest.extend_from_slice(&list[next..]);
    tracing::warn!(
        "io_uring failed mid-run ({e}); the threaded engine does the {} pieces left",
        rest.len()
    );
    Stopped::Broken(rest)
}

/// Read every piece of `list` (each at most `t.chunk` bytes) through
/// `t.lanes` rings and hand each to `each` as it completes, on the ring's
/// thread; a failed or short read is redone by `read_with_retry` first, so
/// `each` sees what the threaded engine would have handed it. After
/// `Flow::Stop` nothing more is sent; what is in flight is still handed
/// over.
pub fn read_pieces<F>(t: &Target, list: &[(u64, u64)], each: &F) -> Result<(), Stopped>
where
    F: Fn(u64, &mut [u8], io::Result<()>) -> Flow + Sync,
{
    let chunk = list
        .iter()
        .map(|(a, b)| (b - a) as usize)
        .max()
        .unwrap_or(ALIGN)
        .next_multiple_of(ALIGN);
    let lanes = t.lanes.clamp(1, t.depth.max(1));
    let stop = AtomicBool::new(false);
    run_lanes(lanes, list, |share| {
        let depth = (t.depth.max(1) / lanes).max(1);
        read_lane(t, share, depth, chunk, each, &stop)
    })
}

fn read_lane<F>(
    t: &Target,
    list: &[(u64, u64)],
    depth: usize,
    chunk: usize,
    each: &F,
    stop: &AtomicBool,
) -> Result<(), Stopped>
where
    F: Fn(u64, &mut [u8], io::Result<()>) -> Flow + Sync,
{
    let depth = depth.min(list.len().max(1));
    let file = t.file.try_clone().map_err(Stopped::Setup)?;
    let slots = depth + spare(t.lanes);
    let mut q = Queue::new(file, slots, chunk).map_err(Stopped::Setup)?;
    // Index into `list` of each slot's read.
    let mut at = vec![0usize; slots];
    let mut free: Vec<usize> = (0..slots).rev().collect();
    let mut done = Vec::with_capacity(slots);
    let mut next = 0usize;
    // Send reads into free slots, in ascending order, while fewer than
    // `depth` are in flight.
    macro_rules! top_up {
        () => {
            while q.in_flight() < depth && next < list.len() && !stop.load(Ordering::Relaxed) {
                let Some(s) = free.pop() else { break };
                let (a, b) = list[next];
                let sent = q
                    .push_read_len(s, a, (b - a) as usize)
                    .and_then(|()| q.submit());
                if let Err(e) = sent {
                    free.push(s);
                    return Err(broken(&mut q, e, list, &at, &free, next));
                }
                at[s] = next;
                next += 1;
            }
        };
    }
    loop {
        top_up!();
        if q.in_flight() == 0 {
            return Ok(());
        }
        if let Err(e) = wait(&mut q, &mut done) {
            return Err(broken(&mut q, e, list, &at, &free, next));
        }
        for c in done.drain(..) {
            // The next read goes out (into a spare slot) before this one
            // is compared: the compare must not leave the queue short.
            top_up!();
            let (a, b) = list[at[c.slot]];
            let len = (b - a) as usize;
            if let Some(buf) = q.buf_mut(c.slot) {
                let g = &mut buf[..len];
                let r = match c.result {
                    Ok(n) if n == len => Ok(()),
                    _ => read_with_retry(t, g, a),
                };
                if each(a, g, r) == Flow::Stop {
                    stop.store(true, Ordering::Relaxed);
                }
            }
            free.push(c.slot);
        }
    }
}

#[cfg(test)]
mod tests {
    //! A ring that breaks mid-run (`sys::uring::fault`: one submit or wait
    //! fails) at every point of a short run: the fallback must finish the
    //! job with every byte right, every read piece handed over exactly
    //! once, and progress counted once.
    use super::super::overwrite::{fill_stream, Algorithm};
    use super::*;
    use crate::sys::uring::fault;
    use std::os::unix::fs::FileExt;

    const SIZE: u64 = (6 << 20) + 8192;

    fn target(fill: u8, lanes: usize) -> Target {
        let f = tempfile::tempfile().unwrap();
        f.write_all_at(&vec![fill; SIZE as usize], 0).unwrap();
        Target {
            file: f,
            size: SIZE,
            lbs: 512,
            depth: 8,
            chunk: 256 << 10,
            lanes,
        }
    }

    #[test]
    fn a_ring_broken_mid_write_is_finished_by_the_threads() {
        let seed = [0x5au8; 32];
        let stream = Pattern::Stream {
            seed,
            pass: 2,
            alg: Algorithm::ChaCha8,
        };
        let mut want = vec![0u8; SIZE as usize];
        fill_stream(Algorithm::ChaCha8, &seed, 2, 0, &mut want);
        let zeros = vec![0u8; SIZE as usize];
        for (pattern, lanes) in [(stream, 1), (stream, 2), (Pattern::Zero, 2)] {
            for n in [1, 2, 3, 5, 8, 13, 21] {
                let t = target(0xff, lanes);
                let tracker = Tracker::new("test".into(), None);
                let fails = Mutex::new(Failures::default());
                fault::fail_nth(&t.file, n);
                super::super::overwrite::write_range(&t, 0, SIZE, pattern, &tracker, &fails);
                assert!(!fault::disarm(&t.file), "call {n}: the ring never failed");
                let mut got = vec![0u8; SIZE as usize];
                t.file.read_exact_at(&mut got, 0).unwrap();
                let expect: &[u8] = match pattern {
                    Pattern::Zero => &zeros,
                    Pattern::Stream { .. } => &want,
                };
                if let Some(i) = got.iter().zip(expect).position(|(a, b)| a != b) {
                    panic!("lanes {lanes}, broken at call {n}: byte {i} is wrong");
                }
                assert!(fails.lock().unwrap().ranges.is_empty());
                assert_eq!(
                    tracker.done(),
                    SIZE,
                    "lanes {lanes}, call {n}: bytes counted"
                );
            }
        }
    }

    #[test]
    fn a_ring_broken_mid_read_hands_every_piece_once() {
        let data: Vec<u8> = (0..SIZE).map(|i| (i / 4096) as u8 ^ (i as u8)).collect();
        let list = chunks(0, SIZE, 256 << 10);
        for lanes in [1, 2] {
            for n in 1..=14 {
                let t = target(0, lanes);
                t.file.write_all_at(&data, 0).unwrap();
                let seen = Mutex::new(Vec::new());
                fault::fail_nth(&t.file, n);
                super::super::readback::read_pieces(&t, &list, |a, g, r| {
                    r.unwrap();
                    assert_eq!(g, &data[a as usize..a as usize + g.len()], "piece at {a}");
                    seen.lock().unwrap().push((a, a + g.len() as u64));
                    Flow::Continue
                })
                .unwrap();
                assert!(!fault::disarm(&t.file), "call {n}: the ring never failed");
                let mut seen = seen.into_inner().unwrap();
                seen.sort();
                assert_eq!(seen, list, "lanes {lanes}, broken at call {n}");
            }
        }
    }
}
