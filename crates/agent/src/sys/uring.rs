//! A small io_uring queue for the disk benchmark and the wipe engine
//! (`wipe::ring`): a file, `depth` aligned buffers ("slots") the queue owns,
//! and reads/writes of a slot (whole, or its first `len` bytes) at byte
//! offsets. A write-only queue can instead send every slot from one shared,
//! never-written source buffer (the wipe's zeros). The unsafe part of
//! io_uring is that the kernel reads or writes a buffer after `push`
//! returned; here a slot cannot be touched or freed while its I/O is in
//! flight (`buf_mut` refuses, `Drop` waits for the kernel), and the kernel
//! is never asked to write into the shared source (reads are refused).
#![allow(unsafe_code)]

use super::iobuf::IoArena;
use io_uring::{opcode, types, IoUring};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// Buffer alignment: O_DIRECT wants the logical block size; 4096 covers
/// every disk we meet (512e and 4Kn) and is the page size.
pub const ALIGN: usize = 4096;

/// A finished I/O: which slot, and bytes transferred or the error.
#[derive(Debug)]
pub struct Completion {
    pub slot: usize,
    pub result: io::Result<usize>,
}

/// An io_uring submission/completion queue over one file with `depth`
/// slots of `block` bytes each. Use it from the thread that created it
/// (the ring is set up single-issuer).
pub struct Queue {
    ring: IoUring,
    // Keeps the descriptor the queued entries name open.
    file: File,
    // Every slot's buffer, back to back (one huge-page-backed mapping);
    // `None` only after Drop gave up on the kernel and leaked it, or when
    // the queue writes from `source`.
    arena: Option<IoArena>,
    // Write-only queues: every slot is this buffer (`block` bytes), which
    // lives for the whole process and is never written.
    source: Option<&'static [u8]>,
    block: usize,
    busy: Vec<bool>,
    in_flight: usize,
    pending: usize,
    /// The arena and the file are registered with the ring: I/Os use
    /// READ_FIXED/WRITE_FIXED on a fixed file, so the kernel neither pins
    /// the buffer's pages nor looks up the descriptor per I/O (at 4 KiB
    /// and queue depth 32 that per-I/O work is what separates us from a
    /// device's limit). False where the kernel refused (then plain
    /// READ/WRITE, as before).
    fixed: bool,
}

impl Queue {
    /// A queue of `depth` slots of `block` bytes (a multiple of `ALIGN`).
    pub fn new(file: File, depth: usize, block: usize) -> io::Result<Queue> {
        if depth == 0 || block == 0 || !block.is_multiple_of(ALIGN) || block > u32::MAX as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("queue depth {depth} and block {block} (must be a multiple of {ALIGN})"),
            ));
        }
        let arena = IoArena::new(depth * block)?;
        Self::build(file, depth, block, Some(arena), None)
    }

    /// A write-only queue of `depth` slots that all send `source` (a
    /// multiple of `ALIGN` long, `ALIGN`-aligned): no buffer per slot, so
    /// any number of queues share one (the wipe's zeros).
    pub fn with_source(file: File, depth: usize, source: &'static [u8]) -> io::Result<Queue> {
        let block = source.len();
        if depth == 0
            || block == 0
            || !block.is_multiple_of(ALIGN)
            || block > u32::MAX as usize
            || !(source.as_ptr() as usize).is_multiple_of(ALIGN)
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "queue depth {depth} and source of {block} bytes (must be {ALIGN}-aligned)"
                ),
            ));
        }
        Self::build(file, depth, block, None, Some(source))
    }

    /// The ring, its registered buffer (the arena, or the source) and
    /// file, and the queue around them.
    fn build(
        file: File,
        depth: usize,
        block: usize,
        arena: Option<IoArena>,
        source: Option<&'static [u8]>,
    ) -> io::Result<Queue> {
        // As fio's io_uring engine does: completions are run when we reap
        // them (no IPIs), by the one thread that submits. Older kernels
        // (before 6.1) reject these flags; fall back to a plain ring.
        let (base, len) = match (&arena, source) {
            (Some(a), _) => (a.as_ptr().cast_const(), a.len()),
            (None, Some(s)) => (s.as_ptr(), s.len()),
            (None, None) => return Err(io::Error::other("a queue needs buffers or a source")),
        };
        let ring = Self::ring(depth)?;
        let iov = libc::iovec {
            iov_base: base as *mut libc::c_void,
            iov_len: len,
        };
        // SAFETY: the buffer outlives the registration. The arena: `ring`
        // is declared before `arena`, so it is dropped (and its buffers
        // unregistered) first, and Drop leaks the arena rather than free
        // it while I/O may be in flight. The source is 'static, and the
        // kernel only reads it (WRITE_FIXED; `push_read` is refused).
        let fixed = unsafe { ring.submitter().register_buffers(&[iov]) }.is_ok()
            && ring.submitter().register_files(&[file.as_raw_fd()]).is_ok();
        Ok(Queue {
            ring,
            file,
            arena,
            source,
            block,
            busy: vec![false; depth],
            in_flight: 0,
            pending: 0,
            fixed,
        })
    }

    fn ring(depth: usize) -> io::Result<IoUring> {
        let entries = depth.next_power_of_two() as u32;
        IoUring::builder()
            .setup_cqsize(entries * 2)
            .setup_coop_taskrun()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .build(entries)
            .or_else(|_| IoUring::builder().setup_cqsize(entries * 2).build(entries))
    }

    pub fn depth(&self) -> usize {
        self.busy.len()
    }

    pub fn block(&self) -> usize {
        self.block
    }

    fn slot_range(&self, slot: usize) -> std::ops::Range<usize> {
        slot * self.block..(slot + 1) * self.block
    }

    /// Whether I/Os go through registered buffers and file.
    pub fn fixed(&self) -> bool {
        self.fixed
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    pub fn file(&self) -> &File {
        &self.file
    }

    /// The contents of an idle slot (`None` while its I/O is in flight).
    pub fn buf(&self, slot: usize) -> Option<&[u8]> {
        if self.busy[slot] {
            return None;
        }
        if let Some(s) = self.source {
            return Some(s);
        }
        let r = self.slot_range(slot);
        Some(&self.arena.as_ref()?.as_slice()[r])
    }

    /// The contents of an idle slot, to fill before a write.
    pub fn buf_mut(&mut self, slot: usize) -> Option<&mut [u8]> {
        if self.busy[slot] {
            return None;
        }
        let r = self.slot_range(slot);
        Some(&mut self.arena.as_mut()?.as_mut_slice()[r])
    }

    /// Queue a read of the whole slot from `offset`; sent on the next
    /// `submit` or `wait`.
    pub fn push_read(&mut self, slot: usize, offset: u64) -> io::Result<()> {
        self.push(slot, offset, self.block, false)
    }

    /// Queue a write of the whole slot to `offset`.
    pub fn push_write(&mut self, slot: usize, offset: u64) -> io::Result<()> {
        self.push(slot, offset, self.block, true)
    }

    /// Queue a read of the slot's first `len` bytes (at most `block`).
    pub fn push_read_len(&mut self, slot: usize, offset: u64, len: usize) -> io::Result<()> {
        self.push(slot, offset, len, false)
    }

    /// Queue a write of the slot's first `len` bytes (at most `block`).
    pub fn push_write_len(&mut self, slot: usize, offset: u64, len: usize) -> io::Result<()> {
        self.push(slot, offset, len, true)
    }

    fn push(&mut self, slot: usize, offset: u64, len: usize, write: bool) -> io::Result<()> {
        if slot >= self.busy.len() || self.busy[slot] || len == 0 || len > self.block {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "slot {slot} of {} bytes is busy or out of range, or length {len}",
                    self.block
                ),
            ));
        }
        let fd = types::Fd(self.file.as_raw_fd());
        let ptr = match (self.source, self.arena.as_ref()) {
            // The kernel must never write into the shared source.
            (Some(_), _) if !write => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a queue writing from a shared source cannot read",
                ))
            }
            // Only WRITE/WRITE_FIXED take this pointer: the kernel reads it.
            (Some(s), _) => s.as_ptr().cast_mut(),
            // SAFETY: slot < depth, so the slot's block lies inside the arena.
            (None, Some(arena)) => unsafe { arena.as_ptr().add(slot * self.block) },
            (None, None) => return Err(io::Error::other("queue buffers were given up")),
        };
        let len = len as u32;
        let entry = match (self.fixed, write) {
            // Registered buffer 0 is the whole arena; file 0 is `self.file`.
            (true, true) => opcode::WriteFixed::new(types::Fixed(0), ptr, len, 0)
                .offset(offset)
                .build(),
            (true, false) => opcode::ReadFixed::new(types::Fixed(0), ptr, len, 0)
                .offset(offset)
                .build(),
            (false, true) => opcode::Write::new(fd, ptr, len).offset(offset).build(),
            (false, false) => opcode::Read::new(fd, ptr, len).offset(offset).build(),
        }
        .user_data(slot as u64);
        // SAFETY: the buffer stays allocated and untouched by us until its
        // completion is reaped (the slot is busy until then, and Drop waits
        // for every in-flight I/O); the fd lives as long as `self.file`.
        // The SQ has at least `depth` entries and at most `depth` slots are
        // busy, so it cannot be full.
        unsafe { self.ring.submission().push(&entry) }
            .map_err(|_| io::Error::other("io_uring submission queue full"))?;
        self.busy[slot] = true;
        self.in_flight += 1;
        self.pending += 1;
        Ok(())
    }

    /// Send queued entries to the kernel without waiting.
    pub fn submit(&mut self) -> io::Result<()> {
        #[cfg(test)]
        fault::check(&self.file)?;
        if self.pending > 0 {
            self.ring.submit()?;
            self.pending = 0;
        }
        Ok(())
    }

    /// Submit anything queued, wait until at least `min` I/Os completed
    /// (bounded by what is in flight), and append every completion ready now.
    pub fn wait(&mut self, min: usize, out: &mut Vec<Completion>) -> io::Result<()> {
        #[cfg(test)]
        fault::check(&self.file)?;
        let want = min.min(self.in_flight);
        loop {
            match self.ring.submit_and_wait(want) {
                Ok(_) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        self.pending = 0;
        for cqe in self.ring.completion() {
            let slot = cqe.user_data() as usize;
            let res = cqe.result();
            let result = if res < 0 {
                Err(io::Error::from_raw_os_error(-res))
            } else {
                Ok(res as usize)
            };
            if slot < self.busy.len() && self.busy[slot] {
                self.busy[slot] = false;
                self.in_flight -= 1;
            }
            out.push(Completion { slot, result });
        }
        Ok(())
    }

    /// Wait for every in-flight I/O; their completions are dropped.
    pub fn drain(&mut self) -> io::Result<()> {
        let mut sink = Vec::new();
        while self.in_flight > 0 {
            sink.clear();
            self.wait(1, &mut sink)?;
        }
        Ok(())
    }
}

impl Drop for Queue {
    fn drop(&mut self) {
        if self.drain().is_err() && self.in_flight > 0 {
            // The kernel may still write into these buffers: leak them
            // rather than free memory it owns.
            std::mem::forget(self.arena.take());
        } else if self.fixed {
            // Give the registered file back now, in this call: left to the
            // ring, it is put back by the kernel's deferred teardown, after
            // the ring's fd is closed and even after the process exits, so
            // a block device opened O_EXCL would stay claimed for a few
            // milliseconds and the next exclusive open (the next pass, a
            // second `speediso wipe`) fail with EBUSY.
            let _ = self.ring.submitter().unregister_files();
        }
    }
}

/// Tests only: break a ring mid-run, as a failing `io_uring_enter` would,
/// so the engines' hand-over to their fallback runs. The queues on one
/// file (device and inode: a test's own temporary file) fail their `n`-th
/// submit or wait from now, once; I/Os in flight are not disturbed.
#[cfg(test)]
pub mod fault {
    use std::fs::File;
    use std::io;
    use std::os::unix::fs::MetadataExt;
    use std::sync::Mutex;

    /// (device, inode, calls left before the failure).
    static ARMED: Mutex<Vec<(u64, u64, usize)>> = Mutex::new(Vec::new());

    fn key(f: &File) -> (u64, u64) {
        f.metadata().map_or((0, 0), |m| (m.dev(), m.ino()))
    }

    /// Make the `n`-th submit or wait (1 = the next) of the queues on `f`
    /// fail once.
    pub fn fail_nth(f: &File, n: usize) {
        let (dev, ino) = key(f);
        let mut a = ARMED.lock().unwrap_or_else(|e| e.into_inner());
        a.retain(|&(d, i, _)| (d, i) != (dev, ino));
        a.push((dev, ino, n.max(1)));
    }

    /// Whether the failure armed for `f` is still to come (then disarmed).
    pub fn disarm(f: &File) -> bool {
        let (dev, ino) = key(f);
        let mut a = ARMED.lock().unwrap_or_else(|e| e.into_inner());
        let before = a.len();
        a.retain(|&(d, i, _)| (d, i) != (dev, ino));
        a.len() != before
    }

    pub(super) fn check(f: &File) -> io::Result<()> {
        let mut a = ARMED.lock().unwrap_or_else(|e| e.into_inner());
        if a.is_empty() {
            return Ok(());
        }
        let (dev, ino) = key(f);
        let Some(k) = a.iter().position(|&(d, i, _)| (d, i) == (dev, ino)) else {
            return Ok(());
        };
        a[k].2 -= 1;
        if a[k].2 > 0 {
            return Ok(());
        }
        a.remove(k);
        Err(io::Error::other(
            "io_uring_enter failed (injected by a test)",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn write_then_read_back() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&vec![0u8; 4 * ALIGN]).unwrap();
        let mut q = Queue::new(f, 2, ALIGN).unwrap();
        // Every kernel this runs on (5.1+ for fixed I/O) registers them.
        assert!(q.fixed(), "buffers and file registered");
        q.buf_mut(0).unwrap().fill(0xab);
        q.push_write(0, ALIGN as u64).unwrap();
        assert!(q.buf_mut(0).is_none(), "busy slot must not be writable");
        assert!(q.push_read(0, 0).is_err(), "busy slot must not be reused");
        let mut done = Vec::new();
        q.wait(1, &mut done).unwrap();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].result.as_ref().unwrap(), &ALIGN);
        q.push_read(1, ALIGN as u64).unwrap();
        done.clear();
        q.wait(1, &mut done).unwrap();
        assert_eq!(done[0].slot, 1);
        assert!(q.buf(1).unwrap().iter().all(|&b| b == 0xab));
    }

    #[test]
    fn partial_slots_and_a_shared_source() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&vec![0x11u8; 4 * ALIGN]).unwrap();
        // A shared, never-written source: writes only; reads are refused.
        static SRC: std::sync::OnceLock<IoArena> = std::sync::OnceLock::new();
        let src = SRC.get_or_init(|| {
            let mut a = IoArena::new(2 * ALIGN).unwrap();
            a.as_mut_slice().fill(0xcd);
            a
        });
        let mut q = Queue::with_source(f.try_clone().unwrap(), 2, src.as_slice()).unwrap();
        assert!(q.buf_mut(0).is_none(), "the source is never writable");
        assert!(
            q.push_read(0, 0).is_err(),
            "the kernel must not write the source"
        );
        assert!(
            q.push_write_len(0, 0, 3 * ALIGN).is_err(),
            "longer than a slot"
        );
        q.push_write_len(0, 0, ALIGN).unwrap();
        q.push_write(1, 2 * ALIGN as u64).unwrap();
        let mut done = Vec::new();
        while done.len() < 2 {
            q.wait(1, &mut done).unwrap();
        }
        let mut got: Vec<usize> = done.iter().map(|c| *c.result.as_ref().unwrap()).collect();
        got.sort();
        assert_eq!(got, [ALIGN, 2 * ALIGN]);
        drop(q);
        // A partial read: only the first `len` bytes of the slot change.
        let mut q = Queue::new(f, 1, 2 * ALIGN).unwrap();
        q.buf_mut(0).unwrap().fill(0);
        q.push_read_len(0, 0, ALIGN).unwrap();
        done.clear();
        q.wait(1, &mut done).unwrap();
        assert_eq!(done[0].result.as_ref().unwrap(), &ALIGN);
        let b = q.buf(0).unwrap();
        assert!(b[..ALIGN].iter().all(|&x| x == 0xcd));
        assert!(b[ALIGN..].iter().all(|&x| x == 0));
    }

    #[test]
    fn rejects_unaligned_block() {
        let f = tempfile::tempfile().unwrap();
        assert!(Queue::new(f, 1, 1000).is_err());
    }
}
