//! The report spool: one NDJSON file per run under `<run_dir>/spool/`
//! (`<run_id>.ndjson`), plus `<run_id>.acked` holding the byte offset up to
//! which the collector has acknowledged it. Events are appended before they
//! are sent and the file is fsync'd before each batch goes out, so whatever
//! was not acknowledged survives a dead collector, a killed agent, and is
//! replayed (in file order, which is `seq` order) by the next agent.

use anyhow::{Context, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub const SPOOL_EXT: &str = "ndjson";
pub const ACK_EXT: &str = "acked";
/// Next to each spool: the report endpoint its events were meant for.
pub const ENDPOINT_EXT: &str = "endpoint";

/// `<run_dir>/spool`.
pub fn spool_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("spool")
}

/// One spool file as the sender sees it: a read handle and the offset the
/// collector acknowledged.
#[derive(Debug)]
pub struct SpoolFile {
    pub path: PathBuf,
    file: File,
    acked: u64,
    /// Held for leftovers so two agents do not replay (and delete) the same
    /// spool; `None` for our own run's file, whose writer holds the lock.
    _lock: Option<File>,
}

/// A batch read from a spool: whole lines only.
#[derive(Debug, Default)]
pub struct Batch {
    pub bytes: Vec<u8>,
    /// Offset just past the batch's last newline.
    pub end: u64,
    pub lines: usize,
}

fn ack_path(path: &Path) -> PathBuf {
    path.with_extension(ACK_EXT)
}

/// The endpoint recorded for a spool, if any (spools of older agents
/// have none and go wherever they are replayed).
pub fn endpoint_of(path: &Path) -> Option<String> {
    std::fs::read_to_string(path.with_extension(ENDPOINT_EXT))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Create the spool of a new run for `endpoint` and return its append
/// handle (locked).
pub fn create(dir: &Path, run_id: &str, endpoint: &str) -> Result<(File, PathBuf)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!("{run_id}.{SPOOL_EXT}"));
    let f = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("creating spool {}", path.display()))?;
    crate::sys::lock::try_lock_exclusive(&f)
        .with_context(|| format!("locking {}", path.display()))?;
    let ep = path.with_extension(ENDPOINT_EXT);
    // Masked like everything the agent writes; still tells hosts apart.
    std::fs::write(&ep, format!("{}\n", crate::redact::text(endpoint)))
        .with_context(|| format!("writing {}", ep.display()))?;
    Ok((f, path))
}

/// The acknowledged offset recorded next to `path` (0 when none yet).
pub fn read_acked(path: &Path) -> u64 {
    std::fs::read_to_string(ack_path(path))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Complete lines in `path` after its acknowledged offset.
pub fn undelivered_lines(path: &Path) -> u64 {
    let acked = read_acked(path);
    let Ok(mut f) = File::open(path) else {
        return 0;
    };
    if f.seek(SeekFrom::Start(acked)).is_err() {
        return 0;
    }
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() {
        return 0;
    }
    buf.iter().filter(|&&b| b == b'\n').count() as u64
}

/// Ids of the erasure certificates in `path` after its acknowledged
/// offset (the `certificates` of `result` events), each once.
pub fn undelivered_certificates(path: &Path) -> Vec<String> {
    let acked = read_acked(path);
    let Ok(mut f) = File::open(path) else {
        return Vec::new();
    };
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(acked)).is_err() || f.read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let mut ids = Vec::new();
    // Only complete lines; a cheap substring test first, as most are progress.
    for line in buf.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        if memchr::memmem::find(line, b"\"certificates\"").is_none() {
            continue;
        }
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        if v["type"] != "result" {
            continue;
        }
        for c in v["data"]["certificates"].as_array().into_iter().flatten() {
            let id = c["id"].as_str().unwrap_or("?").to_string();
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    ids
}

/// Erasure certificates not yet delivered, over every spool in `dir`.
pub fn undelivered_certificates_in(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut ids: Vec<String> = Vec::new();
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().and_then(|e| e.to_str()) == Some(SPOOL_EXT) {
            for id in undelivered_certificates(&p) {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
    }
    ids.len()
}

/// The file that says a run is staying up for its certificates (written
/// and removed by the report sink, read by `speediso status`).
pub fn hold_path(dir: &Path) -> PathBuf {
    dir.join("HOLDING-FOR-CERTIFICATES.json")
}

/// Spool files in `dir` and the events in them not yet acknowledged.
pub fn backlog(dir: &Path) -> (usize, u64) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return (0, 0);
    };
    let mut files = 0;
    let mut events = 0;
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().and_then(|e| e.to_str()) == Some(SPOOL_EXT) {
            files += 1;
            events += undelivered_lines(&p);
        }
    }
    (files, events)
}

/// Leftover spools of earlier runs in `dir` that nobody else holds, oldest
/// first, each locked by the returned handle.
///
/// Only spools meant for `endpoint` (or of unknown destination): a
/// leftover of a run that reported elsewhere is never replayed to a
/// different collector; it stays for an agent with that endpoint.
pub fn leftovers(dir: &Path, endpoint: &str) -> Vec<SpoolFile> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<(std::time::SystemTime, SpoolFile)> = Vec::new();
    for entry in rd.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some(SPOOL_EXT) {
            continue;
        }
        if let Some(ep) = endpoint_of(&path) {
            if ep != crate::redact::text(endpoint) {
                tracing::info!(
                    "report: leaving spool {} alone: its events are for another endpoint",
                    path.display()
                );
                continue;
            }
        }
        let Ok(lock) = File::open(&path) else {
            continue;
        };
        match crate::sys::lock::try_lock_exclusive(&lock) {
            Ok(true) => {}
            _ => continue, // a live agent is writing it
        }
        let mtime = entry
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(std::time::UNIX_EPOCH);
        match SpoolFile::open(&path, Some(lock)) {
            Ok(s) => found.push((mtime, s)),
            Err(e) => tracing::warn!("report spool {}: {e:#}", path.display()),
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.path.cmp(&b.1.path)));
    found.into_iter().map(|(_, s)| s).collect()
}

impl SpoolFile {
    pub fn open(path: &Path, lock: Option<File>) -> Result<SpoolFile> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Ok(SpoolFile {
            path: path.to_path_buf(),
            file,
            acked: read_acked(path),
            _lock: lock,
        })
    }

    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Flush the file's data to stable storage; returns its length.
    pub fn sync(&self) -> Result<u64> {
        self.file
            .sync_data()
            .with_context(|| format!("fsync {}", self.path.display()))?;
        Ok(self.file.metadata()?.len())
    }

    /// Whole lines from the acknowledged offset up to `upto` (exclusive),
    /// at most `max_lines` lines and about `max_bytes` bytes (a longer
    /// single line is still returned whole).
    pub fn read_batch(&mut self, upto: u64, max_bytes: usize, max_lines: usize) -> Result<Batch> {
        let mut batch = Batch {
            end: self.acked,
            ..Batch::default()
        };
        if upto <= self.acked {
            return Ok(batch);
        }
        let want = ((upto - self.acked) as usize).min(max_bytes.max(1));
        let mut buf = vec![0u8; want];
        self.file.seek(SeekFrom::Start(self.acked))?;
        self.file
            .read_exact(&mut buf)
            .with_context(|| format!("reading {}", self.path.display()))?;
        // Cut after the max_lines-th newline, or the last one.
        let mut cut = None;
        let mut lines = 0;
        for (i, &b) in buf.iter().enumerate() {
            if b == b'\n' {
                lines += 1;
                cut = Some(i + 1);
                if lines == max_lines.max(1) {
                    break;
                }
            }
        }
        match cut {
            Some(c) => buf.truncate(c),
            None => {
                // One line longer than max_bytes: read on to its newline.
                let mut rest = Vec::new();
                let limit = upto - self.acked - want as u64;
                (&mut self.file).take(limit).read_to_end(&mut rest)?;
                match rest.iter().position(|&b| b == b'\n') {
                    Some(p) => buf.extend_from_slice(&rest[..=p]),
                    None => return Ok(batch), // incomplete line: not yet
                }
                lines = 1;
            }
        }
        batch.end = self.acked + buf.len() as u64;
        batch.lines = lines;
        batch.bytes = buf;
        Ok(batch)
    }

    /// Record that everything before `offset` was acknowledged (write a
    /// temporary file, fsync, rename, so a crash leaves the old or the new
    /// offset, never a torn one).
    pub fn ack(&mut self, offset: u64) -> Result<()> {
        // The collector has them: move on even when the offset cannot be
        // recorded (a full file system); only a crash would resend them,
        // and the collector de-duplicates.
        self.acked = offset;
        let ap = ack_path(&self.path);
        let tmp = ap.with_extension("acked.tmp");
        let mut f = File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        writeln!(f, "{offset}")?;
        f.sync_data()?;
        std::fs::rename(&tmp, &ap).with_context(|| format!("renaming to {}", ap.display()))?;
        Ok(())
    }

    /// Delete the spool and its offset (everything was delivered).
    pub fn remove(self) {
        let _ = std::fs::remove_file(ack_path(&self.path));
        let _ = std::fs::remove_file(self.path.with_extension(ENDPOINT_EXT));
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_acks_and_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let (mut w, path) = create(dir.path(), "r1", "http://a").unwrap();
        for i in 0..10 {
            writeln!(w, "{{\"seq\":{i}}}").unwrap();
        }
        w.write_all(b"{\"partial").unwrap();
        // Our own live spool is locked: not a leftover.
        assert!(leftovers(dir.path(), "http://a").is_empty());
        let mut s = SpoolFile::open(&path, None).unwrap();
        let len = s.sync().unwrap();
        let b = s.read_batch(len, 1 << 20, 4).unwrap();
        assert_eq!(b.lines, 4);
        assert_eq!(String::from_utf8_lossy(&b.bytes).lines().count(), 4);
        s.ack(b.end).unwrap();
        assert_eq!(read_acked(&path), b.end);
        assert_eq!(undelivered_lines(&path), 6);
        // Byte-limited: a batch never ends inside a line.
        let b = s.read_batch(len, 15, 100).unwrap();
        assert_eq!(b.lines, 1);
        assert_eq!(b.bytes, b"{\"seq\":4}\n");
        // A line longer than max_bytes comes whole.
        let b = s.read_batch(len, 3, 100).unwrap();
        assert_eq!(b.bytes, b"{\"seq\":4}\n");
        drop(w); // the writer exits: the spool becomes a leftover
                 // ... but only for the endpoint it was meant for (audit, low).
        assert!(leftovers(dir.path(), "http://b").is_empty());
        let left = leftovers(dir.path(), "http://a");
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].acked(), s.acked());
        // The trailing partial line is never sent.
        let mut l = left.into_iter().next().unwrap();
        let len = l.sync().unwrap();
        let b = l.read_batch(len, 1 << 20, 1000).unwrap();
        assert_eq!(b.lines, 6);
        l.ack(b.end).unwrap();
        let b = l.read_batch(len, 1 << 20, 1000).unwrap();
        assert_eq!(b.lines, 0);
        l.remove();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
