//! Writing the decompressed stream to the target: 1 MiB aligned O_DIRECT
//! writes from a writer thread with a few buffers in flight, the last
//! partial logical block through a buffered descriptor; a verifier thread
//! reading every written range back and comparing it with what was
//! written; clearing the partition tables on failure.

use crate::wipe::overwrite::AlignedBuf;
use anyhow::{bail, Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// Bytes per write (as wipe and `dd bs=1M`).
pub const CHUNK: usize = 1 << 20;
/// Buffers queued for the writer while the next one is filled.
pub const IN_FLIGHT: usize = 4;
/// Zeroed at both ends on failure: the MBR/GPT header and the GPT backup.
pub const CLEAR_BYTES: u64 = 1 << 20;

/// The target disk opened for writing.
pub struct Target {
    pub path: PathBuf,
    direct: File,
    /// For the last partial logical block only.
    buffered: File,
    pub size: u64,
    pub lbs: u32,
}

impl Target {
    /// Open `path` exclusively (O_EXCL fails on a mounted or held disk) for
    /// direct and for buffered writes; both must be a loop device unless
    /// `real_allowed` (`blockdev::guard::check_opened`).
    pub fn open(path: &Path, real_allowed: bool) -> Result<Target> {
        let direct = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_DIRECT | libc::O_EXCL)
            .open(path)
            .with_context(|| format!("opening {} for direct writing", path.display()))?;
        let buffered = OpenOptions::new()
            .write(true)
            .open(path)
            .with_context(|| format!("opening {} for writing", path.display()))?;
        for f in [&direct, &buffered] {
            crate::blockdev::guard::check_opened(f, path, real_allowed, "written")?;
        }
        let size = crate::sys::blk::size_bytes(&direct)
            .with_context(|| format!("{}: size", path.display()))?;
        let lbs = crate::sys::blk::logical_block_size(&direct)
            .with_context(|| format!("{}: logical block size", path.display()))?;
        Ok(Target {
            path: path.to_path_buf(),
            direct,
            buffered,
            size,
            lbs,
        })
    }

    /// Write one chunk at `off`: the whole logical blocks directly, the
    /// rest (end of the image only) through the page cache, then synced.
    fn write_at(&self, data: &[u8], off: u64) -> Result<()> {
        let end = off + data.len() as u64;
        if end > self.size {
            bail!(
                "the image is larger than {} ({} bytes): it needs at least {end}",
                self.path.display(),
                self.size
            );
        }
        let direct = data.len() / self.lbs as usize * self.lbs as usize;
        if direct > 0 {
            self.direct
                .write_all_at(&data[..direct], off)
                .with_context(|| format!("writing {} at byte {off}", self.path.display()))?;
        }
        if direct < data.len() {
            let at = off + direct as u64;
            self.buffered
                .write_all_at(&data[direct..], at)
                .and_then(|_| self.buffered.sync_data())
                .with_context(|| {
                    format!(
                        "writing the last block of {} at byte {at}",
                        self.path.display()
                    )
                })?;
        }
        Ok(())
    }
}

/// What the writer did.
#[derive(Debug, Clone)]
pub struct Written {
    pub bytes: u64,
    /// Every byte was read back from the device and compared.
    pub verified: bool,
}

/// Fill `buf` from `r` until full or EOF; the count read.
fn fill(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Where the verifier reads written ranges back from: the device, opened
/// with O_DIRECT so the bytes come from the disk and not the page cache. A
/// unit test substitutes a reader that returns wrong bytes.
trait ReadBack: Sync {
    fn read_back(&self, buf: &mut [u8], off: u64) -> io::Result<()>;
}

impl ReadBack for File {
    fn read_back(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        self.read_exact_at(buf, off)
    }
}

/// Stream `r` onto the target from byte 0, and read every chunk back.
///
/// Three stages with buffers handed along channels: this thread reads
/// (download, decompression) into 1 MiB aligned buffers; a writer thread
/// writes each with O_DIRECT; a verifier thread reads the same range back
/// with O_DIRECT (from the device, not the page cache) and compares it
/// byte for byte with the buffer that was written before the buffer is
/// reused. Verification overlaps the download instead of doubling the
/// time. `tick(bytes_so_far)` runs in this thread after each chunk.
///
/// The first MiB is held back: `Pending::commit` writes it once the caller
/// has checked the image's digest, so a disk whose image failed its
/// checksum never gets a partition table, even for a moment.
pub fn stream(r: &mut dyn Read, t: &Target, tick: &mut dyn FnMut(u64)) -> Result<Pending> {
    let check = open_check(t)?;
    let (bytes, head) = stream_body(r, t, &check, tick)?;
    Ok(Pending { bytes, head })
}

fn open_check(t: &Target) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(&t.path)
        .with_context(|| format!("opening {} to verify", t.path.display()))
}

/// An image on the disk but its first MiB, which is still zero.
pub struct Pending {
    /// Bytes of the image, the held-back head included.
    pub bytes: u64,
    head: Option<(AlignedBuf, usize)>,
}

impl Pending {
    /// Write and read back the first MiB: the disk becomes valid only now.
    pub fn commit(self, t: &Target) -> Result<Written> {
        let check = open_check(t)?;
        write_head(t, &check, self.head)?;
        Ok(Written {
            bytes: self.bytes,
            verified: true,
        })
    }
}

#[cfg(test)]
fn stream_checked(
    r: &mut dyn Read,
    t: &Target,
    check: &dyn ReadBack,
    tick: &mut dyn FnMut(u64),
) -> Result<Written> {
    let (bytes, head) = stream_body(r, t, check, tick)?;
    write_head(t, check, head)?;
    Ok(Written {
        bytes,
        verified: true,
    })
}

fn stream_body(
    r: &mut dyn Read,
    t: &Target,
    check: &dyn ReadBack,
    tick: &mut dyn FnMut(u64),
) -> Result<(u64, Option<(AlignedBuf, usize)>)> {
    let (tx, rx) = mpsc::sync_channel::<(AlignedBuf, usize, u64)>(IN_FLIGHT);
    let (vtx, vrx) = mpsc::sync_channel::<(AlignedBuf, usize, u64)>(IN_FLIGHT);
    let (back_tx, back_rx) = mpsc::channel::<AlignedBuf>();
    for _ in 0..2 * IN_FLIGHT + 3 {
        back_tx.send(AlignedBuf::new(CHUNK)).ok();
    }
    // The first MiB (partition table, boot sector) is zeroed now and
    // written last, as coreos-installer does: an install cut short never
    // leaves a disk that looks valid, with the old table or the new one.
    // The last MiB (the backup GPT) is zeroed too; the image overwrites
    // it where it reaches that far.
    let lbs = u64::from(t.lbs);
    let head_len = (CHUNK as u64).min(t.size) / lbs * lbs;
    let tail_off = (t.size.saturating_sub(CHUNK as u64) / lbs * lbs).max(head_len);
    let tail_len = (t.size - tail_off) / lbs * lbs;
    let zeros = AlignedBuf::new(CHUNK + t.lbs as usize);
    if head_len > 0 {
        t.write_at(&zeros.as_slice()[..head_len as usize], 0)?;
    }
    if tail_len > 0 {
        t.write_at(&zeros.as_slice()[..tail_len as usize], tail_off)?;
    }
    t.direct
        .sync_data()
        .with_context(|| format!("flushing {}", t.path.display()))?;
    let mut head: Option<(AlignedBuf, usize)> = None;
    let streamed = std::thread::scope(|s| -> Result<u64> {
        let writer = s.spawn(move || -> Result<()> {
            for (buf, len, off) in rx {
                t.write_at(&buf.as_slice()[..len], off)?;
                if vtx.send((buf, len, off)).is_err() {
                    break;
                }
            }
            t.direct
                .sync_data()
                .with_context(|| format!("flushing {}", t.path.display()))
        });
        let verifier = s.spawn(move || -> Result<()> {
            let mut got = AlignedBuf::new(CHUNK);
            let lbs = t.lbs as usize;
            for (buf, len, off) in vrx {
                let aligned = (len.div_ceil(lbs) * lbs).min(CHUNK);
                check
                    .read_back(&mut got.as_mut_slice()[..aligned], off)
                    .with_context(|| format!("reading back {} at byte {off}", t.path.display()))?;
                let (want, have) = (&buf.as_slice()[..len], &got.as_slice()[..len]);
                if want != have {
                    let i = want.iter().zip(have).position(|(a, b)| a != b).unwrap_or(0);
                    bail!(
                        "read-back verification failed: {} differs from the image at byte {}",
                        t.path.display(),
                        off + i as u64
                    );
                }
                back_tx.send(buf).ok();
            }
            Ok(())
        });
        let mut off = 0u64;
        let read_result: Result<()> = (|| {
            loop {
                // Buffers come back from the verifier; none means a stage stopped.
                let Ok(mut buf) = back_rx.recv() else {
                    return Ok(());
                };
                let n = fill(r, buf.as_mut_slice()).context("reading the image")?;
                if n == 0 {
                    return Ok(());
                }
                if off == 0 {
                    // Kept for the end (see above).
                    head = Some((buf, n));
                } else if tx.send((buf, n, off)).is_err() {
                    return Ok(());
                }
                off += n as u64;
                tick(off);
                if n < CHUNK {
                    return Ok(());
                }
            }
        })();
        drop(tx);
        let panicked = || anyhow::anyhow!("an install thread panicked");
        let w = writer.join().map_err(|_| panicked())?;
        let v = verifier.join().map_err(|_| panicked())?;
        // A write or verify error explains a reader stop, so they come first.
        w?;
        v?;
        read_result?;
        Ok(off)
    })?;
    Ok((streamed, head))
}

/// Write the held-back first MiB and read it back.
fn write_head(t: &Target, check: &dyn ReadBack, head: Option<(AlignedBuf, usize)>) -> Result<()> {
    if let Some((buf, len)) = head {
        t.write_at(&buf.as_slice()[..len], 0)?;
        t.direct
            .sync_data()
            .with_context(|| format!("flushing {}", t.path.display()))?;
        let lbs = t.lbs as usize;
        let mut got = AlignedBuf::new(CHUNK);
        let aligned = (len.div_ceil(lbs) * lbs).min(CHUNK);
        check
            .read_back(&mut got.as_mut_slice()[..aligned], 0)
            .with_context(|| format!("reading back {} at byte 0", t.path.display()))?;
        let (want, have) = (&buf.as_slice()[..len], &got.as_slice()[..len]);
        if want != have {
            let i = want.iter().zip(have).position(|(a, b)| a != b).unwrap_or(0);
            bail!(
                "read-back verification failed: {} differs from the image at byte {i}",
                t.path.display()
            );
        }
    }
    Ok(())
}

/// Zero the first and the last MiB (MBR, GPT header and its backup) so a
/// half-written disk never boots, then ask the kernel to forget the old
/// partitions. The same check as `Target::open` before the first write.
pub fn clear_partition_tables(path: &Path, real_allowed: bool) -> Result<()> {
    let f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .with_context(|| format!("opening {} to clear it", path.display()))?;
    crate::blockdev::guard::check_opened(&f, path, real_allowed, "written")?;
    let size =
        crate::sys::blk::size_bytes(&f).with_context(|| format!("{}: size", path.display()))?;
    let zeros = AlignedBuf::new(CLEAR_BYTES as usize);
    let head = size.min(CLEAR_BYTES);
    f.write_all_at(&zeros.as_slice()[..head as usize], 0)
        .with_context(|| format!("zeroing the start of {}", path.display()))?;
    if size > CLEAR_BYTES {
        let at = size - CLEAR_BYTES.min(size - head);
        let n = (size - at) as usize;
        f.write_all_at(&zeros.as_slice()[..n], at)
            .with_context(|| format!("zeroing the end of {}", path.display()))?;
    }
    f.sync_all()
        .with_context(|| format!("flushing {}", path.display()))?;
    reread(path).ok();
    Ok(())
}

/// BLKRRPART on the whole disk.
pub fn reread(path: &Path) -> io::Result<()> {
    let f = File::open(path)?;
    crate::sys::blk::reread_partitions(&f)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the file back, but with one byte flipped at `bad`.
    struct Lying {
        file: File,
        bad: u64,
    }

    impl ReadBack for Lying {
        fn read_back(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
            self.file.read_exact_at(buf, off)?;
            if (off..off + buf.len() as u64).contains(&self.bad) {
                buf[(self.bad - off) as usize] ^= 0x5a;
            }
            Ok(())
        }
    }

    fn file_target(size: u64) -> (tempfile::NamedTempFile, Target) {
        let tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.as_file().set_len(size).unwrap();
        let t = Target {
            path: tmp.path().to_path_buf(),
            direct: tmp.reopen().unwrap(),
            buffered: tmp.reopen().unwrap(),
            size,
            lbs: 512,
        };
        (tmp, t)
    }

    /// An image source that fails after `ok` bytes (a download cut).
    struct Cut {
        data: Vec<u8>,
        pos: usize,
        ok: usize,
    }

    impl Read for Cut {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.pos >= self.ok {
                return Err(io::Error::new(io::ErrorKind::ConnectionReset, "cut"));
            }
            let n = buf.len().min(self.ok - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    /// Audit item 13: the first MiB is written last, so an install cut
    /// short leaves neither the old partition table nor the new one.
    #[test]
    fn an_interrupted_install_leaves_the_first_mib_zeroed() {
        let (tmp, t) = file_target(6 * CHUNK as u64);
        // The disk held another OS: its first MiB is not zero.
        tmp.as_file()
            .write_all_at(&vec![0xEEu8; 2 * CHUNK], 0)
            .unwrap();
        let image: Vec<u8> = (0..5 * CHUNK).map(|i| (i % 253 + 1) as u8).collect();
        let honest = tmp.reopen().unwrap();
        let mut src = Cut {
            data: image.clone(),
            pos: 0,
            ok: 3 * CHUNK + 100,
        };
        let e = stream_checked(&mut src, &t, &honest, &mut |_| {}).unwrap_err();
        assert!(format!("{e:#}").contains("reading the image"), "{e:#}");
        let mut disk = vec![0u8; 3 * CHUNK];
        tmp.as_file().read_exact_at(&mut disk, 0).unwrap();
        assert!(
            disk[..CHUNK].iter().all(|&b| b == 0),
            "the first MiB is not zero"
        );
        // What came before the cut was written.
        assert_eq!(&disk[CHUNK..2 * CHUNK], &image[CHUNK..2 * CHUNK]);
        // A whole run writes the first MiB too, and verifies it.
        let (tmp, t) = file_target(6 * CHUNK as u64);
        let honest = tmp.reopen().unwrap();
        stream_checked(&mut &image[..], &t, &honest, &mut |_| {}).unwrap();
        let mut disk = vec![0u8; 5 * CHUNK];
        tmp.as_file().read_exact_at(&mut disk, 0).unwrap();
        assert!(disk == image);
        // A lie about the first MiB is caught after it is written.
        let lying = Lying {
            file: tmp.reopen().unwrap(),
            bad: 10,
        };
        let e = stream_checked(&mut &image[..], &t, &lying, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("at byte 10"), "{e}");
    }

    /// Review of item 13: the head waits for the caller's digest check;
    /// until `commit`, the first and the last MiB are zero.
    #[test]
    fn the_first_mib_waits_for_the_commit() {
        let (tmp, t) = file_target(6 * CHUNK as u64);
        tmp.as_file()
            .write_all_at(&vec![0xEEu8; 6 * CHUNK], 0)
            .unwrap();
        let image: Vec<u8> = (0..3 * CHUNK).map(|i| (i % 251 + 1) as u8).collect();
        let honest = tmp.reopen().unwrap();
        let (bytes, head) = stream_body(&mut &image[..], &t, &honest, &mut |_| {}).unwrap();
        assert_eq!(bytes, image.len() as u64);
        let mut disk = vec![0u8; 6 * CHUNK];
        tmp.as_file().read_exact_at(&mut disk, 0).unwrap();
        assert!(
            disk[..CHUNK].iter().all(|&b| b == 0),
            "head written before the commit"
        );
        assert!(
            disk[5 * CHUNK..].iter().all(|&b| b == 0),
            "old backup GPT survives"
        );
        assert_eq!(&disk[CHUNK..3 * CHUNK], &image[CHUNK..]);
        write_head(&t, &honest, head).unwrap();
        tmp.as_file().read_exact_at(&mut disk, 0).unwrap();
        assert_eq!(&disk[..3 * CHUNK], &image[..]);
    }

    #[test]
    fn read_back_mismatch_fails_the_install_naming_the_byte() {
        let image: Vec<u8> = (0..3 * CHUNK + 700).map(|i| (i * 7 % 251) as u8).collect();
        let (tmp, t) = file_target(4 * CHUNK as u64);
        // Honest read-back: every byte written and verified.
        let honest = tmp.reopen().unwrap();
        let w = stream_checked(&mut &image[..], &t, &honest, &mut |_| {}).unwrap();
        assert_eq!((w.bytes, w.verified), (image.len() as u64, true));
        assert_eq!(std::fs::read(tmp.path()).unwrap()[..image.len()], image[..]);
        // A device that returns one wrong byte in the third chunk.
        let bad = 2 * CHUNK as u64 + 4097;
        let lying = Lying {
            file: tmp.reopen().unwrap(),
            bad,
        };
        let mut ticks = 0u64;
        let e = stream_checked(&mut &image[..], &t, &lying, &mut |n| ticks = n).unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("read-back verification failed")
                && msg.contains(&format!("at byte {bad}")),
            "{msg}"
        );
    }

    #[test]
    fn image_larger_than_the_target_is_refused() {
        let image = vec![1u8; 2 * CHUNK];
        let (tmp, t) = file_target(CHUNK as u64 + 4096);
        let honest = tmp.reopen().unwrap();
        let e = stream_checked(&mut &image[..], &t, &honest, &mut |_| {}).unwrap_err();
        assert!(format!("{e:#}").contains("image is larger than"), "{e:#}");
    }

    #[test]
    fn fill_reads_until_full_or_eof() {
        let data = vec![7u8; 10];
        let mut r: &[u8] = &data;
        let mut buf = [0u8; 4];
        assert_eq!(fill(&mut r, &mut buf).unwrap(), 4);
        let mut big = [0u8; 16];
        assert_eq!(fill(&mut r, &mut big).unwrap(), 6);
        assert_eq!(fill(&mut r, &mut big).unwrap(), 0);
    }
}
