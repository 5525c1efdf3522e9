//! The read engine of the verifier, shared with the surface scan
//! (`burnin::scan`): pieces of a device read with O_DIRECT, `t.depth` reads
//! in flight, through io_uring (`ring::read_pieces`: one ring, reads sent
//! in ascending order, each piece handled by the ring's thread as it
//! completes) or, where io_uring is unavailable or
//! `SPEEDISO_WIPE_ENGINE=threads`, by `t.depth + SPARE` workers with at
//! most `t.depth` reads in flight (`Slots`). Each failed read is retried
//! `RETRIES` times; what to do with the bytes (compare, count, narrow an
//! error down) is the caller's.

use super::overwrite::{Slots, Target, CHUNK, RETRIES, SPARE};
use crate::sys::iobuf::IoArena;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Read `buf.len()` bytes at `off`, `RETRIES` tries; the last error.
pub fn read_with_retry(t: &Target, buf: &mut [u8], off: u64) -> std::io::Result<()> {
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

/// Whether the engine goes on after a piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Stop every worker after its current piece (a vanished disk, too
    /// many failures).
    Stop,
}

/// Read every `(start, end)` of `list` (each at most `CHUNK` bytes, read
/// as `t.chunk`-sized pieces, see `overwrite::shape_for`) and hand each
/// piece to `each(start, result)`: the bytes read, or the error left
/// after the retries together with the piece's buffer (aligned, so the
/// caller can retry smaller reads in it). The device sees an ascending
/// stream with `t.depth` reads queued (see the module docs for the two
/// engines). Fails only when the buffers cannot be allocated.
pub fn read_pieces<F>(t: &Target, list: &[(u64, u64)], each: F) -> std::io::Result<()>
where
    F: Fn(u64, &mut [u8], std::io::Result<()>) -> Flow + Sync,
{
    let list = split(t, list);
    if super::ring::engine() == super::ring::Engine::Uring {
        match super::ring::read_pieces(t, &list, &each) {
            Ok(()) => return Ok(()),
            Err(super::ring::Stopped::Setup(e)) => super::ring::set_unavailable(&e),
            Err(super::ring::Stopped::Broken(rest)) => return read_pieces_threads(t, &rest, each),
        }
    }
    read_pieces_threads(t, &list, each)
}

/// `list` cut into pieces of at most `t.chunk` bytes.
fn split<'a>(t: &Target, list: &'a [(u64, u64)]) -> std::borrow::Cow<'a, [(u64, u64)]> {
    let chunk = t.chunk.clamp(4096, CHUNK) as u64;
    if list.iter().all(|(a, b)| b - a <= chunk) {
        return list.into();
    }
    list.iter()
        .flat_map(|&(a, b)| super::ring::chunks(a, b, chunk))
        .collect::<Vec<_>>()
        .into()
}

/// The threaded engine (the fallback): pieces taken in order from a
/// shared counter by `t.depth + SPARE` workers, `t.depth` reads in flight,
/// the spare workers running `each`.
pub fn read_pieces_threads<F>(t: &Target, list: &[(u64, u64)], each: F) -> std::io::Result<()>
where
    F: Fn(u64, &mut [u8], std::io::Result<()>) -> Flow + Sync,
{
    let chunk = t.chunk.clamp(4096, CHUNK) as u64;
    let list = &split(t, list)[..];
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let slots = Slots::new(t.depth);
    let workers = (t.depth + SPARE).min(list.len().max(1));
    let mut arena = IoArena::new(workers * chunk as usize)?;
    let work = |buf: &mut [u8]| {
        while !stop.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(&(a, b)) = list.get(i) else { return };
            let g = &mut buf[..(b - a) as usize];
            let r = slots.with(|| read_with_retry(t, g, a));
            if each(a, g, r) == Flow::Stop {
                stop.store(true, Ordering::Relaxed);
            }
        }
    };
    let work = &work;
    std::thread::scope(|s| {
        for buf in arena
            .as_mut_slice()
            .chunks_mut(chunk as usize)
            .take(workers)
        {
            s.spawn(move || work(buf));
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn every_piece_is_read_once_in_place() {
        let size = 5 * CHUNK as u64 + 4096;
        let f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..size).map(|i| (i / 4096) as u8).collect();
        f.write_all_at(&data, 0).unwrap();
        let t = Target {
            file: f,
            size,
            lbs: 512,
            depth: 2,
            chunk: CHUNK,
            lanes: 2,
        };
        let list = super::super::verify::pieces(&[(0, size)], super::super::VerifyMode::Full);
        let seen = Mutex::new(Vec::new());
        read_pieces(&t, &list, |a, g, r| {
            r.unwrap();
            assert_eq!(g, &data[a as usize..a as usize + g.len()]);
            seen.lock().unwrap().push(a);
            Flow::Continue
        })
        .unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, list.iter().map(|p| p.0).collect::<Vec<_>>());
        // Past the end: an error, handed over with the buffer.
        let errs = AtomicUsize::new(0);
        read_pieces(&t, &[(size, size + 4096)], |_, g, r| {
            assert_eq!(g.len(), 4096);
            assert!(r.is_err());
            errs.fetch_add(1, Ordering::Relaxed);
            Flow::Stop
        })
        .unwrap();
        assert_eq!(errs.into_inner(), 1);
    }

    #[test]
    fn pieces_larger_than_the_chunk_are_split() {
        let size = 3 * CHUNK as u64 + 8192;
        let f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..size).map(|i| (i / 512) as u8).collect();
        f.write_all_at(&data, 0).unwrap();
        let t = Target {
            file: f,
            size,
            lbs: 512,
            depth: 3,
            chunk: 256 << 10,
            lanes: 1,
        };
        let list = super::super::verify::pieces(&[(0, size)], super::super::VerifyMode::Full);
        let seen = Mutex::new(Vec::new());
        read_pieces(&t, &list, |a, g, r| {
            r.unwrap();
            assert!(g.len() <= 256 << 10);
            assert_eq!(g, &data[a as usize..a as usize + g.len()]);
            seen.lock().unwrap().push((a, a + g.len() as u64));
            Flow::Continue
        })
        .unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        // Every byte exactly once, in 256 KiB pieces (the tail shorter).
        assert_eq!(seen.len(), 13);
        assert_eq!(seen[0], (0, 256 << 10));
        assert!(seen.windows(2).all(|w| w[0].1 == w[1].0));
        assert_eq!(seen.last().unwrap().1, size);
    }
}
