//! The io_uring engine of the overwrite and the read-back (verification,
//! surface scan): one thread per disk drives one ring (`sys::uring::Queue`)
//! with `t.depth` I/Os in flight, submitted in ascending offset order; as
//! each completes, its slot is handled (the read compared, see
//! `readback::read_pieces`) and refilled (the next chunk of the stream
//! generated into it) on the same thread, then sent again at once.
//!
//! Why inline and not in a pool: the thread-per-I/O engine this replaces
//! (`overwrite::write_range_threads`, `readback::read_pieces_threads`) let
//! 16 preads race, so requests reached the device out of order, and paid a
//! thread handoff per I/O. Here the device sees a strictly ascending stream
//! and the CPU work (ChaCha8 about 4 GB/s, AES-CTR about 9 GB/s a core,
//! compare faster still) runs while the other 15 I/Os are queued; with
//! several disks the per-disk threads spread it over every core. The
//! figures in benches/README.md (benches/wipe.sh) are what decided it.
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

use super::overwrite::{write_with_retry, zeros, Failures, Pattern, Slots, Target, CHUNK};
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

/// Why a ring run did not finish.
pub enum Stopped {
    /// The ring could not be set up: nothing was done.
    Setup(io::Error),
    /// The ring failed mid-run (io_uring_enter itself, not an I/O): the
    /// work still to do, for the threaded engine.
    Broken(io::Error, Vec<(u64, u64)>),
}

fn wait(q: &mut Queue, done: &mut Vec<Completion>) -> io::Result<()> {
    done.clear();
    q.wait(1, done)
}

/// Overwrite `[start, end)` of `t` with `pattern` through one ring (see
/// the module docs). Zeros are sent from the process's one zero buffer;
/// the stream is generated into `t.depth` slots of `t.chunk` bytes.
pub fn write_range(
    t: &Target,
    start: u64,
    end: u64,
    pattern: Pattern,
    tracker: &Tracker,
    fails: &Mutex<Failures>,
) -> Result<(), Stopped> {
    let chunk = t.chunk.clamp(ALIGN, CHUNK);
    let chunks = (end.saturating_sub(start)).div_ceil(chunk as u64).max(1) as usize;
    let depth = t.depth.max(1).min(chunks);
    let zero: &'static [u8] = match pattern {
        Pattern::Zero => zeros().map_err(Stopped::Setup)?,
        Pattern::Stream { .. } => &[],
    };
    let file = t.file.try_clone().map_err(Stopped::Setup)?;
    let mut q = match pattern {
        Pattern::Zero => Queue::with_source(file, depth, &zero[..chunk]),
        Pattern::Stream { .. } => Queue::new(file, depth, chunk),
    }
    .map_err(Stopped::Setup)?;
    let abort = AtomicBool::new(false);
    let one = Slots::new(1);
    // (offset, length) of each slot's I/O.
    let mut at = vec![(0u64, 0usize); depth];
    let mut free: Vec<usize> = (0..depth).rev().collect();
    let mut done = Vec::with_capacity(depth);
    let mut next = start;
    loop {
        // Refill: ascending offsets, each sent as soon as it is ready so
        // the device works while the next chunk is generated.
        while next < end && !abort.load(Ordering::Relaxed) {
            let Some(s) = free.pop() else { break };
            let len = (chunk as u64).min(end - next) as usize;
            if let Some(b) = q.buf_mut(s) {
                pattern.fill(next, &mut b[..len]);
            }
            let sent = q.push_write_len(s, next, len).and_then(|()| q.submit());
            if let Err(e) = sent {
                free.push(s);
                return Err(broken_writes(&mut q, e, &at, &free, next, end));
            }
            at[s] = (next, len);
            next += len as u64;
        }
        if q.in_flight() == 0 {
            return Ok(());
        }
        if let Err(e) = wait(&mut q, &mut done) {
            return Err(broken_writes(&mut q, e, &at, &free, next, end));
        }
        for c in done.drain(..) {
            let (off, len) = at[c.slot];
            if !matches!(c.result, Ok(n) if n == len) {
                // The threaded engine's retries and split, for this range.
                let data = q.buf(c.slot).map(|b| &b[..len]).unwrap_or(&[]);
                write_with_retry(t, &one, data, off, fails, &abort);
            }
            tracker.add(len as u64);
            free.push(c.slot);
        }
    }
}

/// After the ring failed mid-run: what is left to write (every I/O still
/// in flight, whose outcome is unknown, and everything not sent yet;
/// writing a range twice is harmless).
fn broken_writes(
    q: &mut Queue,
    e: io::Error,
    at: &[(u64, usize)],
    free: &[usize],
    next: u64,
    end: u64,
) -> Stopped {
    let from = (0..at.len())
        .filter(|s| !free.contains(s))
        .map(|s| at[s].0)
        .min()
        .unwrap_or(next)
        .min(next);
    let _ = q.drain();
    tracing::warn!("io_uring failed mid-write ({e}); the threaded engine writes from {from}");
    Stopped::Broken(
        e,
        if from < end {
            vec![(from, end)]
        } else {
            vec![]
        },
    )
}

/// Read every piece of `list` (each at most `t.chunk` bytes) through one
/// ring and hand each to `each` as it completes, in the calling thread;
/// a failed or short read is redone by `read_with_retry` first, so `each`
/// sees what the threaded engine would have handed it. After
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
    let depth = t.depth.max(1).min(list.len().max(1));
    let file = t.file.try_clone().map_err(Stopped::Setup)?;
    let mut q = Queue::new(file, depth, chunk).map_err(Stopped::Setup)?;
    // Index into `list` of each slot's read.
    let mut at = vec![0usize; depth];
    let mut free: Vec<usize> = (0..depth).rev().collect();
    let mut done = Vec::with_capacity(depth);
    let mut next = 0usize;
    let mut stop = false;
    loop {
        while next < list.len() && !stop {
            let Some(s) = free.pop() else { break };
            let (a, b) = list[next];
            let sent = q
                .push_read_len(s, a, (b - a) as usize)
                .and_then(|()| q.submit());
            if let Err(e) = sent {
                free.push(s);
                return Err(broken_reads(&mut q, e, list, &at, &free, next));
            }
            at[s] = next;
            next += 1;
        }
        if q.in_flight() == 0 {
            return Ok(());
        }
        if let Err(e) = wait(&mut q, &mut done) {
            return Err(broken_reads(&mut q, e, list, &at, &free, next));
        }
        for c in done.drain(..) {
            let (a, b) = list[at[c.slot]];
            let len = (b - a) as usize;
            let Some(buf) = q.buf_mut(c.slot) else {
                continue;
            };
            let g = &mut buf[..len];
            let r = match c.result {
                Ok(n) if n == len => Ok(()),
                _ => read_with_retry(t, g, a),
            };
            if each(a, g, r) == Flow::Stop {
                stop = true;
            }
            free.push(c.slot);
        }
    }
}

/// After the ring failed mid-read: the pieces not handed over yet.
fn broken_reads(
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
        "io_uring failed mid-read ({e}); the threaded engine reads the {} pieces left",
        rest.len()
    );
    Stopped::Broken(e, rest)
}
